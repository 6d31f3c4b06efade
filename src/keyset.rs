//! Keyset pagination: a page ends with a cursor naming its last row's sort
//! key and id; the next page starts strictly after it. Unlike OFFSET, the
//! cost of a page does not grow with its depth (one index range read).
//! Every list function of the crate takes its page size through
//! `check_limit`, so one rule (1..=MAX_PAGE_SIZE) holds everywhere.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most rows a page may hold.
pub const MAX_PAGE_SIZE: i64 = 100;

/// The position after which the next page starts: the last row's
/// `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor<Id> {
    /// Sort key of the last row seen.
    pub created_at: DateTime<Utc>,
    /// Id of the last row seen (breaks ties between equal timestamps).
    pub id: Id,
}

/// One page of rows and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T, Id> {
    /// The rows, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<Cursor<Id>>,
}

/// `Error::Invalid` on `limit` unless it is 1..=MAX_PAGE_SIZE.
pub(crate) fn check_limit(limit: i64) -> Result<()> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(())
    } else {
        Err(Error::invalid(
            "limit",
            "range",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ))
    }
}

/// Builds a page from `limit + 1` fetched rows: the extra row only says
/// that another page exists.
pub(crate) fn page_of<T, Id: Copy>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> Cursor<Id>,
) -> Page<T, Id> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(&key) } else { None };
    Page { items: rows, next }
}
