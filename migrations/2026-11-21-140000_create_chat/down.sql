DROP TABLE messages;
DROP TYPE message_role;
DROP TABLE chats;
DROP TYPE chat_visibility;
