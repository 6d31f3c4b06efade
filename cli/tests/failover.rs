//! `db migrate` across a failover: a primary with a synchronous standby
//! from the crate's launcher, `db migrate` reaching it through a URL that
//! names both (`target_session_attrs=read-write`), the primary crashed in
//! the middle of a migration that runs outside a transaction, the standby
//! promoted. The run fails saying what happened; the next one, on the new
//! primary, finds what `kill -9` of `db migrate` leaves (the migration lock
//! went with the old primary's sessions, the statements done are recorded)
//! and resumes after the last statement done.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::clusters::{admin, both_hosts, replica_of, start};
use common::{DB_BIN, count_rows, run_db, wait_until};
use database::Conn;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn rows_of(conn: &mut Conn, query: &str) -> usize {
    diesel::sql_query(query).execute(conn).await.unwrap()
}

fn write_migration(dir: &Path) {
    let folder = dir.join("2030-01-01-000000_across_failover");
    std::fs::create_dir_all(&folder).unwrap();
    // Statement 2 waits for a lock the test holds on the old primary: the
    // crash lands there. On the new primary nobody holds it.
    std::fs::write(
        folder.join("up.sql"),
        "CREATE TABLE fa (x int);\nINSERT INTO blocker VALUES (1);\nCREATE TABLE fb (y int);\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("down.sql"),
        "DROP TABLE fb;\nDELETE FROM blocker;\nDROP TABLE fa;\n",
    )
    .unwrap();
    std::fs::write(folder.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_cut_by_a_failover_fails_clearly_and_resumes_on_the_new_primary() {
    let Some(primary) = start() else {
        return;
    };
    let standby = replica_of(&primary);
    let mut on_primary = admin(&primary).await;
    on_primary
        .batch_execute("CREATE TABLE blocker (x int)")
        .await
        .unwrap();
    on_primary
        .batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .await
        .unwrap();
    on_primary
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    wait_until(
        "the standby is synchronous",
        Duration::from_secs(20),
        async || {
            rows_of(
                &mut on_primary,
                "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'",
            )
            .await
                == 1
        },
    )
    .await;
    let url = both_hosts(&primary, &standby);
    let dir = tempfile::tempdir().unwrap();
    write_migration(dir.path());
    let dir_arg = dir.path().to_str().unwrap();

    let mut holder = admin(&primary).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE blocker IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let child = Command::new(DB_BIN)
        .args(["migrate", "--migrations-dir", dir_arg])
        .env("DATABASE_URL", &url)
        .env("DB_MIGRATION_DDL_LOCK_TIMEOUT_MS", "60000")
        .env_remove("DB_MIGRATIONS_DIR")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "statement 2 waits for the lock",
        Duration::from_secs(20),
        async || {
            rows_of(
                &mut on_primary,
                "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'INSERT INTO blocker%' \
             AND wait_event_type = 'Lock'",
            )
            .await
                == 1
        },
    )
    .await;
    let started = Instant::now();
    tokio::task::block_in_place(|| primary.crash().unwrap());
    let first = tokio::task::block_in_place(|| child.wait_with_output().unwrap());
    let failed_after = started.elapsed();
    tokio::task::block_in_place(|| standby.promote().unwrap());

    let said = text(&first);
    eprintln!("db migrate when the primary crashed ({failed_after:?}):\n{said}");
    assert_eq!(first.status.code(), Some(1), "{said}");
    for needed in [
        "across_failover",
        "statement 2 of 3",
        "the connection to the server was lost",
        "nothing in the migration needs fixing",
        "statements 1 to 1 are recorded as done",
        "resumes at statement 2",
    ] {
        assert!(said.contains(needed), "{needed:?} missing from: {said}");
    }
    assert!(!said.contains("fix statement"), "{said}");

    // What the new primary holds is what kill -9 leaves: statement 1 done
    // and recorded, no lock held.
    let status = run_db(&url, &["status", "--migrations-dir", dir_arg], &[]);
    let shown = text(&status);
    assert!(shown.contains("statement 1 of 3"), "{shown}");
    let resumed = Instant::now();
    let again = run_db(&url, &["migrate", "--migrations-dir", dir_arg], &[]);
    assert!(again.status.success(), "{}", text(&again));
    eprintln!(
        "failover figures: migration: db migrate exited {} ms after the crash with the lost \
         connection named; the next run on the new primary resumed at statement 2 of 3 and \
         finished in {} ms",
        failed_after.as_millis(),
        resumed.elapsed().as_millis()
    );
    let mut on_new = admin(&standby).await;
    assert_eq!(count_rows(&mut on_new, "blocker").await, 1);
    assert_eq!(count_rows(&mut on_new, "fa").await, 0);
    assert_eq!(count_rows(&mut on_new, "fb").await, 0);
    let status = run_db(&url, &["status", "--migrations-dir", dir_arg], &[]);
    assert!(
        !text(&status).contains("statement 1 of 3"),
        "{}",
        text(&status)
    );
}
