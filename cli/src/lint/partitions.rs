//! Hazard family "partitions": detaching without `CONCURRENTLY`, attaching
//! a partition that must be scanned (no validated CHECK implying its bound)
//! or next to a DEFAULT partition that must be, and indexes on a
//! partitioned table, which cannot be built `CONCURRENTLY` (the recipe is
//! an index `ON ONLY` the parent, each partition's built concurrently, then
//! attached).
//!
//! Versions (PostgreSQL documentation, ALTER TABLE and CREATE INDEX):
//! partitioned indexes exist since 11; ATTACH PARTITION takes SHARE UPDATE
//! EXCLUSIVE on the partitioned table since 12 (ACCESS EXCLUSIVE on the
//! table attached, and on a DEFAULT partition, in every version); DETACH
//! PARTITION ... CONCURRENTLY exists since 14, cannot run in a transaction
//! block and is refused when a DEFAULT partition exists; CREATE INDEX
//! CONCURRENTLY on a partitioned table is refused in every version up to 18.

use pg_query::protobuf::{CreateStmt, IndexStmt, PartitionCmd};

use super::ast::QName;
use super::{Pass, Rule};

impl Pass<'_> {
    /// `ALTER TABLE parent ATTACH PARTITION child ...`: run whether or not
    /// `parent` is new (turning an existing table into a partition scans it).
    pub(super) fn check_attach(&mut self, parent: &QName, p: &PartitionCmd) {
        let Some(child) = p.name.as_ref().map(QName::of_range) else {
            return;
        };
        let is_default = p.bound.as_ref().is_some_and(|b| b.is_default);
        let key = self
            .schema
            .tables
            .get(parent)
            .map(|t| t.partition_key.clone())
            .unwrap_or_default();
        let proven = self
            .schema
            .tables
            .get(&child)
            .is_some_and(|t| t.has_validated_check_on(&key));
        if self.exists(&child) && !proven {
            self.report(
                Rule::AttachPartitionScan,
                format!(
                    "ATTACH PARTITION {child} to {parent}: no validated CHECK on {} implies the bound, so every row of {child} is scanned under an ACCESS EXCLUSIVE lock",
                    if key.is_empty() { "the partition key".to_owned() } else { key.join(", ") }
                ),
            );
        }
        if !is_default {
            self.check_default_partition_scan(parent, &format!("ATTACH PARTITION {child}"));
        }
    }

    /// `CREATE TABLE child PARTITION OF parent FOR VALUES ...` scans a DEFAULT partition.
    pub(super) fn check_create_partition(&mut self, create: &CreateStmt) {
        let Some(bound) = create.partbound.as_ref() else {
            return;
        };
        if bound.is_default {
            return;
        }
        let Some(child) = create.relation.as_ref().map(QName::of_range) else {
            return;
        };
        let parent = create
            .inh_relations
            .iter()
            .find_map(|r| match r.node.as_ref()? {
                pg_query::NodeEnum::RangeVar(r) => Some(QName::of_range(r)),
                _ => None,
            });
        if let Some(parent) = parent {
            self.check_default_partition_scan(
                &parent,
                &format!("CREATE TABLE {child} PARTITION OF"),
            );
        }
    }

    fn check_default_partition_scan(&mut self, parent: &QName, what: &str) {
        let default = self.schema.default_partition_of(parent).cloned();
        if let Some(default) = default.filter(|d| self.exists(d)) {
            self.report(
                Rule::AttachPartitionScan,
                format!(
                    "{what} {parent}: the DEFAULT partition {default} is scanned under an ACCESS EXCLUSIVE lock for rows that belong to the new partition"
                ),
            );
        }
    }

    /// `ALTER TABLE parent DETACH PARTITION child [CONCURRENTLY]` on an existing `parent`.
    pub(super) fn check_detach(&mut self, parent: &QName, p: &PartitionCmd) {
        let child = p
            .name
            .as_ref()
            .map(QName::of_range)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let pg = self.options.pg_version;
        let default = self.schema.default_partition_of(parent).cloned();
        if p.concurrent {
            if self.in_transaction {
                self.report(
                    Rule::ConcurrentlyInTransaction,
                    format!("DETACH PARTITION {child} CONCURRENTLY in a migration that runs in a transaction"),
                );
            }
            if pg < 14 {
                self.report_with(
                    Rule::DetachPartition,
                    format!("DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14 (target {pg}): a syntax error before"),
                    "Before PostgreSQL 14 DETACH PARTITION has no concurrent form and takes an ACCESS EXCLUSIVE lock on the partitioned table: run it alone, with a short lock_timeout, at a quiet time (and allow-list it).".into(),
                );
            } else if let Some(default) = default {
                self.report(
                    Rule::DetachPartition,
                    format!("DETACH PARTITION {child} CONCURRENTLY from {parent}, which has a DEFAULT partition ({default}): PostgreSQL refuses it"),
                );
            }
            return;
        }
        let advice = if pg < 14 {
            format!(
                "DETACH PARTITION takes an ACCESS EXCLUSIVE lock on the partitioned table, and before PostgreSQL 14 (target {pg}) there is no concurrent form: run it alone, with a short lock_timeout, at a quiet time (and allow-list it)."
            )
        } else {
            Rule::DetachPartition.advice().to_owned()
        };
        self.report_with(
            Rule::DetachPartition,
            format!("DETACH PARTITION {child} from {parent} without CONCURRENTLY"),
            advice,
        );
    }

    /// `CREATE INDEX` on a partitioned table: whether the partition rules
    /// decided the statement (the plain index rules then stay silent).
    pub(super) fn check_partitioned_index(&mut self, table: &QName, idx: &IndexStmt) -> bool {
        if !self.schema.is_partitioned(table) {
            return false;
        }
        let only = idx.relation.as_ref().is_some_and(|r| !r.inh);
        let name = if idx.idxname.is_empty() {
            "(unnamed)".to_owned()
        } else {
            format!("\"{}\"", idx.idxname)
        };
        if idx.concurrent {
            self.report(
                Rule::IndexConcurrentlyOnPartitioned,
                format!("CREATE INDEX CONCURRENTLY {name} on partitioned table {table}"),
            );
        } else if !only && self.exists(table) {
            self.report_with(
                Rule::IndexNotConcurrent,
                format!("CREATE INDEX {name} on partitioned table {table} builds it on every partition under SHARE locks"),
                "CREATE INDEX on a partitioned table takes a SHARE lock on it and on every partition while each partition's index is built: writes wait. CONCURRENTLY is refused on a partitioned table; instead create the index ON ONLY the partitioned table (catalog only), build each partition's index with CREATE INDEX CONCURRENTLY (run_in_transaction = false), then ALTER INDEX ... ATTACH PARTITION each one.".into(),
            );
        }
        true
    }
}
