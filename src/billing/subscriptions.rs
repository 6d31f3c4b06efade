//! `subscriptions`: a user's or a tenant's plan at the payment provider.
//! Rows are written only by applying provider events
//! (`subscription_events::apply_event`); this module reads them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::subscriptions;
use crate::{Conn, Error, Result, SubscriptionId, TenantId, UserId};

crate::sql_enum! {
    /// The provider's subscription status (Stripe's values).
    pub enum SubscriptionStatus: crate::schema::sql_types::SubscriptionStatus {
        /// First payment not made yet.
        Incomplete => "incomplete",
        /// First payment never made; the subscription is dead.
        IncompleteExpired => "incomplete_expired",
        /// In a free trial.
        Trialing => "trialing",
        /// Paid and current.
        Active => "active",
        /// A renewal payment failed; retrying.
        PastDue => "past_due",
        /// Ended.
        Canceled => "canceled",
        /// Retries exhausted, not canceled.
        Unpaid => "unpaid",
        /// Paused by the customer or the merchant.
        Paused => "paused",
    }
}

/// A row of `subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = subscriptions, check_for_backend(diesel::pg::Pg))]
pub struct Subscription {
    /// Primary key.
    pub id: SubscriptionId,
    /// The owning user (exactly one of user and tenant is set).
    pub user_id: Option<UserId>,
    /// The owning tenant.
    pub tenant_id: Option<TenantId>,
    /// The provider's customer id (`cus_...`).
    pub provider_customer_id: String,
    /// The provider's subscription id (`sub_...`), unique.
    pub provider_subscription_id: String,
    /// The plan (price or product key).
    pub plan: String,
    /// The provider's status.
    pub status: SubscriptionStatus,
    /// End of the paid period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at `current_period_end`.
    pub cancel_at_period_end: bool,
    /// Provider timestamp of the last event applied to this row.
    pub last_event_at: DateTime<Utc>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Who pays for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// A single user.
    User(UserId),
    /// A tenant (organisation).
    Tenant(TenantId),
}

/// The subscription as a provider event describes it.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
pub struct SubscriptionState {
    /// Who pays (used when the subscription is first seen).
    pub owner: Owner,
    /// 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub provider_customer_id: String,
    /// 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub provider_subscription_id: String,
    /// 1 to 64 characters.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub plan: String,
    /// The provider's status.
    pub status: SubscriptionStatus,
    /// End of the paid period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at `current_period_end`.
    pub cancel_at_period_end: bool,
}

/// The subscription with this provider id. `NotFound { subscription }`
/// when it is unknown.
pub async fn find_by_provider_id(
    conn: &mut Conn,
    provider_subscription_id: &str,
) -> Result<Subscription> {
    if provider_subscription_id.contains('\0') {
        return Err(Error::NotFound {
            entity: "subscription",
        });
    }
    subscriptions::table
        .filter(subscriptions::provider_subscription_id.eq(provider_subscription_id))
        .select(Subscription::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "subscription",
        })
}

/// A page of the user's subscriptions, newest first, after `after`
/// (exclusive); `limit` 1..=100.
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: UserId,
    after: Option<Cursor<SubscriptionId>>,
    limit: i64,
) -> Result<Page<Subscription, SubscriptionId>> {
    list_where(conn, Owner::User(user_id), after, limit).await
}

/// A page of the tenant's subscriptions, newest first, after `after`
/// (exclusive); `limit` 1..=100.
pub async fn list_for_tenant(
    conn: &mut Conn,
    tenant_id: TenantId,
    after: Option<Cursor<SubscriptionId>>,
    limit: i64,
) -> Result<Page<Subscription, SubscriptionId>> {
    list_where(conn, Owner::Tenant(tenant_id), after, limit).await
}

/// The page query of `list_for_user` and `list_for_tenant`: newest first,
/// strictly before the cursor.
async fn list_where(
    conn: &mut Conn,
    owner: Owner,
    after: Option<Cursor<SubscriptionId>>,
    limit: i64,
) -> Result<Page<Subscription, SubscriptionId>> {
    check_limit(limit)?;
    let mut query = subscriptions::table
        .order((subscriptions::created_at.desc(), subscriptions::id.desc()))
        .select(Subscription::as_select())
        .into_boxed();
    query = match owner {
        Owner::User(user) => query.filter(subscriptions::user_id.eq(user)),
        Owner::Tenant(tenant) => query.filter(subscriptions::tenant_id.eq(tenant)),
    };
    if let Some(c) = after {
        query = query.filter(
            subscriptions::created_at
                .lt(c.created_at)
                .or(subscriptions::created_at
                    .eq(c.created_at)
                    .and(subscriptions::id.lt(c.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |r: &Subscription| Cursor {
        created_at: r.created_at,
        id: r.id,
    }))
}
