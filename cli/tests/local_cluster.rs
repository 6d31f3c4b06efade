//! The project-local PostgreSQL against real processes: `db up`, `db down`,
//! the default URL when `DATABASE_URL` is unset, and the launcher that the
//! tests' own extra servers use (`ops::cluster`). Each test makes its own
//! project folder and cluster on a free port; none touches the test server.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::DB_BIN;
use database::Conn;
use database::db::local;
use database::ops::cluster::{Options, TempCluster};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A test that cannot run here: skipped with the reason, or failed when
/// `DB_TEST_REQUIRE_ALL=1`.
fn skip(reason: &str) {
    if std::env::var("DB_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("required but cannot run: {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// A project folder (a `diesel.toml`, no migrations folder: `db` uses the
/// embedded ones) and who runs `db` in it.
struct Project {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// `None`: this process's user. `Some(name)`: through `runuser -u name`.
    user: Option<String>,
    /// The `db` binary, copied where `user` can run it.
    bin: PathBuf,
}

impl Project {
    /// A project of this process's user, in a folder of this `mode` (700:
    /// like a home directory, which no other user can enter).
    fn own(mode: u32) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let root = tmp.path().join("app");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("diesel.toml"), "").unwrap();
        Project {
            root,
            _tmp: tmp,
            user: None,
            bin: PathBuf::from(DB_BIN),
        }
    }

    /// A project owned by the ordinary OS user `user`, run through `runuser`.
    fn of_user(user: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = tmp.path().join("app");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("diesel.toml"), "").unwrap();
        // The build's binary may sit where that user cannot enter (/root/...).
        let bin = tmp.path().join("db");
        std::fs::copy(DB_BIN, &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = Command::new("chown")
            .args(["-R", user])
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success(), "chown {user}");
        Project {
            root,
            _tmp: tmp,
            user: Some(user.to_owned()),
            bin,
        }
    }

    /// `db <args>` in the project, with no DATABASE_URL anywhere.
    fn db(&self, args: &[&str]) -> Output {
        let mut cmd = match &self.user {
            None => Command::new(&self.bin),
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&self.bin);
                c
            }
        };
        cmd.args(args)
            .current_dir(&self.root)
            .env_remove("DATABASE_URL")
            .env_remove("TEST_DATABASE_URL")
            .env_remove("DB_MIGRATIONS_DIR")
            .env_remove("APP_ENV")
            .env_remove("NODE_ENV")
            .stdin(Stdio::null());
        cmd.output().expect("run db")
    }

    fn db_ok(&self, args: &[&str]) -> String {
        let out = self.db(args);
        assert!(out.status.success(), "db {args:?}: {}", text(&out));
        text(&out)
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".db")
    }
}

async fn query_one(url: &str, sql: &str) -> i32 {
    use diesel::sql_types::Integer;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct One {
        #[diesel(sql_type = Integer)]
        n: i32,
    }
    let mut conn = Conn::establish(url).await.unwrap();
    diesel::sql_query(sql)
        .get_result::<One>(&mut conn)
        .await
        .unwrap()
        .n
}

