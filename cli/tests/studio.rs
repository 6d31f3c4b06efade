//! `db studio` at the HTTP level, part 1: start-up, and the security
//! rules, each with a test that fails without the rule. The real binary on a
//! free port, a real PostgreSQL database per test, plain HTTP/1.1 requests.
//! Browsing, export and write mode: tests/studio_data.rs. Over 600 lines:
//! the security rules belong together (one file shows they are all tested),
//! and each test needs a studio of its own.

mod common;
#[path = "studio_support/mod.rs"]
mod support;

use common::TestDb;
use support::{Studio, http, http_to, row_keys, scalar, sql, users};

// --- Start-up -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn prints_one_url_and_listens_on_loopback_only() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    assert_eq!(s.token.len(), 64, "a 256-bit token in hex");
    assert_eq!(s.base.len(), 33, "a 128-bit path prefix in hex: {}", s.base);
    // Bound to 127.0.0.1 only: another loopback address (which a socket
    // on all interfaces would answer) is refused.
    assert!(
        http_to(("127.0.0.2", s.port), "GET", "/", &[], None).is_err(),
        "studio answers on 127.0.0.2: it is not bound to 127.0.0.1 alone"
    );
    assert_eq!(s.get("/").status, 200);
    // A second studio gets another token.
    let other = Studio::start(&t.url, &[], &[]);
    assert_ne!(other.token, s.token);
    assert_ne!(other.base, s.base);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_is_reported_with_the_next_free_one() {
    let t = TestDb::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let Err((code, err)) = Studio::try_start(&t.url, &["--port", &port], &[]) else {
        panic!("started on a taken port");
    };
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("port {port}")) && err.contains("is taken"),
        "{err}"
    );
    assert!(
        err.contains("db studio --port "),
        "suggests a free port: {err}"
    );
}

