//! The migration engine and the `db` command under faults and mistakes:
//! timeouts, a killed migrator, interrupted non-transactional migrations,
//! rollbacks that cannot be all-or-nothing, edited line endings, stale
//! binaries, configuration mistakes and the production guard. Each wait is
//! bounded to a few seconds so a regression fails instead of hanging.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{DB_BIN, TestDb, count_rows, run_db, run_db_in, wait_until};
use database::Conn;
use database::migrate::{self, MigrationError, MigrationSet, State};
use database::{Config, Db, Error};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a migration folder `name` with `up.sql`, `down.sql` and, for a
/// non-transactional one, its `metadata.toml`.
fn write_migration(dir: &Path, name: &str, up: &str, down: &str, in_transaction: bool) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), up).unwrap();
    std::fs::write(folder.join("down.sql"), down).unwrap();
    if !in_transaction {
        std::fs::write(folder.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    }
}

async fn connect(url: &str) -> Conn {
    Conn::establish(url).await.unwrap()
}

/// Whether some session holds the migration lock on this database.
async fn lock_held(conn: &mut Conn) -> bool {
    use diesel::sql_types::Bool;
    #[derive(diesel::QueryableByName)]
    struct Held {
        #[diesel(sql_type = Bool)]
        held: bool,
    }
    diesel::sql_query(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((classid::bigint << 32) | objid::bigint) = {}) AS held",
        migrate::LOCK_KEY
    ))
    .get_result::<Held>(conn)
    .await
    .unwrap()
    .held
}

fn config_for(url: &str) -> Config {
    let mut config = Config::new(url);
    config.pool_size = 2;
    config
}

// 1. Timeouts ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn migrations_ignore_the_applications_statement_timeout() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_slow",
        "SELECT pg_sleep(0.6);",
        "SELECT 1;",
        true,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut config = config_for(&t.url);
    config.statement_timeout = Some(Duration::from_millis(200));
    let db = Db::new(config).unwrap();
    let report = db
        .migrate_with(&set)
        .await
        .expect("not cancelled by DB_STATEMENT_TIMEOUT_MS");
    assert_eq!(report.applied, ["2030-01-01-000000_slow"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wait_for_the_migration_lock_is_bounded_and_names_the_holder() {
    let t = TestDb::empty().await;
    let mut holder = connect(&t.url).await;
    holder
        .batch_execute(&format!(
            "SET application_name = 'lock-holder-test'; SELECT pg_advisory_lock({})",
            migrate::LOCK_KEY
        ))
        .await
        .unwrap();
    let mut config = config_for(&t.url);
    config.migration_lock_timeout = Duration::from_secs(2);
    let db = Db::new(config).unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(15), db.migrate())
        .await
        .expect("the wait gives up by itself")
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_secs(2));
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Migration(MigrationError::LockTimeout { .. })),
        "{msg}"
    );
    assert!(msg.contains("DB_MIGRATION_LOCK_TIMEOUT_SECS"), "{msg}");
    assert!(
        msg.contains("lock-holder-test") && msg.contains("pid"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ddl_lock_wait_fails_with_advice_instead_of_queueing_forever() {
    let t = TestDb::empty().await;
    let mut busy = connect(&t.url).await;
    busy.batch_execute("CREATE TABLE busy (a int)")
        .await
        .unwrap();
    busy.batch_execute("BEGIN; LOCK TABLE busy IN ACCESS SHARE MODE;")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_alter",
        "ALTER TABLE busy ADD COLUMN b int;",
        "ALTER TABLE busy DROP COLUMN b;",
        true,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut config = config_for(&t.url);
    config.migration_ddl_lock_timeout = Duration::from_millis(500);
    let db = Db::new(config).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(15), db.migrate_with(&set))
        .await
        .expect("the DDL gives up by itself")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("lock timeout"), "{msg}");
    assert!(msg.contains("DB_MIGRATION_DDL_LOCK_TIMEOUT_MS"), "{msg}");
    assert!(
        msg.contains("migrations/2030-01-01-000000_alter/up.sql"),
        "{msg}"
    );
}

