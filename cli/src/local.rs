//! The project's own PostgreSQL as the other commands see it: the URL every
//! command uses when `DATABASE_URL` is unset, and the service role's password
//! it was secured with. (`db up` and `db down` themselves are
//! `commands::dev`.)

use anyhow::{Context, Result, bail};
use database::Config;
use database::db::local::{Record, STATE_DIR};
use database::ops::cluster::{Cluster, Options, Start};

use crate::project;

/// The URL a command uses when `DATABASE_URL` is unset: the project's own
/// cluster, started when it is down; `create` (for `db setup`) also makes it.
pub fn default_url(create: bool) -> Result<String> {
    let project = project::current().context(
        "DATABASE_URL is not set (environment or .env), and without a project there is no local \
         PostgreSQL to use",
    )?;
    let state = project.root.join(STATE_DIR);
    let mut cluster = match Cluster::open(&state)? {
        Some(cluster) => cluster,
        None if create => {
            eprintln!(
                "DATABASE_URL is not set: creating the project's own PostgreSQL in {}",
                state.display()
            );
            Cluster::create(&state, &Options::default())?
        }
        None => bail!(
            "DATABASE_URL is not set (environment or .env), and this project has no local \
             PostgreSQL yet: `db up` (or `db setup`) creates one in {}; or set DATABASE_URL",
            state.display()
        ),
    };
    if cluster.start()? == Start::Started {
        eprintln!(
            "Started the project's PostgreSQL on 127.0.0.1:{} (`db down` stops it).",
            cluster.record().port
        );
    }
    Ok(cluster.url())
}

/// The service role's password when `config` points at the project's local
/// cluster (it set one when it was secured), for `db setup` to give the role.
pub fn service_password(config: &Config) -> Result<Option<String>> {
    let Ok(project) = project::current() else {
        return Ok(None);
    };
    let Some(record) = Record::load(&project.root.join(STATE_DIR))? else {
        return Ok(None);
    };
    let ours = |url: &str| {
        let parsed = database::db::ConnString::parse(url);
        parsed
            .hosts
            .iter()
            .any(|h| h == "127.0.0.1" || h == "localhost")
            && url.contains(&format!(":{}/", record.port))
    };
    if ours(config.migration_url()) || ours(&config.database_url) {
        return Ok(record.secrets.map(|s| s.service));
    }
    Ok(None)
}
