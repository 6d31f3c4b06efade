//! `db lint`: a migration safety linter that knows PostgreSQL's locks.
//!
//! SQL is parsed with libpg_query (PostgreSQL's own grammar, through the
//! `pg_query` crate), never with regular expressions. Each finding names the
//! file, the line and the rule, and says what to do instead. A finding is
//! silenced by a comment naming its rule in or just before the statement:
//! `-- db-lint: allow drop-column` (several: `allow a, b`). Tables created in
//! the same migration are exempt: nobody else can be using them yet.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, ObjectType};

use crate::migrate::{Migration, MigrationSet};

/// A rule of the linter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `CREATE INDEX` without `CONCURRENTLY` on an existing table.
    IndexNotConcurrent,
    /// `ADD COLUMN ... NOT NULL` without a `DEFAULT`.
    AddColumnNotNullWithoutDefault,
    /// `ALTER COLUMN ... SET NOT NULL` on an existing table.
    SetNotNull,
    /// A foreign key or check constraint added without `NOT VALID`.
    ConstraintWithoutNotValid,
    /// `ALTER COLUMN ... TYPE`.
    ColumnTypeChange,
    /// `DROP COLUMN`.
    DropColumn,
    /// `DROP TABLE`.
    DropTable,
    /// `RENAME COLUMN`.
    RenameColumn,
    /// `RENAME TO` of a table.
    RenameTable,
    /// `CONCURRENTLY` in a migration that runs in a transaction.
    ConcurrentlyInTransaction,
    /// No `down.sql`, or one with no statement.
    MissingDown,
    /// The SQL does not parse.
    Syntax,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::IndexNotConcurrent,
        Rule::AddColumnNotNullWithoutDefault,
        Rule::SetNotNull,
        Rule::ConstraintWithoutNotValid,
        Rule::ColumnTypeChange,
        Rule::DropColumn,
        Rule::DropTable,
        Rule::RenameColumn,
        Rule::RenameTable,
        Rule::ConcurrentlyInTransaction,
        Rule::MissingDown,
        Rule::Syntax,
    ];

    /// The name used in output and in `allow` comments.
    pub fn name(self) -> &'static str {
        match self {
            Rule::IndexNotConcurrent => "index-not-concurrent",
            Rule::AddColumnNotNullWithoutDefault => "add-column-not-null",
            Rule::SetNotNull => "set-not-null",
            Rule::ConstraintWithoutNotValid => "constraint-not-valid",
            Rule::ColumnTypeChange => "column-type-change",
            Rule::DropColumn => "drop-column",
            Rule::DropTable => "drop-table",
            Rule::RenameColumn => "rename-column",
            Rule::RenameTable => "rename-table",
            Rule::ConcurrentlyInTransaction => "concurrently-in-transaction",
            Rule::MissingDown => "missing-down",
            Rule::Syntax => "syntax",
        }
    }

    /// What goes wrong, and the safe alternative.
    pub fn advice(self) -> &'static str {
        match self {
            Rule::IndexNotConcurrent => {
                "CREATE INDEX blocks every write to the table while it builds. Use CREATE INDEX CONCURRENTLY \
                 in a migration with metadata.toml `run_in_transaction = false`."
            }
            Rule::AddColumnNotNullWithoutDefault => {
                "ADD COLUMN ... NOT NULL without DEFAULT fails on a table with rows. Add it with a constant \
                 DEFAULT (instant since PostgreSQL 11), or add it nullable, backfill, then add the constraint."
            }
            Rule::SetNotNull => {
                "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock. Add CHECK (col IS NOT NULL) \
                 NOT VALID, VALIDATE CONSTRAINT in a later migration, then SET NOT NULL (it uses the check)."
            }
            Rule::ConstraintWithoutNotValid => {
                "Adding a foreign key or check validates every row while holding a lock that blocks writes. \
                 Add it NOT VALID, then VALIDATE CONSTRAINT in a separate migration."
            }
            Rule::ColumnTypeChange => {
                "Changing a column's type rewrites the table under an ACCESS EXCLUSIVE lock (most changes). \
                 Add a new column, backfill it in batches, switch the code, then drop the old one."
            }
            Rule::DropColumn => {
                "Code still deployed may read the column and fail. Stop using it in a release first, then drop \
                 it in a later migration (and mark the drop allowed)."
            }
            Rule::DropTable => {
                "Dropping a table loses its data and breaks code still deployed. Stop using it first, keep a \
                 backup, then drop it in a later migration (and mark the drop allowed)."
            }
            Rule::RenameColumn => {
                "Running code uses the old name and fails at once. Add the new column, write both, backfill, \
                 switch reads, then drop the old one."
            }
            Rule::RenameTable => {
                "Running code uses the old name and fails at once. Create the new table (or a view with the old \
                 name), migrate callers, then drop the old name."
            }
            Rule::ConcurrentlyInTransaction => {
                "CONCURRENTLY cannot run inside a transaction block. Put it in its own migration with \
                 metadata.toml `run_in_transaction = false`."
            }
            Rule::MissingDown => {
                "Every migration needs a down.sql that really reverses it, so that `db rollback` and \
                 `diesel migration redo` work."
            }
            Rule::Syntax => "PostgreSQL's parser rejects this SQL.",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `migrations/<folder>/up.sql`, relative to the linted folder's parent.
    pub file: String,
    /// 1-based line of the statement.
    pub line: usize,
    /// The rule.
    pub rule: Rule,
    /// What exactly was found.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: [{}] {}\n    {}\n    (silence with `-- db-lint: allow {}` if intended)",
            self.file,
            self.line,
            self.rule,
            self.message,
            self.rule.advice(),
            self.rule
        )
    }
}

