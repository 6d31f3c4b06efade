//! The SQLite rows: the portable auth functions on a `SqliteDb` over a SQLite
//! file (WAL, pool of `POOL_SIZE`), against hand-written SQL on Diesel's
//! synchronous `SqliteConnection` (cached prepared statements, the same
//! pragmas) behind the same kind of hop to a blocking thread an async service
//! needs: one of `POOL_SIZE` connections, taken without blocking a runtime
//! thread, then `spawn_blocking`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use chrono::{DateTime, Utc};
use database::auth::{NewUser, users};
use database::db::sqlite::{SqliteTarget, establish_sync};
use database::{Config, SqliteDb, UserId};
use diesel::sql_types::{Binary, Bool, Nullable, Text, TimestamptzSqlite};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection};

use super::{Op, POOL_SIZE, Workload};

/// The SQLite workloads, in report order.
pub const WORKLOADS: [&str; 2] = ["sqlite_user_by_id", "sqlite_create_user"];

/// A user row as the raw side reads it (the same columns as `users::User`).
#[derive(QueryableByName)]
#[allow(dead_code)]
struct RawUser {
    #[diesel(sql_type = Binary)]
    id: Vec<u8>,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Bool)]
    email_verified: bool,
    #[diesel(sql_type = Nullable<Text>)]
    name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    image: Option<String>,
    #[diesel(sql_type = TimestamptzSqlite)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = TimestamptzSqlite)]
    updated_at: DateTime<Utc>,
}

/// As the other workloads: spreads `i` over `n` rows.
fn pick(i: u64, n: usize) -> usize {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n as u64) as usize
}

/// The SQLite side of the benchmark: its file, both pools and the ids.
pub struct Bench {
    db: SqliteDb,
    raw: Arc<Vec<Arc<tokio::sync::Mutex<SqliteConnection>>>>,
    ids: Arc<Vec<UserId>>,
    _dir: tempfile::TempDir,
}

static NEXT_EMAIL: AtomicU64 = AtomicU64::new(0);

impl Bench {
    /// A migrated file with `users` users.
    pub async fn new(users_count: usize) -> Result<Bench> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bench.db");
        let mut config = Config::new(format!("sqlite:{}", path.display()));
        config.pool_size = POOL_SIZE;
        let db = SqliteDb::new(config)?;
        db.migrate().await?;
        let mut ids = Vec::with_capacity(users_count);
        let mut conn = db.conn().await?;
        for i in 0..users_count {
            let user = users::create(
                &mut conn,
                &NewUser {
                    email: format!("seed{i}@bench.example.com"),
                    name: Some(format!("User {i}")),
                    ..Default::default()
                },
            )
            .await?;
            ids.push(user.id);
        }
        drop(conn);
        let target = SqliteTarget::File(path);
        let raw = (0..POOL_SIZE)
            .map(|_| Ok(Arc::new(tokio::sync::Mutex::new(establish_sync(&target)?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bench {
            db,
            raw: Arc::new(raw),
            ids: Arc::new(ids),
            _dir: dir,
        })
    }

    /// The workloads, both sides each.
    pub fn workloads(&self) -> Vec<Workload> {
        vec![self.user_by_id(), self.create_user()]
    }

    /// Runs `f` on raw connection `i % POOL_SIZE` on a blocking thread.
    fn raw_op<F>(&self, f: F) -> Op
    where
        F: Fn(&mut SqliteConnection, u64) -> Result<()> + Send + Sync + Copy + 'static,
    {
        let raw = self.raw.clone();
        Arc::new(move |i| {
            let raw = raw.clone();
            Box::pin(async move {
                let slot = raw[(i as usize) % raw.len()].clone().lock_owned().await;
                tokio::task::spawn_blocking(move || {
                    let mut conn = slot;
                    f(&mut conn, i)
                })
                .await?
            })
        })
    }

    fn user_by_id(&self) -> Workload {
        let (db, ids) = (self.db.clone(), self.ids.clone());
        let ids_raw = self.ids.clone();
        Workload {
            name: "sqlite_user_by_id",
            krate: Arc::new(move |i| {
                let (db, ids) = (db.clone(), ids.clone());
                Box::pin(async move {
                    let id = ids[pick(i, ids.len())];
                    let mut conn = db.conn().await?;
                    std::hint::black_box(users::find(&mut conn, id).await?);
                    Ok(())
                })
            }),
            raw: {
                let raw = self.raw.clone();
                Arc::new(move |i| {
                    let raw = raw.clone();
                    let id = ids_raw[pick(i, ids_raw.len())];
                    Box::pin(async move {
                        let slot = raw[(i as usize) % raw.len()].clone().lock_owned().await;
                        tokio::task::spawn_blocking(move || {
                            let mut conn = slot;
                            let user: RawUser = diesel::sql_query(
                                "SELECT id, email, email_verified, name, image, created_at, \
                                 updated_at FROM users WHERE id = ?",
                            )
                            .bind::<Binary, _>(id.into_uuid().as_bytes().as_slice())
                            .get_result(&mut *conn)?;
                            std::hint::black_box(user);
                            Ok(())
                        })
                        .await?
                    })
                })
            },
        }
    }

    fn create_user(&self) -> Workload {
        let db = self.db.clone();
        Workload {
            name: "sqlite_create_user",
            krate: Arc::new(move |_| {
                let db = db.clone();
                Box::pin(async move {
                    let n = NEXT_EMAIL.fetch_add(1, Ordering::Relaxed);
                    let mut conn = db.conn().await?;
                    let user = users::create(
                        &mut conn,
                        &NewUser {
                            email: format!("c{n}@bench.example.com"),
                            name: Some("Bench".into()),
                            ..Default::default()
                        },
                    )
                    .await?;
                    std::hint::black_box(user);
                    Ok(())
                })
            }),
            raw: self.raw_op(|conn, _| {
                let n = NEXT_EMAIL.fetch_add(1, Ordering::Relaxed);
                let user: RawUser = diesel::sql_query(
                    "INSERT INTO users (id, email, email_verified, name, image) \
                     VALUES (?, ?, ?, ?, ?) RETURNING id, email, email_verified, name, image, \
                     created_at, updated_at",
                )
                .bind::<Binary, _>(uuid::Uuid::now_v7().as_bytes().as_slice())
                .bind::<Text, _>(format!("r{n}@bench.example.com"))
                .bind::<Bool, _>(false)
                .bind::<Nullable<Text>, _>(Some("Bench"))
                .bind::<Nullable<Text>, _>(None::<String>)
                .get_result(conn)?;
                std::hint::black_box(user);
                Ok(())
            }),
        }
    }
}
