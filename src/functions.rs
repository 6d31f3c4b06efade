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

diesel::define_sql_function! {
    /// PostgreSQL `= any(array)`: `column.eq(any(values))`, one array bind.
    /// What `eq_any` sends on PostgreSQL, but with a static query id, so
    /// the statement is cached by type and its text written once
    /// (`render_once`); `eq_any`'s is rebuilt and hashed on every call.
    #[sql_name = "any"]
    fn any<ST: diesel::sql_types::SingleValue>(values: diesel::sql_types::Array<ST>) -> ST;
}
