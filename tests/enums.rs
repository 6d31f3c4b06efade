//! Every PostgreSQL enum type in the catalog has a Rust enum with the same
//! labels in the same order. The catalog drives the test: an enum type that
//! a migration adds without a Rust counterpart here fails it.

mod common;

use std::collections::BTreeMap;

use common::TestDb;
use database::auth::VerificationPurpose;
use database::billing::{EventOutcome, SubscriptionStatus};
use database::chat::{ChatVisibility, MessageRole};
use database::notifications::{DeliveryStatus, NotificationChannel};
use database::tenancy::TenantRole;
use database::workflows::{ExecutionStatus, StepStatus};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

/// The labels of a Rust enum made by `sql_enum!`, in declaration order.
macro_rules! labels {
    ($rust:ty) => {
        <$rust>::ALL
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<&str>>()
    };
}

#[derive(diesel::QueryableByName)]
struct Label {
    #[diesel(sql_type = Text)]
    typname: String,
    #[diesel(sql_type = Text)]
    enumlabel: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_postgres_enum_matches_its_rust_enum() {
    // PostgreSQL type name -> the labels of the Rust enum stored as it.
    let rust: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("verification_purpose", labels!(VerificationPurpose)),
        ("tenant_role", labels!(TenantRole)),
        ("execution_status", labels!(ExecutionStatus)),
        ("step_status", labels!(StepStatus)),
        ("chat_visibility", labels!(ChatVisibility)),
        ("message_role", labels!(MessageRole)),
        ("notification_channel", labels!(NotificationChannel)),
        ("delivery_status", labels!(DeliveryStatus)),
        ("subscription_status", labels!(SubscriptionStatus)),
        ("subscription_event_outcome", labels!(EventOutcome)),
    ]);
    let t = TestDb::new().await;
    let rows: Vec<Label> = diesel::sql_query(
        "SELECT t.typname::text AS typname, e.enumlabel::text AS enumlabel
         FROM pg_enum e
         JOIN pg_type t ON t.oid = e.enumtypid
         JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public'
         ORDER BY t.typname, e.enumsortorder",
    )
    .load(&mut *t.conn().await)
    .await
    .unwrap();
    let mut catalog: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in &rows {
        catalog
            .entry(row.typname.as_str())
            .or_default()
            .push(row.enumlabel.as_str());
    }
    for (type_name, labels) in &catalog {
        let ours = rust.get(type_name).unwrap_or_else(|| {
            panic!(
                "PostgreSQL enum {type_name} has no Rust enum in this test (add one with sql_enum!)"
            )
        });
        assert_eq!(labels, ours, "{type_name}");
    }
    let catalog_names: Vec<_> = catalog.keys().collect();
    let rust_names: Vec<_> = rust.keys().collect();
    assert_eq!(catalog_names, rust_names, "a Rust enum whose type is gone");
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Every conflict constant a caller matches on (`Error::is_conflict`) that
/// names a database constraint or unique index names one the migrations
/// really create; the domain rules checked in Rust are listed apart.
#[tokio::test(flavor = "multi_thread")]
async fn conflict_constants_name_real_constraints() {
    use database::admin::{admin_roles, admin_users};
    use database::auth::{accounts, jwks, passkeys, users};
    use database::tenancy::{tenant_members, tenants};
    use database::workflows::execution_steps;
    let t = TestDb::new().await;
    let names: Vec<Name> = diesel::sql_query(
        "SELECT conname::text AS name FROM pg_constraint \
         UNION SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'",
    )
    .load(&mut *t.conn().await)
    .await
    .unwrap();
    let names: Vec<String> = names.into_iter().map(|n| n.name).collect();
    for constant in [
        users::EMAIL_TAKEN,
        accounts::PROVIDER_ACCOUNT_TAKEN,
        accounts::PROVIDER_ALREADY_LINKED,
        passkeys::CREDENTIAL_TAKEN,
        jwks::ONE_SIGNING_KEY,
        tenants::SLUG_TAKEN,
        tenant_members::ALREADY_MEMBER,
        admin_roles::NAME_TAKEN,
        admin_users::ALREADY_GRANTED,
        execution_steps::ATTEMPTS_EXHAUSTED,
    ] {
        assert!(
            names.iter().any(|n| n == constant),
            "{constant} is not in the catalog"
        );
    }
    // Rules the domains enforce in Rust: names of their own, never a constraint's.
    for rule in [
        tenant_members::LAST_OWNER,
        accounts::LAST_LOGIN_METHOD,
        execution_steps::EXECUTION_NOT_RUNNING,
    ] {
        assert!(
            !names.iter().any(|n| n == rule),
            "{rule} is also a constraint"
        );
    }
}
