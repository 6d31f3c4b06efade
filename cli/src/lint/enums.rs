//! Hazard family "enums": renaming a label (running code still uses the old
//! one), and using a label in the transaction that added it.

use pg_query::protobuf::{AlterEnumStmt, Node};

use super::ast::{self, QName};
use super::{Pass, Rule};

impl Pass<'_> {
    pub(super) fn check_alter_enum(&mut self, e: &AlterEnumStmt) {
        let ty = QName::of_list(&e.type_name);
        if self.created_types.contains(&ty) {
            return;
        }
        if !e.old_val.is_empty() {
            self.report(
                Rule::EnumRenameValue,
                format!(
                    "ALTER TYPE {ty} RENAME VALUE '{}' TO '{}'",
                    e.old_val, e.new_val
                ),
            );
            return;
        }
        if self.in_transaction {
            if self.options.pg_version < 12 {
                self.report_with(
                    Rule::NotInTransaction,
                    format!(
                        "ALTER TYPE {ty} ADD VALUE '{}' in a transaction: refused before PostgreSQL 12 (target {})",
                        e.new_val, self.options.pg_version
                    ),
                    "Before PostgreSQL 12, ALTER TYPE ... ADD VALUE cannot run inside a transaction block. Put it in its own migration with metadata.toml `run_in_transaction = false`.".into(),
                );
            }
            self.added_enum_values.push(e.new_val.clone());
        } else if self.statement_count > 1 {
            // Statement by statement under `db migrate`; one batch under the diesel CLI.
            self.added_enum_values.push(e.new_val.clone());
        }
    }

    /// A statement that uses a label this migration added in the same
    /// transaction (any string constant equal to it counts).
    pub(super) fn check_enum_use(&mut self, stmt: &Node) {
        if self.added_enum_values.is_empty() {
            return;
        }
        let used = ast::string_constants(stmt)
            .into_iter()
            .find(|s| self.added_enum_values.contains(s));
        let Some(label) = used else {
            return;
        };
        if self.in_transaction {
            self.report(
                Rule::EnumValueUsedInTransaction,
                format!("enum value '{label}' is used in the transaction that added it"),
            );
        } else {
            self.report_diesel_batch(format!(
                "enum value '{label}' is used in the file that added it: fine statement by statement, \"unsafe use of new value\" as one batch"
            ));
        }
    }
}
