//! 500 tests, each on a database of its own: insert a user, read it back.
//! `migrations/` is the crate's migrations in sqlx's layout (written by
//! `scripts/bench --testdb`).
use sqlx::PgPool;

macro_rules! tests {
    ($($name:ident)*) => {$(
        #[sqlx::test(migrations = "./migrations")]
        async fn $name(pool: PgPool) {
            let id = uuid::Uuid::now_v7();
            sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
                .bind(id)
                .bind("ann@example.com")
                .execute(&pool)
                .await
                .unwrap();
            let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(email, "ann@example.com");
        }
    )*};
}

include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../names.rs"));
