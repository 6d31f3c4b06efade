//! `AnyTestDb`: a test database of either backend, for the portable domains
//! (auth, settings). `on_both_backends!` turns one test body into two tests,
//! `<name>::postgres` (a cloned PostgreSQL database, as `TestDb`) and
//! `<name>::sqlite` (a fresh, migrated SQLite file of its own).

use chrono::{DateTime, Utc};
use database::testing::SqliteTestDb;
use database::{AnyDb, AnyPooledConn};
use diesel_async::RunQueryDsl;

use super::TestDb;

/// A migrated database of one test on either backend.
pub struct AnyTestDb {
    /// Its handle (pool of 8 on PostgreSQL and on a SQLite file).
    pub db: AnyDb,
    /// The PostgreSQL database (dropped with this value), if that backend.
    pg: Option<TestDb>,
    /// The SQLite file (deleted with this value), if that backend.
    _sqlite: Option<SqliteTestDb>,
}

impl AnyTestDb {
    /// A fresh PostgreSQL database (from the migrated template).
    pub async fn postgres() -> AnyTestDb {
        let t = TestDb::new().await;
        AnyTestDb {
            db: AnyDb::Pg(t.owner.clone()),
            pg: Some(t),
            _sqlite: None,
        }
    }

    /// A fresh SQLite file (copied from the migrated template file).
    pub async fn sqlite() -> AnyTestDb {
        let t = SqliteTestDb::new().await;
        AnyTestDb {
            db: AnyDb::Sqlite(t.db()),
            pg: None,
            _sqlite: Some(t),
        }
    }

    /// Which backend: `"postgresql"` or `"sqlite"`.
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
    }

    /// A pooled connection.
    pub async fn conn(&self) -> AnyPooledConn {
        self.db.conn().await.expect("pooled connection")
    }

    /// How many rows `table` holds (to prove that nothing was written).
    pub async fn count(&self, table: &str) -> i64 {
        use diesel::sql_types::BigInt;
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let sql = format!("SELECT count(*) AS n FROM {table}");
        match self.conn().await {
            AnyPooledConn::Pg(mut c) => {
                diesel::sql_query(sql)
                    .get_result::<Count>(&mut *c)
                    .await
                    .unwrap()
                    .n
            }
            AnyPooledConn::Sqlite(mut c) => {
                diesel::sql_query(sql)
                    .get_result::<Count>(&mut *c)
                    .await
                    .unwrap()
                    .n
            }
        }
    }

    /// Sets `table.column` of the row `id` to `at` behind the repository's
    /// back (to make a token expire).
    pub async fn set_time(&self, table: &str, column: &str, id: uuid::Uuid, at: DateTime<Utc>) {
        match self.conn().await {
            AnyPooledConn::Pg(mut c) => {
                diesel::sql_query(format!("UPDATE {table} SET {column} = $1 WHERE id = $2"))
                    .bind::<diesel::sql_types::Timestamptz, _>(at)
                    .bind::<diesel::sql_types::Uuid, _>(id)
                    .execute(&mut *c)
                    .await
                    .unwrap();
            }
            AnyPooledConn::Sqlite(mut c) => {
                diesel::sql_query(format!("UPDATE {table} SET {column} = ? WHERE id = ?"))
                    .bind::<diesel::sql_types::TimestamptzSqlite, _>(at)
                    .bind::<diesel::sql_types::Binary, _>(id.as_bytes().to_vec())
                    .execute(&mut *c)
                    .await
                    .unwrap();
            }
        }
    }

    /// Runs `sql` (one text for both backends) in a transaction of
    /// `AnyPooledConn::transaction`, so that a failure comes back as a
    /// portable function's would.
    pub async fn execute(&self, sql: &str) -> database::Result<usize> {
        use database::db::{AnyConn, Backend};
        let mut conn = self.conn().await;
        conn.transaction(async |tx| match tx.backend() {
            Backend::Pg(c) => Ok(diesel::sql_query(sql).execute(c).await?),
            Backend::Sqlite(c) => Ok(diesel::sql_query(sql).execute(c).await?),
        })
        .await
    }

    /// A new user with this address (and defaults for the rest).
    pub async fn user(&self, email: &str) -> database::UserId {
        use database::auth::{NewUser, users};
        users::create(
            &mut self.conn().await,
            &NewUser {
                email: email.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("creating user {email}: {e}"))
        .id
    }
}

/// One test body, two tests: `name::postgres` and `name::sqlite`.
///
/// ```ignore
/// on_both_backends! {
///     async fn users_can_be_created(t) { let mut conn = t.conn().await; ... }
/// }
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($( $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block )*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($t: $crate::common::any::AnyTestDb) $body

                #[tokio::test(flavor = "multi_thread")]
                async fn postgres() {
                    run($crate::common::any::AnyTestDb::postgres().await).await
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn sqlite() {
                    run($crate::common::any::AnyTestDb::sqlite().await).await
                }
            }
        )*
    };
}
