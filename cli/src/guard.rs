//! The production guard of destructive commands (`reset`, `nuke`,
//! `rollback`, `redo`).
//!
//! Refused outright, whatever the flags: `APP_ENV` or `NODE_ENV` starts
//! with `prod` (any case), or any host of the URL (the authority's list,
//! `host=`, `hostaddr=`) or database name contains `prod`, the
//! host ends in `.com`, or it contains `rds.amazonaws`. Allowed without a
//! question on a local server (localhost, 127.0.0.0/8, ::1, a Unix socket).
//! Anything else needs a confirmation: typed on a terminal, or `--yes`.

use std::fmt;

use database::db::ConnString;

/// What the guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Go ahead only after the operator confirms (or passed `--yes`).
    NeedsConfirmation {
        /// The host that makes it remote.
        host: String,
    },
    /// Never: the target looks like production.
    Refused(Refusal),
}

/// Why the guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `APP_ENV`/`NODE_ENV` says production.
    ProductionEnv {
        /// The variable that said so.
        variable: &'static str,
        /// Its value.
        value: String,
    },
    /// The URL matches a production pattern.
    ProductionUrl {
        /// Which pattern matched.
        pattern: &'static str,
        /// In which part of the URL (`host <name>` or `database name`).
        part: String,
    },
    /// The URL cannot be parsed, so it cannot be judged safe.
    UnparseableUrl,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ProductionEnv { variable, value } => {
                write!(f, "{variable}={value} (starts with 'prod': production)")
            }
            Refusal::ProductionUrl { pattern, part } => {
                write!(
                    f,
                    "the database URL's {part} {pattern} (looks like production)"
                )
            }
            Refusal::UnparseableUrl => {
                f.write_str("the database URL cannot be parsed, so it cannot be judged safe")
            }
        }
    }
}

/// Judges a destructive command against `url`, reading the environment
/// through `env`. Pure: no DNS look-up, no connection, so a refusal happens
/// before any network I/O.
pub fn judge(url: &str, env: impl Fn(&str) -> Option<String>) -> Verdict {
    for variable in ["APP_ENV", "NODE_ENV"] {
        // `prod`, `production`, `Prod-EU`: anything that starts with prod.
        if let Some(value) = env(variable)
            && value.trim().to_ascii_lowercase().starts_with("prod")
        {
            return Verdict::Refused(Refusal::ProductionEnv {
                variable,
                value: value.trim().to_owned(),
            });
        }
    }
    // A SQLite file is local by nature; only its name can say "production".
    if let Some(target) = database::db::sqlite::sqlite_target(url) {
        let name = match target {
            database::db::sqlite::SqliteTarget::File(path) => path.display().to_string(),
            database::db::sqlite::SqliteTarget::Memory => String::new(),
        };
        if name.to_ascii_lowercase().contains("prod") {
            return Verdict::Refused(Refusal::ProductionUrl {
                pattern: "contains 'prod'",
                part: format!("SQLite file {name}"),
            });
        }
        return Verdict::Allowed;
    }
    let parsed = ConnString::parse(url);
    if !parsed.is_uri && parsed.hosts.is_empty() && parsed.dbname.is_none() {
        return Verdict::Refused(Refusal::UnparseableUrl);
    }
    let name = parsed.dbname.unwrap_or_default().to_ascii_lowercase();
    let refuse = |pattern, part| Verdict::Refused(Refusal::ProductionUrl { pattern, part });
    if name.contains("prod") {
        return refuse("contains 'prod'", "database name".to_owned());
    }
    // Every host as written counts: the authority's list, host= and hostaddr=.
    let hosts: Vec<String> = parsed
        .hosts
        .iter()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        .collect();
    for host in &hosts {
        let part = format!("host {host}");
        if host.contains("prod") {
            return refuse("contains 'prod'", part);
        }
        if host.ends_with(".com") {
            return refuse("ends in '.com'", part);
        }
        if host.contains("rds.amazonaws") {
            return refuse("contains 'rds.amazonaws'", part);
        }
    }
    match hosts.into_iter().find(|h| !is_local(h)) {
        None => Verdict::Allowed,
        Some(host) => Verdict::NeedsConfirmation { host },
    }
}

fn is_local(host: &str) -> bool {
    host.is_empty() // the default Unix socket
        || host == "localhost"
        || host.starts_with('/')
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_sqlite_file_is_local_unless_named_for_production() {
        assert!(matches!(
            judge("sqlite:./local.db", no_env),
            Verdict::Allowed
        ));
        assert!(matches!(
            judge("sqlite:///srv/app_prod.db", no_env),
            Verdict::Refused(_)
        ));
        let prod = |k: &str| (k == "APP_ENV").then(|| "production".to_owned());
        assert!(matches!(
            judge("sqlite:./local.db", prod),
            Verdict::Refused(_)
        ));
    }

    #[test]
    fn production_environments_are_refused() {
        for variable in ["APP_ENV", "NODE_ENV"] {
            for value in ["Production", "prod", "PROD-eu"] {
                let env = |k: &str| (k == variable).then(|| value.to_owned());
                assert_eq!(
                    judge("postgres://postgres@127.0.0.1/app", env),
                    Verdict::Refused(Refusal::ProductionEnv {
                        variable,
                        value: value.to_owned()
                    })
                );
            }
        }
        let staging = |k: &str| (k == "APP_ENV").then(|| "staging".to_owned());
        assert_eq!(
            judge("postgres://postgres@127.0.0.1/app", staging),
            Verdict::Allowed
        );
    }

    #[test]
    fn production_urls_are_refused() {
        for url in [
            "postgres://u@db-prod.internal/app",
            "postgres://u@127.0.0.1/app_production",
            "postgres://u@db.example.com/app",
            "postgres://u@mydb.abc123.eu-west-1.rds.amazonaws.com.cn/app",
            "not a url",
            "postgres://u@localhost,db.example.com/app",
            "postgres:///app?host=db-prod.internal",
        ] {
            assert!(matches!(judge(url, no_env), Verdict::Refused(_)), "{url}");
        }
    }

    #[test]
    fn local_is_allowed_and_remote_needs_confirmation() {
        for url in [
            "postgres://u@localhost/app",
            "postgres://u@127.0.0.1:5432/app",
            "postgres://u@[::1]/app",
            "postgres:///app?host=/run/postgresql",
        ] {
            assert_eq!(judge(url, no_env), Verdict::Allowed, "{url}");
        }
        for url in [
            "postgres:///app?host=10.0.0.5",
            "postgres://localhost/app?hostaddr=10.0.0.5",
            "postgres://u@127.0.0.1:5432,10.0.0.6:5432/app",
            "host=127.0.0.1,10.0.0.7 dbname=app",
        ] {
            assert!(
                matches!(judge(url, no_env), Verdict::NeedsConfirmation { .. }),
                "{url}"
            );
        }
        assert_eq!(
            judge("postgres://u@db.internal/app", no_env),
            Verdict::NeedsConfirmation {
                host: "db.internal".into()
            }
        );
    }
}
