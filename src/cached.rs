//! `Cached`: lets PostgreSQL reuse the prepared statement of queries Diesel
//! would otherwise prepare afresh on every call.
//!
//! Diesel caches a prepared statement per connection only for queries it
//! can prove always produce the same SQL: it refuses for every `UPDATE`
//! (a changeset with `Option` fields changes shape), for upserts and for
//! `sql_query`. diesel-async then sends Parse/Describe and Bind/Execute as
//! two round trips and the server parses and plans the statement again, each
//! time: the cost that made writes trail hand-written prepared statements.
//!
//! A `Cached` query is keyed in the statement cache by its SQL text and bind
//! types (never by its Rust type), so a changeset that renders differently
//! simply gets its own entry, and the statement is prepared once per
//! connection and shape. Wrap only queries whose SQL text fully determines
//! their meaning, which is every query built with Diesel's DSL or a constant
//! `sql_query` string; never one whose text embeds values.

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A query whose prepared statement may be cached by its SQL text.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

// No static id: the cache keys these by SQL text and bind types.
impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

/// `.cached()` on any query.
pub trait CachedExt: Sized {
    /// Wraps the query so its prepared statement is reused (see the module docs).
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q> CachedExt for Q {}
