//! What the `db` command does on a SQLite URL (auth and settings only):
//! empty, drop or delete the file, seed the portable domains, print the
//! schema. Migrations go through `crate::migrate::sqlite`.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rand::{Rng, SeedableRng};

use crate::auth::{NewUser, users};
use crate::db::sqlite::{SqliteConn, SqliteTarget};
use crate::ops::{OpsError, OpsResult};
use crate::settings::{ProfileInput, SettingsPatch, Theme, user_profiles, user_settings};
use crate::{Error, Result};

/// The tables of the file other than SQLite's and the migration history's.
fn user_tables(conn: &mut SqliteConnection, with_history: bool) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY name",
    )
    .load(conn)?;
    Ok(names
        .into_iter()
        .map(|n| n.name)
        .filter(|n| with_history || !n.starts_with("__"))
        .collect())
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Deletes every row of every table but the migration history, in one
/// transaction. Returns the tables emptied.
pub async fn reset(conn: &mut SqliteConn) -> Result<Vec<String>> {
    Ok(conn
        .spawn_blocking(|c| {
            c.immediate_transaction(|c| {
                // Rows reference each other: check the keys at commit, when
                // every table is empty.
                c.batch_execute("PRAGMA defer_foreign_keys = ON")?;
                let tables = user_tables(c, false)?;
                for t in &tables {
                    c.batch_execute(&format!("DELETE FROM {}", quote(t)))?;
                }
                Ok(tables)
            })
        })
        .await?)
}

/// Drops every table, migration history included (`db migrate` rebuilds).
pub async fn nuke(conn: &mut SqliteConn) -> Result<Vec<String>> {
    Ok(conn
        .spawn_blocking(|c| {
            // Outside a transaction, as SQLite requires for this pragma.
            c.batch_execute("PRAGMA foreign_keys = OFF")?;
            let dropped = c.immediate_transaction(|c| {
                let tables = user_tables(c, true)?;
                for t in &tables {
                    c.batch_execute(&format!("DROP TABLE {}", quote(t)))?;
                }
                Ok::<_, diesel::result::Error>(tables)
            });
            c.batch_execute("PRAGMA foreign_keys = ON")?;
            dropped
        })
        .await?)
}

