//! The roles row-level security depends on (docs/design.md, "Roles"): what
//! a transaction sets for its context, whether the service's login would
//! bypass the policies, the service role's grants (`db setup`) and their
//! check (`db check`).

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::ctx::Ctx;
use super::pg_conn::PgConn;
use crate::error::{Error, Result};

/// What a transaction in `ctx` sends after `BEGIN` (same round trip):
/// `SET LOCAL ROLE` when the service logs in as a privileged role
/// (`DB_APP_ROLE`), and the tenant and user as transaction-local settings,
/// which the policies read. `None` when there is nothing to set. The values
/// are typed ids, so the text is safe to inline; the role name was checked
/// by `Config`.
pub(super) fn settings_sql(ctx: &Ctx, app_role: Option<&str>) -> Option<String> {
    if ctx.system_reason().is_some() {
        // The system pool's own role bypasses the policies: nothing to set.
        return None;
    }
    let mut sql = String::new();
    if let Some(role) = app_role {
        sql.push_str(&format!("SET LOCAL ROLE \"{role}\";"));
    }
    let mut configs = Vec::new();
    if let Some(tenant) = ctx.tenant_id() {
        configs.push(format!("set_config('app.tenant_id', '{tenant}', true)"));
    }
    if let Some(user) = ctx.user_id() {
        configs.push(format!("set_config('app.user_id', '{user}', true)"));
    }
    if !configs.is_empty() {
        sql.push_str("SELECT ");
        sql.push_str(&configs.join(", "));
    }
    (!sql.is_empty()).then_some(sql)
}

/// What the service's login (and the role it switches to) can do with
/// row-level security.
pub(super) struct RoleCheck {
    /// Why the login bypasses the policies (`None`: it does not).
    login_bypasses: Option<String>,
    /// Why the `DB_APP_ROLE` role bypasses them, or is missing.
    app_role_problem: Option<String>,
}

#[derive(QueryableByName)]
struct Login {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    superuser: bool,
    #[diesel(sql_type = Bool)]
    bypassrls: bool,
    /// A table with row-level security that the login owns: without
    /// `FORCE` its policies do not apply to it, and with `FORCE` it can still
    /// turn them off (`ALTER TABLE ... NO FORCE ROW LEVEL SECURITY`).
    #[diesel(sql_type = Nullable<Text>)]
    owned: Option<String>,
}

