//! TLS against a real server: a throwaway cluster from the crate's launcher
//! with `ssl = on` and a certificate signed by a CA the test makes with
//! `openssl`. Every `sslmode` is tried, plus a wrong root, a wrong name, a
//! URL with only `hostaddr=` (no host name: encrypted as libpq does, refused
//! only by verify-full) and a certificate that names its host only in its
//! CN (refused by verify-full, where libpq accepts it), in direct mode and in
//! pooler mode (`DB_POOLER=transaction`, directly and through PgBouncer).

use std::path::Path;
use std::process::Command;

use database::Conn;
use database::db::Pooler;
use database::ops::cluster::{BouncerOptions, TempPgBouncer};
use database::ops::cluster::{Options, TempCluster};
use database::{Config, Db, Error};
use diesel::sql_types::Bool;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`name`.crt/.key) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A server certificate `stem`.crt/.key with CN=localhost, signed by `ca`:
/// with the names localhost and 127.0.0.1 in its subjectAltName, or (`san`
/// false) with none, the host named only in the CN.
fn server_cert(dir: &Path, ca: &str, stem: &str, san: bool) {
    let (key, csr, crt) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.crt"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    // Extensions make it X.509 v3 (rustls refuses v1 certificates outright).
    std::fs::write(
        dir.join(format!("{stem}.ext")),
        if san {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        } else {
            "basicConstraints=CA:FALSE\n"
        },
    )
    .unwrap();
    let ext = format!("{stem}.ext");
    let ca_crt = format!("{ca}.crt");
    let ca_key = format!("{ca}.key");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
}

/// Whether a pooled connection to `url` is encrypted, in direct mode and in
/// pooler mode (`DB_POOLER=transaction`); both must agree.
async fn encrypted(url: &str) -> Result<bool, Error> {
    let direct = encrypted_in(url, Pooler::None).await;
    let pooled = encrypted_in(url, Pooler::Transaction).await;
    match (&direct, &pooled) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "direct and pooler mode disagree on {url}"),
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "{a} / {b}"
        ),
        _ => panic!("direct {direct:?} but pooler mode {pooled:?} for {url}"),
    }
    direct
}

