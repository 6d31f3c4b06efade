//! Connection strings as people write them, and as they may be printed.
//!
//! One parser for every form PostgreSQL's clients accept, so that the
//! production guard, the password redaction and the "which database" checks
//! all see the same hosts and the same name:
//!
//! - URIs, `postgres://user:password@host1:5432,host2/db?host=...&hostaddr=...`
//!   (several hosts, IPv6 in brackets, sockets as `%2Frun%2Fpostgresql` or `?host=/run/...`);
//! - libpq key=value strings, `host=h port=5432 dbname=app password='a b'`.
//!
//! The parser is deliberately forgiving: redaction must work on strings that
//! no client would accept (a password with an unescaped `#` or `/`), so it
//! never gives up on a string, it only reports what it could find.

/// The parts of a connection string that this crate judges or prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnString {
    /// Every host named anywhere: the authority's list, `host=` and
    /// `hostaddr=` (each comma-separated list split), percent-decoded, in
    /// order. A socket directory starts with `/`. Empty: the default socket.
    pub hosts: Vec<String>,
    /// The database name (`/name` in a URI, `dbname=` in either form).
    pub dbname: Option<String>,
    /// The user name, if given.
    pub user: Option<String>,
    /// Whether a password is present anywhere in the string.
    pub has_password: bool,
    /// Whether this was a `postgres://`/`postgresql://` URI (else key=value).
    pub is_uri: bool,
    /// How many servers the string names, as libpq counts them: the longest
    /// of the host list, the `hostaddr=` list and the `port=` list (a host
    /// with its address is one server, one host with two ports two).
    pub servers: usize,
}

/// Whether `raw` is a URI (as opposed to a key=value string).
fn uri_rest(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    ["postgresql://", "postgres://"].iter().find_map(|scheme| {
        raw.get(..scheme.len())
            .filter(|p| p.eq_ignore_ascii_case(scheme))
            .map(|_| &raw[scheme.len()..])
    })
}

/// The position of the `@` that ends the user info, if any: the first `@`,
/// as tokio-postgres reads a URI (so the guard judges the hosts the driver
/// connects to). Redaction does not rely on it alone (see `secret_ranges`).
fn userinfo_end(rest: &str) -> Option<usize> {
    rest.find('@')
}

impl ConnString {
    /// Parses any connection string; never fails (see the module docs).
    pub fn parse(raw: &str) -> ConnString {
        match uri_rest(raw) {
            Some(rest) => Self::parse_uri(rest),
            None => Self::parse_key_values(raw),
        }
    }

    fn parse_uri(rest: &str) -> ConnString {
        let mut out = ConnString {
            is_uri: true,
            ..Default::default()
        };
        let (userinfo, after) = match userinfo_end(rest) {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if let Some(info) = userinfo {
            let (user, password) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !user.is_empty() {
                out.user = Some(percent_decode(user));
            }
            out.has_password = password.is_some();
        }
        let (before_query, query) = match after.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (after, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        for spec in authority.split(',').filter(|s| !s.is_empty()) {
            out.hosts.push(percent_decode(host_of_hostspec(spec)));
            out.servers += 1;
        }
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            out.dbname = Some(percent_decode(path));
        }
        let in_authority = out.servers;
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            out.apply_param(&percent_decode(key), &percent_decode(value));
        }
        out.servers = out.servers.max(in_authority);
        out
    }

    fn parse_key_values(raw: &str) -> ConnString {
        let mut out = ConnString::default();
        for (key, value) in key_values(raw) {
            out.apply_param(&key, &value);
        }
        out
    }

    fn apply_param(&mut self, key: &str, value: &str) {
        let listed = || value.split(',').map(str::trim).filter(|h| !h.is_empty());
        match key {
            "host" | "hostaddr" => {
                self.hosts.extend(listed().map(str::to_owned));
                self.servers = self.servers.max(listed().count());
            }
            "port" => self.servers = self.servers.max(value.split(',').count()),
            "dbname" => self.dbname = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "user" => self.user = Some(value.to_owned()),
            k if is_secret_key(k) => self.has_password = true,
            _ => {}
        }
    }
}

