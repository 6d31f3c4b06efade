-- Chat: a user's conversations with an assistant and their messages.

CREATE TYPE chat_visibility AS ENUM ('private', 'public');

CREATE TABLE chats (
    id         uuid            PRIMARY KEY,
    -- Deleting a user deletes their conversations.
    user_id    uuid            NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text            NOT NULL
        CONSTRAINT chats_title_length CHECK (char_length(title) BETWEEN 1 AND 255),
    visibility chat_visibility NOT NULL DEFAULT 'private',
    created_at timestamptz     NOT NULL DEFAULT now(),
    updated_at timestamptz     NOT NULL DEFAULT now()
);
-- Serves the foreign key and a user's chat list, newest first.
CREATE INDEX chats_user_id_created_at_idx ON chats (user_id, created_at DESC, id DESC);
SELECT diesel_manage_updated_at('chats');

CREATE TYPE message_role AS ENUM ('user', 'assistant', 'system', 'tool');

-- Messages are immutable once written (edit-and-regenerate deletes the
-- tail and writes new rows), so there is no updated_at.
CREATE TABLE messages (
    id         uuid         PRIMARY KEY,
    chat_id    uuid         NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role       message_role NOT NULL,
    -- The AI SDK's message parts: an array of typed objects.
    parts      jsonb        NOT NULL
        CONSTRAINT messages_parts_array CHECK (jsonb_typeof(parts) = 'array'),
    created_at timestamptz  NOT NULL DEFAULT now()
);
-- The keyset of get_messages_by_chat_id: (chat, created_at, id). A page at
-- any depth is one index range read, and chat_id leading also serves the
-- foreign key (ON DELETE CASCADE from chats).
CREATE INDEX messages_chat_id_created_at_id_idx ON messages (chat_id, created_at, id);
