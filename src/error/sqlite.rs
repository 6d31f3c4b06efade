//! SQLite's constraint and schema errors in the crate's terms, read from
//! their messages (SQLite reports no constraint name, column or table in
//! fields of their own): the same `Error` variant, field and constraint name
//! that PostgreSQL gives for the same rule wherever SQLite's message says it.
//!
//! - `CHECK constraint failed: NAME`: `Invalid { field: NAME, code: "check" }`.
//! - `NOT NULL constraint failed: table.column`: `Invalid { field: column,
//!   code: "required" }`.
//! - `UNIQUE constraint failed: index 'NAME'` (an expression index):
//!   `Conflict { constraint: NAME }`. By columns (`table.a, table.b`):
//!   `Conflict` on those columns, which `db::sqlite::named` turns into the
//!   index's name by reading the file's catalog.
//! - `FOREIGN KEY constraint failed`: `Conflict { constraint:
//!   FOREIGN_KEY_UNNAMED }`; SQLite never says which key.
//! - `no such table`, `no such column`, `has no column named`: `SchemaMismatch`.

use diesel::result::DatabaseErrorKind;

use super::Error;

/// The constraint of a broken foreign key on SQLite, which names none (on
/// PostgreSQL: `<table>_<column>_fkey`).
pub const FOREIGN_KEY_UNNAMED: &str = "FOREIGN KEY";

/// The start of SQLite's message for a violated UNIQUE rule or primary key.
pub(crate) const UNIQUE_FAILED: &str = "UNIQUE constraint failed: ";

/// The crate's error for SQLite's `message`, `None` when it is not one of
/// SQLite's constraint or schema messages.
pub(super) fn classify(kind: &DatabaseErrorKind, message: &str) -> Option<Error> {
    let conflict = |constraint: &str| Error::Conflict {
        constraint: constraint.to_owned(),
        message: message.to_owned(),
    };
    match kind {
        DatabaseErrorKind::CheckViolation => {
            let name = message.strip_prefix("CHECK constraint failed: ")?.trim();
            Some(Error::invalid(
                name.to_owned(),
                "check",
                format!("violates check constraint {name}"),
            ))
        }
        DatabaseErrorKind::NotNullViolation => {
            let column = message.strip_prefix("NOT NULL constraint failed: ")?.trim();
            let column = column.rsplit_once('.').map_or(column, |(_, c)| c);
            Some(Error::invalid(
                column.to_owned(),
                "required",
                message.to_owned(),
            ))
        }
        DatabaseErrorKind::UniqueViolation => {
            let detail = message.strip_prefix(UNIQUE_FAILED)?.trim();
            match detail.strip_prefix("index '") {
                Some(index) => Some(conflict(index.trim_end_matches('\''))),
                None => Some(conflict(detail)),
            }
        }
        DatabaseErrorKind::ForeignKeyViolation => message
            .starts_with("FOREIGN KEY constraint failed")
            .then(|| conflict(FOREIGN_KEY_UNNAMED)),
        DatabaseErrorKind::Unknown => {
            let missing = message.starts_with("no such table: ")
                || message.starts_with("no such column: ")
                || (message.starts_with("table ") && message.contains(" has no column named "));
            missing.then(|| Error::SchemaMismatch(message.to_owned()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(err: Error) -> (String, String) {
        match err {
            Error::Invalid(input) => (
                input.fields[0].field.clone(),
                input.fields[0].code.to_string(),
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_message_form() {
        let check = classify(
            &DatabaseErrorKind::CheckViolation,
            "CHECK constraint failed: users_name_length",
        );
        assert_eq!(
            field(check.unwrap()),
            ("users_name_length".into(), "check".into())
        );
        let null = classify(
            &DatabaseErrorKind::NotNullViolation,
            "NOT NULL constraint failed: users.email",
        );
        assert_eq!(field(null.unwrap()), ("email".into(), "required".into()));
        let by_index = classify(
            &DatabaseErrorKind::UniqueViolation,
            "UNIQUE constraint failed: index 'users_email_lower_key'",
        );
        assert!(by_index.unwrap().is_conflict("users_email_lower_key"));
        let by_columns = classify(
            &DatabaseErrorKind::UniqueViolation,
            "UNIQUE constraint failed: accounts.user_id, accounts.provider",
        );
        assert!(
            by_columns
                .unwrap()
                .is_conflict("accounts.user_id, accounts.provider")
        );
        let fk = classify(
            &DatabaseErrorKind::ForeignKeyViolation,
            "FOREIGN KEY constraint failed",
        );
        assert!(fk.unwrap().is_conflict(FOREIGN_KEY_UNNAMED));
        for missing in [
            "no such table: users",
            "no such column: users.nickname",
            "table users has no column named nickname",
        ] {
            assert!(matches!(
                classify(&DatabaseErrorKind::Unknown, missing),
                Some(Error::SchemaMismatch(_))
            ));
        }
        // PostgreSQL's wording is not SQLite's.
        assert!(
            classify(
                &DatabaseErrorKind::NotNullViolation,
                "null value in column \"email\" of relation \"users\" violates not-null constraint"
            )
            .is_none()
        );
    }
}
