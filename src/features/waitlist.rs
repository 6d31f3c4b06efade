//! `waitlist`: people waiting for access, by email. Joining is idempotent
//! and case-insensitive: "Ann@x.io" and "ann@x.io" are one entry.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::functions::lower;
use crate::render_once::RenderOnceDsl;
use crate::schema::waitlist;
use crate::{Conn, Error, Result, WaitlistEntryId};

/// A row of `waitlist`.
#[derive(
    Debug, Clone, PartialEq, Eq, Queryable, QueryableByName, Selectable, Identifiable, Serialize,
)]
#[diesel(table_name = waitlist, check_for_backend(diesel::pg::Pg))]
pub struct WaitlistEntry {
    /// Primary key.
    pub id: WaitlistEntryId,
    /// The address as first typed.
    pub email: String,
    /// Join order (increasing, may have gaps).
    pub position: i64,
    /// When access was granted.
    pub invited_at: Option<DateTime<Utc>>,
    /// When the address joined.
    pub created_at: DateTime<Utc>,
}

/// Input of `join`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct JoinWaitlist {
    /// A valid address, at most 254 characters.
    #[validate(email, length(max = 254))]
    pub email: String,
}

/// Outcome of `join`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The entry (new, or the one that already existed).
    pub entry: WaitlistEntry,
    /// Whether this call created it.
    pub created: bool,
}

#[derive(Insertable)]
#[diesel(table_name = waitlist, treat_none_as_default_value = false)]
pub(crate) struct InsertEntry<'a> {
    pub(crate) id: WaitlistEntryId,
    pub(crate) email: &'a str,
}

/// Adds the address to the waitlist, or returns its existing entry.
pub async fn join(conn: &mut Conn, input: &JoinWaitlist) -> Result<Joined> {
    validate(input)?;
    // The only unique rule an insert can hit is lower(email) (id and
    // position are fresh), so DO NOTHING without a target means "already
    // there"; a concurrent joiner waits on the index and then finds the row.
    let inserted = diesel::insert_into(waitlist::table)
        .values(InsertEntry {
            id: WaitlistEntryId::new(),
            email: &input.email,
        })
        .on_conflict_do_nothing()
        .returning(WaitlistEntry::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(entry) = inserted {
        return Ok(Joined {
            entry,
            created: true,
        });
    }
    Ok(Joined {
        entry: find_by_email(conn, &input.email).await?,
        created: false,
    })
}

/// The entry of this address, compared case-insensitively.
pub async fn find_by_email(conn: &mut Conn, email: &str) -> Result<WaitlistEntry> {
    if email.contains('\0') {
        // Nothing stored contains NUL (PostgreSQL refuses it in text).
        return Err(Error::NotFound {
            entity: "waitlist entry",
        });
    }
    waitlist::table
        .filter(lower(waitlist::email).eq(lower(email)))
        .select(WaitlistEntry::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound {
            entity: "waitlist entry",
        })
}

/// Invites the `count` (1..=1000) earliest uninvited entries and returns
/// them in join order. Concurrent callers invite disjoint entries.
pub async fn invite_next(conn: &mut Conn, count: i64) -> Result<Vec<WaitlistEntry>> {
    if !(1..=1000).contains(&count) {
        return Err(Error::invalid(
            "count",
            "range",
            "must be between 1 and 1000",
        ));
    }
    let mut rows: Vec<WaitlistEntry> = diesel::sql_query(
        "UPDATE waitlist SET invited_at = now()
         WHERE id IN (SELECT id FROM waitlist WHERE invited_at IS NULL
                      ORDER BY position LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING id, email, position, invited_at, created_at",
    )
    .bind::<diesel::sql_types::BigInt, _>(count)
    .load(conn)
    .await?;
    rows.sort_by_key(|e| e.position);
    Ok(rows)
}
