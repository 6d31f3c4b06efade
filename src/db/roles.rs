//! The roles row-level security depends on (docs/design.md, "Roles"): what
//! a transaction sets for its context, and whether the service's login
//! would bypass the policies.

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
    /// A tenant table the login owns whose policies do not apply to its
    /// owner (`FORCE` missing).
    #[diesel(sql_type = Nullable<Text>)]
    owned_unforced: Option<String>,
}

impl RoleCheck {
    /// Asks the server about the login role (`current_user`).
    pub(super) async fn of(conn: &mut PgConn) -> Result<RoleCheck> {
        let login: Login = diesel::sql_query(
            "SELECT r.rolname::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls, \
               (SELECT c.relname::text FROM pg_class c \
                WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p') AND c.relrowsecurity \
                  AND NOT c.relforcerowsecurity LIMIT 1) AS owned_unforced \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .get_result(conn)
        .await?;
        let login_bypasses = if login.superuser {
            Some(format!("role {} is a superuser", login.name))
        } else if login.bypassrls {
            Some(format!("role {} has BYPASSRLS", login.name))
        } else {
            login.owned_unforced.map(|t| {
                format!(
                    "role {} owns table {t}, whose row-level security is not FORCEd",
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
