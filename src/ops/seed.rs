//! `db seed`: fills a database with realistic, connected demo data across
//! every domain.
//!
//! Three properties drive the design:
//!
//! - **Deterministic.** Every row is a pure function of `(seed, table,
//!   index)`: its id is built from a hash of the triple, its random choices
//!   come from a `ChaCha8Rng` seeded with the same hash, and its timestamps
//!   are offsets from a fixed instant (never `now()`, never a column
//!   default). A child recomputes what it needs of its parent (status,
//!   times, graph) from the parent's index instead of remembering it, so the
//!   data streams through in batches without being held in memory.
//! - **Idempotent.** Rows are written with multi-row `INSERT ... ON CONFLICT
//!   DO NOTHING`: a second run with the same seed collides with itself
//!   everywhere and writes nothing. Parents go before children, so a run
//!   interrupted half-way is completed by the next one.
//! - **Fast.** One statement per batch of a few thousand rows (under the
//!   65,535 bind parameters PostgreSQL allows), never one per row.
//!
//! Natural keys that are unique across the table (emails, slugs, provider
//! ids, token hashes) carry the seed, so several seeds can share a database.
//! The admin roles are the exception: there is one set, shared by every seed.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Result;
use crate::auth::verifications::VerificationPurpose;
use crate::billing::{EventOutcome, SubscriptionStatus};
use crate::chat::{ChatVisibility, MessageRole};
use crate::notifications::{DeliveryStatus, NotificationChannel};
use crate::schema::*;
use crate::settings::{DigestFrequency, Theme, UserSettings};
use crate::tenancy::TenantRole;
use crate::token;
use crate::workflows::{ExecutionStatus, StepStatus};

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
/// `scale`, reporting progress through `progress`. Running it again with
/// the same seed writes nothing.
pub async fn seed(
    conn: &mut AsyncPgConnection,
    seed: u64,
    scale: Scale,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report> {
    let started = Instant::now();
    let plan = Plan::of(scale);
    progress(Progress::Planned {
        units: plan.total_units(),
    });
    let mut s = Seeder {
        conn,
        g: Gen { seed, plan },
        progress,
        tables: Vec::new(),
    };
    s.run().await?;
    Ok(Report {
        tables: s.tables,
        elapsed: started.elapsed(),
    })
}

/// How many of each thing a scale makes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    users: u64,
    tenants: u64,
    /// Tenant `t` has users `t*m .. t*m+m` (modulo `users`) as members:
    /// `tenants * members_per_tenant >= users` gives everyone a home tenant.
    members_per_tenant: u64,
    invites_per_tenant: u64,
    activity_per_tenant: u64,
    projects_per_tenant: u64,
    workflows_per_tenant: u64,
    executions_per_workflow: u64,
    chats_per_user: u64,
    messages_per_chat: u64,
    notifications_per_user: u64,
    todos_per_user: u64,
    waitlist: u64,
    /// Days of `user_activity_daily` history.
    days: u64,
}

