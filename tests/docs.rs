//! The documentation tells the truth: every `Error` variant is in the
//! README's error table, rustdoc speaks of this project (not of the
//! TypeScript packages it replaces), and the scripts recognise what is
//! installed. (The README's code blocks are doc-tests: `cargo test --doc`.)

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The variant names of `pub enum Error` in src/error.rs.
fn error_variants() -> Vec<String> {
    let source = read("src/error.rs");
    let body = source
        .split("pub enum Error {")
        .nth(1)
        .expect("src/error.rs has pub enum Error")
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
