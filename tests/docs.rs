//! The documentation tells the truth: every `Error` variant is in the
//! README's error table, rustdoc speaks of this project (not of the
//! TypeScript packages it replaces), and the scripts recognise what is
//! installed, and the modules it describes form layers, not circles. (The
//! README's code blocks are doc-tests: `cargo test --doc`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The variant names of `pub enum Error` in src/error/mod.rs.
fn error_variants() -> Vec<String> {
    let source = read("src/error/mod.rs");
    let body = source
        .split("pub enum Error {")
        .nth(1)
        .expect("src/error/mod.rs has pub enum Error")
        .split("\n}\n")
        .next()
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(str::trim)
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(|l| l.split(['(', ' ', '{', ',']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_readme_error_table_lists_every_variant() {
    let variants = error_variants();
    assert!(variants.len() >= 10, "{variants:?}");
    let readme = read("README.md");
    for v in variants {
        assert!(
            readme.contains(&format!("| `{v}")) || readme.contains(&format!(", `{v}")),
            "README error table lacks `{v}`"
        );
    }
}

#[test]
fn rustdoc_speaks_of_the_project_not_the_seeds() {
    let mut offenders = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("cli/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // The seed command's own "seed" is a different word.
            if path.extension().is_none_or(|e| e != "rs")
                || path.to_string_lossy().contains("ops/seed")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let doc = line.trim_start().starts_with("//");
                let lower = line.to_lowercase();
                if doc
                    && (lower.contains("(seed 0")
                        || lower.contains("the seed's")
                        || lower.contains("dto`"))
                {
                    offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn the_diesel_cli_script_recognises_an_installed_diesel() {
    let installed = std::process::Command::new("diesel")
        .arg("--version")
        .output();
    let Ok(out) = installed else {
        assert!(
            std::env::var("DB_TEST_REQUIRE_ALL").is_err(),
            "the diesel CLI is required"
        );
        eprintln!("skipped: no diesel CLI");
        return;
    };
    if !String::from_utf8_lossy(&out.stdout).contains("2.3.14") {
        eprintln!("skipped: another diesel CLI version is installed");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/diesel-cli");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !said.contains("Installing"),
        "{said}"
    );
}

#[test]
fn sql_files_are_pinned_to_lf_and_the_diesel_lock_is_ignored() {
    assert!(read(".gitattributes").contains("*.sql text eol=lf"));
    assert!(read(".gitignore").contains(".diesel_lock"));
}

#[test]
fn the_first_build_shows_its_progress() {
    let setup = read("scripts/setup");
    let build = setup
        .lines()
        .find(|l| l.contains("cargo run"))
        .expect("scripts/setup runs cargo");
    assert!(
        !build.contains("--quiet"),
        "scripts/setup hides the first build's progress: {build}"
    );
    assert!(setup.contains("takes a few minutes"));
}

#[test]
fn the_capacity_table_is_what_its_inputs_give() {
    // docs/scaling.md's capacity plan: scripts/capacity recomputes the table
    // from the inputs above it, so no figure of it is typed by hand.
    let out =
        std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/capacity"))
            .arg("--check")
            .output()
            .expect("scripts/capacity runs (bash and awk)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The unit each file of `root` belongs to (its first module below `root`;
/// `None` for the root's own `lib.rs`/`main.rs`/`mod.rs`) and the units its
/// imports name (`crate::x`, `super::x`, `use super::{x, y}`), outside its
/// `mod tests`.
fn import_graph(root: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let files = rust_files(&root);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().with_extension("");
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(
            module.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            module.pop();
        }
        let Some(unit) = module.first().cloned() else {
            continue;
        };
        let source = std::fs::read_to_string(&file).unwrap();
        let code = source.split("#[cfg(test)]\nmod tests").next().unwrap();
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let names = graph.entry(unit.clone()).or_default();
        let bytes = code.as_bytes();
        let ident = |from: usize| -> (String, usize) {
            let end = code[from..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(code.len(), |n| from + n);
            (code[from..end].to_owned(), end)
        };
        let mut at = 0;
        while let Some(found) = code[at..].find(['c', 's']) {
            let start = at + found;
            at = start + 1;
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let mut path: Vec<String>;
            let mut rest = start;
            if code[start..].starts_with("crate::") {
                path = Vec::new();
                rest += "crate::".len();
            } else if code[start..].starts_with("super::") {
                path = module.clone();
                while code[rest..].starts_with("super::") {
                    path.pop();
                    rest += "super::".len();
                }
            } else {
                continue;
            }
            let mut named = Vec::new();
            if code[rest..].starts_with('{') {
                let close = code[rest..].find('}').map_or(code.len(), |n| rest + n);
                for item in code[rest + 1..close].split(',') {
                    let item = item.trim();
                    if !item.is_empty() && item != "self" {
                        named.push(ident(rest + 1 + code[rest + 1..].find(item).unwrap()).0);
                    }
                }
            } else {
                named.push(ident(rest).0);
            }
            for name in named {
                let target = path.first().cloned().unwrap_or(name);
                if target != unit && !target.is_empty() && graph_has_unit(&root, &target) {
                    names.insert(target);
                }
            }
        }
    }
    graph
}

/// Whether `root` has a module `name` (a file or a folder).
fn graph_has_unit(root: &Path, name: &str) -> bool {
    root.join(format!("{name}.rs")).exists() || root.join(name).is_dir()
}

/// A cycle of `graph`, as the units along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at.to_owned());
            return Some(cycle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|unit| visit(graph, unit, &mut Vec::new(), &mut done))
}

/// Modules that do not import each other: the connection layer (`db`) does
/// not know the migration engine that sits on it, `error` knows neither,
/// the `db` command's modules form layers, and so do the studio's catalog,
/// statements, SQLite code and dispatch (`stmt` at the bottom, `query` on
/// top). A module's own `mod tests` may reach anywhere.
#[test]
fn modules_form_layers_not_circles() {
    for root in ["src", "cli/src", "cli/src/studio"] {
        let graph = import_graph(root);
        assert!(
            graph.len() > 5 && graph.values().any(|n| !n.is_empty()),
            "{root}: the import graph was not read: {graph:?}"
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{root}: modules import each other in a circle: {}",
                cycle.join(" -> ")
            );
        }
    }
    let src = import_graph("src");
    assert!(src["migrate"].contains("db"), "{:?}", src["migrate"]);
    assert!(!src["db"].contains("migrate"), "{:?}", src["db"]);
    let studio = import_graph("cli/src/studio");
    assert!(studio["query"].contains("sqlite"), "{:?}", studio["query"]);
    assert!(studio["stmt"].is_empty(), "{:?}", studio["stmt"]);
}

/// A source file of more than 600 lines (its `mod tests` aside) says in its
/// header why it is one file: "One file, though long: ...". Otherwise it is
/// split by concern.
#[test]
fn long_files_say_why_they_are_one_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<PathBuf> = ["src", "cli/src", "macros/src", "examples"]
        .iter()
        .flat_map(|dir| rust_files(&root.join(dir)))
        .collect();
    let mut unexplained = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Generated files are not written by hand.
        if text.starts_with("// @generated") {
            continue;
        }
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let lines = code.lines().count();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join(" ");
        if lines > 600 && !header.contains("One file, though long:") {
            unexplained.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(
        files.len() > 50,
        "the source tree was not read: {} files",
        files.len()
    );
    assert!(
        unexplained.is_empty(),
        "split these by concern, or say in the header why not: {unexplained:?}"
    );
}