impl Plan {
    fn of(scale: Scale) -> Plan {
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

    fn projects(&self) -> u64 {
        self.tenants * self.projects_per_tenant
    }
    fn workflows(&self) -> u64 {
        self.tenants * self.workflows_per_tenant
    }
    fn executions(&self) -> u64 {
        self.workflows() * self.executions_per_workflow
    }
    fn chats(&self) -> u64 {
        self.users * self.chats_per_user
    }
    fn notifications(&self) -> u64 {
        self.users * self.notifications_per_user
    }
    /// One tenant subscription each, then one personal subscription for
    /// every twentieth user.
    fn subscriptions(&self) -> u64 {
        self.tenants + self.users.div_ceil(20)
    }

    /// The units of every table, in the order `Seeder::run` fills them.
    fn total_units(&self) -> u64 {
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

/// Rows per statement. The widest table (`execution_steps`) has 15 columns
/// and a unit adds at most a few dozen rows past this mark, so a statement
/// stays well under PostgreSQL's 65,535 bind parameters.
const BATCH: usize = 3_500;

/// The admin roles (shared by every seed: their names are unique).
const ADMIN_ROLES: &[(&str, &str, &[&str])] = &[
    ("superadmin", "Everything, including granting roles", &["*"]),
    (
        "support",
        "Read users and tenants, resend emails",
        &["users.read", "tenants.read", "emails.resend"],
    ),
    (
        "billing",
        "Read and adjust subscriptions",
        &["subscriptions.read", "subscriptions.write"],
    ),
];
/// The key that seals the seeded signing keys' private halves when
/// `JWKS_ENCRYPTION_KEY` is not set: demo data only, never a real secret.
const SEED_JWKS_ENCRYPTION_KEY: &str =
    "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// The first users of a seed are its admins.
const ADMINS: u64 = 3;
const AUDIT_PER_ADMIN: u64 = 5;

/// The instant every timestamp counts from (the seed data's "day zero").
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// The seed data's "now": everything happened before it, expiries lie after it.
fn now() -> DateTime<Utc> {
    base() + chrono::Duration::days(120)
}

fn at(seconds: i64) -> DateTime<Utc> {
    base() + chrono::Duration::seconds(seconds)
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// A 64-bit FNV-1a hash, to turn a table name into a tag at compile time.
const fn tag(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// SplitMix64's finaliser: a bijective mix, so distinct inputs stay distinct.
const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator: pure functions of `(seed, index)` for every row.
struct Gen {
    seed: u64,
    plan: Plan,
}

const NAMES_FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Radia",
    "Ken",
    "Frances",
    "John",
    "Katherine",
    "Dennis",
    "Hedy",
    "Tim",
    "Sophie",
    "Niklaus",
    "Annie",
    "Guido",
];
const NAMES_LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Perlman",
    "Thompson",
    "Allen",
    "Backus",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "Wirth",
    "Easley",
    "van Rossum",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
    "Monarch",
    "Oscorp",
    "Pied Piper",
];
const COMPANY_B: &[&str] = &[
    "Robotics",
    "Labs",
    "Logistics",
    "Analytics",
    "Foods",
    "Studios",
    "Health",
    "Energy",
    "Systems",
    "Partners",
];
const PROJECT_NAMES: &[&str] = &[
    "Onboarding flow",
    "Q3 roadmap",
    "Brand refresh",
    "Data platform",
    "Mobile app",
    "Pricing page",
    "Customer portal",
    "Incident review",
    "Launch plan",
    "Design system",
];
const WORKFLOW_NAMES: &[&str] = &[
    "Welcome new signups",
    "Nightly invoice sync",
    "Lead enrichment",
    "Churn alert",
    "Weekly report",
    "Ticket triage",
    "Image thumbnails",
    "CRM backfill",
];
/// Node types of a workflow after its `start` node.
const STEP_TYPES: &[&str] = &[
    "http",
    "transform",
    "condition",
    "llm",
    "email",
    "delay",
    "webhook",
];
const CANVAS_TYPES: &[&str] = &["note", "shape", "image", "frame", "text"];
const CHAT_TOPICS: &[&str] = &[
    "Summarise the incident report",
    "Draft a launch email",
    "SQL for monthly actives",
    "Explain this stack trace",
    "Plan the offsite",
    "Review my pricing copy",
    "Translate the FAQ",
    "Ideas for the roadmap",
];
const USER_LINES: &[&str] = &[
    "Can you help me with this?",
    "Make it shorter, please.",
    "What would you change first?",
    "Add a section about risks.",
    "Thanks! One more question.",
    "Show me an example.",
];
const ASSISTANT_LINES: &[&str] = &[
    "Sure. Here is a first draft; tell me what to adjust.",
    "The main issue is the retry loop: it never backs off.",
    "I would start with the onboarding step, where most users drop.",
    "Here is a shorter version that keeps the key points.",
    "Good question. There are two options, each with a trade-off.",
];
const NOTIFICATION_KINDS: &[(&str, &str)] = &[
    ("mention", "You were mentioned in a comment"),
    ("invite", "You were invited to a project"),
    ("execution.failed", "A workflow run failed"),
    ("execution.completed", "A workflow run completed"),
    ("billing.invoice", "Your invoice is ready"),
    ("digest", "Your weekly digest"),
];
const TODO_TITLES: &[&str] = &[
    "Review pull request",
    "Write release notes",
    "Call the customer",
    "Fix flaky test",
    "Update the runbook",
    "Prepare the demo",
    "Answer support tickets",
    "Plan the sprint",
];
const ACTIVITY_ACTIONS: &[&str] = &[
    "member.joined",
    "project.created",
    "workflow.updated",
    "execution.started",
    "invite.sent",
    "settings.changed",
];
const PLANS: &[&str] = &["starter", "team", "business"];
const TIMEZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Sao_Paulo",
];
const LOCALES: &[&str] = &["en-US", "en-GB", "fr-FR", "de-DE", "ja-JP", "pt-BR"];

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// What a workflow's graph looks like: the node ids and types, in run order.
struct Shape {
    nodes: Vec<(String, &'static str)>,
    version: i64,
}

/// An execution's status and times, which its steps must agree with.
struct Run {
    workflow: u64,
    status: ExecutionStatus,
    created: i64,
    started: Option<i64>,
    finished: Option<i64>,
    /// Steps before this index are completed (for running, paused, failed
    /// and started-then-cancelled executions).
    reached: usize,
}

impl Gen {
    fn key(&self, table: u64, i: u64) -> u64 {
        mix(mix(self.seed ^ table) ^ i)
    }

    fn rng(&self, table: u64, i: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.key(table, i))
    }

    /// The id of row `i` of `table`: a version 8 (custom) UUID from the hash.
    fn id(&self, table: u64, i: u64) -> Uuid {
        let a = self.key(table, i);
        let b = mix(a ^ 0x5eed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// Distinct for every seed, so that seeds can share a database.
    fn domain(&self) -> String {
        format!("seed{}.example.com", self.seed)
    }

    fn user_id(&self, u: u64) -> Uuid {
        self.id(tag("users"), u)
    }
    fn tenant_id(&self, t: u64) -> Uuid {
        self.id(tag("tenants"), t)
    }
    /// When user `u` signed up: spread over the first 60 days.
    fn user_created(&self, u: u64) -> i64 {
        (u * 60 * DAY as u64 / self.plan.users.max(1)) as i64 + (u % 7) as i64 * 611
    }
    fn user_name(&self, u: u64) -> (&'static str, &'static str) {
        let mut rng = self.rng(tag("users"), u);
        (pick(&mut rng, NAMES_FIRST), pick(&mut rng, NAMES_LAST))
    }
    fn email(&self, u: u64) -> String {
        let (first, last) = self.user_name(u);
        format!(
            "{}.{}.{u}@{}",
            first.to_lowercase(),
            last.to_lowercase().replace([' ', '-'], ""),
            self.domain()
        )
    }
    /// Member `j` of tenant `t` (member 0 owns it).
    fn member(&self, t: u64, j: u64) -> u64 {
        (t * self.plan.members_per_tenant + j) % self.plan.users
    }
    /// The tenant user `u` is a member of (as member `u % m` of it).
    fn home_tenant(&self, u: u64) -> u64 {
        u / self.plan.members_per_tenant
    }
    fn tenant_created(&self, t: u64) -> i64 {
        self.user_created(self.member(t, 0)) + HOUR
    }

    fn shape(&self, w: u64) -> Shape {
        let mut rng = self.rng(tag("workflow shape"), w);
        let len = rng.random_range(3..=7);
        let mut nodes = vec![("start".to_owned(), "start")];
        for k in 1..len {
            let kind = pick(&mut rng, STEP_TYPES);
            nodes.push((format!("{kind}-{k}"), kind));
        }
        Shape {
            nodes,
            version: rng.random_range(1..=5),
        }
    }

    fn workflow_created(&self, w: u64) -> i64 {
        let t = w / self.plan.workflows_per_tenant;
        self.tenant_created(t) + (w % self.plan.workflows_per_tenant) as i64 * DAY + 2 * HOUR
    }

    fn run(&self, e: u64) -> Run {
        let w = e / self.plan.executions_per_workflow;
        let mut rng = self.rng(tag("executions"), e);
        let steps = self.shape(w).nodes.len();
        let roll = rng.random_range(0..100);
        use ExecutionStatus::*;
        let status = match roll {
            0..70 => Completed,
            70..82 => Failed,
            82..87 => Running,
            87..91 => Pending,
            91..97 => Cancelled,
            _ => Paused,
        };
        let first = self.workflow_created(w) + DAY;
        let span = (now() - at(first)).num_seconds().max(DAY);
        // Live executions are recent; finished ones spread over the history.
        let created = if matches!(status, Running | Pending | Paused) {
            (now() - base()).num_seconds() - rng.random_range(15 * 60..6 * HOUR)
        } else {
            first + rng.random_range(0..span - 6 * HOUR)
        };
        let cancelled_before_start = status == Cancelled && rng.random_bool(0.5);
        let started = match status {
            Pending => None,
            Cancelled if cancelled_before_start => None,
            _ => Some(created + rng.random_range(1..30)),
        };
        let reached = match status {
            Completed => steps,
            Pending => 0,
            _ if started.is_none() => 0,
            _ => rng.random_range(0..steps),
        };
        let finished = match status {
            Completed | Failed => {
                Some(started.unwrap() + 5 + reached as i64 * rng.random_range(2..90))
            }
            Cancelled => Some(started.unwrap_or(created) + rng.random_range(5..600)),
            _ => None,
        };
        Run {
            workflow: w,
            status,
            created,
            started,
            finished,
            reached,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = admin_roles)]
struct AdminRoleRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    permissions: Vec<Option<String>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: Uuid,
    email: String,
    email_verified: bool,
    name: Option<String>,
    image: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = accounts)]
struct AccountRow {
    id: Uuid,
    user_id: Uuid,
    provider: String,
    provider_account_id: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    token_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = verifications)]
struct VerificationRow {
    id: Uuid,
    purpose: VerificationPurpose,
    identifier: String,
    token_hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    consumed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = passkeys)]
struct PasskeyRow {
    id: Uuid,
    user_id: Uuid,
    credential_id: String,
    public_key: Vec<u8>,
    counter: i64,
    transports: Vec<Option<String>>,
    device_name: Option<String>,
    last_used_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = user_profiles)]
