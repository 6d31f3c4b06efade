//! Typed ids: one newtype per table over a UUID v7, so a `ProjectId` can
//! never be passed where a `UserId` is expected. v7 ids are time-ordered,
//! which keeps primary-key inserts at the right edge of the index.
//!
//! On SQLite (auth and settings only) an id is a 16-byte BLOB, the column
//! type `UuidBlob`: the UUID's own bytes, so it is half the size of the text
//! form, compares with memcmp, and keeps v7's time order in the index. Text
//! would read better in the `sqlite3` shell, at the cost of formatting and
//! parsing every id on every row.

/// The SQL type of an id column on SQLite: a 16-byte BLOB (see the module docs).
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[diesel(sqlite_type(name = "Binary"))]
pub struct UuidBlob;

/// Defines a typed id: a UUID newtype usable as a Diesel `Uuid` column value,
/// serialised as a plain UUID string.
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        #[diesel(sql_type = $crate::ids::UuidBlob)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered (v7) id. Deliberately not `Default`: a
            /// defaulted struct must not get a random id by accident.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }

            /// The underlying UUID.
            pub fn into_uuid(self) -> uuid::Uuid {
                self.0
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <uuid::Uuid as diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::to_sql(&self.0, out)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <uuid::Uuid as diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::from_sql(bytes).map(Self)
            }
        }

        impl diesel::serialize::ToSql<$crate::ids::UuidBlob, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                out.set_value(self.0.as_bytes().as_slice());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<$crate::ids::UuidBlob, diesel::sqlite::Sqlite> for $name {
            fn from_sql(
                bytes: diesel::sqlite::SqliteValue<'_, '_, '_>,
            ) -> diesel::deserialize::Result<Self> {
                let raw = <Vec<u8> as diesel::deserialize::FromSql<
                    diesel::sql_types::Binary,
                    diesel::sqlite::Sqlite,
                >>::from_sql(bytes)?;
                Ok(Self(uuid::Uuid::from_slice(&raw)?))
            }
        }
    };
}

typed_id!(
    /// Id of a row in `users`.
    UserId
);
typed_id!(
    /// Id of a row in `accounts`.
    AccountId
);
typed_id!(
    /// Id of a row in `sessions`.
    SessionId
);
typed_id!(
    /// Id of a row in `verifications`.
    VerificationId
);
typed_id!(
    /// Id of a row in `tenants`.
    TenantId
);
typed_id!(
    /// Id of a row in `tenant_members`.
    TenantMemberId
);
typed_id!(
    /// Id of a row in `tenant_invites`.
    TenantInviteId
);
typed_id!(
    /// Id of a row in `tenant_activity`.
    TenantActivityId
);
typed_id!(
    /// Id of a row in `admin_roles`.
    AdminRoleId
);
typed_id!(
    /// Id of a row in `admin_users` (one role grant).
    AdminUserId
);
typed_id!(
    /// Id of a row in `admin_audit_log`.
    AuditEntryId
);
typed_id!(
    /// Id of a row in `projects`.
    ProjectId
);
typed_id!(
    /// Id of a row in `canvas_nodes`.
    CanvasNodeId
);
typed_id!(
    /// Id of a row in `workflows`.
    WorkflowId
);
typed_id!(
    /// Id of a row in `executions`.
    ExecutionId
);
typed_id!(
    /// Id of a row in `execution_steps`.
    ExecutionStepId
);
typed_id!(
    /// Id of a row in `chats`.
    ChatId
);
typed_id!(
    /// Id of a row in `messages`.
    MessageId
);
typed_id!(
    /// Id of a row in `passkeys`.
    PasskeyId
);
typed_id!(
    /// Id of a row in `notifications`.
    NotificationId
);
typed_id!(
    /// Id of a row in `notification_deliveries`.
    NotificationDeliveryId
);
typed_id!(
    /// Id of a row in `notification_targets`.
    NotificationTargetId
);
typed_id!(
    /// Id of a row in `subscriptions`.
    SubscriptionId
);
typed_id!(
    /// Id of a row in `subscription_events`.
    SubscriptionEventId
);
typed_id!(
    /// Id of a row in `todos`.
    TodoId
);
typed_id!(
    /// Id of a row in `waitlist`.
    WaitlistEntryId
);
typed_id!(
    /// Id of a row in `jwks`: also the key id (`kid`) of the JSON Web Key.
    JwkId
);
