//! `todos`: a user's task, optionally inside a tenant. Every function but
//! `list_for_tenant` takes the owner's id, so a user never reads or changes
//! another user's todos; `list_for_tenant` shows a tenant's todos to its
//! members.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{tenant_members, todos};
use crate::{Conn, Error, Result, TenantId, TodoId, UserId};

/// A row of `todos`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = todos, check_for_backend(diesel::pg::Pg))]
pub struct Todo {
    /// Primary key.
    pub id: TodoId,
    /// The owner.
    pub user_id: UserId,
    /// The tenant it belongs to, if any.
    pub tenant_id: Option<TenantId>,
    /// 1 to 255 characters.
    pub title: String,
    /// At most 1000 characters.
    pub description: Option<String>,
    /// Whether it is done.
    pub completed: bool,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `create`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct CreateTodo {
    /// 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub title: String,
    /// At most 1000 characters.
    #[validate(length(max = 1000), custom(function = "crate::input::text"))]
    pub description: Option<String>,
    /// The tenant it belongs to, if any: one the user is a member of.
    pub tenant_id: Option<TenantId>,
}

/// Input of `update`: `None` leaves a field alone; `Some(None)` clears the
/// description.
#[derive(Debug, Clone, Default, Deserialize, Validate, AsChangeset)]
#[diesel(table_name = todos)]
pub struct TodoPatch {
    /// New title, 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub title: Option<String>,
    /// New description (at most 1000 characters) or `Some(None)` to clear it.
    #[validate(length(max = 1000), custom(function = "crate::input::text"))]
    pub description: Option<Option<String>>,
    /// Done or not.
    pub completed: Option<bool>,
}

impl TodoPatch {
    fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.completed.is_none()
    }
}

#[derive(Insertable)]
#[diesel(table_name = todos, treat_none_as_default_value = false)]
pub(crate) struct InsertTodo<'a> {
    pub(crate) id: TodoId,
    pub(crate) user_id: UserId,
    pub(crate) tenant_id: Option<TenantId>,
    pub(crate) title: &'a str,
    pub(crate) description: Option<&'a str>,
}

/// Creates a todo for `user_id`. `NotFound` when the user does not exist,
/// and `NotFound { tenant }` when `input.tenant_id` is not a tenant the user
/// is a member of (whether it exists is not revealed).
pub async fn create(conn: &mut Conn, user_id: UserId, input: &CreateTodo) -> Result<Todo> {
    validate(input)?;
    if let Some(tenant_id) = input.tenant_id {
        // Checked only for tenant todos: a personal todo (the common case)
        // stays one statement.
        let member: bool = diesel::select(diesel::dsl::exists(
            tenant_members::table
                .filter(tenant_members::tenant_id.eq(tenant_id))
                .filter(tenant_members::user_id.eq(user_id)),
        ))
        .get_result(conn)
        .await?;
        if !member {
            return Err(Error::NotFound { entity: "tenant" });
        }
    }
    diesel::insert_into(todos::table)
        .values(InsertTodo {
            id: TodoId::new(),
            user_id,
            tenant_id: input.tenant_id,
            title: &input.title,
            description: input.description.as_deref(),
        })
        .returning(Todo::as_returning())
        .render_once()
        .get_result(conn)
        .await
        .map_err(|e| {
            Error::from(e)
                .not_found_on("todos_user_id_fkey", "user")
                .not_found_on("todos_tenant_id_fkey", "tenant")
        })
}

/// The todo `id` of `user_id`.
pub async fn find(conn: &mut Conn, user_id: UserId, id: TodoId) -> Result<Todo> {
    todos::table
        .find(id)
        .filter(todos::user_id.eq(user_id))
        .select(Todo::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "todo" })
}

/// A page of `user_id`'s todos, newest first, starting after `after`.
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: UserId,
    after: Option<Cursor<TodoId>>,
    limit: i64,
) -> Result<Page<Todo, TodoId>> {
    page_where(
        conn,
        Box::new(todos::user_id.eq(user_id).nullable()),
        after,
        limit,
    )
    .await
}

/// A page of `tenant_id`'s todos (of every member), newest first, starting
/// after `after` (`todos_tenant_created_idx`). Under row-level security the
/// context's tenant must be `tenant_id` (else the page is empty).
pub async fn list_for_tenant(
    conn: &mut Conn,
    tenant_id: TenantId,
    after: Option<Cursor<TodoId>>,
    limit: i64,
) -> Result<Page<Todo, TodoId>> {
    page_where(conn, Box::new(todos::tenant_id.eq(tenant_id)), after, limit).await
}

/// A page of the todos `owner` selects, newest first, starting after
/// `after`: the keyset both lists share.
async fn page_where(
    conn: &mut Conn,
    owner: Box<dyn BoxableExpression<todos::table, Pg, SqlType = Nullable<Bool>>>,
    after: Option<Cursor<TodoId>>,
    limit: i64,
) -> Result<Page<Todo, TodoId>> {
    check_limit(limit)?;
    let mut query = todos::table
        .filter(owner)
        .select(Todo::as_select())
        .order((todos::created_at.desc(), todos::id.desc()))
        .into_boxed();
    if let Some(c) = after {
        // (created_at, id) < cursor, written so the index range starts at
        // created_at <= cursor.
        query = query
            .filter(todos::created_at.le(c.created_at))
            .filter(todos::created_at.lt(c.created_at).or(todos::id.lt(c.id)));
    }
    let rows = query.inline_limit((limit + 1) as u32).load(conn).await?;
    Ok(page_of(rows, limit, |t: &Todo| Cursor {
        created_at: t.created_at,
        id: t.id,
    }))
}

/// Changes the fields given in `patch`; returns the updated row.
pub async fn update(
    conn: &mut Conn,
    user_id: UserId,
    id: TodoId,
    patch: &TodoPatch,
) -> Result<Todo> {
    validate(patch)?;
    if patch.is_empty() {
        return find(conn, user_id, id).await;
    }
    diesel::update(todos::table.find(id).filter(todos::user_id.eq(user_id)))
        .set(patch)
        .returning(Todo::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "todo" })
}

/// Deletes the todo `id` of `user_id`.
pub async fn delete(conn: &mut Conn, user_id: UserId, id: TodoId) -> Result<()> {
    let n = diesel::delete(todos::table.find(id).filter(todos::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "todo" });
    }
    Ok(())
}