impl RoleCheck {
    /// Asks the server about the login role (`current_user`).
    pub(super) async fn of(conn: &mut PgConn) -> Result<RoleCheck> {
        let login: Login = diesel::sql_query(
            "SELECT r.rolname::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, \
               (SELECT c.relname::text FROM pg_class c \
                WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p') AND c.relrowsecurity \
                ORDER BY c.relforcerowsecurity, c.relname LIMIT 1) AS owned \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .get_result(conn)
        .await?;
        let login_bypasses = if login.superuser {
            Some(format!("role {} is a superuser", login.name))
        } else if login.bypassrls {
            Some(format!("role {} has BYPASSRLS", login.name))
        } else {
            login.owned.map(|t| {
                format!(
                    "role {} owns table {t} (an owner can switch its row-level security off)",
                    login.name
                )
            })
        };
        Ok(RoleCheck {
            login_bypasses,
            app_role_problem: None,
        })
    }

    /// Also checks the role transactions switch to (`DB_APP_ROLE`).
    pub(super) async fn with_app_role(mut self, conn: &mut PgConn, role: &str) -> Result<Self> {
        #[derive(QueryableByName)]
        struct Target {
            #[diesel(sql_type = Nullable<Bool>)]
            bypasses: Option<bool>,
        }
        let target: Target = diesel::sql_query(
            "SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = $1) AS bypasses",
        )
        .bind::<Text, _>(role)
        .get_result(conn)
        .await?;
        self.app_role_problem = match target.bypasses {
            None => Some(format!(
                "DB_APP_ROLE names role {role}, which does not exist (`db setup` creates it)"
            )),
            Some(true) => Some(format!(
                "DB_APP_ROLE names role {role}, which bypasses row-level security (superuser or BYPASSRLS)"
            )),
            Some(false) => None,
        };
        Ok(self)
    }

    /// Whether a context with a tenant may run: not when the policies would
    /// not apply to the role its statements run as.
    pub(super) fn allows_tenants(&self, app_role: Option<&str>) -> Result<()> {
        if let Some(problem) = &self.app_role_problem {
            return Err(Error::Config(format!(
                "{problem}: tenant isolation would not hold; name a role without BYPASSRLS that \
                 owns no table"
            )));
        }
        match (&self.login_bypasses, app_role) {
            (Some(why), None) => Err(Error::Config(format!(
                "a tenant context needs row-level security, but {why}, so the policies do not \
                 apply to it: connect DATABASE_URL as the service's own role (e.g. app, created \
                 by `db setup`), or set DB_APP_ROLE=app so that every transaction switches to it"
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether `name` can be a role name written into SQL (letters, digits,
/// underscores; what `DB_APP_ROLE` accepts).
pub(crate) fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Creates the service's role `role` when it does not exist (`LOGIN`, not a
/// superuser, no `BYPASSRLS`, owner of nothing; with `password` when given)
/// and grants it what the service needs in the database `conn` is connected
/// to: reading and writing every table of schema `public`, reading (only)
/// the migration bookkeeping (`db.migrate()` checks it at start-up), its
/// sequences, and the same on tables created later by the role running
/// this (the migrations' role: `ALTER DEFAULT PRIVILEGES`). Idempotent; run
/// by `db setup` as the migration role, which needs `CREATEROLE` to create
/// the role (roles are cluster-wide: one per cluster serves every database).
pub async fn grant_service_role(
    conn: &mut PgConn,
    role: &str,
    password: Option<&str>,
) -> Result<()> {
    use diesel_async::SimpleAsyncConnection;
    if !valid_role_name(role) {
        return Err(Error::Config(format!(
            "{role:?} is not a role name this crate writes into SQL (letters, digits, underscores)"
        )));
    }
    let mut sql = format!(
        "DO $$ BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                 CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
             END IF;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN
             NULL; -- created meanwhile by another `db setup`
         END $$;"
    );
    if let Some(password) = password {
        let quoted = password.replace('\'', "''");
        sql.push_str(&format!("ALTER ROLE \"{role}\" PASSWORD '{quoted}';"));
    }
    sql.push_str(&format!(
        "GRANT USAGE ON SCHEMA public TO \"{role}\";
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\";
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO \"{role}\";
         ALTER DEFAULT PRIVILEGES IN SCHEMA public
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO \"{role}\";
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO \"{role}\";
         DO $$ DECLARE t text; BEGIN
             FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
                      WHERE schemaname = 'public' AND tablename LIKE '\\_\\_%' ESCAPE '\\'
             LOOP
                 EXECUTE format('REVOKE INSERT, UPDATE, DELETE ON %s FROM \"{role}\"', t);
             END LOOP;
         END $$;"
    ));
    conn.batch_execute(&sql).await?;
    Ok(())
}

/// Makes the server bound `role`'s statements in `database` as the crate
/// bounds a call (`query_timeout`, `DB_QUERY_TIMEOUT_MS`, and the backstop
/// after it): `statement_timeout` and `idle_in_transaction_session_timeout`
/// as the role's defaults there (`ALTER ROLE ... IN DATABASE ... SET`),
/// what a direct connection sets for its session. Behind a transaction-mode
/// pooler no session setting may be made; with these defaults a statement
/// outside a transaction goes alone instead of in a transaction of its own
/// that carries them (`DB_POOLER`). Returns the limit set. Run by `db setup`;
/// a later, higher `DB_QUERY_TIMEOUT_MS` needs it again (the pool warns).
pub async fn bound_service_role(
    conn: &mut PgConn,
    role: &str,
    database: &str,
    query_timeout: std::time::Duration,
) -> Result<std::time::Duration> {
    use diesel_async::SimpleAsyncConnection;
    if !valid_role_name(role) {
        return Err(Error::Config(format!(
            "{role:?} is not a role name this crate writes into SQL (letters, digits, underscores)"
        )));
    }
    let limit = query_timeout + super::call::SERVER_BACKSTOP;
    let ms = limit.as_millis();
    let database = database.replace('"', "\"\"");
    conn.batch_execute(&format!(
        "ALTER ROLE \"{role}\" IN DATABASE \"{database}\" SET statement_timeout = {ms};
         ALTER ROLE \"{role}\" IN DATABASE \"{database}\" SET idle_in_transaction_session_timeout = {ms};"
    ))
    .await?;
    Ok(limit)
}

/// The role the service's statements run as, which the grants and `db
/// check` are about: `DB_APP_ROLE` when set (the service switches to it), else
/// the user `DATABASE_URL` logs in as when it is not the migration URL's, else
/// `app` (the role `db setup` creates for development, where one URL serves
/// both).
pub fn service_role(config: &super::Config) -> String {
    if let Some(role) = &config.app_role {
        return role.clone();
    }
    let login = |url: &str| super::ConnString::parse(url).user;
    match login(&config.database_url) {
        Some(user) if Some(&user) != login(config.migration_url()).as_ref() => user,
        _ => "app".to_owned(),
    }
}

/// `grant_service_role` without creating the role: when `role` exists, it
/// gets its grants on what the migrations just created (`db migrate`,
/// `Db::migrate`); when it does not, nothing happens (`db setup` creates it).
pub async fn grant_if_exists(conn: &mut PgConn, role: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    let row: Exists =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists")
            .bind::<Text, _>(role)
            .get_result(conn)
            .await?;
    if row.exists {
        grant_service_role(conn, role, None).await?;
    }
    Ok(row.exists)
}

/// What `db check` reports about row-level security and the roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleProblem {
    /// A table with a `tenant_id` column whose rows the policies do not
    /// guard (row-level security off or not forced, or no policy).
    TenantTableUnguarded(String),
    /// The service role misses a privilege on a table.
    MissingGrant {
        /// The table.
        table: String,
        /// The privileges it lacks.
        missing: String,
    },
    /// The service role (named) bypasses row-level security, and why.
    ServiceRoleBypasses(String, String),
    /// The service role does not exist.
    ServiceRoleMissing(String),
    /// The role running migrations is subject to the policies: a backfill
    /// of a tenant table would see no rows.
    MigrationRoleFiltered(String),
}

impl std::fmt::Display for RoleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoleProblem::TenantTableUnguarded(t) => write!(
                f,
                "table {t} has a tenant_id column but row-level security does not guard it \
                 (ENABLE and FORCE ROW LEVEL SECURITY and a policy, in a migration)"
            ),
            RoleProblem::MissingGrant { table, missing } => write!(
                f,
                "the service role lacks {missing} on {table} (`db setup` grants it)"
            ),
            RoleProblem::ServiceRoleBypasses(role, why) => write!(
                f,
                "the service role {role} bypasses row-level security ({why}): tenant isolation \
                 does not hold for the service; give DATABASE_URL a role without BYPASSRLS that \
                 owns nothing (`db setup` creates app), or set DB_APP_ROLE"
            ),
            RoleProblem::ServiceRoleMissing(role) => {
                write!(
                    f,
                    "the service role {role} does not exist (`db setup` creates it)"
                )
            }
            RoleProblem::MigrationRoleFiltered(role) => write!(
                f,
                "the migration role {role} is subject to row-level security: a migration's \
                 backfill of a tenant table would update no row (give it BYPASSRLS)"
            ),
        }
    }
}

/// Checks, on the database `conn` (the migration role's connection) is
/// connected to, that every tenant table is guarded and that `service_role`
/// has its grants and does not bypass the policies.
pub async fn check(conn: &mut PgConn, service_role: &str) -> Result<Vec<RoleProblem>> {
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(QueryableByName)]
    struct Grant {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        missing: String,
    }
    #[derive(QueryableByName)]
    struct Role {
        #[diesel(sql_type = Nullable<Text>)]
        why: Option<String>,
        #[diesel(sql_type = Bool)]
        exists: bool,
    }
    let mut problems = Vec::new();
    let unguarded: Vec<Named> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
         WHERE c.relkind IN ('r', 'p') \
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                       AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) \
         ORDER BY 1",
    )
    .load(conn)
    .await?;
    problems.extend(
        unguarded
            .into_iter()
            .map(|t| RoleProblem::TenantTableUnguarded(t.name)),
    );
    let role: Role = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists, \
           (SELECT CASE WHEN r.rolsuper THEN 'a superuser' WHEN r.rolbypassrls THEN 'BYPASSRLS' \
              ELSE (SELECT 'owner of ' || c.relname FROM pg_class c \
                    WHERE c.relowner = r.oid AND c.relrowsecurity \
                    ORDER BY c.relforcerowsecurity, c.relname LIMIT 1) END \
            FROM pg_roles r WHERE r.rolname = $1) AS why",
    )
    .bind::<Text, _>(service_role)
    .get_result(conn)
    .await?;
    if !role.exists {
        problems.push(RoleProblem::ServiceRoleMissing(service_role.to_owned()));
        return Ok(problems);
    }
    if let Some(why) = role.why {
        problems.push(RoleProblem::ServiceRoleBypasses(
            service_role.to_owned(),
            why,
        ));
    }
    let grants: Vec<Grant> = diesel::sql_query(
        "SELECT t.tablename::text AS name, \
           array_to_string(ARRAY(SELECT p FROM unnest(CASE WHEN t.tablename LIKE '\\_\\_%' \
               ESCAPE '\\' THEN ARRAY['SELECT'] ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] END) p \
             WHERE NOT has_table_privilege($1, format('%I.%I', t.schemaname, t.tablename), p)), ', ') \
             AS missing \
         FROM pg_tables t WHERE t.schemaname = 'public' ORDER BY 1",
    )
    .bind::<Text, _>(service_role)
    .load(conn)
    .await?;
    problems.extend(
        grants
            .into_iter()
            .filter(|g| !g.missing.is_empty())
            .map(|g| RoleProblem::MissingGrant {
                table: g.name,
                missing: g.missing,
            }),
    );
    let me: Role = diesel::sql_query(
        "SELECT true AS exists, \
           CASE WHEN rolsuper OR rolbypassrls THEN NULL ELSE rolname::text END AS why \
         FROM pg_roles WHERE rolname = current_user",
    )
    .get_result(conn)
    .await?;
    if let Some(name) = me.why {
        problems.push(RoleProblem::MigrationRoleFiltered(name));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TenantId, UserId};

    #[test]
    fn only_what_the_context_has_is_set() {
        assert_eq!(settings_sql(&Ctx::new(), None), None);
        let t = TenantId::new();
        let u = UserId::new();
        let sql = settings_sql(&Ctx::tenant(t).user(u), Some("app")).unwrap();
        assert_eq!(
            sql,
            format!(
                "SET LOCAL ROLE \"app\";SELECT set_config('app.tenant_id', '{t}', true), \
                 set_config('app.user_id', '{u}', true)"
            )
        );
        assert_eq!(
            settings_sql(&Ctx::new(), Some("app")).as_deref(),
            Some("SET LOCAL ROLE \"app\";")
        );
        assert_eq!(settings_sql(&Ctx::system("seed"), Some("app")), None);
    }
}
