//! `db studio` at the HTTP level, part 2: browsing (home, pages, sorting,
//! filters, foreign keys, row detail), export, the migrations page and
//! write mode. Start-up and security: tests/studio.rs.

mod common;
#[path = "studio_support/mod.rs"]
mod support;

use common::TestDb;
use support::{
    Studio, href_of, links, row_keys, scalar, sql, sqlite_exec, sqlite_file, sqlite_scalar,
    unescape, users,
};

// --- Browsing -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn home_groups_every_table_by_its_domain_folder() {
    let t = TestDb::new().await;
    users(&t, 3).await;
    let s = Studio::start(&t.url, &[], &[]);
    let home = s.get("/").body;
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("src");
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
                section.contains(&format!("href=\"t/{table}\"")),
                "{table} is not listed under {domain}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
    assert!(
        home.contains(r#"<a href="t/users">users</a> <span class="count">3</span>"#),
        "exact count"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keyset_pages_forward_and_back_cover_every_row_once() {
    let t = TestDb::new().await;
    users(&t, 25).await;
    let s = Studio::start(&t.url, &[], &[]);
    let mut path = "t/users?size=10".to_owned();
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
        let mut path = format!("t/{table}?sort={column}&dir={dir}&size=7");
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
    let r = s.get(&format!("t/users?{q}"));
    assert_eq!(r.status, 200);
    // u1, u10, u11, u12 verified and containing "u1".
    assert_eq!(row_keys(&r.body).len(), 4, "{}", r.body);
    let gt = s.get("t/users?fc=email&fo=gt&fv=u5%40example.com");
    assert_eq!(row_keys(&gt.body).len(), 4, "u6..u9");
    let null = s.get("t/users?fc=email&fo=null&fv=");
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
    let sessions = s.get("t/sessions").body;
    let fk = links(&sessions, "fk");
    assert_eq!(fk.len(), 2);
    assert_eq!(fk[0], format!("t/users/row?k={uid}"));
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
        .find(|h| h.starts_with("t/sessions?"))
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
    let settings = s.get(&format!("t/user_settings/row?k={uid}")).body;
    // A tree whose every object and array folds on its own, and the text.
    assert!(
        settings.contains(
            "<div class=\"json-tree\"><details class=\"jv\" open><summary>{ 2 keys }</summary>"
        ),
        "{settings}"
    );
    assert!(
        settings.contains(
            "<li><span class=\"jk\">theme</span>: <details class=\"jv\" open><summary>{ 1 key }</summary>"
        ),
        "{settings}"
    );
    assert!(
        settings.contains("<details class=\"json-text\">"),
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
    let chat = s.get(&format!("t/chats/row?k={chat_id}")).body;
    assert!(
        chat.contains("<span class=\"enum\">private</span>"),
        "{chat}"
    );
    let todo_id = scalar(&t, "SELECT id FROM todos").await;
    let todo = s.get(&format!("t/todos/row?k={todo_id}")).body;
    assert!(
        todo.contains("<details class=\"long\">") && todo.contains("(300 characters)"),
        "{todo}"
    );
    assert_eq!(s.get(&format!("t/chats/row?k={uid}")).status, 404);
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
    let csv = s.get("t/users/export.csv");
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
    let json = s.get("t/users/export.json?fc=email&fo=contains&fv=u1&size=10");
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
    // Line for line what `db status` prints: version, state, time, name and
    // notes (here: a version applied by the diesel CLI, no checksum yet).
    sql(
        &t,
        "DELETE FROM __database_migration_checksums WHERE version = '20261121100000'",
    )
    .await;
    let page = s.get("/migrations").body;
    let out = common::run_db(&t.url, &["status"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("[checksum recorded on next `db migrate`]"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let page = unescape(&page);
    for line in printed.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        // A version line: 14 digits first (not the totals line).
        if cells.len() < 5 || cells[0].len() != 14 || !cells[0].chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        // `{:<18} {:<9} {:<20} {}`: the name and its notes from column 50 on.
        let (version, state, when, name) = (
            cells[0],
            cells[1],
            format!("{} {}", cells[2], cells[3]),
            &line[50..],
        );
        assert!(
            page.contains(&format!(
                "<td>{version}</td><td>{state}</td><td>{when}</td><td>{name}</td>"
            )),
            "{line}\n{page}"
        );
    }
    assert!(page.contains(printed.lines().find(|l| l.contains(" applied, ")).unwrap()));
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
        .find(|li| li.contains("href=\"t/studio_big\""))
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

// --- Write mode -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_edit_is_previewed_with_its_binds_then_runs_in_a_transaction() {
    let t = TestDb::new().await;
    users(&t, 1).await;
    let id = scalar(&t, "SELECT id FROM users").await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let form = s.get(&format!("t/users/edit?k={id}"));
    assert_eq!(form.status, 200);
    assert!(form.body.contains("value=\"u1@example.com\""));
    let path = format!("t/users/edit?k={id}");
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
    support::assert_csp_clean(&preview.body);
    support::assert_csp_clean(&form.body);
    assert_eq!(
        support::href_of(&preview.body, "cancel").as_deref(),
        Some(&format!("t/users/row?k={id}")[..])
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
        &format!("t/users/edit?k={id}"),
        &[("c:email", "u2@example.com"), ("confirm", "1")],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body
            .contains("Conflict on constraint users_email_lower_key"),
        "{}",
        r.body
    );
    // The edit is kept: the form again as it was posted, and a way back.
    assert!(r.body.contains("id=\"edit-form\""), "{}", r.body);
    assert!(r.body.contains("value=\"u2@example.com\""), "{}", r.body);
    assert!(
        support::href_of(&r.body, "back").is_some_and(|h| h.contains("/row?k=")),
        "{}",
        r.body
    );
    support::assert_csp_clean(&r.body);
    // JSON is checked before it is sent, and the field is named.
    let r = s.post(
        &format!("t/user_settings/edit?k={id}"),
        &[("c:settings", "{not json"), ("confirm", "1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("settings"), "{}", r.body);
    // A CHECK constraint.
    let r = s.post(
        &format!("t/user_settings/edit?k={id}"),
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
        &format!("t/chats/edit?k={chat}"),
        &[("c:visibility", "everyone"), ("confirm", "1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let form = s.get(&format!("t/chats/edit?k={chat}")).body;
    assert!(
        form.contains("<option selected>private</option><option>public</option>"),
        "{form}"
    );
    let r = s.post(
        &format!("t/chats/edit?k={chat}"),
        &[("c:visibility", "public"), ("confirm", "1")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(scalar(&t, "SELECT visibility FROM chats").await, "public");
    // NULL is explicit.
    let todo = scalar(&t, "SELECT id FROM todos").await;
    let r = s.post(
        &format!("t/todos/edit?k={todo}"),
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
    let form = s.get("t/users/new").body;
    assert!(form.contains("default <code>now()</code>"), "{form}");
    let id = "0196a000-0000-7000-8000-000000000001";
    let fields = [
        ("c:id", id),
        ("c:email", "ann@example.com"),
        ("d:email_verified", "1"),
        ("d:created_at", "1"),
        ("d:updated_at", "1"),
    ];
    let preview = s.post("t/users/new", &fields);
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
    let done = s.post("t/users/new", &confirm);
    assert_eq!(done.status, 200, "{}", done.body);
    // The same row again: refused, and the form comes back as it was filled.
    let again = s.post("t/users/new", &confirm);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("id=\"insert-form\""), "{}", again.body);
    assert!(
        again.body.contains("value=\"ann@example.com\""),
        "{}",
        again.body
    );
    assert!(
        again
            .body
            .contains("name=\"d:created_at\" value=\"1\" checked"),
        "{}",
        again.body
    );
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
    let page = s.get(&format!("t/users/delete?k={id}")).body;
    let cascades = page.split("id=\"cascades\">").nth(1).unwrap();
    assert!(
        cascades.contains("<strong>3</strong> row(s) of sessions (user_id): deleted too"),
        "{cascades}"
    );
    assert!(unescape(&page).contains("DELETE FROM \"users\" WHERE \"id\" = CAST($1 AS uuid)"));
    assert_eq!(t.count("sessions").await, 3, "the page deletes nothing");
    let r = s.post(&format!("t/users/delete?k={id}"), &[("confirm", "1")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(t.count("users").await, 0);
    assert_eq!(t.count("sessions").await, 0);
}

// --- On SQLite ------------------------------------------------------------
//
// The same studio on a SQLite file (`db setup` + `db seed`: 200 users, each
// with a password login, a profile and settings): the catalog from SQLite's
// pragmas, UUIDs shown and taken as text (stored as 16-byte BLOBs), reads on
// a connection opened read-only, writes through the crate's pool.

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_tables_pages_filters_and_keys_work_as_on_postgresql() {
    let f = sqlite_file();
    let s = Studio::start(&f.url, &[], &[]);
    let home = s.get("/");
    assert_eq!(home.status, 200, "{}", home.body);
    for table in [
        "users",
        "accounts",
        "sessions",
        "verifications",
        "user_settings",
        "user_profiles",
    ] {
        assert!(
            home.body.contains(&format!("href=\"t/{table}\"")),
            "{table}"
        );
    }
    assert!(
        home.body
            .contains(r#"<a href="t/users">users</a> <span class="count">200</span>"#),
        "exact counts"
    );
    // Keyset pages forward cover every row once, in key order; back again.
    let mut seen = Vec::new();
    let mut page = s.get("t/users?size=30");
    assert_eq!(page.status, 200, "{}", page.body);
    let mut pages = 1;
    loop {
        let keys = row_keys(&page.body);
        assert!(keys.len() <= 30);
        seen.extend(keys);
        let Some(next) = href_of(&page.body, "next") else {
            break;
        };
        page = s.get(&unescape(&next));
        pages += 1;
    }
    assert_eq!(pages, 7);
    assert_eq!(seen.len(), 200);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "key order, each row once");
    let back = s.get(&unescape(&href_of(&page.body, "prev").unwrap()));
    assert_eq!(row_keys(&back.body), seen[150..180].to_vec());
    // A UUID key is shown as text and found by it.
    let id = &seen[42];
    assert_eq!(id.len(), 36, "{id}");
    let one = s.get(&format!("t/users?fc=id&fo=eq&fv={id}"));
    assert_eq!(row_keys(&one.body), vec![id.clone()]);
    // Filters combine; contains ignores case, and % and _ are literal.
    let email = sqlite_scalar(
        &f,
        &format!(
            "SELECT email FROM users WHERE hex(id) = upper('{}')",
            id.replace('-', "")
        ),
    );
    let hit = s.get(&format!(
        "t/users?fc=email&fo=contains&fv={}&fc=email_verified&fo=notnull&fv=",
        email.to_uppercase()
    ));
    assert_eq!(row_keys(&hit.body), vec![id.clone()], "{}", hit.body);
    assert!(row_keys(&s.get("t/users?fc=email&fo=contains&fv=%25").body).is_empty());
    // A boolean is searched as it is shown.
    let verified: usize = sqlite_scalar(&f, "SELECT count(*) FROM users WHERE email_verified")
        .parse()
        .unwrap();
    assert!(verified > 0);
    let page = s.get("t/users?size=500&fc=email_verified&fo=contains&fv=TRU");
    assert_eq!(row_keys(&page.body).len(), verified);
    // Text that is not a UUID, in a UUID column: a 400 naming the column, not an empty page.
    let bad = s.get("t/users?fc=id&fo=eq&fv=42");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("id holds bytes"), "{}", bad.body);
    let bad = s.get("t/users?fc=email_verified&fo=eq&fv=maybe");
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("email_verified is a boolean"),
        "{}",
        bad.body
    );
    // Sorting by an indexed column (sessions.expires_at) is offered; an unindexed one is refused.
    assert_eq!(s.get("t/sessions?sort=expires_at").status, 200);
    assert_eq!(s.get("t/users?sort=name").status, 400);
    // Foreign keys both ways: an account links to its user, the user counts its rows.
    let account = s.get(&format!("t/accounts?fc=user_id&fo=eq&fv={id}"));
    let fk = links(&account.body, "fk");
    assert_eq!(fk, vec![format!("t/users/row?k={id}")], "{}", account.body);
    let row = s.get(&fk[0]);
    assert_eq!(row.status, 200, "{}", row.body);
    assert!(row.body.contains(&email));
    for child in ["accounts", "user_profiles", "user_settings"] {
        assert!(
            row.body.contains(&format!(
                r#"<a class="ref" data-table="{child}" href="t/{child}?fc=user_id&amp;fo=eq&amp;fv={id}">{child}</a> <span class="muted">(user_id)</span> <span class="count">1</span>"#
            )),
            "{child}: {}",
            row.body
        );
    }
    assert!(row.body.contains(r#"data-table="sessions""#));
    // Booleans read as true/false, JSON as a tree, enums by label.
    assert!(row.body.contains(r#"<dd data-column="email_verified">"#));
    let settings = s.get(&format!("t/user_settings/row?k={id}"));
    assert!(
        settings.body.contains(r#"class="json-tree""#),
        "{}",
        settings.body
    );
    assert!(
        s.get("t/verifications/new").status == 403,
        "read-only: no insert form"
    );
    // Export: every row, UUIDs as text.
    let csv = s.get("t/users/export.csv");
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 201, "header and 200 rows");
    assert!(
        lines[0].starts_with("id,email,email_verified"),
        "{}",
        lines[0]
    );
    assert!(csv.body.contains(&format!("{id},{email},")));
    // The migrations page reads the SQLite history.
    let m = s.get("/migrations");
    let all_applied = format!(
        "{} applied, 0 pending",
        database::migrate::sqlite::embedded().len()
    );
    assert!(m.body.contains(&all_applied), "{}", m.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_the_console_runs_queries_only_and_within_its_time_limit() {
    let f = sqlite_file();
    let s = Studio::start(&f.url, &[], &[("DB_STUDIO_STATEMENT_TIMEOUT_MS", "300")]);
    let ok = s.post(
        "/sql",
        &[("sql", "SELECT count(*) AS n, 'x' AS label FROM users")],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("<th>n</th><th>label</th>"), "{}", ok.body);
    assert!(ok.body.contains("<td>200</td>"));
    for (attempt, why) in [
        ("DELETE FROM users", "this is DELETE"),
        ("PRAGMA query_only = 0", "this is PRAGMA"),
        ("ATTACH DATABASE '/tmp/other.db' AS other", "this is ATTACH"),
        ("BEGIN", "this is BEGIN"),
        ("SELECT 1; DELETE FROM users", "one statement at a time"),
        (
            "WITH gone AS (SELECT id FROM users) DELETE FROM users WHERE id IN gone",
            "this statement writes",
        ),
        ("VACUUM INTO '/tmp/copy.db'", "this is VACUUM"),
    ] {
        let r = s.post("/sql", &[("sql", attempt)]);
        assert_eq!(r.status, 400, "{attempt}");
        assert!(r.body.contains("refused"), "{attempt}: {}", r.body);
        assert!(r.body.contains(why), "{attempt}: {}", r.body);
    }
    assert_eq!(sqlite_scalar(&f, "SELECT count(*) FROM users"), "200");
    // A runaway query is cancelled at the limit, and the studio goes on.
    let started = std::time::Instant::now();
    let r = s.post(
        "/sql",
        &[(
            "sql",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        )],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("cancelled after 300 ms"), "{}", r.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(s.get("t/users").status, 200);
    // A syntax error is SQLite's own message.
    let r = s.post("/sql", &[("sql", "SELECT FROM WHERE")]);
    assert_eq!(r.status, 400);
    assert!(r.body.contains("syntax error"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_write_mode_edits_inserts_and_deletes_with_typed_errors() {
    let f = sqlite_file();
    let s = Studio::start(&f.url, &["--write"], &[]);
    let id = sqlite_scalar(
        &f,
        "SELECT lower(substr(hex(id),1,8)||'-'||substr(hex(id),9,4)||'-'||substr(hex(id),13,4)||'-'||substr(hex(id),17,4)||'-'||substr(hex(id),21)) FROM users ORDER BY id LIMIT 1",
    );
    let path = format!("t/users/edit?k={id}");
    let form = s.get(&path);
    assert_eq!(form.status, 200, "{}", form.body);
    // Edit: previewed with SQLite placeholders and typed binds, then run.
    let fields = [("c:name", "Renamed"), ("c:email_verified", "true")];
    let preview = s.post(&path, &fields);
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(
        unescape(&preview.body)
            .contains(r#"UPDATE "users" SET "email_verified" = ?1, "name" = ?2 WHERE "id" = ?3"#)
            || unescape(&preview.body).contains(
                r#"UPDATE "users" SET "name" = ?1, "email_verified" = ?2 WHERE "id" = ?3"#
            ),
        "{}",
        preview.body
    );
    assert!(
        preview.body.contains(&format!(
            r#"<li><code>{id}</code> <span class="muted">blob, 16 bytes</span></li>"#
        )),
        "{}",
        preview.body
    );
    assert!(
        preview
            .body
            .contains(r#"<li><code>1</code> <span class="muted">integer</span></li>"#)
    );
    let before = sqlite_scalar(&f, "SELECT count(*) FROM users WHERE name = 'Renamed'");
    assert_eq!(before, "0", "a preview writes nothing");
    let mut confirm = fields.to_vec();
    confirm.push(("confirm", "1"));
    let done = s.post(&path, &confirm);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        sqlite_scalar(
            &f,
            &format!(
                "SELECT name || ',' || email_verified FROM users WHERE hex(id) = upper('{}')",
                id.replace('-', "")
            )
        ),
        "Renamed,1"
    );
    assert_eq!(
        href_of(&done.body, "back").map(|h| unescape(&h)),
        Some(format!("t/users/row?k={id}"))
    );
    // A CHECK violated: the constraint's name, and nothing written.
    let long = "x".repeat(101);
    let r = s.post(&path, &[("c:name", long.as_str()), ("confirm", "1")]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("users_name_length"), "{}", r.body);
    // A value that does not fit the column: named, and nothing sent.
    let r = s.post(&path, &[("c:email_verified", "maybe"), ("confirm", "1")]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("email_verified is a boolean"), "{}", r.body);
    // A unique index: its PostgreSQL name.
    let other = sqlite_scalar(&f, "SELECT email FROM users ORDER BY id LIMIT 1 OFFSET 1");
    let r = s.post(&path, &[("c:email", other.as_str()), ("confirm", "1")]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("users_email_lower_key"), "{}", r.body);
    assert_eq!(
        sqlite_scalar(&f, "SELECT name FROM users WHERE name = 'Renamed'"),
        "Renamed"
    );
    // Insert: the form offers a fresh UUID for the key; defaults fill the rest.
    let new_form = s.get("t/users/new");
    assert_eq!(new_form.status, 200);
    let fresh = new_form
        .body
        .split(r#"id="c-id" name="c:id" value=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a prefilled id")
        .to_owned();
    assert_eq!(fresh.len(), 36, "{fresh}");
    let insert = [
        ("c:id", fresh.as_str()),
        ("c:email", "fresh@example.com"),
        ("d:email_verified", "1"),
        ("n:name", "1"),
        ("n:image", "1"),
        ("d:created_at", "1"),
        ("d:updated_at", "1"),
        ("confirm", "1"),
    ];
    let done = s.post("t/users/new", &insert);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        href_of(&done.body, "back").map(|h| unescape(&h)),
        Some(format!("t/users/row?k={fresh}"))
    );
    assert_eq!(s.get(&format!("t/users/row?k={fresh}")).status, 200);
    assert_eq!(sqlite_scalar(&f, "SELECT count(*) FROM users"), "201");
    // Delete: the cascades are counted first, then it runs.
    let del = s.get(&format!("t/users/delete?k={id}"));
    assert_eq!(del.status, 200, "{}", del.body);
    assert!(
        del.body.contains(
            r#"<li data-table="accounts"><strong>1</strong> row(s) of accounts (user_id): deleted too (ON DELETE CASCADE)</li>"#
        ),
        "{}",
        del.body
    );
    assert_eq!(sqlite_scalar(&f, "SELECT count(*) FROM users"), "201");
    let gone = s.post(&format!("t/users/delete?k={id}"), &[("confirm", "1")]);
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(sqlite_scalar(&f, "SELECT count(*) FROM users"), "200");
    assert_eq!(sqlite_scalar(&f, "SELECT count(*) FROM accounts"), "199");
    let again = s.post(&format!("t/users/delete?k={id}"), &[("confirm", "1")]);
    assert_eq!(again.status, 404);
    // A foreign key to no row: a conflict on the foreign key, nothing written.
    let orphan = uuid::Uuid::now_v7().to_string();
    let r = s.post(
        "t/user_settings/new",
        &[
            ("c:user_id", orphan.as_str()),
            ("d:settings", "1"),
            ("d:created_at", "1"),
            ("d:updated_at", "1"),
            ("confirm", "1"),
        ],
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body.contains("Conflict on constraint FOREIGN KEY"),
        "{}",
        r.body
    );
    assert_eq!(
        sqlite_scalar(&f, "SELECT count(*) FROM user_settings"),
        "199"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_untyped_columns_big_values_and_virtual_tables_are_handled() {
    let f = sqlite_file();
    sqlite_exec(
        &f,
        "CREATE TABLE notes (id PRIMARY KEY, body); \
         INSERT INTO notes VALUES (5, 'five'), ('x', 'text key'), (X'00ff', 'bytes key'); \
         CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('hello'); \
         CREATE TABLE note_refs (id INTEGER PRIMARY KEY, note REFERENCES NOTES (ID)); \
         INSERT INTO note_refs VALUES (1, 5);",
    );
    let s = Studio::start(&f.url, &["--write"], &[]);
    let home = s.get("/");
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("href=\"t/notes\""));
    assert!(
        !home.body.contains("t/docs"),
        "virtual tables and their shadow tables are not browsed"
    );
    // A column without a type takes a number as a number, text as text, \x as bytes.
    assert_eq!(row_keys(&s.get("t/notes?fc=id&fo=eq&fv=5").body), vec!["5"]);
    assert_eq!(row_keys(&s.get("t/notes?fc=id&fo=eq&fv=x").body), vec!["x"]);
    assert_eq!(
        row_keys(&s.get("t/notes?fc=id&fo=eq&fv=%5Cx00ff").body),
        vec!["\\x00ff"]
    );
    let note = s.get("t/notes/row?k=5");
    assert_eq!(note.status, 200);
    // A foreign key that spells the parent in other case still links both ways.
    assert!(
        note.body.contains(r#"data-table="note_refs""#)
            && note.body.contains(r#"<span class="count">1</span>"#),
        "{}",
        note.body
    );
    assert_eq!(
        links(&s.get("t/note_refs").body, "fk"),
        vec!["t/notes/row?k=5"]
    );
    assert_eq!(s.get("t/notes/row?k=x").status, 200);
    // Pages over keys of mixed storage classes.
    let page = s.get("t/notes?size=1");
    let next = s.get(&unescape(&href_of(&page.body, "next").unwrap()));
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(row_keys(&next.body), vec!["x"]);
    // A value larger than the studio shows is an error, not gigabytes in memory.
    let r = s.post("/sql", &[("sql", "SELECT zeroblob(100000000)")]);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("larger than the studio shows"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_the_front_door_and_the_production_guard_hold() {
    let f = sqlite_file();
    let s = Studio::start(&f.url, &[], &[]);
    assert_eq!(
        support::http(s.port, "GET", &s.path("t/users"), &[], None).status,
        401
    );
    let cross = support::http(
        s.port,
        "POST",
        &s.path("/sql"),
        &[("Cookie", &s.cookie()), ("Origin", "http://evil.example")],
        Some("sql=SELECT+1"),
    );
    assert_eq!(cross.status, 403);
    let Err((code, err)) = Studio::try_start(&f.url, &["--write"], &[("APP_ENV", "production")])
    else {
        panic!("--write started against production");
    };
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("refused"), "{err}");
    let memory = Studio::try_start("sqlite::memory:", &[], &[]);
    let Err((_, err)) = memory else {
        panic!("started on a private in-memory database");
    };
    assert!(err.contains("give a file"), "{err}");
}

/// The studio browses every tenant through the escape hatch: started with
/// `DATABASE_URL` a role the policies apply to (the service's), it still
/// counts and lists every tenant's rows (it showed none before).
#[tokio::test(flavor = "multi_thread")]
async fn the_studio_sees_every_tenant_with_a_service_database_url() {
    use database::auth::{NewUser, users as user_repo};
    use database::projects::{NewProject, projects};
    use database::tenancy::{NewTenant, tenants};
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    for slug in ["acme", "bolt"] {
        let owner = user_repo::create(
            &mut conn,
            &NewUser {
                email: format!("{slug}@example.com"),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
        let tenant = tenants::create_with_owner(
            &mut conn,
            &NewTenant {
                name: slug.into(),
                slug: slug.into(),
            },
            owner,
        )
        .await
        .unwrap()
        .id;
        projects::create(
            &mut conn,
            tenant,
            Some(owner),
            &NewProject {
                name: format!("{slug} project"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    drop(conn);
    let s = Studio::start(
        &t.service_url(),
        &[],
        &[("DATABASE_MIGRATION_URL", t.url.as_str())],
    );
    let home = s.get("/").body;
    assert!(
        home.contains(r#"<a href="t/projects">projects</a> <span class="count">2</span>"#),
        "{home}"
    );
    let page = s.get("/t/projects").body;
    assert!(
        page.contains("acme project") && page.contains("bolt project"),
        "{page}"
    );
}
