//! The rules: their names (used in output, `allow` comments and the
//! allow-list file), their level, and the default advice (the lock taken and
//! the safe alternative). Findings may carry advice fitted to the case.

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Style or interop: printed, fails only with `--deny warnings`.
    Warning,
    /// Locks, rewrites, failures or breakage of running code: fails the lint.
    Error,
}

impl Severity {
    /// `error` or `warning`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $severity:ident, $advice:literal; )*) => {
        /// A rule of the linter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Rule {
            $( $(#[$doc])* $variant, )*
        }

        impl Rule {
            /// Every rule, in the README's order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),*];

            /// The name used in output, `allow` comments and the allow-list file.
            pub fn name(self) -> &'static str {
                match self { $(Rule::$variant => $name,)* }
            }

            /// Error or warning.
            pub fn severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$severity,)* }
            }

            /// What goes wrong (the lock taken), and the safe alternative.
            pub fn advice(self) -> &'static str {
                match self { $(Rule::$variant => $advice,)* }
            }
        }
    };
}

rules! {
    // --- indexes ---
    /// `CREATE INDEX` without `CONCURRENTLY` on an existing table.
    IndexNotConcurrent = "index-not-concurrent", Error,
        "CREATE INDEX takes a SHARE lock: every write to the table waits until the index is built. Use CREATE INDEX CONCURRENTLY in a migration with metadata.toml `run_in_transaction = false`.";
    /// `DROP INDEX` without `CONCURRENTLY` on an existing table's index.
    DropIndexNotConcurrent = "drop-index-not-concurrent", Error,
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait behind it (and behind any long query it waits for). Use DROP INDEX CONCURRENTLY in a migration with `run_in_transaction = false`.";
    /// `REINDEX` without `CONCURRENTLY`.
    ReindexNotConcurrent = "reindex-not-concurrent", Error,
        "REINDEX blocks writes to the table (and reads that would use the index) for the whole rebuild. Use REINDEX ... CONCURRENTLY (PostgreSQL 12+) in a migration with `run_in_transaction = false`.";
    /// `CONCURRENTLY` in a migration that runs in a transaction.
    ConcurrentlyInTransaction = "concurrently-in-transaction", Error,
        "CONCURRENTLY cannot run inside a transaction block: the migration fails. Put it in its own migration with metadata.toml `run_in_transaction = false`.";
    /// `ADD CONSTRAINT ... UNIQUE` or inline `UNIQUE` on `ADD COLUMN`: an index built under lock.
    AddUniqueConstraint = "add-unique-constraint", Error,
        "Adding a UNIQUE constraint builds its index under an ACCESS EXCLUSIVE lock: reads and writes wait for the build. Build it first with CREATE UNIQUE INDEX CONCURRENTLY (run_in_transaction = false), then ADD CONSTRAINT ... UNIQUE USING INDEX.";
    /// `ADD PRIMARY KEY` (or inline `PRIMARY KEY` on `ADD COLUMN`).
    AddPrimaryKey = "add-primary-key", Error,
        "Adding a primary key builds its index (and sets NOT NULL, scanning the table) under an ACCESS EXCLUSIVE lock. Make the columns NOT NULL safely first, CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... PRIMARY KEY USING INDEX.";
    /// `EXCLUDE` constraint added to an existing table.
    AddExclusionConstraint = "add-exclusion-constraint", Error,
        "An EXCLUDE constraint builds its index and checks every row under an ACCESS EXCLUSIVE lock, and cannot be built concurrently. Add it to a new (or empty) table, or enforce the rule in a trigger and backfill-check in batches.";
    /// `CREATE INDEX CONCURRENTLY` on a partitioned table: an error.
    IndexConcurrentlyOnPartitioned = "index-concurrently-on-partitioned", Error,
        "CREATE INDEX CONCURRENTLY fails on a partitioned table (\"cannot create index on partitioned table concurrently\"). Create the index ON ONLY the partitioned table (catalog only; it starts invalid), build each partition's index with CREATE INDEX CONCURRENTLY (run_in_transaction = false), then ALTER INDEX parent_index ATTACH PARTITION partition_index for each: the parent's index becomes valid once every partition has one.";
    // --- partitions ---
    /// `DETACH PARTITION` without `CONCURRENTLY` (or a `CONCURRENTLY` the target refuses).
    DetachPartition = "detach-partition", Error,
        "DETACH PARTITION takes an ACCESS EXCLUSIVE lock on the partitioned table: every query on any partition waits, and the lock queues behind running ones. On PostgreSQL 14+ use DETACH PARTITION ... CONCURRENTLY (SHARE UPDATE EXCLUSIVE on the partitioned table) alone in a migration with run_in_transaction = false; it is refused while the table has a DEFAULT partition.";
    /// `ATTACH PARTITION` (or `CREATE TABLE ... PARTITION OF`) that scans a table under lock.
    AttachPartitionScan = "attach-partition-scan", Error,
        "ATTACH PARTITION scans the table being attached under an ACCESS EXCLUSIVE lock to prove every row fits the bound, unless a validated CHECK constraint implies it; and when the partitioned table has a DEFAULT partition, that one is scanned too (under ACCESS EXCLUSIVE) for rows that belong to the new partition. Add a CHECK matching the bound NOT VALID and VALIDATE it (SHARE UPDATE EXCLUSIVE: writes continue) in an earlier migration, then ATTACH (no scan) and drop the check; keep the DEFAULT partition empty or do without one.";
    // --- columns ---
    /// `ADD COLUMN ... NOT NULL` without a `DEFAULT`.
    AddColumnNotNullWithoutDefault = "add-column-not-null", Error,
        "ADD COLUMN ... NOT NULL without DEFAULT fails on a table with rows. Add it with a constant DEFAULT (instant since PostgreSQL 11), or add it nullable, backfill, then add the constraint.";
    /// `ADD COLUMN` with a volatile default (or any default before PostgreSQL 11).
    VolatileDefault = "add-column-volatile-default", Error,
        "A volatile default (gen_random_uuid(), clock_timestamp(), random(), nextval()) rewrites the whole table under an ACCESS EXCLUSIVE lock. Add the column without a default (or with a constant), SET DEFAULT for new rows, and backfill existing rows in batches.";
    /// `ADD COLUMN ... GENERATED ALWAYS AS (...) STORED`.
    StoredGeneratedColumn = "add-column-generated-stored", Error,
        "A stored generated column is computed for every row while the table is rewritten under an ACCESS EXCLUSIVE lock. Add a plain column, fill it by trigger for new rows and in batches for old ones.";
    /// `ADD COLUMN` of type `serial`/`bigserial` or `GENERATED ... AS IDENTITY`.
    SerialColumn = "add-column-serial", Error,
        "Adding a serial or identity column fills every existing row from a sequence: a full rewrite under an ACCESS EXCLUSIVE lock. Add a nullable bigint, attach a sequence default, backfill in batches.";
    /// Inline `CHECK` on `ADD COLUMN`.
    CheckOnAddColumn = "add-column-check", Error,
        "An inline CHECK on ADD COLUMN is verified against every row while the ACCESS EXCLUSIVE lock is held. Add the column, then ADD CONSTRAINT ... CHECK (...) NOT VALID and VALIDATE CONSTRAINT in a later migration.";
    /// `ALTER COLUMN ... TYPE` that rewrites the table.
    ColumnTypeChange = "column-type-change", Error,
        "This type change rewrites the table (and its indexes) under an ACCESS EXCLUSIVE lock. Add a new column, backfill it in batches, switch the code, then drop the old one. (Widening varchar(n), varchar to text and raising numeric precision are free and not flagged.)";
    /// `DROP COLUMN`.
    DropColumn = "drop-column", Error,
        "Code still deployed may read the column and fail. Stop using it in a release first, then drop it in a later migration (and allow-list the drop).";
    /// `RENAME COLUMN`.
    RenameColumn = "rename-column", Error,
        "Running code uses the old name and fails at once. Add the new column, write both, backfill, switch reads, then drop the old one.";
    // --- constraints ---
    /// `SET NOT NULL` with no validated `CHECK (col IS NOT NULL)` to rely on.
    SetNotNull = "set-not-null", Error,
        "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock. Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in a later migration, then SET NOT NULL (PostgreSQL 12+ skips the scan).";
    /// A foreign key or check constraint added without `NOT VALID`.
    ConstraintWithoutNotValid = "constraint-not-valid", Error,
        "Adding a foreign key or check validates every row while holding a lock that blocks writes (a foreign key locks the referenced table too). Add it NOT VALID, then VALIDATE CONSTRAINT in a separate migration.";
    /// `VALIDATE CONSTRAINT` in the transaction that added it `NOT VALID` (or that locked the table).
    ValidateInSameTransaction = "validate-in-same-transaction", Error,
        "VALIDATE CONSTRAINT runs in the transaction that already holds the ACCESS EXCLUSIVE lock of the ALTER TABLE before it: the point of NOT VALID is lost. Validate in a later migration (or make this one run_in_transaction = false).";
    /// `DROP DEFAULT` (or `SET NOT NULL` without one) on a NOT NULL column this migration added.
    BreaksOldInserts = "breaks-old-inserts", Error,
        "The code still deployed does not know the new column, so its INSERTs omit it: with NOT NULL and no default they fail at once. Keep the DEFAULT until every running release writes the column, and drop it in a later migration.";
    // --- tables ---
    /// `DROP TABLE`.
    DropTable = "drop-table", Error,
        "Dropping a table loses its data and breaks code still deployed. Stop using it first, keep a backup, then drop it in a later migration (and allow-list the drop).";
    /// `RENAME TO` of a table.
    RenameTable = "rename-table", Error,
        "Running code uses the old name and fails at once. Create the new table (or a view with the old name), migrate callers, then drop the old name. (The same holds for views and schemas.)";
    /// `ALTER SCHEMA ... RENAME TO`.
    RenameSchema = "rename-schema", Error,
        "Every object in the schema changes its qualified name at once: running code that names the schema, and roles or functions whose search_path lists it, fail. Create the new schema, move objects with ALTER ... SET SCHEMA (a view with the old name in the old schema keeps a table reachable), switch code and search_path, then drop the old schema.";
    /// A view over a tenant table (a `tenant_id` column or row-level security), without `security_invoker`.
    ViewBypassesRls = "view-bypasses-rls", Error,
        "A view reads its tables with its owner's rights, and the owner (the migration role) bypasses row-level security: every caller of the view sees every row. Create it WITH (security_invoker = true) (PostgreSQL 15+), so that the policies apply to the caller.";
    /// `TRUNCATE` of an existing table.
    TruncateTable = "truncate-table", Error,
        "TRUNCATE deletes every row under an ACCESS EXCLUSIVE lock (CASCADE empties referencing tables too). Delete in batches, or drop the table in a later migration once unused.";
    /// `VACUUM FULL`, `CLUSTER`, `SET TABLESPACE`, `SET LOGGED/UNLOGGED`, `SET ACCESS METHOD`.
    TableRewrite = "table-rewrite", Error,
        "This rewrites the whole table under an ACCESS EXCLUSIVE lock: nothing can read or write it until it ends. Run it in a maintenance window outside migrations, or use pg_repack / pg_squeeze.";
    /// `LOCK TABLE` in a mode that blocks writes.
    LockTable = "lock-table", Error,
        "An explicit LOCK TABLE holds a lock that blocks writes (or reads) until the migration's transaction ends. Drop it, or keep the migration to one short statement with a lock_timeout.";
    /// `REFRESH MATERIALIZED VIEW` without `CONCURRENTLY`.
    RefreshNotConcurrent = "refresh-not-concurrent", Error,
        "REFRESH MATERIALIZED VIEW takes an ACCESS EXCLUSIVE lock: readers of the view wait for the whole refresh. Use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index on the view).";
    /// `UPDATE`/`DELETE` of a table this transaction already holds an ACCESS EXCLUSIVE lock on.
    BackfillUnderLock = "backfill-under-lock", Error,
        "This data change runs in the transaction that already holds the ACCESS EXCLUSIVE lock of an ALTER TABLE on the same table: the table stays locked for the whole backfill. Backfill in a separate, non-transactional migration, in batches.";
    // --- enums ---
    /// `ALTER TYPE ... RENAME VALUE`.
    EnumRenameValue = "enum-rename-value", Error,
        "Running code still writes and compares the old label and fails at once. Add the new value, migrate the rows and the code, and stop using the old one.";
    /// A value added with `ADD VALUE` used in the same transaction.
    EnumValueUsedInTransaction = "enum-value-used-in-transaction", Error,
        "A value added with ALTER TYPE ... ADD VALUE cannot be used until its transaction commits (\"unsafe use of new value\"). Use it in a later migration.";
    // --- transactions ---
    /// A statement that cannot run in a transaction block, in a transactional migration.
    NotInTransaction = "not-in-transaction", Error,
        "This statement cannot run inside a transaction block: the migration fails. Put it in its own migration with metadata.toml `run_in_transaction = false`.";
    /// `BEGIN`/`COMMIT`/`ROLLBACK` in a migration that already runs in a transaction.
    TransactionControl = "transaction-control", Error,
        "The migration already runs in a transaction: COMMIT ends it early (later statements run outside it and the version is recorded separately), BEGIN only warns. Remove it, or set run_in_transaction = false.";
    /// Contradictions a reviewer would catch (`NOT NULL DEFAULT NULL`, `ON DELETE SET NULL` on a `NOT NULL` column, ...).
    Contradiction = "contradiction", Error,
        "The definition contradicts itself: it fails as soon as the contradictory path is taken. Fix the definition.";
    /// No `down.sql`, or one with no statement.
    MissingDown = "missing-down", Error,
        "Every migration needs a down.sql that really reverses it, so that `db rollback` and `diesel migration redo` work.";
    /// The SQL does not parse.
    Syntax = "syntax", Error,
        "PostgreSQL's parser rejects this SQL.";
    // --- security ---
    /// A table given a `tenant_id` column without `ENABLE` + `FORCE ROW LEVEL SECURITY` and a policy in the same migration.
    TenantTableWithoutRls = "tenant-table-without-rls", Error,
        "A table with a tenant_id column holds tenant rows: without row-level security a query that forgets its tenant filter reads and writes every tenant's rows. In the same migration: ALTER TABLE t ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY; CREATE POLICY tenant_isolation ON t USING (tenant_id = (SELECT app_current_tenant())) WITH CHECK (tenant_id = (SELECT app_current_tenant())); and a policy on app_current_user() for personal rows if tenant_id is nullable (README, \"Tenant isolation\").";
    /// `SECURITY DEFINER` function without `SET search_path`.
    SecurityDefinerSearchPath = "security-definer-search-path", Error,
        "A SECURITY DEFINER function runs with its owner's rights (the migration role, which bypasses row-level security) but resolves unqualified names through the caller's search_path: a caller who can create an object in a schema on that path runs it as the owner. Add SET search_path = pg_catalog, public (or SET search_path = '' with qualified names), and say in a comment why it must be a definer and not SECURITY INVOKER.";
    // --- warnings ---
    /// A policy that calls `current_setting` (or a function reading it) outside a sub-select.
    PolicySettingPerRow = "policy-setting-per-row", Warning,
        "A policy's expression is evaluated for every row the query reads; current_setting() called directly in it is re-read each time and keeps the planner from treating the tenant as a constant. Wrap the call in a sub-select, evaluated once per statement: tenant_id = (SELECT app_current_tenant()), or (SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid).";
    /// Strong locks taken without a `SET lock_timeout` first (one per migration).
    MissingLockTimeout = "missing-lock-timeout", Warning,
        "Waiting for this lock queues every later query on the table behind it. `db migrate` sets a lock timeout itself; `diesel migration run` does not: start the migration with SET lock_timeout = '5s' (or SET LOCAL).";
    /// A multi-statement non-transactional migration that `diesel migration run` cannot run.
    DieselCliBatch = "diesel-cli-batch", Warning,
        "`diesel migration run` sends a run_in_transaction = false migration as one batch, which PostgreSQL runs as one implicit transaction: this statement fails there (it works under `db migrate`, which runs it statement by statement). Put it alone in its own migration.";
    /// SQL built at run time (`EXECUTE format(...)`), or a `DO` block in a language lint cannot read.
    DynamicSql = "dynamic-sql", Warning,
        "This statement is built when the migration runs, so lint cannot check it. Spell it out (one statement per object) so that it can be checked, or review it by hand: `db lint --trace` shows the locks it really takes.";
    /// An `integer`/`smallint`/`serial` primary key.
    IntPrimaryKey = "int-primary-key", Warning,
        "A 32-bit key runs out at 2.1 billion rows, and widening it later rewrites the table. Prefer bigint GENERATED ALWAYS AS IDENTITY (or uuid, as this project does).";
    /// `UPDATE`/`DELETE` of an existing table that is not a batch (no WHERE, or one that bounds no indexed key on both sides).
    UnbatchedBackfill = "unbatched-backfill", Warning,
        "Every row the statement changes stays locked until its transaction commits (concurrent writers of those rows wait), and all are written at once (WAL, bloat, replica lag). Lint has no row counts: it flags the shape. Work in batches, each bounding an indexed key on both sides (WHERE id >= $1 AND id < $1 + 1000) or taking its rows from a sub-select with a LIMIT (WHERE id IN (SELECT id FROM t WHERE ... ORDER BY id LIMIT 1000)), repeated until no row changes, in a run_in_transaction = false migration or outside migrations.";
    /// `timestamp` without time zone.
    TimestampWithoutTimeZone = "timestamp-without-time-zone", Warning,
        "timestamp without time zone stores a wall-clock reading with no zone: instants shift with the session's TimeZone. Use timestamptz.";
    /// `varchar(n)` or `char(n)`.
    PreferText = "prefer-text", Warning,
        "Changing a varchar(n)/char(n) limit later is a migration (and shrinking it rewrites); char(n) pads with spaces. Use text with a CHECK (char_length(col) <= n) constraint.";
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rule::ALL
            .iter()
            .copied()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown rule `{s}`"))
    }
}
