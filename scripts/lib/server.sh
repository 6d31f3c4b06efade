# Sourced by scripts/test and scripts/bench: one rule for the PostgreSQL
# server they run against, exported as TEST_DATABASE_URL (which the tests and
# the benchmark read first). The first that applies:
#   1. TEST_DATABASE_URL (or DATABASE_URL) when set;
#   2. the default URL, postgres://postgres@127.0.0.1:5432 (DB_TEST_DEFAULT_URL
#      overrides it), when a server answers there;
#   3. a throwaway cluster started with `db up --dir` in a temporary folder,
#      stopped and deleted when the calling script exits.
# It says which it used.
#   choose_server NAME [db up options]   # NAME: who speaks (scripts/test)

choose_server() {
  local who=$1
  shift
  local default_url="${DB_TEST_DEFAULT_URL:-postgres://postgres@127.0.0.1:5432}"
  if [ -n "${TEST_DATABASE_URL:-}" ]; then
    echo "$who: using TEST_DATABASE_URL" >&2
  elif [ -n "${DATABASE_URL:-}" ]; then
    export TEST_DATABASE_URL="$DATABASE_URL"
    echo "$who: using DATABASE_URL" >&2
  elif pg_isready -q -d "$default_url" 2>/dev/null; then
    export TEST_DATABASE_URL="$default_url"
    echo "$who: using the server at $default_url" >&2
  else
    server_scratch=$(mktemp -d "${TMPDIR:-/tmp}/database-test-XXXXXX")
    # The launcher gives the folder to the server's user when it runs as root.
    chmod 755 "$server_scratch"
    trap stop_scratch_server EXIT
    echo "$who: no server at $default_url: starting a throwaway cluster (building db first)" >&2
    TEST_DATABASE_URL=$(cargo run --bin db -- up --dir "$server_scratch/cluster" "$@" --print-url)
    export TEST_DATABASE_URL
    echo "$who: using a throwaway cluster at $TEST_DATABASE_URL (stopped at the end)" >&2
  fi
}

stop_scratch_server() {
  cargo run --quiet --bin db -- down --dir "$server_scratch/cluster" --destroy --yes >/dev/null || true
  rm -rf "$server_scratch"
}
