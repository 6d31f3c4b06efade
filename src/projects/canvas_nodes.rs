//! `canvas_nodes`: the nodes of a project's visual editor canvas.
//!
//! A canvas is saved whole: one transaction bumps the project's
//! `canvas_version` (only if it still is the version the editor loaded),
//! upserts the sent nodes and deletes the ones no longer sent. Of two
//! editors saving against the same version, one wins and the other gets
//! `Error::Stale`: nothing is lost silently.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::pg::upsert::excluded;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::error::{FieldError, InvalidInput, validate};
use crate::schema::{canvas_nodes, projects};
use crate::{CanvasNodeId, Conn, Error, ProjectId, Result, TenantId};

/// A row of `canvas_nodes`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = canvas_nodes, check_for_backend(diesel::pg::Pg))]
pub struct CanvasNode {
    /// Primary key.
    pub id: CanvasNodeId,
    /// The project whose canvas it is on.
    pub project_id: ProjectId,
    /// The editor's id of the node, unique in the project.
    pub node_id: String,
    /// What kind of node it is.
    pub node_type: String,
    /// Horizontal position.
    pub position_x: f64,
    /// Vertical position.
    pub position_y: f64,
    /// Width, when the editor fixed one.
    pub width: Option<f64>,
    /// Height, when the editor fixed one.
    pub height: Option<f64>,
    /// The node's own data.
    pub data: Value,
    /// When the node was first saved.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

fn finite(value: f64) -> std::result::Result<(), validator::ValidationError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(validator::ValidationError::new("finite")
            .with_message("must be a finite number".into()))
    }
}

/// One node of a `SaveCanvas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
#[validate(schema(function = "data_json", skip_on_field_errors = false))]
pub struct CanvasNodeInput {
    /// The editor's id, 1 to 100 characters, unique in the canvas.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub node_id: String,
    /// 1 to 64 characters.
    #[validate(length(min = 1, max = 64), custom(function = "crate::input::line"))]
    pub node_type: String,
    /// A finite number.
    #[validate(custom(function = "finite"))]
    pub position_x: f64,
    /// A finite number.
    #[validate(custom(function = "finite"))]
    pub position_y: f64,
    /// Positive, at most 100000.
    #[validate(range(exclusive_min = 0.0, max = 100_000.0))]
    pub width: Option<f64>,
    /// Positive, at most 100000.
    #[validate(range(exclusive_min = 0.0, max = 100_000.0))]
    pub height: Option<f64>,
    /// The node's own data (see `crate::input::json`).
    #[serde(default)]
    pub data: Value,
}

fn data_json(node: &CanvasNodeInput) -> std::result::Result<(), validator::ValidationError> {
    crate::input::json_field("data", &node.data, crate::input::Shape::Any)
}

/// Input of `save`: the whole canvas, and the version it was loaded at.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
pub struct SaveCanvas {
    /// The `canvas_version` the editor loaded.
    #[validate(range(min = 0))]
    pub expected_version: i64,
    /// Every node of the canvas (at most 2000); missing ones are deleted.
    #[validate(length(max = 2000, message = "must have at most 2000 nodes"), nested)]
    pub nodes: Vec<CanvasNodeInput>,
}

impl SaveCanvas {
    fn check(&self) -> Result<()> {
        let mut fields = match validate(self) {
            Ok(()) => Vec::new(),
            Err(Error::Invalid(invalid)) => invalid.fields,
            Err(other) => return Err(other),
        };
        let mut seen = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !seen.insert(node.node_id.as_str()) {
                fields.push(FieldError {
                    field: format!("nodes[{i}].node_id"),
                    code: "unique".into(),
                    message: format!("node id {:?} appears twice", node.node_id),
                });
            }
        }
        let bytes = crate::input::size_unless_too_deep(&fields, || {
            self.nodes
                .iter()
                .map(|n| crate::input::json_size(&n.data))
                .sum()
        });
        if bytes > crate::input::MAX_JSON_BYTES {
            fields.push(FieldError {
                field: "nodes".into(),
                code: "size".into(),
                message: format!(
                    "the nodes' data must be at most {} bytes of JSON in all (is {bytes})",
                    crate::input::MAX_JSON_BYTES
                ),
            });
        }
        if fields.is_empty() {
            return Ok(());
        }
        fields.sort_by(|a, b| a.field.cmp(&b.field));
        Err(Error::Invalid(InvalidInput { fields }))
    }
}

