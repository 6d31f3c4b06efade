//! The `db` binary's operator commands against a real PostgreSQL: reset,
//! nuke, new, diff, pull, baseline, and the production guard (`db lint` has
//! tests/lint.rs).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{DB_BIN, run_db as db};
use common::{TestDb, count_rows};
use database::auth::{NewUser, users};
use database::migrate::{self, MigrationSet, State};
use diesel_async::SimpleAsyncConnection;

const MANIFEST_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn add_user(t: &TestDb, email: &str) {
    users::create(
        &mut *t.conn().await,
        &NewUser {
            email: email.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

/// The URL of `t`'s database under another host name, still reaching the
/// local server (libpq's `hostaddr`): the guard judges the name, so a
/// refusal proves itself against a real database.
fn url_with_host(t: &TestDb, host: &str) -> String {
    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_host(Some(host)).unwrap();
    url.query_pairs_mut().append_pair("hostaddr", "127.0.0.1");
    url.to_string()
}

const COMMANDS: &[&str] = &[
    "setup", "migrate", "rollback", "redo", "status", "check", "reset", "nuke", "new", "lint",
    "diff", "pull", "baseline", "seed", "up", "down", "drop", "push", "studio",
];

#[test]
fn every_command_has_help_and_a_row_in_the_readme() {
    let readme = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("README.md")).unwrap();
    for command in COMMANDS {
        let out = Command::new(DB_BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "db {command} --help"
        );
        assert!(
            readme.contains(&format!("| `db {command}")),
            "README's CLI table lacks db {command}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_empties_tables_but_keeps_schema_and_history() {
    let t = TestDb::new().await;
    add_user(&t, "ann@example.com").await;
    let out = db(&t.url, &["reset"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // The escape hatch is logged with its reason, by default.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("database::system") && stderr.contains("db reset"),
        "{stderr}"
    );
    assert_eq!(t.count("users").await, 0);
    let status = migrate::status(&mut *t.conn().await, MigrationSet::embedded())
        .await
        .unwrap();
    assert!(status.is_up_to_date(), "history kept: {status:?}");
    add_user(&t, "ann@example.com").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nuke_drops_everything_and_migrate_rebuilds_it() {
    let t = TestDb::new().await;
    add_user(&t, "ann@example.com").await;
    let out = db(&t.url, &["nuke"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let mut conn = t.conn().await;
    assert_eq!(
        count_rows(&mut conn, "pg_tables WHERE schemaname = 'public'").await,
        0,
        "no table left, migration tables included"
    );
    assert_eq!(count_rows(&mut conn, "pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e'").await, 0);
    drop(conn);
    assert!(db(&t.url, &["migrate"], &[]).status.success());
    assert!(db(&t.url, &["check"], &[]).status.success());
}

/// Runs every destructive command against `url` with `env` and asserts the
/// refusal (exit 4) and that no row and no migration changed.
async fn assert_refused(t: &TestDb, url: &str, env: &[(&str, &str)], why: &str) {
    for args in [
        &["reset", "--yes"][..],
        &["nuke", "--yes"],
        &["rollback", "--yes"],
        &["redo", "--yes"],
    ] {
        let out = db(url, args, env);
        assert_eq!(
            out.status.code(),
            Some(4),
            "db {args:?} with {why} was not refused: {}",
            text(&out)
        );
        assert!(text(&out).contains("refused"), "{}", text(&out));
        assert_eq!(
            t.count("users").await,
            1,
            "db {args:?} with {why} changed rows"
        );
        let status = migrate::status(&mut *t.conn().await, MigrationSet::embedded())
            .await
            .unwrap();
        assert!(
            status.is_up_to_date(),
            "db {args:?} with {why} changed the migrations"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn production_environments_are_refused() {
    let t = TestDb::new().await;
    add_user(&t, "ann@example.com").await;
    assert_refused(
        &t,
        &t.url,
        &[("APP_ENV", "production")],
        "APP_ENV=production",
    )
    .await;
    assert_refused(
        &t,
        &t.url,
        &[("NODE_ENV", "production")],
        "NODE_ENV=production",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn production_urls_are_refused() {
    let t = TestDb::new().await;
    add_user(&t, "ann@example.com").await;
    for host in [
        "db-prod.internal",
        "db.example.com",
        "mydb.abc123.eu-west-1.rds.amazonaws.com.cn",
    ] {
        assert_refused(&t, &url_with_host(&t, host), &[], host).await;
    }
    let named = TestDb::new_tagged("prod").await;
    add_user(&named, "ann@example.com").await;
    assert_refused(&named, &named.url, &[], "a database name with prod").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_host_needs_yes_and_a_local_one_does_not() {
    let t = TestDb::new().await;
    add_user(&t, "ann@example.com").await;
    let remote = url_with_host(&t, "db.internal");
    let out = db(&remote, &["reset"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("--yes"), "{}", text(&out));
    assert_eq!(t.count("users").await, 1);

    // The same command reaches the database once confirmed: the refusals
    // above really stood between the command and the data.
    let out = db(&remote, &["reset", "--yes"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(t.count("users").await, 0);

    add_user(&t, "bob@example.com").await;
    let out = db(&url_with_host(&t, "localhost"), &["reset"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(t.count("users").await, 0);
    let out = db(&t.url, &["reset"], &[("APP_ENV", "development")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn new_creates_a_migration_that_diesel_and_db_both_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let dir_arg = dir.to_str().unwrap();
    let out = db(
        "postgres://unused/x",
        &["new", "add_locale", "--migrations-dir", dir_arg],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    // A name the rule refuses is a usage error (exit 2, as the README says),
    // with a name it takes.
    let out = db(
        "postgres://unused/x",
        &["new", "Add Users!", "--migrations-dir", dir_arg],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("try `db new add_users`"),
        "{}",
        text(&out)
    );

    let diesel = Command::new(std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into()))
        .args([
            "migration",
            "generate",
            "add_other",
            "--migration-dir",
            dir_arg,
        ])
        .current_dir(tmp.path())
        .output()
        .expect("diesel CLI on PATH (scripts/test installs it)");
    assert!(diesel.status.success(), "{}", text(&diesel));

    let set = MigrationSet::from_dir(&dir).unwrap();
    let names: Vec<&str> = set
        .iter()
        .map(|m| m.name.split_once('_').unwrap().1)
        .collect();
    assert!(
        names.contains(&"add_locale") && names.contains(&"add_other"),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_reports_a_column_added_by_hand_and_is_silent_otherwise() {
    let t = TestDb::new().await;
    let out = db(&t.url, &["diff"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("No drift"));

    t.conn()
        .await
        .batch_execute("ALTER TABLE users ADD COLUMN added_by_hand text")
        .await
        .unwrap();
    let out = db(&t.url, &["diff"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("+    added_by_hand text"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_prints_what_schema_rs_holds() {
    let t = TestDb::new().await;
    let out = common::run_db_in(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
        &t.url,
        &["pull"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::fs::read_to_string(Path::new(MANIFEST_DIR).join("src/schema.rs")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[tokio::test(flavor = "multi_thread")]
async fn baseline_adopts_a_database_whose_schema_exists() {
    let t = TestDb::empty().await;
    let set = MigrationSet::embedded();
    // The schema, built by hand without any bookkeeping.
    {
        let mut conn = t.conn().await;
        for m in set.iter() {
            conn.batch_execute(&m.up_sql).await.unwrap();
        }
    }
    let last = set.iter().last().unwrap().version.clone();
    let out = db(&t.url, &["baseline", &last], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let status = migrate::status(&mut *t.conn().await, set).await.unwrap();
    assert!(
        status
            .versions
            .iter()
            .all(|v| v.state == State::Applied && v.checksum_recorded),
        "{status:?}"
    );
    let out = db(&t.url, &["migrate"], &[]);
    assert!(
        text(&out).contains("No pending migrations"),
        "{}",
        text(&out)
    );
    let out = db(&t.url, &["baseline", "19990101000000"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("19990101000000"), "{}", text(&out));
}

#[test]
fn a_url_of_another_database_is_refused_naming_its_scheme() {
    let out = db(
        "postgres://unused/x",
        &["--database-url", "mysql://root@localhost/app", "status"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is a mysql:// URL"), "{}", text(&out));
    assert!(!text(&out).contains("names no database"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let t = TestDb::empty().await;
    let out = db(&t.url, &["migrate"], &[("RUST_LOG", "info")]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("applied migration"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "colour codes in a pipe: {stderr:?}"
    );
}