// --- Security -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_exchanged_for_an_httponly_samesite_strict_cookie() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    let exchange = s.path(&format!("/?token={}", s.token));
    let r = http(s.port, "GET", &exchange, &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(&s.path("/")[..]),
        "the token leaves the address bar"
    );
    let cookie = r.header("set-cookie").expect("a cookie");
    assert!(
        cookie.starts_with(&format!("db_studio_{}={};", s.port, s.token)),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Scoped to the studio's random prefix: browsers send a cookie to every
    // port of a host, so `Path=/` would reach any other local web server.
    assert!(cookie.ends_with(&format!("Path={}", s.base)), "{cookie}");
    // Other parameters survive the exchange.
    let r = http(
        s.port,
        "GET",
        &s.path(&format!("/t/users?token={}&size=5", s.token)),
        &[],
        None,
    );
    assert_eq!(r.header("location"), Some(&s.path("/t/users?size=5")[..]));
    // The token stays valid for the life of the process.
    let again = http(s.port, "GET", &exchange, &[], None);
    assert_eq!(again.status, 303);
    let home = s.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("href=\"t/users\""));
    assert!(
        home.body.contains(&format!("<base href=\"{}/\">", s.base)),
        "{}",
        home.body
    );
    // Outside the prefix there is nothing, token or cookie: no exchange,
    // no page.
    for path in [
        "/".to_owned(),
        format!("/?token={}", s.token),
        "/t/users".to_owned(),
        format!("{}x/", s.base),
    ] {
        let r = http(s.port, "GET", &path, &[("Cookie", &s.cookie())], None);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.header("set-cookie").is_none(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_token_or_cookie_every_route_is_401() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    for path in [
        "/",
        "/t/users",
        "/sql",
        "/migrations",
        "/assets/studio.js",
        "/nope",
    ] {
        let r = http(s.port, "GET", &s.path(path), &[], None);
        assert_eq!(r.status, 401, "{path}");
        assert!(!r.body.contains("users@"), "{path}");
    }
    let wrong = "0".repeat(64);
    assert_eq!(
        http(
            s.port,
            "GET",
            &s.path(&format!("/?token={wrong}")),
            &[],
            None
        )
        .status,
        401
    );
    assert_eq!(
        http(
            s.port,
            "GET",
            &s.path("/"),
            &[("Cookie", &format!("db_studio_{}={wrong}", s.port))],
            None
        )
        .status,
        401
    );
    let r = http(
        s.port,
        "POST",
        &s.path("/sql"),
        &[("Origin", &s.origin())],
        Some("sql=SELECT+1"),
    );
    assert_eq!(r.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_host_header_is_refused_against_dns_rebinding() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    let cookie = s.cookie();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{}", s.port),
        format!("127.0.0.1:{}", s.port + 1),
        "127.0.0.1".to_owned(),
    ] {
        let r = http(
            s.port,
            "GET",
            &s.path("/"),
            &[("Host", &host), ("Cookie", &cookie)],
            None,
        );
        assert_eq!(r.status, 403, "Host {host}");
        // Even the token exchange is refused under a foreign name.
        let r = http(
            s.port,
            "GET",
            &s.path(&format!("/?token={}", s.token)),
            &[("Host", &host)],
            None,
        );
        assert_eq!(r.status, 403, "Host {host} with the token");
    }
    for host in [
        format!("127.0.0.1:{}", s.port),
        format!("localhost:{}", s.port),
    ] {
        let r = http(
            s.port,
            "GET",
            &s.path("/"),
            &[("Host", &host), ("Cookie", &cookie)],
            None,
        );
        assert_eq!(r.status, 200, "Host {host}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_origin_post_is_refused() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    let id = scalar(&t, "SELECT id FROM users").await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let body = "sql=SELECT+1";
    let ctype = ("Content-Type", "application/x-www-form-urlencoded");
    for origin in [
        Some("http://evil.example"),
        Some("null"),
        Some(&format!("http://127.0.0.1:{}", s.port + 1)[..]),
        None,
    ] {
        let mut headers = vec![("Cookie", s.cookie()), (ctype.0, ctype.1.to_owned())];
        if let Some(o) = origin {
            headers.push(("Origin", o.to_owned()));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            http(s.port, "POST", &s.path("/sql"), &h, Some(body)).status,
            403,
            "Origin {origin:?}"
        );
        // A cross-site form that deletes a row: refused, and the row stays.
        let r = http(
            s.port,
            "POST",
            &s.path(&format!("/t/users/delete?k={id}")),
            &h,
            Some("confirm=1"),
        );
        assert_eq!(r.status, 403, "delete with Origin {origin:?}");
    }
    assert_eq!(t.count("users").await, 1);
    assert_eq!(s.post("/sql", &[("sql", "SELECT 1")]).status, 200);
    let localhost = http(
        s.port,
        "POST",
        &s.path("/sql"),
        &[
            ("Host", &format!("localhost:{}", s.port)),
            ("Cookie", &s.cookie()),
            ("Origin", &format!("http://localhost:{}", s.port)),
            ctype,
        ],
        Some(body),
    );
    assert_eq!(localhost.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cors_headers_and_a_restrictive_csp_everywhere() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    let preflight = http(
        s.port,
        "OPTIONS",
        &s.path("/sql"),
        &[
            ("Cookie", &s.cookie()),
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    let mut responses = vec![
        preflight,
        s.get("/"),
        s.get("/t/users"),
        s.get("/assets/studio.js"),
    ];
    responses.push(http(s.port, "GET", &s.path("/"), &[], None)); // a 401 too
    responses.push(s.post("/sql", &[("sql", "SELECT 1")]));
    for r in &responses {
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k.starts_with("access-control-")),
            "CORS header in {:?}",
            r.headers
        );
        let csp = r
            .header("content-security-policy")
            .expect("CSP on every response");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains('*'),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    }
    // The pages need nothing the policy forbids: no inline script or style.
    for path in ["/", "/t/users", "/sql", "/migrations", "/nope"] {
        support::assert_csp_clean(&s.get(path).body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn table_and_column_names_come_only_from_the_catalog() {
    let t = TestDb::new().await;
    users(&t, 3).await;
    let s = Studio::start(&t.url, &[], &[]);
    assert_eq!(s.get("/t/nope").status, 404);
    assert_eq!(
        s.get("/t/users%22%3B%20DROP%20TABLE%20users%3B--").status,
        404
    );
    assert_eq!(s.get("/t/pg_authid").status, 404, "only the public schema");
    for bad in [
        "fc=nope&fo=eq&fv=1",
        "fc=id%22%3B%20DROP%20TABLE%20users%3B--&fo=eq&fv=1",
        "fc=email&fo=%3D%20%27%27%20OR%201%3D1&fv=1",
        "sort=nope",
        "sort=email%20DESC%3B%20DROP%20TABLE%20users",
        "sort=email_verified", // exists, but no index leads with it
        "size=100000",
        "after=%5B%22x%22%2C%22y%22%5D",
    ] {
        let r = s.get(&format!("/t/users?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("id=\"error\""), "{bad}");
    }
    let r = s.get("/t/users/row?k=a&k=b");
    assert_eq!(r.status, 400, "a key of the wrong length");
    assert_eq!(
        t.count("users").await,
        3,
        "nothing dropped, nothing changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filter_values_travel_as_bind_parameters() {
    let t = TestDb::new().await;
    users(&t, 3).await;
    sql(
        &t,
        "INSERT INTO users (id, email) VALUES (gen_random_uuid(), '100%_sure@example.com')",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    for injection in ["x' OR '1'='1", "x'); DROP TABLE users; --", "' OR 1=1 --"] {
        let q = support::form_body(&[("fc", "email"), ("fo", "eq"), ("fv", injection)]);
        let r = s.get(&format!("/t/users?{q}"));
        assert_eq!(r.status, 200, "{injection}");
        assert!(
            r.body.contains("id=\"no-rows\""),
            "{injection} matched rows"
        );
    }
    // LIKE's wildcards in a "contains" filter are literal.
    let q = support::form_body(&[("fc", "email"), ("fo", "contains"), ("fv", "%_")]);
    let r = s.get(&format!("/t/users?{q}"));
    assert_eq!(row_keys(&r.body).len(), 1, "{}", r.body);
    // A value that is not of the column's type is the server's error, not a crash.
    let r = s.get("/t/users?fc=id&fo=eq&fv=not-a-uuid");
    assert_eq!(r.status, 400);
    assert_eq!(t.count("users").await, 4);
}

// --- SQL console ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_console_runs_queries_and_refuses_escapes_before_the_server_sees_them() {
    let t = TestDb::new().await;
    users(&t, 2).await;
    let s = Studio::start(&t.url, &[], &[("DB_STUDIO_STATEMENT_TIMEOUT_MS", "500")]);
    assert_eq!(s.get("/sql").status, 200);
    let r = s.post(
        "/sql",
        &[("sql", "SELECT email, 1 AS one FROM users ORDER BY email;")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<th>email</th><th>one</th>"), "{}", r.body);
    assert!(r.body.contains("u1@example.com") && r.body.contains("2 row(s)"));
    for escape in [
        "SET transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "RESET ALL",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "COPY users TO PROGRAM 'touch /tmp/pwned'",
        "COPY (SELECT 1) TO '/tmp/x'",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT lo_import('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "WITH gone AS (DELETE FROM users RETURNING *) SELECT count(*) FROM gone",
        "DELETE FROM users",
        "DROP TABLE users",
        "SELECT * INTO stolen FROM users",
        "SELECT * FROM users FOR UPDATE",
        "SELECT 1; DELETE FROM users",
        "SELECT (SELECT set_config('statement_timeout', '0', true))",
        // Functions that run a query given as text, past the parser.
        "SELECT ts_stat($$SELECT set_config('statement_timeout','0',true)::tsvector$$)",
        "SELECT ts_rewrite('a'::tsquery, $$SELECT 'a'::tsquery, 'b'::tsquery$$)",
        "SELECT pg_stat_reset()",
        "SELECT pg_ls_logdir()",
    ] {
        let r = s.post("/sql", &[("sql", escape)]);
        assert_eq!(r.status, 400, "{escape}: {}", r.body);
        assert!(r.body.contains("refused"), "{escape}: {}", r.body);
        assert!(!r.body.contains("Stmt"), "a parser node's name: {}", r.body);
    }
    let r = s.post("/sql", &[("sql", "DELETE FROM users")]);
    assert!(
        r.body
            .contains("DELETE statements are not allowed in the read-only console"),
        "{}",
        r.body
    );
    assert_eq!(t.count("users").await, 2);
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_runs_in_a_read_only_transaction_with_a_timeout() {
    let t = TestDb::new().await;
    users(&t, 2).await;
    // A function that writes: no parser can see inside it; the READ ONLY
    // transaction stops it.
    sql(
        &t,
        "CREATE FUNCTION studio_evil() RETURNS int LANGUAGE sql AS \
         'DELETE FROM users; SELECT 1'",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[("DB_STUDIO_STATEMENT_TIMEOUT_MS", "300")]);
    let r = s.post("/sql", &[("sql", "SELECT studio_evil()")]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("read-only transaction"), "{}", r.body);
    assert_eq!(t.count("users").await, 2);
    let started = std::time::Instant::now();
    let r = s.post("/sql", &[("sql", "SELECT pg_sleep(30)")]);
    assert_eq!(r.status, 400, "{}", r.body);
    // The setting named is the studio's, not the library's.
    assert!(
        r.body
            .contains("cancelled after 300 ms (DB_STUDIO_STATEMENT_TIMEOUT_MS)")
            && !r.body.contains("DB_STATEMENT_TIMEOUT_MS"),
        "{}",
        r.body
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "the statement_timeout stopped it"
    );

    // What a function hides from the parser and READ ONLY allows does not
    // outlive the request: the transaction is rolled back (session settings
    // revert) and session advisory locks are released.
    sql(
        &t,
        "CREATE FUNCTION studio_sticky() RETURNS bigint LANGUAGE sql AS \
         'SELECT pg_advisory_lock(4242); SELECT 1::bigint'",
    )
    .await;
    let r = s.post("/sql", &[("sql", "SELECT studio_sticky()")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        advisory_locks(&t, 4242).await,
        "0",
        "the console left a session advisory lock behind"
    );
}

/// How many sessions hold advisory lock `key` on the test server.
async fn advisory_locks(t: &TestDb, key: u32) -> String {
    scalar(
        t,
        &format!("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {key}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_transaction_pooler_the_studio_leaves_other_clients_locks_alone() {
    use database::ops::cluster::{BouncerOptions, TempPgBouncer};
    let t = TestDb::new().await;
    // One server connection behind the pooler: every client's transactions
    // and anything sent between them land on the same server session.
    let server = common::server_url();
    let mut options = BouncerOptions::transaction_mode(
        server.host_str().unwrap_or("127.0.0.1"),
        server.port().unwrap_or(5432),
    );
    options.pool_size = 1;
    let bouncer = match TempPgBouncer::start(&options) {
        Ok(b) => b,
        Err(e) => {
            common::skip_without("pgbouncer", &e);
            return;
        }
    };
    let pooled = common::through_bouncer(&bouncer, &t.name);
    // Another client of the pooler holds a session-level advisory lock,
    // which stays on that one server session.
    let mut other = <database::Conn as diesel_async::AsyncConnection>::establish(&pooled)
        .await
        .unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(&mut other, "SELECT pg_advisory_lock(4243)")
        .await
        .unwrap();
    let pooler = ("DB_POOLER", "transaction");
    let s = Studio::start(&pooled, &[], &[pooler, ("DATABASE_MIGRATION_URL", &t.url)]);
    assert_eq!(s.get("/t/users").status, 200);
    assert_eq!(s.post("/sql", &[("sql", "SELECT 1")]).status, 200);
    // A failing statement too: its transaction is released the same way.
    assert_eq!(s.post("/sql", &[("sql", "SELECT 1/0")]).status, 400);
    assert_eq!(
        advisory_locks(&t, 4243).await,
        "1",
        "the studio released another client's advisory lock"
    );
    drop(s);
    // Without a URL of the server itself it says what to set.
    let Err((code, err)) = Studio::try_start(&pooled, &[], &[pooler]) else {
        panic!("the studio started through the pooler");
    };
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("DATABASE_MIGRATION_URL"), "{err}");
}

// --- Write mode is opt-in ---------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_refuses_every_write_route() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    let id = scalar(&t, "SELECT id FROM users").await;
    let s = Studio::start(&t.url, &[], &[]);
    assert_eq!(s.get(&format!("/t/users/edit?k={id}")).status, 403);
    assert_eq!(s.get("/t/users/new").status, 403);
    assert_eq!(s.get(&format!("/t/users/delete?k={id}")).status, 403);
    let r = s.post(
        &format!("/t/users/edit?k={id}"),
        &[("c:email", "x@example.com"), ("confirm", "1")],
    );
    assert_eq!(r.status, 403);
    let r = s.post(&format!("/t/users/delete?k={id}"), &[("confirm", "1")]);
    assert_eq!(r.status, 403);
    assert_eq!(
        scalar(&t, "SELECT email FROM users").await,
        "u1@example.com"
    );
    assert!(
        !s.get(&format!("/t/users/row?k={id}"))
            .body
            .contains("id=\"edit\"")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn write_is_refused_by_the_production_guard() {
    let t = TestDb::new().await;
    let Err((code, err)) = Studio::try_start(&t.url, &["--write"], &[("APP_ENV", "production")])
    else {
        panic!("--write started against production");
    };
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("refused"), "{err}");
    // Reading stays allowed.
    let s = Studio::start(&t.url, &[], &[("APP_ENV", "production")]);
    assert_eq!(s.get("/").status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_hands_the_url_to_the_desktop_opener() {
    let t = TestDb::new().await;
    let bin = tempfile::tempdir().unwrap();
    let seen = bin.path().join("opened");
    let opener = bin.path().join(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" > {}\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let s = Studio::start(&t.url, &["--open"], &[("PATH", &path)]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the opener was not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), s.url);
}
