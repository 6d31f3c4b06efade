//! `user_profiles`: the public profile of a user (display name, avatar, bio).
//! Portable: every function serves PostgreSQL and SQLite (`crate::db::any`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::db::{AnyConn, any_run, selectable_on_both};
use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::{Error, Result, UserId};

/// A row of `user_profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Identifiable, Serialize)]
#[diesel(table_name = crate::schema::user_profiles, primary_key(user_id))]
pub struct Profile {
    /// The user (also the primary key).
    pub user_id: UserId,
    /// Name shown to others, 1 to 100 characters.
    pub display_name: String,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Free text, at most 1000 characters.
    pub bio: Option<String>,
    /// When the profile was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

selectable_on_both!(Profile => user_profiles {
    user_id, display_name, avatar_url, bio, created_at, updated_at
});

/// Input of `upsert`: the whole profile.
#[derive(Debug, Clone, Default, Deserialize, Validate, Insertable, AsChangeset)]
#[diesel(table_name = crate::schema::user_profiles, treat_none_as_default_value = false, treat_none_as_null = true)]
pub struct ProfileInput {
    /// 1 to 100 characters.
    #[validate(length(min = 1, max = 100), custom(function = "crate::input::line"))]
    pub display_name: String,
    /// A URL of at most 2048 characters.
    #[validate(url, length(max = 2048))]
    pub avatar_url: Option<String>,
    /// At most 1000 characters.
    #[validate(length(max = 1000), custom(function = "crate::input::text"))]
    pub bio: Option<String>,
}

/// Creates or replaces `user`'s profile. `NotFound { user }` when the user doesn't exist.
pub async fn upsert(
    conn: &mut impl AnyConn,
    user: UserId,
    input: &ProfileInput,
) -> Result<Profile> {
    validate(input)?;
    any_run!(conn, [user_profiles] => {
        diesel::insert_into(user_profiles::table)
            .values((
                user_profiles::user_id.eq(user),
                user_profiles::display_name.eq(&input.display_name),
                user_profiles::avatar_url.eq(&input.avatar_url),
                user_profiles::bio.eq(&input.bio),
            ))
            .on_conflict(user_profiles::user_id)
            .do_update()
            .set((
                user_profiles::display_name.eq(&input.display_name),
                user_profiles::avatar_url.eq(&input.avatar_url),
                user_profiles::bio.eq(&input.bio),
                SQLITE.then(|| user_profiles::updated_at.eq(chrono::Utc::now())),
            ))
            .returning(Profile::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| Error::from(e).not_found_on("user_profiles_user_id_fkey", "user"))
    })
}

/// `user`'s profile. `NotFound { profile }` when they have none.
pub async fn find(conn: &mut impl AnyConn, user: UserId) -> Result<Profile> {
    any_run!(conn, [user_profiles] => {
        user_profiles::table
            .find(user)
            .select(Profile::as_select())
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "profile" })
    })
}
