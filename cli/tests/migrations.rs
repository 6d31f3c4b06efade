//! The migration engine against a real PostgreSQL: concurrency, checksums,
//! reversibility, non-transactional migrations and the `db` binary. Just
//! over 600 lines: the engine's behaviour through `db` is one subject, and
//! its tests share the copied-migrations helpers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{TestDb, count_rows};
use database::Conn;
use database::migrate::{self, MigrationError, MigrationSet, Problem, State};
use diesel_async::{AsyncConnection, RunQueryDsl};

use common::DB_BIN;

fn migrations_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("migrations")
}

/// Runs `db` against `url` with the given arguments.
fn db_cmd(url: &str, args: &[&str]) -> Output {
    common::run_db(url, args, &[])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of the project's migrations in a temporary folder, to tamper with.
fn copy_migrations() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(migrations_dir()).unwrap() {
        let entry = entry.unwrap();
        if !entry.path().is_dir() {
            continue;
        }
        let target = tmp.path().join(entry.file_name());
        std::fs::create_dir(&target).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    tmp
}

async fn versions_recorded(conn: &mut Conn) -> Vec<(String, i64)> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        version: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT version, count(*) AS n FROM __diesel_schema_migrations GROUP BY version ORDER BY version",
    )
    .load::<Row>(conn)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.version, r.n))
    .collect()
}

