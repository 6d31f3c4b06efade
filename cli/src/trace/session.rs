//! The sessions of a trace and what they read: `main` applies the
//! migration, `probe` plays the concurrent reader and writer (and samples
//! `main`'s locks when a statement runs outside a transaction), `holder`
//! plays a long-running reader for those statements.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use database::Config;
use database::Conn;
use database::db::connect_for_migrations;
use database::migrate::Migration;

use super::{Lock, Probe, Traced};
use crate::lint::{Statement, TransactionControl};

/// How long a probe waits for a lock before it counts as blocked.
const PROBE_LOCK_TIMEOUT: &str = "100ms";
/// How often a statement outside a transaction has its locks sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);
/// How long the long-running reader is kept when the statement never waits for it.
const HOLD_AT_MOST: Duration = Duration::from_secs(2);

/// The lock modes, weakest first, as `pg_locks` and the documentation name them.
const MODES: [(&str, &str); 8] = [
    ("AccessShareLock", "ACCESS SHARE"),
    ("RowShareLock", "ROW SHARE"),
    ("RowExclusiveLock", "ROW EXCLUSIVE"),
    ("ShareUpdateExclusiveLock", "SHARE UPDATE EXCLUSIVE"),
    ("ShareLock", "SHARE"),
    ("ShareRowExclusiveLock", "SHARE ROW EXCLUSIVE"),
    ("ExclusiveLock", "EXCLUSIVE"),
    ("AccessExclusiveLock", "ACCESS EXCLUSIVE"),
];

/// The documentation's name of a `pg_locks.mode`.
fn mode_name(mode: &str) -> &'static str {
    MODES
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or("OTHER", |(_, name)| name)
}

/// A mode's strength (its place in [`MODES`]).
pub(super) fn strength(name: &str) -> usize {
    MODES.iter().position(|(_, n)| *n == name).unwrap_or(0)
}

/// A relation that existed before the migration.
#[derive(Debug, Clone)]
struct Relation {
    /// Quoted, schema-qualified unless `public`.
    name: String,
    kind: &'static str,
    /// `pg_class.relfilenode` before the statement at hand.
    filenode: i64,
    /// A column an `UPDATE ... SET c = c WHERE false` can name.
    first_column: Option<String>,
}

impl Relation {
    fn has_rows(&self) -> bool {
        matches!(self.kind, "table" | "materialized view")
    }
}

#[derive(QueryableByName)]
struct RelationRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = Text)]
    schema: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = BigInt)]
    filenode: i64,
    #[diesel(sql_type = Nullable<Text>)]
    first_column: Option<String>,
}

const RELATIONS: &str = "SELECT c.oid::bigint AS oid, n.nspname::text AS schema, c.relname::text AS name, \
       c.relkind::text AS kind, c.relfilenode::bigint AS filenode, \
       (SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
          AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1) AS first_column \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'm', 'v', 'i', 'I') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

#[derive(QueryableByName)]
struct LockRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = Text)]
    mode: String,
    #[diesel(sql_type = Bool)]
    granted: bool,
}

const LOCKS_OF: &str = "SELECT relation::bigint AS oid, mode, granted FROM pg_locks \
     WHERE pid = $1 AND locktype = 'relation' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

#[derive(QueryableByName)]
struct ScanRow {
    #[diesel(sql_type = BigInt)]
    oid: i64,
    #[diesel(sql_type = BigInt)]
    scans: i64,
}

const SEQ_SCANS: &str = "SELECT relid::bigint AS oid, coalesce(seq_scan, 0)::bigint AS scans FROM pg_stat_xact_user_tables";

#[derive(QueryableByName)]
struct WaitRow {
    #[diesel(sql_type = Nullable<Text>)]
    wait: Option<String>,
}

/// The sessions of a trace, on the throwaway database.
pub(super) struct Sessions {
    main: Conn,
    probe: Conn,
    holder: Conn,
    main_pid: i32,
    /// The relations that existed before the current migration, by oid.
    relations: HashMap<i64, Relation>,
    /// What the probes met after the previous statement of the transaction.
    last_probes: Option<Vec<Probe>>,
}

