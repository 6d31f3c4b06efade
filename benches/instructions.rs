//! Instructions per operation, the client's own cost counted by callgrind
//! (`scripts/bench --instructions`): unlike throughput, the count repeats
//! on a busy 2-core machine, so a change that adds per-call work shows.
//!
//! One process per side: `instructions <server url> crate|raw <n>` runs `n`
//! primary-key lookups of one user on a current-thread runtime (the
//! connection's tasks run on the same thread, so they are counted), the
//! crate's `users::find` through a pooled `Db` with its defaults on
//! (deadlines, commit tracking, metrics to the no-op recorder, no tracing
//! subscriber), or tokio-postgres through deadpool with the same SQL,
//! prepared and cached. The `crate-recorded` side is the crate's with a
//! `tracing` subscriber that keeps every span's fields (the layer of
//! `scripts/bench --telemetry`) and `metrics-util`'s debugging recorder
//! installed first: the client's cost of observability, in instructions.
//! The script runs it under
//! `valgrind --tool=callgrind --toggle-collect=*measured*`, so only the
//! lookups are counted, not start-up or the warm-up. Its scratch database
//! (`database_bench_instructions` on the server) is created by the first run
//! and dropped by `instructions <server url> drop`.

#[path = "compare/recording.rs"]
#[allow(dead_code, reason = "shared with the side-by-side benchmark")]
mod recording;

use database::auth::users::{self, NewUser};
use database::db::{Config, Db};

const SQL: &str = "SELECT id, email, email_verified, name, image, created_at, updated_at FROM users WHERE id = $1";

const SCRATCH: &str = "database_bench_instructions";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (server, side, n) = match args.as_slice() {
        [server, side, n] => (
            server,
            side,
            n.parse::<usize>().expect("a number of lookups"),
        ),
        [server, drop] if drop == "drop" => {
            runtime.block_on(scratch(server, "DROP DATABASE IF EXISTS"));
            return;
        }
        _ => {
            eprintln!(
                "usage: instructions <server url> crate|crate-recorded|raw <lookups> | <server url> drop"
            );
            std::process::exit(2);
        }
    };
    if side == "crate-recorded" {
        use tracing_subscriber::layer::SubscriberExt;
        let spans = recording::Spans::default();
        spans.1.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans))
            .expect("the only subscriber");
        metrics_util::debugging::DebuggingRecorder::new()
            .install()
            .expect("the only recorder");
    }
    runtime.block_on(scratch(server, "CREATE DATABASE"));
    let mut url = database::db::with_dbname(server, SCRATCH);
    // Both sides in plain text, as in the side-by-side benchmark (the raw
    // side has no TLS).
    if !url.contains("sslmode=") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("sslmode=disable");
    }
    let db = Db::new(Config::new(url.clone())).expect("a Db");
    let id = runtime.block_on(async {
        db.migrate().await.expect("migrated");
        let mut conn = db.conn().await.expect("a connection");
        let email = "instructions@example.com";
        match users::find_by_email(&mut conn, email).await {
            Ok(user) => user.id,
            Err(_) => {
                let input = NewUser {
                    email: email.to_owned(),
                    ..NewUser::default()
                };
                users::create(&mut conn, &input).await.expect("a user").id
            }
        }
    });
    match side.as_str() {
        "crate" | "crate-recorded" => {
            runtime.block_on(crate_lookups(&db, id, 200));
            measured_crate(&runtime, &db, id, n);
        }
        "raw" => {
            let config: tokio_postgres::Config = url.parse().expect("a URL");
            let manager = deadpool_postgres::Manager::from_config(
                config,
                tokio_postgres::NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(10)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .expect("a pool");
            let id = id.into_uuid();
            runtime.block_on(raw_lookups(&pool, id, 200));
            measured_raw(&runtime, &pool, id, n);
        }
        other => panic!("side {other}: crate or raw"),
    }
}

/// `verb` the scratch database on the server (an existing one is kept).
async fn scratch(server: &str, verb: &str) {
    use diesel_async::SimpleAsyncConnection;
    let config = Config::new(server.to_owned());
    let mut conn = database::db::connect(&config, server)
        .await
        .expect("the server answers");
    if let Err(e) = conn.batch_execute(&format!("{verb} {SCRATCH}")).await
        && !e.to_string().contains("already exists")
    {
        panic!("{verb} {SCRATCH}: {e}");
    }
}

async fn crate_lookups(db: &Db, id: database::UserId, n: usize) {
    for _ in 0..n {
        let mut conn = db.conn().await.expect("a connection");
        std::hint::black_box(users::find(&mut conn, id).await.expect("the user"));
    }
}

async fn raw_lookups(pool: &deadpool_postgres::Pool, id: uuid::Uuid, n: usize) {
    for _ in 0..n {
        let client = pool.get().await.expect("a connection");
        let statement = client.prepare_cached(SQL).await.expect("prepared");
        let row = client
            .query_one(&statement, &[&id])
            .await
            .expect("the user");
        std::hint::black_box((
            row.get::<_, uuid::Uuid>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2),
            row.get::<_, Option<String>>(3),
            row.get::<_, Option<String>>(4),
            row.get::<_, chrono::DateTime<chrono::Utc>>(5),
            row.get::<_, chrono::DateTime<chrono::Utc>>(6),
        ));
    }
}

// The counted regions (callgrind's --toggle-collect matches these names).
#[inline(never)]
fn measured_crate(runtime: &tokio::runtime::Runtime, db: &Db, id: database::UserId, n: usize) {
    runtime.block_on(crate_lookups(db, id, n));
}

#[inline(never)]
fn measured_raw(
    runtime: &tokio::runtime::Runtime,
    pool: &deadpool_postgres::Pool,
    id: uuid::Uuid,
    n: usize,
) {
    runtime.block_on(raw_lookups(pool, id, n));
}
