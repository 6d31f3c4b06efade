//! `.render_once()`: a query's SQL text built once per query type and
//! process, instead of on every execution.
//!
//! diesel-async writes out the whole SQL text of every query it runs, even
//! when the prepared statement is already cached under the query's Rust type,
//! and Diesel's PostgreSQL query builder allocates a new string for every
//! quoted identifier (`"users"."email"`). For the seven-column point lookup
//! `auth::users::find` on a pooled connection that rendering was about
//! 9,700 of the client's 34,200 instructions per lookup (callgrind), against
//! 17,200 for the whole lookup on the raw driver: the largest single overhead
//! the crate had over hand-written SQL (see BENCHMARKS.md).
//!
//! Diesel's own statement cache rests on the rule this reuses: a query whose
//! type has a static query id, and which says it is safe to cache, renders the
//! same text every time. `RenderOnce` keeps that text per type and writes it
//! in one piece. Whether this instance is safe to cache is still asked every
//! time, as Diesel does: a fragment may write different text for different
//! values (`DEFAULT` for a `None`, say) and then reports itself unsafe; a query
//! that is not safe, or that has no static id, is rendered normally.
//!
//! Only the outermost query benefits: nested inside another query it is
//! walked like any fragment (correct, just not faster).

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{OnceLock, RwLock};

use diesel::QueryResult;
use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};

/// A query whose SQL text is rendered once per type (see the module docs).
#[derive(Debug, Clone)]
pub struct RenderOnce<Q> {
    query: Q,
    /// `is_safe_to_cache_prepared` of this instance, once asked: the
    /// connection asks before it asks for the text, and the answer is a
    /// function of the query alone, so the walk is done once per execution.
    safe: Cell<Option<bool>>,
}

/// A `TypeId` is already a hash; feeding it through SipHash on every query
/// would cost more than the lookup it serves.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_ne_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a kept text is kept under: the query's type (its static query id,
/// or for `FixedSql` its own type with lifetimes erased) and, for
/// `FixedSql`, the address of its call site's `Location` (0 otherwise; an
/// address, because hashing the location would hash its file name).
pub(crate) type TextKey = (TypeId, usize);

type TextByType = HashMap<TextKey, &'static str, BuildHasherDefault<TypeIdHasher>>;

/// Every rendered text, one per query type (and call site) the program
/// runs: a number fixed at compile time, so the texts live as long as the
/// process.
fn shared() -> &'static RwLock<TextByType> {
    static SHARED: OnceLock<RwLock<TextByType>> = OnceLock::new();
    SHARED.get_or_init(Default::default)
}

thread_local! {
    /// This thread's view of `shared()`: lookups without touching the lock,
    /// whose counter would otherwise bounce between cores on every query.
    static LOCAL: RefCell<TextByType> = RefCell::default();
}

impl<Q> RenderOnce<Q>
where
    Q: QueryFragment<Pg> + QueryId,
{
    fn is_safe(&self, backend: &Pg) -> QueryResult<bool> {
        if let Some(safe) = self.safe.get() {
            return Ok(safe);
        }
        let safe = self.query.is_safe_to_cache_prepared(backend)?;
        self.safe.set(Some(safe));
        Ok(safe)
    }
}

/// The SQL text of `query`, whose type has the static id `id` and which is
/// safe to cache (so its type renders one text): rendered the first time
/// in the process, then looked up. Also what `InlineLimit` writes before its
/// `LIMIT n`.
pub(crate) fn text_of<Q: QueryFragment<Pg>>(
    query: &Q,
    id: TypeId,
    backend: &Pg,
) -> QueryResult<&'static str> {
    kept_text(query, (id, 0), backend)
}

