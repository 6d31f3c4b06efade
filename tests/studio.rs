//! `db studio` at the HTTP level: the real binary on a free port, a real
//! PostgreSQL database per test, plain HTTP/1.1 requests. Every security
//! rule has a test here that fails without the rule.

mod common;
#[path = "studio_support/mod.rs"]
mod support;

use common::TestDb;
use diesel_async::SimpleAsyncConnection;
use support::{Studio, href_of, http, http_to, unescape};

async fn sql(t: &TestDb, sql: &str) {
    t.conn()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar(t: &TestDb, sql: &str) -> String {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = Text)]
        v: String,
    }
    diesel::sql_query(format!("SELECT ({sql})::text AS v"))
        .get_result::<V>(&mut *t.conn().await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .v
}

/// `n` users `u1@example.com`...; returns nothing (ids are random).
async fn users(t: &TestDb, n: usize) {
    sql(
        t,
        &format!(
            "INSERT INTO users (id, email) SELECT gen_random_uuid(), 'u' || g || '@example.com' \
             FROM generate_series(1, {n}) g"
        ),
    )
    .await;
}

/// Every `href` of links with `class="<class>"`.
fn links(html: &str, class: &str) -> Vec<String> {
    let needle = format!("class=\"{class}\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i..];
            let rest = &rest[rest.find("href=\"").unwrap() + 6..];
            unescape(&rest[..rest.find('"').unwrap()])
        })
        .collect()
}

/// The `k=` values of the row links on a table page, in order.
fn row_keys(html: &str) -> Vec<String> {
    links(html, "open")
        .iter()
        .map(|h| {
            let q = h.split_once('?').unwrap().1;
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "k")
                .unwrap()
                .1
                .into_owned()
        })
        .collect()
}

// --- Start-up -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn prints_one_url_and_listens_on_loopback_only() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    assert_eq!(s.token.len(), 64, "a 256-bit token in hex");
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
    let r = http(s.port, "GET", &format!("/?token={}", s.token), &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/"),
        "the token leaves the address bar"
    );
    let cookie = r.header("set-cookie").expect("a cookie");
    assert!(
        cookie.starts_with(&format!("db_studio_{}={};", s.port, s.token)),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    // Other parameters survive the exchange.
    let r = http(
        s.port,
        "GET",
        &format!("/t/users?token={}&size=5", s.token),
        &[],
        None,
    );
    assert_eq!(r.header("location"), Some("/t/users?size=5"));
    // The token stays valid for the life of the process.
    let again = http(s.port, "GET", &format!("/?token={}", s.token), &[], None);
    assert_eq!(again.status, 303);
    let home = s.get("/");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("/t/users"));
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
        let r = http(s.port, "GET", path, &[], None);
        assert_eq!(r.status, 401, "{path}");
        assert!(!r.body.contains("users@"), "{path}");
    }
    let wrong = "0".repeat(64);
    assert_eq!(
        http(s.port, "GET", &format!("/?token={wrong}"), &[], None).status,
        401
    );
    assert_eq!(
        http(
            s.port,
            "GET",
            "/",
            &[("Cookie", &format!("db_studio_{}={wrong}", s.port))],
            None
        )
        .status,
        401
    );
    let r = http(
        s.port,
        "POST",
        "/sql",
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
            "/",
            &[("Host", &host), ("Cookie", &cookie)],
            None,
        );
        assert_eq!(r.status, 403, "Host {host}");
        // Even the token exchange is refused under a foreign name.
        let r = http(
            s.port,
            "GET",
            &format!("/?token={}", s.token),
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
            "/",
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
            http(s.port, "POST", "/sql", &h, Some(body)).status,
            403,
            "Origin {origin:?}"
        );
        // A cross-site form that deletes a row: refused, and the row stays.
        let r = http(
            s.port,
            "POST",
            &format!("/t/users/delete?k={id}"),
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
        "/sql",
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
        "/sql",
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
    responses.push(http(s.port, "GET", "/", &[], None)); // a 401 too
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
    let home = s.get("/").body;
    assert!(
        !home.contains("<script>") && !home.contains("style="),
        "{home}"
    );
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
    ] {
        let r = s.post("/sql", &[("sql", escape)]);
        assert_eq!(r.status, 400, "{escape}: {}", r.body);
        assert!(r.body.contains("refused"), "{escape}: {}", r.body);
    }
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
    assert!(
        r.body.to_lowercase().contains("timeout") || r.body.contains("statement_timeout"),
        "{}",
        r.body
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "the statement_timeout stopped it"
    );
}

