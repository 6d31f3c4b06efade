//! The `db` command: see `database_cli` (cli/src/lib.rs).

fn main() -> std::process::ExitCode {
    database_cli::main()
}
