//! Hazard family "columns": adding columns (NOT NULL, defaults, generated,
//! serial and identity columns, inline constraints), changing a column's
//! type, dropping and renaming columns, and self-contradicting definitions.

use pg_query::protobuf::{AlterTableCmd, ColumnDef, ConstrType};

use super::ast::{self, ColType, QName};
use super::volatility::Volatility;
use super::{Pass, Rule};

impl Pass<'_> {
    /// The volatility of function `name`: the migrations' own definition,
    /// else the built-in one, else volatile (an extension's, or unknown).
    fn volatility(&self, name: &str) -> Volatility {
        self.schema
            .function_volatility(name)
            .or_else(|| Volatility::builtin(name))
            .unwrap_or(Volatility::Volatile)
    }

    pub(super) fn check_add_column(&mut self, table: &QName, col: &ColumnDef) {
        let constraints = ast::column_constraints(col);
        let has = |t: ConstrType| constraints.iter().any(|c| ast::is(c, t));
        let ty = col.type_name.as_ref().map(ColType::of);
        let column = format!("\"{}\"", col.colname);
        let default = col.raw_default.as_deref().or_else(|| {
            constraints
                .iter()
                .find(|c| ast::is(c, ConstrType::ConstrDefault))
                .and_then(|c| c.raw_expr.as_deref())
        });
        let serial = ty.as_ref().is_some_and(ColType::is_serial);
        let identity = has(ConstrType::ConstrIdentity);
        let generated = constraints
            .iter()
            .find(|c| ast::is(c, ConstrType::ConstrGenerated));
        let not_null = col.is_not_null || has(ConstrType::ConstrNotnull);
        let existing = self.existing(table);

        if serial || identity {
            self.report(
                Rule::SerialColumn,
                format!(
                    "ADD COLUMN {column} {} to {existing} fills every row",
                    if serial {
                        "of a serial type"
                    } else {
                        "GENERATED AS IDENTITY"
                    }
                ),
            );
        } else if let Some(g) = generated {
            // PostgreSQL 18 makes GENERATED columns VIRTUAL unless STORED is said.
            let stored = g.generated_kind == "s" || self.options.pg_version < 18;
            if stored {
                self.report(
                    Rule::StoredGeneratedColumn,
                    format!("ADD COLUMN {column} GENERATED ... STORED to {existing}"),
                );
            }
        } else if not_null && default.is_none_or(ast::is_null_const) {
            self.report(
                Rule::AddColumnNotNullWithoutDefault,
                format!("ADD COLUMN {column} NOT NULL without DEFAULT to {existing}"),
            );
        }
        if let Some(default) = default.filter(|d| !ast::is_null_const(d))
            && !serial
            && !identity
        {
            if self.options.pg_version < 11 {
                self.report_with(
                    Rule::VolatileDefault,
                    format!(
                        "ADD COLUMN {column} with a DEFAULT to {table}: before PostgreSQL 11 (target {}) any default rewrites the table",
                        self.options.pg_version
                    ),
                    "Before PostgreSQL 11 ADD COLUMN ... DEFAULT rewrites the table under an ACCESS EXCLUSIVE lock. Add the column without a default, SET DEFAULT in a second statement, backfill in batches.".into(),
                );
            } else if let Some(f) = ast::function_calls(default)
                .into_iter()
                .find(|f| self.volatility(f) == Volatility::Volatile)
            {
                let known = if Volatility::builtin(&f).is_some()
                    || self.schema.function_volatility(&f).is_some()
                {
                    ""
                } else {
                    " (a function neither built in nor created by the migrations counts as volatile)"
                };
                self.report(
                    Rule::VolatileDefault,
                    format!("ADD COLUMN {column} to {existing} with volatile default {f}(){known}"),
                );
            }
        }
        for c in &constraints {
            if ast::is(c, ConstrType::ConstrCheck) {
                self.report(
                    Rule::CheckOnAddColumn,
                    format!("ADD COLUMN {column} with an inline CHECK on {existing}"),
                );
            } else if ast::is(c, ConstrType::ConstrUnique) {
                self.report(
                    Rule::AddUniqueConstraint,
                    format!("ADD COLUMN {column} UNIQUE on {existing} builds its index under lock"),
                );
            } else if ast::is(c, ConstrType::ConstrPrimary) {
                self.report(
                    Rule::AddPrimaryKey,
                    format!(
                        "ADD COLUMN {column} PRIMARY KEY on {existing} builds its index under lock"
                    ),
                );
            } else if ast::is(c, ConstrType::ConstrForeign)
                && default.is_some_and(|d| !ast::is_null_const(d))
            {
                // Without a default the new column is all NULL and PostgreSQL
                // marks the key valid without a scan; with one, it validates.
                let target = c.pktable.as_ref().map(QName::of_range);
                self.report_with(
                    Rule::ConstraintWithoutNotValid,
                    format!(
                        "ADD COLUMN {column} with a DEFAULT and REFERENCES {} on {existing}: the foreign key is validated against every row",
                        target.map(|t| t.to_string()).unwrap_or_default()
                    ),
                    "With a default, an inline REFERENCES checks every row while both tables are locked against writes. Add the column, then ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, and VALIDATE CONSTRAINT in a later migration.".into(),
                );
            }
        }
    }

    /// Definitions that contradict themselves, in CREATE TABLE and ADD COLUMN alike.
    pub(super) fn check_column_contradictions(&mut self, table: &QName, col: &ColumnDef) {
        let constraints = ast::column_constraints(col);
        let has = |t: ConstrType| constraints.iter().any(|c| ast::is(c, t));
        let not_null =
            col.is_not_null || has(ConstrType::ConstrNotnull) || has(ConstrType::ConstrPrimary);
        let column = format!("{table}.\"{}\"", col.colname);
        if not_null && has(ConstrType::ConstrNull) {
            self.report(
                Rule::Contradiction,
                format!("column {column} is declared both NULL and NOT NULL"),
            );
        }
        let default_null = col.raw_default.as_deref().is_some_and(ast::is_null_const)
            || constraints.iter().any(|c| {
                ast::is(c, ConstrType::ConstrDefault)
                    && c.raw_expr.as_deref().is_some_and(ast::is_null_const)
            });
        if not_null && default_null {
            self.report(
                Rule::Contradiction,
                format!(
                    "column {column} is NOT NULL DEFAULT NULL: every insert that omits it fails"
                ),
            );
        }
        let ty = col.type_name.as_ref().map(ColType::of);
        let limit = ty
            .as_ref()
            .filter(|t| matches!(t.name.as_str(), "varchar" | "bpchar") && !t.array)
            .and_then(|t| t.mods.first().copied());
        if let Some(limit) = limit {
            let defaults = col.raw_default.iter().map(|d| d.as_ref()).chain(
                constraints
                    .iter()
                    .filter(|c| ast::is(c, ConstrType::ConstrDefault))
                    .filter_map(|c| c.raw_expr.as_deref()),
            );
            let too_long: Vec<String> = defaults
                .flat_map(ast::string_constants)
                .filter(|s| s.chars().count() as i64 > limit)
                .collect();
            for text in too_long {
                self.report(
                    Rule::Contradiction,
                    format!("column {column} holds at most {limit} characters but its DEFAULT '{text}' is longer"),
                );
            }
        }
        for c in constraints
            .iter()
            .filter(|c| ast::is(c, ConstrType::ConstrForeign))
        {
            for (action, word) in [(&c.fk_del_action, "DELETE"), (&c.fk_upd_action, "UPDATE")] {
                if not_null && action == "n" {
                    self.report(
                        Rule::Contradiction,
                        format!("column {column} is NOT NULL but its foreign key says ON {word} SET NULL: that {word} fails"),
                    );
                }
            }
        }
    }

    pub(super) fn check_column_type(
        &mut self,
        table: &QName,
        cmd: &AlterTableCmd,
        def: &ColumnDef,
    ) {
        let Some(new) = def.type_name.as_ref().map(ColType::of) else {
            return;
        };
        let old = self.schema.column(table, &cmd.name).map(|c| c.ty.clone());
        let using = def.raw_default.is_some();
        let collate = def.coll_clause.is_some();
        let utc = self.utc_session && self.options.pg_version >= 12;
        if !using
            && !collate
            && let Some(old) = &old
            && type_change_is_free(old, &new, utc)
        {
            return;
        }
        let zone_advice = old.as_ref().is_some_and(|o| {
            matches!(
                (o.name.as_str(), new.name.as_str()),
                ("timestamp", "timestamptz") | ("timestamptz", "timestamp")
            )
        }) && self.options.pg_version >= 12
            && !utc
            && !using;
        let from = old.as_ref().map_or_else(
            || "(type unknown to the linter)".to_owned(),
            ColType::display,
        );
        let message = format!(
            "ALTER COLUMN \"{}\" TYPE {} on {table} (from {from}{})",
            cmd.name,
            new.display(),
            if using { ", with USING" } else { "" }
        );
        if zone_advice {
            self.report_with(
                Rule::ColumnTypeChange,
                message,
                "Between timestamp and timestamptz PostgreSQL 12+ skips the rewrite only when the session TimeZone is UTC; otherwise the table is rewritten under an ACCESS EXCLUSIVE lock. Start the migration with SET LOCAL TimeZone = 'UTC'.".into(),
            );
        } else {
            self.report(Rule::ColumnTypeChange, message);
        }
    }
}