// --- Browsing -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn home_groups_every_table_by_its_domain_folder() {
    let t = TestDb::new().await;
    users(&t, 3).await;
    let s = Studio::start(&t.url, &[], &[]);
    let home = s.get("/").body;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let schema = std::fs::read_to_string(src.join("schema.rs")).unwrap();
    let mut checked = 0;
    for dir in std::fs::read_dir(&src).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let domain = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let table = file
                .unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if !schema.contains(&format!("    {table} (")) {
                continue; // not a table's file
            }
            let section = home
                .split("<section class=\"domain\">")
                .find(|s| s.contains(&format!("<h2>{domain}</h2>")))
                .unwrap_or_else(|| panic!("no section for domain {domain}"));
            assert!(
                section.contains(&format!("href=\"/t/{table}\"")),
                "{table} is not listed under {domain}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
    assert!(
        home.contains(r#"<a href="/t/users">users</a> <span class="count">3</span>"#),
        "exact count"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyset_pages_forward_and_back_cover_every_row_once() {
    let t = TestDb::new().await;
    users(&t, 25).await;
    let s = Studio::start(&t.url, &[], &[]);
    let mut path = "/t/users?size=10".to_owned();
    let mut pages = Vec::new();
    loop {
        let r = s.get(&path);
        assert_eq!(r.status, 200);
        assert!(r.header("server-timing").unwrap().starts_with("db;dur="));
        pages.push((path.clone(), row_keys(&r.body)));
        match href_of(&r.body, "next") {
            Some(next) => {
                assert!(next.contains("after="), "{next}");
                assert!(!next.contains("offset"), "{next}");
                path = next;
            }
            None => break,
        }
    }
    let sizes: Vec<usize> = pages.iter().map(|(_, k)| k.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let all: Vec<String> = pages.iter().flat_map(|(_, k)| k.clone()).collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "every row once, in key order");
    // Back from the last page: the middle page again.
    let last = s.get(&pages[2].0).body;
    let prev = href_of(&last, "prev").unwrap();
    assert!(prev.contains("before="));
    let back = s.get(&prev).body;
    assert_eq!(row_keys(&back), pages[1].1);
    let first = s.get(&href_of(&back, "prev").unwrap()).body;
    assert_eq!(row_keys(&first), pages[0].1);
    assert!(
        href_of(&first, "prev").is_none(),
        "no page before the first"
    );
}

/// Pages through `table` sorted by `column` both ways, 7 rows a page, and
/// compares with PostgreSQL's own order (NULLs last ascending).
async fn assert_sorted_paging(t: &TestDb, s: &Studio, table: &str, column: &str) {
    for (dir, nulls) in [("asc", "NULLS LAST"), ("desc", "NULLS FIRST")] {
        let expected: Vec<String> = scalar(
            t,
            &format!(
                "SELECT string_agg(id::text, ',' ORDER BY {column} {dir} {nulls}, id {dir}) FROM {table}"
            ),
        )
        .await
        .split(',')
        .map(str::to_owned)
        .collect();
        let mut path = format!("/t/{table}?sort={column}&dir={dir}&size=7");
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        loop {
            let body = s.get(&path).body;
            pages.push(path.clone());
            seen.extend(row_keys(&body));
            match href_of(&body, "next") {
                Some(n) => path = n,
                None => break,
            }
        }
        assert_eq!(seen, expected, "{table} by {column} {dir}");
        for p in 1..pages.len() - 1 {
            let back = s
                .get(&href_of(&s.get(&pages[p + 1]).body, "prev").unwrap())
                .body;
            assert_eq!(
                row_keys(&back),
                expected[7 * p..7 * (p + 1)],
                "back to page {p} {dir}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sorting_by_an_indexed_column_pages_through_ties_in_both_directions() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    sql(
        &t,
        "INSERT INTO sessions (id, user_id, token_hash, expires_at) \
         SELECT gen_random_uuid(), (SELECT id FROM users), sha256(g::text::bytea), \
                timestamptz '2030-01-01' + (g % 3) * interval '1 day' \
         FROM generate_series(1, 23) g",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    assert_sorted_paging(&t, &s, "sessions", "expires_at").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sorting_by_a_nullable_indexed_column_keeps_the_nulls() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    sql(
        &t,
        "INSERT INTO tenants (id, name, slug) SELECT gen_random_uuid(), 't' || g, 't' || g \
         FROM generate_series(1, 2) g; \
         INSERT INTO todos (id, user_id, tenant_id, title) \
         SELECT gen_random_uuid(), (SELECT id FROM users), \
                CASE WHEN g % 3 = 0 THEN NULL ELSE (SELECT id FROM tenants ORDER BY slug LIMIT 1 OFFSET g % 2) END, \
                'todo ' || g \
         FROM generate_series(1, 26) g",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    assert_sorted_paging(&t, &s, "todos", "tenant_id").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_combine_and_live_in_the_url() {
    let t = TestDb::new().await;
    users(&t, 12).await;
    sql(
        &t,
        "UPDATE users SET email_verified = true WHERE email LIKE 'u1%'",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    let q = "fc=email&fo=contains&fv=u1&fc=email_verified&fo=eq&fv=true&fc=email&fo=notnull&fv=";
    let r = s.get(&format!("/t/users?{q}"));
    assert_eq!(r.status, 200);
    // u1, u10, u11, u12 verified and containing "u1".
    assert_eq!(row_keys(&r.body).len(), 4, "{}", r.body);
    let gt = s.get("/t/users?fc=email&fo=gt&fv=u5%40example.com");
    assert_eq!(row_keys(&gt.body).len(), 4, "u6..u9");
    let null = s.get("/t/users?fc=email&fo=null&fv=");
    assert!(null.body.contains("id=\"no-rows\""));
    // The form shows the filters back, and the export links carry them.
    assert!(r.body.contains(r#"value="u1""#));
    let csv = href_of(&r.body, "export-csv").unwrap();
    assert!(csv.contains("fc=email&fo=contains&fv=u1"), "{csv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_keys_link_both_ways_with_counts() {
    let t = TestDb::new().await;
    users(&t, 2).await;
    let uid = scalar(&t, "SELECT id FROM users ORDER BY email LIMIT 1").await;
    sql(
        &t,
        &format!(
            "INSERT INTO sessions (id, user_id, token_hash, expires_at) \
             SELECT gen_random_uuid(), '{uid}', sha256(g::text::bytea), now() \
             FROM generate_series(1, 2) g"
        ),
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    let sessions = s.get("/t/sessions").body;
    let fk = links(&sessions, "fk");
    assert_eq!(fk.len(), 2);
    assert_eq!(fk[0], format!("/t/users/row?k={uid}"));
    let user = s.get(&fk[0]);
    assert_eq!(user.status, 200);
    let refs = &user.body[user.body.find("id=\"referenced-by\"").unwrap()..];
    let sessions_ref = refs
        .split("<li>")
        .find(|li| li.contains("data-table=\"sessions\""))
        .unwrap();
    assert!(
        sessions_ref.contains("<span class=\"count\">2</span>"),
        "{sessions_ref}"
    );
    let back = links(refs, "ref")
        .into_iter()
        .find(|h| h.starts_with("/t/sessions?"))
        .unwrap();
    assert_eq!(row_keys(&s.get(&back).body).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn row_detail_shows_json_timestamps_enums_and_long_text() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    let uid = scalar(&t, "SELECT id FROM users").await;
    let long = "x".repeat(300);
    sql(
        &t,
        &format!(
            "INSERT INTO user_settings (user_id, settings) VALUES ('{uid}', '{{\"theme\": {{\"mode\": \"dark\"}}, \"n\": [1,2]}}'); \
             INSERT INTO chats (id, user_id, title) VALUES (gen_random_uuid(), '{uid}', 'c'); \
             INSERT INTO todos (id, user_id, title, description) VALUES (gen_random_uuid(), '{uid}', 't', '{long}')"
        ),
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    let settings = s.get(&format!("/t/user_settings/row?k={uid}")).body;
    assert!(
        settings.contains("<details class=\"json\" open>"),
        "{settings}"
    );
    assert!(
        settings.contains("&quot;mode&quot;: &quot;dark&quot;"),
        "pretty-printed: {settings}"
    );
    let created = settings
        .split("data-column=\"created_at\">")
        .nth(1)
        .unwrap();
    assert!(
        created.starts_with("<time datetime=\"20") && created.contains("Z\">"),
        "{created}"
    );
    assert!(created.contains(" UTC</time>"));
    let chat_id = scalar(&t, "SELECT id FROM chats").await;
    let chat = s.get(&format!("/t/chats/row?k={chat_id}")).body;
    assert!(
        chat.contains("<span class=\"enum\">private</span>"),
        "{chat}"
    );
    let todo_id = scalar(&t, "SELECT id FROM todos").await;
    let todo = s.get(&format!("/t/todos/row?k={todo_id}")).body;
    assert!(
        todo.contains("<details class=\"long\">") && todo.contains("(300 characters)"),
        "{todo}"
    );
    assert_eq!(s.get(&format!("/t/chats/row?k={uid}")).status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn export_streams_the_filtered_view_as_csv_and_json() {
    let t = TestDb::new().await;
    users(&t, 2500).await;
    sql(
        &t,
        "INSERT INTO users (id, email) VALUES (gen_random_uuid(), 'quote\"comma,@example.com')",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    let csv = s.get("/t/users/export.csv");
    assert_eq!(csv.status, 200);
    assert!(csv.chunked, "streamed, not buffered");
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "id,email,email_verified,name,image,created_at,updated_at"
    );
    assert_eq!(lines.len(), 2502);
    assert!(csv.body.contains("\"quote\"\"comma,@example.com\""));
    let json = s.get("/t/users/export.json?fc=email&fo=contains&fv=u1&size=10");
    assert!(json.chunked);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.body).unwrap();
    // u1, u10-u19, u100-u199, u1000-u1999: every match, not one page.
    assert_eq!(rows.len(), 1 + 10 + 100 + 1000);
    assert!(
        rows.iter()
            .all(|r| r["email"].as_str().unwrap().contains("u1"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_migrations_page_shows_what_db_status_prints() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &[], &[]);
    let page = s.get("/migrations").body;
    let set = database::migrate::MigrationSet::embedded();
    for m in set.iter() {
        assert!(
            page.contains(&m.version) && page.contains(&m.name),
            "{}",
            m.name
        );
    }
    assert!(
        page.contains(&format!("{} applied, 0 pending", set.len())),
        "{page}"
    );
}

// --- Write mode -------------------------------------------------------------

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
async fn an_edit_is_previewed_with_its_binds_then_runs_in_a_transaction() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    let id = scalar(&t, "SELECT id FROM users").await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let form = s.get(&format!("/t/users/edit?k={id}"));
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"u1@example.com\""));
    let path = format!("/t/users/edit?k={id}");
    let fields = [
        ("c:email", "new@example.com"),
        ("o:email", "u1@example.com"),
        ("c:email_verified", "false"),
        ("o:email_verified", "false"),
    ];
    let preview = s.post(&path, &fields);
    assert_eq!(preview.status, 200, "{}", preview.body);
    let sql_text = unescape(
        preview
            .body
            .split("id=\"preview-sql\">")
            .nth(1)
            .unwrap()
            .split("</pre>")
            .next()
            .unwrap(),
    );
    assert!(
        sql_text.starts_with(
            "UPDATE \"users\" SET \"email\" = CAST($1 AS text) WHERE \"id\" = CAST($2 AS uuid)"
        ),
        "{sql_text}"
    );
    let set_clause = sql_text.split(" WHERE ").next().unwrap();
    assert!(
        !set_clause.contains("email_verified"),
        "only changed columns: {sql_text}"
    );
    assert!(
        preview
            .body
            .contains("<li><code>new@example.com</code></li>")
    );
    assert_eq!(
        scalar(&t, "SELECT email FROM users").await,
        "u1@example.com",
        "a preview writes nothing"
    );
    let mut confirm = fields.to_vec();
    confirm.push(("confirm", "1"));
    let done = s.post(&path, &confirm);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("id=\"done\""));
    assert_eq!(
        scalar(&t, "SELECT email FROM users").await,
        "new@example.com"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn write_errors_come_back_typed_and_nothing_is_written() {
    let t = TestDb::new().await;
    users(&t, 2).await;
    let id = scalar(&t, "SELECT id FROM users ORDER BY email LIMIT 1").await;
    sql(
        &t,
        &format!("INSERT INTO user_settings (user_id) VALUES ('{id}')"),
    )
    .await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    // A unique rule: the other user's address.
    let r = s.post(
        &format!("/t/users/edit?k={id}"),
        &[("c:email", "u2@example.com"), ("confirm", "1")],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("Conflict on constraint users_email_lower_key"),
        "{}",
        r.body
    );
    // JSON is checked before it is sent, and the field is named.
    let r = s.post(
        &format!("/t/user_settings/edit?k={id}"),
        &[("c:settings", "{not json"), ("confirm", "1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("settings"), "{}", r.body);
    // A CHECK constraint.
    let r = s.post(
        &format!("/t/user_settings/edit?k={id}"),
        &[("c:settings", "[1, 2]"), ("confirm", "1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body
            .contains("violates check constraint user_settings_settings_object"),
        "{}",
        r.body
    );
    // An enum takes only its labels.
    sql(&t, &format!("INSERT INTO chats (id, user_id, title) VALUES (gen_random_uuid(), '{id}', 'c'); INSERT INTO todos (id, user_id, title, description) VALUES (gen_random_uuid(), '{id}', 't', 'd')")).await;
    let chat = scalar(&t, "SELECT id FROM chats").await;
    let r = s.post(
        &format!("/t/chats/edit?k={chat}"),
        &[("c:visibility", "everyone"), ("confirm", "1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let form = s.get(&format!("/t/chats/edit?k={chat}")).body;
    assert!(
        form.contains("<option selected>private</option><option>public</option>"),
        "{form}"
    );
    let r = s.post(
        &format!("/t/chats/edit?k={chat}"),
        &[("c:visibility", "public"), ("confirm", "1")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(scalar(&t, "SELECT visibility FROM chats").await, "public");
    // NULL is explicit.
    let todo = scalar(&t, "SELECT id FROM todos").await;
    let r = s.post(
        &format!("/t/todos/edit?k={todo}"),
        &[
            ("n:description", "1"),
            ("c:description", "ignored"),
            ("confirm", "1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        scalar(&t, "SELECT coalesce(description, 'NULL') FROM todos").await,
        "NULL"
    );
    assert_eq!(scalar(&t, "SELECT settings FROM user_settings").await, "{}");
    assert_eq!(
        scalar(
            &t,
            "SELECT count(*) FROM users WHERE email = 'u2@example.com'"
        )
        .await,
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_uses_defaults_and_delete_shows_its_cascades_first() {
    let t = TestDb::new().await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let form = s.get("/t/users/new").body;
    assert!(form.contains("default <code>now()</code>"), "{form}");
    let id = "0196a000-0000-7000-8000-000000000001";
    let fields = [
        ("c:id", id),
        ("c:email", "ann@example.com"),
        ("d:email_verified", "1"),
        ("d:created_at", "1"),
        ("d:updated_at", "1"),
    ];
    let preview = s.post("/t/users/new", &fields);
    assert!(
        unescape(&preview.body).contains(
            "INSERT INTO \"users\" (\"id\", \"email\") VALUES (CAST($1 AS uuid), CAST($2 AS text))"
        ),
        "{}",
        preview.body
    );
    assert_eq!(t.count("users").await, 0);
    let mut confirm = fields.to_vec();
    confirm.push(("confirm", "1"));
    let done = s.post("/t/users/new", &confirm);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        scalar(&t, "SELECT email_verified FROM users").await,
        "false"
    );
    sql(
        &t,
        &format!(
            "INSERT INTO sessions (id, user_id, token_hash, expires_at) \
             SELECT gen_random_uuid(), '{id}', sha256(g::text::bytea), now() FROM generate_series(1, 3) g"
        ),
    )
    .await;
    let page = s.get(&format!("/t/users/delete?k={id}")).body;
    let cascades = page.split("id=\"cascades\">").nth(1).unwrap();
    assert!(
        cascades.contains("<strong>3</strong> row(s) of sessions (user_id): deleted too"),
        "{cascades}"
    );
    assert!(unescape(&page).contains("DELETE FROM \"users\" WHERE \"id\" = CAST($1 AS uuid)"));
    assert_eq!(t.count("sessions").await, 3, "the page deletes nothing");
    let r = s.post(&format!("/t/users/delete?k={id}"), &[("confirm", "1")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.count("users").await, 0);
    assert_eq!(t.count("sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn big_tables_show_the_planners_estimate_marked_as_such() {
    let t = TestDb::new().await;
    sql(
        &t,
        "CREATE TABLE studio_big AS SELECT g AS id FROM generate_series(1, 150000) g; \
         ALTER TABLE studio_big ADD PRIMARY KEY (id); ANALYZE studio_big",
    )
    .await;
    let s = Studio::start(&t.url, &[], &[]);
    let home = s.get("/").body;
    let item = home
        .split("<li>")
        .find(|li| li.contains("href=\"/t/studio_big\""))
        .unwrap();
    assert!(
        item.contains("class=\"est\" title=\"the planner's estimate\">~"),
        "{item}"
    );
    let section = home
        .split("<section class=\"domain\">")
        .find(|s| s.contains("studio_big"))
        .unwrap();
    assert!(
        section.starts_with("<h2>other</h2>"),
        "a table of no domain"
    );
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
