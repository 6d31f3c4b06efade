//! `db seed` against a real PostgreSQL: deterministic per seed, idempotent,
//! every domain filled, refused in production.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use common::TestDb;
use common::{DB_BIN, run_db as db};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

/// Every table `db seed` must fill: all of the schema's tables, read from
/// the catalog (the migration engine's bookkeeping excepted), so a new table
/// without seed rows fails `every_table_in_the_catalog_gets_rows`.
async fn catalog_tables(t: &TestDb) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        tablename: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT LIKE '\\_\\_%' ORDER BY tablename",
    )
    .load(&mut *t.conn().await)
    .await
    .unwrap();
    let names: Vec<String> = names.into_iter().map(|n| n.tablename).collect();
    assert!(names.len() >= 31, "only {} tables: {names:?}", names.len());
    names
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn seed_ok(t: &TestDb, args: &[&str]) -> String {
    let out = db(&t.url, args, &[]);
    assert!(
        out.status.success(),
        "db {args:?}: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // Seeding crosses tenants: the escape hatch, logged with its reason.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("db seed: writes demo rows"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// The number in "Seeded N rows".
fn rows_written(line: &str) -> u64 {
    let n = line
        .strip_prefix("Seeded ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no final line: {line}"));
    n.replace(',', "").parse().unwrap()
}

/// An md5 of each public table's content, migration tables excepted.
async fn table_hashes(t: &TestDb) -> BTreeMap<String, String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        tablename: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Hash {
        #[diesel(sql_type = Text)]
        h: String,
    }
    let mut conn = t.conn().await;
    let names: Vec<Name> = diesel::sql_query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT LIKE '\\_\\_diesel%' AND tablename NOT LIKE '%migration%' \
         ORDER BY tablename",
    )
    .load(&mut *conn)
    .await
    .unwrap();
    let mut hashes = BTreeMap::new();
    for Name { tablename } in names {
        let sql = format!(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM {tablename} t"
        );
        let row: Hash = diesel::sql_query(sql).get_result(&mut *conn).await.unwrap();
        hashes.insert(tablename, row.h);
    }
    hashes
}

#[tokio::test]
async fn the_same_seed_twice_writes_nothing_the_second_time() {
    let t = TestDb::new().await;
    let first = seed_ok(&t, &["seed", "--seed", "7"]);
    assert!(rows_written(&first) > 1_000, "{first}");
    assert!(first.contains("0 rows already present"), "{first}");
    let after_first = table_hashes(&t).await;

    let second = seed_ok(&t, &["seed", "--seed", "7"]);
    assert_eq!(rows_written(&second), 0, "{second}");
    assert_eq!(table_hashes(&t).await, after_first);
}

#[tokio::test]
async fn a_seed_gives_the_same_tables_on_every_database() {
    let (a, b, c) = (
        TestDb::new().await,
        TestDb::new().await,
        TestDb::new().await,
    );
    seed_ok(&a, &["seed", "--seed", "7"]);
    seed_ok(&b, &["seed", "--seed", "7", "--scale", "small"]);
    seed_ok(&c, &["seed", "--seed", "8"]);
    let (ha, hb, hc) = (
        table_hashes(&a).await,
        table_hashes(&b).await,
        table_hashes(&c).await,
    );
    assert_eq!(ha, hb);
    for table in catalog_tables(&a).await {
        // The admin roles are shared by every seed; everything else differs.
        if table != "admin_roles" {
            assert_ne!(
                ha[&table], hc[&table],
                "{table} is the same for seeds 7 and 8"
            );
        }
    }
}

/// The seed is one transaction: a failure in a late table (here a trigger
/// refusing every message) leaves none of the earlier tables' rows behind,
/// and the next run, once the cause is gone, writes everything.
#[tokio::test]
async fn a_seed_that_fails_half_way_writes_nothing() {
    use diesel_async::SimpleAsyncConnection;
    let t = TestDb::new().await;
    t.conn()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_messages() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'no messages today'; END $$; \
             CREATE TRIGGER refuse_messages BEFORE INSERT ON messages \
             FOR EACH ROW EXECUTE FUNCTION refuse_messages();",
        )
        .await
        .unwrap();
    let out = db(&t.url, &["seed"], &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no messages today"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in ["users", "tenants", "workflows", "chats", "admin_roles"] {
        assert_eq!(
            t.count(table).await,
            0,
            "{table} kept rows of a failed seed"
        );
    }
    t.conn()
        .await
        .batch_execute("DROP TRIGGER refuse_messages ON messages")
        .await
        .unwrap();
    let out = seed_ok(&t, &["seed"]);
    assert!(out.contains("0 rows already present"), "{out}");
}

#[tokio::test]
async fn every_table_in_the_catalog_gets_rows() {
    let t = TestDb::new().await;
    seed_ok(&t, &["seed"]);
    for table in catalog_tables(&t).await {
        assert!(t.count(&table).await > 0, "{table} is empty");
    }
    // A second seed shares the database with the first.
    let users = t.count("users").await;
    let out = seed_ok(&t, &["seed", "--seed", "2"]);
    assert!(rows_written(&out) > 1_000, "{out}");
    assert_eq!(t.count("users").await, 2 * users);
}

#[tokio::test]
async fn seeded_admins_hold_the_permissions_their_roles_name() {
    use database::admin::admin_users;
    #[derive(diesel::QueryableByName)]
    struct Admin {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        user_id: uuid::Uuid,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let t = TestDb::new().await;
    seed_ok(&t, &["seed"]);
    let mut conn = t.conn().await;
    let admins: Vec<Admin> = diesel::sql_query(
        "SELECT u.user_id, r.name FROM admin_users u JOIN admin_roles r ON r.id = u.role_id",
    )
    .load(&mut *conn)
    .await
    .unwrap();
    assert_eq!(admins.len(), 3);
    for Admin { user_id, name } in admins {
        let id = user_id.into();
        let can = |perm: &'static str| {
            let db = t.owner.clone();
            async move {
                admin_users::has_permission(&mut db.conn().await.unwrap(), id, perm)
                    .await
                    .unwrap()
            }
        };
        match name.as_str() {
            "superadmin" => {
                assert!(can("users.read").await && can("anything.at_all").await);
            }
            "support" => assert!(can("users.read").await && !can("users.delete").await),
            "billing" => assert!(can("subscriptions.write").await && !can("users.read").await),
            other => panic!("unexpected role {other}"),
        }
    }
}

#[tokio::test]
async fn seed_is_refused_in_production() {
    let t = TestDb::new().await;
    for (k, v) in [("APP_ENV", "production"), ("NODE_ENV", "production")] {
        let out = db(&t.url, &["seed"], &[(k, v)]);
        assert_eq!(out.status.code(), Some(4), "{k}={v}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
    }
    for table in catalog_tables(&t).await {
        assert_eq!(t.count(&table).await, 0, "{table} was written");
    }
}

#[test]
fn seed_help_and_bad_scale() {
    let out = Command::new(DB_BIN)
        .args(["seed", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("--seed") && help.contains("--scale"),
        "{help}"
    );
    let out = Command::new(DB_BIN)
        .args(["seed", "--scale", "huge"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
