//! Chats and messages against a real PostgreSQL, including keyset
//! pagination deep inside a 100,000-message chat.

mod common;

use common::{TestDb, user};
use database::chat::messages::{self, SaveMessages};
use database::chat::{ChatVisibility, MessageRole, NewMessage, SaveChat, chats};
use database::keyset::Cursor;
use database::{ChatId, Error, MessageId, UserId};
use diesel::sql_types::{Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

fn save(id: ChatId, title: &str) -> SaveChat {
    SaveChat {
        id,
        title: title.into(),
        visibility: ChatVisibility::Private,
    }
}

fn msgs(texts: &[&str]) -> SaveMessages {
    SaveMessages {
        messages: texts
            .iter()
            .map(|t| NewMessage {
                role: MessageRole::User,
                parts: json!([{ "type": "text", "text": t }]),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn save_chat_creates_then_renames_only_for_its_owner() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;
    let id = ChatId::new();
    let created = chats::save(&mut conn, ann, &save(id, "New chat"))
        .await
        .unwrap();
    assert_eq!(created.title, "New chat");
    let renamed = chats::save(&mut conn, ann, &save(id, "Rust lifetimes"))
        .await
        .unwrap();
    assert_eq!(renamed.title, "Rust lifetimes");
    assert_eq!(renamed.created_at, created.created_at);
    let err = chats::save(&mut conn, bob, &save(id, "Mine now"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "chat" }));
    assert_eq!(
        chats::find(&mut conn, ann, id).await.unwrap().title,
        "Rust lifetimes"
    );
    assert_eq!(t.count("chats").await, 1);

    let err = chats::save(&mut conn, ann, &save(ChatId::new(), ""))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["title"]);
    let err = chats::save(&mut conn, UserId::new(), &save(ChatId::new(), "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "user" }));
    assert_eq!(t.count("chats").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_save_page_delete_after_and_delete_chat() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let bob = user(&t, "bob@example.com").await;
    let mut conn = t.conn().await;
    let chat = ChatId::new();
    chats::save(&mut conn, ann, &save(chat, "c")).await.unwrap();

    let saved = messages::create_many(&mut conn, ann, chat, &msgs(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    assert_eq!(saved.len(), 5);
    let texts = |ms: &[database::chat::Message]| -> Vec<String> {
        ms.iter()
            .map(|m| m.parts[0]["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&saved), vec!["a", "b", "c", "d", "e"]);

    let p1 = messages::list_for_chat(&mut conn, ann, chat, None, 2)
        .await
        .unwrap();
    assert_eq!(texts(&p1.items), vec!["e", "d"]);
    let p2 = messages::list_for_chat(&mut conn, ann, chat, p1.next, 2)
        .await
        .unwrap();
    assert_eq!(texts(&p2.items), vec!["c", "b"]);
    let p3 = messages::list_for_chat(&mut conn, ann, chat, p2.next, 2)
        .await
        .unwrap();
    assert_eq!(texts(&p3.items), vec!["a"]);
    assert!(p3.next.is_none());

    // Another user can neither read nor write this chat.
    assert!(matches!(
        messages::list_for_chat(&mut conn, bob, chat, None, 2).await,
        Err(Error::NotFound { entity: "chat" })
    ));
    assert!(matches!(
        messages::create_many(&mut conn, bob, chat, &msgs(&["x"])).await,
        Err(Error::NotFound { entity: "chat" })
    ));
    assert!(matches!(
        messages::delete_after(&mut conn, bob, chat, saved[1].id).await,
        Err(Error::NotFound { entity: "chat" })
    ));
    assert_eq!(t.count("messages").await, 5);

    // Edit-and-regenerate: everything after "b" goes.
    let n = messages::delete_after(&mut conn, ann, chat, saved[1].id)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let left = messages::list_for_chat(&mut conn, ann, chat, None, 10)
        .await
        .unwrap();
    assert_eq!(texts(&left.items), vec!["b", "a"]);
    assert!(matches!(
        messages::delete_after(&mut conn, ann, chat, MessageId::new()).await,
        Err(Error::NotFound { entity: "message" })
    ));

    assert!(matches!(
        chats::delete(&mut conn, bob, chat).await,
        Err(Error::NotFound { .. })
    ));
    chats::delete(&mut conn, ann, chat).await.unwrap();
    assert_eq!(t.count("chats").await, 0);
    assert_eq!(t.count("messages").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn message_bad_input_writes_nothing() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let chat = ChatId::new();
    chats::save(&mut conn, ann, &save(chat, "c")).await.unwrap();

    let err = messages::create_many(&mut conn, ann, chat, &SaveMessages { messages: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["messages"]);
    let mut bad = msgs(&["ok", "ok"]);
    bad.messages[1].parts = json!({ "text": "not an array" });
    let err = messages::create_many(&mut conn, ann, chat, &bad)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["messages[1].parts"]);
    let err = messages::create_many(&mut conn, ann, ChatId::new(), &msgs(&["x"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { entity: "chat" }));
    let err = messages::list_for_chat(&mut conn, ann, chat, None, 101)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_fields(), vec!["limit"]);
    assert_eq!(t.count("messages").await, 0);
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(diesel::QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deep_page_of_a_100k_message_chat_is_an_index_range_and_matches_a_full_scan() {
    let t = TestDb::new().await;
    let ann = user(&t, "ann@example.com").await;
    let mut conn = t.conn().await;
    let chat = ChatId::new();
    chats::save(&mut conn, ann, &save(chat, "big"))
        .await
        .unwrap();
    // A neighbour chat, so the index has to pick this chat's range.
    let other = ChatId::new();
    chats::save(&mut conn, ann, &save(other, "other"))
        .await
        .unwrap();
    messages::create_many(&mut conn, ann, other, &msgs(&["x", "y"]))
        .await
        .unwrap();

    // Three messages share each second, so the id tie-break is exercised.
    diesel::sql_query(
        "INSERT INTO messages (id, chat_id, role, parts, created_at)
         SELECT gen_random_uuid(), $1, 'user', jsonb_build_array(jsonb_build_object('n', i)),
                timestamptz '2026-01-01 00:00:00+00' + (i / 3) * interval '1 second'
         FROM generate_series(1, 100000) AS i",
    )
    .bind::<SqlUuid, _>(chat.into_uuid())
    .execute(&mut *conn)
    .await
    .unwrap();
    conn.batch_execute("ANALYZE messages").await.unwrap();
    assert_eq!(t.count("messages").await, 100_002);

    // The cursor is the 70,000th row newest-first; the page is the next 50.
    let reference = |offset: i64, limit: i64| {
        diesel::sql_query(
            "SELECT id, created_at FROM messages WHERE chat_id = $1
             ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT $3",
        )
        .bind::<SqlUuid, _>(chat.into_uuid())
        .bind::<diesel::sql_types::BigInt, _>(offset)
        .bind::<diesel::sql_types::BigInt, _>(limit)
    };
    let last_seen: Key = reference(69_999, 1).get_result(&mut *conn).await.unwrap();
    let expected: Vec<Key> = reference(70_000, 50).load(&mut *conn).await.unwrap();
    let cursor = Cursor {
        created_at: last_seen.created_at,
        id: MessageId(last_seen.id),
    };
    let page = messages::list_for_chat(&mut conn, ann, chat, Some(cursor), 50)
        .await
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|m| m.id.into_uuid())
            .collect::<Vec<_>>(),
        expected.iter().map(|k| k.id).collect::<Vec<_>>()
    );
    assert!(page.next.is_some());

    // In pooler mode nothing is prepared by name: no plan to inspect.
    if conn.is_pooler_mode() {
        return;
    }
    // EXPLAIN the exact statement the function prepared on this connection
    // (Diesel caches it), with the same parameters.
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
    }
    let Prepared {
        name,
        statement: sql,
    } = diesel::sql_query(
        "SELECT name, statement FROM pg_prepared_statements \
         WHERE statement LIKE 'SELECT \"messages\".\"id\"%' AND statement LIKE '%LIMIT 51%'",
    )
    .get_result(&mut *conn)
    .await
    .unwrap();
    let ts = cursor.created_at.to_rfc3339();
    // The limit is written into the SQL (a bound one makes the server re-plan
    // every call), so the generic plan, the one reused, must be as good as
    // the custom one.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        conn.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        let plan: Vec<PlanLine> = diesel::sql_query(format!(
            "EXPLAIN EXECUTE {name}('{chat}', '{ts}', '{ts}', '{}')",
            cursor.id
        ))
        .load(&mut *conn)
        .await
        .unwrap();
        let plan = plan
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            plan.contains("Index Scan") && plan.contains("messages_chat_id_created_at_id_idx"),
            "{mode}: {plan}"
        );
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("Sort"),
            "{mode}: {plan}"
        );
        assert!(sql.contains("LIMIT 51"), "{sql}");
    }
}
