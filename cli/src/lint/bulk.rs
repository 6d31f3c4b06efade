//! Hazard family "bulk DML": an `UPDATE` or `DELETE` of a table that
//! existed before the migration locks every row it changes until its
//! transaction commits (concurrent writers of those rows wait) and writes
//! them all at once (WAL, bloat, replica lag). Lint has no row counts, so it
//! judges the shape: a statement is a batch when its `WHERE` bounds an
//! indexed key on both sides (`id BETWEEN a AND b`, `id >= a AND id < b`,
//! `id = x`, `id IN (...)`, `id = ANY(...)`), or takes its rows from a
//! sub-select with a `LIMIT` (`id IN (SELECT id ... ORDER BY id LIMIT n)`).
//! Anything else is a warning with the batching recipe.

use std::collections::HashMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, BoolExprType, Node, RangeVar, SubLinkType};

use super::ast::{self, QName};
use super::{Pass, Rule};

impl Pass<'_> {
    pub(super) fn check_backfill(
        &mut self,
        rel: Option<&RangeVar>,
        verb: &str,
        filter: Option<&Node>,
    ) {
        let Some(table) = rel.map(QName::of_range) else {
            return;
        };
        if self.in_transaction && self.locked_tables.contains(&table) {
            self.report(
                Rule::BackfillUnderLock,
                format!(
                    "{verb} of {table} in the transaction that holds its ACCESS EXCLUSIVE lock"
                ),
            );
            return;
        }
        if !self.exists(&table) {
            return;
        }
        match filter {
            None => self.report(
                Rule::UnbatchedBackfill,
                format!("{verb} of every row of {table} in one statement"),
            ),
            // Without the table's indexes the shape cannot be judged.
            Some(_) if !self.schema.tables.contains_key(&table) => {}
            Some(filter) => {
                let keys = self.indexed_leading_columns(&table);
                if !is_batch(filter, &keys) {
                    self.report(
                        Rule::UnbatchedBackfill,
                        format!(
                            "{verb} of {table} whose WHERE bounds no indexed key on both sides: as many rows as match, in one statement"
                        ),
                    );
                }
            }
        }
    }

    /// The first column of every index, primary key and unique constraint of `table`.
    fn indexed_leading_columns(&self, table: &QName) -> Vec<String> {
        let from_indexes = self
            .schema
            .indexes
            .values()
            .filter(|i| &i.table == table)
            .filter_map(|i| i.columns.first().cloned());
        let from_keys = self
            .schema
            .tables
            .get(table)
            .into_iter()
            .flat_map(|t| t.unique_keys.iter().filter_map(|k| k.first().cloned()));
        from_indexes.chain(from_keys).collect()
    }
}

/// Whether `filter` bounds one of `keys` on both sides, or draws its rows
/// from a sub-select with a LIMIT.
fn is_batch(filter: &Node, keys: &[String]) -> bool {
    // (lower, upper) bound seen, per column.
    let mut bounds: HashMap<String, (bool, bool)> = HashMap::new();
    for conjunct in conjuncts(filter) {
        if limited_sub_select(conjunct) {
            return true;
        }
        for (column, lower, upper) in bounds_of(conjunct) {
            let seen = bounds.entry(column).or_default();
            seen.0 |= lower;
            seen.1 |= upper;
        }
    }
    keys.iter()
        .any(|k| bounds.get(k).is_some_and(|(lower, upper)| *lower && *upper))
}

/// The AND-ed terms of an expression.
fn conjuncts(node: &Node) -> Vec<&Node> {
    match node.node.as_ref() {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            b.args.iter().flat_map(conjuncts).collect()
        }
        _ => vec![node],
    }
}

/// `col IN (SELECT ... LIMIT n)` (or `= ANY`): the batch is the LIMIT.
fn limited_sub_select(node: &Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::SubLink(s)) if s.sub_link_type == SubLinkType::AnySublink as i32 => {
            matches!(s.subselect.as_deref().and_then(|q| q.node.as_ref()),
                Some(NodeEnum::SelectStmt(q)) if q.limit_count.is_some())
        }
        _ => false,
    }
}

/// The column a term bounds, and on which sides: (column, lower, upper).
fn bounds_of(node: &Node) -> Vec<(String, bool, bool)> {
    let Some(NodeEnum::AExpr(e)) = node.node.as_ref() else {
        return Vec::new();
    };
    let op = e
        .name
        .iter()
        .filter_map(ast::sval)
        .next_back()
        .unwrap_or("");
    let left = e.lexpr.as_deref().and_then(column_of);
    let right = e.rexpr.as_deref().and_then(column_of);
    // A column compared with a column is a join, not a bound.
    let (column, column_on_left) = match (left, right) {
        (Some(c), None) => (c, true),
        (None, Some(c)) => (c, false),
        _ => return Vec::new(),
    };
    let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
    let (lower, upper) = match (kind, op) {
        (AExprKind::AexprOp, "=") => (true, true),
        (AExprKind::AexprIn | AExprKind::AexprOpAny, "=") if column_on_left => (true, true),
        (AExprKind::AexprBetween | AExprKind::AexprBetweenSym, _) if column_on_left => (true, true),
        (AExprKind::AexprOp, ">" | ">=") => (column_on_left, !column_on_left),
        (AExprKind::AexprOp, "<" | "<=") => (!column_on_left, column_on_left),
        _ => (false, false),
    };
    vec![(column, lower, upper)]
}

/// The column a bare column reference names (its last part).
fn column_of(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c.fields.iter().rev().find_map(ast::sval).map(str::to_owned),
        _ => None,
    }
}
