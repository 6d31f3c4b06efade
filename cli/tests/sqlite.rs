//! SQLite as the second backend (auth and settings): what only SQLite has.
//! The auth and settings suites themselves run on both backends
//! (tests/auth.rs, tests/settings.rs); this file covers the URL forms, each
//! connection's settings, the typed refusal of PostgreSQL-only calls, the
//! migration engine and its cross-process lock, and the `db` command.

mod common;

use std::path::Path;
use std::process::Command;

use common::{DB_BIN, run_db};
use database::auth::{LinkAccount, NewSession, NewUser, accounts, sessions, users};
use database::db::SqliteConn;
use database::settings::{ProfileInput, user_profiles};
use database::{Config, Db, Error, SqliteDb};
use diesel_async::RunQueryDsl;

fn sqlite_db(url: &str) -> SqliteDb {
    let mut config = Config::new(url);
    config.pool_size = 4;
    SqliteDb::new(config).expect("SQLite Db")
}

fn file_url(dir: &Path, name: &str) -> String {
    format!("sqlite:{}", dir.join(name).display())
}

async fn pragma(conn: &mut SqliteConn, name: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    // The one-column result of `pragma_<name>` is named after the pragma,
    // except busy_timeout's.
    let column = if name == "busy_timeout" {
        "timeout"
    } else {
        name
    };
    diesel::sql_query(format!(
        "SELECT CAST({column} AS TEXT) AS v FROM pragma_{name}"
    ))
    .get_result::<Value>(conn)
    .await
    .unwrap()
    .v
}