struct ProfileRow {
    user_id: Uuid,
    display_name: String,
    avatar_url: Option<String>,
    bio: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = user_settings)]
struct SettingsRow {
    user_id: Uuid,
    settings: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = admin_users)]
struct AdminUserRow {
    id: Uuid,
    user_id: Uuid,
    role_id: Uuid,
    granted_by: Option<Uuid>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = admin_audit_log)]
struct AuditRow {
    id: Uuid,
    actor_id: Uuid,
    action: String,
    entity_type: String,
    entity_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    ip_address: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = notification_targets)]
struct TargetRow {
    id: Uuid,
    user_id: Uuid,
    channel: NotificationChannel,
    address: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = notification_preferences)]
struct PreferenceRow {
    user_id: Uuid,
    kind: String,
    channel: NotificationChannel,
    enabled: bool,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = tenants)]
struct TenantRow {
    id: Uuid,
    name: String,
    slug: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = tenant_members)]
struct MemberRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    role: TenantRole,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = tenant_invites)]
struct InviteRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: TenantRole,
    token_hash: Vec<u8>,
    invited_by: Option<Uuid>,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    accepted_by: Option<Uuid>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = tenant_activity)]
struct ActivityRow {
    id: Uuid,
    tenant_id: Uuid,
    actor_id: Option<Uuid>,
    action: String,
    subject: Option<String>,
    details: Value,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = projects)]
struct ProjectRow {
    id: Uuid,
    tenant_id: Uuid,
    owner_id: Option<Uuid>,
    name: String,
    description: Option<String>,
    canvas_version: i64,
    archived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = canvas_nodes)]
struct CanvasNodeRow {
    id: Uuid,
    project_id: Uuid,
    node_id: String,
    node_type: String,
    position_x: f64,
    position_y: f64,
    width: Option<f64>,
    height: Option<f64>,
    data: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = workflows)]
struct WorkflowRow {
    id: Uuid,
    tenant_id: Uuid,
    owner_id: Option<Uuid>,
    name: String,
    description: Option<String>,
    nodes: Value,
    edges: Value,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = executions)]
struct ExecutionRow {
    id: Uuid,
    tenant_id: Uuid,
    workflow_id: Uuid,
    user_id: Option<Uuid>,
    workflow_version: i64,
    status: ExecutionStatus,
    input: Value,
    output: Option<Value>,
    error: Option<String>,
    worker_id: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = execution_steps)]
struct StepRow {
    id: Uuid,
    execution_id: Uuid,
    node_id: String,
    position: i32,
    status: StepStatus,
    input: Option<Value>,
    output: Option<Value>,
    validation: Option<Value>,
    attempts: i32,
    max_attempts: i32,
    error: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = chats)]
struct ChatRow {
    id: Uuid,
    user_id: Uuid,
    title: String,
    visibility: ChatVisibility,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
struct MessageRow {
    id: Uuid,
    chat_id: Uuid,
    role: MessageRole,
    parts: Value,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = notifications)]
struct NotificationRow {
    id: Uuid,
    tenant_id: Uuid,
    user_id: Uuid,
    kind: String,
    title: String,
    body: Option<String>,
    data: Value,
    read_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = notification_deliveries)]
struct DeliveryRow {
    id: Uuid,
    notification_id: Uuid,
    channel: NotificationChannel,
    status: DeliveryStatus,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    provider_message_id: Option<String>,
    last_error: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = subscriptions)]
struct SubscriptionRow {
    id: Uuid,
    user_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
    provider_customer_id: String,
    provider_subscription_id: String,
    plan: String,
    status: SubscriptionStatus,
    current_period_end: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
    last_event_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = subscription_events)]
struct SubscriptionEventRow {
    id: Uuid,
    provider_event_id: String,
    event_type: String,
    subscription_id: Option<Uuid>,
    payload: Value,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    processed_at: Option<DateTime<Utc>>,
    outcome: Option<EventOutcome>,
}

#[derive(Insertable)]
#[diesel(table_name = todos)]
struct TodoRow {
    id: Uuid,
    user_id: Uuid,
    tenant_id: Option<Uuid>,
    title: String,
    description: Option<String>,
    completed: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `position` is left to the identity column: PostgreSQL refuses explicit
/// values for `GENERATED ALWAYS`. The rows go in in index order, so a fresh
/// database numbers them the same way every time.
#[derive(Insertable)]
#[diesel(table_name = waitlist)]
struct WaitlistRow {
    id: Uuid,
    email: String,
    invited_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = user_activity_daily)]
struct DailyRow {
    user_id: Uuid,
    day: NaiveDate,
    count: i64,
}

struct Seeder<'a> {
    conn: &'a mut AsyncPgConnection,
    g: Gen,
    progress: &'a mut dyn FnMut(Progress),
    tables: Vec<TableCount>,
}

/// Fills `$table` from `$units` units: `$make(unit, &mut rows)` appends the
/// unit's rows; every `BATCH` rows go to the database in one statement.
macro_rules! fill {
    ($s:expr, $table:ident, $units:expr, $make:expr) => {{
        let s: &mut Seeder<'_> = $s;
        let name = stringify!($table);
        (s.progress)(Progress::Table { name });
        let units: u64 = $units;
        let mut rows = Vec::with_capacity(BATCH + 64);
        let mut count = TableCount {
            table: name,
            generated: 0,
            written: 0,
        };
        let mut pending_units = 0u64;
        let make = $make;
        for unit in 0..units {
            make(unit, &mut rows);
            pending_units += 1;
            if rows.len() >= BATCH || unit + 1 == units {
                let written = if rows.is_empty() {
                    0
                } else {
                    diesel::insert_into($table::table)
                        .values(&rows)
                        .on_conflict_do_nothing()
                        .execute(&mut *s.conn)
                        .await? as u64
                };
                count.generated += rows.len() as u64;
                count.written += written;
                rows.clear();
                (s.progress)(Progress::Advanced {
                    units: pending_units,
                    written,
                });
                pending_units = 0;
            }
        }
        s.tables.push(count);
    }};
}

