//! Rows for tests, built through the domains' own validated functions (so a
//! fixture can never hold what the service could not write), with no SQL in
//! the test.
//!
//! ```no_run
//! # async fn f(t: &database::testing::TestDb) {
//! use database::testing::fixtures::Fixtures;
//!
//! let rows = Fixtures::new(7);
//! let acme = rows.tenant().with_members(3).create(t).await;
//! let flow = rows.workflow(&acme).with_executions(2).create(t).await;
//! let chat = rows.chat(&acme.owner).with_messages(4).create(t).await;
//! let db = t.service_db().with(acme.ctx()); // what the tenant's owner sees
//! # }
//! ```
//!
//! Deterministic from the seed and the order of calls: every name, email,
//! slug, title, message text and count. From the database and the clock,
//! not deterministic: ids (UUID v7) and timestamps. Fixtures are written as
//! the template's owner (`TestDb::owner`), across tenants, as a seed is.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;

use super::TestDb;
use crate::auth::{NewUser, User, users};
use crate::chat::{
    Chat, ChatVisibility, Message, MessageRole, NewMessage, SaveChat, chats, messages,
};
use crate::tenancy::{NewMember, NewTenant, Tenant, TenantRole, tenant_members, tenants};
use crate::workflows::{
    Execution, GraphEdge, GraphNode, NewWorkflow, StartExecution, Workflow, WorkflowGraph,
    executions, workflows,
};
use crate::{ChatId, Ctx};

/// A source of deterministic rows: the seed goes into every name, and a
/// counter tells one row from the next.
pub struct Fixtures {
    seed: u64,
    next: AtomicU64,
}

impl Fixtures {
    /// Rows named after `seed`: two `Fixtures` with the same seed, called in
    /// the same order, build rows with the same content.
    pub fn new(seed: u64) -> Fixtures {
        Fixtures {
            seed,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A user (`user<n>-s<seed>@example.test`, named "User <n>").
    pub fn user(&self) -> UserBuilder<'_> {
        UserBuilder {
            fixtures: self,
            email: None,
        }
    }

    /// A tenant with its owner (and members, if asked for).
    pub fn tenant(&self) -> TenantBuilder<'_> {
        TenantBuilder {
            fixtures: self,
            members: 0,
        }
    }

    /// A workflow of `tenant` (a chain of three task nodes).
    pub fn workflow<'a>(&'a self, tenant: &'a TenantRows) -> WorkflowBuilder<'a> {
        WorkflowBuilder {
            fixtures: self,
            tenant,
            executions: 0,
        }
    }

    /// A chat of `user`.
    pub fn chat<'a>(&'a self, user: &'a User) -> ChatBuilder<'a> {
        ChatBuilder {
            fixtures: self,
            user,
            messages: 0,
        }
    }
}

/// Builds a user.
pub struct UserBuilder<'a> {
    fixtures: &'a Fixtures,
    email: Option<String>,
}

impl UserBuilder<'_> {
    /// This address instead of the generated one.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }

    /// Writes it.
    pub async fn create(self, t: &TestDb) -> User {
        let n = self.fixtures.next();
        let input = NewUser {
            email: self
                .email
                .unwrap_or_else(|| format!("user{n}-s{}@example.test", self.fixtures.seed)),
            name: Some(format!("User {n}")),
            ..NewUser::default()
        };
        users::create(&mut *t.conn().await, &input)
            .await
            .unwrap_or_else(|e| panic!("fixture user {}: {e}", input.email))
    }
}

/// Builds a tenant.
pub struct TenantBuilder<'a> {
    fixtures: &'a Fixtures,
    members: usize,
}

/// A tenant, its owner and its members.
#[derive(Debug, Clone)]
pub struct TenantRows {
    /// The tenant (`tenant-<n>-s<seed>`, "Tenant <n>").
    pub tenant: Tenant,
    /// Its owner (a new user).
    pub owner: User,
    /// Its members with the role `member`, in the order they were added.
    pub members: Vec<User>,
}

impl TenantRows {
    /// The context of a request in this tenant by its owner.
    pub fn ctx(&self) -> Ctx {
        Ctx::tenant(self.tenant.id).user(self.owner.id)
    }

    /// The context of a request in this tenant by `user`.
    pub fn ctx_of(&self, user: &User) -> Ctx {
        Ctx::tenant(self.tenant.id).user(user.id)
    }
}