impl Sessions {
    /// Opens the probe and holder sessions beside `main`.
    pub(super) async fn open(config: &Config, url: &str, mut main: Conn) -> Result<Self> {
        let mut probe = connect_for_migrations(config, url).await?;
        probe
            .batch_execute(&format!(
                "SET lock_timeout = '{PROBE_LOCK_TIMEOUT}'; SET statement_timeout = '10s'"
            ))
            .await?;
        let holder = connect_for_migrations(config, url).await?;
        #[derive(QueryableByName)]
        struct Pid {
            #[diesel(sql_type = Integer)]
            pid: i32,
        }
        let pid: Pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result(&mut main)
            .await?;
        Ok(Self {
            main,
            probe,
            holder,
            main_pid: pid.pid,
            relations: HashMap::new(),
            last_probes: None,
        })
    }

    pub(super) async fn server_version(&mut self) -> Result<String> {
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = Text)]
            server_version: String,
        }
        let v: Version = diesel::sql_query("SHOW server_version")
            .get_result(&mut self.main)
            .await?;
        // "15.20 (Debian 15.20-0+deb12u1)": the version, without the packager's note.
        Ok(v.server_version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// Applies `m` statement by statement under observation; stops at the
    /// first statement that fails (and rolls its transaction back).
    pub(super) async fn trace_migration(
        &mut self,
        m: &Migration,
        file: &str,
        statements: &[Statement],
    ) -> Result<Vec<Traced>> {
        self.relations = relations(&mut self.main).await?;
        let mut out = Vec::new();
        let mut in_transaction = m.run_in_transaction;
        self.last_probes = None;
        if in_transaction {
            self.main.batch_execute("BEGIN").await?;
        }
        // Locks this transaction held before the statement at hand.
        let mut held: HashSet<(i64, String)> = HashSet::new();
        for s in statements {
            if let Some(control) = s.control {
                self.main.batch_execute(&s.sql).await?;
                in_transaction = control == TransactionControl::Begin;
                held.clear();
                self.last_probes = None;
                continue;
            }
            let mut traced = if in_transaction {
                self.exact(s, &mut held, true).await?
            } else if !s.refuses_transaction {
                // What runs alone runs in a transaction of its own anyway:
                // make it explicit, to read the locks before it ends.
                self.main.batch_execute("BEGIN").await?;
                self.last_probes = None;
                let mut own = HashSet::new();
                let traced = self.exact(s, &mut own, false).await?;
                let end = if traced.error.is_some() {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                self.main.batch_execute(end).await?;
                traced
            } else {
                self.sampled(s).await?
            };
            traced.file = file.to_owned();
            traced.version.clone_from(&m.version);
            let failed = traced.error.is_some();
            out.push(traced);
            if failed {
                if in_transaction {
                    self.main.batch_execute("ROLLBACK").await?;
                }
                return Ok(out);
            }
        }
        if in_transaction {
            self.main.batch_execute("COMMIT").await?;
        }
        Ok(out)
    }

    /// Runs `s` in the open transaction and reads what it did before it
    /// ends; `migration_transaction`: that transaction is the migration's
    /// (its locks last until the migration commits), not the statement's own.
    async fn exact(
        &mut self,
        s: &Statement,
        held: &mut HashSet<(i64, String)>,
        migration_transaction: bool,
    ) -> Result<Traced> {
        let files_before = filenodes(&mut self.main).await?;
        let scans_before = seq_scans(&mut self.main).await?;
        let started = Instant::now();
        let result = self.main.batch_execute(&s.sql).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut traced = Traced::new(s, migration_transaction, false, duration_ms);
        if let Err(e) = result {
            traced.error = Some(e.to_string());
            return Ok(traced);
        }
        let files_after = filenodes(&mut self.main).await?;
        traced.rewritten = self.rewritten(&files_before, &files_after);
        let scans_after = seq_scans(&mut self.main).await?;
        traced.scanned = Some(
            scans_after
                .iter()
                .filter(|(oid, n)| scans_before.get(oid).is_some_and(|b| *n > b))
                .filter_map(|(oid, _)| self.relations.get(oid).map(|r| r.name.clone()))
                .collect(),
        );
        let rows = locks_of(&mut self.main, self.main_pid).await?;
        // Locks on relations of this migration's own making block no one else.
        let now: HashSet<(i64, String)> = rows
            .iter()
            .filter(|r| self.relations.contains_key(&r.oid))
            .map(|r| (r.oid, r.mode.clone()))
            .collect();
        traced.locks = self.locks(&rows, held);
        // The same locks as after the previous statement meet the same fate:
        // probing again would only wait the same timeouts again.
        if now != *held || self.last_probes.is_none() {
            let targets = lock_targets(&rows);
            self.last_probes = Some(probe_all(&mut self.probe, &self.relations, &targets).await?);
        }
        traced.probes = self.last_probes.clone().unwrap_or_default();
        *held = now;
        Ok(traced)
    }

    /// Runs `s` outside a transaction while the probe session samples its
    /// locks and the holder plays a long-running reader it may wait for.
    async fn sampled(&mut self, s: &Statement) -> Result<Traced> {
        let files_before = filenodes(&mut self.main).await?;
        let tables: Vec<&str> = self
            .relations
            .values()
            .filter(|r| r.has_rows() || r.kind == "partitioned table")
            .map(|r| r.name.as_str())
            .collect();
        let lock = if tables.is_empty() {
            String::new()
        } else {
            format!("LOCK TABLE {} IN ACCESS SHARE MODE;", tables.join(", "))
        };
        self.holder
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; {lock} SELECT 1"
            ))
            .await?;
        let done = AtomicBool::new(false);
        let Self {
            main,
            probe,
            holder,
            main_pid,
            relations,
            ..
        } = self;
        let run = async {
            let started = Instant::now();
            let result = main.batch_execute(&s.sql).await;
            done.store(true, Ordering::SeqCst);
            (result, started.elapsed().as_secs_f64() * 1000.0)
        };
        let watch = async {
            let mut seen: BTreeMap<(i64, String), bool> = BTreeMap::new();
            let mut probes = Vec::new();
            let mut released = false;
            let started = Instant::now();
            while !AtomicBool::load(&done, Ordering::SeqCst) {
                let rows = locks_of(probe, *main_pid).await?;
                for r in &rows {
                    *seen.entry((r.oid, r.mode.clone())).or_default() |= r.granted;
                }
                if !released {
                    let waiting = is_waiting_on_lock(probe, *main_pid).await?;
                    if waiting {
                        probes = probe_all(probe, relations, &lock_targets(&rows)).await?;
                    }
                    if waiting || started.elapsed() > HOLD_AT_MOST {
                        holder.batch_execute("ROLLBACK").await?;
                        released = true;
                    }
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            if !released {
                holder.batch_execute("ROLLBACK").await?;
            }
            anyhow::Ok((seen, probes))
        };
        let ((result, duration_ms), watched) = tokio::join!(run, watch);
        let (seen, probes) = watched?;
        let mut traced = Traced::new(s, false, true, duration_ms);
        traced.locks = seen
            .iter()
            .filter_map(|((oid, mode), granted)| {
                let r = self.relations.get(oid)?;
                Some(Lock {
                    relation: r.name.clone(),
                    kind: r.kind,
                    mode: mode_name(mode),
                    granted: *granted,
                    new: true,
                })
            })
            .collect();
        traced.probes = probes;
        if let Err(e) = result {
            traced.error = Some(e.to_string());
            return Ok(traced);
        }
        let files_after = filenodes(&mut self.main).await?;
        traced.rewritten = self.rewritten(&files_before, &files_after);
        Ok(traced)
    }

    /// The relations of `rows` that existed before the migration, as locks;
    /// `held` are those the transaction held before the statement.
    fn locks(&self, rows: &[LockRow], held: &HashSet<(i64, String)>) -> Vec<Lock> {
        rows.iter()
            .filter_map(|row| {
                let r = self.relations.get(&row.oid)?;
                Some(Lock {
                    relation: r.name.clone(),
                    kind: r.kind,
                    mode: mode_name(&row.mode),
                    granted: row.granted,
                    new: !held.contains(&(row.oid, row.mode.clone())),
                })
            })
            .collect()
    }

    /// Tables whose file changed between two readings (a rewrite).
    fn rewritten(&self, before: &HashMap<i64, i64>, after: &HashMap<i64, i64>) -> Vec<String> {
        let mut names: Vec<String> = before
            .iter()
            .filter(|(oid, file)| after.get(oid).is_some_and(|f| f != *file))
            .filter_map(|(oid, _)| self.relations.get(oid))
            .filter(|r| r.has_rows())
            .map(|r| r.name.clone())
            .collect();
        names.sort();
        names
    }
}

impl Traced {
    fn new(s: &Statement, in_transaction: bool, sampled: bool, duration_ms: f64) -> Self {
        Traced {
            file: String::new(),
            line: s.line,
            version: String::new(),
            sql: s.sql.clone(),
            in_transaction,
            sampled,
            duration_ms,
            locks: Vec::new(),
            rewritten: Vec::new(),
            scanned: None,
            probes: Vec::new(),
            error: None,
        }
    }
}

/// The user relations of the database `conn` is on, by oid.
async fn relations(conn: &mut Conn) -> Result<HashMap<i64, Relation>> {
    let rows: Vec<RelationRow> = diesel::sql_query(RELATIONS).load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let kind = match r.kind.as_str() {
                "r" => "table",
                "p" => "partitioned table",
                "m" => "materialized view",
                "v" => "view",
                _ => "index",
            };
            let name = if r.schema == "public" {
                quote(&r.name)
            } else {
                format!("{}.{}", quote(&r.schema), quote(&r.name))
            };
            (
                r.oid,
                Relation {
                    name,
                    kind,
                    filenode: r.filenode,
                    first_column: r.first_column,
                },
            )
        })
        .collect())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every user relation's current file (as this session sees it).
