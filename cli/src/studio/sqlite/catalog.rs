//! The studio's catalog of a SQLite database: tables, columns, keys,
//! enums (a `CHECK (col IN (...))`) and row counts, from SQLite's pragmas.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::super::catalog::{
    Catalog, Column, EXACT_COUNT_LIMIT, ForeignKey, Kind, RowCount, Table, quote_ident,
};
use super::super::stmt::{Dialect, Value};
use super::reader::on_read_only;

/// How a declared SQLite type is shown and edited (SQLite's affinity rules,
/// plus the names the crate's SQLite migrations use).
fn kind_of(declared: &str) -> Kind {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        Kind::Bool
    } else if t.contains("JSON") {
        Kind::Json
    } else if t.contains("TIMESTAMP") || t.contains("DATE") || t.contains("TIME") {
        Kind::Timestamp
    } else if t.contains("INT")
        || t.contains("REAL")
        || t.contains("FLOA")
        || t.contains("DOUB")
        || t.contains("NUM")
        || t.contains("DEC")
    {
        Kind::Number
    } else if t.contains("BLOB") || t.is_empty() {
        Kind::Bytes
    } else {
        Kind::Text
    }
}

/// The labels of `CHECK (<column> IN ('a', 'b', ...))` constraints in a
/// table's SQL: SQLite's form of an enum (as in `migrations_sqlite/`).
fn check_in_labels(sql: &str) -> BTreeMap<String, Vec<String>> {
    let mut found = BTreeMap::new();
    let upper = sql.to_ascii_uppercase();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK") {
        let start = from + at + "CHECK".len();
        from = start;
        let rest = sql[start..].trim_start();
        let Some(rest) = rest.strip_prefix('(') else {
            continue;
        };
        let rest = rest.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '"' | '`'))
            .collect();
        let rest = rest[name.len()..].trim_start();
        let Some(rest) = rest
            .get(..2)
            .filter(|k| k.eq_ignore_ascii_case("IN"))
            .map(|_| rest[2..].trim_start())
        else {
            continue;
        };
        let Some(mut rest) = rest.strip_prefix('(') else {
            continue;
        };
        let mut labels = Vec::new();
        loop {
            rest = rest.trim_start();
            let Some(r) = rest.strip_prefix('\'') else {
                break;
            };
            let mut label = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if r[i + 1..].starts_with('\'') {
                        label.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    label.push(c);
                }
            }
            let Some(end) = end else { break };
            labels.push(label);
            rest = r[end..].trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => break,
            }
        }
        if rest.starts_with(')') && !labels.is_empty() {
            found.insert(name.trim_matches(['"', '`']).to_owned(), labels);
        }
    }
    found
}

/// `ON DELETE` as SQLite spells it, in PostgreSQL's one-letter code.
fn on_delete_code(action: &str) -> &'static str {
    match action.to_ascii_uppercase().as_str() {
        "CASCADE" => "c",
        "SET NULL" => "n",
        "SET DEFAULT" => "d",
        "RESTRICT" => "r",
        _ => "a",
    }
}