fn embedded_versions() -> Vec<String> {
    MigrationSet::embedded()
        .iter()
        .map(|m| m.version.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_processes_migrate_an_empty_database_at_once() {
    let t = TestDb::empty().await;
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(DB_BIN)
                .arg("migrate")
                .env("DATABASE_URL", &t.url)
                .env_remove("DB_MIGRATIONS_DIR")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(out.status.success(), "a db migrate failed: {}", text(out));
    }
    let applied_by: usize = outputs
        .iter()
        .filter(|o| text(o).contains("Applied "))
        .count();
    assert_eq!(
        applied_by, 1,
        "exactly one process applies, the others find nothing pending"
    );

    let mut conn = t.conn().await;
    let recorded = versions_recorded(&mut conn).await;
    assert_eq!(
        recorded.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(),
        embedded_versions()
    );
    assert!(recorded.iter().all(|(_, n)| *n == 1), "{recorded:?}");
    assert_eq!(
        count_rows(&mut conn, "__database_migration_checksums").await as usize,
        MigrationSet::embedded().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_tasks_calling_db_migrate_apply_each_version_once() {
    let t = TestDb::empty().await;
    let runs = (0..6).map(|_| {
        let db = t.owner.clone();
        tokio::spawn(async move { db.migrate().await })
    });
    let reports: Vec<_> = futures::future::join_all(runs).await;
    let applied: usize = reports
        .into_iter()
        .map(|r| r.unwrap().unwrap().applied.len())
        .sum();
    assert_eq!(applied, MigrationSet::embedded().len());
    let recorded = versions_recorded(&mut *t.conn().await).await;
    assert!(recorded.iter().all(|(_, n)| *n == 1));
    // And now it is up to date.
    assert!(t.owner.migrate().await.unwrap().applied.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_applied_migration_is_refused_naming_the_version() {
    let t = TestDb::empty().await;
    let dir = copy_migrations();
    let dir_arg = dir.path().to_str().unwrap();
    let out = db_cmd(&t.url, &["migrate", "--migrations-dir", dir_arg]);
    assert!(out.status.success(), "{}", text(&out));

    let victim = MigrationSet::embedded().iter().last().unwrap().clone();
    let up = dir.path().join(&victim.name).join("up.sql");
    let mut sql = std::fs::read_to_string(&up).unwrap();
    sql.push_str("\n-- an innocent-looking edit\n");
    std::fs::write(&up, sql).unwrap();

    for command in ["migrate", "check"] {
        let out = db_cmd(&t.url, &[command, "--migrations-dir", dir_arg]);
        assert!(
            !out.status.success(),
            "db {command} accepted a modified migration"
        );
        assert!(
            text(&out).contains(&victim.version),
            "db {command} does not name {}: {}",
            victim.version,
            text(&out)
        );
    }
    // The refusal names the development answer too.
    let out = db_cmd(&t.url, &["migrate", "--migrations-dir", dir_arg]);
    assert!(text(&out).contains("`db push`"), "{}", text(&out));

    // The library says the same, with the version in a typed problem.
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    let err = t.owner.migrate_with(&set).await.unwrap_err();
    match err {
        database::Error::Migration(MigrationError::Inconsistent { problems }) => {
            assert!(
                matches!(&problems[..], [Problem::Modified { version, .. }] if *version == victim.version)
            );
        }
        other => panic!("expected Inconsistent, got {other:?}"),
    }
    let status = migrate::status(&mut *t.conn().await, &set).await.unwrap();
    assert_eq!(status.count(State::Modified), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_applied_migration_missing_locally_is_refused() {
    let t = TestDb::empty().await;
    let dir = copy_migrations();
    let dir_arg = dir.path().to_str().unwrap();
    assert!(
        db_cmd(&t.url, &["migrate", "--migrations-dir", dir_arg])
            .status
            .success()
    );

    let victim = MigrationSet::embedded().iter().last().unwrap().clone();
    std::fs::remove_dir_all(dir.path().join(&victim.name)).unwrap();
    for command in ["migrate", "check"] {
        let out = db_cmd(&t.url, &[command, "--migrations-dir", dir_arg]);
        assert!(!out.status.success());
        assert!(text(&out).contains(&victim.version), "{}", text(&out));
        assert!(text(&out).contains("missing"), "{}", text(&out));
    }
}

/// The schema as `db diff` compares it: pg_dump's DDL without the bookkeeping
/// tables, comments, settings and per-run `\restrict` keys.
fn schema_dump(url: &str) -> String {
    database_cli::drift::schema_dump(url).expect("pg_dump is installed (postgresql-client)")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_migration_survives_up_down_up_with_an_identical_schema() {
    let t = TestDb::empty().await;
    let set = MigrationSet::embedded();
    let mut conn = Conn::establish(&t.url).await.unwrap();
    let mut before = schema_dump(&t.url);
    for m in set.iter() {
        let report = migrate::run_to(&mut conn, set, Some(&m.version))
            .await
            .unwrap();
        assert_eq!(report.applied, vec![m.name.clone()]);
        let after = schema_dump(&t.url);
        assert_ne!(before, after, "{} changed nothing", m.name);

        let reverted = migrate::rollback(&mut conn, set, 1).await.unwrap();
        assert_eq!(reverted, vec![m.name.clone()]);
        assert_eq!(
            schema_dump(&t.url),
            before,
            "down.sql of {} does not restore the schema",
            m.name
        );

        migrate::run_to(&mut conn, set, Some(&m.version))
            .await
            .unwrap();
        assert_eq!(
            schema_dump(&t.url),
            after,
            "{} applied twice gives another schema",
            m.name
        );
        before = after;
    }
    assert!(
        migrate::status(&mut conn, set)
            .await
            .unwrap()
            .is_up_to_date()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_outside_a_transaction_creates_indexes_concurrently() {
    let t = TestDb::empty().await;
    let dir = copy_migrations();
    let extra = dir
        .path()
        .join("2099-01-01-000000_index_sessions_concurrently");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(extra.join("metadata.toml"), "run_in_transaction = false\n").unwrap();
    // Two statements: as one string they would form an implicit transaction,
    // where PostgreSQL refuses CONCURRENTLY.
    std::fs::write(
        extra.join("up.sql"),
        "CREATE INDEX CONCURRENTLY sessions_created_at_idx ON sessions (created_at);\n\
         CREATE INDEX CONCURRENTLY accounts_created_at_idx ON accounts (created_at);\n",
    )
    .unwrap();
    std::fs::write(
        extra.join("down.sql"),
        "DROP INDEX CONCURRENTLY sessions_created_at_idx;\nDROP INDEX CONCURRENTLY accounts_created_at_idx;\n",
    )
    .unwrap();
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    assert!(!set.get("20990101000000").unwrap().run_in_transaction);

    let report = t.owner.migrate_with(&set).await.unwrap();
    assert_eq!(
        report.applied.last().unwrap(),
        "2099-01-01-000000_index_sessions_concurrently"
    );

    let mut conn = t.conn().await;
    let valid_indexes = || {
        diesel::sql_query(
            "SELECT count(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname IN ('sessions_created_at_idx', 'accounts_created_at_idx') AND i.indisvalid",
        )
    };
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    assert_eq!(
        valid_indexes()
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n,
        2
    );

    let reverted = migrate::rollback(&mut conn, &set, 1).await.unwrap();
    assert_eq!(reverted.len(), 1);
    assert_eq!(
        valid_indexes()
            .get_result::<Count>(&mut conn)
            .await
            .unwrap()
            .n,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_migration_rolls_back_and_names_itself() {
    let t = TestDb::empty().await;
    let dir = copy_migrations();
    let bad = dir.path().join("2099-01-01-000000_broken");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("up.sql"),
        "CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n",
    )
    .unwrap();
    std::fs::write(bad.join("down.sql"), "DROP TABLE half_done;\n").unwrap();
    let set = MigrationSet::from_dir(dir.path()).unwrap();

    let err = t.owner.migrate_with(&set).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("2099-01-01-000000_broken"), "{message}");
    assert!(message.contains("no_such_table"), "{message}");
    let mut conn = t.conn().await;
    let status = migrate::status(&mut conn, &set).await.unwrap();
    assert_eq!(
        status.count(State::Pending),
        1,
        "the broken migration stays pending"
    );
    use diesel::sql_types::Bool;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        e: bool,
    }
    let half: Exists = diesel::sql_query("SELECT to_regclass('half_done') IS NOT NULL AS e")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(
        !half.e,
        "the transaction of the failed migration was rolled back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_up_to_date_database_costs_one_statement() {
    use std::sync::{Arc, Mutex};
    let t = TestDb::new().await;
    let mut conn = Conn::establish(&t.url).await.unwrap();
    let statements = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = statements.clone();
    conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
        if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event {
            seen.lock().unwrap().push(query.to_string());
        }
    });
    assert!(
        migrate::is_up_to_date(&mut conn, MigrationSet::embedded())
            .await
            .unwrap()
    );
    assert_eq!(
        statements.lock().unwrap().len(),
        1,
        "{:?}",
        statements.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_creates_the_database_and_status_and_check_agree() {
    let name = format!("database_setup_{}", std::process::id());
    let url = common::url_of(&name);
    let out = db_cmd(&url, &["setup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("Created database {name}")),
        "{}",
        text(&out)
    );
    // The service role's statements are bounded by the server in this
    // database as each call is by the client (DB_QUERY_TIMEOUT_MS and the
    // backstop): what lets pooler mode send a statement alone.
    let bounded = common::run_db(&url, &["setup"], &[("DB_QUERY_TIMEOUT_MS", "4000")]);
    assert!(bounded.status.success(), "{}", text(&bounded));
    assert!(
        text(&bounded).contains(&format!(
            "Service role app: statements bounded on the server at 4250 ms in {name}"
        )),
        "{}",
        text(&bounded)
    );
    {
        use diesel::sql_types::Text;
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Settings {
            #[diesel(sql_type = Text)]
            settings: String,
        }
        let row: Settings = diesel::sql_query(
            "SELECT array_to_string(setconfig, ',') AS settings FROM pg_db_role_setting \
             WHERE setrole = 'app'::regrole \
               AND setdatabase = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .bind::<Text, _>(&name)
        .get_result(&mut common::admin_conn().await)
        .await
        .unwrap();
        assert_eq!(
            row.settings,
            "statement_timeout=4250,idle_in_transaction_session_timeout=4250"
        );
    }
    // Idempotent.
    let again = db_cmd(&url, &["setup"]);
    assert!(again.status.success());
    assert!(text(&again).contains("No pending migrations"));
    assert!(db_cmd(&url, &["check"]).status.success());

    let back = db_cmd(&url, &["rollback"]);
    assert!(back.status.success(), "{}", text(&back));
    let check = db_cmd(&url, &["check"]);
    assert_eq!(check.status.code(), Some(3), "{}", text(&check));
    let status = db_cmd(&url, &["status"]);
    assert!(text(&status).contains("1 pending"), "{}", text(&status));
    assert!(db_cmd(&url, &["migrate"]).status.success());
    // One step: a redo of several refuses to cross a migration that runs
    // outside a transaction, and the newest may be one.
    let redo = db_cmd(&url, &["redo"]);
    assert!(redo.status.success(), "{}", text(&redo));
    assert!(db_cmd(&url, &["check"]).status.success());

    let mut admin = common::admin_conn().await;
    use diesel_async::SimpleAsyncConnection;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[test]
fn usage_errors_exit_2_and_every_command_has_help() {
    for command in ["setup", "migrate", "rollback", "redo", "status", "check"] {
        let out = Command::new(DB_BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "db {command} --help");
        assert!(!out.stdout.is_empty());
    }
    let out = Command::new(DB_BIN)
        .args(["rollback", "--steps", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_password_in_the_url_is_never_printed() {
    let out = Command::new(DB_BIN)
        .args(["status"])
        .env(
            "DATABASE_URL",
            "postgres://app:hunter2secret@127.0.0.1:1/app",
        )
        .env("DB_CONNECT_TIMEOUT_SECS", "2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out);
    assert!(!all.contains("hunter2secret"), "{all}");
    assert!(all.contains("app:***@127.0.0.1:1"), "{all}");
}

/// `diesel` (the CLI CI installs) and `db` on one database, in any order.
#[tokio::test(flavor = "multi_thread")]
async fn diesel_cli_and_db_share_one_history() {
    let diesel_bin = std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into());
    let version = Command::new(&diesel_bin).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "this test needs the diesel CLI on PATH (scripts/test and .ci/run install it): {version:?}"
    );

    let t = TestDb::empty().await;
    let out = db_cmd(&t.url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));

    // A config of our own so that diesel does not rewrite src/schema.rs.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("diesel.toml");
    std::fs::write(
        &config,
        format!(
            "[migrations_directory]\ndir = {:?}\n",
            migrations_dir().display().to_string()
        ),
    )
    .unwrap();
    let diesel = |args: &[&str]| {
        let out = Command::new(&diesel_bin)
            .args(args)
            .args([
                "--database-url",
                &t.url,
                "--config-file",
                config.to_str().unwrap(),
            ])
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "diesel {args:?}: {}", text(&out));
        text(&out)
    };

    diesel(&["migration", "run"]);
    diesel(&["migration", "redo", "--all"]);
    let status = migrate::status(&mut *t.conn().await, MigrationSet::embedded())
        .await
        .unwrap();
    assert!(status.is_up_to_date(), "{status:?}");
    assert!(db_cmd(&t.url, &["check"]).status.success());

    // Versions diesel re-applied get their checksums recorded by `db migrate`.
    let out = db_cmd(&t.url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Recorded checksum"), "{}", text(&out));
    let mut conn = t.conn().await;
    assert_eq!(
        count_rows(&mut conn, "__database_migration_checksums").await as usize,
        MigrationSet::embedded().len()
    );

    // diesel reverts the latest; db sees it pending, diesel lists it as such.
    diesel(&["migration", "revert"]);
    let status = migrate::status(&mut conn, MigrationSet::embedded())
        .await
        .unwrap();
    let last = status.versions.last().unwrap();
    assert_eq!(last.state, State::Pending);
    let listing = diesel(&["migration", "list"]);
    assert!(
        listing.contains(&format!("[ ] {}", last.name.as_deref().unwrap())),
        "{listing}"
    );
    assert_eq!(db_cmd(&t.url, &["check"]).status.code(), Some(3));

    // db applies it; diesel agrees that nothing is pending.
    assert!(db_cmd(&t.url, &["migrate"]).status.success());
    let listing = diesel(&["migration", "list"]);
    assert!(!listing.contains("[ ]"), "{listing}");
    assert!(diesel(&["migration", "pending"]).contains("false"));
}

/// src/schema.rs is generated: it must be byte for byte what the pinned
/// diesel CLI prints for a freshly migrated database with diesel.toml.
#[tokio::test(flavor = "multi_thread")]
async fn schema_rs_is_what_diesel_print_schema_generates() {
    let t = TestDb::new().await;
    let diesel_bin = std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into());
    let out = Command::new(diesel_bin)
        .args(["print-schema", "--database-url", &t.url])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("this test needs the diesel CLI on PATH (scripts/test installs it)");
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::fs::read_to_string(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("src/schema.rs"),
    )
    .unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == committed,
        "src/schema.rs is stale: run `diesel migration run` (or `diesel print-schema > src/schema.rs`) and commit it"
    );
}

/// `db rollback`/`db redo` regenerate the schema file `diesel.toml` names,
/// whether `--migrations-dir` names the project's folder as the README
/// writes it (relative) or by its absolute path.
#[tokio::test(flavor = "multi_thread")]
async fn rollback_and_redo_regenerate_the_schema_file_with_a_relative_migrations_dir() {
    let t = TestDb::new().await;
    let project = copy_migrations();
    let root = project.path().join("project");
    let migrations = root.join("migrations");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir(&migrations).unwrap();
    let copied: Vec<_> = std::fs::read_dir(project.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "project")
        .collect();
    for entry in copied {
        std::fs::rename(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    std::fs::copy(
        migrations_dir().parent().unwrap().join("diesel.toml"),
        root.join("diesel.toml"),
    )
    .unwrap();
    let schema = root.join("src/schema.rs");
    let absolute = migrations.to_str().unwrap().to_owned();
    for (command, dir) in [
        ("rollback", "migrations"),
        ("migrate", "migrations"),
        ("redo", "migrations"),
        ("rollback", absolute.as_str()),
    ] {
        let _ = std::fs::remove_file(&schema);
        let out = common::run_db_in(&root, &t.url, &[command, "--migrations-dir", dir], &[]);
        assert!(out.status.success(), "db {command}: {}", text(&out));
        if command == "migrate" {
            continue;
        }
        assert!(
            text(&out).contains("Regenerated"),
            "db {command} --migrations-dir {dir}: {}",
            text(&out)
        );
        assert!(
            std::fs::read_to_string(&schema)
                .unwrap_or_default()
                .contains("diesel::table!"),
            "db {command} --migrations-dir {dir} wrote no schema file"
        );
    }
}