async fn filenodes(conn: &mut Conn) -> Result<HashMap<i64, i64>> {
    Ok(relations(conn)
        .await?
        .into_iter()
        .map(|(oid, r)| (oid, r.filenode))
        .collect())
}

async fn seq_scans(conn: &mut Conn) -> Result<HashMap<i64, i64>> {
    let rows: Vec<ScanRow> = diesel::sql_query(SEQ_SCANS).load(conn).await?;
    Ok(rows.into_iter().map(|r| (r.oid, r.scans)).collect())
}

async fn locks_of(conn: &mut Conn, pid: i32) -> Result<Vec<LockRow>> {
    Ok(diesel::sql_query(LOCKS_OF)
        .bind::<Integer, _>(pid)
        .load(conn)
        .await?)
}

/// Whether backend `pid` is waiting for a heavyweight lock.
async fn is_waiting_on_lock(conn: &mut Conn, pid: i32) -> Result<bool> {
    let rows: Vec<WaitRow> =
        diesel::sql_query("SELECT wait_event_type AS wait FROM pg_stat_activity WHERE pid = $1")
            .bind::<Integer, _>(pid)
            .load(conn)
            .await?;
    Ok(rows.iter().any(|r| r.wait.as_deref() == Some("Lock")))
}

/// The relations a set of locks touches, each once, in oid order.
fn lock_targets(rows: &[LockRow]) -> Vec<i64> {
    let mut oids: Vec<i64> = rows.iter().map(|r| r.oid).collect();
    oids.sort_unstable();
    oids.dedup();
    oids
}