/// The files of a SQLite database: itself, its WAL and shared-memory index.
pub fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// Deletes the database file and its companions; `false` when there was none.
pub fn drop_file(target: &SqliteTarget) -> OpsResult<bool> {
    let SqliteTarget::File(path) = target else {
        return Ok(false);
    };
    let existed = path.exists();
    for file in files_of(path) {
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(OpsError::Io {
                    path: file.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(existed)
}

/// `diesel print-schema` of the file with `diesel-sqlite.toml` (in `root`),
/// i.e. what `src/schema_sqlite.rs` must be.
pub fn pull_in(target: &SqliteTarget, root: &Path) -> OpsResult<String> {
    let SqliteTarget::File(path) = target else {
        return Err(OpsError::config(
            "`db pull` needs a SQLite file, not sqlite::memory:",
        ));
    };
    let out = Command::new(std::env::var("DIESEL_BIN").unwrap_or_else(|_| "diesel".into()))
        .args(["print-schema", "--config-file", "diesel-sqlite.toml"])
        .arg("--database-url")
        .arg(path)
        .current_dir(root)
        .output()
        .map_err(|e| OpsError::Tool {
            tool: "diesel",
            message: format!("{e} (install it with scripts/diesel-cli)"),
        })?;
    if !out.status.success() {
        return Err(OpsError::Tool {
            tool: "diesel",
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| OpsError::Tool {
        tool: "diesel",
        message: e.to_string(),
    })
}

/// User `n` of `seed`'s ids (UUID v7 shaped: the instant, then bits drawn
/// from the seed and the index) and the instant its rows were made: a user
/// a minute from 2026-01-05 09:00 UTC.
fn seeded_row(
    seed: u64,
    n: u64,
) -> (
    crate::UserId,
    crate::ids::AccountId,
    chrono::DateTime<chrono::Utc>,
) {
    use chrono::TimeZone;
    let at = chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
        + chrono::Duration::minutes(n as i64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ n.rotate_left(32) ^ 0x5EED_5711);
    let id = |rng: &mut rand_chacha::ChaCha8Rng| {
        let bits: [u8; 10] = rng.random();
        uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &bits).into_uuid()
    };
    (id(&mut rng).into(), id(&mut rng).into(), at)
}

/// What `seed` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// New users (each with a password login, a profile and settings).
    pub users: u64,
    /// Users that were there already (a second run with the same seed).
    pub existing: u64,
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman",
    "Torvalds",
];

/// Demo users for the portable domains through the same repository
/// functions a service calls: `users` of them, each with a password login, a
/// profile and settings. Same seed, same rows, ids and timestamps included
/// (as the PostgreSQL seed: every row is a function of the seed and its
/// index, its instants offsets from a fixed one); a second run with it
/// writes nothing (users are found by their address). Batches of 200 per
/// transaction.
pub async fn seed(conn: &mut SqliteConn, seed: u64, users: u64) -> Result<SeedReport> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut report = SeedReport::default();
    let mut i = 0;
    while i < users {
        let batch: Vec<(u64, &str, &str, bool)> = (i..(i + 200).min(users))
            .map(|n| {
                (
                    n,
                    FIRST[rng.random_range(0..FIRST.len())],
                    LAST[rng.random_range(0..LAST.len())],
                    rng.random_bool(0.5),
                )
            })
            .collect();
        i += batch.len() as u64;
        let written = conn
            .immediate_transaction(async |conn| {
                let mut written = (0u64, 0u64);
                for (n, first, last, dark) in &batch {
                    let email = format!("{}.{}{n}@seed{seed}.example.com", first, last)
                        .to_ascii_lowercase();
                    match users::find_by_email(conn, &email).await {
                        Ok(_) => {
                            written.1 += 1;
                            continue;
                        }
                        Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    let name = format!("{first} {last}");
                    let input = NewUser {
                        email,
                        name: Some(name.clone()),
                        email_verified: true,
                        ..Default::default()
                    };
                    crate::error::validate(&input)?;
                    let (user_id, account_id, at) = seeded_row(seed, *n);
                    let user = users::insert_seeded(conn, user_id, &input, at).await?;
                    crate::auth::accounts::link_password(
                        conn,
                        user.id,
                        &crate::token::SecretString::new(format!("$seed${seed}${n}")),
                    )
                    .await?;
                    user_profiles::upsert(
                        conn,
                        user.id,
                        &ProfileInput {
                            display_name: name,
                            avatar_url: None,
                            bio: None,
                        },
                    )
                    .await?;
                    user_settings::update(
                        conn,
                        user.id,
                        &SettingsPatch {
                            theme: Some(if *dark { Theme::Dark } else { Theme::Light }),
                            ..Default::default()
                        },
                    )
                    .await?;
                    // What the functions above made from the clock: the
                    // account's id and every row's instants.
                    use crate::schema_sqlite::{
                        accounts, user_profiles as profiles, user_settings as settings,
                    };
                    let account = diesel::update(accounts::table)
                        .filter(accounts::user_id.eq(user.id))
                        .set((
                            accounts::id.eq(account_id),
                            accounts::created_at.eq(at),
                            accounts::updated_at.eq(at),
                        ));
                    diesel_async::RunQueryDsl::execute(account, conn).await?;
                    let profile = diesel::update(profiles::table)
                        .filter(profiles::user_id.eq(user.id))
                        .set((profiles::created_at.eq(at), profiles::updated_at.eq(at)));
                    diesel_async::RunQueryDsl::execute(profile, conn).await?;
                    let setting = diesel::update(settings::table)
                        .filter(settings::user_id.eq(user.id))
                        .set((settings::created_at.eq(at), settings::updated_at.eq(at)));
                    diesel_async::RunQueryDsl::execute(setting, conn).await?;
                    written.0 += 1;
                }
                Ok::<_, Error>(written)
            })
            .await;
        let written = crate::db::sqlite::name_errors(conn, written).await?;
        report.users += written.0;
        report.existing += written.1;
    }
    Ok(report)
}
