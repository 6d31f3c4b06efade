//! Rust enums for PostgreSQL enum types.
//!
//! `diesel print-schema` generates a marker type per PostgreSQL enum in
//! `schema::sql_types`; `sql_enum!` ties a Rust enum to it, mapping each
//! variant to its label. The labels are written once, here, next to the
//! variants, and a test compares them with `pg_enum` so the two can't drift.

/// Defines a Rust enum stored as a PostgreSQL enum type (and, with
/// `, sqlite Text` after the type, as text on SQLite too).
///
/// ```ignore
/// sql_enum! {
///     /// What a verification token proves.
///     pub enum VerificationPurpose: crate::schema::sql_types::VerificationPurpose {
///         EmailVerification => "email_verification",
///         PasswordReset => "password_reset",
///     }
/// }
/// ```
macro_rules! sql_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $sql_type:ty $(, sqlite $sqlite_type:ty)? {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = $sql_type)]
        $(#[diesel(sql_type = $sqlite_type)])?
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $label)] $variant ),+
        }

        impl $name {
            /// Every variant, in declaration (and PostgreSQL sort) order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The PostgreSQL label of this variant.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// This variant as a SQL literal (`'label'`) instead of a bind
            /// value. A bound value of a custom type costs diesel-async a
            /// type lookup and a second serialization of every bind on each
            /// query, and hides the value from the planner. The literal
            /// makes the SQL text depend on the value, so Diesel will not
            /// cache the statement unless it is wrapped in `.cached()`
            /// (keyed by text); hot statements that use it are.
            pub fn literal(self) -> diesel::expression::SqlLiteral<$sql_type> {
                diesel::dsl::sql::<$sql_type>(match self {
                    $($name::$variant => concat!("'", $label, "'")),+
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($label => Ok($name::$variant),)+
                    other => Err($crate::Error::invalid(
                        stringify!($name),
                        "enum",
                        format!("unknown value {other:?}; expected one of: {}", [$($label),+].join(", ")),
                    )),
                }
            }
        }

        impl diesel::serialize::ToSql<$sql_type, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                use std::io::Write;
                out.write_all(self.as_str().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<$sql_type, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                match bytes.as_bytes() {
                    $(b if b == $label.as_bytes() => Ok($name::$variant),)+
                    other => Err(format!(
                        "unrecognized {} value {:?}",
                        stringify!($name),
                        String::from_utf8_lossy(other)
                    ).into()),
                }
            }
        }

        $(
        impl diesel::serialize::ToSql<$sqlite_type, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
            ) -> diesel::serialize::Result {
                out.set_value(self.as_str());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<$sqlite_type, diesel::sqlite::Sqlite> for $name {
            fn from_sql(
                bytes: diesel::sqlite::SqliteValue<'_, '_, '_>,
            ) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<
                    diesel::sql_types::Text,
                    diesel::sqlite::Sqlite,
                >>::from_sql(bytes)?;
                text.parse::<$name>().map_err(|e| e.to_string().into())
            }
        }
        )?
    };
}

pub(crate) use sql_enum;
