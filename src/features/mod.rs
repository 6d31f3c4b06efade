//! Product features carried over from the old package: todos, the waitlist
//! and daily activity counters. Tables created in
//! `migrations/2026-11-21-140400_create_features`.

pub mod todos;
pub mod user_activity_daily;
pub mod waitlist;

pub use todos::{CreateTodo, Todo, TodoPatch};
pub use user_activity_daily::{ActivityIncrement, UserActivityDay};
pub use waitlist::{JoinWaitlist, Joined, WaitlistEntry};
