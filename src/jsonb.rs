//! `JsonbOf<T>`: a JSONB column read straight into a typed `T`.
//!
//! Diesel reads JSONB as `serde_json::Value`; turning that into a typed
//! struct means building the whole tree, cloning it and walking it again.
//! `JsonbOf<T>` deserializes from the wire bytes in one pass, and fields `T`
//! does not name are skipped without being built (the start of a 1,000-node
//! workflow run reads only the node ids this way).

use diesel::deserialize::{self, FromSql, Queryable};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Jsonb;
use serde::de::DeserializeOwned;

/// A JSONB value deserialized directly into `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonbOf<T>(pub T);

impl<T: DeserializeOwned> FromSql<Jsonb, Pg> for JsonbOf<T> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        // JSONB's binary format: a version byte (1), then the JSON text.
        match value.as_bytes().split_first() {
            Some((1, json)) => serde_json::from_slice(json)
                .map(JsonbOf)
                .map_err(|e| format!("stored JSONB does not have the expected shape: {e}").into()),
            _ => Err("unsupported JSONB encoding version".into()),
        }
    }
}

// What `#[derive(FromSqlRow)]` writes, for a generic type.
impl<T: DeserializeOwned> Queryable<Jsonb, Pg> for JsonbOf<T> {
    type Row = Self;

    fn build(row: Self) -> deserialize::Result<Self> {
        Ok(row)
    }
}
