//! The generator: every row of the seed is a pure function of `(seed,
//! table, index)`. Ids, random draws and timestamps come from here, and so
//! do the word lists the rows pick from; the per-domain files only decide
//! which rows a unit makes and which domain type carries them.

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::Plan;
use crate::ids::{TenantId, UserId};
use crate::workflows::ExecutionStatus;

/// The admin roles (shared by every seed: their names are unique).
pub(super) const ADMIN_ROLES: &[(&str, &str, &[&str])] = &[
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
pub(super) const SEED_JWKS_ENCRYPTION_KEY: &str =
    "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// The first users of a seed are its admins.
pub(super) const ADMINS: u64 = 3;
pub(super) const AUDIT_PER_ADMIN: u64 = 5;

/// The instant every timestamp counts from (the seed data's "day zero").
pub(super) fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// The seed data's "now": everything happened before it, expiries lie after it.
pub(super) fn now() -> DateTime<Utc> {
    base() + chrono::Duration::days(120)
}

pub(super) fn at(seconds: i64) -> DateTime<Utc> {
    base() + chrono::Duration::seconds(seconds)
}

pub(super) const DAY: i64 = 86_400;
pub(super) const HOUR: i64 = 3_600;

/// A 64-bit FNV-1a hash, to turn a table name into a tag at compile time.
pub(super) const fn tag(name: &str) -> u64 {
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
pub(super) const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator: pure functions of `(seed, index)` for every row.
#[derive(Clone, Copy)]
pub(super) struct Gen {
    pub(super) seed: u64,
    pub(super) plan: Plan,
}

pub(super) const NAMES_FIRST: &[&str] = &[
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
pub(super) const NAMES_LAST: &[&str] = &[
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
pub(super) const COMPANY_A: &[&str] = &[
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
pub(super) const COMPANY_B: &[&str] = &[
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
pub(super) const PROJECT_NAMES: &[&str] = &[
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
pub(super) const WORKFLOW_NAMES: &[&str] = &[
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
pub(super) const STEP_TYPES: &[&str] = &[
    "http",
    "transform",
    "condition",
    "llm",
    "email",
    "delay",
    "webhook",
];
pub(super) const CANVAS_TYPES: &[&str] = &["note", "shape", "image", "frame", "text"];
pub(super) const CHAT_TOPICS: &[&str] = &[
    "Summarise the incident report",
    "Draft a launch email",
    "SQL for monthly actives",
    "Explain this stack trace",
    "Plan the offsite",
    "Review my pricing copy",
    "Translate the FAQ",
    "Ideas for the roadmap",
];
pub(super) const USER_LINES: &[&str] = &[
    "Can you help me with this?",
    "Make it shorter, please.",
    "What would you change first?",
    "Add a section about risks.",
    "Thanks! One more question.",
    "Show me an example.",
];
pub(super) const ASSISTANT_LINES: &[&str] = &[
    "Sure. Here is a first draft; tell me what to adjust.",
    "The main issue is the retry loop: it never backs off.",
    "I would start with the onboarding step, where most users drop.",
    "Here is a shorter version that keeps the key points.",
    "Good question. There are two options, each with a trade-off.",
];
pub(super) const NOTIFICATION_KINDS: &[(&str, &str)] = &[
    ("mention", "You were mentioned in a comment"),
    ("invite", "You were invited to a project"),
    ("execution.failed", "A workflow run failed"),
    ("execution.completed", "A workflow run completed"),
    ("billing.invoice", "Your invoice is ready"),
    ("digest", "Your weekly digest"),
];
pub(super) const TODO_TITLES: &[&str] = &[
    "Review pull request",
    "Write release notes",
    "Call the customer",
    "Fix flaky test",
    "Update the runbook",
    "Prepare the demo",
    "Answer support tickets",
    "Plan the sprint",
];
pub(super) const ACTIVITY_ACTIONS: &[&str] = &[
    "member.joined",
    "project.created",
    "workflow.updated",
    "execution.started",
    "invite.sent",
    "settings.changed",
];
pub(super) const PLANS: &[&str] = &["starter", "team", "business"];
pub(super) const TIMEZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Sao_Paulo",
];
pub(super) const LOCALES: &[&str] = &["en-US", "en-GB", "fr-FR", "de-DE", "ja-JP", "pt-BR"];

pub(super) fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// What a workflow's graph looks like: the node ids and types, in run order.
pub(super) struct Shape {
    pub(super) nodes: Vec<(String, &'static str)>,
    pub(super) version: i64,
}

/// An execution's status and times, which its steps must agree with.
pub(super) struct Run {
    pub(super) workflow: u64,
    pub(super) status: ExecutionStatus,
    pub(super) created: i64,
    pub(super) started: Option<i64>,
    pub(super) finished: Option<i64>,
    /// Steps before this index are completed (for running, paused, failed
    /// and started-then-cancelled executions).
    pub(super) reached: usize,
}

impl Gen {
    pub(super) fn key(&self, table: u64, i: u64) -> u64 {
        mix(mix(self.seed ^ table) ^ i)
    }

    pub(super) fn rng(&self, table: u64, i: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.key(table, i))
    }

    /// The id of row `i` of `table`: a version 8 (custom) UUID from the hash.
    pub(super) fn id(&self, table: u64, i: u64) -> Uuid {
        let a = self.key(table, i);
        let b = mix(a ^ 0x5eed);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    /// Distinct for every seed, so that seeds can share a database.
    pub(super) fn domain(&self) -> String {
        format!("seed{}.example.com", self.seed)
    }

    pub(super) fn user_id(&self, u: u64) -> UserId {
        self.id(tag("users"), u).into()
    }
    pub(super) fn tenant_id(&self, t: u64) -> TenantId {
        self.id(tag("tenants"), t).into()
    }
    /// When user `u` signed up: spread over the first 60 days.
    pub(super) fn user_created(&self, u: u64) -> i64 {
        (u * 60 * DAY as u64 / self.plan.users.max(1)) as i64 + (u % 7) as i64 * 611
    }
    pub(super) fn user_name(&self, u: u64) -> (&'static str, &'static str) {
        let mut rng = self.rng(tag("users"), u);
        (pick(&mut rng, NAMES_FIRST), pick(&mut rng, NAMES_LAST))
    }
    pub(super) fn email(&self, u: u64) -> String {
        let (first, last) = self.user_name(u);
        format!(
            "{}.{}.{u}@{}",
            first.to_lowercase(),
            last.to_lowercase().replace([' ', '-'], ""),
            self.domain()
        )
    }
    /// Member `j` of tenant `t` (member 0 owns it).
    pub(super) fn member(&self, t: u64, j: u64) -> u64 {
        (t * self.plan.members_per_tenant + j) % self.plan.users
    }
    /// The tenant user `u` is a member of (as member `u % m` of it).
    pub(super) fn home_tenant(&self, u: u64) -> u64 {
        u / self.plan.members_per_tenant
    }
    pub(super) fn tenant_created(&self, t: u64) -> i64 {
        self.user_created(self.member(t, 0)) + HOUR
    }

    pub(super) fn shape(&self, w: u64) -> Shape {
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

    pub(super) fn workflow_created(&self, w: u64) -> i64 {
        let t = w / self.plan.workflows_per_tenant;
        self.tenant_created(t) + (w % self.plan.workflows_per_tenant) as i64 * DAY + 2 * HOUR
    }

    pub(super) fn run(&self, e: u64) -> Run {
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
