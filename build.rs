//! Embeds `migrations/` (PostgreSQL) and `migrations_sqlite/` into the crate.
//!
//! Two things are generated from the same folder at compile time:
//! `diesel_migrations::embed_migrations!` (in `src/migrate/mod.rs`) for callers
//! who want Diesel's own harness, and `$OUT_DIR/embedded_migrations.rs`, the
//! table of SQL texts our migration engine runs and checksums. Both are rebuilt
//! whenever anything under `migrations/` changes.
//!
//! And `$OUT_DIR/domains.rs` (`crate::DOMAINS`): every table of
//! `src/schema.rs` by the folder of its module, `src/<domain>/<table>.rs`, so
//! that nothing keeps that list by hand.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=migrations_sqlite");
    let root = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // PostgreSQL's folder, and SQLite's (auth and settings only).
    embed(
        &Path::new(&root).join("migrations"),
        "embedded_migrations.rs",
    );
    embed(
        &Path::new(&root).join("migrations_sqlite"),
        "embedded_migrations_sqlite.rs",
    );
    println!("cargo:rerun-if-changed=src");
    domains(&Path::new(&root).join("src"));
}

/// Writes `$OUT_DIR/domains.rs`: `(domain, tables)` for every folder of
/// `src/` holding a module named after a table of `src/schema.rs`.
fn domains(src: &Path) {
    let schema = fs::read_to_string(src.join("schema.rs")).expect("src/schema.rs");
    // In each `diesel::table! {`, after any `use` and comment lines: `    name (key) {`.
    let tables: Vec<&str> = schema
        .split("diesel::table! {")
        .skip(1)
        .filter_map(|block| {
            let line = block
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("use ") && !l.starts_with("//"))?;
            line.split([' ', '(']).next()
        })
        .collect();
    let mut folders: Vec<_> = fs::read_dir(src)
        .expect("src/")
        .map(|e| e.expect("readable src/ entry").path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = String::from("&[\n");
    for folder in folders {
        let mut owned: Vec<String> = fs::read_dir(&folder)
            .expect("readable folder")
            .filter_map(|e| {
                let path = e.expect("readable entry").path();
                let stem = path.file_stem()?.to_str()?.to_owned();
                (path.extension()? == "rs" && tables.contains(&stem.as_str())).then_some(stem)
            })
            .collect();
        if owned.is_empty() {
            continue;
        }
        owned.sort();
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        writeln!(out, "    ({name:?}, &{owned:?}),").unwrap();
    }
    out.push(']');
    let out_path = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("domains.rs");
    fs::write(out_path, out).expect("write the domains");
}

/// Writes `$OUT_DIR/<out_name>`: the table of `dir`'s migrations.
fn embed(dir: &Path, out_name: &str) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| {
            let entry = entry.expect("readable migrations entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_migration = entry.path().join("up.sql").is_file() && !name.starts_with('.');
            is_migration.then_some(name)
        })
        .collect();
    // Only for a stable generated file: the engine orders by version (the
    // name up to the first `_`, dashes removed), which accepts every shape
    // diesel does (`2026-11-21-100000_x`, `2026-11-21-100000-0000_x`).
    names.sort();

    let mut out = String::from("&[\n");
    for name in &names {
        let path = dir.join(name);
        let file = |f: &str| -> Option<String> {
            let p = path.join(f);
            // The text itself, not `include_str!(<absolute path>)`: the
            // generated file then does not depend on where the checkout is,
            // so a build directory shared with another checkout (CI's fresh
            // clone) never points at files that are gone.
            p.is_file().then(|| {
                let text = fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                format!("{text:?}")
            })
        };
        writeln!(
            out,
            "    crate::migrate::EmbeddedFiles {{ name: {name:?}, up_sql: {}, down_sql: {}, metadata_toml: {} }},",
            file("up.sql").expect("checked above"),
            opt(file("down.sql")),
            opt(file("metadata.toml")),
        )
        .unwrap();
    }
    out.push(']');

    let out_path = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(out_name);
    fs::write(out_path, out).expect("write the embedded migrations");
}

fn opt(s: Option<String>) -> String {
    s.map_or_else(|| "None".to_owned(), |s| format!("Some({s})"))
}
