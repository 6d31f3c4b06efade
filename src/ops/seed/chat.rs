//! The chat domain: a few chats per user, each a short conversation.

use diesel::prelude::*;
use serde_json::json;

use super::generator::{ASSISTANT_LINES, CHAT_TOPICS, DAY, USER_LINES, at, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::chat::chats::{InsertChat, SaveChat};
use crate::chat::messages::{InsertMessage, NewMessage};
use crate::chat::{ChatVisibility, MessageRole};
use crate::error::validate;
use crate::schema::chats;
use rand::Rng;

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    // When chat `c` starts (the same draws for the chat and its messages).
    let chat_created = move |c: u64| {
        let u = c / p.chats_per_user;
        let mut rng = g.rng(tag("chats"), c);
        g.user_created(u) + DAY + rng.random_range(0..50 * DAY)
    };

    fill!(
        s,
        chats,
        p.chats(),
        |c: u64, rows: &mut Vec<(u64, SaveChat)>| {
            let mut rng = g.rng(tag("chats"), c);
            let _ = rng.random_range(0..50 * DAY); // chat_created's draw
            let chat = SaveChat {
                id: g.id(tag("chats"), c).into(),
                title: pick(&mut rng, CHAT_TOPICS).to_owned(),
                visibility: if rng.random_bool(0.2) {
                    ChatVisibility::Public
                } else {
                    ChatVisibility::Private
                },
            };
            validate(&chat).expect("a valid chat");
            rows.push((c, chat));
        },
        |(c, chat): &(u64, SaveChat)| {
            let created = chat_created(*c);
            (
                InsertChat {
                    id: chat.id,
                    user_id: g.user_id(c / p.chats_per_user),
                    title: &chat.title,
                    visibility: chat.visibility,
                },
                (
                    chats::created_at.eq(at(created)),
                    chats::updated_at.eq(at(created + p.messages_per_chat as i64 * 90)),
                ),
            )
        }
    );

    fill!(
        s,
        messages,
        p.chats(),
        |c: u64, rows: &mut Vec<(u64, u64, NewMessage)>| {
            let mut rng = g.rng(tag("messages"), c);
            for k in 0..p.messages_per_chat {
                let (role, text) = if k == 0 {
                    (
                        MessageRole::System,
                        "You are a helpful assistant for the team.",
                    )
                } else if k % 2 == 1 {
                    (MessageRole::User, pick(&mut rng, USER_LINES))
                } else {
                    (MessageRole::Assistant, pick(&mut rng, ASSISTANT_LINES))
                };
                let message = NewMessage {
                    role,
                    parts: json!([{"type": "text", "text": text}]),
                };
                validate(&message).expect("a valid message");
                rows.push((c, k, message));
            }
        },
        |(c, k, message): &(u64, u64, NewMessage)| InsertMessage {
            id: g.id(tag("messages"), c * 64 + k).into(),
            chat_id: g.id(tag("chats"), *c).into(),
            role: message.role,
            parts: &message.parts,
            created_at: at(chat_created(*c) + *k as i64 * 90),
        }
    );
    Ok(())
}
