//! The production guard of destructive commands (`reset`, `nuke`,
//! `rollback`, `redo`).
//!
//! Refused outright, whatever the flags: `APP_ENV` or `NODE_ENV` is
//! `production`, or the URL's host or database name contains `prod`, the
//! host ends in `.com`, or it contains `rds.amazonaws`. Allowed without a
//! question on a local server (localhost, 127.0.0.0/8, ::1, a Unix socket).
//! Anything else needs a confirmation: typed on a terminal, or `--yes`.

use std::fmt;

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
    },
    /// The URL matches a production pattern.
    ProductionUrl {
        /// Which pattern matched.
        pattern: &'static str,
        /// In which part of the URL (`host` or `database name`).
        part: &'static str,
    },
    /// The URL cannot be parsed, so it cannot be judged safe.
    UnparseableUrl,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ProductionEnv { variable } => write!(f, "{variable} is 'production'"),
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
/// through `env`.
pub fn judge(url: &str, env: impl Fn(&str) -> Option<String>) -> Verdict {
    for variable in ["APP_ENV", "NODE_ENV"] {
        if env(variable).is_some_and(|v| v.trim().eq_ignore_ascii_case("production")) {
            return Verdict::Refused(Refusal::ProductionEnv { variable });
        }
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return Verdict::Refused(Refusal::UnparseableUrl);
    };
    let host = parsed
        .host_str()
        .unwrap_or("")
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let name = parsed.path().trim_start_matches('/').to_ascii_lowercase();
    let refuse = |pattern, part| Verdict::Refused(Refusal::ProductionUrl { pattern, part });
    if host.contains("prod") {
        return refuse("contains 'prod'", "host");
    }
    if name.contains("prod") {
        return refuse("contains 'prod'", "database name");
    }
    if host.ends_with(".com") {
        return refuse("ends in '.com'", "host");
    }
    if host.contains("rds.amazonaws") {
        return refuse("contains 'rds.amazonaws'", "host");
    }
    if is_local(&host) {
        Verdict::Allowed
    } else {
        Verdict::NeedsConfirmation { host }
    }
}

fn is_local(host: &str) -> bool {
    host.is_empty() // a Unix socket (host in the query string or the default)
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
    fn production_environments_are_refused() {
        for variable in ["APP_ENV", "NODE_ENV"] {
            let env = |k: &str| (k == variable).then(|| "Production".to_owned());
            assert_eq!(
                judge("postgres://postgres@127.0.0.1/app", env),
                Verdict::Refused(Refusal::ProductionEnv { variable })
            );
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
        assert_eq!(
            judge("postgres://u@db.internal/app", no_env),
            Verdict::NeedsConfirmation {
                host: "db.internal".into()
            }
        );
    }
}