/// Changes PostgreSQL makes without a rewrite or a scan: binary-coercible
/// types whose new limit admits every old value; timestamp <-> timestamptz
/// when the session's time zone is UTC (`utc`, PostgreSQL 12+).
fn type_change_is_free(old: &ColType, new: &ColType, utc: bool) -> bool {
    if old.array != new.array {
        return false;
    }
    if old == new {
        return true;
    }
    let (o, n) = (old.name.as_str(), new.name.as_str());
    match (o, n) {
        // varchar(n) -> varchar(m >= n) or unlimited; varchar / text -> text.
        ("varchar", "varchar") => {
            new.mods.is_empty()
                || old
                    .mods
                    .first()
                    .zip(new.mods.first())
                    .is_some_and(|(a, b)| b >= a)
        }
        ("varchar" | "text", "text") => true,
        ("text", "varchar") => new.mods.is_empty(),
        // numeric(p, s) -> numeric(p2 >= p, same s) or unconstrained.
        ("numeric", "numeric") => {
            new.mods.is_empty()
                || (old.mods.len() == new.mods.len()
                    && !old.mods.is_empty()
                    && new.mods[0] >= old.mods[0]
                    && new.mods.get(1).copied().unwrap_or(0)
                        == old.mods.get(1).copied().unwrap_or(0))
        }
        ("varbit", "varbit") => {
            new.mods.is_empty()
                || old
                    .mods
                    .first()
                    .zip(new.mods.first())
                    .is_some_and(|(a, b)| b >= a)
        }
        ("cidr", "inet") => true,
        // More fractional-second digits (or none: the default, 6) loses nothing.
        ("timestamp", "timestamp")
        | ("timestamptz", "timestamptz")
        | ("time", "time")
        | ("interval", "interval") => {
            new.mods.is_empty()
                || old
                    .mods
                    .first()
                    .zip(new.mods.first())
                    .is_some_and(|(a, b)| b >= a)
        }
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => utc,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[i64]) -> ColType {
        ColType {
            name: name.into(),
            mods: mods.to_vec(),
            array: false,
        }
    }

    #[test]
    fn widening_is_free_and_narrowing_or_converting_is_not() {
        let free = |a: ColType, b: ColType| type_change_is_free(&a, &b, false);
        assert!(free(t("varchar", &[50]), t("varchar", &[100])));
        assert!(free(t("varchar", &[50]), t("text", &[])));
        assert!(free(t("varchar", &[50]), t("varchar", &[])));
        assert!(free(t("numeric", &[10, 2]), t("numeric", &[12, 2])));
        assert!(free(t("numeric", &[10, 2]), t("numeric", &[])));
        assert!(!free(t("varchar", &[100]), t("varchar", &[50])));
        assert!(!free(t("numeric", &[10, 2]), t("numeric", &[12, 3])));
        assert!(!free(t("int4", &[]), t("int8", &[])));
        assert!(!free(t("text", &[]), t("varchar", &[10])));
        assert!(!free(t("timestamp", &[]), t("timestamptz", &[])));
        assert!(free(t("timestamptz", &[3]), t("timestamptz", &[6])));
        assert!(!free(t("timestamptz", &[6]), t("timestamptz", &[3])));
        // In a UTC session (PostgreSQL 12+) the zone change is free.
        assert!(type_change_is_free(
            &t("timestamp", &[]),
            &t("timestamptz", &[]),
            true
        ));
    }
}
