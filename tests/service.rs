//! `examples/service` served on a loopback port and driven over HTTP: the
//! happy paths, and the README's error table as HTTP (404, 409, 422, and 503
//! with Retry-After while the pool is exhausted).

mod common;

#[allow(dead_code)]
#[path = "../examples/service/main.rs"]
mod service;

use std::time::Duration;

use common::TestDb;
use database::Db;
use diesel_async::SimpleAsyncConnection;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange over a fresh connection: (status, headers, body).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    http_with(port, method, path, token, body, "").await
}

/// `http` with more header lines (each ending in `\r\n`).
async fn http_with(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &str,
) -> (u16, String, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n{headers}"))
        .unwrap_or_else(|| headers.to_owned());
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("the service answers")
        .unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_owned(), json)
}

/// The example's routes over `t`'s database, as the service's own role
/// (row-level security applies to it), migrations as the owner.
async fn start(t: &TestDb, pool_size: usize) -> u16 {
    start_with(t, pool_size, |_| {}).await
}

/// `start`, with `configure` applied to the service's configuration.
async fn start_with(
    t: &TestDb,
    pool_size: usize,
    configure: impl FnOnce(&mut database::Config),
) -> u16 {
    let mut config = t.service_db().config().clone();
    config.pool_size = pool_size;
    configure(&mut config);
    config.wait_timeout = Duration::from_secs(1);
    let db = Db::new(config).unwrap();
    db.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, service::router(db)).await });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_service_speaks_the_error_table_over_http() {
    let t = TestDb::new().await;
    let port = start(&t, 4).await;

    let (status, _, user) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({"email": "ann@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (status, _, body) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({"email": "ANN@example.com"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["constraint"].as_str().is_some(), "{body}");
    let (status, _, body) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({"email": "not an email"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["fields"][0]["field"], "email", "{body}");
    assert_eq!(
        t.count("users").await,
        1,
        "nothing written by the refused calls"
    );

    let (status, _, signed_in) = http(
        port,
        "POST",
        "/sessions",
        None,
        Some(json!({"email": "ann@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{signed_in}");
    let token = signed_in["token"].as_str().unwrap().to_owned();
    let (status, _, me) = http(port, "GET", "/me", Some(&token), None).await;
    assert_eq!((status, &me["email"]), (200, &user["email"]));
    let (status, _, _) = http(port, "GET", "/me", Some("forged"), None).await;
    assert_eq!(status, 401);

    let (status, _, tenant) = http(
        port,
        "POST",
        "/tenants",
        Some(&token),
        Some(json!({"name": "Acme", "slug": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{tenant}");
    for i in 0..3 {
        let (status, _, todo) = http(
            port,
            "POST",
            "/tenants/acme/todos",
            Some(&token),
            Some(json!({"title": format!("todo {i}")})),
        )
        .await;
        assert_eq!(status, 201, "{todo}");
    }
    let (status, _, first) = http(
        port,
        "GET",
        "/tenants/acme/todos?limit=2",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2, "{first}");
    let after = urlencode(&first["next"].to_string());
    let (status, _, second) = http(
        port,
        "GET",
        &format!("/tenants/acme/todos?limit=2&after={after}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next"].is_null());
    let (status, _, body) = http(
        port,
        "GET",
        &format!("/todos/{}", uuid::Uuid::now_v7()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = http(
        port,
        "GET",
        "/tenants/acme/todos?limit=1000",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 422);

    let graph = json!({"nodes": [{"id": "a", "type": "start", "data": {}}, {"id": "b", "type": "end", "data": {}}],
                       "edges": [{"source": "a", "target": "b"}]});
    let (status, _, workflow) = http(
        port,
        "POST",
        "/tenants/acme/workflows",
        Some(&token),
        Some(json!({"name": "flow", "graph": graph})),
    )
    .await;
    assert_eq!(status, 201, "{workflow}");
    let path = format!("/workflows/{}/runs", workflow["id"].as_str().unwrap());
    let (status, _, run) = http(
        port,
        "POST",
        &path,
        Some(&token),
        Some(json!({"tenant": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["steps"].as_array().unwrap().len(), 2, "{run}");
}

/// Signs `email` up and in; the bearer token.
async fn signed_in(port: u16, email: &str) -> String {
    let (status, _, body) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({ "email": email })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = http(
        port,
        "POST",
        "/sessions",
        None,
        Some(json!({ "email": email })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// A user with todos in two tenants pages one tenant's todos: full pages of
/// that tenant only, each once. (The example used to page over all of the
/// user's todos and drop the other tenant's afterwards: the first page came
/// back empty.) A non-member sees the tenant as missing.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_todos_page_in_full_pages_and_only_that_tenant() {
    let t = TestDb::new().await;
    let port = start(&t, 4).await;
    let token = signed_in(port, "ann@example.com").await;
    for slug in ["acme", "bolt"] {
        let (status, _, body) = http(
            port,
            "POST",
            "/tenants",
            Some(&token),
            Some(json!({"name": slug, "slug": slug})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // Interleaved: acme's todos are not the user's newest.
    let mut acme = Vec::new();
    for i in 0..5 {
        for slug in ["bolt", "acme", "bolt"] {
            let (status, _, todo) = http(
                port,
                "POST",
                &format!("/tenants/{slug}/todos"),
                Some(&token),
                Some(json!({ "title": format!("{slug} {i}") })),
            )
            .await;
            assert_eq!(status, 201, "{todo}");
            if slug == "acme" {
                acme.push(todo["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/tenants/acme/todos?limit=2".to_owned(),
            Some(a) => format!("/tenants/acme/todos?limit=2&after={a}"),
        };
        let (status, _, page) = http(port, "GET", &path, Some(&token), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        if !page["next"].is_null() {
            assert_eq!(items.len(), 2, "a page before the last is full: {page}");
        }
        for item in items {
            assert!(
                item["title"].as_str().unwrap().starts_with("acme"),
                "{item}"
            );
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        if page["next"].is_null() {
            break;
        }
        after = Some(urlencode(&page["next"].to_string()));
    }
    acme.reverse();
    assert_eq!(seen, acme, "every acme todo once, newest first");
    // A tenant todo by id, inside its tenant; not from the other tenant.
    let (status, _, body) = http(
        port,
        "GET",
        &format!("/tenants/acme/todos/{}", acme[0]),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(
        port,
        "GET",
        &format!("/tenants/bolt/todos/{}", acme[0]),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // Someone else: not a member, the tenant is not there for them.
    let other = signed_in(port, "bob@example.com").await;
    let (status, _, body) = http(
        port,
        "GET",
        "/tenants/acme/todos?limit=2",
        Some(&other),
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_is_a_503_with_retry_after() {
    let t = TestDb::new().await;
    let port = start(&t, 1).await;
    let (status, _, _) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({"email": "bo@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    // A lock makes the first request hold the only pooled connection.
    let mut locker = <database::Conn as diesel_async::AsyncConnection>::establish(&t.url)
        .await
        .unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let blocked = tokio::spawn(async move {
        http(
            port,
            "POST",
            "/sessions",
            None,
            Some(json!({"email": "bo@example.com"})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, head, body) = http(
        port,
        "POST",
        "/users",
        None,
        Some(json!({"email": "cy@example.com"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(blocked.await.unwrap().0, 201);
}

/// With `DB_SQLCOMMENTER=true`, a request's `traceparent` header reaches
/// the server on the statements it runs (a trigger records the text of the
/// statement that inserts each todo, `current_query()`); a malformed header
/// is ignored, and the request still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_requests_traceparent_reaches_the_server_with_sqlcommenter_on() {
    let t = TestDb::new().await;
    let port = start_with(&t, 2, |c| c.sqlcommenter = true).await;
    t.conn()
        .await
        .batch_execute(
            "CREATE TABLE seen_statements (query text NOT NULL);
             CREATE FUNCTION record_statement() RETURNS trigger LANGUAGE plpgsql
               SECURITY DEFINER SET search_path = public AS
               $$ BEGIN INSERT INTO seen_statements VALUES (current_query()); RETURN NEW; END $$;
             CREATE TRIGGER record_statement AFTER INSERT ON todos
               FOR EACH ROW EXECUTE FUNCTION record_statement();",
        )
        .await
        .unwrap();
    let token = signed_in(port, "tia@example.com").await;
    let (status, _, body) = http(
        port,
        "POST",
        "/tenants",
        Some(&token),
        Some(json!({"name": "acme", "slug": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for traceparent in [header, "00-not-a-trace-01", ""] {
        let (status, _, body) = http_with(
            port,
            "POST",
            "/tenants/acme/todos",
            Some(&token),
            Some(json!({ "title": format!("traced {traceparent}") })),
            &format!("traceparent: {traceparent}\r\n"),
        )
        .await;
        assert_eq!(status, 201, "{traceparent}: {body}");
    }
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = diesel::sql_types::Text)]
        query: String,
    }
    let seen: Vec<Seen> = diesel_async::RunQueryDsl::load(
        diesel::sql_query("SELECT query FROM seen_statements"),
        &mut *t.conn().await,
    )
    .await
    .unwrap();
    let traced: Vec<&str> = seen.iter().map(|s| s.query.as_str()).collect();
    assert_eq!(traced.len(), 3, "{traced:#?}");
    assert!(
        traced[0].starts_with("INSERT INTO \"todos\"")
            && traced[0].ends_with(&format!("/*traceparent='{header}'*/")),
        "{traced:#?}"
    );
    assert!(
        traced[1..].iter().all(|q| !q.contains("traceparent")),
        "a malformed or empty header adds nothing: {traced:#?}"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
