//! Hazard family "constraints": foreign keys and checks added without
//! `NOT VALID`, `VALIDATE CONSTRAINT` in the transaction that added the
//! constraint, and `SET NOT NULL` without a validated check to rely on.

use pg_query::protobuf::{ConstrType, Constraint};

use super::ast::{self, QName};
use super::{Pass, Rule};

impl Pass<'_> {
    pub(super) fn check_add_constraint(&mut self, table: &QName, c: &Constraint) {
        let name = if c.conname.is_empty() {
            "(unnamed)".to_owned()
        } else {
            format!("\"{}\"", c.conname)
        };
        let kind = if ast::is(c, ConstrType::ConstrForeign) {
            "foreign key"
        } else if ast::is(c, ConstrType::ConstrCheck) {
            "check constraint"
        } else {
            self.check_index_constraint(table, c);
            return;
        };
        if c.skip_validation {
            self.added_not_valid
                .insert((table.clone(), c.conname.clone()));
            return;
        }
        let not_null_of = c.raw_expr.as_deref().and_then(ast::is_not_null_test);
        let existing = self.existing(table);
        let advice = match not_null_of {
            // The first step of the SET NOT NULL recipe, done without its point.
            Some(col) => format!(
                "This is the first step of the SET NOT NULL recipe, but without NOT VALID it scans {table} under lock. \
                 Add it NOT VALID here, VALIDATE CONSTRAINT {name} in a later migration, then SET NOT NULL on \"{col}\"."
            ),
            None => Rule::ConstraintWithoutNotValid.advice().to_owned(),
        };
        self.report_with(
            Rule::ConstraintWithoutNotValid,
            format!("{kind} {name} added to {existing} without NOT VALID"),
            advice,
        );
    }

    pub(super) fn check_validate(&mut self, table: &QName, constraint: &str) {
        if !self.in_transaction {
            return;
        }
        let added_here = self
            .added_not_valid
            .contains(&(table.clone(), constraint.to_owned()));
        if added_here {
            self.report(
                Rule::ValidateInSameTransaction,
                format!(
                    "VALIDATE CONSTRAINT \"{constraint}\" on {table} in the transaction that added it NOT VALID"
                ),
            );
        } else if self.locked_tables.contains(table) {
            self.report(
                Rule::ValidateInSameTransaction,
                format!(
                    "VALIDATE CONSTRAINT \"{constraint}\" on {table} in a transaction that already holds an ACCESS EXCLUSIVE lock on it"
                ),
            );
        }
    }

    pub(super) fn check_set_not_null(&mut self, table: &QName, col: &str) {
        let known = self.schema.tables.get(table);
        if known.is_some_and(|t| t.columns.get(col).is_some_and(|c| c.not_null)) {
            return; // already NOT NULL: nothing to check
        }
        let pg12 = self.options.pg_version >= 12;
        if pg12 && known.is_some_and(|t| t.has_validated_not_null_check(col)) {
            return; // PostgreSQL 12+ proves it from the validated check: no scan
        }
        let message = format!("SET NOT NULL on {table}.\"{col}\"");
        let unvalidated = known
            .and_then(|t| t.unvalidated_not_null_check(col))
            .map(str::to_owned);
        let advice = if !pg12 {
            format!(
                "Before PostgreSQL 12 (target {}) SET NOT NULL always scans the table under an ACCESS EXCLUSIVE lock, \
                 whatever checks exist. Keep a validated CHECK (\"{col}\" IS NOT NULL) instead of the column constraint.",
                self.options.pg_version
            )
        } else if let Some(check) = unvalidated {
            format!(
                "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock because CHECK \"{check}\" is still NOT VALID. \
                 VALIDATE CONSTRAINT \"{check}\" in an earlier migration (or earlier in this one, if it runs outside a transaction); \
                 then this SET NOT NULL skips the scan."
            )
        } else {
            Rule::SetNotNull.advice().to_owned()
        };
        self.report_with(Rule::SetNotNull, message, advice);
    }
}
