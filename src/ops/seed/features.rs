//! The features domain: todos, the waitlist and daily activity counts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::generator::{DAY, TODO_TITLES, at, base, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::features::todos::{CreateTodo, InsertTodo};
use crate::features::user_activity_daily::InsertActivity;
use crate::features::waitlist::{InsertEntry, JoinWaitlist};
use crate::schema::{todos, waitlist};
use rand::Rng;

pub(super) async fn todos_and_waitlist(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;

    fill!(
        s,
        todos,
        p.users,
        |u: u64, rows: &mut Vec<(u64, u64, CreateTodo, bool, DateTime<Utc>)>| {
            let mut rng = g.rng(tag("todos"), u);
            for k in 0..p.todos_per_user {
                let created = at(g.user_created(u) + DAY + rng.random_range(0..50 * DAY));
                let completed = rng.random_bool(0.4);
                // A todo in a tenant is in the user's home tenant: one they belong to.
                let todo = CreateTodo {
                    tenant_id: rng.random_bool(0.5).then(|| g.tenant_id(g.home_tenant(u))),
                    title: pick(&mut rng, TODO_TITLES).to_owned(),
                    description: rng.random_bool(0.3).then(|| "Before Friday.".to_owned()),
                };
                validate(&todo).expect("a valid todo");
                rows.push((u, k, todo, completed, created));
            }
        },
        |(u, k, todo, completed, created): &(u64, u64, CreateTodo, bool, DateTime<Utc>)| {
            (
                InsertTodo {
                    id: g.id(tag("todos"), u * 16 + k).into(),
                    user_id: g.user_id(*u),
                    tenant_id: todo.tenant_id,
                    title: &todo.title,
                    description: todo.description.as_deref(),
                },
                (
                    todos::completed.eq(*completed),
                    todos::created_at.eq(*created),
                    todos::updated_at.eq(if *completed {
                        *created + chrono::Duration::days(2)
                    } else {
                        *created
                    }),
                ),
            )
        }
    );

    // `position` is left to the identity column: PostgreSQL refuses explicit
    // values for `GENERATED ALWAYS`. The rows go in in index order, so a
    // fresh database numbers them the same way every time.
    fill!(
        s,
        waitlist,
        p.waitlist,
        |i: u64, rows: &mut Vec<(u64, JoinWaitlist, Option<DateTime<Utc>>)>| {
            let mut rng = g.rng(tag("waitlist"), i);
            let created = at((i * 100 * DAY as u64 / p.waitlist.max(1)) as i64);
            let entry = JoinWaitlist {
                email: format!("waiting.{i}@{}", g.domain()),
            };
            validate(&entry).expect("a valid waitlist entry");
            let invited = rng
                .random_bool(0.3)
                .then(|| created + chrono::Duration::days(10));
            rows.push((i, entry, invited));
        },
        |(i, entry, invited): &(u64, JoinWaitlist, Option<DateTime<Utc>>)| {
            (
                InsertEntry {
                    id: g.id(tag("waitlist"), *i).into(),
                    email: &entry.email,
                },
                (
                    waitlist::invited_at.eq(*invited),
                    waitlist::created_at.eq(at((i * 100 * DAY as u64 / p.waitlist.max(1)) as i64)),
                ),
            )
        }
    );
    Ok(())
}

pub(super) async fn daily_activity(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    let first_day = (base() + chrono::Duration::days(120 - p.days as i64)).date_naive();
    fill!(
        s,
        user_activity_daily,
        p.users,
        |u: u64, rows: &mut Vec<InsertActivity>| {
            let mut rng = g.rng(tag("user_activity_daily"), u);
            let busy = rng.random_range(5..60);
            for d in 0..p.days {
                if rng.random_bool(0.65) {
                    rows.push(InsertActivity {
                        user_id: g.user_id(u),
                        day: first_day + chrono::Duration::days(d as i64),
                        count: rng.random_range(1..=busy),
                    });
                }
            }
        },
        |row: &InsertActivity| row
    );
    Ok(())
}
