//! `messages`: the messages of a chat, ordered by `(created_at, id)`.
//! Reads and writes check that the chat belongs to the caller first.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::error::validate;
use crate::inline_limit::{InlineLimit, InlineLimitDsl};
use crate::keyset::{Cursor, Page, check_limit, page_of};
use crate::render_once::RenderOnceDsl;
use crate::schema::{chats, messages};
use crate::{ChatId, Conn, Error, MessageId, Result, UserId};

crate::sql_enum! {
    /// Who wrote a message.
    pub enum MessageRole: crate::schema::sql_types::MessageRole {
        /// The person.
        User => "user",
        /// The model.
        Assistant => "assistant",
        /// Instructions to the model.
        System => "system",
        /// A tool's result.
        Tool => "tool",
    }
}

/// A row of `messages`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub struct Message {
    /// Primary key.
    pub id: MessageId,
    /// The chat.
    pub chat_id: ChatId,
    /// Who wrote it.
    pub role: MessageRole,
    /// The message parts (a JSON array).
    pub parts: serde_json::Value,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// One message of `create_many`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
#[validate(schema(function = "parts_json", skip_on_field_errors = false))]
pub struct NewMessage {
    /// Who wrote it.
    pub role: MessageRole,
    /// The message parts: a non-empty JSON array.
    pub parts: serde_json::Value,
}

fn parts_json(message: &NewMessage) -> Result<(), ValidationError> {
    crate::input::json_field("parts", &message.parts, crate::input::Shape::NonEmptyArray)
}

/// Input of `create_many`: 1 to 500 messages, in order.
#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
pub struct SaveMessages {
    /// The messages, oldest first.
    #[validate(
        length(min = 1, max = 500, message = "must have 1 to 500 messages"),
        nested
    )]
    pub messages: Vec<NewMessage>,
}

#[derive(Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub(crate) struct InsertMessage<'a> {
    pub(crate) id: MessageId,
    pub(crate) chat_id: ChatId,
    pub(crate) role: MessageRole,
    pub(crate) parts: &'a serde_json::Value,
    pub(crate) created_at: DateTime<Utc>,
}

/// `NotFound` unless the chat is the user's. Takes a shared reference so it
/// can be pipelined beside another query on the same connection.
async fn check_owner(mut conn: &Conn, user_id: UserId, chat_id: ChatId) -> Result<()> {
    let found: Option<ChatId> = chats::table
        .find(chat_id)
        .filter(chats::user_id.eq(user_id))
        .select(chats::id)
        .render_once()
        .get_result(&mut conn)
        .await
        .optional()?;
    found.map(|_| ()).ok_or(Error::NotFound { entity: "chat" })
}

/// Appends a batch of messages to the chat in one INSERT; returns them.
pub async fn create_many(
    conn: &mut Conn,
    user_id: UserId,
    chat_id: ChatId,
    input: &SaveMessages,
) -> Result<Vec<Message>> {
    validate(input)?;
    conn.transaction(async |conn| {
        check_owner(conn, user_id, chat_id).await?;
        // One timestamp for the batch; UUID v7 ids (monotonic within the
        // process) keep the batch's order under the (created_at, id) key.
        let now = Utc::now();
        let rows: Vec<InsertMessage<'_>> = input
            .messages
            .iter()
            .map(|m| InsertMessage {
                id: MessageId::new(),
                chat_id,
                role: m.role,
                parts: &m.parts,
                created_at: now,
            })
            .collect();
        let mut saved = diesel::insert_into(messages::table)
            .values(&rows)
            .returning(Message::as_returning())
            .get_results(conn)
            .await?;
        saved.sort_by_key(|m| (m.created_at, m.id));
        Ok(saved)
    })
    .await
}

/// The page query of `list_for_chat`: newest first, strictly
/// before `before`.
fn page_query(
    chat_id: ChatId,
    before: Option<Cursor<MessageId>>,
    limit: i64,
) -> InlineLimit<
    messages::BoxedQuery<'static, diesel::pg::Pg, diesel::dsl::AsSelect<Message, diesel::pg::Pg>>,
> {
    let mut query = messages::table
        .filter(messages::chat_id.eq(chat_id))
        .select(Message::as_select())
        .order((messages::created_at.desc(), messages::id.desc()))
        .into_boxed();
    if let Some(c) = before {
        // (created_at, id) < cursor. The plain `created_at <=` bound is what
        // the index range uses; the OR only filters the tie at that instant.
        query = query.filter(messages::created_at.le(c.created_at)).filter(
            messages::created_at
                .lt(c.created_at)
                .or(messages::id.lt(c.id)),
        );
    }
    // One extra row says whether there is a next page; `limit` is checked
    // to 1..=100 by the caller.
    query.inline_limit((limit + 1) as u32)
}

/// A page of the chat's messages, newest first, starting before `before`.
pub async fn list_for_chat(
    conn: &mut Conn,
    user_id: UserId,
    chat_id: ChatId,
    before: Option<Cursor<MessageId>>,
    limit: i64,
) -> Result<Page<Message, MessageId>> {
    check_limit(limit)?;
    // The ownership check and the page don't depend on each other: both are
    // sent at once, pipelined on this one connection (one round trip, not
    // two). A page read for a chat that isn't the caller's is discarded.
    let mut for_page = &*conn;
    let rows = page_query(chat_id, before, limit).load::<Message>(&mut for_page);
    let (owner, rows) = tokio::join!(check_owner(conn, user_id, chat_id), rows);
    owner?;
    Ok(page_of(rows?, limit, |m: &Message| Cursor {
        created_at: m.created_at,
        id: m.id,
    }))
}

/// Deletes the messages written after `message_id` in its chat (the tail
/// an edit-and-regenerate replaces); returns how many.
pub async fn delete_after(
    conn: &mut Conn,
    user_id: UserId,
    chat_id: ChatId,
    message_id: MessageId,
) -> Result<usize> {
    conn.transaction(async |conn| {
        check_owner(conn, user_id, chat_id).await?;
        let (at, id): (DateTime<Utc>, MessageId) = messages::table
            .find(message_id)
            .filter(messages::chat_id.eq(chat_id))
            .select((messages::created_at, messages::id))
            .render_once()
            .get_result(conn)
            .await
            .optional()?
            .ok_or(Error::NotFound { entity: "message" })?;
        Ok(diesel::delete(
            messages::table
                .filter(messages::chat_id.eq(chat_id))
                .filter(messages::created_at.ge(at))
                .filter(messages::created_at.gt(at).or(messages::id.gt(id))),
        )
        .execute(conn)
        .await?)
    })
    .await
}