/// Lints every migration of `set`; `dir_label` prefixes the file names.
pub fn lint_set(set: &MigrationSet, dir_label: &str) -> Vec<Finding> {
    set.iter()
        .flat_map(|m| lint_migration(m, dir_label))
        .collect()
}

/// Lints the migrations folder at `dir`.
pub fn lint_dir(dir: &Path) -> crate::Result<Vec<Finding>> {
    let set = MigrationSet::from_dir(dir)?;
    let label = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(lint_set(&set, &label))
}

/// Lints one migration.
pub fn lint_migration(m: &Migration, dir_label: &str) -> Vec<Finding> {
    let up_file = format!("{dir_label}/{}/up.sql", m.name);
    let mut findings = lint_up(&m.up_sql, m.run_in_transaction, &up_file);
    let down = m.down_sql.as_deref().unwrap_or_default();
    let down_is_empty = crate::migrate::split_statements(down).is_empty();
    // An intentionally irreversible migration says so in either file.
    let allowed = allowed_rules(&m.up_sql).contains(Rule::MissingDown.name())
        || allowed_rules(down).contains(Rule::MissingDown.name());
    if down_is_empty && !allowed {
        findings.push(Finding {
            file: format!("{dir_label}/{}/down.sql", m.name),
            line: 1,
            rule: Rule::MissingDown,
            message: "no down.sql, or it has no statement".into(),
        });
    }
    findings
}

