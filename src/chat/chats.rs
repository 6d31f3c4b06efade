//! `chats`: a conversation owned by one user. Every function takes the
//! owner's id, so a user never reads or changes another user's chats.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::error::validate;
use crate::render_once::RenderOnceDsl;
use crate::schema::chats;
use crate::{ChatId, Conn, Error, Result, UserId};

crate::sql_enum! {
    /// Who may read a chat.
    pub enum ChatVisibility: crate::schema::sql_types::ChatVisibility {
        /// Only its owner.
        Private => "private",
        /// Anyone with the link.
        Public => "public",
    }
}

/// A row of `chats`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = chats, check_for_backend(diesel::pg::Pg))]
pub struct Chat {
    /// Primary key.
    pub id: ChatId,
    /// The owner.
    pub user_id: UserId,
    /// 1 to 255 characters.
    pub title: String,
    /// Who may read it.
    pub visibility: ChatVisibility,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (kept by a trigger).
    pub updated_at: DateTime<Utc>,
}

/// Input of `save`.
#[derive(Debug, Clone, Deserialize, Validate)]
pub struct SaveChat {
    /// The chat's id, chosen by the client so the first message can be
    /// saved before the title exists.
    pub id: ChatId,
    /// 1 to 255 characters.
    #[validate(length(min = 1, max = 255), custom(function = "crate::input::line"))]
    pub title: String,
    /// Who may read it (used when the chat is created).
    pub visibility: ChatVisibility,
}

#[derive(Insertable)]
#[diesel(table_name = chats, treat_none_as_default_value = false)]
pub(crate) struct InsertChat<'a> {
    pub(crate) id: ChatId,
    pub(crate) user_id: UserId,
    pub(crate) title: &'a str,
    pub(crate) visibility: ChatVisibility,
}

/// Creates the chat, or changes its title when it exists. `NotFound` when
/// the id belongs to another user's chat (or the user does not exist).
pub async fn save(conn: &mut Conn, user_id: UserId, input: &SaveChat) -> Result<Chat> {
    validate(input)?;
    conn.transaction(async |conn| {
        let created = diesel::insert_into(chats::table)
            .values(InsertChat {
                id: input.id,
                user_id,
                title: &input.title,
                visibility: input.visibility,
            })
            .on_conflict(chats::id)
            .do_nothing()
            .returning(Chat::as_returning())
            .get_result(conn)
            .await
            .optional()
            .map_err(|e| Error::from(e).not_found_on("chats_user_id_fkey", "user"))?;
        if let Some(chat) = created {
            return Ok(chat);
        }
        // The id exists: rename it, but only if it is the caller's.
        diesel::update(
            chats::table
                .find(input.id)
                .filter(chats::user_id.eq(user_id)),
        )
        .set(chats::title.eq(&input.title))
        .returning(Chat::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "chat" })
    })
    .await
}

/// The chat `id` of `user_id`.
pub async fn find(conn: &mut Conn, user_id: UserId, id: ChatId) -> Result<Chat> {
    chats::table
        .find(id)
        .filter(chats::user_id.eq(user_id))
        .select(Chat::as_select())
        .render_once()
        .get_result(conn)
        .await
        .optional()?
        .ok_or(Error::NotFound { entity: "chat" })
}

/// Deletes the chat and (by cascade) its messages.
pub async fn delete(conn: &mut Conn, user_id: UserId, id: ChatId) -> Result<()> {
    let n = diesel::delete(chats::table.find(id).filter(chats::user_id.eq(user_id)))
        .execute(conn)
        .await?;
    if n == 0 {
        return Err(Error::NotFound { entity: "chat" });
    }
    Ok(())
}
