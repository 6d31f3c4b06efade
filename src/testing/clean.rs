//! `db test-db clean`: drops the databases that failed or crashed tests
//! left behind and the templates of old migration sets, and leaves alone
//! whatever a test still running uses (another checkout's, another
//! terminal's).

use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use super::{COMMENT_MARK, TEMPLATE_PREFIX, TEST_PREFIX};
use crate::Conn;
use crate::migrate::MigrationSet;

/// What `clean` did.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Test databases dropped (of finished or crashed processes).
    pub dropped: Vec<String>,
    /// Test databases left alone: their process still runs, or someone is
    /// connected to them.
    pub in_use: Vec<String>,
    /// Templates dropped (of migration sets no longer current and unused).
    pub templates_dropped: Vec<String>,
    /// Templates kept (the current sets', and those running tests came from).
    pub templates_kept: Vec<String>,
}

#[derive(diesel::QueryableByName)]
struct Candidate {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    comment: String,
    #[diesel(sql_type = BigInt)]
    sessions: i64,
}

/// Cleans the server `conn` is connected to (as a role that owns the test
/// databases or a superuser). `current`: the migration sets whose templates
/// stay (the crate's embedded set; a service adds its own).
pub async fn clean(conn: &mut Conn, current: &[&MigrationSet]) -> crate::Result<CleanReport> {
    let candidates: Vec<Candidate> = diesel::sql_query(
        "SELECT d.datname::text AS name,
                coalesce(shobj_description(d.oid, 'pg_database'), '') AS comment,
                (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname) AS sessions
           FROM pg_database d
          WHERE d.datname LIKE $1 OR d.datname LIKE $2
          ORDER BY d.datname",
    )
    .bind::<Text, _>(format!("{}%", like_escape(TEST_PREFIX)))
    .bind::<Text, _>(format!("{}%", like_escape(TEMPLATE_PREFIX)))
    .load(conn)
    .await?;
    let here = host_name();
    let mut report = CleanReport::default();
    let mut templates_in_use: Vec<String> = current
        .iter()
        .map(|set| format!("{TEMPLATE_PREFIX}{}", &set.fingerprint()[..16]))
        .collect();
    let mut templates = Vec::new();
    for c in candidates {
        if c.name.starts_with(TEMPLATE_PREFIX) {
            templates.push(c);
            continue;
        }
        let owner = Owner::of(&c.name, &c.comment);
        let running = c.sessions > 0
            || owner
                .pid
                .is_some_and(|pid| owner.host.as_deref().is_none_or(|h| h == here) && alive(pid));
        if running {
            if let Some(t) = owner.template {
                templates_in_use.push(t);
            }
            report.in_use.push(c.name);
        } else {
            drop_database(conn, &c.name, false).await?;
            report.dropped.push(c.name);
        }
    }
    for t in templates {
        let building = t.name.ends_with("_building");
        if (!building && templates_in_use.contains(&t.name)) || (building && t.sessions > 0) {
            report.templates_kept.push(t.name);
        } else {
            drop_database(conn, &t.name, !building).await?;
            report.templates_dropped.push(t.name);
        }
    }
    Ok(report)
}

async fn drop_database(conn: &mut Conn, name: &str, template: bool) -> crate::Result<()> {
    use diesel_async::SimpleAsyncConnection;
    // Only names this module made (prefix, then [a-z0-9_]) reach SQL.
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if template {
        conn.batch_execute(&format!("ALTER DATABASE {name} WITH IS_TEMPLATE false"))
            .await?;
    }
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Who made a test database: from its comment (`pid=.. host=.. template=..`),
/// else from its name (`..._<pid>_<n>`, a database whose comment was not
/// written yet or that an older harness made).
#[derive(Debug, PartialEq)]
struct Owner {
    pid: Option<i32>,
    host: Option<String>,
    template: Option<String>,
}

impl Owner {
    fn of(name: &str, comment: &str) -> Owner {
        let field = |key: &str| {
            comment
                .strip_prefix(COMMENT_MARK)?
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let from_name = || {
            let mut parts = name.rsplit('_');
            parts.next()?;
            parts.next()?.parse().ok()
        };
        Owner {
            pid: field("pid").and_then(|p| p.parse().ok()).or_else(from_name),
            host: field("host"),
            template: field("template").filter(|t| t != "-"),
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's name (where a test database's process runs).
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'\''))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('_', "\\_")
        .replace('%', "\\%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_comes_from_the_comment_else_from_the_name() {
        let o = Owner::of(
            "database_test_x_12_3",
            "database::testing pid=77 host=box template=database_tpl_ab",
        );
        assert_eq!(o.pid, Some(77));
        assert_eq!(o.host.as_deref(), Some("box"));
        assert_eq!(o.template.as_deref(), Some("database_tpl_ab"));
        let o = Owner::of("database_test_12_3", "");
        assert_eq!(o.pid, Some(12));
        assert_eq!(o.host, None);
    }
}
