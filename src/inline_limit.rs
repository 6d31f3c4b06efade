//! `LIMIT n` written into the SQL text instead of bound as a parameter.
//!
//! Diesel binds every limit (`... LIMIT $3`). When PostgreSQL builds the
//! generic plan of a prepared statement it cannot see a bound limit, so it
//! plans as if the query read a tenth of the rows it matches; that plan then
//! looks costlier than the custom plans built for the actual limit, and the
//! server keeps re-planning the statement on every execution. Measured with
//! the server log on `scripts/bench`: the Bind step (where that planning
//! happens) took a median 74 µs for the claim UPDATE and 49 µs for the recent
//! executions list, against 8 µs for the same statements hand-written with a
//! literal `LIMIT 1` / `LIMIT 10`, which keep one generic plan.
//!
//! `.inline_limit(n)` renders the limit as a literal. Each distinct `n` is
//! its own statement text and so its own prepared statement (keyed by SQL
//! text in the statement cache, never by Rust type): use it where the limit
//! is a constant or validated into a small range, such as a page size.
//!
//! PostgreSQL accepts the limit after a locking clause
//! (`... FOR UPDATE SKIP LOCKED LIMIT 1`), so this wraps queries that lock.
//! The wrapped query must not have a limit or offset of its own.
//!
//! Both backends: the same `.inline_limit(n)` compiles in both arms of
//! `any_run!` (SQLite has no generic plans to protect, but one query text for
//! both keeps a portable function written once).

use diesel::QueryResult;
use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression, ValidGrouping, is_aggregate};
use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::sql_types::IntoNullable;
use diesel::sqlite::Sqlite;

/// `query LIMIT n`, with `n` in the SQL text.
#[derive(Debug, Clone, Copy)]
pub struct InlineLimit<Q> {
    query: Q,
    limit: u32,
}

impl<Q> InlineLimit<Q> {
    fn walk<'b, DB: Backend>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()>
    where
        Q: QueryFragment<DB>,
    {
        self.query.walk_ast(pass.reborrow())?;
        // A u32 rendered by Rust: digits only, never caller text.
        pass.push_sql(" LIMIT ");
        pass.push_sql(&self.limit.to_string());
        Ok(())
    }
}

impl<Q: QueryFragment<Pg> + QueryId> QueryFragment<Pg> for InlineLimit<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.walk(pass)
    }

    // What a connection calls for the outermost query's text: a wrapped
    // query whose type renders one text (a static id, safe to cache) is
    // written from the text kept per type (`render_once`), not walked.
    fn to_sql(&self, out: &mut PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        match Q::query_id() {
            Some(id) if self.query.is_safe_to_cache_prepared(backend)? => {
                out.push_sql(crate::render_once::text_of(&self.query, id, backend)?);
            }
            _ => self.query.to_sql(out, backend)?,
        }
        out.push_sql(" LIMIT ");
        out.push_sql(&self.limit.to_string());
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        self.query.is_safe_to_cache_prepared(backend)
    }
}

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for InlineLimit<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.walk(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &Sqlite) -> QueryResult<bool> {
        self.query.is_safe_to_cache_prepared(backend)
    }
}

// No static id: one Rust type renders a different SQL text per limit, so
// the statement cache must key these by their text.
impl<Q> QueryId for InlineLimit<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for InlineLimit<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> InlineLimit<Q> {
    /// The query as a scalar subquery, `(SELECT ... LIMIT n)`, to compare a
    /// column with; NULL when it finds no row. It must select one column and
    /// must not refer to the outer query's tables (use an alias for the same
    /// table), which the types cannot check.
    pub fn single_value(self) -> ScalarSubquery<Self> {
        ScalarSubquery(self)
    }
}

/// `.inline_limit(n)` on any query.
pub trait InlineLimitDsl: Sized {
    /// Limits the query to `n` rows with a literal `LIMIT n` (see the module docs).
    fn inline_limit(self, n: u32) -> InlineLimit<Self> {
        InlineLimit {
            query: self,
            limit: n,
        }
    }
}

impl<Q> InlineLimitDsl for Q {}

/// `(query)` as an expression of the query's one column, made nullable.
#[derive(Debug, Clone, Copy)]
pub struct ScalarSubquery<Q>(Q);

impl<Q> Expression for ScalarSubquery<Q>
where
    Q: Query,
    Q::SqlType: IntoNullable,
    <Q::SqlType as IntoNullable>::Nullable: diesel::expression::TypedExpressionType,
{
    type SqlType = <Q::SqlType as IntoNullable>::Nullable;
}

impl<Q: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for ScalarSubquery<Q> {
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        pass.push_sql("(");
        self.0.walk_ast(pass.reborrow())?;
        pass.push_sql(")");
        Ok(())
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        self.0.is_safe_to_cache_prepared(backend)
    }
}

impl<Q> QueryId for ScalarSubquery<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

// Self-contained (uncorrelated), so it may appear in a query on any table.
impl<Q, QS> AppearsOnTable<QS> for ScalarSubquery<Q> where Self: Expression {}

impl<Q, GroupBy> ValidGrouping<GroupBy> for ScalarSubquery<Q> {
    type IsAggregate = is_aggregate::Never;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_once::tests::sql_of as to_sql;
    use crate::schema::users;
    use diesel::prelude::*;

    /// The text diesel's walk of the query writes, without the `to_sql`
    /// shortcut: what the shortcut must equal.
    fn walked<T: QueryFragment<Pg>>(query: &T) -> String {
        diesel::debug_query::<Pg, _>(&Walked(query))
            .to_string()
            .split(" -- binds")
            .next()
            .unwrap()
            .to_owned()
    }

    struct Walked<'a, T>(&'a T);

    impl<T: QueryFragment<Pg>> QueryFragment<Pg> for Walked<'_, T> {
        fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            self.0.walk_ast(pass)
        }
    }

    #[test]
    fn the_text_kept_per_type_is_what_the_walk_writes() {
        let email = "a@example.com".to_owned();
        for limit in [1, 10, 1, 100] {
            // A static id: written from the text kept for the type.
            let query = users::table
                .filter(users::email.eq(&email))
                .filter(users::name.is_not_null())
                .select(users::id)
                .inline_limit(limit);
            assert_eq!(to_sql(&query), walked(&query));
            assert!(to_sql(&query).ends_with(&format!(" LIMIT {limit}")));
            // A boxed query (no static id) is walked, binds numbered alike.
            let boxed = users::table
                .filter(users::email.eq(&email))
                .select(users::id)
                .into_boxed()
                .inline_limit(limit);
            assert_eq!(to_sql(&boxed), walked(&boxed));
        }
    }
}
