//! `db seed`: fills a database with realistic, connected demo data across
//! every domain.
//!
//! Three properties drive the design:
//!
//! - **Deterministic.** Every row is a pure function of `(seed, table,
//!   index)` (see `generator`): its id is built from a hash of the triple, its
//!   random choices come from a `ChaCha8Rng` seeded with the same hash, and
//!   its timestamps are offsets from a fixed instant (never `now()`, never a
//!   column default). A child recomputes what it needs of its parent
//!   (status, times, graph) from the parent's index instead of remembering
//!   it, so the data streams through in batches without being held in memory.
//! - **Idempotent.** A table that already holds rows (an earlier run, another
//!   seed) is written with `INSERT ... ON CONFLICT DO NOTHING`: a second run
//!   with the same seed collides with itself everywhere and writes nothing.
//!   The run is one transaction, so one interrupted half-way leaves nothing.
//! - **One truth.** Each domain's rows are built with that domain's own
//!   insert type (`projects::projects::InsertProject`, ...) from its
//!   validated input (`NewProject`, ...), one file per domain here. The seed
//!   adds only the columns a row's later life sets (statuses, timestamps,
//!   counters), never a copy of the insert type's fields, so a schema change
//!   is made once, in the domain.
//!
//! Speed: the whole seed is one transaction (one commit, one WAL flush);
//! rows go to the server in statements of exactly `CHUNK` rows, so each
//! table's insert is one cached prepared statement with a generic plan,
//! parsed and planned once per run (only a table's last statement has
//! another size); and a table that is empty when its turn comes takes plain
//! INSERTs, without the per-row cost of `ON CONFLICT DO NOTHING`.
//!
//! Natural keys that are unique across the table (emails, slugs, provider
//! ids, token hashes) carry the seed, so several seeds can share a database.
//! The admin roles are the exception: there is one set, shared by every seed.

mod generator;

mod admin;
mod auth;
mod billing;
mod chat;
mod features;
mod notifications;
mod projects;
mod settings;
mod tenancy;
mod workflows;

use std::time::{Duration, Instant};

use crate::db::Conn;
use diesel_async::{AsyncConnection, RunQueryDsl, TransactionManager};

use crate::Result;
use generator::{ADMIN_ROLES, ADMINS, AUDIT_PER_ADMIN, Gen};

/// How much data to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// A few thousand rows: seconds, for development.
    #[default]
    Small,
    /// About a hundred thousand rows.
    Medium,
    /// At least a million rows, mostly messages, execution steps,
    /// notifications and their deliveries, and daily activity.
    Large,
}

impl Scale {
    /// Every scale, smallest first.
    pub const ALL: &'static [Scale] = &[Scale::Small, Scale::Medium, Scale::Large];

    /// The scale's name on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scale {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Scale::ALL
            .iter()
            .copied()
            .find(|scale| scale.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid("scale", "one_of", "must be small, medium or large")
            })
    }
}

/// What `seed` reports while it runs, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Sent once, first: the total amount of work, in units (a unit is one
    /// parent row and the children generated with it).
    Planned {
        /// Units over all tables.
        units: u64,
    },
    /// A table is being filled.
    Table {
        /// The table's name.
        name: &'static str,
    },
    /// Units done since the previous report.
    Advanced {
        /// Units done.
        units: u64,
        /// Rows written by them (not counting rows already present).
        written: u64,
    },
}

/// The rows of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table's name.
    pub table: &'static str,
    /// Rows this run generated for the table.
    pub generated: u64,
    /// Rows actually written (the others were already present).
    pub written: u64,
}

/// The outcome of `seed`.
#[derive(Debug, Clone)]
pub struct Report {
    /// Each table, in the order it was filled (parents first).
    pub tables: Vec<TableCount>,
    /// How long the run took.
    pub elapsed: Duration,
}

impl Report {
    /// Rows written over all tables.
    pub fn written(&self) -> u64 {
        self.tables.iter().map(|t| t.written).sum()
    }

