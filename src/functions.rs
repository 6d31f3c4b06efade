//! SQL functions used by the repositories, declared once for Diesel.

use diesel::sql_types::Text;

diesel::define_sql_function! {
    /// PostgreSQL `lower(text)`. Case-insensitive lookups compare
    /// `lower(column) = lower($1)` so both sides fold the same way and the
    /// expression index on `lower(column)` is used.
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    /// PostgreSQL `coalesce(a, b)` over nullable timestamps: the state
    /// machines set a timestamp only when it is still empty, in constant SQL.
    fn coalesce(
        a: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
        b: diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>;
}
