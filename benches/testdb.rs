//! `scripts/bench --testdb`: the time from "give me a database" to a usable
//! `Db` in a test (`database::testing::TestDb`: a clone of the migrated
//! template, then the service role's first statement), with the crate's real
//! migrations and with 200 trivial migrations added, to show that it does
//! not grow with their number (only the template's one-time build does).
//! Prints the first call (template built) and the median and p90 of the rest.

use std::time::{Duration, Instant};

use database::migrate::MigrationSet;
use database::testing::TestDb;
use diesel_async::SimpleAsyncConnection;

const ROUNDS: usize = 25;

/// The crate's migrations plus `extra` trivial ones, in a temporary folder:
/// each creates a table (`tables`), or only changes a comment.
fn with_trivial(extra: usize, tables: bool) -> (tempfile::TempDir, &'static MigrationSet) {
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() {
            continue;
        }
        let target = dir.path().join(entry.file_name());
        std::fs::create_dir(&target).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), target.join(file.file_name())).unwrap();
        }
    }
    for i in 0..extra {
        let target = dir.path().join(format!(
            "2099-01-01-{:02}{:02}{:02}_trivial_{i}",
            i / 3600,
            (i / 60) % 60,
            i % 60
        ));
        std::fs::create_dir(&target).unwrap();
        let (up, down) = if tables {
            (
                format!("CREATE TABLE trivial_{i} (id int);\n"),
                format!("DROP TABLE trivial_{i};\n"),
            )
        } else {
            (
                format!("COMMENT ON TABLE users IS 'v{i}';\n"),
                "COMMENT ON TABLE users IS NULL;\n".to_owned(),
            )
        };
        std::fs::write(target.join("up.sql"), up).unwrap();
        std::fs::write(target.join("down.sql"), down).unwrap();
    }
    let set = MigrationSet::from_dir(dir.path()).unwrap();
    (dir, Box::leak(Box::new(set)))
}

/// A test's database, and its first statement as the service's role.
async fn usable(set: &'static MigrationSet) -> (TestDb, Duration) {
    let start = Instant::now();
    let t = TestDb::with_migrations(set).await;
    t.service_db()
        .conn()
        .await
        .unwrap()
        .batch_execute("SELECT 1")
        .await
        .unwrap();
    let took = start.elapsed();
    (t, took)
}

/// Drops the template of `set`, so that the first call builds it.
async fn drop_template(set: &MigrationSet) {
    use diesel_async::AsyncConnection;
    let name = database::testing::template_name(set);
    let mut admin = database::Conn::establish(&database::testing::server().url_of("postgres"))
        .await
        .unwrap();
    let sql = format!(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_database WHERE datname = '{name}') THEN \
         ALTER DATABASE {name} WITH IS_TEMPLATE false; END IF; END $$"
    );
    admin.batch_execute(&sql).await.unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_comments_dir, comments) = with_trivial(200, false);
    let (_tables_dir, tables) = with_trivial(200, true);
    for (label, set) in [
        ("real migrations", MigrationSet::embedded()),
        ("real + 200 that change a comment", comments),
        ("real + 200 that create a table each", tables),
    ] {
        runtime.block_on(async {
            drop_template(set).await;
            let (first, first_took) = usable(set).await;
            drop(first);
            let mut times = Vec::with_capacity(ROUNDS);
            // One database after another, each kept until the end: one
            // test's wait while other tests' databases exist. Dropping each
            // before the next would time PostgreSQL's DROP DATABASE instead
            // (it forces a checkpoint); a suite drops in the background,
            // and its whole cost is in the 500 tests of `scripts/bench --testdb`.
            let mut alive = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let (t, took) = usable(set).await;
                times.push(took);
                alive.push(t);
            }
            drop(alive);
            // Let the drops end before the next set.
            tokio::time::sleep(Duration::from_secs(3)).await;
            times.sort();
            println!(
                "{label} ({} migrations): first {:.0} ms (the template built), \
                 then median {:.1} ms, p90 {:.1} ms over {ROUNDS}",
                set.len(),
                ms(first_took),
                ms(times[ROUNDS / 2]),
                ms(times[ROUNDS * 9 / 10]),
            );
        });
    }
}