async fn encrypted_in(url: &str, pooler: Pooler) -> Result<bool, Error> {
    let mut config = Config::new(url);
    config.pooler = pooler;
    let db = Db::new(config)?;
    let mut conn = db.conn().await?;
    assert_eq!(conn.is_pooler_mode(), pooler == Pooler::Transaction);
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .await?;
    Ok(row.ssl)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sslmode_against_a_tls_server() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(
            std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
            "openssl is required"
        );
        eprintln!("skipped: no openssl");
        return;
    }
    let cluster = match TempCluster::start(Options::scratch()) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
                "a throwaway cluster is required: {e}"
            );
            eprintln!("skipped: cannot start a throwaway cluster ({e})");
            return;
        }
    };
    let certs = tempfile::tempdir().unwrap();
    ca(certs.path(), "rootca");
    ca(certs.path(), "otherca");
    server_cert(certs.path(), "rootca", "server", true);
    server_cert(certs.path(), "rootca", "cn-only", false);
    let read = |f: &str| std::fs::read(certs.path().join(f)).unwrap();
    cluster
        .write_data_file("server.crt", &read("server.crt"), 0o644)
        .unwrap();
    cluster
        .write_data_file("server.key", &read("server.key"), 0o600)
        .unwrap();
    let mut admin = Conn::establish(&cluster.url_of("postgres")).await.unwrap();
    admin
        .batch_execute("ALTER SYSTEM SET ssl = on")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let base = cluster.url_of("postgres");
    let sep = if base.contains('?') { '&' } else { '?' };
    let with = |params: &str| format!("{base}{sep}{params}");
    let root = certs.path().join("rootca.crt");
    let other = certs.path().join("otherca.crt");

    assert!(!encrypted(&with("sslmode=disable")).await.unwrap());
    assert!(encrypted(&with("sslmode=prefer")).await.unwrap());
    assert!(encrypted(&with("sslmode=require")).await.unwrap());
    assert!(
        encrypted(&with(&format!(
            "sslmode=verify-ca&sslrootcert={}",
            root.display()
        )))
        .await
        .unwrap()
    );
    assert!(
        encrypted(&with(&format!(
            "sslmode=verify-full&sslrootcert={}",
            root.display()
        )))
        .await
        .unwrap()
    );

    // A root that did not sign the server's certificate: refused, clearly.
    let err = encrypted(&with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        other.display()
    )))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = encrypted(&with(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        other.display()
    )))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // The right root but another host name (the TCP address stays 127.0.0.1):
    // verify-full refuses, verify-ca does not look at names.
    let port = url::Url::parse(&base).unwrap().port().unwrap();
    // The launcher's cluster asks for a password over TCP.
    let password = cluster
        .record()
        .secrets
        .as_ref()
        .map(|s| s.superuser.clone())
        .unwrap_or_default();
    let mut renamed = url::Url::parse(&base).unwrap();
    renamed.set_host(Some("wrong-name.example")).unwrap();
    let renamed = format!(
        "{renamed}{sep}hostaddr=127.0.0.1&sslrootcert={}",
        root.display()
    );
    let err = encrypted(&format!("{renamed}&sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        encrypted(&format!("{renamed}&sslmode=verify-ca"))
            .await
            .unwrap()
    );

    // Only hostaddr=, no host name: libpq encrypts under prefer, require and
    // verify-ca (no name is needed), and refuses verify-full, which has no
    // name to compare with the certificate's. The same here, URL and
    // key=value forms alike.
    let by_addr = |params: &str| {
        format!("postgres://postgres:{password}@/postgres?hostaddr=127.0.0.1&port={port}&{params}")
    };
    assert!(encrypted(&by_addr("sslmode=prefer")).await.unwrap());
    assert!(encrypted(&by_addr("sslmode=require")).await.unwrap());
    assert!(
        encrypted(&format!(
            "hostaddr=127.0.0.1 port={port} user=postgres password={password} dbname=postgres sslmode=require"
        ))
        .await
        .unwrap()
    );
    assert!(
        encrypted(&by_addr(&format!(
            "sslmode=verify-ca&sslrootcert={}",
            root.display()
        )))
        .await
        .unwrap()
    );
    assert!(!encrypted(&by_addr("sslmode=disable")).await.unwrap());
    let err = encrypted(&by_addr(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        other.display()
    )))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = encrypted(&by_addr(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root.display()
    )))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("verify-full") && m.contains("host=")),
        "{err:?}"
    );

    // The migration session goes through the same set-up.
    let config = Config::new(with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root.display()
    )));
    let mut conn = database::db::connect_for_migrations(&config, &config.database_url)
        .await
        .unwrap();
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(row.ssl);

    // Pooler mode through a PgBouncer that speaks TLS to its clients (with
    // the same certificate): verify-full with the right root connects, with
    // another root it is refused.
    let mut options = BouncerOptions::transaction_mode("127.0.0.1", port);
    options
        .server_passwords
        .push(("postgres".into(), password.clone()));
    options.client_tls = Some((
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    ));
    let bouncer = match TempPgBouncer::start(&options) {
        Ok(b) => b,
        Err(e) => {
            assert!(
                std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
                "pgbouncer is required: {e}"
            );
            eprintln!("skipped the PgBouncer part: {e}");
            return;
        }
    };
    let through = |root: &Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            bouncer.url_of("postgres", "postgres"),
            root.display()
        )
    };
    let db = {
        let mut config = Config::new(through(&root));
        config.pooler = Pooler::Transaction;
        Db::new(config).unwrap()
    };
    db.health().await.unwrap();
    let mut config = Config::new(through(&other));
    config.pooler = Pooler::Transaction;
    let err = Db::new(config).unwrap().health().await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    // The pooler by address only.
    let pooled = |url: String| {
        let mut config = Config::new(url);
        config.pooler = Pooler::Transaction;
        Db::new(config).unwrap()
    };
    let bouncer_by_addr = |port: u16, params: &str| {
        format!("postgres://postgres:{password}@/postgres?hostaddr=127.0.0.1&port={port}&{params}")
    };
    pooled(bouncer_by_addr(bouncer.port(), "sslmode=require"))
        .health()
        .await
        .unwrap();
    pooled(bouncer_by_addr(
        bouncer.port(),
        &format!("sslmode=verify-ca&sslrootcert={}", root.display()),
    ))
    .health()
    .await
    .unwrap();

    // A certificate that names its host only in the CN (no subjectAltName):
    // libpq's verify-full accepts it, the crate's refuses it (RFC 6125, as
    // browsers and rustls) and says why; verify-ca does not look at names.
    let mut options = BouncerOptions::transaction_mode("127.0.0.1", port);
    options
        .server_passwords
        .push(("postgres".into(), password.clone()));
    options.client_tls = Some((
        certs.path().join("cn-only.crt"),
        certs.path().join("cn-only.key"),
    ));
    let cn_only = TempPgBouncer::start(&options).unwrap();
    let by_name = format!(
        "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslrootcert={}",
        cn_only.port(),
        root.display()
    );
    let err = pooled(format!("{by_name}&sslmode=verify-full"))
        .health()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("subjectAltName")),
        "{err:?}"
    );
    pooled(format!("{by_name}&sslmode=verify-ca"))
        .health()
        .await
        .unwrap();
}
