//! What the studio tests share: the real `db studio` process on a free
//! port, and a tiny HTTP/1.1 client over `std::net` (no client library:
//! the tests see exactly the bytes a browser would get).
#![allow(dead_code)]

pub mod webdriver;

use crate::common::TestDb;
use diesel_async::SimpleAsyncConnection;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A response: status, headers (lower-case names), body (chunked decoded).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether the body came in chunks (streamed).
    pub chunked: bool,
}

impl Resp {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to 127.0.0.1:`port` and reads the whole response.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    http_to(("127.0.0.1", port), method, path, headers, body).expect("HTTP request")
}

/// `http` to any address; `Err` when the connection is refused.
pub fn http_to(
    addr: (&str, u16),
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {}:{}\r\n", addr.0, addr.1));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes())?;
    // Read to the end of the message, not of the connection: some servers
    // (chromedriver) keep it open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body = &raw[end + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(n) = length
                && body.len() >= n
            {
                break;
            }
            if head.contains("transfer-encoding: chunked") && chunked_complete(body) {
                break;
            }
            if head.starts_with("http/1.1 304") || head.starts_with("http/1.1 204") {
                break;
            }
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Ok(parse(&raw))
}

/// Whether a chunked body has arrived up to its last (empty) chunk.
fn chunked_complete(mut rest: &[u8]) -> bool {
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let text = String::from_utf8_lossy(&rest[..eol]);
        let Ok(size) = usize::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
        else {
            return false;
        };
        if size == 0 {
            return rest.len() >= eol + 4;
        }
        if rest.len() < eol + 2 + size + 2 {
            return false;
        }
        rest = &rest[eol + 2 + size + 2..];
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&rest[..eol]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        chunked,
    }
}

/// A running `db studio`, killed when dropped.
pub struct Studio {
    pub child: Child,
    pub port: u16,
    /// The random path prefix every page is under (`/3f9a...`).
    pub base: String,
    pub token: String,
    /// The one line it printed.
    pub url: String,
}

impl Studio {
    /// Starts `db studio --port 0 <args>` on `db_url` with `env` and waits for its URL.
    pub fn start(db_url: &str, args: &[&str], env: &[(&str, &str)]) -> Studio {
        Self::try_start(db_url, args, env)
            .unwrap_or_else(|(code, err)| panic!("db studio did not start (exit {code:?}): {err}"))
    }

    /// Like `start`; `Err((exit code, stderr))` when it exits instead.
    pub fn try_start(
        db_url: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Studio, (Option<i32>, String)> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_db"));
        cmd.arg("studio");
        if !args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        cmd.args(args)
            .env("DATABASE_URL", db_url)
            .env_remove("APP_ENV")
            .env_remove("NODE_ENV")
            .env_remove("DB_MIGRATIONS_DIR")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn db studio");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        if url.is_empty() {
            let status = child.wait().unwrap();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Err((status.code(), err));
        }
        let rest = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("the URL is on 127.0.0.1: {url}"));
        let (port_and_base, token) = rest.split_once("/?token=").expect("URL shape");
        let (port, base) =
            port_and_base.split_at(port_and_base.find('/').unwrap_or(port_and_base.len()));
        Ok(Studio {
            port: port.parse().unwrap(),
            base: base.to_owned(),
            token: token.to_owned(),
            url,
            child,
        })
    }

    /// The path of a studio page: `/t/users` (or `t/users`, a link as the
    /// pages write them) is `<base>/t/users`.
    pub fn path(&self, page: &str) -> String {
        format!("{}/{}", self.base, page.trim_start_matches('/'))
    }

    /// The whole URL of a studio page (`path` on this studio's address).
    pub fn at(&self, page: &str) -> String {
        format!("{}{}", self.origin(), self.path(page))
    }

    /// `Origin` of this studio.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The cookie header the token buys.
    pub fn cookie(&self) -> String {
        format!("db_studio_{}={}", self.port, self.token)
    }

    /// GET of a page (see `path`) with the cookie.
    pub fn get(&self, page: &str) -> Resp {
        http(
            self.port,
            "GET",
            &self.path(page),
            &[("Cookie", &self.cookie())],
            None,
        )
    }

    /// POST of a form to a page (see `path`) with the cookie and this studio's Origin.
    pub fn post(&self, page: &str, form: &[(&str, &str)]) -> Resp {
        let body = form_body(form);
        http(
            self.port,
            "POST",
            &self.path(page),
            &[
                ("Cookie", &self.cookie()),
                ("Origin", &self.origin()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(&body),
        )
    }
}

impl Drop for Studio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `a=1&b=2`, encoded.
pub fn form_body(form: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `s` with HTML entities of the studio's escaping turned back.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `href` of the element with `id="<id>"` in `html`, unescaped.
pub fn href_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..at + html[at..].find('>')?];
    let h = tag.find("href=\"")? + 6;
    let end = tag[h..].find('"')?;
    Some(unescape(&tag[h..h + end]))
}

/// Runs `sql` on `t`'s database.
pub async fn sql(t: &TestDb, sql: &str) {
    t.conn()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub async fn scalar(t: &TestDb, sql: &str) -> String {
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
pub async fn users(t: &TestDb, n: usize) {
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
pub fn links(html: &str, class: &str) -> Vec<String> {
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
pub fn row_keys(html: &str) -> Vec<String> {
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

/// Panics when `html` holds something the studio's CSP would block (inline
/// script or style, a `javascript:` URL, an inline event handler): the page
/// would look or work differently in a browser than its HTML says.
pub fn assert_csp_clean(html: &str) {
    for bad in [
        "<script>",
        " style=",
        "javascript:",
        " onclick=",
        " onchange=",
        " onload=",
        " onsubmit=",
    ] {
        assert!(!html.contains(bad), "{bad} in a studio page: {html}");
    }
}

/// A set-up and seeded SQLite file; the directory goes when dropped.
pub struct SqliteFile {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub url: String,
}

pub fn sqlite_file() -> SqliteFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("studio.db");
    let url = format!("sqlite:{}", path.display());
    for args in [&["setup"][..], &["seed"]] {
        let out = crate::common::run_db(&url, args, &[]);
        assert!(
            out.status.success(),
            "db {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    SqliteFile {
        _dir: dir,
        path,
        url,
    }
}

/// One text value read straight from the file (not through the studio).
pub fn sqlite_scalar(file: &SqliteFile, sql: &str) -> String {
    use diesel::Connection;
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let mut conn = diesel::SqliteConnection::establish(file.path.to_str().unwrap()).unwrap();
    diesel::sql_query(format!("SELECT CAST(({sql}) AS TEXT) AS v"))
        .get_result::<V>(&mut conn)
        .unwrap()
        .v
}

/// Runs `sql` (one or more statements) straight on the file.
pub fn sqlite_exec(file: &SqliteFile, sql: &str) {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut conn = diesel::SqliteConnection::establish(file.path.to_str().unwrap()).unwrap();
    conn.batch_execute(sql).unwrap();
}
