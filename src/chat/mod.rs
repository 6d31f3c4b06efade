//! Chat: a user's conversations and their messages. Tables created in
//! `migrations/2026-11-21-140000_create_chat`.

pub mod chats;
pub mod messages;

pub use chats::{Chat, ChatVisibility, SaveChat};
pub use messages::{Message, MessageRole, NewMessage};