/// The whole catalog of the SQLite database at `path`, in one read-only transaction.
pub async fn catalog(path: PathBuf) -> Result<Catalog, database::Error> {
    on_read_only(path, 30_000, |conn| {
        let q = |sql: &str, binds: &[Option<Value>]| {
            conn.run(sql, binds, usize::MAX, false)
                .map(|(_, rows)| rows)
                .map_err(|f| conn.error(f))
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        // Ordinary tables of the main database: not SQLite's own, not virtual
        // tables (whose module may not be loaded here) or their shadow tables.
        let tables = q(
            "SELECT l.name, s.sql FROM pragma_table_list l \
             JOIN sqlite_schema s ON s.name = l.name AND s.type = 'table' \
             WHERE l.schema = 'main' AND l.type = 'table' \
             AND l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY l.name",
            &[],
        )?;
        let stats: BTreeMap<String, i64> = if q(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'",
            &[],
        )?
        .is_empty()
        {
            BTreeMap::new()
        } else {
            q(
                "SELECT tbl, max(CAST(stat AS INTEGER)) FROM sqlite_stat1 GROUP BY tbl",
                &[],
            )?
            .into_iter()
            .map(|r| (text(&r[0]), text(&r[1]).parse().unwrap_or(0)))
            .collect()
        };
        let mut catalog = Catalog::default();
        let mut incoming = Vec::new();
        for t in &tables {
            let name = text(&t[0]);
            let arg = [Some(Value::Text(name.clone()))];
            let labels = check_in_labels(&text(&t[1]));
            let sql = text(&t[1]);
            let mut table = Table {
                name: name.clone(),
                dialect: Dialect::Sqlite,
                columns: Vec::new(),
                primary_key: Vec::new(),
                indexed: Vec::new(),
                references: Vec::new(),
                referenced_by: Vec::new(),
                rows: RowCount::Exact(0),
            };
            let mut key: Vec<(i64, String)> = Vec::new();
            for c in q(
                "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
                 FROM pragma_table_xinfo(?1) ORDER BY cid",
                &arg,
            )? {
                let column = text(&c[0]);
                let declared = text(&c[1]);
                let pk: i64 = text(&c[4]).parse().unwrap_or(0);
                if pk > 0 {
                    key.push((pk, column.clone()));
                }
                let json_checked = sql.contains(&format!("json_type({column})"))
                    || sql.contains(&format!("json_valid({column})"));
                let column_labels = labels.get(&column).cloned().unwrap_or_default();
                let kind = if !column_labels.is_empty() {
                    Kind::Enum
                } else if json_checked {
                    Kind::Json
                } else {
                    kind_of(&declared)
                };
                table.columns.push(Column {
                    name: column,
                    type_name: declared,
                    kind,
                    nullable: text(&c[2]) == "0",
                    default: c[3].clone(),
                    labels: column_labels,
                    writable: text(&c[5]) == "0",
                });
            }
            key.sort();
            table.primary_key = key.into_iter().map(|(_, c)| c).collect();
            if let Some(first) = table.primary_key.first() {
                table.indexed.push(first.clone());
            }
            for i in q(
                "SELECT ii.name FROM pragma_index_list(?1) il, pragma_index_info(il.name) ii \
                 WHERE ii.seqno = 0 AND ii.name IS NOT NULL AND il.partial = 0",
                &arg,
            )? {
                let c = text(&i[0]);
                if !table.indexed.contains(&c) {
                    table.indexed.push(c);
                }
            }
            let mut fks: BTreeMap<String, ForeignKey> = BTreeMap::new();
            for f in q(
                "SELECT id, \"table\", \"from\", \"to\", on_delete \
                 FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
                &arg,
            )? {
                let fk = fks.entry(text(&f[0])).or_insert_with(|| ForeignKey {
                    table: name.clone(),
                    columns: Vec::new(),
                    ref_table: text(&f[1]),
                    ref_columns: Vec::new(),
                    on_delete: on_delete_code(&text(&f[4])).to_owned(),
                });
                fk.columns.push(text(&f[2]));
                // No `to`: the parent's primary key, resolved below.
                if let Some(to) = &f[3] {
                    fk.ref_columns.push(to.clone());
                }
            }
            table.references = fks.into_values().collect();
            // Exact up to the limit; above it ANALYZE's figure when there is
            // one, else "more than" (a full count reads the whole table).
            table.rows = match stats.get(&name) {
                Some(&n) if n >= EXACT_COUNT_LIMIT => RowCount::Estimate(n),
                _ => {
                    let n: i64 = q(
                        &format!(
                            "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {})",
                            quote_ident(&name),
                            EXACT_COUNT_LIMIT + 1
                        ),
                        &[],
                    )?
                    .first()
                    .and_then(|r| text(&r[0]).parse().ok())
                    .unwrap_or(0);
                    if n > EXACT_COUNT_LIMIT {
                        RowCount::MoreThan(EXACT_COUNT_LIMIT)
                    } else {
                        RowCount::Exact(n)
                    }
                }
            };
            catalog.tables.insert(name, table);
        }
        // SQLite's names are not case-sensitive: a foreign key may spell the
        // parent `NOTES (ID)`; it is linked under the parent's own spelling.
        let parents: BTreeMap<String, (String, Vec<String>, Vec<String>)> = catalog
            .tables
            .values()
            .map(|t| {
                let columns = t.columns.iter().map(|c| c.name.clone()).collect();
                (
                    t.name.to_lowercase(),
                    (t.name.clone(), t.primary_key.clone(), columns),
                )
            })
            .collect();
        for t in catalog.tables.values_mut() {
            for fk in &mut t.references {
                if let Some((name, key, columns)) = parents.get(&fk.ref_table.to_lowercase()) {
                    fk.ref_table = name.clone();
                    if fk.ref_columns.is_empty() {
                        fk.ref_columns = key.clone();
                    }
                    for c in &mut fk.ref_columns {
                        if let Some(own) = columns.iter().find(|x| x.eq_ignore_ascii_case(c)) {
                            *c = own.clone();
                        }
                    }
                }
                incoming.push(fk.clone());
            }
        }
        for fk in incoming {
            if let Some(t) = catalog.tables.get_mut(&fk.ref_table) {
                t.referenced_by.push(fk);
            }
        }
        Ok(catalog)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_labels_come_from_check_in_constraints() {
        let sql = "CREATE TABLE v (purpose TEXT NOT NULL CONSTRAINT v_purpose_enum CHECK (purpose IN\n ('a', 'b''c')), n TEXT CHECK (length(n) > 1))";
        let labels = check_in_labels(sql);
        assert_eq!(
            labels.get("purpose"),
            Some(&vec!["a".to_owned(), "b'c".to_owned()])
        );
        assert_eq!(labels.len(), 1);
    }
}