/// `host`, `host:port`, `[::1]:port` -> the host.
fn host_of_hostspec(spec: &str) -> &str {
    if let Some(inner) = spec.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    match spec.rsplit_once(':') {
        Some((host, _port)) => host,
        None => spec,
    }
}

/// Keys whose value must never be printed.
fn is_secret_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// The pairs of a libpq key=value string, honouring single quotes and
/// backslash escapes as libpq does.
fn key_values(raw: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            // A stray `=value`: nothing to name, but nothing to lose either.
            continue;
        }
        pairs.push((key, value));
    }
    pairs
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let b = (hi * 16 + lo) as u8;
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The same connection string with another database name (`db setup`
/// connects to the server's `postgres` database to create the app's).
pub fn with_dbname(raw: &str, dbname: &str) -> String {
    let encoded: String = dbname
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    match uri_rest(raw) {
        Some(rest) => {
            let trimmed = raw.trim();
            let head_len = trimmed.len() - rest.len();
            let auth_start = userinfo_end(rest).map_or(0, |at| at + 1);
            let after = &rest[auth_start..];
            let end_of_authority = after.find(['/', '?']).unwrap_or(after.len());
            let (authority, tail) = after.split_at(end_of_authority);
            let query = tail.find('?').map_or("", |q| &tail[q..]);
            // dbname= in the query would win over the path: drop it.
            let query: String = if query.is_empty() {
                String::new()
            } else {
                let kept: Vec<&str> = query[1..]
                    .split('&')
                    .filter(|p| !p.starts_with("dbname="))
                    .collect();
                if kept.is_empty() {
                    String::new()
                } else {
                    format!("?{}", kept.join("&"))
                }
            };
            format!(
                "{}{}{authority}/{encoded}{query}",
                &trimmed[..head_len],
                &rest[..auth_start]
            )
        }
        None => {
            let mut parts: Vec<String> = key_values(raw)
                .into_iter()
                .filter(|(k, _)| k != "dbname")
                .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
                .collect();
            parts.push(format!(
                "dbname='{}'",
                dbname.replace('\\', "\\\\").replace('\'', "\\'")
            ));
            parts.join(" ")
        }
    }
}

/// Removes the parameters named `keys` from a URI's query or a key=value
/// string, returning the rest and the removed (key, value) pairs in order.
pub(crate) fn take_params(raw: &str, keys: &[&str]) -> (String, Vec<(String, String)>) {
    let mut taken = Vec::new();
    match uri_rest(raw) {
        Some(_) => {
            let trimmed = raw.trim();
            let Some((before, query)) = trimmed.split_once('?') else {
                return (trimmed.to_owned(), taken);
            };
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let k = percent_decode(k);
                    if keys.contains(&k.as_str()) {
                        taken.push((k, percent_decode(v)));
                        false
                    } else {
                        true
                    }
                })
                .collect();
            let rest = if kept.is_empty() {
                before.to_owned()
            } else {
                format!("{before}?{}", kept.join("&"))
            };
            (rest, taken)
        }
        None => {
            let rest = key_values(raw)
                .into_iter()
                .filter_map(|(k, v)| {
                    if keys.contains(&k.as_str()) {
                        taken.push((k, v));
                        None
                    } else {
                        Some(format!(
                            "{k}='{}'",
                            v.replace('\\', "\\\\").replace('\'', "\\'")
                        ))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            (rest, taken)
        }
    }
}

/// The connection string without its password, and the password: for
/// handing a URL to another program (`pg_dump`, `diesel`) with the password in
/// its environment (`PGPASSWORD`), where `ps` does not show it.
pub fn split_password(raw: &str) -> (String, Option<String>) {
    let mut password = None;
    let stripped = match uri_rest(raw) {
        Some(rest) => {
            let trimmed = raw.trim();
            let scheme = &trimmed[..trimmed.len() - rest.len()];
            let (userinfo, after) = match userinfo_end(rest) {
                Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
                None => (None, rest),
            };
            let mut out = scheme.to_owned();
            if let Some(info) = userinfo {
                match info.split_once(':') {
                    Some((user, pw)) => {
                        password = Some(percent_decode(pw));
                        out.push_str(user);
                    }
                    None => out.push_str(info),
                }
                out.push('@');
            }
            match after.split_once('?') {
                Some((before, query)) => {
                    out.push_str(before);
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|pair| {
                            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                            if percent_decode(k) == "password" {
                                password = Some(percent_decode(v));
                                false
                            } else {
                                true
                            }
                        })
                        .collect();
                    if !kept.is_empty() {
                        out.push('?');
                        out.push_str(&kept.join("&"));
                    }
                }
                None => out.push_str(after),
            }
            out
        }
        None => key_values(raw)
            .into_iter()
            .filter_map(|(k, v)| {
                if k == "password" {
                    password = Some(v);
                    None
                } else {
                    Some(format!(
                        "{k}='{}'",
                        v.replace('\\', "\\\\").replace('\'', "\\'")
                    ))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    (stripped, password)
}

/// Byte ranges of `uri` that may hold a password, under every reading a
/// client or a typo could give it: the user info ending at the first `@`
/// (tokio-postgres) and at the last one (a password with an unescaped `@`),
/// and every `*password*` query value, wherever the query is taken to start.
fn secret_ranges(uri: &str, after_scheme: usize) -> Vec<(usize, usize)> {
    let rest = &uri[after_scheme..];
    let mut ranges = Vec::new();
    for at in [rest.find('@'), rest.rfind('@')].into_iter().flatten() {
        if let Some(colon) = rest[..at].find(':') {
            ranges.push((after_scheme + colon + 1, after_scheme + at));
        }
    }
    let query_starts = [
        rest.find('?'),
        rest.rfind('@')
            .and_then(|at| rest[at..].find('?').map(|q| at + q)),
    ];
    for q in query_starts.into_iter().flatten() {
        let mut offset = after_scheme + q + 1;
        for pair in uri[offset..].split('&') {
            if let Some((key, _)) = pair.split_once('=')
                && is_secret_key(&percent_decode(key))
            {
                ranges.push((offset + key.len() + 1, offset + pair.len()));
            }
            offset += pair.len() + 1;
        }
    }
    ranges.retain(|(start, end)| start < end);
    ranges.sort();
    ranges
}

/// The connection string with every password replaced by `***`, for logs,
/// errors and `Debug`. Works on every form (see the module docs), including
/// strings no client would accept and schemes it does not know
/// (`postgresql+psycopg://`, `jdbc:postgresql://`): anything with `://` is
/// masked as a URI.
pub fn redact_url(raw: &str) -> String {
    let trimmed = raw.trim();
    if let Some(i) = trimmed.find("://")
        && !trimmed[..i].contains(char::is_whitespace)
    {
        let mut out = String::with_capacity(trimmed.len());
        let mut copied = 0;
        for (start, end) in secret_ranges(trimmed, i + 3) {
            if end <= copied {
                continue;
            }
            let start = start.max(copied);
            out.push_str(&trimmed[copied..start]);
            out.push_str("***");
            copied = end;
        }
        out.push_str(&trimmed[copied..]);
        return out;
    }
    let pairs = key_values(raw);
    if pairs.is_empty() {
        return raw.to_owned();
    }
    pairs
        .iter()
        .map(|(k, v)| {
            if is_secret_key(k) {
                format!("{k}=***")
            } else if v.is_empty() || v.contains(char::is_whitespace) || v.contains('\'') {
                format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_servers_as_libpq_does() {
        for (raw, servers) in [
            ("postgres://app@h/db", 1),
            ("postgres://app@h1:5432,h2:5433/db", 2),
            ("postgres://app@/db?host=h1,h2", 2),
            ("postgres://app@h/db?hostaddr=10.0.0.1", 1),
            ("host=h hostaddr=10.0.0.1 dbname=db", 1),
            ("host=h port=5432,5433 dbname=db", 2),
            ("host=a,b hostaddr=10.0.0.1,10.0.0.2 dbname=db", 2),
            ("dbname=db", 0),
        ] {
            assert_eq!(ConnString::parse(raw).servers, servers, "{raw}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/app"),
            "postgres://app:***@db.internal:5432/app"
        );
        assert_eq!(
            redact_url("postgres://app@localhost/app"),
            "postgres://app@localhost/app"
        );
        assert!(!redact_url("postgres://h/app?password=s3cret&sslmode=require").contains("s3cret"));
        assert_eq!(
            redact_url("host=x password=s3cret dbname=y"),
            "host=x password=*** dbname=y"
        );
    }

    #[test]
    fn redacts_every_form_that_leaked() {
        for (raw, secret) in [
            ("postgres://app:pw1@h1:5432,h2:5432/db", "pw1"),
            ("postgresql://app:p#w2@h/db", "p#w2"),
            ("postgres://app:p/w3@h/db", "p/w3"),
            ("postgres://app:p@w4@h/db", "p@w4"),
            ("postgres://app:p?w5@h/db", "p?w5"),
            ("host=h password='sec ret6' dbname=db", "sec ret6"),
            ("host=h password = s7 dbname=db", "s7"),
            ("postgres://h/db?user=a&password=s8", "s8"),
            ("postgres://h/db?sslpassword=s9", "s9"),
            ("POSTGRES://app:s10@h/db", "s10"),
            ("postgresql+psycopg://u:s11@h/db", "s11"),
            ("jdbc:postgresql://h/db?user=u&password=s12", "s12"),
            ("postgress://u:s13@h/db", "s13"),
            ("postgres://h/db?password=p@s14", "p@s14"),
            ("postgres://u:s15@h/db?application_name=me@ci", "s15"),
        ] {
            let shown = redact_url(raw);
            assert!(!shown.contains(secret), "{raw} -> {shown}");
            assert!(shown.contains("***"), "{raw} -> {shown}");
        }
    }

    #[test]
    fn splits_the_password_off() {
        assert_eq!(
            split_password("postgres://app:p%40ss@h:1/db?sslmode=require"),
            (
                "postgres://app@h:1/db?sslmode=require".to_owned(),
                Some("p@ss".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://h/db?password=x&a=b"),
            ("postgres://h/db?a=b".to_owned(), Some("x".to_owned()))
        );
        let (kv, pw) = split_password("host=h password='a b' dbname=d");
        assert!(!kv.contains("a b"));
        assert_eq!(pw.as_deref(), Some("a b"));
    }

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_dbname("postgres://u:p@h1:1,h2:2/app?sslmode=require", "postgres"),
            "postgres://u:p@h1:1,h2:2/postgres?sslmode=require"
        );
        assert_eq!(with_dbname("postgres://u@h", "x y"), "postgres://u@h/x%20y");
        assert_eq!(
            with_dbname("postgres:///app?host=/run/pg&dbname=app", "postgres"),
            "postgres:///postgres?host=/run/pg"
        );
        let kv = with_dbname("host=h dbname=app password='a b'", "postgres");
        assert_eq!(ConnString::parse(&kv).dbname.as_deref(), Some("postgres"));
        assert!(kv.contains("password='a b'"));
    }

    #[test]
    fn parses_every_host() {
        let c = ConnString::parse(
            "postgres://u:p@h1:5432,[::1]:6432,h3/app?host=/run/pg&hostaddr=10.0.0.5",
        );
        assert_eq!(c.hosts, ["h1", "::1", "h3", "/run/pg", "10.0.0.5"]);
        assert_eq!(c.dbname.as_deref(), Some("app"));
        assert!(c.has_password);
        let c = ConnString::parse("postgres:///app?host=10.0.0.5");
        assert_eq!(c.hosts, ["10.0.0.5"]);
        let c = ConnString::parse("postgres://%2Frun%2Fpostgresql/app");
        assert_eq!(c.hosts, ["/run/postgresql"]);
        let c = ConnString::parse("host=a,b hostaddr=10.1.1.1 dbname='my db'");
        assert_eq!(c.hosts, ["a", "b", "10.1.1.1"]);
        assert_eq!(c.dbname.as_deref(), Some("my db"));
        assert_eq!(ConnString::parse("postgres://u@host:5432").dbname, None);
        // An `@` in a query value is not the end of the user info.
        let c = ConnString::parse("postgres://u@h/app?application_name=me@ci");
        assert_eq!(
            (c.hosts.as_slice(), c.dbname.as_deref()),
            (&["h".to_owned()][..], Some("app"))
        );
        assert_eq!(ConnString::parse("postgres://u@host:5432/").dbname, None);
    }
}
