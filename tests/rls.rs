//! Row-level security and the request context (issue #26), always as the
//! service's own role (`common::SERVICE_ROLE`: no superuser, no BYPASSRLS,
//! owns nothing): the machine's `postgres` role is a superuser, to which
//! row-level security never applies, so nothing here runs as it except the
//! set-up of rows and roles.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SERVICE_ROLE, TestDb};
use database::auth::{NewUser, users};
use database::features::todos::{self, CreateTodo};
use database::projects::{NewProject, projects};
use database::tenancy::{NewTenant, tenants};
use database::{Config, Ctx, Db, Error, TenantId, UserId};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut database::Conn, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .n
}

/// A tenant owned by a new user, with `projects` projects and `todos`
/// todos, written as the superuser (set-up, not under test).
async fn tenant_with_rows(
    t: &TestDb,
    slug: &str,
    projects_n: usize,
    todos_n: usize,
) -> (TenantId, UserId) {
    let mut conn = t.conn().await;
    let owner = users::create(
        &mut conn,
        &NewUser {
            email: format!("{slug}@example.com"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id;
    let tenant = tenants::create_with_owner(
        &mut conn,
        &NewTenant {
            name: slug.into(),
            slug: slug.into(),
        },
        owner,
    )
    .await
    .unwrap()
    .id;
    for i in 0..projects_n {
        projects::create(
            &mut conn,
            tenant,
            Some(owner),
            &NewProject {
                name: format!("{slug} {i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    for i in 0..todos_n {
        todos::create(
            &mut conn,
            owner,
            &CreateTodo {
                title: format!("{slug} {i}"),
                tenant_id: Some(tenant),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    (tenant, owner)
}

/// A statement written without a tenant filter sees the context's tenant
/// only; without a context the service role sees no tenant row at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_without_a_tenant_filter_sees_only_the_contexts_tenant() {
    let t = TestDb::new().await;
    let (a, ann) = tenant_with_rows(&t, "acme", 3, 2).await;
    let (b, _) = tenant_with_rows(&t, "bolt", 5, 4).await;
    let service = t.service_db();

    let in_a = service.with(Ctx::tenant(a).user(ann));
    let mut conn = in_a.conn().await.unwrap();
    // No WHERE at all: the policy is the filter.
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM projects").await,
        3
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM todos").await, 2);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM tenant_activity").await,
        1
    );
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM projects WHERE tenant_id = '{b}'")
        )
        .await,
        0,
        "asking for the other tenant by name shows nothing either"
    );
    // A repository function handed the other tenant's id: empty.
    let page = projects::list(&mut conn, b, &Default::default(), None, 100)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    // In a transaction too (the settings come with its BEGIN).
    let n = in_a
        .transaction(async |conn| Ok(count(conn, "SELECT count(*) AS n FROM projects").await))
        .await
        .unwrap();
    assert_eq!(n, 3);
    drop(conn);

    // No context: no tenant's rows, never every tenant's.
    let mut conn = service.conn().await.unwrap();
    for table in [
        "projects",
        "todos",
        "tenant_members",
        "tenant_activity",
        "workflows",
        "executions",
    ] {
        assert_eq!(
            count(&mut conn, &format!("SELECT count(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
    // The superuser sees both (it bypasses row-level security): the rows are there.
    assert_eq!(
        count(&mut *t.conn().await, "SELECT count(*) AS n FROM projects").await,
        8
    );
}

/// Personal rows (no tenant) are the acting user's alone.
#[tokio::test(flavor = "multi_thread")]
async fn personal_rows_belong_to_the_acting_user() {
    let t = TestDb::new().await;
    let mut conn = t.conn().await;
    let ann = users::create(
        &mut conn,
        &NewUser {
            email: "ann@example.com".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id;
    let bob = users::create(
        &mut conn,
        &NewUser {
            email: "bob@example.com".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id;
    drop(conn);
    let service = t.service_db();
    let as_ann = service.with(Ctx::new().user(ann));
    let todo = as_ann
        .transaction(async |conn| {
            todos::create(
                conn,
                ann,
                &CreateTodo {
                    title: "mine".into(),
                    ..Default::default()
                },
            )
            .await
        })
        .await
        .unwrap();
    let as_bob = service.with(Ctx::new().user(bob));
    let mut conn = as_bob.conn().await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM todos").await, 0);
    assert!(matches!(
        todos::find(&mut conn, ann, todo.id).await,
        Err(Error::NotFound { .. })
    ));
    // Bob cannot write a personal row for Ann either.
    let e = todos::create(
        &mut conn,
        ann,
        &CreateTodo {
            title: "forged".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    assert_eq!(
        count(
            &mut as_ann.conn().await.unwrap(),
            "SELECT count(*) AS n FROM todos"
        )
        .await,
        1
    );
}

/// Before joining, an invitee reads the pending invitations sent to their
/// verified address in every tenant, with no tenant in the context (the
/// `invitee` policy): no other user's, none once accepted, none while the
/// address is unverified, and no other row of those tenants.
#[tokio::test(flavor = "multi_thread")]
async fn an_invitee_reads_their_own_invitations_before_joining() {
    use database::tenancy::{NewInvite, TenantRole, tenant_invites};
    let t = TestDb::new().await;
    let (a, a_owner) = tenant_with_rows(&t, "inv-a", 1, 1).await;
    let (b, b_owner) = tenant_with_rows(&t, "inv-b", 1, 1).await;
    let mut conn = t.conn().await;
    let mut user = async |email: &str| {
        users::create(
            &mut conn,
            &NewUser {
                email: email.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
    };
    let cat = user("Cat@Example.com").await;
    let dan = user("dan@example.com").await;
    conn.batch_execute(&format!(
        "UPDATE users SET email_verified = true WHERE id IN ('{cat}', '{dan}')"
    ))
    .await
    .unwrap();
    let mut tokens = Vec::new();
    for (tenant, owner) in [(a, a_owner), (b, b_owner)] {
        for email in ["cat@example.com", "dan@example.com"] {
            let issued = tenant_invites::invite(
                &mut conn,
                tenant,
                owner,
                &NewInvite {
                    email: email.into(),
                    role: TenantRole::Member,
                    ttl_seconds: 86_400,
                },
            )
            .await
            .unwrap();
            tokens.push((tenant, email, issued.token));
        }
    }
    drop(conn);
    let service = t.service_db();
    let as_cat = service.with(Ctx::new().user(cat));
    let tenants_seen = async |db: &Db, whose: UserId| {
        let mut conn = db.conn().await.unwrap();
        let page = tenant_invites::pending_for_invitee(&mut conn, whose, None, 10)
            .await
            .unwrap();
        page.items
            .iter()
            .map(|i| i.tenant_id)
            .collect::<HashSet<_>>()
    };
    assert_eq!(tenants_seen(&as_cat, cat).await, HashSet::from([a, b]));
    // Dan's invitations are not Cat's to read, even asked for by id.
    assert!(tenants_seen(&as_cat, dan).await.is_empty());
    let mut conn = as_cat.conn().await.unwrap();
    // A statement with no filter: Cat's two, and no other row of the tenants.
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM tenant_invites").await,
        2
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM projects").await,
        0
    );
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM todos").await, 0);
    drop(conn);
    // Accepting runs in the invitation's tenant; the accepted one is gone
    // from the list.
    let (_, _, token) = tokens
        .iter()
        .find(|(tenant, email, _)| *tenant == a && *email == "cat@example.com")
        .unwrap();
    service
        .with(Ctx::tenant(a).user(cat))
        .transaction(async |conn| tenant_invites::accept(conn, a, token.expose(), cat).await)
        .await
        .unwrap();
    assert_eq!(tenants_seen(&as_cat, cat).await, HashSet::from([b]));
    // An address not verified reads none: anyone can sign up with it.
    t.conn()
        .await
        .batch_execute(&format!(
            "UPDATE users SET email_verified = false WHERE id = '{cat}'"
        ))
        .await
        .unwrap();
    assert!(tenants_seen(&as_cat, cat).await.is_empty());
}

/// The URL a `Db` was built with.
fn url_as_is(db: &Db) -> String {
    db.config().database_url.clone()
}

/// A row written for another tenant than the context's is refused by the
/// policy's WITH CHECK, as a typed error, and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn writing_another_tenants_row_is_forbidden() {
    let t = TestDb::new().await;
    let (a, ann) = tenant_with_rows(&t, "acme", 0, 0).await;
    let (b, _) = tenant_with_rows(&t, "bolt", 1, 0).await;
    let in_a = t.service_db().with(Ctx::tenant(a).user(ann));
    let e = in_a
        .transaction(async |conn| {
            projects::create(
                conn,
                b,
                Some(ann),
                &NewProject {
                    name: "planted".into(),
                    ..Default::default()
                },
            )
            .await
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Forbidden(ref m) if m.contains("row-level security")),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert_eq!(
        count(
            &mut *t.conn().await,
            &format!("SELECT count(*) AS n FROM projects WHERE tenant_id = '{b}'")
        )
        .await,
        1
    );
    // Moving a row to another tenant is refused the same way.
    let mine = projects::create(
        &mut in_a.conn().await.unwrap(),
        a,
        Some(ann),
        &NewProject {
            name: "mine".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut conn = in_a.conn().await.unwrap();
    let moved = conn
        .batch_execute(&format!(
            "UPDATE projects SET tenant_id = '{b}' WHERE id = '{}'",
            mine.id
        ))
        .await
        .map_err(Error::from)
        .unwrap_err();
    assert!(matches!(moved, Error::Forbidden(_)), "{moved:?}");
}

/// A `Db` whose login would bypass row-level security refuses a tenant
/// context, saying what to change; the recommended configurations pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_that_bypasses_row_level_security_is_refused_for_tenants() {
    let t = TestDb::new().await;
    let (a, ann) = tenant_with_rows(&t, "acme", 2, 0).await;
    let _ = tenant_with_rows(&t, "bolt", 3, 0).await;
    let mut admin = t.conn().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
                 CREATE ROLE rls_test_bypass LOGIN BYPASSRLS;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO rls_test_bypass;
             DO $$ BEGIN
                 CREATE ROLE rls_test_owner LOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             CREATE TABLE owned_tenant_rows (tenant_id uuid);
             ALTER TABLE owned_tenant_rows ENABLE ROW LEVEL SECURITY;
             ALTER TABLE owned_tenant_rows FORCE ROW LEVEL SECURITY;
             ALTER TABLE owned_tenant_rows OWNER TO rls_test_owner;",
        )
        .await
        .unwrap();
    drop(admin);
    let url_as = |user: &str| {
        let mut url = url::Url::parse(&t.url).unwrap();
        url.set_username(user).unwrap();
        url.to_string()
    };
    // The superuser (the test server's login), a BYPASSRLS role, and the
    // owner of a table with row-level security (FORCEd, so its policies
    // apply to it, but an owner may switch them off).
    for (who, url) in [
        ("superuser", t.url.clone()),
        ("BYPASSRLS", url_as("rls_test_bypass")),
        ("owner", url_as("rls_test_owner")),
    ] {
        let db = Db::new(Config::new(url)).unwrap().with(Ctx::tenant(a));
        match db.conn().await {
            Err(Error::Config(m)) => assert!(
                m.contains("DB_APP_ROLE")
                    && m.contains("row-level security")
                    && (who != "owner" || m.contains("owns table owned_tenant_rows")),
                "{who}: {m}"
            ),
            other => panic!("{who}: expected Config, got {:?}", other.map(drop)),
        }
        // The same answer at start-up, before any request.
        let at_start = Db::new(Config::new(url_as_is(&db))).unwrap();
        assert!(
            matches!(at_start.check_tenant_roles().await, Err(Error::Config(_))),
            "{who}: check_tenant_roles"
        );
        // Without a tenant it serves (maintenance, the admin domain).
        assert!(
            Db::new(Config::new(t.url.clone()))
                .unwrap()
                .conn()
                .await
                .is_ok()
        );
    }
    // The authenticator pattern: a privileged login switching to the
    // service role in every transaction.
    let mut config = Config::new(t.url.clone());
    config.app_role = Some(SERVICE_ROLE.into());
    let switching = Db::new(config).unwrap();
    let mut conn = switching
        .with(Ctx::tenant(a).user(ann))
        .conn()
        .await
        .unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM projects").await,
        2
    );
    drop(conn);
    // Even without a context every statement runs as the service role.
    assert_eq!(
        count(
            &mut switching.conn().await.unwrap(),
            "SELECT count(*) AS n FROM projects"
        )
        .await,
        0
    );
    switching.check_tenant_roles().await.unwrap();
    // The service's own login (the README's configuration).
    t.service_db().check_tenant_roles().await.unwrap();
    let mut conn = t.service_db().with(Ctx::tenant(a)).conn().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM projects").await,
        2
    );
}

/// Through the crate's API the escape hatch is the only way across tenants,
/// and each use is logged with its reason.
#[tokio::test(flavor = "current_thread")]
async fn the_escape_hatch_is_the_only_way_across_tenants_and_is_logged() {
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer({
                let events = events.clone();
                move || Collect(events.clone())
            })
            .with_env_filter("database::system=info")
            .finish(),
    );
    let t = TestDb::new().await;
    let (a, _) = tenant_with_rows(&t, "acme", 2, 0).await;
    let _ = tenant_with_rows(&t, "bolt", 3, 0).await;
    let service = t.service_db();
    for ctx in [Ctx::new(), Ctx::tenant(a), Ctx::tenant(TenantId::new())] {
        let mut conn = service.with(ctx).conn().await.unwrap();
        assert!(count(&mut conn, "SELECT count(*) AS n FROM projects").await <= 2);
    }
    let report = service.with(Ctx::system("monthly usage report"));
    let mut conn = report.conn().await.unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM projects").await,
        5
    );
    let logged = events.lock().unwrap().join("");
    assert!(logged.contains("monthly usage report"), "{logged}");
    assert_eq!(logged.matches("cross-tenant access").count(), 1, "{logged}");
}

#[derive(Clone)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl std::io::Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Migrations run as the tables' owner with BYPASSRLS (FORCE makes the
/// policies apply to the owner too; BYPASSRLS lifts them): a backfill over a
/// tenant table updates every row. The same UPDATE as the service role updates none, and `db
/// check` says so of a migration role without BYPASSRLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_backfill_over_a_tenant_table_updates_every_row() {
    use database::migrate::{self, MigrationSet};
    let t = TestDb::new().await;
    tenant_with_rows(&t, "acme", 0, 3).await;
    tenant_with_rows(&t, "bolt", 0, 4).await;
    let mut admin = t.conn().await;
    admin
        .batch_execute(
            "DO $$ BEGIN
                 CREATE ROLE rls_test_migrator LOGIN BYPASSRLS NOSUPERUSER;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT CREATE, USAGE ON SCHEMA public TO rls_test_migrator;
             DO $$ DECLARE t text; BEGIN
                 FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                     EXECUTE format('ALTER TABLE %I OWNER TO rls_test_migrator', t);
                 END LOOP;
             END $$;",
        )
        .await
        .unwrap();
    drop(admin);
    // The project's migrations and a backfill after them.
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&root).unwrap() {
        let from = entry.unwrap().path();
        let to = dir.path().join(from.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&from).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
    }
    let folder = dir.path().join("2099-01-01-000000_backfill");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("up.sql"), "UPDATE todos SET completed = true;").unwrap();
    std::fs::write(
        folder.join("down.sql"),
        "UPDATE todos SET completed = false;",
    )
    .unwrap();
    let with_embedded = MigrationSet::from_dir(dir.path()).unwrap();

    // As the service role: the policies hide every row from the UPDATE.
    let mut service = t.service_db().conn().await.unwrap();
    let updated = diesel::sql_query("UPDATE todos SET completed = true")
        .execute(&mut service)
        .await
        .unwrap();
    assert_eq!(updated, 0);
    drop(service);

    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_username("rls_test_migrator").unwrap();
    let mut migrator = database::db::connect(&Config::new(url.as_str()), url.as_str())
        .await
        .unwrap();
    migrate::run(&mut migrator, &with_embedded).await.unwrap();
    let done = count(
        &mut *t.conn().await,
        "SELECT count(*) AS n FROM todos WHERE completed",
    )
    .await;
    assert_eq!(done, 7, "the backfill saw every tenant's rows");
    let problems = database::db::roles::check(&mut migrator, SERVICE_ROLE)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let problems =
        database::db::roles::check(&mut t.service_db().conn().await.unwrap(), SERVICE_ROLE)
            .await
            .unwrap();
    assert!(
        problems.iter().any(|p| matches!(
            p,
            database::db::roles::RoleProblem::MigrationRoleFiltered(_)
        )),
        "{problems:?}"
    );
}

/// `db check`'s view: every tenant table guarded, the service role granted
/// and not bypassing; and each problem named when it is not so.
#[tokio::test(flavor = "multi_thread")]
async fn the_role_check_names_unguarded_tables_missing_grants_and_bypassing_roles() {
    use database::db::roles::{RoleProblem, check};
    let t = TestDb::new().await;
    let mut admin = t.conn().await;
    assert_eq!(check(&mut admin, SERVICE_ROLE).await.unwrap(), []);
    admin
        .batch_execute(&format!(
            "CREATE TABLE scratch (id uuid PRIMARY KEY, tenant_id uuid NOT NULL);
             ALTER TABLE projects NO FORCE ROW LEVEL SECURITY;
             REVOKE INSERT, DELETE ON todos FROM {SERVICE_ROLE};"
        ))
        .await
        .unwrap();
    let problems = check(&mut admin, SERVICE_ROLE).await.unwrap();
    assert!(
        problems.contains(&RoleProblem::TenantTableUnguarded("projects".into())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RoleProblem::TenantTableUnguarded("scratch".into())),
        "{problems:?}"
    );
    assert!(
        problems.contains(&RoleProblem::MissingGrant {
            table: "todos".into(),
            missing: "INSERT, DELETE".into()
        }),
        "{problems:?}"
    );
    let problems = check(&mut admin, "postgres").await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, RoleProblem::ServiceRoleBypasses(..))),
        "{problems:?}"
    );
    let problems = check(&mut admin, "no_such_role_here").await.unwrap();
    assert_eq!(
        problems.last(),
        Some(&RoleProblem::ServiceRoleMissing("no_such_role_here".into()))
    );
}

// ---- Many tenants, many tasks, two processes, through a pooler ----------------

const LOAD_TENANTS: usize = 50;

/// One process of `tenants_stay_apart_under_load_through_a_pooler`: does
/// nothing unless that test started it (with `RLS_LOAD_OUT` set).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rls_load_worker() {
    let Ok(out) = std::env::var("RLS_LOAD_OUT") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    let mut config = Config::new(var("RLS_LOAD_URL"));
    config.pooler = database::db::Pooler::Transaction;
    config.migration_url = Some(var("RLS_LOAD_MIGRATION_URL"));
    config.pool_size = 16;
    let db = Db::new(config).unwrap();
    let pairs: Vec<(TenantId, UserId)> = var("RLS_LOAD_TENANTS")
        .split(',')
        .map(|p| {
            let (t, u) = p.split_once(':').unwrap();
            (
                TenantId::from(uuid::Uuid::parse_str(t).unwrap()),
                UserId::from(uuid::Uuid::parse_str(u).unwrap()),
            )
        })
        .collect();
    let seconds: u64 = var("RLS_LOAD_SECONDS").parse().unwrap();
    let tag = var("RLS_LOAD_TAG");
    let report = load(&db, &pairs, &tag, Duration::from_secs(seconds)).await;
    std::fs::write(out, report).unwrap();
}

/// 16 tasks each writing and reading as a random tenant until `time` has
/// passed; "ops errors foreign" as text.
async fn load(db: &Db, pairs: &[(TenantId, UserId)], tag: &str, time: Duration) -> String {
    #[derive(diesel::QueryableByName)]
    struct Seen {
        #[diesel(sql_type = Nullable<Text>)]
        tenant: Option<String>,
    }
    let end = Instant::now() + time;
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let db = db.clone();
            let pairs = pairs.to_vec();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let (mut ops, mut errors, mut foreign) = (0u64, Vec::new(), 0u64);
                let mut i = task;
                while Instant::now() < end {
                    i = (i * 7 + 13) % pairs.len();
                    let (tenant, user) = pairs[i];
                    let scoped = db.with(
                        Ctx::tenant(tenant)
                            .user(user)
                            .timeout(Duration::from_secs(10)),
                    );
                    let result = scoped
                        .transaction(async |conn| {
                            todos::create(
                                conn,
                                user,
                                &CreateTodo {
                                    title: format!("{tag} {ops}"),
                                    tenant_id: Some(tenant),
                                    ..Default::default()
                                },
                            )
                            .await?;
                            // No tenant filter: whatever comes back must be this tenant's.
                            let seen: Vec<Seen> =
                                diesel::sql_query("SELECT tenant_id::text AS tenant FROM todos")
                                    .load(conn)
                                    .await?;
                            Ok(seen
                                .into_iter()
                                .filter(|s| s.tenant.as_deref() != Some(&tenant.to_string()))
                                .count())
                        })
                        .await;
                    match result {
                        Ok(n) => foreign += n as u64,
                        Err(e) => errors.push(e.to_string()),
                    }
                    // A read outside a transaction: the settings come with it.
                    match scoped.conn().await {
                        Ok(mut conn) => match diesel::sql_query(
                            "SELECT tenant_id::text AS tenant FROM projects",
                        )
                        .load::<Seen>(&mut conn)
                        .await
                        {
                            Ok(rows) => {
                                foreign += rows
                                    .iter()
                                    .filter(|s| s.tenant.as_deref() != Some(&tenant.to_string()))
                                    .count() as u64
                            }
                            Err(e) => errors.push(e.to_string()),
                        },
                        Err(e) => errors.push(e.to_string()),
                    }
                    ops += 2;
                }
                (ops, errors, foreign)
            })
        })
        .collect();
    let (mut ops, mut errors, mut foreign) = (0, Vec::new(), 0);
    for task in tasks {
        let (o, e, f) = task.await.unwrap();
        ops += o;
        errors.extend(e);
        foreign += f;
    }
    format!("{ops} {} {foreign}\n{}", errors.len(), errors.join("\n"))
}

