//! The Rust enums of this crate carry the same labels, in the same order, as
//! their PostgreSQL enum types.

mod common;

use common::TestDb;
use database::auth::VerificationPurpose;
use database::billing::{EventOutcome, SubscriptionStatus};
use database::chat::{ChatVisibility, MessageRole};
use database::notifications::{DeliveryStatus, NotificationChannel};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

#[derive(diesel::QueryableByName)]
struct Label {
    #[diesel(sql_type = Text)]
    enumlabel: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_enums_match_pg_enum() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "verification_purpose",
            VerificationPurpose::ALL
                .iter()
                .map(|v| v.as_str())
                .collect(),
        ),
        (
            "chat_visibility",
            ChatVisibility::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "message_role",
            MessageRole::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "notification_channel",
            NotificationChannel::ALL
                .iter()
                .map(|v| v.as_str())
                .collect(),
        ),
        (
            "delivery_status",
            DeliveryStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "subscription_status",
            SubscriptionStatus::ALL.iter().map(|v| v.as_str()).collect(),
        ),
        (
            "subscription_event_outcome",
            EventOutcome::ALL.iter().map(|v| v.as_str()).collect(),
        ),
    ];
    for (type_name, rust) in cases {
        let labels: Vec<Label> = diesel::sql_query(
            "SELECT e.enumlabel::text AS enumlabel FROM pg_enum e
             JOIN pg_type t ON t.oid = e.enumtypid
             WHERE t.typname = $1 ORDER BY e.enumsortorder",
        )
        .bind::<Text, _>(type_name)
        .load(&mut *conn)
        .await
        .unwrap();
        let pg: Vec<&str> = labels.iter().map(|l| l.enumlabel.as_str()).collect();
        assert_eq!(pg, rust, "{type_name}");
    }
}