/// A project's canvas at one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canvas {
    /// The `canvas_version` these nodes belong to.
    pub version: i64,
    /// The nodes, by `node_id`.
    pub nodes: Vec<CanvasNode>,
}

#[derive(Insertable)]
#[diesel(table_name = canvas_nodes, treat_none_as_default_value = false)]
pub(crate) struct InsertNode<'a> {
    pub(crate) id: CanvasNodeId,
    pub(crate) project_id: ProjectId,
    pub(crate) node_id: &'a str,
    pub(crate) node_type: &'a str,
    pub(crate) position_x: f64,
    pub(crate) position_y: f64,
    pub(crate) width: Option<f64>,
    pub(crate) height: Option<f64>,
    pub(crate) data: &'a Value,
}

/// The tenant's project's canvas: its version and nodes, read in one query
/// so that the two always agree.
pub async fn load(conn: &mut Conn, tenant_id: TenantId, project_id: ProjectId) -> Result<Canvas> {
    let rows: Vec<(i64, Option<CanvasNode>)> = projects::table
        .left_join(canvas_nodes::table)
        .filter(projects::id.eq(project_id))
        .filter(projects::tenant_id.eq(tenant_id))
        .order(canvas_nodes::node_id)
        .select((projects::canvas_version, Option::<CanvasNode>::as_select()))
        .load(conn)
        .await?;
    let version = <[_]>::first(&rows)
        .map(|(v, _)| *v)
        .ok_or(Error::NotFound { entity: "project" })?;
    Ok(Canvas {
        version,
        nodes: rows.into_iter().filter_map(|(_, n)| n).collect(),
    })
}

/// Saves the whole canvas of the tenant's project if it is still at
/// `input.expected_version`; returns it at the new version (one more).
/// `Stale` when another save came first, `NotFound` when the tenant has no
/// such project; nothing is written then.
pub async fn save(
    conn: &mut Conn,
    tenant_id: TenantId,
    project_id: ProjectId,
    input: &SaveCanvas,
) -> Result<Canvas> {
    input.check()?;
    conn.transaction(async |conn| {
        // The guarded bump comes first: it locks the project row, so saves
        // of one canvas are serialised and only one per version gets past it.
        let bumped: Option<i64> = diesel::update(
            projects::table
                .find(project_id)
                .filter(projects::tenant_id.eq(tenant_id))
                .filter(projects::canvas_version.eq(input.expected_version)),
        )
        .set(projects::canvas_version.eq(projects::canvas_version + 1))
        .returning(projects::canvas_version)
        .get_result(conn)
        .await
        .optional()?;
        if bumped.is_none() {
            super::projects::find(conn, tenant_id, project_id).await?;
            return Err(Error::Stale {
                entity: "canvas",
                expected: input.expected_version,
            });
        }
        let sent: Vec<&str> = input.nodes.iter().map(|n| n.node_id.as_str()).collect();
        diesel::delete(
            canvas_nodes::table
                .filter(canvas_nodes::project_id.eq(project_id))
                .filter(canvas_nodes::node_id.ne_all(&sent)),
        )
        .execute(conn)
        .await?;
        if !input.nodes.is_empty() {
            let rows: Vec<InsertNode> = input
                .nodes
                .iter()
                .map(|n| InsertNode {
                    id: CanvasNodeId::new(),
                    project_id,
                    node_id: &n.node_id,
                    node_type: &n.node_type,
                    position_x: n.position_x,
                    position_y: n.position_y,
                    width: n.width,
                    height: n.height,
                    data: &n.data,
                })
                .collect();
            // A node keeps its row (and id) across saves; only its content changes.
            diesel::insert_into(canvas_nodes::table)
                .values(&rows)
                .on_conflict((canvas_nodes::project_id, canvas_nodes::node_id))
                .do_update()
                .set((
                    canvas_nodes::node_type.eq(excluded(canvas_nodes::node_type)),
                    canvas_nodes::position_x.eq(excluded(canvas_nodes::position_x)),
                    canvas_nodes::position_y.eq(excluded(canvas_nodes::position_y)),
                    canvas_nodes::width.eq(excluded(canvas_nodes::width)),
                    canvas_nodes::height.eq(excluded(canvas_nodes::height)),
                    canvas_nodes::data.eq(excluded(canvas_nodes::data)),
                ))
                .execute(conn)
                .await?;
        }
        load(conn, tenant_id, project_id).await
    })
    .await
}