/// 50 tenants, 16 tasks in each of two processes, through a PgBouncer in
/// transaction mode with fewer server connections than clients: no row of
/// another tenant read or written, no error; afterwards every server
/// connection, taken at once, starts its transactions with no tenant set.
/// 3 s here; 30 s with `DB_TEST_LONG=1`.
#[tokio::test(flavor = "multi_thread")]
async fn tenants_stay_apart_under_load_through_a_pooler() {
    let bouncer = match common::start_bouncer() {
        Ok(b) => b,
        Err(e) => {
            common::skip_without("pgbouncer", &e);
            return;
        }
    };
    let t = TestDb::new().await;
    let mut pairs = Vec::new();
    for i in 0..LOAD_TENANTS {
        let (tenant, user) = tenant_with_rows(&t, &format!("t{i:02}"), 1, 0).await;
        pairs.push(format!("{tenant}:{user}"));
    }
    let seconds = if std::env::var("DB_TEST_LONG").is_ok_and(|v| v == "1") {
        30
    } else {
        3
    };
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            let out = dir.path().join(format!("p{p}.txt"));
            let child = tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "rls_load_worker", "--nocapture"])
                .env("RLS_LOAD_OUT", &out)
                .env("RLS_LOAD_URL", bouncer.url_of(SERVICE_ROLE, &t.name))
                .env("RLS_LOAD_MIGRATION_URL", &t.url)
                .env("RLS_LOAD_TENANTS", pairs.join(","))
                .env("RLS_LOAD_SECONDS", seconds.to_string())
                .env("RLS_LOAD_TAG", format!("p{p}"))
                .env_remove("DB_TEST_POOLER")
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut total = 0;
    for (mut child, out) in children {
        assert!(child.wait().await.unwrap().success());
        let report = std::fs::read_to_string(out).unwrap();
        let mut head = report
            .lines()
            .next()
            .unwrap()
            .split(' ')
            .map(|n| n.parse::<u64>().unwrap());
        let (ops, errors, foreign) = (
            head.next().unwrap(),
            head.next().unwrap(),
            head.next().unwrap(),
        );
        assert_eq!(foreign, 0, "rows of another tenant were seen");
        assert_eq!(errors, 0, "{report}");
        total += ops;
    }
    assert!(total > 100, "too little load to mean anything: {total}");
    eprintln!(
        "{total} operations of 50 tenants from two processes through PgBouncer: 0 foreign rows, 0 errors"
    );

    // Every server connection at once (each held by an open transaction):
    // none carries a tenant left over from a client before.
    let server_connections = common::BOUNCER_POOL_SIZE;
    let mut config = Config::new(bouncer.url_of(SERVICE_ROLE, &t.name));
    config.pooler = database::db::Pooler::Transaction;
    config.migration_url = Some(t.url.clone());
    config.pool_size = server_connections;
    let db = Db::new(config).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(server_connections));
    let seen: Vec<_> = (0..server_connections)
        .map(|_| {
            let db = db.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                db.transaction(async |conn| {
                    #[derive(diesel::QueryableByName)]
                    struct Setting {
                        #[diesel(sql_type = Nullable<Text>)]
                        value: Option<String>,
                    }
                    let s: Setting = diesel::sql_query(
                        "SELECT current_setting('app.tenant_id', true) AS value, pg_backend_pid()",
                    )
                    .get_result(conn)
                    .await?;
                    barrier.wait().await;
                    Ok(s.value)
                })
                .await
                .unwrap()
            })
        })
        .collect();
    let mut values = HashSet::new();
    for s in seen {
        values.insert(s.await.unwrap().unwrap_or_default());
    }
    assert_eq!(
        values,
        HashSet::from([String::new()]),
        "a tenant survived its transaction"
    );
}