#[tokio::test(flavor = "multi_thread")]
async fn every_url_form_opens_a_file_with_the_crates_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (url, file) in [
        (file_url(dir.path(), "a.db"), "a.db"),
        (
            format!("sqlite://{}", dir.path().join("b.db").display()),
            "b.db",
        ),
    ] {
        let db = sqlite_db(&url);
        db.migrate().await.unwrap();
        assert!(dir.path().join(file).is_file(), "{url} creates {file}");
        let health = db.health().await.unwrap();
        assert_eq!(health.pool.max_size, 4);
        let mut conn = db.conn().await.unwrap();
        assert_eq!(pragma(&mut conn, "journal_mode").await, "wal");
        assert_eq!(pragma(&mut conn, "foreign_keys").await, "1");
        assert_eq!(pragma(&mut conn, "synchronous").await, "1", "NORMAL");
        assert_eq!(pragma(&mut conn, "busy_timeout").await, "5000");
    }
    // The relative form, from Config::from_lookup as a service reads it.
    let config = Config::from_lookup(|k| (k == "DATABASE_URL").then(|| "sqlite:./x.db".into()))
        .expect("a SQLite URL needs no database name");
    assert_eq!(config.database_url, "sqlite:./x.db");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_cannot_be_opened_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&file_url(&dir.path().join("no/such/folder"), "x.db"));
    match db.conn().await.map(drop) {
        Err(Error::Config(message)) => assert!(message.contains("x.db"), "{message}"),
        other => panic!("expected Config, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_is_one_connection_so_every_checkout_sees_the_same_database() {
    let db = sqlite_db("sqlite::memory:");
    assert_eq!(db.pool_status().max_size, 1);
    db.migrate().await.unwrap();
    let id = {
        let mut conn = db.conn().await.unwrap();
        users::create(
            &mut conn,
            &NewUser {
                email: "ann@example.com".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
    };
    let mut conn = db.conn().await.unwrap();
    assert_eq!(users::find(&mut conn, id).await.unwrap().id, id);
}

/// Each handle takes its own backend's URL and refuses the other's with a
/// message naming the right one; a PostgreSQL-only function does not even
/// compile with a SQLite connection (the `compile_fail` example in
/// `src/db/any.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn each_handle_refuses_the_other_backends_url_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    match Db::new(Config::new(file_url(dir.path(), "x.db"))) {
        Err(Error::Unsupported(message)) => {
            assert!(
                message.contains("SqliteDb") && message.contains("AnyDb"),
                "{message}"
            )
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    match SqliteDb::new(Config::new("postgres://127.0.0.1/x")) {
        Err(Error::Unsupported(message)) => assert!(message.contains("database::Db"), "{message}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let any = database::AnyDb::new(Config::new(file_url(dir.path(), "y.db"))).unwrap();
    assert_eq!(any.backend_name(), "sqlite");
}

/// The "Done when" of issue 16: a service signs a user up, in, links an
/// OAuth account and updates the profile through the functions it uses on
/// PostgreSQL, on a SQLite file and no server.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_runs_the_auth_and_profile_flow_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_db(&file_url(dir.path(), "local.db"));
    db.migrate().await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let ann = users::create(
        &mut conn,
        &NewUser {
            email: "Ann@Example.com".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let session = sessions::create(
        &mut conn,
        &NewSession {
            user_id: ann.id,
            ttl_seconds: 3600,
            ip_address: None,
            user_agent: None,
        },
    )
    .await
    .unwrap();
    let (found, user) = sessions::find_valid_with_user(&mut conn, session.token.expose())
        .await
        .unwrap();
    assert_eq!((found.id, user.id), (session.session.id, ann.id));
    let account = accounts::link(
        &mut conn,
        ann.id,
        &LinkAccount {
            provider: "github".into(),
            provider_account_id: "ann-gh".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        accounts::find_by_provider(&mut conn, "github", "ann-gh")
            .await
            .unwrap(),
        account
    );
    let profile = user_profiles::upsert(
        &mut conn,
        ann.id,
        &ProfileInput {
            display_name: "Ann".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let again = user_profiles::upsert(
        &mut conn,
        ann.id,
        &ProfileInput {
            display_name: "Ann B".into(),
            bio: Some("hi".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.display_name, "Ann B");
    assert!(again.updated_at > profile.updated_at, "updated_at moves");
    assert_eq!(again.created_at, profile.created_at);
    // A change behind the repository's back: the trigger keeps updated_at.
    diesel::sql_query("UPDATE users SET name = 'Raw'")
        .execute(&mut conn)
        .await
        .unwrap();
    let raw = users::find(&mut conn, ann.id).await.unwrap();
    assert!(
        raw.updated_at > ann.updated_at,
        "the trigger moved updated_at"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_processes_and_pools_migrate_one_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path(), "race.db");
    // Eight pools in this process...
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { sqlite_db(&url).migrate().await.map(|r| r.applied.len()) })
        })
        .collect();
    // ...and four `db migrate` processes.
    let processes: Vec<_> = (0..4)
        .map(|_| {
            Command::new(DB_BIN)
                .arg("migrate")
                .env("DATABASE_URL", &url)
                .env_remove("DB_MIGRATIONS_DIR")
                .current_dir(dir.path())
                .output()
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        applied += t.await.unwrap().expect("every migrate succeeds");
    }
    for p in processes {
        let out = p.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        applied += String::from_utf8_lossy(&out.stdout)
            .matches("Applied ")
            .count();
    }
    assert_eq!(
        applied,
        database::migrate::sqlite::embedded().len(),
        "each migration applied exactly once"
    );
    let out = run_db(&url, &["check"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `db <args>` on `url`, which must succeed; its standard output.
fn db_ok(url: &str, args: &[&str]) -> String {
    let out = run_db(url, args, &[]);
    assert!(
        out.status.success(),
        "db {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_db_command_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path(), "cli.db");
    let ok = |args: &[&str]| db_ok(&url, args);
    // Counts and names from the embedded set: a new SQLite migration needs no edit here.
    let set = database::migrate::sqlite::embedded();
    let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
    let (newest, before) = (names[names.len() - 1], names[names.len() - 2]);
    let all_applied = format!("{} applied, 0 pending", set.len());
    assert!(ok(&["setup"]).contains(&all_applied));
    assert!(ok(&["seed"]).contains("Seeded 200 users"));
    assert!(
        ok(&["seed"]).contains("Seeded 0 users"),
        "same seed: nothing new"
    );
    assert!(ok(&["rollback"]).contains(&format!("Reverted {newest}")));
    let check = run_db(&url, &["check"], &[]);
    assert_eq!(check.status.code(), Some(3), "pending after a rollback");
    assert!(ok(&["redo"]).contains(&format!("Redid {before}")));
    assert!(ok(&["migrate"]).contains(&format!("Applied {newest}")));
    assert!(ok(&["status"]).contains(&all_applied));
    assert!(ok(&["reset"]).contains("Emptied"));
    // `db lint` needs no database, so a SQLite URL does not stop it (tests/lint.rs).
    let out = run_db(&url, &["baseline", "20261121100000"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL only"));
    // The production guard applies.
    let refused = run_db(&url, &["nuke"], &[("APP_ENV", "production")]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(ok(&["nuke"]).contains("Dropped every table"));
    assert!(ok(&["drop"]).contains("Deleted"));
    assert!(!dir.path().join("cli.db").exists());
}

#[test]
fn an_edited_sqlite_migration_is_refused_and_diesel_shares_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations_sqlite");
    copy_dir(
        &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("migrations_sqlite"),
        &migrations,
    );
    let url = file_url(dir.path(), "h.db");
    let dir_arg = migrations.to_str().unwrap();
    let diesel = Command::new("diesel").arg("--version").output().is_ok();
    if diesel {
        // Applied by hand with the diesel CLI first: `db` reads that history.
        let out = Command::new("diesel")
            .args(["migration", "run", "--migration-dir", dir_arg])
            .arg("--database-url")
            .arg(dir.path().join("h.db"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
            "the diesel CLI is required"
        );
        eprintln!("no diesel CLI (scripts/diesel-cli installs it): db applies them itself");
    }
    let out = run_db(&url, &["--migrations-dir", dir_arg, "migrate"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if diesel {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("checksum"),
            "db records the checksums of what diesel applied: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let up = migrations.join("2026-11-21-100000_create_auth/up.sql");
    let text = std::fs::read_to_string(&up).unwrap();
    std::fs::write(&up, text.replace("3 AND 254", "3 AND 255")).unwrap();
    let out = run_db(&url, &["--migrations-dir", dir_arg, "migrate"], &[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("20261121100000"),
        "names the edited version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = run_db(&url, &["--migrations-dir", dir_arg, "status"], &[]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("modified"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// diesel-async cannot roll back a transaction whose future was dropped
/// half-way; the pool must then not hand that connection out again (it would
/// hold the file's write lock, and its next caller would run inside a stranger's
/// transaction).
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_dropped_inside_a_transaction_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path(), "t.db");
    let mut config = Config::new(url.clone());
    config.pool_size = 1;
    let db = SqliteDb::new(config).unwrap();
    db.migrate().await.unwrap();
    {
        let mut conn = db.conn().await.unwrap();
        let stuck = conn.immediate_transaction(async |_c| {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            Ok::<_, Error>(())
        });
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(200), stuck).await;
        assert!(cancelled.is_err(), "the transaction was cut off while open");
    }
    // The pool's one slot, checked out: if it were the old connection, its
    // transaction would still hold the file's write lock.
    let _held = db.conn().await.unwrap();
    let target = database::db::sqlite::sqlite_target(&url).unwrap();
    let mut other = database::db::sqlite::connect_sqlite(&target).await.unwrap();
    let started = std::time::Instant::now();
    users::create(
        &mut other,
        &NewUser {
            email: "after@example.com".into(),
            ..Default::default()
        },
    )
    .await
    .expect("another connection can write: no dangling transaction holds the lock");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// Every row of the seeded tables, in a fixed order, as text.
async fn dump(url: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        row: String,
    }
    let db = sqlite_db(url);
    let mut conn = db.conn().await.unwrap();
    let mut rows = Vec::new();
    for (table, columns) in [
        (
            "users",
            "hex(id), email, email_verified, name, image, created_at, updated_at",
        ),
        (
            "accounts",
            "hex(id), hex(user_id), provider, provider_account_id, password_hash, created_at, updated_at",
        ),
        (
            "user_profiles",
            "hex(user_id), display_name, avatar_url, bio, created_at, updated_at",
        ),
        (
            "user_settings",
            "hex(user_id), settings, created_at, updated_at",
        ),
    ] {
        let sql = format!(
            "SELECT '{table}: ' || concat_ws(' | ', {columns}) AS row FROM {table} ORDER BY 1"
        );
        rows.extend(
            diesel::sql_query(sql)
                .load::<Row>(&mut *conn)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.row),
        );
    }
    rows
}

/// The same seed writes the same rows, ids and timestamps included, as on
/// PostgreSQL (they came from the clock and a random id each run).
#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_seed_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let mut dumps = Vec::new();
    for name in ["one.db", "two.db"] {
        let url = file_url(dir.path(), name);
        for args in [&["setup"][..], &["seed", "--seed", "7"][..]] {
            let out = run_db(&url, args, &[]);
            assert!(
                out.status.success(),
                "db {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dumps.push(dump(&url).await);
    }
    assert_eq!(dumps[0].len(), 4 * 200, "four rows per user");
    let differing: Vec<_> = dumps[0]
        .iter()
        .zip(&dumps[1])
        .filter(|(a, b)| a != b)
        .take(3)
        .collect();
    assert!(differing.is_empty(), "the two runs differ: {differing:?}");
}

/// Rows of `table` in the file at `url`.
async fn count(url: &str, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let db = sqlite_db(url);
    let mut conn = db.conn().await.unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<N>(&mut *conn)
        .await
        .unwrap()
        .n
}

/// The rows of every table that hangs off `users`, in order.
async fn family(url: &str) -> [i64; 5] {
    let mut counts = [0; 5];
    for (i, table) in [
        "users",
        "accounts",
        "sessions",
        "user_settings",
        "user_profiles",
    ]
    .iter()
    .enumerate()
    {
        counts[i] = count(url, table).await;
    }
    counts
}

/// A migration that rebuilds `users` (SQLite's way to change a table's
/// shape: create the new table, copy, drop the old one, rename), adding
/// `extra` to its columns; its down rebuilds it as it was. Both recreate the
/// table's indexes and triggers from the live file.
async fn rebuild_users(url: &str, extra: &str) -> (String, String) {
    #[derive(diesel::QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }
    let db = sqlite_db(url);
    let mut conn = db.conn().await.unwrap();
    let objects: Vec<Sql> = diesel::sql_query(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'users' AND sql IS NOT NULL \
         ORDER BY type = 'table' DESC, name",
    )
    .load(&mut *conn)
    .await
    .unwrap();
    let table = objects[0].sql.trim();
    let rest: String = objects[1..]
        .iter()
        .map(|o| format!("{};\n", o.sql))
        .collect();
    let columns = "id, email, email_verified, name, image, created_at, updated_at";
    let rebuild = |shape: &str| {
        format!(
            "{};\nINSERT INTO users_new ({columns}) SELECT {columns} FROM users;\n\
             DROP TABLE users;\nALTER TABLE users_new RENAME TO users;\n{rest}",
            shape.replacen("CREATE TABLE users (", "CREATE TABLE users_new (", 1)
        )
    };
    let wider = format!(
        "{},\n    {extra}\n)",
        table.trim_end_matches(')').trim_end()
    );
    (rebuild(&wider), rebuild(table))
}

#[tokio::test(flavor = "multi_thread")]
async fn push_and_diff_on_a_seeded_sqlite_file_keep_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations_sqlite");
    copy_dir(
        &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("migrations_sqlite"),
        &migrations,
    );
    let url = file_url(dir.path(), "push.db");
    let dir_arg = migrations.to_str().unwrap().to_owned();
    let db = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--migrations-dir", dir_arg.as_str()];
        all.extend_from_slice(args);
        let out = run_db(&url, &all, env);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = db(&["setup"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = db(&["seed"], &[]);
    assert_eq!(code, Some(0), "{err}");
    // Sessions too, so that every kind of child of `users` has rows.
    {
        let sqlite = sqlite_db(&url);
        let mut conn = sqlite.conn().await.unwrap();
        diesel::sql_query(
            "INSERT INTO sessions (id, user_id, token_hash, expires_at) \
             SELECT randomblob(16), id, randomblob(32), '2999-01-01 00:00:00+00:00' \
             FROM users",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let seeded = family(&url).await;
    assert_eq!(seeded, [200; 5]);

    let (code, out, err) = db(&["diff"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("No drift"), "{out}");

    // A migration that rebuilds the parent of every other table: applying it
    // must not cascade into the children (foreign keys are off while it runs).
    let (up, down) = rebuild_users(&url, "nickname TEXT").await;
    let (edited, _) = rebuild_users(&url, "nickname TEXT,\n    pronouns TEXT").await;
    let folder = migrations.join("2099-01-01-000000_rebuild_users");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), &up).unwrap();
    std::fs::write(folder.join("down.sql"), &down).unwrap();
    let (code, out, err) = db(&["migrate"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(family(&url).await, seeded, "migrate kept every row");

    // Nothing to push while the files are what was applied.
    let (code, out, err) = db(&["push"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Nothing to push"), "{out}");

    // Edit the applied migration: push reverts it with its stored down and
    // applies the new file, and every row stays.
    std::fs::write(folder.join("up.sql"), &edited).unwrap();
    let (code, out, err) = db(&["push"], &[("APP_ENV", "production")]);
    assert_eq!(code, Some(4), "production is refused: {out}{err}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(
        family(&url).await,
        seeded,
        "the refused push changed nothing"
    );
    let (code, out, err) = db(&["push"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("Reverted 2099-01-01-000000_rebuild_users with its stored down.sql")
            && out.contains("Applied 2099-01-01-000000_rebuild_users"),
        "{out}"
    );
    assert_eq!(family(&url).await, seeded, "push kept every row");
    let (code, out, err) = db(&["diff"], &[]);
    assert_eq!(
        code,
        Some(0),
        "the file is what the edited migrations produce: {out}{err}"
    );

    // A change made by hand is drift.
    {
        let sqlite = sqlite_db(&url);
        let mut conn = sqlite.conn().await.unwrap();
        diesel::sql_query("CREATE INDEX users_name_by_hand ON users (name)")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let (code, out, err) = db(&["diff"], &[]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains("+CREATE INDEX users_name_by_hand ON users (name);"),
        "{out}"
    );
}

/// Rows another tool orphaned (the sqlite3 shell and the diesel CLI never
/// turn foreign keys on) are not blamed on the next migration, and the
/// bookkeeping rows a `diesel migration revert` leaves behind (nothing
/// cascades with foreign keys off) do not break the next run.
#[tokio::test(flavor = "multi_thread")]
async fn orphans_made_by_other_tools_do_not_stop_the_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path(), "orphans.db");
    let ok = |args: &[&str]| db_ok(&url, args);
    ok(&["setup"]);
    let newest = database::migrate::sqlite::embedded().iter().last().unwrap();
    {
        use diesel_async::SimpleAsyncConnection;
        let sqlite = sqlite_db(&url);
        let mut conn = sqlite.conn().await.unwrap();
        conn.batch_execute("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        // A session of a user that does not exist.
        conn.batch_execute(
            "INSERT INTO sessions (id, user_id, token_hash, expires_at) \
             VALUES (randomblob(16), randomblob(16), randomblob(32), '2999-01-01 00:00:00+00:00')",
        )
        .await
        .unwrap();
        // `diesel migration revert` of the newest migration: its down.sql,
        // then the version row, with foreign keys off (nothing cascades).
        conn.batch_execute(newest.down_sql.as_deref().unwrap())
            .await
            .unwrap();
        conn.batch_execute(&format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = '{}'",
            newest.version
        ))
        .await
        .unwrap();
        // Back in the pool with foreign keys off: close the pool instead.
        drop(conn);
        sqlite.close();
    }
    assert!(ok(&["migrate"]).contains("Applied"));
    assert!(ok(&["rollback"]).contains("Reverted"));
    assert!(ok(&["migrate"]).contains("Applied"));
    assert_eq!(
        count(&url, "sessions").await,
        1,
        "the orphan stays, untouched"
    );
}
