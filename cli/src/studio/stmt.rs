//! What the studio's code passes between its layers, whichever the backend:
//! the SQL dialect, a bind value, a statement with its binds, a row, what a
//! write did. It imports nothing of the studio, so the catalog
//! (`catalog.rs`, `sqlite/catalog.rs`), the backends' runners (`sqlite/`) and
//! the dispatch by backend (`query.rs`) sit on it without importing each
//! other in a circle.

use std::fmt;

/// Which SQL the studio writes: placeholders, casts, the select list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Postgres,
    Sqlite,
}

/// A bind value. PostgreSQL statements bind text and cast it on the
/// server (`CAST($1 AS type)`); SQLite has no such types, so the text is
/// turned into the column's storage class here (`Column::value`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    Real(f64),
    Blob(Vec<u8>),
}

impl Value {
    /// How the value is bound when that is not text (the preview says so:
    /// a UUID shown as text travels as 16 bytes on SQLite).
    pub fn storage(&self) -> Option<String> {
        match self {
            Value::Text(_) => None,
            Value::Int(_) => Some("integer".into()),
            Value::Real(_) => Some("real".into()),
            Value::Blob(b) => Some(format!("blob, {} bytes", b.len())),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(t) => f.write_str(t),
            Value::Int(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r}"),
            Value::Blob(b) => f.write_str(&blob_text(b)),
        }
    }
}

/// One statement and its bind values (`None` is NULL).
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    pub sql: String,
    pub binds: Vec<Option<Value>>,
    pub dialect: Dialect,
}

impl Stmt {
    /// An empty statement in `dialect`.
    pub fn new(dialect: Dialect) -> Stmt {
        Stmt {
            dialect,
            ..Stmt::default()
        }
    }

    /// Adds a bind value and returns its placeholder: `$n` on PostgreSQL,
    /// `?n` on SQLite (numbered, so a placeholder may appear twice).
    pub fn bind(&mut self, value: Option<Value>) -> String {
        self.binds.push(value);
        match self.dialect {
            Dialect::Postgres => format!("${}", self.binds.len()),
            Dialect::Sqlite => format!("?{}", self.binds.len()),
        }
    }

    /// `bind` of text.
    pub fn bind_text(&mut self, value: Option<String>) -> String {
        self.bind(value.map(Value::Text))
    }
}

/// A row: the columns' text forms (NULL is `None`).
pub type Row = Vec<Option<String>>;

/// What a write did: how many rows it touched, and the rows its
/// `RETURNING` gave (PostgreSQL; SQLite's writes return none).
pub struct Written {
    pub rows: usize,
    pub returned: Vec<Row>,
}

/// Why the console did not show a result.
pub enum ConsoleError {
    /// Refused before it ran (not one read-only query).
    Refused(String),
    /// It ran and failed.
    Failed(database::Error),
}

/// The text form of bytes: a 16-byte value as a UUID (how the crate stores
/// ids on SQLite), anything else as `\x` and hex (PostgreSQL's `bytea` form).
pub fn blob_text(bytes: &[u8]) -> String {
    match uuid::Uuid::from_slice(bytes) {
        Ok(id) => id.hyphenated().to_string(),
        Err(_) => format!("\\x{}", hex::encode(bytes)),
    }
}

/// The bytes a text form names (`blob_text`'s inverse).
pub fn blob_of(text: &str) -> Option<Vec<u8>> {
    if let Some(h) = text.strip_prefix("\\x") {
        return hex::decode(h).ok();
    }
    uuid::Uuid::parse_str(text)
        .ok()
        .map(|id| id.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_their_text_form() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(blob_text(id.as_bytes()), id.to_string());
        assert_eq!(blob_of(&id.to_string()), Some(id.as_bytes().to_vec()));
        assert_eq!(blob_text(&[1, 2, 255]), "\\x0102ff");
        assert_eq!(blob_of("\\x0102ff"), Some(vec![1, 2, 255]));
        assert_eq!(blob_of("nope"), None);
    }
}
