//! `db drop` and `db push` against a real PostgreSQL, through the binary,
//! and the applied scripts the engine keeps for `push`.

mod common;

use std::path::Path;
use std::process::Output;

use common::{TestDb, count_rows, run_db as db};
use database::migrate::{self, MigrationSet};
use database_cli::drift::schema_dump;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The URL of `t`'s database under a host name that is not local, still
/// reaching the test server (libpq's `hostaddr`).
fn non_local_url(t: &TestDb) -> String {
    let mut url = url::Url::parse(&t.url).unwrap();
    let host = url.host_str().unwrap().to_owned();
    url.set_host(Some("db.internal.example")).unwrap();
    url.query_pairs_mut().append_pair("hostaddr", &host);
    url.to_string()
}

async fn database_count(name: &str) -> i64 {
    count_rows(
        &mut common::admin_conn().await,
        &format!("pg_database WHERE datname = '{name}'"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_drops_is_refused_under_the_guard_and_setup_recreates() {
    let t = TestDb::new().await;
    for (url, env, why) in [
        (
            t.url.clone(),
            &[("APP_ENV", "production")][..],
            "APP_ENV=production",
        ),
        (non_local_url(&t), &[][..], "a non-local host without --yes"),
    ] {
        let out = db(&url, &["drop"], env);
        assert_eq!(out.status.code(), Some(4), "{why}: {}", text(&out));
        assert_eq!(database_count(&t.name).await, 1, "{why} dropped it");
    }
    // An open connection does not keep it alive.
    let held = t.conn().await;
    let out = db(&t.url, &["drop"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("Dropped database {}", t.name)));
    assert_eq!(database_count(&t.name).await, 0);
    drop(held);
    let again = db(&t.url, &["drop"], &[]);
    assert!(again.status.success() && text(&again).contains("does not exist"));

    let out = db(&t.url, &["setup"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(database_count(&t.name).await, 1);
    assert!(db(&t.url, &["check"], &[]).status.success());
}

/// Two small migrations in `dir`: `first_t`, and `push_demo` referencing it.
fn write_migrations(dir: &Path, demo_up: &str, demo_down: &str) {
    let write = |name: &str, up: &str, down: &str| {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), up).unwrap();
        std::fs::write(folder.join("down.sql"), down).unwrap();
    };
    write(
        "2099-01-01-000000_first",
        "CREATE TABLE first_t (id int PRIMARY KEY);",
        "DROP TABLE first_t;",
    );
    write("2099-01-02-000000_push_demo", demo_up, demo_down);
}

const DEMO_UP: &str = "CREATE TABLE push_demo (id int PRIMARY KEY REFERENCES first_t);";
/// The edited migration: a column more. Its new down would fail on the
/// schema the old up made (no `note` column), so success proves the stored
/// down ran.
const EDITED_UP: &str = "CREATE TABLE push_demo (id int PRIMARY KEY REFERENCES first_t, note text NOT NULL DEFAULT '');";
const EDITED_DOWN: &str = "ALTER TABLE push_demo DROP COLUMN note; DROP TABLE push_demo;";

#[tokio::test(flavor = "multi_thread")]
async fn push_reverts_an_edited_migration_with_its_stored_down_and_applies_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().to_str().unwrap();
    write_migrations(dir.path(), DEMO_UP, "DROP TABLE push_demo;");
    let t = TestDb::empty().await;
    let out = db(&t.url, &["migrate", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // The engine kept what it applied, in the transaction of each version.
    assert_eq!(t.count("__database_migration_scripts").await, 2);

    write_migrations(dir.path(), EDITED_UP, EDITED_DOWN);
    let before = schema_dump(&t.url).unwrap();
    let check = db(&t.url, &["check", "--migrations-dir", migrations], &[]);
    assert_eq!(
        check.status.code(),
        Some(3),
        "db check still refuses the edit"
    );

    // Refused where the guard refuses, and on any non-local host: nothing changes.
    for (url, env) in [
        (t.url.clone(), &[("APP_ENV", "production")][..]),
        (non_local_url(&t), &[][..]),
    ] {
        let out = db(&url, &["push", "--migrations-dir", migrations], env);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        assert!(text(&out).contains("refused"), "{}", text(&out));
        assert_eq!(schema_dump(&t.url).unwrap(), before);
    }

    let out = db(&t.url, &["push", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("Reverted 2099-01-02-000000_push_demo with its stored down.sql"),
        "{said}"
    );
    assert!(
        said.contains("Applied 2099-01-02-000000_push_demo"),
        "{said}"
    );
    assert!(
        !said.contains("first"),
        "the unedited migration stays: {said}"
    );

    // The schema equals a fresh migrate of the edited folder.
    let fresh = TestDb::empty().await;
    let out = db(
        &fresh.url,
        &["migrate", "--migrations-dir", migrations],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        schema_dump(&t.url).unwrap(),
        schema_dump(&fresh.url).unwrap()
    );
    assert!(
        db(&t.url, &["check", "--migrations-dir", migrations], &[])
            .status
            .success()
    );
    let again = db(&t.url, &["push", "--migrations-dir", migrations], &[]);
    assert!(text(&again).contains("Nothing to push"), "{}", text(&again));

    // Editing the older migration reverts both, newest first, then applies both.
    std::fs::write(
        dir.path().join("2099-01-01-000000_first/up.sql"),
        "CREATE TABLE first_t (id int PRIMARY KEY, born date);",
    )
    .unwrap();
    let out = db(&t.url, &["push", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let order: Vec<&str> = said
        .lines()
        .map(|l| &l[..l.find(" 2099").unwrap()])
        .collect();
    assert_eq!(
        order,
        ["Reverted", "Reverted", "Applied", "Applied"],
        "{said}"
    );
    assert!(said.lines().next().unwrap().contains("push_demo"), "{said}");
}

/// `db reset` keeps every bookkeeping table (the stored scripts `db push`
/// reverts with among them): after a reset, pushing an edited migration
/// works. (It used to truncate them, and push then failed with
/// `NoStoredScripts`.)
#[tokio::test(flavor = "multi_thread")]
async fn push_after_a_reset_reverts_with_the_stored_down() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().to_str().unwrap();
    write_migrations(dir.path(), DEMO_UP, "DROP TABLE push_demo;");
    let t = TestDb::empty().await;
    let out = db(&t.url, &["migrate", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = db(&t.url, &["reset", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(t.count("__database_migration_scripts").await, 2);
    assert_eq!(t.count("__diesel_schema_migrations").await, 2);
    write_migrations(dir.path(), EDITED_UP, EDITED_DOWN);
    let out = db(&t.url, &["push", "--migrations-dir", migrations], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Applied 2099-01-02-000000_push_demo"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn push_stops_before_anything_when_a_stored_down_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().to_str().unwrap();
    write_migrations(dir.path(), DEMO_UP, "DROP TABLE push_demo;");
    let t = TestDb::empty().await;
    assert!(
        db(&t.url, &["migrate", "--migrations-dir", migrations], &[])
            .status
            .success()
    );
    // As if applied before the engine kept scripts.
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *t.conn().await,
        "DELETE FROM __database_migration_scripts",
    )
    .await
    .unwrap();
    write_migrations(dir.path(), EDITED_UP, EDITED_DOWN);
    let before = schema_dump(&t.url).unwrap();
    let out = db(&t.url, &["push", "--migrations-dir", migrations], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("was not kept"), "{}", text(&out));
    assert_eq!(schema_dump(&t.url).unwrap(), before);
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let status = migrate::status(&mut *t.conn().await, &set).await.unwrap();
    assert_eq!(status.count(migrate::State::Modified), 1);
}
