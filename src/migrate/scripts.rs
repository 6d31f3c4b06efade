//! `__database_migration_scripts`: the `up.sql` and `down.sql` of every
//! applied migration as they were when it was applied. `db push` reverts an
//! edited migration with the `down.sql` that matches what is really in the
//! database, which the edited file may no longer be. Rows are written in
//! the same transaction as the version's row and cascade away with it.
//! The table is created by the engine's `SETUP_SQL`.

use crate::db::Conn;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;

use super::Migration;

diesel::table! {
    __database_migration_scripts (version) {
        version -> VarChar,
        up_sql -> Text,
        down_sql -> Nullable<Text>,
    }
}
use __database_migration_scripts as scripts;

/// The scripts of one applied version.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct AppliedScripts {
    /// The version.
    pub version: String,
    /// The `up.sql` that was applied.
    pub up_sql: String,
    /// The `down.sql` that was beside it (none when it had none).
    pub down_sql: Option<String>,
}

/// Records (or replaces) the scripts of `m`, whose version row exists.
pub(super) async fn record(conn: &mut Conn, m: &Migration) -> Result<(), DieselError> {
    let down = m.down_sql.as_deref();
    diesel::insert_into(scripts::table)
        .values((
            scripts::version.eq(&m.version),
            scripts::up_sql.eq(m.up_sql.as_ref()),
            scripts::down_sql.eq(down),
        ))
        .on_conflict(scripts::version)
        .do_update()
        .set((
            scripts::up_sql.eq(m.up_sql.as_ref()),
            scripts::down_sql.eq(down),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The stored scripts of every applied version that has them, by version.
pub async fn load(conn: &mut Conn) -> Result<Vec<AppliedScripts>, DieselError> {
    scripts::table
        .select((scripts::version, scripts::up_sql, scripts::down_sql))
        .order(scripts::version)
        .load(conn)
        .await
}
