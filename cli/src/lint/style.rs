//! Style rules (warnings): the project's conventions for new columns.
//! `bigint` or `uuid` keys, `timestamptz`, `text` with a `CHECK` for lengths.

use pg_query::protobuf::{ColumnDef, ConstrType};

use super::ast::{self, ColType, QName};
use super::{Pass, Rule};

impl Pass<'_> {
    /// `pk_keys`: the columns of a table-level PRIMARY KEY in the same CREATE TABLE.
    pub(super) fn check_column_style(
        &mut self,
        table: &QName,
        col: &ColumnDef,
        pk_keys: &[String],
    ) {
        let Some(ty) = col.type_name.as_ref().map(ColType::of) else {
            return;
        };
        let column = format!("{table}.\"{}\"", col.colname);
        let primary = ast::column_constraints(col)
            .iter()
            .any(|c| ast::is(c, ConstrType::ConstrPrimary))
            || (pk_keys.len() == 1 && pk_keys[0] == col.colname);
        if primary && ty.is_small_int() && !ty.array {
            self.report(
                Rule::IntPrimaryKey,
                format!("primary key {column} is {}", ty.display()),
            );
        }
        if ty.name == "timestamp" {
            self.report(
                Rule::TimestampWithoutTimeZone,
                format!("column {column} is timestamp without time zone"),
            );
        }
        if (ty.name == "varchar" && !ty.mods.is_empty()) || ty.name == "bpchar" {
            self.report(
                Rule::PreferText,
                format!("column {column} is {}", ty.display()),
            );
        }
    }
}
