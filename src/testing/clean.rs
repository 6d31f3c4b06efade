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
    /// Test databases left alone: their process still runs (or cannot be
    /// checked from here and the database is less than a day old), or
    /// someone is connected to them.
    pub in_use: Vec<String>,
    /// Templates dropped (of migration sets no longer current and unused).
    pub templates_dropped: Vec<String>,
    /// Templates kept (the current sets', and those running tests came from).
    pub templates_kept: Vec<String>,
    /// SQLite files of finished test processes removed.
    pub sqlite_files_removed: Vec<String>,
    /// What could not be dropped, and why (the rest was still cleaned).
    pub failed: Vec<String>,
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
/// databases or a superuser), and this machine's SQLite test files.
/// `current`: the migration sets whose templates stay (the crate's embedded
/// set; a service adds its own).
pub async fn clean(conn: &mut Conn, current: &[&MigrationSet]) -> crate::Result<CleanReport> {
    use diesel_async::SimpleAsyncConnection;
    let mut report = CleanReport {
        sqlite_files_removed: super::sqlite::remove_leftovers(),
        ..CleanReport::default()
    };
    // No template is built while this runs, and none is dropped while a
    // test process builds one.
    conn.batch_execute(&format!(
        "SELECT pg_advisory_lock({})",
        super::TEMPLATE_LOCK
    ))
    .await?;
    let result = clean_locked(conn, current, &mut report).await;
    conn.batch_execute(&format!(
        "SELECT pg_advisory_unlock({})",
        super::TEMPLATE_LOCK
    ))
    .await?;
    result.map(|()| report)
}

async fn clean_locked(
    conn: &mut Conn,
    current: &[&MigrationSet],
    report: &mut CleanReport,
) -> crate::Result<()> {
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
    let me = Owner::mine(None);
    let now = unix_now();
    let mut templates_in_use: Vec<String> = current
        .iter()
        .map(|set| super::template_name(set))
        .collect();
    let mut templates = Vec::new();
    for c in candidates {
        // Only names this harness makes reach SQL: anything else that
        // happens to share the prefix is not ours to touch.
        if !c
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        if c.name.starts_with(TEMPLATE_PREFIX) {
            templates.push(c);
            continue;
        }
        let owner = Owner::of(&c.name, &c.comment);
        if c.sessions > 0 || owner.may_run(&me, now) {
            if let Some(t) = owner.template {
                templates_in_use.push(t);
            }
            report.in_use.push(c.name);
        } else {
            match drop_database(conn, &c.name, false).await {
                Ok(()) => report.dropped.push(c.name),
                Err(e) => report.failed.push(format!("{}: {e}", c.name)),
            }
        }
    }
    for t in templates {
        let building = t.name.ends_with("_building");
        if (!building && templates_in_use.contains(&t.name)) || (building && t.sessions > 0) {
            report.templates_kept.push(t.name);
        } else {
            match drop_database(conn, &t.name, !building).await {
                Ok(()) => report.templates_dropped.push(t.name),
                Err(e) => report.failed.push(format!("{}: {e}", t.name)),
            }
        }
    }
    Ok(())
}

async fn drop_database(conn: &mut Conn, name: &str, template: bool) -> crate::Result<()> {
    use diesel_async::SimpleAsyncConnection;
    if template {
        conn.batch_execute(&format!("ALTER DATABASE \"{name}\" WITH IS_TEMPLATE false"))
            .await?;
    }
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Who made a test database, as its comment records it: the process, the
/// machine (its name, and the kernel's boot id), the process-id namespace,
/// when, and from which template. A database whose comment is missing (not
/// written yet, or an older harness's) is judged by the process id in its
/// name (`..._<pid>_<n>`) as if it were this machine's.
#[derive(Debug, PartialEq)]
pub(crate) struct Owner {
    pid: Option<i32>,
    host: Option<String>,
    boot: Option<String>,
    pidns: Option<String>,
    at: Option<u64>,
    template: Option<String>,
}

/// How long a test database whose process cannot be checked from here
/// (another machine, another container) counts as in use.
const UNCHECKABLE_GRACE_SECS: u64 = 24 * 3600;

impl Owner {
    /// This process, making a database from `template`.
    pub(crate) fn mine(template: Option<&str>) -> Owner {
        Owner {
            pid: Some(std::process::id() as i32),
            host: Some(host_name()),
            boot: read_id("/proc/sys/kernel/random/boot_id"),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| is_plain(p)),
            at: Some(unix_now()),
            template: template.map(str::to_owned),
        }
    }

    /// The comment that records it (every value is plain: no quote, no space).
    pub(crate) fn comment(&self) -> String {
        let mut out = COMMENT_MARK.to_owned();
        let mut field = |key: &str, value: Option<String>| {
            if let Some(v) = value.filter(|v| is_plain(v)) {
                out.push_str(&format!(" {key}={v}"));
            }
        };
        field("pid", self.pid.map(|p| p.to_string()));
        field("host", self.host.clone());
        field("boot", self.boot.clone());
        field("pidns", self.pidns.clone());
        field("at", self.at.map(|a| a.to_string()));
        field(
            "template",
            Some(self.template.clone().unwrap_or_else(|| "-".into())),
        );
        out
    }

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
            boot: field("boot"),
            pidns: field("pidns"),
            at: field("at").and_then(|a| a.parse().ok()),
            template: field("template").filter(|t| t != "-"),
        }
    }

    /// Whether its process may still run, seen from `me` at `now`.
    fn may_run(&self, me: &Owner, now: u64) -> bool {
        let Some(pid) = self.pid else {
            return false;
        };
        let same = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
        let this_machine = same(&self.host, &me.host);
        if this_machine && self.boot.is_some() && self.boot != me.boot {
            // This machine has restarted since: the process is gone.
            return false;
        }
        if this_machine && same(&self.boot, &me.boot) && same(&self.pidns, &me.pidns) {
            return alive(pid);
        }
        // Another machine or container: its process cannot be checked.
        self.at
            .is_none_or(|at| now.saturating_sub(at) < UNCHECKABLE_GRACE_SECS)
    }
}

fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'\\')
}

fn read_id(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| is_plain(s))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// This machine's name (where a test database's process runs).
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| read_id(p))
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
        let mine = Owner::mine(Some("database_tpl_ab"));
        let read = Owner::of("database_test_x_12_3", &mine.comment());
        assert_eq!(read, mine);
        let o = Owner::of("database_test_12_3", "");
        assert_eq!(o.pid, Some(12));
        assert_eq!(o.host, None);
    }

    #[test]
    fn a_process_that_cannot_be_checked_counts_as_running_for_a_day() {
        let me = Owner::mine(None);
        let now = unix_now();
        let elsewhere = |at: u64| Owner {
            host: Some("another-machine".into()),
            at: Some(at),
            ..Owner::mine(None)
        };
        assert!(elsewhere(now - 60).may_run(&me, now));
        assert!(!elsewhere(now - 2 * UNCHECKABLE_GRACE_SECS).may_run(&me, now));
        let rebooted = Owner {
            boot: Some("another-boot".into()),
            ..Owner::mine(None)
        };
        assert!(!rebooted.may_run(&me, now), "this machine restarted since");
        assert!(
            Owner::mine(None).may_run(&me, now),
            "this very process runs"
        );
    }
}
