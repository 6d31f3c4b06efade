//! The library tests' harness (`tests/common` at the root: TestDb and
//! friends), plus what only the `db` command's tests need: the binary.
#![allow(dead_code, unused_imports)]

#[path = "../../../tests/common/mod.rs"]
mod shared;
pub use shared::*;

/// The `db` binary built for these tests.
pub const DB_BIN: &str = env!("CARGO_BIN_EXE_db");

/// `db <args>` against `url` from the crate's folder, with `env` added to an
/// environment cleaned of what would change the outcome (the production
/// guard's variables, a migrations folder override) and no terminal.
pub fn run_db(url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    run_db_in(&std::env::temp_dir(), url, args, env)
}

/// `run_db` with the working directory `dir` (the project root for the
/// commands that read `diesel.toml`: `lint`, `pull`, `new`).
pub fn run_db_in(
    dir: &std::path::Path,
    url: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(DB_BIN);
    cmd.args(args)
        .env("DATABASE_URL", url)
        .env_remove("DB_MIGRATIONS_DIR")
        .env_remove("APP_ENV")
        .env_remove("NODE_ENV")
        // run_db runs outside the project: a rollback there would
        // regenerate the repository's own src/schema.rs from the test database.
        .current_dir(dir)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run db")
}
