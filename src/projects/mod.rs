//! Projects: a tenant's projects and the nodes of each project's visual
//! editor canvas. Tables created in
//! `migrations/2026-11-21-130000_create_projects`.

pub mod canvas_nodes;
// One table, one file: the `projects` table lives in projects/projects.rs.
#[allow(clippy::module_inception)]
pub mod projects;

pub use canvas_nodes::{Canvas, CanvasNode, CanvasNodeInput, SaveCanvas};
pub use projects::{NewProject, Project, ProjectFilter, RenameProject};
