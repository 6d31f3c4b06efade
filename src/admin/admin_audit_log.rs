//! `admin_audit_log`: who did what to which entity, from where, with the
//! entity's state before and after. Append-only: the crate offers no update
//! or delete, and a trigger makes the database refuse them too.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::schema::admin_audit_log;
use crate::{AuditEntryId, Conn, Error, Result, UserId};

/// A row of `admin_audit_log`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = admin_audit_log, check_for_backend(diesel::pg::Pg))]
pub struct AuditEntry {
    /// Primary key.
    pub id: AuditEntryId,
    /// The admin who acted.
    pub actor_id: UserId,
    /// What they did, e.g. `admin_role.granted`.
    pub action: String,
    /// The kind of entity acted on, e.g. `user`.
    pub entity_type: String,
    /// Which entity.
    pub entity_id: Option<String>,
    /// Its state before (None for a creation).
    pub before: Option<serde_json::Value>,
    /// Its state after (None for a deletion).
    pub after: Option<serde_json::Value>,
    /// The address the request came from.
    pub ip_address: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// The escape hatch's reason when the action ran under
    /// `Ctx::system("...")`; `None` otherwise.
    pub system_reason: Option<String>,
}

/// Who performs an admin mutation and from where; every audited function takes it.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct AuditContext {
    /// The acting admin.
    pub actor: UserId,
    /// The client's IP address (v4 or v6), when known.
    #[validate(custom(function = "valid_ip"))]
    pub ip_address: Option<String>,
}

impl AuditContext {
    /// A context without an IP address (jobs, the CLI).
    pub fn new(actor: UserId) -> Self {
        Self {
            actor,
            ip_address: None,
        }
    }
}

fn valid_ip(v: &str) -> Result<(), ValidationError> {
    v.parse::<IpAddr>().map(|_| ()).map_err(|_| {
        ValidationError::new("ip").with_message("must be an IPv4 or IPv6 address".into())
    })
}

/// Input of `record`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[validate(schema(function = "json_fields", skip_on_field_errors = false))]
pub struct NewAuditEntry {
    /// What was done, 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub action: String,
    /// The kind of entity, 1 to 64 characters.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub entity_type: String,
    /// Which entity, at most 200 characters.
    #[validate(length(max = 200), custom(function = "crate::input::line"))]
    pub entity_id: Option<String>,
    /// State before (JSON, see `crate::input::json`).
    pub before: Option<serde_json::Value>,
    /// State after (JSON, see `crate::input::json`).
    pub after: Option<serde_json::Value>,
}

fn json_fields(entry: &NewAuditEntry) -> Result<(), ValidationError> {
    use crate::input::{Shape, json_field};
    for (field, value) in [("before", &entry.before), ("after", &entry.after)] {
        if let Some(value) = value {
            json_field(field, value, Shape::Any)?;
        }
    }
    Ok(())
}

#[derive(Insertable)]
#[diesel(table_name = admin_audit_log, treat_none_as_default_value = false)]
pub(crate) struct InsertEntry<'a> {
    pub(crate) id: AuditEntryId,
    pub(crate) actor_id: UserId,
    pub(crate) action: &'a str,
    pub(crate) entity_type: &'a str,
    pub(crate) entity_id: Option<&'a str>,
    pub(crate) before: Option<&'a serde_json::Value>,
    pub(crate) after: Option<&'a serde_json::Value>,
    pub(crate) ip_address: Option<&'a str>,
    pub(crate) system_reason: Option<&'a str>,
}

/// Appends an entry. Admin mutations of the crate call this inside their own
/// transaction; callers use it for admin actions that live elsewhere.
pub async fn record(
    conn: &mut Conn,
    ctx: &AuditContext,
    entry: &NewAuditEntry,
) -> Result<AuditEntry> {
    validate(ctx)?;
    validate(entry)?;
    diesel::insert_into(admin_audit_log::table)
        .values(InsertEntry {
            id: AuditEntryId::new(),
            actor_id: ctx.actor,
            action: &entry.action,
            entity_type: &entry.entity_type,
            entity_id: entry.entity_id.as_deref(),
            before: entry.before.as_ref(),
            after: entry.after.as_ref(),
            ip_address: ctx.ip_address.as_deref(),
            system_reason: conn.system_reason(),
        })
        .returning(AuditEntry::as_returning())
        .get_result(conn)
        .await
        .map_err(Error::from)
}

/// Filters of `list`; every `Some` narrows the result.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct AuditFilter {
    /// Only this admin's entries.
    pub actor: Option<UserId>,
    /// Only this kind of entity.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub entity_type: Option<String>,
    /// Only this entity (use with `entity_type`).
    #[validate(length(min = 1, max = 200), custom(function = "crate::input::line"))]
    pub entity_id: Option<String>,
    /// Entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// A page of entries matching `filter`, newest first, after `after` (exclusive).
pub async fn list(
    conn: &mut Conn,
    filter: &AuditFilter,
    after: Option<Cursor<AuditEntryId>>,
    limit: i64,
) -> Result<Page<AuditEntry, AuditEntryId>> {
    validate(filter)?;
    if let (Some(from), Some(until)) = (filter.from, filter.until)
        && from > until
    {
        return Err(Error::invalid("from", "range", "must not be after `until`"));
    }
    check_limit(limit)?;
    let mut query = admin_audit_log::table
        .select(AuditEntry::as_select())
        .order((
            admin_audit_log::created_at.desc(),
            admin_audit_log::id.desc(),
        ))
        .into_boxed();
    if let Some(actor) = filter.actor {
        query = query.filter(admin_audit_log::actor_id.eq(actor));
    }
    if let Some(t) = &filter.entity_type {
        query = query.filter(admin_audit_log::entity_type.eq(t.clone()));
    }
    if let Some(id) = &filter.entity_id {
        query = query.filter(admin_audit_log::entity_id.eq(id.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(admin_audit_log::created_at.ge(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(admin_audit_log::created_at.lt(until));
    }
    if let Some(c) = after {
        query = query.filter(
            admin_audit_log::created_at
                .lt(c.created_at)
                .or(admin_audit_log::created_at
                    .eq(c.created_at)
                    .and(admin_audit_log::id.lt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &AuditEntry| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}