/// A function that pipelines two reads on one connection outside a
/// transaction (the workflow and its executions, sent at once) sees the
/// context in both: each runs in a transaction of its own that carries the
/// settings, and they must not interleave (a COMMIT of one landed before the
/// other's statement, which then ran with no tenant and saw nothing).
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_reads_under_a_context_see_the_tenant_in_every_statement() {
    use database::workflows::{executions, workflows};
    let t = TestDb::new().await;
    let (a, ann) = tenant_with_rows(&t, "pipe", 0, 0).await;
    let workflow = workflows::create(
        &mut *t.conn().await,
        a,
        Some(ann),
        &workflows::NewWorkflow {
            name: "piped".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        executions::start(&mut *t.conn().await, a, workflow.id, &Default::default())
            .await
            .unwrap();
    }
    let service = t.service_db().with(Ctx::tenant(a).user(ann));
    // New connections each round: the statements are not prepared yet, so
    // each needs a round trip of its own before it runs.
    for _ in 0..5 {
        let mut conn = service.conn().await.unwrap().detach();
        let tree = workflows::find_with_recent_executions(&mut conn, a, workflow.id, 10)
            .await
            .unwrap();
        assert_eq!(
            tree.executions.len(),
            3,
            "the pipelined read of the executions"
        );
    }
}