impl Seeder<'_> {
    async fn run(&mut self) -> Result<()> {
        let g = Gen {
            seed: self.g.seed,
            plan: self.g.plan,
        };
        let p = g.plan;
        let g = &g;
        let user_at = |u: u64| at(g.user_created(u));

        fill!(
            self,
            admin_roles,
            ADMIN_ROLES.len() as u64,
            |i: u64, rows: &mut Vec<AdminRoleRow>| {
                let (name, description, permissions) = ADMIN_ROLES[i as usize];
                // The same grammar as `admin_roles::create`.
                crate::error::validate(&crate::admin::admin_roles::NewRole {
                    name: name.to_owned(),
                    description: Some(description.to_owned()),
                    permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                })
                .expect("the seed's admin roles follow the permission grammar");
                rows.push(AdminRoleRow {
                    // Seed 0's ids: the roles are shared by every seed.
                    id: Gen { seed: 0, plan: p }.id(tag("admin_roles"), i),
                    name: name.to_owned(),
                    description: Some(description.to_owned()),
                    permissions: permissions.iter().map(|p| Some((*p).to_owned())).collect(),
                    created_at: base(),
                    updated_at: base(),
                });
            }
        );

        fill!(self, users, p.users, |u: u64, rows: &mut Vec<UserRow>| {
            let mut rng = g.rng(tag("users.extra"), u);
            let (first, last) = g.user_name(u);
            let created = user_at(u);
            rows.push(UserRow {
                id: g.user_id(u),
                email: g.email(u),
                email_verified: rng.random_bool(0.85),
                name: Some(format!("{first} {last}")),
                image: rng
                    .random_bool(0.4)
                    .then(|| format!("https://avatars.example.com/u/{}.png", g.user_id(u))),
                created_at: created,
                updated_at: created + chrono::Duration::seconds(rng.random_range(0..30 * DAY)),
            });
        });

        fill!(
            self,
            accounts,
            p.users,
            |u: u64, rows: &mut Vec<AccountRow>| {
                let mut rng = g.rng(tag("accounts"), u);
                let created = user_at(u);
                let provider = pick(&mut rng, &["credential", "credential", "github", "google"]);
                let oauth = provider != "credential";
                rows.push(AccountRow {
                    id: g.id(tag("accounts"), u),
                    user_id: g.user_id(u),
                    provider: provider.to_owned(),
                    provider_account_id: if oauth {
                        format!("{}{u:08}", g.seed)
                    } else {
                        g.email(u)
                    },
                    access_token: oauth.then(|| format!("gho_seed{}_{u}", g.seed)),
                    refresh_token: oauth.then(|| format!("ghr_seed{}_{u}", g.seed)),
                    access_token_expires_at: oauth.then(|| now() + chrono::Duration::hours(8)),
                    scope: oauth.then(|| "read:user user:email".to_owned()),
                    password_hash: (!oauth).then(|| {
                        // Not a real hash of any password: demo users sign in by other means.
                        format!(
                            "$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNhbHQ${}",
                            hex::encode(token::hash(&format!("seed-{}-password-{u}", g.seed)))
                        )
                    }),
                    created_at: created,
                    updated_at: created,
                });
            }
        );

        fill!(
            self,
            sessions,
            p.users,
            |u: u64, rows: &mut Vec<SessionRow>| {
                let mut rng = g.rng(tag("sessions"), u);
                let created = now() - chrono::Duration::seconds(rng.random_range(HOUR..20 * DAY));
                rows.push(SessionRow {
                    id: g.id(tag("sessions"), u),
                    user_id: g.user_id(u),
                    token_hash: token::hash(&format!("seed-{}-session-{u}", g.seed)),
                    expires_at: created + chrono::Duration::days(30),
                    revoked_at: rng
                        .random_bool(0.1)
                        .then(|| created + chrono::Duration::hours(2)),
                    ip_address: Some(format!("203.0.113.{}", rng.random_range(1..255))),
                    user_agent: Some(
                        pick(
                            &mut rng,
                            &[
                                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
                                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0",
                                "Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0",
                            ],
                        )
                        .to_owned(),
                    ),
                    created_at: created,
                    updated_at: created,
                });
            }
        );

        fill!(self, verifications, p.users, |u: u64,
                                             rows: &mut Vec<
            VerificationRow,
        >| {
            let mut rng = g.rng(tag("verifications"), u);
            let created = user_at(u);
            // Everyone verified their email once; some asked for a reset too.
            rows.push(VerificationRow {
                id: g.id(tag("verifications"), u * 2),
                purpose: VerificationPurpose::EmailVerification,
                identifier: g.email(u),
                token_hash: token::hash(&format!("seed-{}-verify-{u}", g.seed)),
                expires_at: created + chrono::Duration::days(1),
                consumed_at: Some(created + chrono::Duration::minutes(7)),
                created_at: created,
            });
            if rng.random_bool(0.1) {
                let asked = now() - chrono::Duration::minutes(rng.random_range(5..600));
                rows.push(VerificationRow {
                    id: g.id(tag("verifications"), u * 2 + 1),
                    purpose: VerificationPurpose::PasswordReset,
                    identifier: g.email(u),
                    token_hash: token::hash(&format!("seed-{}-reset-{u}", g.seed)),
                    expires_at: asked + chrono::Duration::hours(1),
                    consumed_at: None,
                    created_at: asked,
                });
            }
        });

        fill!(
            self,
            passkeys,
            p.users,
            |u: u64, rows: &mut Vec<PasskeyRow>| {
                let mut rng = g.rng(tag("passkeys"), u);
                if !rng.random_bool(0.2) {
                    return;
                }
                let created = user_at(u) + chrono::Duration::days(rng.random_range(1..20));
                let mut key = vec![0x04u8];
                key.extend(token::hash(&format!("seed-{}-pk-x-{u}", g.seed)));
                key.extend(token::hash(&format!("seed-{}-pk-y-{u}", g.seed)));
                rows.push(PasskeyRow {
                    id: g.id(tag("passkeys"), u),
                    user_id: g.user_id(u),
                    credential_id: hex::encode(
                        &token::hash(&format!("seed-{}-cred-{u}", g.seed))[..20],
                    ),
                    public_key: key,
                    counter: rng.random_range(0..500),
                    transports: vec![Some("internal".into()), Some("hybrid".into())],
                    device_name: Some(
                        pick(&mut rng, &["MacBook Pro", "iPhone", "Pixel 8", "YubiKey 5"])
                            .to_owned(),
                    ),
                    last_used_at: Some(now() - chrono::Duration::hours(rng.random_range(1..500))),
                    created_at: created,
                    updated_at: created,
                });
            }
        );

        fill!(self, user_profiles, p.users, |u: u64,
                                             rows: &mut Vec<
            ProfileRow,
        >| {
            let mut rng = g.rng(tag("user_profiles"), u);
            let (first, last) = g.user_name(u);
            let created = user_at(u);
            rows.push(ProfileRow {
                user_id: g.user_id(u),
                display_name: format!("{first} {}.", &last[..1]),
                avatar_url: rng
                    .random_bool(0.5)
                    .then(|| format!("https://avatars.example.com/p/{}.png", g.user_id(u))),
                bio: rng.random_bool(0.5).then(|| {
                    format!(
                        "{first} works on {}.",
                        pick(&mut rng, PROJECT_NAMES).to_lowercase()
                    )
                }),
                created_at: created,
                updated_at: created,
            });
        });

        fill!(self, user_settings, p.users, |u: u64,
                                             rows: &mut Vec<
            SettingsRow,
        >| {
            let mut rng = g.rng(tag("user_settings"), u);
            let settings = UserSettings {
                theme: pick(&mut rng, &[Theme::Light, Theme::Dark, Theme::System]),
                locale: pick(&mut rng, LOCALES).to_owned(),
                timezone: pick(&mut rng, TIMEZONES).to_owned(),
                email_notifications: rng.random_bool(0.8),
                push_notifications: rng.random_bool(0.5),
                digest: pick(
                    &mut rng,
                    &[
                        DigestFrequency::Never,
                        DigestFrequency::Daily,
                        DigestFrequency::Weekly,
                    ],
                ),
            };
            let created = user_at(u);
            rows.push(SettingsRow {
                user_id: g.user_id(u),
                settings: serde_json::to_value(&settings).expect("settings serialise"),
                created_at: created,
                updated_at: created,
            });
        });

        fill!(self, notification_targets, p.users, |u: u64,
                                                    rows: &mut Vec<
            TargetRow,
        >| {
            let mut rng = g.rng(tag("notification_targets"), u);
            let created = user_at(u);
            rows.push(TargetRow {
                id: g.id(tag("notification_targets"), u * 2),
                user_id: g.user_id(u),
                channel: NotificationChannel::Email,
                address: g.email(u),
                created_at: created,
                updated_at: created,
            });
            if rng.random_bool(0.5) {
                rows.push(TargetRow {
                    id: g.id(tag("notification_targets"), u * 2 + 1),
                    user_id: g.user_id(u),
                    channel: NotificationChannel::Push,
                    address: format!("https://push.example.com/s{}/{}", g.seed, g.user_id(u)),
                    created_at: created,
                    updated_at: created,
                });
            }
        });

        fill!(self, notification_preferences, p.users, |u: u64,
                                                        rows: &mut Vec<
            PreferenceRow,
        >| {
            let mut rng = g.rng(tag("notification_preferences"), u);
            // Only the choices that differ from the default are stored.
            for (kind, _) in NOTIFICATION_KINDS {
                if rng.random_bool(0.25) {
                    rows.push(PreferenceRow {
                        user_id: g.user_id(u),
                        kind: (*kind).to_owned(),
                        channel: pick(
                            &mut rng,
                            &[NotificationChannel::Email, NotificationChannel::Push],
                        ),
                        enabled: false,
                        updated_at: user_at(u) + chrono::Duration::days(2),
                    });
                }
            }
        });

        fill!(
            self,
            admin_users,
            ADMINS,
            |a: u64, rows: &mut Vec<AdminUserRow>| {
                rows.push(AdminUserRow {
                    id: g.id(tag("admin_users"), a),
                    user_id: g.user_id(a),
                    role_id: Gen { seed: 0, plan: p }
                        .id(tag("admin_roles"), a % ADMIN_ROLES.len() as u64),
                    granted_by: (a > 0).then(|| g.user_id(0)),
                    created_at: user_at(a) + chrono::Duration::hours(1),
                });
            }
        );

        fill!(
            self,
            admin_audit_log,
            ADMINS * AUDIT_PER_ADMIN,
            |i: u64, rows: &mut Vec<AuditRow>| {
                let mut rng = g.rng(tag("admin_audit_log"), i);
                let actor = i / AUDIT_PER_ADMIN;
                let target = rng.random_range(0..p.users);
                let (action, before, after) = match i % 3 {
                    0 => (
                        "user.verify_email",
                        json!({"email_verified": false}),
                        json!({"email_verified": true}),
                    ),
                    1 => (
                        "user.update_name",
                        json!({"name": null}),
                        json!({"name": "Renamed"}),
                    ),
                    _ => (
                        "session.revoke",
                        json!({"revoked": false}),
                        json!({"revoked": true}),
                    ),
                };
                rows.push(AuditRow {
                    id: g.id(tag("admin_audit_log"), i),
                    actor_id: g.user_id(actor),
                    action: action.to_owned(),
                    entity_type: "user".to_owned(),
                    entity_id: Some(g.user_id(target).to_string()),
                    before: Some(before),
                    after: Some(after),
                    ip_address: Some(format!("198.51.100.{}", rng.random_range(1..255))),
                    created_at: at(70 * DAY + i as i64 * 7 * HOUR),
                });
            }
        );

        fill!(
            self,
            tenants,
            p.tenants,
            |t: u64, rows: &mut Vec<TenantRow>| {
                let mut rng = g.rng(tag("tenants"), t);
                let name = format!(
                    "{} {}",
                    pick(&mut rng, COMPANY_A),
                    pick(&mut rng, COMPANY_B)
                );
                let created = at(g.tenant_created(t));
                rows.push(TenantRow {
                    id: g.tenant_id(t),
                    slug: format!("{}-{t}-s{}", name.to_lowercase().replace(' ', "-"), g.seed),
                    name,
                    created_at: created,
                    updated_at: created,
                });
            }
        );

        fill!(self, tenant_members, p.tenants, |t: u64,
                                                rows: &mut Vec<
            MemberRow,
        >| {
            for j in 0..p.members_per_tenant.min(p.users) {
                let u = g.member(t, j);
                let role = match j {
                    0 => TenantRole::Owner,
                    1 | 2 => TenantRole::Admin,
                    _ => TenantRole::Member,
                };
                let joined = at(g.tenant_created(t).max(g.user_created(u)) + j as i64 * HOUR);
                rows.push(MemberRow {
                    id: g.id(tag("tenant_members"), t * p.members_per_tenant + j),
                    tenant_id: g.tenant_id(t),
                    user_id: g.user_id(u),
                    role,
                    created_at: joined,
                    updated_at: joined,
                });
            }
        });

        fill!(self, tenant_invites, p.tenants, |t: u64,
                                                rows: &mut Vec<
            InviteRow,
        >| {
            for k in 0..p.invites_per_tenant {
                let i = t * p.invites_per_tenant + k;
                let mut rng = g.rng(tag("tenant_invites"), i);
                let created = at(g.tenant_created(t) + DAY + rng.random_range(0..60 * DAY));
                // pending, accepted, revoked, expired: one of each in turn.
                let outcome = k % 4;
                let accepted = outcome == 1;
                rows.push(InviteRow {
                    id: g.id(tag("tenant_invites"), i),
                    tenant_id: g.tenant_id(t),
                    email: format!("invitee.{t}.{k}@{}", g.domain()),
                    role: if k == 0 {
                        TenantRole::Admin
                    } else {
                        TenantRole::Member
                    },
                    token_hash: token::hash(&format!("seed-{}-invite-{i}", g.seed)),
                    invited_by: Some(g.user_id(g.member(t, 0))),
                    expires_at: if outcome == 3 {
                        created + chrono::Duration::days(7)
                    } else {
                        now() + chrono::Duration::days(7)
                    },
                    accepted_at: accepted.then(|| created + chrono::Duration::hours(5)),
                    accepted_by: accepted.then(|| g.user_id(g.member(t, p.members_per_tenant - 1))),
                    revoked_at: (outcome == 2).then(|| created + chrono::Duration::days(1)),
                    created_at: created,
                });
            }
        });

        fill!(self, tenant_activity, p.tenants, |t: u64,
                                                 rows: &mut Vec<
            ActivityRow,
        >| {
            for k in 0..p.activity_per_tenant {
                let i = t * p.activity_per_tenant + k;
                let mut rng = g.rng(tag("tenant_activity"), i);
                let actor = g.member(t, rng.random_range(0..p.members_per_tenant));
                let action = pick(&mut rng, ACTIVITY_ACTIONS);
                rows.push(ActivityRow {
                    id: g.id(tag("tenant_activity"), i),
                    tenant_id: g.tenant_id(t),
                    actor_id: Some(g.user_id(actor)),
                    action: action.to_owned(),
                    subject: Some(pick(&mut rng, PROJECT_NAMES).to_owned()),
                    details: json!({"source": "web", "seq": k}),
                    created_at: at(g.tenant_created(t) + HOUR + k as i64 * (5 * DAY)),
                });
            }
        });

        fill!(self, projects, p.projects(), |i: u64,
                                             rows: &mut Vec<
            ProjectRow,
        >| {
            let t = i / p.projects_per_tenant;
            let mut rng = g.rng(tag("projects"), i);
            let created = g.tenant_created(t) + (i % p.projects_per_tenant) as i64 * 3 * DAY + HOUR;
            let owner = g.member(t, rng.random_range(0..3));
            rows.push(ProjectRow {
                id: g.id(tag("projects"), i),
                tenant_id: g.tenant_id(t),
                owner_id: Some(g.user_id(owner)),
                name: pick(&mut rng, PROJECT_NAMES).to_owned(),
                description: rng
                    .random_bool(0.6)
                    .then(|| "Where the team sketches and tracks the work.".to_owned()),
                canvas_version: rng.random_range(1..40),
                archived_at: rng.random_bool(0.1).then(|| at(created + 30 * DAY)),
                created_at: at(created),
                updated_at: at(created + rng.random_range(0..30 * DAY)),
            });
        });

        fill!(self, canvas_nodes, p.projects(), |i: u64,
                                                 rows: &mut Vec<
            CanvasNodeRow,
        >| {
            let mut rng = g.rng(tag("canvas_nodes"), i);
            let t = i / p.projects_per_tenant;
            let created =
                at(g.tenant_created(t) + (i % p.projects_per_tenant) as i64 * 3 * DAY + 2 * HOUR);
            for k in 0..rng.random_range(4..=8u64) {
                let kind = pick(&mut rng, CANVAS_TYPES);
                rows.push(CanvasNodeRow {
                    id: g.id(tag("canvas_nodes"), i * 16 + k),
                    project_id: g.id(tag("projects"), i),
                    node_id: format!("{kind}-{k}"),
                    node_type: kind.to_owned(),
                    position_x: (k % 4) as f64 * 260.0 + rng.random_range(0..40) as f64,
                    position_y: (k / 4) as f64 * 180.0 + rng.random_range(0..40) as f64,
                    width: Some(rng.random_range(120..320) as f64),
                    height: Some(rng.random_range(60..200) as f64),
                    data: json!({"label": format!("{} {k}", kind), "color": pick(&mut rng, &["#f59e0b", "#3b82f6", "#10b981"])}),
                    created_at: created,
                    updated_at: created,
                });
            }
        });

        fill!(self, workflows, p.workflows(), |w: u64,
                                               rows: &mut Vec<
            WorkflowRow,
        >| {
            let t = w / p.workflows_per_tenant;
            let mut rng = g.rng(tag("workflows"), w);
            let shape = g.shape(w);
            let nodes: Vec<Value> = shape
                .nodes
                .iter()
                .map(|(id, kind)| json!({"id": id, "type": kind, "data": {"label": id}}))
                .collect();
            let edges: Vec<Value> = shape
                .nodes
                .windows(2)
                .map(|pair| json!({"source": pair[0].0, "target": pair[1].0}))
                .collect();
            let created = at(g.workflow_created(w));
            rows.push(WorkflowRow {
                id: g.id(tag("workflows"), w),
                tenant_id: g.tenant_id(t),
                owner_id: Some(g.user_id(g.member(t, rng.random_range(0..3)))),
                name: pick(&mut rng, WORKFLOW_NAMES).to_owned(),
                description: Some(format!(
                    "{} steps, edited {} times",
                    shape.nodes.len(),
                    shape.version - 1
                )),
                nodes: Value::Array(nodes),
                edges: Value::Array(edges),
                version: shape.version,
                created_at: created,
                updated_at: created + chrono::Duration::hours(shape.version - 1),
            });
        });

        fill!(self, executions, p.executions(), |e: u64,
                                                 rows: &mut Vec<
            ExecutionRow,
        >| {
            let run = g.run(e);
            let t = run.workflow / p.workflows_per_tenant;
            let mut rng = g.rng(tag("executions.extra"), e);
            use ExecutionStatus::*;
            let last = run.finished.or(run.started).unwrap_or(run.created);
            rows.push(ExecutionRow {
                id: g.id(tag("executions"), e),
                tenant_id: g.tenant_id(t),
                workflow_id: g.id(tag("workflows"), run.workflow),
                user_id: Some(g.user_id(g.member(t, rng.random_range(0..p.members_per_tenant)))),
                workflow_version: rng.random_range(1..=g.shape(run.workflow).version),
                status: run.status,
                input: json!({"trigger": pick(&mut rng, &["manual", "schedule", "webhook"]), "run": e}),
                output: (run.status == Completed).then(|| json!({"ok": true, "items": rng.random_range(0..500)})),
                error: (run.status == Failed).then(|| "step failed after 3 attempts: upstream returned 502".to_owned()),
                worker_id: run.started.map(|_| format!("worker-{}", rng.random_range(1..9))),
                started_at: run.started.map(at),
                finished_at: run.finished.map(at),
                created_at: at(run.created),
                updated_at: at(last),
            });
        });

        fill!(self, execution_steps, p.executions(), |e: u64,
                                                      rows: &mut Vec<
            StepRow,
        >| {
            let run = g.run(e);
            let shape = g.shape(run.workflow);
            let mut rng = g.rng(tag("execution_steps"), e);
            let n = shape.nodes.len();
            // Step k of a started execution runs in the k-th slice of its window.
            let window_start = run.started.unwrap_or(run.created);
            let window_end = run.finished.unwrap_or(window_start + 60 * n as i64);
            let slice = ((window_end - window_start) / n as i64).max(1);
            for (k, (node_id, kind)) in shape.nodes.iter().enumerate() {
                use StepStatus::*;
                let status = match run.status {
                    ExecutionStatus::Completed => {
                        if k > 0 && *kind == "condition" && rng.random_bool(0.3) {
                            Skipped
                        } else {
                            Completed
                        }
                    }
                    ExecutionStatus::Pending => Pending,
                    ExecutionStatus::Running if k == run.reached => Running,
                    ExecutionStatus::Failed if k == run.reached => Failed,
                    _ if k < run.reached => Completed,
                    ExecutionStatus::Failed | ExecutionStatus::Cancelled => Skipped,
                    _ => Pending,
                };
                let from = window_start + slice * k as i64;
                let (started, finished) = match status {
                    Completed | Failed => {
                        (Some(from), Some(from + slice.min(rng.random_range(1..60))))
                    }
                    Running => (Some(from), None),
                    _ => (None, None),
                };
                let attempts = match status {
                    Completed => {
                        if rng.random_bool(0.1) {
                            2
                        } else {
                            1
                        }
                    }
                    Failed => 3,
                    Running => 1,
                    _ => 0,
                };
                let stamp = finished.or(started).unwrap_or(run.created);
                rows.push(StepRow {
                    id: g.id(tag("execution_steps"), e * 8 + k as u64),
                    execution_id: g.id(tag("executions"), e),
                    node_id: node_id.clone(),
                    position: k as i32,
                    status,
                    input: started.map(|_| json!({"from": if k == 0 { "trigger" } else { shape.nodes[k - 1].0.as_str() }})),
                    output: (status == Completed).then(|| json!({"status": 200, "ms": rng.random_range(5..900)})),
                    validation: (status == Completed && *kind == "llm").then(|| json!({"schema": "ok"})),
                    attempts,
                    max_attempts: 3,
                    error: (status == Failed).then(|| "upstream returned 502 Bad Gateway".to_owned()),
                    started_at: started.map(at),
                    finished_at: finished.map(at),
                    created_at: at(run.created),
                    updated_at: at(stamp),
                });
            }
        });

        fill!(self, chats, p.chats(), |c: u64, rows: &mut Vec<ChatRow>| {
            let u = c / p.chats_per_user;
            let mut rng = g.rng(tag("chats"), c);
            let created = g.user_created(u) + DAY + rng.random_range(0..50 * DAY);
            rows.push(ChatRow {
                id: g.id(tag("chats"), c),
                user_id: g.user_id(u),
                title: pick(&mut rng, CHAT_TOPICS).to_owned(),
                visibility: if rng.random_bool(0.2) {
                    ChatVisibility::Public
                } else {
                    ChatVisibility::Private
                },
                created_at: at(created),
                updated_at: at(created + p.messages_per_chat as i64 * 90),
            });
        });

        fill!(
            self,
            messages,
            p.chats(),
            |c: u64, rows: &mut Vec<MessageRow>| {
                let u = c / p.chats_per_user;
                let mut rng = g.rng(tag("chats"), c);
                // Same draws as the chat's row, so the messages start when the chat does.
                let created = g.user_created(u) + DAY + rng.random_range(0..50 * DAY);
                let mut rng = g.rng(tag("messages"), c);
                for k in 0..p.messages_per_chat {
                    let (role, text) = if k == 0 {
                        (
                            MessageRole::System,
                            "You are a helpful assistant for the team.",
                        )
                    } else if k % 2 == 1 {
                        (MessageRole::User, pick(&mut rng, USER_LINES))
                    } else {
                        (MessageRole::Assistant, pick(&mut rng, ASSISTANT_LINES))
                    };
                    rows.push(MessageRow {
                        id: g.id(tag("messages"), c * 64 + k),
                        chat_id: g.id(tag("chats"), c),
                        role,
                        parts: json!([{"type": "text", "text": text}]),
                        created_at: at(created + k as i64 * 90),
                    });
                }
            }
        );

        fill!(self, notifications, p.notifications(), |i: u64,
                                                       rows: &mut Vec<
            NotificationRow,
        >| {
            let u = i / p.notifications_per_user;
            let mut rng = g.rng(tag("notifications"), i);
            let (kind, title) = pick(&mut rng, NOTIFICATION_KINDS);
            let created = g.user_created(u) + DAY + rng.random_range(0..55 * DAY);
            rows.push(NotificationRow {
                id: g.id(tag("notifications"), i),
                tenant_id: g.tenant_id(g.home_tenant(u)),
                user_id: g.user_id(u),
                kind: kind.to_owned(),
                title: title.to_owned(),
                body: rng
                    .random_bool(0.7)
                    .then(|| "Open the app to see the details.".to_owned()),
                data: json!({"link": format!("/n/{i}")}),
                read_at: rng
                    .random_bool(0.6)
                    .then(|| at(created + rng.random_range(60..3 * DAY))),
                created_at: at(created),
            });
        });

        fill!(
            self,
            notification_deliveries,
            p.notifications(),
            |i: u64, rows: &mut Vec<DeliveryRow>| {
                let u = i / p.notifications_per_user;
                let mut rng = g.rng(tag("notifications"), i);
                let _ = pick(&mut rng, NOTIFICATION_KINDS);
                // Same draws as the notification's row, for its created_at.
                let created = g.user_created(u) + DAY + rng.random_range(0..55 * DAY);
                let mut rng = g.rng(tag("notification_deliveries"), i);
                rows.push(DeliveryRow {
                    id: g.id(tag("notification_deliveries"), i * 3),
                    notification_id: g.id(tag("notifications"), i),
                    channel: NotificationChannel::InApp,
                    status: DeliveryStatus::Sent,
                    attempts: 1,
                    next_attempt_at: at(created),
                    provider_message_id: None,
                    last_error: None,
                    sent_at: Some(at(created)),
                    created_at: at(created),
                    updated_at: at(created),
                });
                for (slot, channel, p_send) in [
                    (1, NotificationChannel::Email, 0.6),
                    (2, NotificationChannel::Push, 0.2),
                ] {
                    if !rng.random_bool(p_send) {
                        continue;
                    }
                    let roll = rng.random_range(0..100);
                    let (status, attempts, sent, error) = match roll {
                        0..85 => (
                            DeliveryStatus::Sent,
                            1,
                            Some(created + rng.random_range(1..120)),
                            None,
                        ),
                        85..93 => (
                            DeliveryStatus::Failed,
                            5,
                            None,
                            Some("550 mailbox unavailable"),
                        ),
                        _ => (DeliveryStatus::Pending, 0, None, None),
                    };
                    let next = match status {
                        DeliveryStatus::Pending => {
                            now() + chrono::Duration::minutes(rng.random_range(1..30))
                        }
                        _ => at(created + 600),
                    };
                    rows.push(DeliveryRow {
                        id: g.id(tag("notification_deliveries"), i * 3 + slot),
                        notification_id: g.id(tag("notifications"), i),
                        channel,
                        status,
                        attempts,
                        next_attempt_at: next,
                        provider_message_id: sent.map(|_| format!("msg_s{}_{i}_{slot}", g.seed)),
                        last_error: error.map(str::to_owned),
                        sent_at: sent.map(at),
                        created_at: at(created),
                        updated_at: at(sent.unwrap_or(created + 600)),
                    });
                }
            }
        );

        fill!(self, subscriptions, p.subscriptions(), |i: u64,
                                                       rows: &mut Vec<
            SubscriptionRow,
        >| {
            let mut rng = g.rng(tag("subscriptions"), i);
            let (user, tenant, created) = if i < p.tenants {
                (None, Some(g.tenant_id(i)), g.tenant_created(i) + DAY)
            } else {
                let u = (i - p.tenants) * 20;
                (Some(g.user_id(u)), None, g.user_created(u) + DAY)
            };
            use SubscriptionStatus::*;
            let status = pick(
                &mut rng,
                &[Active, Active, Active, Active, Trialing, PastDue, Canceled],
            );
            let last_event = created + rng.random_range(HOUR..40 * DAY);
            rows.push(SubscriptionRow {
                id: g.id(tag("subscriptions"), i),
                user_id: user,
                tenant_id: tenant,
                provider_customer_id: format!("cus_s{}_{i}", g.seed),
                provider_subscription_id: format!("sub_s{}_{i}", g.seed),
                plan: pick(&mut rng, PLANS).to_owned(),
                status,
                current_period_end: (status != Canceled)
                    .then(|| now() + chrono::Duration::days(rng.random_range(1..30))),
                cancel_at_period_end: status == Active && rng.random_bool(0.1),
                last_event_at: at(last_event),
                created_at: at(created),
                updated_at: at(last_event),
            });
        });

        fill!(
            self,
            subscription_events,
            p.subscriptions(),
            |i: u64, rows: &mut Vec<SubscriptionEventRow>| {
                let mut rng = g.rng(tag("subscription_events"), i);
                let created = if i < p.tenants {
                    g.tenant_created(i) + DAY
                } else {
                    g.user_created((i - p.tenants) * 20) + DAY
                };
                let events = [
                    "customer.subscription.created",
                    "invoice.paid",
                    "customer.subscription.updated",
                ];
                for (k, event_type) in events.iter().enumerate().take(rng.random_range(1..=3)) {
                    let occurred = created + k as i64 * 10 * DAY;
                    rows.push(SubscriptionEventRow {
                    id: g.id(tag("subscription_events"), i * 4 + k as u64),
                    provider_event_id: format!("evt_s{}_{i}_{k}", g.seed),
                    event_type: (*event_type).to_owned(),
                    subscription_id: Some(g.id(tag("subscriptions"), i)),
                    payload: json!({"type": event_type, "data": {"object": {"id": format!("sub_s{}_{i}", g.seed)}}}),
                    occurred_at: at(occurred),
                    received_at: at(occurred + 2),
                    processed_at: Some(at(occurred + 3)),
                    outcome: Some(EventOutcome::Applied),
                });
                }
            }
        );

        fill!(self, todos, p.users, |u: u64, rows: &mut Vec<TodoRow>| {
            let mut rng = g.rng(tag("todos"), u);
            for k in 0..p.todos_per_user {
                let created = at(g.user_created(u) + DAY + rng.random_range(0..50 * DAY));
                let completed = rng.random_bool(0.4);
                rows.push(TodoRow {
                    id: g.id(tag("todos"), u * 16 + k),
                    user_id: g.user_id(u),
                    tenant_id: rng.random_bool(0.5).then(|| g.tenant_id(g.home_tenant(u))),
                    title: pick(&mut rng, TODO_TITLES).to_owned(),
                    description: rng.random_bool(0.3).then(|| "Before Friday.".to_owned()),
                    completed,
                    created_at: created,
                    updated_at: if completed {
                        created + chrono::Duration::days(2)
                    } else {
                        created
                    },
                });
            }
        });

        fill!(
            self,
            waitlist,
            p.waitlist,
            |i: u64, rows: &mut Vec<WaitlistRow>| {
                let mut rng = g.rng(tag("waitlist"), i);
                let created = at((i * 100 * DAY as u64 / p.waitlist.max(1)) as i64);
                rows.push(WaitlistRow {
                    id: g.id(tag("waitlist"), i),
                    email: format!("waiting.{i}@{}", g.domain()),
                    invited_at: rng
                        .random_bool(0.3)
                        .then(|| created + chrono::Duration::days(10)),
                    created_at: created,
                });
            }
        );

        // Signing keys, built by the domain's own constructor: two retired
        // (still published until they expire), one signing. Only one key
        // may sign per database, so a second seed's signing key is skipped.
        let jwks_key = crate::auth::jwks::JwksEncryptionKey::from_env().unwrap_or_else(|_| {
            crate::auth::jwks::JwksEncryptionKey::from_hex(SEED_JWKS_ENCRYPTION_KEY)
                .expect("a valid development key")
        });
        fill!(self, jwks, 3, |i: u64,
                              rows: &mut Vec<
            crate::auth::jwks::InsertJwk,
        >| {
            let mut rng = g.rng(tag("jwks"), i);
            let (mut secret, mut nonce) = ([0u8; 32], [0u8; 12]);
            rng.fill(&mut secret);
            rng.fill(&mut nonce);
            let created = base() + chrono::Duration::days(30 * i as i64);
            let mut row = crate::auth::jwks::InsertJwk::sealed(
                g.id(tag("jwks"), i).into(),
                &jwks_key,
                &secret,
                &nonce,
                created,
                created + chrono::Duration::days(90),
            );
            row.retired_at = (i < 2).then(|| created + chrono::Duration::days(30));
            rows.push(row);
        });

        let first_day = (base() + chrono::Duration::days(120 - p.days as i64)).date_naive();
        fill!(self, user_activity_daily, p.users, |u: u64,
                                                   rows: &mut Vec<
            DailyRow,
        >| {
            let mut rng = g.rng(tag("user_activity_daily"), u);
            let busy = rng.random_range(5..60);
            for d in 0..p.days {
                if rng.random_bool(0.65) {
                    rows.push(DailyRow {
                        user_id: g.user_id(u),
                        day: first_day + chrono::Duration::days(d as i64),
                        count: rng.random_range(1..=busy),
                    });
                }
            }
        });

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let g = Gen {
            seed: 7,
            plan: Plan::of(Scale::Small),
        };
        assert_eq!(g.user_id(3), g.user_id(3));
        assert_ne!(g.user_id(3), g.user_id(4));
        assert_ne!(g.user_id(3), g.tenant_id(3));
        assert_eq!(g.user_id(3).get_version_num(), 8);
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
