//! `projects`: what a tenant's users build, listed newest first.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::functions::coalesce;
use crate::inline_limit::InlineLimitDsl;
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::projects;
use crate::{Conn, Error, ProjectId, Result, TenantId, UserId};

/// A row of `projects`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg))]
pub struct Project {
    /// Primary key.
    pub id: ProjectId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Who created it (cleared when that user is deleted).
    pub owner_id: Option<UserId>,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Free text, at most 2000 characters.
    pub description: Option<String>,
    /// The canvas version: +1 per saved canvas.
    pub canvas_version: i64,
    /// When it was archived (hidden from lists).
    pub archived_at: Option<DateTime<Utc>>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `create`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct NewProject {
    /// 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub name: String,
    /// At most 2000 characters.
    #[validate(length(max = 2000), custom(function = "crate::input::text"))]
    pub description: Option<String>,
}

/// Input of `rename`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct RenameProject {
    /// 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub name: String,
}

#[derive(Insertable)]
#[diesel(table_name = projects, treat_none_as_default_value = false)]
pub(crate) struct InsertProject<'a> {
    pub(crate) id: ProjectId,
    pub(crate) tenant_id: TenantId,
    pub(crate) owner_id: Option<UserId>,
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
}

/// Creates a project (canvas version 0) owned by `owner_id`, the server's
/// choice (the signed-in user), never a field of the client's input.
/// `NotFound` when the tenant or owner doesn't exist.
pub async fn create(
    conn: &mut Conn,
    tenant_id: TenantId,
    owner_id: Option<UserId>,
    input: &NewProject,
) -> Result<Project> {
    validate(input)?;
    diesel::insert_into(projects::table)
        .values(InsertProject {
            id: ProjectId::new(),
            tenant_id,
            owner_id,
            name: &input.name,
            description: input.description.as_deref(),
        })
        .returning(Project::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            Error::from(e)
                .not_found_on("projects_tenant_id_fkey", "tenant")
                .not_found_on("projects_owner_id_fkey", "user")
        })
}

/// The tenant's project with this id (archived or not).
pub async fn find(conn: &mut Conn, tenant_id: TenantId, id: ProjectId) -> Result<Project> {
    projects::table
        .find(id)
        .filter(projects::tenant_id.eq(tenant_id))
        .select(Project::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "project" })
}

/// Renames the tenant's project.
pub async fn rename(
    conn: &mut Conn,
    tenant_id: TenantId,
    id: ProjectId,
    input: &RenameProject,
) -> Result<Project> {
    validate(input)?;
    diesel::update(
        projects::table
            .find(id)
            .filter(projects::tenant_id.eq(tenant_id)),
    )
    .set(projects::name.eq(&input.name))
    .returning(Project::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound { entity: "project" })
}

/// Archives the tenant's project. Archiving twice keeps the first time.
pub async fn archive(conn: &mut Conn, tenant_id: TenantId, id: ProjectId) -> Result<Project> {
    diesel::update(
        projects::table
            .find(id)
            .filter(projects::tenant_id.eq(tenant_id)),
    )
    .set(projects::archived_at.eq(coalesce(projects::archived_at, Some(Utc::now()))))
    .returning(Project::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or(Error::NotFound { entity: "project" })
}

/// Filters of `list`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct ProjectFilter {
    /// Include archived projects too.
    #[serde(default)]
    pub include_archived: bool,
}

/// A page of the tenant's projects, newest first, after `after` (exclusive).
pub async fn list(
    conn: &mut Conn,
    tenant_id: TenantId,
    filter: &ProjectFilter,
    after: Option<Cursor<ProjectId>>,
    limit: i64,
) -> Result<Page<Project, ProjectId>> {
    validate(filter)?;
    check_limit(limit)?;
    let mut query = projects::table
        .filter(projects::tenant_id.eq(tenant_id))
        .select(Project::as_select())
        .order((projects::created_at.desc(), projects::id.desc()))
        .into_boxed();
    if !filter.include_archived {
        query = query.filter(projects::archived_at.is_null());
    }
    if let Some(after) = after {
        query = query.filter(
            projects::created_at
                .lt(after.created_at)
                .or(projects::created_at
                    .eq(after.created_at)
                    .and(projects::id.lt(after.id))),
        );
    }
    let rows = query.inline_limit(limit as u32 + 1).load(conn).await?;
    Ok(page_of(rows, limit, |p: &Project| Cursor {
        created_at: p.created_at,
        id: p.id,
    }))
}
