//! `user_activity_daily`: per user and day, how many actions the user took.
//! Recording is one upsert that adds to the stored count, so concurrent
//! increments never lose each other.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::schema::user_activity_daily as activity;
use crate::{Conn, Error, Result, UserId};

/// A row of `user_activity_daily`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = activity, check_for_backend(diesel::pg::Pg))]
pub struct UserActivityDay {
    /// The user.
    pub user_id: UserId,
    /// The (UTC) day.
    pub day: NaiveDate,
    /// Actions recorded that day.
    pub count: i64,
}

/// Input of `record_activity`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct ActivityIncrement {
    /// The day to count on.
    pub day: NaiveDate,
    /// How much to add: 1 to 1,000,000.
    #[validate(range(min = 1, max = 1_000_000))]
    pub by: i64,
}

#[derive(Insertable)]
#[diesel(table_name = activity, treat_none_as_default_value = false)]
pub(crate) struct InsertActivity {
    pub(crate) user_id: UserId,
    pub(crate) day: NaiveDate,
    pub(crate) count: i64,
}

/// Adds `input.by` to the user's count for `input.day`; returns the new count.
pub async fn record_activity(
    conn: &mut Conn,
    user_id: UserId,
    input: &ActivityIncrement,
) -> Result<i64> {
    validate(input)?;
    diesel::insert_into(activity::table)
        .values(InsertActivity {
            user_id,
            day: input.day,
            count: input.by,
        })
        .on_conflict((activity::user_id, activity::day))
        .do_update()
        .set(activity::count.eq(activity::count + excluded(activity::count)))
        .returning(activity::count)
        .get_result(conn)
        .await
        .map_err(|e| Error::from(e).not_found_on("user_activity_daily_user_id_fkey", "user"))
}

/// The longest range `activity_between` answers, in days: its result is a
/// `Vec` of at most one row per day, so the range is its bound.
pub const MAX_RANGE_DAYS: i64 = 366;

/// The user's days from `from` to `to` (inclusive, at most
/// `MAX_RANGE_DAYS` days) that have activity, oldest first.
pub async fn activity_between(
    conn: &mut Conn,
    user_id: UserId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<UserActivityDay>> {
    if from > to {
        return Err(Error::invalid("to", "range", "must not be before `from`"));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(Error::invalid(
            "to",
            "range",
            format!("must be at most {MAX_RANGE_DAYS} days after `from`, inclusive"),
        ));
    }
    Ok(activity::table
        .filter(activity::user_id.eq(user_id))
        .filter(activity::day.between(from, to))
        .order(activity::day.asc())
        .select(UserActivityDay::as_select())
        .load(conn)
        .await?)
}
