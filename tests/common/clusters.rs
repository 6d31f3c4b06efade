//! Throwaway servers of the crate's launcher for the failover tests
//! (`tests/failover.rs`, `cli/tests/failover.rs`).

use database::Conn;
use database::ops::cluster::{Options, TempCluster};
use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

/// A scratch cluster whose commits wait for the local WAL flush (a scratch
/// cluster turns that off, which would add the WAL writer's delay to what an
/// asynchronous replica may miss, and which a synchronous standby needs).
pub fn options() -> Options {
    let mut o = Options::scratch();
    o.settings = vec!["synchronous_commit = on".into()];
    o
}

/// A cluster started with `options()`, or `None` (the reason printed, see
/// `skip_without`) where PostgreSQL's server binaries are missing.
pub fn start() -> Option<TempCluster> {
    match TempCluster::start(options()) {
        Ok(c) => Some(c),
        Err(e) => {
            super::skip_without("a throwaway cluster", &e);
            None
        }
    }
}

/// A streaming replica of `primary`, started.
pub fn replica_of(primary: &TempCluster) -> TempCluster {
    TempCluster::replica_of(primary, options()).expect("replica starts")
}

/// A connection to the `postgres` database of `cluster`, as its superuser.
pub async fn admin(cluster: &TempCluster) -> Conn {
    Conn::establish(&cluster.url_of("postgres")).await.unwrap()
}

/// What a service of a failover is configured with: both servers, the one
/// that accepts writes wins.
/// (A replica has its primary's roles and passwords.)
pub fn both_hosts(first: &TempCluster, second: &TempCluster) -> String {
    let password = first
        .record()
        .secrets
        .as_ref()
        .map(|s| format!(":{}", s.superuser));
    format!(
        "postgres://postgres{}@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        password.unwrap_or_default(),
        first.record().port,
        second.record().port
    )
}

/// Runs `statement` on `cluster` as its superuser.
pub async fn sql(cluster: &TempCluster, statement: &str) {
    admin(cluster)
        .await
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

#[derive(diesel::QueryableByName)]
pub struct Flag {
    #[diesel(sql_type = Bool)]
    pub flag: bool,
}

/// The `flag` column of `query`, run on `cluster` as its superuser.
pub async fn flag(cluster: &TempCluster, query: &str) -> bool {
    diesel::sql_query(query)
        .get_result::<Flag>(&mut admin(cluster).await)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .flag
}

/// Fences a running primary the way an operator can without stopping it:
/// every new transaction is read-only (also those of sessions already open).
pub async fn fence(cluster: &TempCluster) {
    sql(
        cluster,
        "ALTER SYSTEM SET default_transaction_read_only = on",
    )
    .await;
    sql(cluster, "SELECT pg_reload_conf()").await;
}
