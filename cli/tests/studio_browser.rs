//! `db studio` end to end in a real headless Chromium (Debian's `chromium`
//! and `chromium-driver`), on a database filled by `db seed`. Each step
//! saves a screenshot under `target/studio-screenshots/` for a person to
//! look at. Skipped with a reason when Chromium is missing, except under
//! `DB_TEST_REQUIRE_ALL=1` (CI), where that is a failure.

mod common;
#[path = "studio_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{TestDb, run_db};
use support::webdriver::{Browser, find_browser};
use support::{Studio, scalar};

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("studio-screenshots")
}

/// The browser, or `None` (skip) with the reason printed.
fn browser() -> Option<Browser> {
    match find_browser() {
        Ok((chromium, driver)) => Some(Browser::start(&chromium, &driver)),
        Err(why) => {
            if std::env::var("DB_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("DB_TEST_REQUIRE_ALL=1 and the browser tests cannot run: {why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

async fn seeded() -> TestDb {
    let t = TestDb::new().await;
    let out = run_db(&t.url, &["seed"], &[]);
    assert!(
        out.status.success(),
        "db seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

/// The primary keys of the rows on the page shown.
fn keys(b: &Browser) -> Vec<String> {
    b.all("#rows a.open")
        .iter()
        .map(|a| a.attr("href").unwrap())
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn browse_filter_page_follow_keys_open_json_export_and_query() {
    let Some(b) = browser() else { return };
    let t = seeded().await;
    let s = Studio::start(&t.url, &[], &[]);
    let dir = shots();

    // The printed URL: the token becomes a cookie and leaves the address bar.
    b.goto(&s.url);
    b.find("#tables");
    assert!(!b.url().contains("token="), "{}", b.url());
    assert!(b.find("#tables").text().contains("users"));
    b.screenshot(&dir, "01-home");

    // Open a table.
    b.find("#tables a[href='t/users']").click();
    b.find("#rows");
    assert_eq!(b.find("#table-name").text(), "users");
    assert_eq!(keys(&b).len(), 50);
    b.screenshot(&dir, "02-table");

    // Filter: the form's first row, then Apply; the state is in the URL.
    b.find("select[name=fc] option[value='']");
    for option in b.all("fieldset.filter select[name=fc] option") {
        if option.text() == "email" {
            option.click();
            break;
        }
    }
    for option in b.all("fieldset.filter select[name=fo] option") {
        if option.attr("value").as_deref() == Some("contains") {
            option.click();
            break;
        }
    }
    b.find("fieldset.filter input[name=fv]").type_text("1");
    b.find("#apply").click();
    wait_for("the filtered URL", || b.url().contains("fv=1"));
    let filtered = keys(&b).len();
    let expected: usize = scalar(&t, "SELECT count(*) FROM users WHERE email LIKE '%1%'")
        .await
        .parse()
        .unwrap();
    assert_eq!(filtered, expected.min(50));
    b.screenshot(&dir, "03-filtered");

    // Page forward and back (keyset cursors in the URL).
    b.goto(&s.at("/t/users?size=10"));
    let first = keys(&b);
    b.find("#next").click();
    wait_for("page 2", || b.url().contains("after="));
    let second = keys(&b);
    assert_eq!(second.len(), 10);
    assert!(first.iter().all(|k| !second.contains(k)));
    b.find("#next").click();
    wait_for("page 3", || keys(&b) != second);
    b.find("#prev").click();
    wait_for("back to page 2", || b.url().contains("before="));
    assert_eq!(keys(&b), second);
    b.screenshot(&dir, "04-paging");

    // A foreign key, then back through "referenced by".
    b.goto(&s.at("/t/sessions"));
    let fk = b.find("#rows a.fk");
    let user_id = fk.text();
    fk.click();
    b.find("#detail");
    assert!(b.url().contains("/t/users/row?k="), "{}", b.url());
    b.screenshot(&dir, "05-foreign-key");
    let sessions_of_user: usize = scalar(
        &t,
        &format!("SELECT count(*) FROM sessions WHERE user_id = '{user_id}'"),
    )
    .await
    .parse()
    .unwrap();
    let item = b
        .all("#referenced-by li")
        .into_iter()
        .find(|li| li.text().starts_with("sessions "))
        .expect("sessions in referenced by");
    assert!(
        item.text().ends_with(&sessions_of_user.to_string()),
        "{}",
        item.text()
    );
    b.find("#referenced-by a[data-table='sessions']").click();
    wait_for("the referencing rows", || b.url().contains("fc=user_id"));
    assert_eq!(keys(&b).len(), sessions_of_user);
    b.screenshot(&dir, "06-referenced-by");

    // A JSON value: a tree whose objects and arrays fold, and its text.
    b.goto(&s.at("/t/executions"));
    b.find("#rows a.open").click();
    let tree = b.find("dd[data-column='input'] .json-tree > details.jv");
    assert_eq!(tree.prop("open"), serde_json::Value::Bool(true));
    assert!(tree.text().contains("trigger"), "{}", tree.text());
    b.find("dd[data-column='input'] .json-tree > details.jv > summary")
        .click();
    assert_eq!(tree.prop("open"), serde_json::Value::Bool(false), "folded");
    b.find("dd[data-column='input'] .json-tree > details.jv > summary")
        .click();
    b.find("dd[data-column='input'] details.json-text > summary")
        .click();
    let text = b.find("dd[data-column='input'] pre.json").text();
    serde_json::from_str::<serde_json::Value>(&text).expect("the shown JSON parses");
    // Timestamps get the browser's local time beside UTC (from the script).
    b.find("dd[data-column='created_at'] .local");
    b.screenshot(&dir, "07-json-detail");

    // Export the filtered view as CSV and read the file.
    b.goto(&s.at("/t/users?fc=email&fo=contains&fv=1"));
    b.find("#export-csv").click();
    let file = b.downloads.path().join("users.csv");
    wait_for("users.csv", || {
        file.exists() && !b.downloads.path().join("users.csv.crdownload").exists()
    });
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("id,email,"));
    assert_eq!(lines.count(), expected, "every filtered row, not one page");
    b.screenshot(&dir, "08-export");

    // The SQL console: a query, and a refused escape.
    b.goto(&s.at("/sql"));
    let area = b.find("#sql");
    area.clear();
    area.type_text("SELECT email, email_verified FROM users ORDER BY email LIMIT 5");
    b.find("#run").click();
    b.find("#result");
    assert_eq!(b.all("#result tbody tr").len(), 5);
    b.screenshot(&dir, "09-sql");
    let area = b.find("#sql");
    area.clear();
    area.type_text("SET transaction_read_only = off");
    b.find("#run").click();
    assert!(b.find("#error").text().starts_with("refused"));
    b.screenshot(&dir, "10-sql-refused");

    b.goto(&s.at("/migrations"));
    b.find("#migrations");
    b.screenshot(&dir, "11-migrations");
}

/// Another web server on 127.0.0.1 that records the `Cookie` header of
/// every request it gets (and answers each with a small page).
struct Recorder {
    port: u16,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Recorder {
    fn start() -> Recorder {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        // Lives until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let page =
                    "<!doctype html><title>other</title><p id=other>another local server</p>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
            }
        });
        Recorder { port, heads }
    }

    /// Every `Cookie` header line received so far.
    fn cookies(&self) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .flat_map(|h| h.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_local_server_the_browser_visits_never_gets_the_token() {
    let Some(b) = browser() else { return };
    let t = seeded().await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let other = Recorder::start();
    b.goto(&s.url);
    b.find("#tables a[href$='t/users']").click();
    b.find("#rows");
    // A dev server or a docs server on another port of the same host: at
    // its root, and at the studio's own page paths (without the prefix).
    for path in ["/", "/t/users", "/sql", "/assets/studio.js"] {
        b.goto(&format!("http://127.0.0.1:{}{path}", other.port));
        b.find("#other");
    }
    assert!(
        other.heads.lock().unwrap().len() >= 4,
        "the other server was not visited"
    );
    let cookies = other.cookies();
    assert!(
        cookies.iter().all(|c| !c.contains(&s.token)),
        "another local server received the studio's token: {cookies:?}"
    );
    // The studio itself still has it.
    b.goto(&s.at("/t/users"));
    b.find("#rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_mode_edits_a_cell_after_a_preview() {
    let Some(b) = browser() else { return };
    let t = seeded().await;
    let s = Studio::start(&t.url, &["--write"], &[]);
    let dir = shots();
    b.goto(&s.url);
    b.find("#tables");
    let id = scalar(&t, "SELECT id FROM users ORDER BY id LIMIT 1").await;
    b.goto(&s.at(&format!("/t/users/row?k={id}")));
    b.find("#edit").click();
    // Another user's address: refused (409), and the edit comes back as
    // typed, ready to correct.
    let taken = scalar(&t, "SELECT email FROM users ORDER BY id DESC LIMIT 1").await;
    let email = b.find("#c-email");
    email.clear();
    email.type_text(&taken);
    b.find("#preview").click();
    b.find("#confirm").click();
    assert!(b.find("#error").text().contains("Conflict"));
    assert_eq!(b.find("#c-email").prop("value").as_str(), Some(&taken[..]));
    b.screenshot(&dir, "12-edit-refused-kept");
    let email = b.find("#c-email");
    email.clear();
    email.type_text("edited-in-the-browser@example.com");
    b.screenshot(&dir, "12-edit-form");
    b.find("#preview").click();
    let sql = b.find("#preview-sql").text();
    assert!(
        sql.starts_with("UPDATE \"users\" SET \"email\" = CAST($1 AS text)"),
        "{sql}"
    );
    assert_eq!(
        b.all("#binds li")[0].text(),
        "edited-in-the-browser@example.com"
    );
    assert_ne!(
        scalar(&t, &format!("SELECT email FROM users WHERE id = '{id}'")).await,
        "edited-in-the-browser@example.com",
        "the preview wrote nothing"
    );
    b.screenshot(&dir, "13-edit-preview");
    b.find("#confirm").click();
    b.find("#done");
    assert_eq!(
        scalar(&t, &format!("SELECT email FROM users WHERE id = '{id}'")).await,
        "edited-in-the-browser@example.com"
    );
    b.find("#back").click();
    assert!(
        b.find("#detail")
            .text()
            .contains("edited-in-the-browser@example.com")
    );
    b.screenshot(&dir, "14-edited");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sqlite_browse_follow_keys_and_edit_a_cell() {
    let Some(b) = browser() else { return };
    let f = support::sqlite_file();
    let s = Studio::start(&f.url, &["--write"], &[]);
    let dir = shots();
    b.goto(&s.url);
    assert!(b.find("#tables").text().contains("user_settings"));
    b.screenshot(&dir, "20-sqlite-home");

    // A table, a page forward and back.
    b.goto(&s.at("/t/users?size=10"));
    let first = keys(&b);
    assert_eq!(first.len(), 10);
    b.find("#next").click();
    wait_for("page 2", || b.url().contains("after="));
    let second = keys(&b);
    assert!(first.iter().all(|k| !second.contains(k)));
    b.find("#prev").click();
    wait_for("back to page 1", || b.url().contains("before="));
    assert_eq!(keys(&b), first);
    b.screenshot(&dir, "21-sqlite-table");

    // An account's user, and back to the user's accounts.
    b.goto(&s.at("/t/accounts"));
    let fk = b.find("#rows a.fk");
    let user_id = fk.text();
    assert_eq!(user_id.len(), 36, "a UUID, not bytes: {user_id}");
    fk.click();
    b.find("#detail");
    b.screenshot(&dir, "22-sqlite-foreign-key");
    b.find("#referenced-by a[data-table='accounts']").click();
    wait_for("the user's accounts", || b.url().contains("fc=user_id"));
    assert_eq!(keys(&b).len(), 1);

    // Settings are JSON: shown as a tree.
    b.goto(&s.at(&format!("/t/user_settings/row?k={user_id}")));
    b.find("dd[data-column='settings'] .json-tree");
    b.screenshot(&dir, "23-sqlite-json");

    // Edit a cell: preview, then run; the file has it.
    b.goto(&s.at(&format!("/t/users/row?k={user_id}")));
    b.find("#edit").click();
    let name = b.find("#c-name");
    name.clear();
    name.type_text("Edited In SQLite");
    b.find("#preview").click();
    let sql = b.find("#preview-sql").text();
    assert!(
        sql.starts_with("UPDATE \"users\" SET \"name\" = ?1 WHERE \"id\" = ?2"),
        "{sql}"
    );
    b.screenshot(&dir, "24-sqlite-edit-preview");
    b.find("#confirm").click();
    b.find("#done");
    assert_eq!(
        support::sqlite_scalar(
            &f,
            &format!(
                "SELECT name FROM users WHERE hex(id) = upper('{}')",
                user_id.replace('-', "")
            )
        ),
        "Edited In SQLite"
    );
    b.find("#back").click();
    assert!(b.find("#detail").text().contains("Edited In SQLite"));
    b.screenshot(&dir, "25-sqlite-edited");
}