/// `db up` twice, `db down`, `db up` again: same URL, data kept; the
/// commands' default URL when `DATABASE_URL` is unset; `db down --destroy`.
/// `data_elsewhere`: root's project that the server's user cannot enter.
async fn up_down_up(p: &Project, data_elsewhere: bool) {
    let first = p.db_ok(&["up"]);
    assert!(first.contains("Created a PostgreSQL cluster"), "{first}");
    assert_eq!(
        first.contains("cannot reach") && first.contains("/var/tmp/"),
        data_elsewhere,
        "{first}"
    );
    // The service's role and the superuser, each with its password.
    assert!(first.contains("DATABASE_URL=postgres://app:"), "{first}");
    assert!(
        first.contains("DATABASE_MIGRATION_URL=postgres://postgres:"),
        "{first}"
    );
    let again = p.db_ok(&["up"]);
    assert!(again.contains("already running"), "{again}");
    let url = p.db_ok(&["up", "--print-url"]).trim().to_owned();
    assert!(url.ends_with("/database_dev"), "{url}");
    let port: u16 = url::Url::parse(&url).unwrap().port().unwrap();
    assert!((54320..=54399).contains(&port), "{url}");

    // DATABASE_URL unset: `db setup` uses the project's cluster.
    let setup = p.db_ok(&["setup"]);
    assert!(setup.contains("Created database database_dev"), "{setup}");
    Conn::establish(&url)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        .await
        .unwrap();

    assert!(p.db_ok(&["down"]).contains("Stopped"));
    assert!(p.db_ok(&["down"]).contains("already stopped"));
    assert!(
        !local::Record::load(&p.state_dir())
            .unwrap()
            .unwrap()
            .is_listening()
    );
    // A service never starts it: it says the cluster is down and how to start it.
    let down = local::service_url_in(&p.root).unwrap_err().to_string();
    assert!(down.contains("`db up` starts it"), "{down}");

    let restarted = p.db_ok(&["up"]);
    assert!(restarted.contains("Started"), "{restarted}");
    assert_eq!(p.db_ok(&["up", "--print-url"]).trim(), url);
    assert_eq!(query_one(&url, "SELECT n FROM kept").await, 42);
    // A service gets the service role's URL; `db setup` gave it its grants.
    let service = local::service_url_in(&p.root).unwrap().unwrap();
    assert!(service.starts_with("postgres://app:"), "{service}");
    Conn::establish(&service)
        .await
        .unwrap()
        .batch_execute("SELECT 1 FROM users LIMIT 1")
        .await
        .unwrap();

    // Any `db` command starts a stopped cluster when it needs it.
    p.db_ok(&["down"]);
    let status = p.db_ok(&["status"]);
    assert!(status.contains("0 pending"), "{status}");

    let record = local::Record::load(&p.state_dir()).unwrap().unwrap();
    assert!(p.db(&["down", "--destroy"]).status.code() == Some(1));
    assert!(
        p.state_dir().exists(),
        "--destroy without --yes and no terminal deletes nothing"
    );
    p.db_ok(&["down", "--destroy", "--yes"]);
    assert!(!p.state_dir().exists());
    assert!(!record.data_dir.exists(), "{}", record.data_dir.display());
    assert!(!record.is_listening());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_down_up_as_this_user() {
    up_down_up(&Project::own(0o755), false).await;
    if is_root() {
        // A root-only folder: the server's user (postgres) cannot enter it,
        // so its data lives under /var/tmp and `db up` says so.
        up_down_up(&Project::own(0o700), true).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn up_down_up_as_an_ordinary_user() {
    if !is_root() {
        // This process is the ordinary user; the test above covered it.
        return skip("running as root through runuser needs root");
    }
    let user = std::env::var("DB_TEST_OS_USER").unwrap_or_else(|_| "nobody".into());
    let p = Project::of_user(&user);
    up_down_up(&p, false).await;
}

#[test]
fn up_without_binaries_says_what_to_install() {
    let p = Project::own(0o700);
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(DB_BIN);
    let out = cmd
        .arg("up")
        .current_dir(&p.root)
        .env("PG_BIN", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("apt-get install postgresql") && t.contains("brew install"),
        "{t}"
    );
    assert!(!p.state_dir().join("cluster.toml").exists());
}

#[test]
fn commands_outside_a_project_without_database_url_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(DB_BIN)
        .arg("status")
        .current_dir(tmp.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("DATABASE_URL is not set"),
        "{}",
        text(&out)
    );

    let p = Project::own(0o700);
    let out = p.db(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("`db up` (or `db setup`) creates one"),
        "{}",
        text(&out)
    );
    assert_eq!(local::service_url_in(&p.root).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_temporary_cluster_is_gone_after_its_guard() {
    let cluster = TempCluster::start(Options::scratch()).unwrap();
    let url = cluster.url_of("postgres");
    let dir = cluster.state_dir().to_path_buf();
    assert_eq!(query_one(&url, "SELECT 1 AS n").await, 1);
    assert!(
        std::fs::read_to_string(cluster.data_dir().join("postgresql.conf"))
            .unwrap()
            .contains("fsync = off")
    );
    drop(cluster);
    assert!(Conn::establish(&url).await.is_err());
    assert!(!dir.exists());
}

#[test]
fn a_server_that_cannot_start_quotes_its_log() {
    let options = Options {
        settings: vec!["shared_buffers = 'plenty'".into()],
        ..Options::scratch()
    };
    let err = TempCluster::start(options).unwrap_err().to_string();
    assert!(
        err.contains("did not start") && err.contains("shared_buffers"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_replica_follows_its_primary() {
    let primary = TempCluster::start(Options::scratch()).unwrap();
    let replica = TempCluster::replica_of(&primary, Options::scratch()).unwrap();
    let mut conn = Conn::establish(&primary.url_of("postgres")).await.unwrap();
    conn.batch_execute("CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();
    let replica_url = replica.url_of("postgres");
    assert_eq!(
        query_one(&replica_url, "SELECT pg_is_in_recovery()::int AS n").await,
        1
    );
    let mut seen = 0;
    for _ in 0..100 {
        let mut c = Conn::establish(&replica_url).await.unwrap();
        use diesel_async::RunQueryDsl;
        if diesel::sql_query("SELECT 1 FROM t")
            .execute(&mut c)
            .await
            .is_ok()
        {
            seen = query_one(&replica_url, "SELECT n FROM t").await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 7);
}

#[test]
fn a_cluster_whose_data_directory_is_gone_says_how_to_start_over() {
    let mut cluster = TempCluster::start(Options::scratch()).unwrap();
    cluster.stop().unwrap();
    std::fs::remove_dir_all(cluster.data_dir()).unwrap();
    let err = cluster.start().unwrap_err().to_string();
    assert!(
        err.contains("is gone") && err.contains("db down --destroy"),
        "{err}"
    );
}

/// The cluster asks for a password over TCP (SCRAM; the launcher generated
/// it and wrote it to `secrets.toml`, 0600, and into its URLs), and its
/// socket admits only the OS users who own it: another OS user (`nobody`)
/// gets in neither way, while the recorded URLs connect. (Loopback used to
/// trust every role, the superuser included, for any local user.)
#[tokio::test(flavor = "multi_thread")]
async fn another_os_user_cannot_log_in_without_the_password() {
    if !is_root() {
        skip("needs root to run a command as another OS user");
        return;
    }
    let cluster = TempCluster::start(Options::scratch()).unwrap();
    let record = cluster.record();
    let secrets = record.secrets.clone().expect("the cluster has passwords");
    let psql = record.bin_dir.join("psql");
    let as_nobody = |host: &str| {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&psql)
            .args([
                "-X",
                "-w",
                "-h",
                host,
                "-p",
                &record.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-c", "SELECT 1"])
            .env_remove("PGPASSWORD")
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let tcp = as_nobody("127.0.0.1");
    assert!(
        !tcp.status.success(),
        "nobody got in over TCP: {}",
        text(&tcp)
    );
    assert!(text(&tcp).contains("password"), "{}", text(&tcp));
    let socket = as_nobody(&record.socket_dir.to_string_lossy());
    assert!(
        !socket.status.success(),
        "nobody got in over the socket: {}",
        text(&socket)
    );
    // The recorded URLs carry the passwords and connect.
    assert!(cluster.url_of("postgres").contains(&secrets.superuser));
    let mut conn = Conn::establish(&cluster.url_of("postgres")).await.unwrap();
    conn.batch_execute("SELECT 1").await.unwrap();
    let mut app_url = url::Url::parse(&record.service_url()).unwrap();
    app_url.set_path("/postgres");
    let mut app = Conn::establish(app_url.as_str()).await.unwrap();
    app.batch_execute("SELECT 1").await.unwrap();
    // The secrets file is the owner's alone.
    let secrets_file = cluster.state_dir().join(local::SECRETS_FILE);
    let mode = std::fs::metadata(&secrets_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "{} is readable by others",
        secrets_file.display()
    );
}