    /// Rows generated but already present (from an earlier run).
    pub fn already_present(&self) -> u64 {
        self.tables.iter().map(|t| t.generated - t.written).sum()
    }

    /// Rows written per second.
    pub fn rows_per_second(&self) -> f64 {
        self.written() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Fills the database behind `conn` with the demo data of `seed` at
/// `scale`, reporting progress through `progress`, in one transaction (an
/// error leaves nothing written). Running it again with the same seed
/// writes nothing.
pub async fn seed(
    conn: &mut Conn,
    seed: u64,
    scale: Scale,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report> {
    let started = Instant::now();
    let plan = Plan::of(scale);
    progress(Progress::Planned {
        units: plan.total_units(),
    });
    // One transaction: one commit (a WAL flush) instead of one per
    // statement, and a run that fails half-way leaves nothing behind.
    type Transactions = <Conn as AsyncConnection>::TransactionManager;
    Transactions::begin_transaction(&mut *conn).await?;
    let mut s = Seeder {
        conn,
        g: Gen { seed, plan },
        progress,
        tables: Vec::new(),
    };
    match s.run().await {
        Ok(()) => Transactions::commit_transaction(&mut *s.conn).await?,
        Err(e) => {
            Transactions::rollback_transaction(&mut *s.conn).await?;
            return Err(e);
        }
    }
    Ok(Report {
        tables: s.tables,
        elapsed: started.elapsed(),
    })
}

/// How many of each thing a scale makes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) users: u64,
    pub(super) tenants: u64,
    /// Tenant `t` has users `t*m .. t*m+m` (modulo `users`) as members:
    /// `tenants * members_per_tenant >= users` gives everyone a home tenant.
    pub(super) members_per_tenant: u64,
    pub(super) invites_per_tenant: u64,
    pub(super) activity_per_tenant: u64,
    pub(super) projects_per_tenant: u64,
    pub(super) workflows_per_tenant: u64,
    pub(super) executions_per_workflow: u64,
    pub(super) chats_per_user: u64,
    pub(super) messages_per_chat: u64,
    pub(super) notifications_per_user: u64,
    pub(super) todos_per_user: u64,
    pub(super) waitlist: u64,
    /// Days of `user_activity_daily` history.
    pub(super) days: u64,
}

impl Plan {
    pub(super) fn of(scale: Scale) -> Plan {
        match scale {
            Scale::Small => Plan {
                users: 60,
                tenants: 10,
                members_per_tenant: 8,
                invites_per_tenant: 3,
                activity_per_tenant: 10,
                projects_per_tenant: 3,
                workflows_per_tenant: 3,
                executions_per_workflow: 4,
                chats_per_user: 2,
                messages_per_chat: 10,
                notifications_per_user: 8,
                todos_per_user: 4,
                waitlist: 40,
                days: 30,
            },
            Scale::Medium => Plan {
                users: 1_000,
                tenants: 84,
                members_per_tenant: 12,
                invites_per_tenant: 4,
                activity_per_tenant: 20,
                projects_per_tenant: 4,
                workflows_per_tenant: 4,
                executions_per_workflow: 8,
                chats_per_user: 3,
                messages_per_chat: 8,
                notifications_per_user: 8,
                todos_per_user: 6,
                waitlist: 1_000,
                days: 20,
            },
            Scale::Large => Plan {
                users: 12_000,
                tenants: 1_000,
                members_per_tenant: 12,
                invites_per_tenant: 4,
                activity_per_tenant: 20,
                projects_per_tenant: 4,
                workflows_per_tenant: 5,
                executions_per_workflow: 12,
                chats_per_user: 3,
                messages_per_chat: 10,
                notifications_per_user: 10,
                todos_per_user: 6,
                waitlist: 10_000,
                days: 30,
            },
        }
    }

    pub(super) fn projects(&self) -> u64 {
        self.tenants * self.projects_per_tenant
    }
    pub(super) fn workflows(&self) -> u64 {
        self.tenants * self.workflows_per_tenant
    }
    pub(super) fn executions(&self) -> u64 {
        self.workflows() * self.executions_per_workflow
    }
    pub(super) fn chats(&self) -> u64 {
        self.users * self.chats_per_user
    }
    pub(super) fn notifications(&self) -> u64 {
        self.users * self.notifications_per_user
    }
    /// One tenant subscription each, then one personal subscription for
    /// every twentieth user.
    pub(super) fn subscriptions(&self) -> u64 {
        self.tenants + self.users.div_ceil(20)
    }

    /// The units of every table, in the order `Seeder::run` fills them.
    pub(super) fn total_units(&self) -> u64 {
        // users, accounts, sessions, verifications, passkeys, profiles,
        // settings, notification targets and preferences, todos, daily activity
        let per_user_tables = 11;
        let per_tenant_tables = 4; // tenants, members, invites, activity
        ADMIN_ROLES.len() as u64
            + ADMINS
            + ADMINS * AUDIT_PER_ADMIN
            + self.users * per_user_tables
            + self.tenants * per_tenant_tables
            + self.projects() * 2
            + self.workflows()
            + self.executions() * 2
            + self.chats() * 2
            + self.notifications() * 2
            + self.subscriptions() * 2
            + self.waitlist
    }
}

/// Rows generated before a batch is written. The widest table
/// (`execution_steps`) has 15 columns, so a `CHUNK`-row statement stays far
/// under PostgreSQL's 65,535 bind parameters.
const BATCH: usize = 3_500;
/// Rows per insert statement: every full statement of a table has this many
/// rows, so its text (and prepared statement) is the same every time.
const CHUNK: usize = 500;

struct Seeder<'a> {
    conn: &'a mut Conn,
    g: Gen,
    progress: &'a mut dyn FnMut(Progress),
    tables: Vec<TableCount>,
}

/// Fills `$table` from `$units` units: `$make(unit, &mut rows)` appends the
/// unit's rows (owned values: a domain's validated input and the columns
/// its later life sets), and `$insert(&row)` turns one into what is
/// inserted: the domain's own insert type, borrowing from the row, with
/// those extra columns. Every `BATCH` rows go to the database.
macro_rules! fill {
    ($s:expr, $table:ident, $units:expr, $make:expr, $insert:expr) => {{
        let s: &mut $crate::ops::seed::Seeder<'_> = $s;
        let name = stringify!($table);
        (s.progress)($crate::ops::seed::Progress::Table { name });
        let units: u64 = $units;
        let mut rows = Vec::with_capacity($crate::ops::seed::BATCH + 64);
        let mut count = $crate::ops::seed::TableCount {
            table: name,
            generated: 0,
            written: 0,
        };
        let mut pending_units = 0u64;
        // An empty table takes plain INSERTs; one holding rows (an earlier
        // run, another seed) gets `ON CONFLICT DO NOTHING`, which costs the
        // server a speculative insertion per row. Should another session
        // write a colliding row meanwhile, the seed fails with `Conflict`
        // and, being one transaction, leaves nothing.
        let fresh = !diesel_async::RunQueryDsl::get_result::<bool>(
            diesel::select(diesel::dsl::exists(
                $crate::schema::$table::table
                    .select(diesel::dsl::sql::<diesel::sql_types::Integer>("1")),
            )),
            &mut *s.conn,
        )
        .await?;
        let make = $make;
        for unit in 0..units {
            make(unit, &mut rows);
            pending_units += 1;
            let last = unit + 1 == units;
            if rows.len() >= $crate::ops::seed::BATCH || last {
                const CHUNK: usize = $crate::ops::seed::CHUNK;
                // Whole chunks only; the rest waits for the next batch, so a
                // table has at most one statement of another size, its last.
                let ready = if last {
                    rows.len()
                } else {
                    rows.len() - rows.len() % CHUNK
                };
                let written = {
                    // The closure is written here, not bound to a variable
                    // first, so that what it returns may borrow from its row.
                    let mut records: Vec<_> = rows[..ready].iter().map($insert).collect();
                    let mut written = 0u64;
                    while !records.is_empty() {
                        let tail = records.split_off(records.len().min(CHUNK));
                        written += $crate::ops::seed::write_rows!(s, $table, records, fresh);
                        records = tail;
                    }
                    written
                };
                count.generated += ready as u64;
                count.written += written;
                rows.drain(..ready);
                (s.progress)($crate::ops::seed::Progress::Advanced {
                    units: pending_units,
                    written,
                });
                pending_units = 0;
            }
        }
        s.tables.push(count);
    }};
}
use fill;

/// One statement of `fill!`: `$values` into `$table`, returning the rows
/// written. `Cached`: the statement of a full chunk is prepared once per
/// run (its text never changes), whatever Diesel's static query id says.
macro_rules! write_rows {
    ($s:expr, $table:ident, $values:expr, $fresh:expr) => {{
        use $crate::cached::CachedExt as _;
        let insert = diesel::insert_into($crate::schema::$table::table).values($values);
        if $fresh {
            diesel_async::RunQueryDsl::execute(insert.cached(), &mut *$s.conn).await? as u64
        } else {
            diesel_async::RunQueryDsl::execute(
                insert.on_conflict_do_nothing().cached(),
                &mut *$s.conn,
            )
            .await? as u64
        }
    }};
}
use write_rows;

impl Seeder<'_> {
    /// Every domain, parents before children.
    async fn run(&mut self) -> Result<()> {
        // Every table's `CHUNK`-row insert is one cached statement: planned
        // once (a generic plan) instead of five custom plans of many rows.
        diesel::sql_query("SET LOCAL plan_cache_mode = force_generic_plan")
            .execute(&mut *self.conn)
            .await?;
        admin::roles(self).await?;
        auth::seed(self).await?;
        settings::seed(self).await?;
        notifications::targets_and_preferences(self).await?;
        admin::grants_and_audit(self).await?;
        tenancy::seed(self).await?;
        projects::seed(self).await?;
        workflows::seed(self).await?;
        chat::seed(self).await?;
        notifications::seed(self).await?;
        billing::seed(self).await?;
        features::todos_and_waitlist(self).await?;
        auth::jwks(self).await?;
        features::daily_activity(self).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::ExecutionStatus;

    #[test]
    fn ids_are_stable_and_distinct() {
        let g = Gen {
            seed: 7,
            plan: Plan::of(Scale::Small),
        };
        assert_eq!(g.user_id(3), g.user_id(3));
        assert_ne!(g.user_id(3), g.user_id(4));
        assert_ne!(g.user_id(3).0, g.tenant_id(3).0);
        assert_eq!(g.user_id(3).0.get_version_num(), 8);
        let other = Gen {
            seed: 8,
            plan: Plan::of(Scale::Small),
        };
        assert_ne!(g.user_id(3), other.user_id(3));
    }

    #[test]
    fn runs_agree_with_the_state_machine() {
        let g = Gen {
            seed: 1,
            plan: Plan::of(Scale::Medium),
        };
        for e in 0..g.plan.executions() {
            let run = g.run(e);
            let terminal = run.status.is_terminal();
            assert_eq!(run.finished.is_some(), terminal, "{:?}", run.status);
            if let (Some(s), Some(f)) = (run.started, run.finished) {
                assert!(f >= s);
            }
            if run.status != ExecutionStatus::Pending && run.status != ExecutionStatus::Cancelled {
                assert!(run.started.is_some());
            }
        }
    }

    #[test]
    fn every_user_has_a_home_tenant_they_belong_to() {
        for scale in Scale::ALL {
            let g = Gen {
                seed: 1,
                plan: Plan::of(*scale),
            };
            for u in 0..g.plan.users {
                let t = g.home_tenant(u);
                assert!(t < g.plan.tenants);
                assert_eq!(g.member(t, u % g.plan.members_per_tenant), u);
            }
        }
    }

    #[test]
    fn scales_parse() {
        for scale in Scale::ALL {
            assert_eq!(scale.as_str().parse::<Scale>().unwrap(), *scale);
        }
        assert!("huge".parse::<Scale>().is_err());
    }
}
