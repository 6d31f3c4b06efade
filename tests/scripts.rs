//! The README's set-up scripts, run for real without compiling anything:
//! `cargo` is a stand-in that records how it was called, on a PATH that
//! mirrors this one with one prerequisite taken away. `scripts/setup` and
//! `scripts/test` must say what is missing (and how to install it) before
//! anything compiles; `scripts/test` and `scripts/bench` pick their server
//! by one rule and say what they do.

use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A PATH with a stand-in `cargo` first, then links to every program of
/// this process's PATH except the real `cargo` and the `hidden` ones; a
/// fresh HOME (the scripts put `~/.cargo/bin` first).
struct Sandbox {
    tmp: tempfile::TempDir,
    path: String,
}

impl Sandbox {
    fn hiding(hidden: &[&str]) -> Sandbox {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let tmp = tempfile::tempdir().unwrap();
        let (stub, mirror) = (tmp.path().join("stub"), tmp.path().join("path"));
        for dir in [&stub, &mirror, &tmp.path().join("home")] {
            std::fs::create_dir(dir).unwrap();
        }
        let cargo = stub.join("cargo");
        std::fs::write(
            &cargo,
            format!(
                "#!/bin/sh\necho \"cargo $* TEST_DATABASE_URL=${{TEST_DATABASE_URL:-}}\" >> '{}'\n",
                tmp.path().join("cargo-calls").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var_os("PATH").unwrap();
        for dir in std::env::split_paths(&path) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name_str = name.to_string_lossy();
                let link = mirror.join(&name);
                if name_str == "cargo" || hidden.contains(&&*name_str) || link.exists() {
                    continue;
                }
                let _ = symlink(entry.path(), link);
            }
        }
        Sandbox {
            path: format!("{}:{}", stub.display(), mirror.display()),
            tmp,
        }
    }

    /// Runs `script` from the repository with `env` added, never installing.
    fn run(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(Path::new(ROOT).join(script));
        cmd.args(args)
            .current_dir(ROOT)
            .env("PATH", &self.path)
            .env("HOME", self.tmp.path().join("home"))
            .env("DB_PREREQS_INSTALL", "0");
        for var in [
            "DATABASE_URL",
            "TEST_DATABASE_URL",
            "DB_TEST_DEFAULT_URL",
            "DB_TEST_REQUIRE_ALL",
            "LIBCLANG_PATH",
            "PG_BIN",
            "CARGO_TARGET_DIR",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Every call of the stand-in `cargo`, one a line.
    fn cargo_calls(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("cargo-calls")).unwrap_or_default()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether this machine has `program` on PATH (the tests hide it).
fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).exists())
}

/// Runs `script` with `hidden` off the PATH: it fails naming it (`why`)
/// and the package that installs it, and cargo never runs.
fn refused_before_cargo(script: &str, hidden: &str, why: &str, apt_package: &str) {
    assert!(on_path(hidden), "this machine has {hidden} to hide");
    let sandbox = Sandbox::hiding(&[hidden]);
    let out = sandbox.run(script, &[], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("missing, so nothing was compiled") && err.contains(why),
        "{err}"
    );
    assert!(err.contains("install them with: "), "{err}");
    if on_path("apt-get") {
        assert!(
            err.contains(&format!("apt-get install -y {apt_package}")),
            "{err}"
        );
    }
    assert_eq!(sandbox.cargo_calls(), "", "cargo ran: {err}");
}

#[test]
fn setup_names_a_missing_prerequisite_and_its_install_command_before_compiling() {
    refused_before_cargo("scripts/setup", "pkg-config", "pkg-config:", "pkg-config");
}

#[test]
fn test_checks_the_build_prerequisites_before_the_diesel_cli_and_the_build() {
    refused_before_cargo("scripts/test", "cc", "cc: a C compiler", "build-essential");
}

#[test]
fn a_libclang_path_that_holds_no_libclang_is_named() {
    let sandbox = Sandbox::hiding(&[]);
    let out = sandbox.run(
        "scripts/prereqs",
        &["setup"],
        &[("LIBCLANG_PATH", "/nonexistent/llvm/lib")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("libclang: pg_query"), "{err}");
    assert!(
        err.contains("LIBCLANG_PATH=/nonexistent/llvm/lib holds no libclang"),
        "{err}"
    );
}

/// The server the tests run against, as scripts/test chose it.
fn test_server() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

#[test]
fn test_and_bench_find_the_server_by_one_rule_and_say_what_they_do() {
    let server = test_server();
    let sandbox = Sandbox::hiding(&[]);
    // No URL configured, a server answering at the default URL.
    let default = [("DB_TEST_DEFAULT_URL", server.as_str())];
    let bench = sandbox.run("scripts/bench", &["--quick"], &default);
    let err = stderr(&bench);
    assert!(bench.status.success(), "{err}");
    assert!(
        err.contains(&format!("scripts/bench: using the server at {server}")),
        "{err}"
    );
    let test = sandbox.run("scripts/test", &["--test", "auth"], &default);
    let err = stderr(&test);
    assert!(test.status.success(), "{err}");
    assert!(
        err.contains(&format!("scripts/test: using the server at {server}")),
        "{err}"
    );
    assert!(
        err.contains("the first build of the crate and its tests takes several minutes"),
        "{err}"
    );
    let calls = sandbox.cargo_calls();
    for call in [
        format!("cargo bench --bench compare -- --quick TEST_DATABASE_URL={server}"),
        format!("cargo test --test auth TEST_DATABASE_URL={server}"),
    ] {
        assert!(calls.lines().any(|l| l == call), "{call} not in:\n{calls}");
    }
}
