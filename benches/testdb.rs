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

const ROUNDS: usize = 40;

/// The crate's migrations plus `extra` trivial ones (a table each), in a
/// temporary folder.
fn with_trivial(extra: usize) -> (tempfile::TempDir, &'static MigrationSet) {
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
        std::fs::write(
            target.join("up.sql"),
            format!("CREATE TABLE trivial_{i} (id int);\n"),
        )
        .unwrap();
        std::fs::write(
            target.join("down.sql"),
            format!("DROP TABLE trivial_{i};\n"),
        )
        .unwrap();
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_dir, trivial) = with_trivial(200);
    for (label, set) in [
        ("real migrations", MigrationSet::embedded()),
        ("real + 200 trivial", trivial),
    ] {
        runtime.block_on(async {
            let (first, first_took) = usable(set).await;
            drop(first);
            let mut times = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let (t, took) = usable(set).await;
                times.push(took);
                drop(t);
            }
            times.sort();
            println!(
                "{label} ({} migrations): first {:.0} ms (template built unless it existed), \
                 then median {:.1} ms, p90 {:.1} ms over {ROUNDS}",
                set.len(),
                ms(first_took),
                ms(times[ROUNDS / 2]),
                ms(times[ROUNDS * 9 / 10]),
            );
        });
    }
}