impl TenantBuilder<'_> {
    /// With `n` more users as members (role `member`).
    pub fn with_members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Writes the owner, the tenant and its members.
    pub async fn create(self, t: &TestDb) -> TenantRows {
        let owner = self.fixtures.user().create(t).await;
        let n = self.fixtures.next();
        let input = NewTenant {
            name: format!("Tenant {n}"),
            slug: format!("tenant-{n}-s{}", self.fixtures.seed),
        };
        let tenant = tenants::create_with_owner(&mut *t.conn().await, &input, owner.id)
            .await
            .unwrap_or_else(|e| panic!("fixture tenant {}: {e}", input.slug));
        let mut members = Vec::with_capacity(self.members);
        for _ in 0..self.members {
            let user = self.fixtures.user().create(t).await;
            let member = NewMember {
                user_id: user.id,
                role: TenantRole::Member,
            };
            tenant_members::add(&mut *t.conn().await, tenant.id, owner.id, &member)
                .await
                .unwrap_or_else(|e| panic!("fixture member of {}: {e}", input.slug));
            members.push(user);
        }
        TenantRows {
            tenant,
            owner,
            members,
        }
    }
}

/// Builds a workflow.
pub struct WorkflowBuilder<'a> {
    fixtures: &'a Fixtures,
    tenant: &'a TenantRows,
    executions: usize,
}

/// A workflow and its executions.
#[derive(Debug, Clone)]
pub struct WorkflowRows {
    /// The workflow ("Workflow <n>": a -> b -> c).
    pub workflow: Workflow,
    /// Its executions (pending, started by the tenant's owner, one step per node).
    pub executions: Vec<Execution>,
}

impl WorkflowBuilder<'_> {
    /// With `n` pending executions.
    pub fn with_executions(mut self, n: usize) -> Self {
        self.executions = n;
        self
    }

    /// Writes the workflow and its executions.
    pub async fn create(self, t: &TestDb) -> WorkflowRows {
        let n = self.fixtures.next();
        let node = |id: &str| GraphNode {
            id: id.to_owned(),
            node_type: "task".to_owned(),
            data: json!({}),
        };
        let edge = |source: &str, target: &str| GraphEdge {
            source: source.to_owned(),
            target: target.to_owned(),
        };
        let input = NewWorkflow {
            name: format!("Workflow {n}"),
            graph: WorkflowGraph {
                nodes: vec![node("a"), node("b"), node("c")],
                edges: vec![edge("a", "b"), edge("b", "c")],
            },
            ..NewWorkflow::default()
        };
        let tenant = self.tenant.tenant.id;
        let mut conn = t.conn().await;
        let workflow = workflows::create(&mut conn, tenant, Some(self.tenant.owner.id), &input)
            .await
            .unwrap_or_else(|e| panic!("fixture workflow {}: {e}", input.name));
        let mut runs = Vec::with_capacity(self.executions);
        for i in 0..self.executions {
            let start = StartExecution {
                user_id: Some(self.tenant.owner.id),
                input: json!({ "run": i + 1 }),
                ..StartExecution::default()
            };
            let run = executions::start(&mut conn, tenant, workflow.id, &start)
                .await
                .unwrap_or_else(|e| panic!("fixture execution of {}: {e}", input.name));
            runs.push(run.execution);
        }
        WorkflowRows {
            workflow,
            executions: runs,
        }
    }
}

/// Builds a chat.
pub struct ChatBuilder<'a> {
    fixtures: &'a Fixtures,
    user: &'a User,
    messages: usize,
}

/// A chat and its messages.
#[derive(Debug, Clone)]
pub struct ChatRows {
    /// The chat ("Chat <n>", private).
    pub chat: Chat,
    /// Its messages, oldest first: the user's and the assistant's in turn
    /// ("Message <i> of chat <n>").
    pub messages: Vec<Message>,
}

impl ChatBuilder<'_> {
    /// With `n` messages.
    pub fn with_messages(mut self, n: usize) -> Self {
        self.messages = n;
        self
    }

    /// Writes the chat and its messages.
    pub async fn create(self, t: &TestDb) -> ChatRows {
        let n = self.fixtures.next();
        let input = SaveChat {
            id: ChatId::new(),
            title: format!("Chat {n}"),
            visibility: ChatVisibility::Private,
        };
        let mut conn = t.conn().await;
        let chat = chats::save(&mut conn, self.user.id, &input)
            .await
            .unwrap_or_else(|e| panic!("fixture chat {}: {e}", input.title));
        let mut saved = Vec::new();
        if self.messages > 0 {
            let batch = messages::SaveMessages {
                messages: (0..self.messages)
                    .map(|i| NewMessage {
                        role: if i % 2 == 0 {
                            MessageRole::User
                        } else {
                            MessageRole::Assistant
                        },
                        parts: json!([{ "type": "text", "text": format!("Message {} of chat {n}", i + 1) }]),
                    })
                    .collect(),
            };
            saved = messages::create_many(&mut conn, self.user.id, chat.id, &batch)
                .await
                .unwrap_or_else(|e| panic!("fixture messages of {}: {e}", input.title));
        }
        ChatRows {
            chat,
            messages: saved,
        }
    }
}
