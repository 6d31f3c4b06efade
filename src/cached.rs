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
//!
//! `Cached` still writes out the whole SQL text on every call (twice: once
//! for the statement's telemetry shape, once for the connection), and
//! Diesel's query builder allocates for every quoted identifier: for the
//! claim's UPDATE with its subquery that was most of the client's work
//! (BENCHMARKS.md). A query whose text is the same on every call from one
//! place in the code, as most are, says so with `.fixed_sql()`: `FixedSql`
//! keeps its text per query type and call site, writes it in one piece, and
//! is cached in the statement cache by that text. What may not be
//! `.fixed_sql()`: a query whose text depends on its values at the same call
//! site (an `Option` field of a changeset that is skipped when `None`, an
//! `eq_any` over a list of varying length, a `sql_query` of a formatted
//! string, a boxed query built conditionally). Debug builds (every test)
//! render it again on every call and panic, naming the call site, if the
//! text differs from the kept one.

use std::panic::Location;

use diesel::QueryResult;
use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};

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

/// A query whose SQL text is fixed at its call site (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct FixedSql<Q> {
    query: Q,
    site: &'static Location<'static>,
}

/// Only a type of this module's: no other query's static id can be the
/// type `(Site, Q)`, so the kept texts of the two kinds never collide.
struct Site;

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for FixedSql<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    // What a connection calls for the outermost query's text.
    fn to_sql(&self, out: &mut PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        let key = (
            typeid::of::<(Site, Q)>(),
            std::ptr::from_ref(self.site) as usize,
        );
        let text = crate::render_once::kept_text(&self.query, key, backend)?;
        #[cfg(debug_assertions)]
        {
            let mut fresh = PgQueryBuilder::default();
            self.query.to_sql(&mut fresh, backend)?;
            assert_eq!(
                fresh.finish(),
                text,
                "the query at {} wrote different SQL than the first time: \
                 `.fixed_sql()` is only for a query whose text is the same on every \
                 call from one place (use `.cached()`)",
                self.site
            );
        }
        out.push_sql(text);
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id (a type's id cannot tell call sites apart): the statement
/// cache keys these by their (kept) text, and a query nested in another
/// gives the outer one no static id either.
impl<Q> QueryId for FixedSql<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for FixedSql<Q> {
    type SqlType = Q::SqlType;
}

/// `.fixed_sql()` on any query.
pub trait FixedSqlExt: Sized {
    /// Keeps this query's SQL text per type and call site (see the module
    /// docs): only for a query whose text never depends on its values.
    #[track_caller]
    fn fixed_sql(self) -> FixedSql<Self> {
        FixedSql {
            query: self,
            site: Location::caller(),
        }
    }
}

impl<Q> FixedSqlExt for Q {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_once::tests::sql_of;
    use crate::schema::users;
    use diesel::prelude::*;

    #[test]
    fn writes_what_the_query_writes_every_time() {
        for email in ["a@example.com", "b@example.com"] {
            let query = users::table
                .filter(users::email.eq(email))
                .select(users::id);
            assert_eq!(sql_of(&query.fixed_sql()), sql_of(&query));
        }
    }

    #[test]
    fn two_call_sites_of_one_type_keep_two_texts() {
        // One Rust type (`SqlQuery`), two texts: told apart by call site.
        let one = diesel::sql_query("SELECT 1").fixed_sql();
        let two = diesel::sql_query("SELECT 2").fixed_sql();
        assert_eq!(sql_of(&one), "SELECT 1");
        assert_eq!(sql_of(&two), "SELECT 2");
        assert_eq!(sql_of(&one), "SELECT 1");
    }

    #[test]
    #[should_panic(expected = "wrote different SQL than the first time")]
    fn a_text_that_changes_at_one_call_site_is_caught() {
        fn at_one_site(sql: &str) -> FixedSql<diesel::query_builder::SqlQuery> {
            diesel::sql_query(sql).fixed_sql()
        }
        sql_of(&at_one_site("SELECT 3"));
        sql_of(&at_one_site("SELECT 4"));
    }
}