/// Lints the text of an `up.sql`.
pub fn lint_up(sql: &str, run_in_transaction: bool, file: &str) -> Vec<Finding> {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding {
                file: file.into(),
                line: 1,
                rule: Rule::Syntax,
                message: e.to_string(),
            }];
        }
    };
    let stmts = &parsed.protobuf.stmts;

    // Tables created here are new: no one else can hold locks on them or
    // depend on their shape yet.
    let created: HashSet<String> = stmts
        .iter()
        .filter_map(|s| match s.stmt.as_ref()?.node.as_ref()? {
            NodeEnum::CreateStmt(c) => c.relation.as_ref().map(|r| r.relname.to_lowercase()),
            _ => None,
        })
        .collect();
    let is_new = |relation: &Option<pg_query::protobuf::RangeVar>| {
        relation
            .as_ref()
            .is_some_and(|r| created.contains(&r.relname.to_lowercase()))
    };

    let mut findings = Vec::new();
    let mut region_start = 0usize;
    for raw in stmts {
        let start = raw.stmt_location.max(0) as usize;
        let end = if raw.stmt_len > 0 {
            start + raw.stmt_len as usize
        } else {
            sql.len()
        }
        .min(sql.len());
        // The statement's comments: those above it, and one trailing on the
        // line where it ends (`DROP TABLE t; -- db-lint: allow drop-table`).
        let line_end = sql[end..].find('\n').map_or(sql.len(), |p| end + p);
        let region = &sql[region_start.min(start)..line_end];
        region_start = line_end;
        let line = line_of(sql, first_code_offset(sql, start));
        let allowed = allowed_rules(region);
        let mut report = |rule: Rule, message: String| {
            if !allowed.contains(rule.name()) {
                findings.push(Finding {
                    file: file.into(),
                    line,
                    rule,
                    message,
                });
            }
        };
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::IndexStmt(idx) => {
                let table = relname(&idx.relation);
                if idx.concurrent && run_in_transaction {
                    report(
                        Rule::ConcurrentlyInTransaction,
                        format!(
                            "CREATE INDEX CONCURRENTLY on \"{table}\" in a migration that runs in a transaction"
                        ),
                    );
                }
                if !idx.concurrent && !is_new(&idx.relation) {
                    report(
                        Rule::IndexNotConcurrent,
                        format!("CREATE INDEX on existing table \"{table}\" without CONCURRENTLY"),
                    );
                }
            }
            NodeEnum::DropStmt(drop) => {
                if drop.concurrent && run_in_transaction {
                    report(
                        Rule::ConcurrentlyInTransaction,
                        "DROP ... CONCURRENTLY in a migration that runs in a transaction".into(),
                    );
                }
                if drop.remove_type == ObjectType::ObjectTable as i32 {
                    for object in &drop.objects {
                        let name = dotted_name(object);
                        if !created
                            .contains(&name.rsplit('.').next().unwrap_or(&name).to_lowercase())
                        {
                            report(Rule::DropTable, format!("DROP TABLE \"{name}\""));
                        }
                    }
                }
            }
            NodeEnum::RenameStmt(rename) if !is_new(&rename.relation) => {
                let table = relname(&rename.relation);
                if rename.rename_type == ObjectType::ObjectColumn as i32 {
                    report(
                        Rule::RenameColumn,
                        format!(
                            "RENAME COLUMN \"{}\" of \"{table}\" to \"{}\"",
                            rename.subname, rename.newname
                        ),
                    );
                } else if rename.rename_type == ObjectType::ObjectTable as i32 {
                    report(
                        Rule::RenameTable,
                        format!("RENAME TABLE \"{table}\" to \"{}\"", rename.newname),
                    );
                }
            }
            NodeEnum::AlterTableStmt(alter) if !is_new(&alter.relation) => {
                let table = relname(&alter.relation);
                for cmd in &alter.cmds {
                    let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                        continue;
                    };
                    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
                    match AlterTableType::try_from(cmd.subtype) {
                        Ok(AlterTableType::AtAddColumn) => {
                            if let Some(NodeEnum::ColumnDef(col)) = def {
                                let has = |t: ConstrType| {
                                    col.constraints.iter().any(|c| {
                                    matches!(c.node.as_ref(), Some(NodeEnum::Constraint(k)) if k.contype == t as i32)
                                })
                                };
                                let not_null = col.is_not_null || has(ConstrType::ConstrNotnull);
                                let default =
                                    col.raw_default.is_some() || has(ConstrType::ConstrDefault);
                                if not_null && !default {
                                    report(
                                        Rule::AddColumnNotNullWithoutDefault,
                                        format!(
                                            "ADD COLUMN \"{}\" NOT NULL without DEFAULT to \"{table}\"",
                                            col.colname
                                        ),
                                    );
                                }
                            }
                        }
                        Ok(AlterTableType::AtSetNotNull) => {
                            report(
                                Rule::SetNotNull,
                                format!("SET NOT NULL on \"{table}\".\"{}\"", cmd.name),
                            );
                        }
                        Ok(AlterTableType::AtAddConstraint) => {
                            if let Some(NodeEnum::Constraint(c)) = def {
                                let kind = if c.contype == ConstrType::ConstrForeign as i32 {
                                    Some("foreign key")
                                } else if c.contype == ConstrType::ConstrCheck as i32 {
                                    Some("check constraint")
                                } else {
                                    None
                                };
                                if let Some(kind) = kind
                                    && !c.skip_validation
                                {
                                    report(
                                        Rule::ConstraintWithoutNotValid,
                                        format!(
                                            "{kind} {} added to \"{table}\" without NOT VALID",
                                            quoted_or_unnamed(&c.conname)
                                        ),
                                    );
                                }
                            }
                        }
                        Ok(AlterTableType::AtAlterColumnType) => {
                            report(
                                Rule::ColumnTypeChange,
                                format!("ALTER COLUMN \"{}\" TYPE on \"{table}\"", cmd.name),
                            );
                        }
                        Ok(AlterTableType::AtDropColumn) => {
                            report(
                                Rule::DropColumn,
                                format!("DROP COLUMN \"{}\" of \"{table}\"", cmd.name),
                            );
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    findings
}

fn relname(relation: &Option<pg_query::protobuf::RangeVar>) -> String {
    relation
        .as_ref()
        .map(|r| r.relname.clone())
        .unwrap_or_default()
}

fn quoted_or_unnamed(name: &str) -> String {
    if name.is_empty() {
        "(unnamed)".into()
    } else {
        format!("\"{name}\"")
    }
}

/// `schema.table` from a DROP's object list entry.
fn dotted_name(node: &pg_query::protobuf::Node) -> String {
    match node.node.as_ref() {
        Some(NodeEnum::List(list)) => list
            .items
            .iter()
            .filter_map(|i| match i.node.as_ref() {
                Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("."),
        _ => String::new(),
    }
}

/// The rules named by `db-lint: allow` comments in `text`.
fn allowed_rules(text: &str) -> HashSet<String> {
    let mut rules = HashSet::new();
    for line in text.lines() {
        let Some(comment) = line.split_once("--").map(|(_, c)| c) else {
            continue;
        };
        let Some((_, rest)) = comment.split_once("db-lint:") else {
            continue;
        };
        let Some(list) = rest.trim().strip_prefix("allow") else {
            continue;
        };
        rules.extend(
            list.split([',', ' '])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
        );
    }
    rules
}

/// Skips whitespace and comments from `offset`: where the statement's code starts.
fn first_code_offset(sql: &str, mut offset: usize) -> usize {
    let bytes = sql.as_bytes();
    while offset < bytes.len() {
        if bytes[offset].is_ascii_whitespace() {
            offset += 1;
        } else if bytes[offset..].starts_with(b"--") {
            offset = sql[offset..]
                .find('\n')
                .map_or(bytes.len(), |p| offset + p + 1);
        } else if bytes[offset..].starts_with(b"/*") {
            offset = sql[offset..]
                .find("*/")
                .map_or(bytes.len(), |p| offset + p + 2);
        } else {
            break;
        }
    }
    offset
}

fn line_of(sql: &str, offset: usize) -> usize {
    sql.as_bytes()[..offset.min(sql.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<(usize, &'static str)> {
        lint_up(sql, true, "up.sql")
            .iter()
            .map(|f| (f.line, f.rule.name()))
            .collect()
    }

    #[test]
    fn each_rule_fires_on_an_existing_table() {
        let sql = "-- header\n\
            CREATE INDEX users_name_idx ON users (name);\n\
            ALTER TABLE users ADD COLUMN age int NOT NULL;\n\
            ALTER TABLE users ALTER COLUMN name SET NOT NULL;\n\
            ALTER TABLE accounts ADD CONSTRAINT accounts_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\n\
            ALTER TABLE users ADD CONSTRAINT users_age_check CHECK (age > 0);\n\
            ALTER TABLE users ALTER COLUMN name TYPE varchar(50);\n\
            ALTER TABLE users DROP COLUMN image;\n\
            DROP TABLE sessions;\n\
            ALTER TABLE users RENAME COLUMN name TO full_name;\n\
            ALTER TABLE users RENAME TO people;\n\
            CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n";
        assert_eq!(
            rules(sql),
            vec![
                (2, "index-not-concurrent"),
                (3, "add-column-not-null"),
                (4, "set-not-null"),
                (5, "constraint-not-valid"),
                (6, "constraint-not-valid"),
                (7, "column-type-change"),
                (8, "drop-column"),
                (9, "drop-table"),
                (10, "rename-column"),
                (11, "rename-table"),
                (12, "concurrently-in-transaction"),
            ]
        );
    }

    #[test]
    fn safe_forms_pass() {
        let sql = "ALTER TABLE users ADD COLUMN age int NOT NULL DEFAULT 0;\n\
                   ALTER TABLE users ADD COLUMN nick text;\n\
                   ALTER TABLE accounts ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n\
                   ALTER TABLE accounts VALIDATE CONSTRAINT fk;\n\
                   CREATE INDEX CONCURRENTLY users_nick_idx ON users (nick);\n";
        assert_eq!(lint_up(sql, false, "up.sql"), vec![]);
    }

    #[test]
    fn tables_created_in_the_same_migration_are_exempt() {
        let sql = "CREATE TABLE t (id int);\n\
                   CREATE INDEX t_id_idx ON t (id);\n\
                   ALTER TABLE t ADD COLUMN x int NOT NULL;\n\
                   ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0);\n\
                   ALTER TABLE t RENAME COLUMN x TO y;\n\
                   DROP TABLE t;\n";
        assert_eq!(rules(sql), vec![]);
    }

    #[test]
    fn an_allow_comment_silences_only_its_rule_and_statement() {
        let sql = "-- db-lint: allow drop-table\n\
                   DROP TABLE sessions;\n\
                   DROP TABLE accounts; -- db-lint: allow drop-column\n\
                   ALTER TABLE users DROP COLUMN image, DROP COLUMN name; -- db-lint: allow drop-column, set-not-null\n\
                   DROP TABLE verifications; -- db-lint: allow drop-table\n\
                   ALTER TABLE users DROP COLUMN email;\n";
        assert_eq!(rules(sql), vec![(3, "drop-table"), (6, "drop-column")]);
    }

    #[test]
    fn syntax_errors_are_findings() {
        assert_eq!(rules("CREATE TABLE (;"), vec![(1, "syntax")]);
    }
}