// 2. A killed migrator --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_migrator_releases_its_lock_within_seconds() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_slow",
        "SELECT pg_sleep(60);",
        "SELECT 1;",
        true,
    );
    let mut child = Command::new(DB_BIN)
        .args(["migrate", "--migrations-dir"])
        .arg(dir.path())
        .env("DATABASE_URL", &t.url)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watcher = connect(&t.url).await;
    wait_until(
        "db migrate takes the lock",
        Duration::from_secs(15),
        async || lock_held(&mut watcher).await,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let released = wait_until(
        "the server notices the dead client",
        Duration::from_secs(5),
        async || !lock_held(&mut watcher).await,
    )
    .await;
    eprintln!("lock released {released:?} after kill -9");
}

// 3. Interrupted non-transactional migrations ------------------------------

const PARTIAL_UP: &str = "\
CREATE TABLE pa0 (x int);
CREATE INDEX CONCURRENTLY pa_a ON pa (a);
CREATE TABLE pb (b int);
";

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_concurrent_migration_is_reported_and_resumed() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_partial",
        PARTIAL_UP,
        "DROP TABLE pb; DROP INDEX pa_a; DROP TABLE pa0;",
        false,
    );
    // A writer's open transaction on `pa` makes CREATE INDEX CONCURRENTLY
    // wait after it has committed its (still invalid) index: kill -9 lands there.
    let mut writer = connect(&t.url).await;
    writer
        .batch_execute("CREATE TABLE pa (a int)")
        .await
        .unwrap();
    writer
        .batch_execute("BEGIN; INSERT INTO pa VALUES (1);")
        .await
        .unwrap();
    let mut watcher = connect(&t.url).await;
    let mut child = Command::new(DB_BIN)
        .args(["migrate", "--migrations-dir"])
        .arg(dir.path())
        .env("DATABASE_URL", &t.url)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let building = "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%CREATE INDEX CONCURRENTLY pa_a%' \
                    AND pid <> pg_backend_pid()";
    wait_until(
        "the index build waits for the writer",
        Duration::from_secs(15),
        async || {
            diesel::sql_query(format!("{building} AND wait_event_type = 'Lock'"))
                .execute(&mut watcher)
                .await
                .unwrap()
                == 1
        },
    )
    .await;
    child.kill().unwrap(); // SIGKILL, mid-statement 2
    child.wait().unwrap();
    // The server notices the dead client and cancels the build, leaving the
    // invalid index; only then does the writer finish.
    wait_until(
        "the build is cancelled",
        Duration::from_secs(5),
        async || {
            diesel::sql_query(building)
                .execute(&mut watcher)
                .await
                .unwrap()
                == 0
        },
    )
    .await;
    writer.batch_execute("COMMIT").await.unwrap();

    let dir_arg = dir.path().to_str().unwrap();
    let status = run_db(&t.url, &["status", "--migrations-dir", dir_arg], &[]);
    let shown = text(&status);
    assert!(shown.contains("partial"), "{shown}");
    assert!(shown.contains("statement 1 of 3"), "{shown}");
    assert!(
        shown.contains("INVALID index") && shown.contains("pa_a"),
        "{shown}"
    );
    let check = run_db(&t.url, &["check", "--migrations-dir", dir_arg], &[]);
    assert_eq!(check.status.code(), Some(3), "{}", text(&check));

    let again = run_db(&t.url, &["migrate", "--migrations-dir", dir_arg], &[]);
    assert!(again.status.success(), "{}", text(&again));
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let status = migrate::status(&mut watcher, &set).await.unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert!(
        status.invalid_indexes.is_empty(),
        "{:?}",
        status.invalid_indexes
    );
    assert_eq!(count_rows(&mut watcher, "pb").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_non_transactional_statement_says_what_stays_and_resumes() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let broken = "CREATE TABLE qa (a int);\nCREATE INDEX CONCURRENTLY qa_a ON qa (a);\n\nCREATE TABLE qb (b int, b int);\n";
    write_migration(
        dir.path(),
        "2030-01-01-000000_broken",
        broken,
        "DROP TABLE IF EXISTS qb; DROP TABLE qa;",
        false,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut conn = connect(&t.url).await;
    let err = migrate::run(&mut conn, &set).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("migrations/2030-01-01-000000_broken/up.sql:4"),
        "{msg}"
    );
    assert!(msg.contains("statement 3 of 3"), "{msg}");
    assert!(msg.contains("statements 1 to 2 stay applied"), "{msg}");
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert_eq!(status.versions[0].state, State::PartiallyApplied);
    assert_eq!(status.versions[0].progress, Some((2, 3)));

    // An edit to a statement that already ran is refused, with instructions.
    let edited = broken.replace("CREATE TABLE qa (a int)", "CREATE TABLE qa (a bigint)");
    write_migration(
        dir.path(),
        "2030-01-01-000000_broken",
        &edited,
        "DROP TABLE IF EXISTS qb; DROP TABLE qa;",
        false,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let refused = migrate::run(&mut conn, &set).await.unwrap_err().to_string();
    assert!(
        refused.contains("interrupted after statement 2"),
        "{refused}"
    );
    assert!(
        refused.contains("__database_migration_progress"),
        "{refused}"
    );

    // Statement 3 fixed: it resumes there (1 and 2 would fail: they exist).
    let fixed = broken.replace("b int, b int", "b int");
    write_migration(
        dir.path(),
        "2030-01-01-000000_broken",
        &fixed,
        "DROP TABLE IF EXISTS qb; DROP TABLE qa;",
        false,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let report = migrate::run(&mut conn, &set).await.unwrap();
    assert_eq!(report.applied, ["2030-01-01-000000_broken"]);
    assert!(
        migrate::status(&mut conn, &set)
            .await
            .unwrap()
            .is_up_to_date()
    );
    assert_eq!(count_rows(&mut conn, "qb").await, 0);
}

// 4. Rollback promises ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_of_several_is_all_or_nothing() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_a",
        "CREATE TABLE ra (a int);",
        "DROP TABLE no_such_table;",
        true,
    );
    write_migration(
        dir.path(),
        "2030-01-02-000000_b",
        "CREATE TABLE rb (b int);",
        "DROP TABLE rb;",
        true,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut conn = connect(&t.url).await;
    migrate::run(&mut conn, &set).await.unwrap();
    let err = migrate::rollback(&mut conn, &set, 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("migrations/2030-01-01-000000_a/down.sql"),
        "{err}"
    );
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert_eq!(
        status.count(State::Applied),
        2,
        "the newer one was not reverted either"
    );
    assert_eq!(count_rows(&mut conn, "rb").await, 0, "rb still exists");

    // More steps than applied: refused with the count, nothing reverted.
    let out = run_db(
        &t.url,
        &[
            "rollback",
            "--steps",
            "999",
            "--migrations-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("only 2 are applied"), "{}", text(&out));
    assert!(
        !text(&out).contains("refusing to migrate"),
        "{}",
        text(&out)
    );
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert_eq!(status.count(State::Applied), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_across_a_non_transactional_migration_is_refused_up_front() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_a",
        "CREATE TABLE na (a int);\nCREATE INDEX CONCURRENTLY na_a ON na (a);",
        "DROP INDEX CONCURRENTLY na_a;\nDROP TABLE na;",
        false,
    );
    write_migration(
        dir.path(),
        "2030-01-02-000000_b",
        "CREATE TABLE nb (b int);",
        "DROP TABLE nb;",
        true,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let mut conn = connect(&t.url).await;
    migrate::run(&mut conn, &set).await.unwrap();
    let err = migrate::rollback(&mut conn, &set, 2).await.unwrap_err();
    assert!(matches!(err, MigrationError::MixedRollback { .. }), "{err}");
    assert_eq!(
        migrate::status(&mut conn, &set)
            .await
            .unwrap()
            .count(State::Applied),
        2
    );
    // One at a time works.
    assert_eq!(
        migrate::rollback(&mut conn, &set, 1).await.unwrap().len(),
        1
    );
    assert_eq!(
        migrate::rollback(&mut conn, &set, 1).await.unwrap().len(),
        1
    );
}

// 5. Error messages ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_statement_names_file_and_line_once() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_typo",
        "-- a comment\nCREATE TABLE ok (a int);\nCREATE TABEL broken (a int);\n",
        "DROP TABLE ok;",
        true,
    );
    let out = run_db(
        &t.url,
        &["migrate", "--migrations-dir", dir.path().to_str().unwrap()],
        &[],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("migrations/2030-01-01-000000_typo/up.sql:3"),
        "{all}"
    );
    assert_eq!(
        all.matches("syntax error at or near").count(),
        1,
        "said once: {all}"
    );
}

// 6. Checksums that do not cry wolf --------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn line_endings_and_trailing_blanks_are_not_edits_but_a_character_is() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    let up = "CREATE TABLE ce (a int);\nCREATE INDEX ce_a ON ce (a);\n";
    write_migration(
        dir.path(),
        "2030-01-01-000000_ce",
        up,
        "DROP TABLE ce;",
        true,
    );
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    assert!(
        run_db(&t.url, &["migrate", "--migrations-dir", &dir_arg], &[])
            .status
            .success()
    );
    let noisy = format!("\u{feff}{}  \r\n\r\n", up.replace('\n', " \r\n").trim_end());
    write_migration(
        dir.path(),
        "2030-01-01-000000_ce",
        &noisy,
        "DROP TABLE ce;",
        true,
    );
    let check = run_db(&t.url, &["check", "--migrations-dir", &dir_arg], &[]);
    assert!(
        check.status.success(),
        "CRLF/BOM/blanks are not edits: {}",
        text(&check)
    );
    write_migration(
        dir.path(),
        "2030-01-01-000000_ce",
        &up.replace("(a)", "(a )"),
        "DROP TABLE ce;",
        true,
    );
    let check = run_db(&t.url, &["check", "--migrations-dir", &dir_arg], &[]);
    assert_eq!(check.status.code(), Some(3), "{}", text(&check));
    assert!(text(&check).contains("modified"), "{}", text(&check));
    let migrate = run_db(&t.url, &["migrate", "--migrations-dir", &dir_arg], &[]);
    assert_eq!(migrate.status.code(), Some(1));
    assert!(
        text(&migrate).contains("20300101000000"),
        "{}",
        text(&migrate)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_folder_is_reported() {
    let t = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_first_name",
        "CREATE TABLE rn (a int);",
        "DROP TABLE rn;",
        true,
    );
    let dir_arg = dir.path().to_str().unwrap().to_owned();
    assert!(
        run_db(&t.url, &["migrate", "--migrations-dir", &dir_arg], &[])
            .status
            .success()
    );
    std::fs::rename(
        dir.path().join("2030-01-01-000000_first_name"),
        dir.path().join("2030-01-01-000000_second_name"),
    )
    .unwrap();
    let status = text(&run_db(
        &t.url,
        &["status", "--migrations-dir", &dir_arg],
        &[],
    ));
    assert!(
        status.contains("renamed: applied as 2030-01-01-000000_first_name"),
        "{status}"
    );
}

/// Whether the diesel CLI is installed; when not, says so (and fails under
/// `DB_TEST_REQUIRE_ALL`).
fn diesel_cli_present() -> bool {
    if Command::new("diesel").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
        "the diesel CLI is required"
    );
    eprintln!("skipped: no diesel CLI (scripts/diesel-cli installs it)");
    false
}

// 7, 8, 10. The binary, the folder and the project --------------------------------

/// A project folder: diesel.toml, the crate's migrations and a schema file.
fn project_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    std::fs::copy(root.join("diesel.toml"), tmp.path().join("diesel.toml")).unwrap();
    std::fs::create_dir_all(tmp.path().join("src")).unwrap();
    let copy = Command::new("cp")
        .arg("-r")
        .arg(root.join("migrations"))
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(copy.success());
    tmp
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binary_older_than_the_folder_says_so_and_how_to_proceed() {
    let t = TestDb::new().await;
    let project = project_copy();
    write_migration(
        &project.path().join("migrations"),
        "2099-01-01-000000_newer",
        "SELECT 1;",
        "SELECT 1;",
        true,
    );
    let out = run_db_in(project.path(), &t.url, &["migrate"], &[]);
    let all = text(&out);
    assert!(
        all.contains("differs from the migrations built into this `db`"),
        "{all}"
    );
    assert!(
        all.contains("2099-01-01-000000_newer") && all.contains("--migrations-dir"),
        "{all}"
    );
}

#[test]
fn new_and_lint_need_no_database_and_lint_needs_migrations() {
    let project = project_copy();
    let run = |dir: &Path, args: &[&str]| {
        Command::new(DB_BIN)
            .args(args)
            .env_remove("DATABASE_URL")
            .current_dir(dir)
            .output()
            .unwrap()
    };
    let new = run(&project.path().join("src"), &["new", "add_thing"]);
    assert!(new.status.success(), "{}", text(&new));
    assert!(
        std::fs::read_dir(project.path().join("migrations"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("_add_thing"))
    );
    let lint = run(project.path(), &["lint"]);
    assert!(lint.status.code().is_some(), "{}", text(&lint));
    assert!(!text(&lint).contains("DATABASE_URL"), "{}", text(&lint));

    let elsewhere = tempfile::tempdir().unwrap();
    let lint = run(elsewhere.path(), &["lint"]);
    assert_ne!(lint.status.code(), Some(0), "{}", text(&lint));
    assert!(text(&lint).contains("diesel.toml"), "{}", text(&lint));
    let new = run(elsewhere.path(), &["new", "x"]);
    assert_ne!(new.status.code(), Some(0));
    assert!(
        !elsewhere.path().join("migrations").exists(),
        "no stray ./migrations"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_keeps_the_schema_file_in_step() {
    if !diesel_cli_present() {
        return;
    }
    let t = TestDb::new().await;
    let project = project_copy();
    let schema = project.path().join("src/schema.rs");
    std::fs::write(&schema, "stale").unwrap();
    let out = run_db_in(project.path(), &t.url, &["rollback"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let regenerated = std::fs::read_to_string(&schema).unwrap();
    assert!(regenerated.contains("diesel::table!"), "{regenerated}");
    // The file is what the rolled-back database prints.
    let pulled = run_db_in(project.path(), &t.url, &["pull"], &[]);
    assert!(pulled.status.success(), "{}", text(&pulled));
    assert_eq!(regenerated, String::from_utf8_lossy(&pulled.stdout));
}

// 9. diesel first, then db --------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn db_status_after_diesel_migration_run_reports_everything_applied() {
    if !diesel_cli_present() {
        return;
    }
    let t = TestDb::empty().await;
    let out = Command::new("diesel")
        .args(["migration", "run", "--migration-dir"])
        .arg(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("migrations"))
        .env("DATABASE_URL", &t.url)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = run_db(&t.url, &["status"], &[]);
    let shown = text(&status);
    let n = MigrationSet::embedded().len();
    assert!(
        shown.contains(&format!("{n} applied, 0 pending")),
        "{shown}"
    );
}

// 11, 12. Pending migrations named; --to ---------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn seed_on_an_unmigrated_database_names_the_pending_migrations() {
    let t = TestDb::empty().await;
    let out = run_db(&t.url, &["seed"], &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("db migrate") && all.contains("create_auth"),
        "{all}"
    );
    // The library says it too, for the query that hits a missing table.
    let mut conn = t.conn().await;
    let err = database::auth::users::find_by_email(&mut conn, "a@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch(_)), "{err:?}");
    assert!(err.to_string().contains("migrations pending"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_names_the_pending_migrations_above_its_output() {
    let t = TestDb::empty().await;
    let out = run_db(&t.url, &["diff"], &[]);
    let all = text(&out);
    assert!(all.contains("not applied to this database yet"), "{all}");
    assert!(
        all.contains("create_auth") && all.contains("db migrate"),
        "{all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn to_accepts_every_form_and_never_goes_backwards() {
    let t = TestDb::empty().await;
    let set = MigrationSet::embedded();
    let second = set.iter().nth(2).unwrap();
    let dashed = second.name.split('_').next().unwrap().to_owned();
    let out = run_db(&t.url, &["migrate", "--to", &dashed], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&second.name));
    let out = run_db(&t.url, &["migrate", "--to", &second.name], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("already applied") && text(&out).contains("db rollback"),
        "{}",
        text(&out)
    );
    let out = run_db(&t.url, &["migrate", "--to", "1999-01-01-000000"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

// 13-15, 17, 18. Configuration and connections ------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn configuration_mistakes_are_not_outages() {
    let base = common::url_of("postgres");
    let missing_db = common::url_of("no_such_database_here");
    let db = Db::new(config_for(&missing_db)).unwrap();
    let err = db.conn().await.map(drop).unwrap_err();
    assert!(
        matches!(err, Error::Config(_)) && !err.is_retryable(),
        "{err:?}"
    );
    assert!(err.to_string().contains("db setup"), "{err}");

    let mut unknown_role = url::Url::parse(&base).unwrap();
    unknown_role.set_username("no_such_role_here").unwrap();
    let err = Db::new(config_for(unknown_role.as_str()))
        .unwrap()
        .conn()
        .await
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");

    let err = Db::new(config_for("postgres://u@127.0.0.1:99999/x"))
        .unwrap()
        .conn()
        .await
        .map(drop)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");

    let err = Db::new(config_for("postgres://u@127.0.0.1:5432")).unwrap_err();
    assert!(err.to_string().contains("names no database"), "{err}");

    // A refused connection is an outage.
    let err = Db::new(config_for("postgres://u@127.0.0.1:1/x"))
        .unwrap()
        .conn()
        .await
        .map(drop)
        .unwrap_err();
    assert!(
        matches!(err, Error::Unavailable(_)) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        err.to_string().to_lowercase().contains("refused"),
        "the cause is said: {err}"
    );

    let out = run_db(&missing_db, &["status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("db setup"), "{}", text(&out));
}

#[test]
fn a_multi_host_password_is_never_printed() {
    for url in [
        "postgres://app:hunter2multi@127.0.0.1:1,127.0.0.1:2/app",
        "postgres://app:hunter2#hash@127.0.0.1:1/app",
        "host=127.0.0.1 port=1 dbname=app password=hunter2kv",
    ] {
        for args in [&["status"][..], &["migrate"], &["seed"], &["diff"]] {
            let out = Command::new(DB_BIN)
                .args(args)
                .env("DATABASE_URL", url)
                .env("DB_CONNECT_TIMEOUT_SECS", "2")
                .current_dir(std::env::temp_dir())
                .output()
                .unwrap();
            let all = text(&out);
            assert!(!all.contains("hunter2"), "{args:?} {url}: {all}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_is_a_connect_timeout_not_a_full_pool() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept and hold each connection without a word, for a few seconds.
        listener.set_nonblocking(true).unwrap();
        let mut open = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            if let Ok((s, _)) = listener.accept() {
                open.push(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut config = config_for(&format!("postgres://u@127.0.0.1:{port}/x"));
    config.pool_size = 1;
    config.connect_timeout = Duration::from_secs(3);
    config.wait_timeout = Duration::from_secs(1);
    let db = Db::new(config).unwrap();
    let first = db.clone();
    let opening = tokio::spawn(async move { first.conn().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = db.conn().await.map(drop).unwrap_err().to_string();
    assert!(!err.contains("are in use"), "{err}");
    assert!(err.contains("still being opened"), "{err}");
    let err = opening.await.unwrap().unwrap_err().to_string();
    assert!(err.contains("connect timeout"), "{err}");
    held.join().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn deadlocks_and_timeouts_are_classified() {
    let t = TestDb::empty().await;
    let mut setup = connect(&t.url).await;
    setup
        .batch_execute(
            "CREATE TABLE dl (id int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0);",
        )
        .await
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |first: i32, second: i32| {
        let url = t.url.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            let mut conn = connect(&url).await;
            conn.transaction::<_, Error, _>(async |conn| {
                diesel::sql_query(format!("UPDATE dl SET v = v + 1 WHERE id = {first}"))
                    .execute(conn)
                    .await?;
                barrier.wait().await;
                diesel::sql_query(format!("UPDATE dl SET v = v + 1 WHERE id = {second}"))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await
        })
    };
    let (a, b) = (run(1, 2), run(2, 1));
    let results = [a.await.unwrap(), b.await.unwrap()];
    let deadlocked: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(deadlocked.len(), 1, "{results:?}");
    assert!(
        matches!(
            deadlocked[0],
            Error::RetryTransaction {
                reason: database::RetryReason::Deadlock,
                ..
            }
        ),
        "{:?}",
        deadlocked[0]
    );
    assert!(deadlocked[0].is_retryable());

    let mut config = config_for(&t.url);
    config.statement_timeout = Some(Duration::from_millis(100));
    let db = Db::new(config).unwrap();
    let err: Error = diesel::sql_query("SELECT pg_sleep(1)")
        .execute(&mut *db.conn().await.unwrap())
        .await
        .map_err(Error::from)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: database::TimeoutKind::Statement,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

// 19, 20. The production guard ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_refuses_before_touching_anything() {
    let t = TestDb::new().await;
    let user = common::user(&t, "guarded@example.com").await;
    let _ = user;
    let users_before = t.count("users").await;
    // A URL whose host= says "elsewhere" but whose connection would reach
    // this very test database through hostaddr: only the guard saves it.
    let elsewhere = format!(
        "postgres:///{}?host=db.internal&hostaddr=127.0.0.1&port={}&user=postgres",
        t.name,
        url::Url::parse(&t.url).unwrap().port().unwrap_or(5432)
    );
    for (url, args, env) in [
        (t.url.as_str(), &["reset"][..], &[("NODE_ENV", "prod")][..]),
        (
            t.url.as_str(),
            &["reset", "--yes"][..],
            &[("APP_ENV", "Production-EU")][..],
        ),
        (elsewhere.as_str(), &["nuke"][..], &[][..]),
        (t.url.as_str(), &["rollback", "--steps", "999"][..], &[][..]),
    ] {
        let out = run_db(url, args, env);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} {env:?}: {}",
            text(&out)
        );
        assert!(
            text(&out).contains("Nothing was changed")
                || text(&out).contains("nothing was reverted"),
            "{}",
            text(&out)
        );
    }
    assert_eq!(t.count("users").await, users_before);
    let status = migrate::status(&mut *t.conn().await, MigrationSet::embedded())
        .await
        .unwrap();
    assert!(status.is_up_to_date());
}

// 16. A stalled network ------------------------------------------------------------------

/// A TCP proxy on loopback in front of the test server that can stop
/// forwarding (both directions) while its sockets stay open: what a hung
/// userspace proxy or pooler looks like to the client.
struct StallingProxy {
    port: u16,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StallingProxy {
    async fn start(upstream: (String, u16)) -> StallingProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(upstream.clone())
                    .await
                    .unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)].map(|(r, w)| (r, w)) {
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 16 * 1024];
                        // Bounded: the test's connections live seconds.
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while Instant::now() < deadline {
                            if std::sync::atomic::AtomicBool::load(&flag, Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                            let n = match tokio::time::timeout(
                                Duration::from_millis(50),
                                from.read(&mut buf),
                            )
                            .await
                            {
                                Err(_) => continue,
                                Ok(Ok(0)) | Ok(Err(_)) => break,
                                Ok(Ok(n)) => n,
                            };
                            // Bytes read just as the stall began are held too.
                            while std::sync::atomic::AtomicBool::load(&flag, Ordering::Relaxed)
                                && Instant::now() < deadline
                            {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        StallingProxy { port, stalled }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_network_path_is_bounded_by_the_query_deadline() {
    let t = TestDb::new().await;
    let server = url::Url::parse(&t.url).unwrap();
    let proxy = StallingProxy::start((
        server.host_str().unwrap().to_owned(),
        server.port().unwrap_or(5432),
    ))
    .await;
    let mut through = server.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.port)).unwrap();
    let mut config = config_for(through.as_str());
    config.query_timeout = Duration::from_millis(800);
    config.statement_timeout = Some(Duration::from_millis(100)); // the server never sees the query
    let db = Db::new(config).unwrap();
    let select = async |conn: &mut database::Conn| {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .await
            .map_err(Error::from)
    };
    assert_eq!(db.run(select).await.unwrap(), 1);
    assert_eq!(db.pool_status().size, 1);

    proxy.stall(true);
    let started = Instant::now();
    let err = db.run(select).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(
            err,
            Error::Timeout {
                kind: database::TimeoutKind::Client,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(waited < Duration::from_secs(3), "bounded: {waited:?}");
    assert_eq!(
        db.pool_status().size,
        0,
        "the stalled connection was discarded"
    );
    proxy.stall(false);
    assert_eq!(db.run(select).await.unwrap(), 1, "a fresh connection works");

    // The deadline during COMMIT: the outcome is unknown, and said so.
    let mut setup = connect(&t.url).await;
    setup
        .batch_execute("CREATE TABLE stalled (a int)")
        .await
        .unwrap();
    let err = db
        .run(async |conn| {
            conn.transaction::<_, Error, _>(async |conn| {
                diesel::sql_query("INSERT INTO stalled VALUES (1)")
                    .execute(conn)
                    .await?;
                proxy.stall(true); // the COMMIT that follows gets no answer
                Ok(())
            })
            .await
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitOutcomeUnknown(_)), "{err:?}");
    assert!(!err.is_retryable());
    proxy.stall(false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_single_statement_concurrent_index_is_rebuilt_on_rerun() {
    let t = TestDb::empty().await;
    let mut conn = connect(&t.url).await;
    conn.batch_execute("CREATE TABLE dup (a int); INSERT INTO dup VALUES (1), (1);")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A comment first: the repair must still recognise the statement.
    let up = "-- one value per row\nCREATE UNIQUE INDEX CONCURRENTLY dup_a ON dup (a);\n";
    write_migration(
        dir.path(),
        "2030-01-01-000000_unique",
        up,
        "DROP INDEX CONCURRENTLY dup_a;",
        false,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let err = migrate::run(&mut conn, &set).await.unwrap_err().to_string();
    assert!(err.contains("INVALID index dup_a"), "{err}");
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert_eq!(
        status.versions[0].state,
        State::PartiallyApplied,
        "{status:?}"
    );
    assert_eq!(status.invalid_indexes, ["dup_a"]);

    conn.batch_execute("DELETE FROM dup WHERE ctid <> (SELECT min(ctid) FROM dup)")
        .await
        .unwrap();
    let report = migrate::run(&mut conn, &set)
        .await
        .expect("the re-run drops the invalid index and builds it");
    assert_eq!(report.applied.len(), 1);
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert!(
        status.is_up_to_date() && status.invalid_indexes.is_empty(),
        "{status:?}"
    );
}

// 17. Exactly once -------------------------------------------------------------------

/// A statement of a non-transactional migration and the record that it ran
/// commit together: a failure between the two (here the progress record
/// refuses, once, through a trigger) leaves neither, and the resumed run
/// applies the statement once. (It used to commit the statement alone, so
/// the resume ran `n = n + 1` a second time.)
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_between_a_statement_and_its_progress_record_does_not_run_it_twice() {
    let t = TestDb::empty().await;
    let mut conn = connect(&t.url).await;
    let dir = tempfile::tempdir().unwrap();
    write_migration(
        dir.path(),
        "2030-01-01-000000_counter",
        "CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0);",
        "DROP TABLE counter;",
        true,
    );
    migrate::run(&mut conn, &MigrationSet::from_dir(dir.path()).unwrap())
        .await
        .unwrap();
    conn.batch_execute(
        "CREATE TABLE fault (armed bool NOT NULL); INSERT INTO fault VALUES (true);
         CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.statements_done = 1 AND (SELECT armed FROM fault) THEN
                 RAISE EXCEPTION 'injected: the progress record fails';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_once BEFORE INSERT OR UPDATE ON __database_migration_progress
             FOR EACH ROW EXECUTE FUNCTION fail_once();",
    )
    .await
    .unwrap();
    write_migration(
        dir.path(),
        "2030-01-02-000000_backfill",
        "UPDATE counter SET n = n + 1;\nSELECT 1;\n",
        "UPDATE counter SET n = n - 1;",
        false,
    );
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let err = migrate::run(&mut conn, &set).await.unwrap_err().to_string();
    assert!(err.contains("injected"), "{err}");
    conn.batch_execute("UPDATE fault SET armed = false")
        .await
        .unwrap();
    migrate::run(&mut conn, &set)
        .await
        .expect("the resumed run completes");
    #[derive(diesel::QueryableByName)]
    struct Counter {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
    }
    let counter: Counter = diesel::sql_query("SELECT n FROM counter")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(counter.n, 1, "the backfill ran exactly once");
    assert!(
        migrate::status(&mut conn, &set)
            .await
            .unwrap()
            .is_up_to_date()
    );
}
