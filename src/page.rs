//! Keyset pagination helpers shared by list functions.
//!
//! A list function takes the cursor of the last row the caller saw (its sort
//! key and id) and a limit; it never uses OFFSET, so a page costs the same
//! however deep it is and rows inserted meanwhile don't shift later pages.

use crate::{Error, Result};

/// The largest page a list function returns.
pub const MAX_LIMIT: i64 = 200;

/// Rejects a page size outside 1..=MAX_LIMIT as `Error::Invalid { limit }`.
pub(crate) fn check_limit(limit: i64) -> Result<()> {
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(Error::invalid(
            "limit",
            "range",
            format!("must be between 1 and {MAX_LIMIT}"),
        ))
    }
}
