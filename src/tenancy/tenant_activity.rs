//! `tenant_activity`: what happened in a tenant. Append-only: the crate
//! offers no update or delete; rows go only with their tenant.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::schema::tenant_activity;
use crate::{Conn, Error, Result, TenantActivityId, TenantId, UserId};

/// A row of `tenant_activity`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = tenant_activity, check_for_backend(diesel::pg::Pg))]
pub struct TenantActivity {
    /// Primary key.
    pub id: TenantActivityId,
    /// The tenant it happened in.
    pub tenant_id: TenantId,
    /// Who did it (None for the system, or once the user is deleted).
    pub actor_id: Option<UserId>,
    /// What happened, e.g. `member.added`.
    pub action: String,
    /// What it happened to, e.g. a user or invite id.
    pub subject: Option<String>,
    /// Free-form details.
    pub details: serde_json::Value,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// Input of `record`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[validate(schema(function = "details_json", skip_on_field_errors = false))]
pub struct NewActivity {
    /// Who did it.
    pub actor_id: Option<UserId>,
    /// What happened, 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub action: String,
    /// What it happened to, at most 200 characters.
    #[validate(length(max = 200), custom(function = "crate::input::line"))]
    pub subject: Option<String>,
    /// Free-form details (a JSON object).
    pub details: serde_json::Value,
}

fn details_json(activity: &NewActivity) -> Result<(), validator::ValidationError> {
    crate::input::json_field("details", &activity.details, crate::input::Shape::Object)
}

#[derive(Insertable)]
#[diesel(table_name = tenant_activity, treat_none_as_default_value = false)]
pub(crate) struct InsertActivity<'a> {
    pub(crate) id: TenantActivityId,
    pub(crate) tenant_id: TenantId,
    pub(crate) actor_id: Option<UserId>,
    pub(crate) action: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) details: &'a serde_json::Value,
}

/// Records an activity in `tenant`. `NotFound` when the tenant (or actor) doesn't exist.
pub async fn record(
    conn: &mut Conn,
    tenant: TenantId,
    input: &NewActivity,
) -> Result<TenantActivity> {
    validate(input)?;
    append(
        conn,
        tenant,
        input.actor_id,
        &input.action,
        input.subject.as_deref(),
        &input.details,
    )
    .await
}

/// The unvalidated insert the tenancy functions use for their own entries.
pub(crate) async fn append(
    conn: &mut Conn,
    tenant: TenantId,
    actor: Option<UserId>,
    action: &str,
    subject: Option<&str>,
    details: &serde_json::Value,
) -> Result<TenantActivity> {
    diesel::insert_into(tenant_activity::table)
        .values(InsertActivity {
            id: TenantActivityId::new(),
            tenant_id: tenant,
            actor_id: actor,
            action,
            subject,
            details,
        })
        .returning(TenantActivity::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            Error::from(e)
                .not_found_on("tenant_activity_tenant_id_fkey", "tenant")
                .not_found_on("tenant_activity_actor_id_fkey", "user")
        })
}

/// A page of `tenant`'s activity, newest first, after `after` (exclusive).
pub async fn list(
    conn: &mut Conn,
    tenant: TenantId,
    after: Option<Cursor<TenantActivityId>>,
    limit: i64,
) -> Result<Page<TenantActivity, TenantActivityId>> {
    check_limit(limit)?;
    let mut query = tenant_activity::table
        .filter(tenant_activity::tenant_id.eq(tenant))
        .select(TenantActivity::as_select())
        .order((
            tenant_activity::created_at.desc(),
            tenant_activity::id.desc(),
        ))
        .into_boxed();
    if let Some(c) = after {
        query = query.filter(
            tenant_activity::created_at
                .lt(c.created_at)
                .or(tenant_activity::created_at
                    .eq(c.created_at)
                    .and(tenant_activity::id.lt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &TenantActivity| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}
