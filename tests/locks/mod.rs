//! Forcing a race's interleaving: a transaction that holds row locks until
//! every racing call waits on them (see `tenancy.rs` and `tenant_invites.rs`).
#![allow(dead_code)]

use crate::common::TestDb;
use diesel_async::RunQueryDsl;

/// A transaction on a connection of its own that holds the row locks
/// `lock_sql` takes until `release`: the racing calls of a test queue up
/// behind it, so they are all in flight at once when it lets go, whatever
/// the scheduler does.
pub struct LockHolder(database::Conn);

impl LockHolder {
    pub async fn take(t: &TestDb, lock_sql: &str) -> LockHolder {
        use diesel_async::{AsyncConnection, SimpleAsyncConnection};
        let mut conn = database::Conn::establish(&t.url).await.unwrap();
        conn.batch_execute(&format!("BEGIN; {lock_sql}"))
            .await
            .unwrap();
        LockHolder(conn)
    }

    pub async fn release(mut self) {
        use diesel_async::SimpleAsyncConnection;
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

/// Waits until `n` sessions on the test's database wait for a lock.
pub async fn lock_waiters(t: &TestDb, n: i64) {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = format!(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = '{}' AND wait_event_type = 'Lock'",
        t.name
    );
    let mut conn = t.conn().await;
    for _ in 0..1000 {
        let waiting = diesel::sql_query(&sql)
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for the lock");
}