/// Tries a trivial read and write of each of `targets` that existed before
/// the migration and can be read (tables, views), each in a transaction
/// rolled back, with the session's short lock timeout.
async fn probe_all(
    conn: &mut Conn,
    relations: &HashMap<i64, Relation>,
    targets: &[i64],
) -> Result<Vec<Probe>> {
    let mut out = Vec::new();
    for r in targets.iter().filter_map(|oid| relations.get(oid)) {
        if r.kind == "index" {
            continue;
        }
        let reader_blocked = blocked(conn, &format!("SELECT 1 FROM {} LIMIT 0", r.name)).await?;
        let writer_blocked = match (r.kind, &r.first_column) {
            ("table" | "partitioned table", Some(c)) => {
                let c = quote(c);
                Some(
                    blocked(
                        conn,
                        &format!("UPDATE {} SET {c} = {c} WHERE false", r.name),
                    )
                    .await?,
                )
            }
            ("table" | "partitioned table", None) => Some(
                blocked(
                    conn,
                    &format!("LOCK TABLE {} IN ROW EXCLUSIVE MODE", r.name),
                )
                .await?,
            ),
            _ => None,
        };
        out.push(Probe {
            relation: r.name.clone(),
            reader_blocked,
            writer_blocked,
        });
    }
    Ok(out)
}

/// Whether `sql` waited past the lock timeout (any other error is no block).
async fn blocked(conn: &mut Conn, sql: &str) -> Result<bool> {
    conn.batch_execute("BEGIN").await?;
    let result = conn.batch_execute(sql).await;
    conn.batch_execute("ROLLBACK").await?;
    Ok(result.is_err_and(|e| e.to_string().contains("lock timeout")))
}
