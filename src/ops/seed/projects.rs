//! The projects domain: a few projects per tenant, each with a canvas.

use diesel::prelude::*;
use serde_json::json;

use super::generator::{CANVAS_TYPES, DAY, HOUR, PROJECT_NAMES, at, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::projects::canvas_nodes::{CanvasNodeInput, InsertNode};
use crate::projects::projects::{InsertProject, NewProject};
use crate::schema::{canvas_nodes, projects};
use rand::Rng;

/// What a project's later life set.
struct ProjectLife {
    owner: crate::UserId,
    canvas_version: i64,
    archived_at: Option<i64>,
    created: i64,
    updated: i64,
}

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;

    fill!(
        s,
        projects,
        p.projects(),
        |i: u64, rows: &mut Vec<(u64, NewProject, ProjectLife)>| {
            let t = i / p.projects_per_tenant;
            let mut rng = g.rng(tag("projects"), i);
            let created = g.tenant_created(t) + (i % p.projects_per_tenant) as i64 * 3 * DAY + HOUR;
            let owner = g.member(t, rng.random_range(0..3));
            let project = NewProject {
                name: pick(&mut rng, PROJECT_NAMES).to_owned(),
                description: rng
                    .random_bool(0.6)
                    .then(|| "Where the team sketches and tracks the work.".to_owned()),
            };
            validate(&project).expect("a valid project");
            let life = ProjectLife {
                owner: g.user_id(owner),
                canvas_version: rng.random_range(1..40),
                archived_at: rng.random_bool(0.1).then_some(created + 30 * DAY),
                created,
                updated: created + rng.random_range(0..30 * DAY),
            };
            rows.push((i, project, life));
        },
        |(i, project, life): &(u64, NewProject, ProjectLife)| {
            (
                InsertProject {
                    id: g.id(tag("projects"), *i).into(),
                    tenant_id: g.tenant_id(i / p.projects_per_tenant),
                    owner_id: Some(life.owner),
                    name: &project.name,
                    description: project.description.as_deref(),
                },
                (
                    projects::canvas_version.eq(life.canvas_version),
                    projects::archived_at.eq(life.archived_at.map(at)),
                    projects::created_at.eq(at(life.created)),
                    projects::updated_at.eq(at(life.updated)),
                ),
            )
        }
    );

    fill!(
        s,
        canvas_nodes,
        p.projects(),
        |i: u64, rows: &mut Vec<(u64, u64, CanvasNodeInput)>| {
            let mut rng = g.rng(tag("canvas_nodes"), i);
            for k in 0..rng.random_range(4..=8u64) {
                let kind = pick(&mut rng, CANVAS_TYPES);
                let node = CanvasNodeInput {
                    node_id: format!("{kind}-{k}"),
                    node_type: kind.to_owned(),
                    position_x: (k % 4) as f64 * 260.0 + rng.random_range(0..40) as f64,
                    position_y: (k / 4) as f64 * 180.0 + rng.random_range(0..40) as f64,
                    width: Some(rng.random_range(120..320) as f64),
                    height: Some(rng.random_range(60..200) as f64),
                    data: json!({
                        "label": format!("{} {k}", kind),
                        "color": pick(&mut rng, &["#f59e0b", "#3b82f6", "#10b981"]),
                    }),
                };
                validate(&node).expect("a valid canvas node");
                rows.push((i, k, node));
            }
        },
        |(i, k, node): &(u64, u64, CanvasNodeInput)| {
            let t = i / p.projects_per_tenant;
            let created =
                at(g.tenant_created(t) + (i % p.projects_per_tenant) as i64 * 3 * DAY + 2 * HOUR);
            (
                InsertNode {
                    id: g.id(tag("canvas_nodes"), i * 16 + k).into(),
                    project_id: g.id(tag("projects"), *i).into(),
                    node_id: &node.node_id,
                    node_type: &node.node_type,
                    position_x: node.position_x,
                    position_y: node.position_y,
                    width: node.width,
                    height: node.height,
                    data: &node.data,
                },
                (
                    canvas_nodes::created_at.eq(created),
                    canvas_nodes::updated_at.eq(created),
                ),
            )
        }
    );
    Ok(())
}