/// The text kept under `key` for `query`, rendered the first time.
pub(crate) fn kept_text<Q: QueryFragment<Pg>>(
    query: &Q,
    key: TextKey,
    backend: &Pg,
) -> QueryResult<&'static str> {
    if let Some(text) = LOCAL.with(|local| local.borrow().get(&key).copied()) {
        return Ok(text);
    }
    let known = shared()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .copied();
    let text = match known {
        Some(text) => text,
        None => {
            let mut fresh = PgQueryBuilder::default();
            query.to_sql(&mut fresh, backend)?;
            let mut all = shared().write().unwrap_or_else(|e| e.into_inner());
            // Another thread may have rendered it meanwhile: keep one copy.
            *all.entry(key)
                .or_insert_with(|| Box::leak(fresh.finish().into_boxed_str()))
        }
    };
    LOCAL.with(|local| local.borrow_mut().insert(key, text));
    Ok(text)
}

impl<Q> QueryFragment<Pg> for RenderOnce<Q>
where
    Q: QueryFragment<Pg> + QueryId,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }

    // What a connection calls for the outermost query's text.
    fn to_sql(&self, out: &mut PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        match Q::query_id() {
            Some(id) if self.is_safe(backend)? => {
                out.push_sql(text_of(&self.query, id, backend)?);
                Ok(())
            }
            _ => self.query.to_sql(out, backend),
        }
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> QueryResult<bool> {
        self.is_safe(backend)
    }
}

/// On SQLite (the portable domains' second backend) the query renders as
/// usual: the text is built on the caller's thread while the statement runs
/// on a blocking one, and Diesel's SQLite statement cache is keyed by type.
impl<Q> QueryFragment<diesel::sqlite::Sqlite> for RenderOnce<Q>
where
    Q: QueryFragment<diesel::sqlite::Sqlite>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        self.query.walk_ast(pass)
    }
}

impl<Q: QueryId> QueryId for RenderOnce<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: Query> Query for RenderOnce<Q> {
    type SqlType = Q::SqlType;
}

/// `.render_once()` on any query.
pub trait RenderOnceDsl: Sized {
    /// Builds this query's SQL text once per type (see the module docs).
    fn render_once(self) -> RenderOnce<Self> {
        RenderOnce {
            query: self,
            safe: Cell::new(None),
        }
    }
}

impl<Q> RenderOnceDsl for Q {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::users;
    use diesel::prelude::*;

    /// The text a connection asks the query for (`to_sql`).
    pub(crate) fn sql_of<T: QueryFragment<Pg>>(query: &T) -> String {
        let mut out = PgQueryBuilder::default();
        query.to_sql(&mut out, &Pg).unwrap();
        out.finish()
    }

    #[test]
    fn renders_what_diesel_renders_every_time() {
        let id = uuid::Uuid::now_v7();
        let plain = users::table.filter(users::id.eq(id)).select(users::email);
        let expected = sql_of(&plain);
        for _ in 0..3 {
            let once = users::table
                .filter(users::id.eq(id))
                .select(users::email)
                .render_once();
            assert_eq!(sql_of(&once), expected);
        }
        // From another thread too (its own local view of the shared texts).
        let from_thread = std::thread::spawn(move || {
            sql_of(
                &users::table
                    .filter(users::id.eq(id))
                    .select(users::email)
                    .render_once(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(from_thread, expected);
    }

    /// Writes `$1`, or `DEFAULT` for `None` (and then says it is unsafe to
    /// cache), as Diesel's insert values do; its type has a static id, so
    /// only the per-instance check keeps its two texts apart.
    #[derive(Debug, Clone, Copy, QueryId)]
    struct MaybeDefault(Option<i32>);

    impl QueryFragment<Pg> for MaybeDefault {
        fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            pass.push_sql("SELECT ");
            match &self.0 {
                Some(value) => pass.push_bind_param::<diesel::sql_types::Integer, _>(value)?,
                None => {
                    pass.unsafe_to_cache_prepared();
                    pass.push_sql("DEFAULT");
                }
            }
            Ok(())
        }
    }

    #[test]
    fn instances_that_are_not_safe_to_cache_are_rendered_each_time() {
        const { assert!(MaybeDefault::HAS_STATIC_QUERY_ID) };
        for _ in 0..2 {
            assert_eq!(sql_of(&MaybeDefault(Some(1)).render_once()), "SELECT $1");
            assert_eq!(sql_of(&MaybeDefault(None).render_once()), "SELECT DEFAULT");
        }
    }
}
