# shellcheck shell=bash
# Helpers shared by scripts/run.sh and scripts/test.sh. Source it; do not run it.
#
# The callers set `set -euo pipefail`. Everything here must work on a fresh
# machine with nothing installed by hand (CI), and must be fast when the tools
# are already there (repeat runs): every ensure_* checks first and installs
# only what is missing.

if [[ -n "${_CHECKOUT_LIB_SOURCED:-}" ]]; then
  return 0
fi
_CHECKOUT_LIB_SOURCED=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$REPO_ROOT/.local"
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
# `cargo install` puts binaries here; a fresh login shell may not have it on PATH.
case ":$PATH:" in
  *":$CARGO_HOME/bin:"*) ;;
  *) PATH="$CARGO_HOME/bin:$PATH" ;;
esac
export PATH

# The Apache Kafka version is pinned in scripts/broker/pom.xml (one place).
KAFKA_POM="$REPO_ROOT/scripts/broker/pom.xml"
KAFKA_VERSION="$(sed -nE 's:.*<kafka.version>([^<]+)</kafka.version>.*:\1:p' "$KAFKA_POM")"
KAFKA_HOME="$LOCAL_DIR/kafka/$KAFKA_VERSION"
# Pinned so a new release can never change what CI runs.
NEXTEST_VERSION="0.9.151"

# ---------------------------------------------------------------------------
# Progress printing
# ---------------------------------------------------------------------------

_LIB_T0=$SECONDS
_STEP_NAME=""
_STEP_T0=$SECONDS
_STEP_SUMMARY=()

# Why: every line carries the time since the script started, so a slow CI log
# shows at a glance where the minutes went.
log() {
  printf '[%5ss] %s\n' "$((SECONDS - _LIB_T0))" "$*" >&2
}

# Why: warnings must stand out in a long CI log.
warn() {
  log "WARNING: $*"
}

# Why: a failed helper explains itself before the script stops.
die() {
  log "ERROR: $*"
  exit 1
}

# Why: one line per phase, with how long the previous phase took, so CI logs
# (CI=true) give a per-phase timing without extra tooling.
step() {
  _step_close
  _STEP_NAME="$*"
  _STEP_T0=$SECONDS
  log "==> $*"
}

# Why: closes the current phase (called by step and at the end of a script).
_step_close() {
  if [[ -n "$_STEP_NAME" ]]; then
    local took=$((SECONDS - _STEP_T0))
    _STEP_SUMMARY+=(" $_STEP_NAME ${took}s")
    if [[ "${CI:-}" == "true" ]]; then
      log "    phase '$_STEP_NAME' took ${took}s"
    fi
    _STEP_NAME=""
  fi
}

# Why: under CI=true the end of the log shows every phase's duration, on one
# line, so the test runner's own summary stays among the last lines of output.
print_step_summary() {
  _step_close
  if [[ "${CI:-}" == "true" && ${#_STEP_SUMMARY[@]} -gt 0 ]]; then
    local IFS=';'
    log "phase durations:${_STEP_SUMMARY[*]}; total ${SECONDS}s"
  fi
}

# Why: long installs (a cold cargo install takes minutes on 2 cores) must show life in CI
# logs, or they look hung. Runs "$@" with output to LOGFILE, prints a heartbeat
# with the last line of the log every HEARTBEAT_SECS (30), and returns the
# command's status; on failure prints the log's tail.
run_with_heartbeat() {
  local label="$1" logfile="$2"
  shift 2
  local every="${HEARTBEAT_SECS:-30}"
  mkdir -p "$(dirname "$logfile")"
  log "$label: started (log: $logfile)"
  "$@" </dev/null >"$logfile" 2>&1 &
  local pid=$! t0=$SECONDS next=$((SECONDS + every))
  _bg_track "$pid" "$label"  # so Ctrl-C/SIGTERM stops it too
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      local last
      last="$(tail -n 1 "$logfile" 2>/dev/null | tr -d '\r' | cut -c1-120)"
      log "$label: still running after $((SECONDS - t0))s ... ${last}"
      next=$((SECONDS + every))
    fi
    sleep 1
  done
  local status=0
  wait "$pid" || status=$?
  _bg_untrack "$pid"
  if ((status != 0)); then
    log "$label: FAILED with status $status after $((SECONDS - t0))s; last lines of $logfile:"
    tail -n 40 "$logfile" >&2 || true
  else
    log "$label: done in $((SECONDS - t0))s"
  fi
  return "$status"
}

# Why: installing Debian packages must work as root (CI, sessions) and via sudo
# on a developer's own machine, without prompting (CI has no stdin).
apt_install() {
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root or sudo to apt-get install $*"
    sudo=(sudo -n)
  fi
  run_with_heartbeat "apt-get update" "$LOCAL_DIR/logs/apt-update.log" \
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  run_with_heartbeat "apt-get install $*" "$LOCAL_DIR/logs/apt-install.log" \
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------------------
# Background processes and cleanup
# ---------------------------------------------------------------------------

_BG_PIDS=()
_BG_NAMES=()
_CLEANUP_FUNCS=()
# Set BG_KEEP=1 (run.sh --detach) to leave background processes running at exit.
BG_KEEP="${BG_KEEP:-0}"
# When set, bg_start writes <dir>/<name>.pid and appends the name to <dir>/order.
BG_PIDFILE_DIR="${BG_PIDFILE_DIR:-}"
# When 1, children start in their own session (setsid), so a terminal's Ctrl-C
# or hang-up does not reach a detached stack.
BG_SETSID="${BG_SETSID:-0}"

# Why: one place that starts a long-running process in the background, with
# its output in a log file, and remembers it so the exit trap can stop it.
# Usage: bg_start NAME LOGFILE CMD [ARGS...]   (prefix CMD with `env K=V` for
# per-process environment). Sets BG_LAST_PID.
bg_start() {
  local name="$1" logfile="$2"
  shift 2
  mkdir -p "$(dirname "$logfile")"
  if [[ -f "$logfile" ]]; then
    mv -f "$logfile" "$logfile.1"  # keep the previous run's log for comparison
  fi
  local launcher=()
  if [[ "$BG_SETSID" == "1" ]] && command -v setsid >/dev/null; then
    launcher=(setsid)
  fi
  printf '=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >"$logfile"
  "${launcher[@]}" "$@" </dev/null >>"$logfile" 2>&1 &
  BG_LAST_PID=$!
  _BG_PIDS+=("$BG_LAST_PID")
  _BG_NAMES+=("$name")
  if [[ -n "$BG_PIDFILE_DIR" ]]; then
    mkdir -p "$BG_PIDFILE_DIR"
    printf '%s\n%s\n%s\n' "$BG_LAST_PID" "$(proc_starttime "$BG_LAST_PID")" "$logfile" \
      >"$BG_PIDFILE_DIR/$name.pid"
    printf '%s\n' "$name" >>"$BG_PIDFILE_DIR/order"
  fi
  log "started $name (pid $BG_LAST_PID, log $logfile)"
}

# Why: a pid file outlives its process and pids get reused; the start time
# (field 22 of /proc/PID/stat) tells whether a pid is still the same process.
proc_starttime() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  read -ra fields <<<"${stat##*) }"
  printf '%s' "${fields[19]:-}"
}

# Why: `run.sh stop` and the already-running check must act only on processes
# that a pid file really describes. Prints the pid when FILE's process lives.
pidfile_alive() {
  local file="$1" pid start
  [[ -f "$file" ]] || return 1
  { read -r pid && read -r start; } <"$file" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(proc_starttime "$pid")" == "$start" ]] || return 1
  printf '%s\n' "$pid"
}

# Why: processes not started by bg_start (installs, test runners) must also be
# stopped by the exit trap while they run.
_bg_track() {
  _BG_PIDS+=("$1")
  _BG_NAMES+=("$2")
}

# Why: a finished process must not be signalled later (its pid may be reused).
_bg_untrack() {
  local i
  for i in "${!_BG_PIDS[@]}"; do
    if [[ "${_BG_PIDS[$i]}" == "$1" ]]; then
      unset '_BG_PIDS[i]' '_BG_NAMES[i]'
    fi
  done
  _BG_PIDS=("${_BG_PIDS[@]}")
  _BG_NAMES=("${_BG_NAMES[@]}")
}

# Why: bash runs a signal trap only after the current foreground command ends,
# so a SIGTERM during a 20-minute test run would wait for it. Running the
# command in the background and `wait`ing on it lets the trap act at once (and
# stop the command with everything else). Output still goes to the terminal.
# Usage: run_interruptible NAME CMD [ARGS...]; returns the command's status.
run_interruptible() {
  local name="$1"
  shift
  "$@" &
  local pid=$!
  _bg_track "$pid" "$name"
  local status=0
  wait "$pid" || status=$?
  _bg_untrack "$pid"
  return "$status"
}

# Why: graceful stop first (services flush, commit offsets, leave the group),
# a hard kill only when a process ignores SIGTERM for STOP_TIMEOUT seconds.
stop_pid() {
  local pid="$1" name="${2:-pid $1}" timeout="${STOP_TIMEOUT:-15}"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie child of ours counts as stopped once reaped below.
    if [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]]; then
      break
    fi
    if ((SECONDS >= deadline)); then
      warn "$name did not stop within ${timeout}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
  # Quiet in CI: the test runner's summary should stay near the end of the log.
  if [[ "${CI:-}" != "true" ]]; then
    log "stopped $name"
  fi
}

# Why: stop in reverse start order (ingress before processors before broker),
# so nothing loses the service it depends on while still draining.
# The nodes of a cluster (kafka-1, kafka-2, ...) are told to stop together:
# the last one stopped alone would have no controller quorum to shut down
# against, and would wait for STOP_TIMEOUT and a SIGKILL.
stop_all_bg() {
  local i cluster_told=0
  for ((i = ${#_BG_PIDS[@]} - 1; i >= 0; i--)); do
    if [[ "${_BG_NAMES[$i]}" == kafka-[0-9]* && "$cluster_told" == 0 ]]; then
      cluster_told=1
      term_kafka_nodes "${_BG_NAMES[@]}" -- "${_BG_PIDS[@]}"
    fi
    stop_pid "${_BG_PIDS[$i]}" "${_BG_NAMES[$i]}"
    if [[ -n "$BG_PIDFILE_DIR" ]]; then
      rm -f "$BG_PIDFILE_DIR/${_BG_NAMES[$i]}.pid"
    fi
  done
  _BG_PIDS=()
  _BG_NAMES=()
  if [[ -n "$BG_PIDFILE_DIR" ]]; then
    rm -f "$BG_PIDFILE_DIR/order"
  fi
}

# Why: see stop_all_bg. SIGTERM to every pid whose name is kafka-<n>, and
# to the node running on each directory of KAFKA_NODE_DIRS (one a test
# restarted is not ours). Usage: term_kafka_nodes NAME... -- PID... (two
# lists of the same length)
term_kafka_nodes() {
  local names=() pids=() i dir pid
  while [[ $# -gt 0 && "$1" != -- ]]; do names+=("$1"); shift; done
  shift
  pids=("$@")
  for i in "${!names[@]}"; do
    if [[ "${names[$i]}" == kafka-[0-9]* ]]; then
      kill -TERM "${pids[$i]}" 2>/dev/null || true
    fi
  done
  local IFS=,
  for dir in ${KAFKA_NODE_DIRS:-}; do
    if pid="$(kafka_node_pid "$dir")"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
}

# Why: lets a helper (ensure_postgres) register its own undo step for exit.
on_exit() {
  _CLEANUP_FUNCS+=("$1")
}

# Why: the EXIT trap runs on every way out (success, failure, Ctrl-C, SIGTERM)
# and keeps the script's exit status.
_lib_on_exit() {
  local status=$?
  trap - EXIT INT TERM
  if [[ "$BG_KEEP" != "1" ]]; then
    if ((${#_BG_PIDS[@]} > 0)); then
      log "stopping background processes ..."
    fi
    stop_all_bg
    local i
    for ((i = ${#_CLEANUP_FUNCS[@]} - 1; i >= 0; i--)); do
      "${_CLEANUP_FUNCS[$i]}" || true
    done
  fi
  exit "$status"
}

# Why: turn INT/TERM into a normal exit so the EXIT trap does the cleanup once.
install_traps() {
  trap _lib_on_exit EXIT
  trap 'log "interrupted (SIGINT)"; exit 130' INT
  trap 'log "terminated (SIGTERM)"; exit 143' TERM
}

# Why: names the log to read when a process we started dies early.
_bg_name_of() {
  local pid="$1" i
  for i in "${!_BG_PIDS[@]}"; do
    if [[ "${_BG_PIDS[$i]}" == "$pid" ]]; then
      printf '%s' "${_BG_NAMES[$i]}"
      return 0
    fi
  done
  printf 'pid %s' "$pid"
}

# Why: when a service dies during start-up, its log says why; print the end of it.
show_log_tail() {
  local logfile="$1" lines="${2:-30}"
  if [[ -f "$logfile" ]]; then
    log "last $lines lines of $logfile:"
    tail -n "$lines" "$logfile" >&2 || true
  fi
}

# ---------------------------------------------------------------------------
# Ports and waiting
# ---------------------------------------------------------------------------

# Why: tests run their own broker and registry on ports nobody else uses, so
# they never collide with a `run.sh` stack or a second test run. With N,
# prints N distinct ports (all bound at once while chosen).
free_port() {
  python3 - "${1:-1}" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# Why: a TCP connect is the cheapest "is something listening" check and needs
# no client tools (bash's /dev/tcp).
tcp_open() {
  local host="$1" port="$2"
  # shellcheck disable=SC2016  # $0/$1 are expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# Why: services take a moment to bind; wait for the port instead of sleeping a
# fixed time. Optional 4th arg: a pid that must stay alive meanwhile (fail fast).
wait_tcp() {
  local host="$1" port="$2" timeout="$3" pid="${4:-}"
  local deadline=$((SECONDS + timeout))
  until tcp_open "$host" "$port"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "$(_bg_name_of "$pid") exited before $host:$port answered"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $host:$port"
      return 1
    fi
    sleep 0.3
  done
}

# Why: /readyz answers 200 only when a service has its dependencies (broker,
# registry, database) and is safe to receive traffic; wait for that.
# Optional 3rd arg: a pid that must stay alive meanwhile (fail fast).
wait_http() {
  local url="$1" timeout="$2" pid="${3:-}"
  local deadline=$((SECONDS + timeout))
  until http_ok "$url"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log "$(_bg_name_of "$pid") exited before $url answered"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $url"
      return 1
    fi
    sleep 0.5
  done
}

# Why: a bench or fault run that started its own stack ran on topics and a
# Postgres schema of its own; once it passed they go, so runs do not pile up
# on the broker's disk and in Postgres (KEEP_STATE=1 keeps them).
# Usage: drop_run_state TOPIC_PREFIX SCHEMA
drop_run_state() {
  local prefix="$1" schema="$2"
  [[ -n "$prefix" && -n "$schema" ]] || return 0
  if [[ "${KEEP_STATE:-0}" == 1 ]]; then
    log "kept topics $prefix* and schema $schema (KEEP_STATE=1)"
    return 0
  fi
  bash "$REPO_ROOT/scripts/kafka" topics --delete --if-exists --topic "${prefix//./\\.}.*" >/dev/null 2>&1 ||
    warn "topics $prefix* were not deleted"
  psql "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}" -qc "DROP SCHEMA IF EXISTS \"$schema\" CASCADE" >/dev/null 2>&1 ||
    warn "schema $schema was not dropped"
  log "dropped topics $prefix* and schema $schema"
}

# Why: one HTTP probe with curl where present, else Python (always present).
http_ok() {
  local url="$1"
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null
  else
    python3 - "$url" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)
EOF
  fi
}

# Why: a readiness check on what an endpoint says, not only that it
# answers (the seeded catalog is listed); curl where present, else Python.
# Usage: http_body_contains URL TEXT
http_body_contains() {
  local url="$1" text="$2"
  if command -v curl >/dev/null; then
    curl -fsS --max-time 2 "$url" 2>/dev/null | grep -qF -- "$text"
  else
    python3 - "$url" "$text" <<'EOF' 2>/dev/null
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
sys.exit(0 if sys.argv[2] in body else 1)
EOF
  fi
}

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# Why: Apache Kafka's broker and tools come from Maven Central as jars (no
# Docker engine, no Kafka download site here). Resolve them once into
# .local/kafka/<version>/lib; a stamp with the pom's sha256 says the copy is
# whole and current, so repeat runs skip Maven entirely. Installs a JRE and
# Maven from Debian's packages when missing.
ensure_kafka() {
  local stamp="$KAFKA_HOME/.pom.sha256" want
  want="$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)"
  if ! command -v java >/dev/null || ! java -version >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless
  fi
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "kafka: $KAFKA_VERSION in $KAFKA_HOME (already resolved)"
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  log "kafka: resolving Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central"
  rm -rf "$KAFKA_HOME/lib.partial"
  mkdir -p "$KAFKA_HOME"
  run_with_heartbeat "mvn dependency:copy-dependencies (kafka $KAFKA_VERSION)" "$LOCAL_DIR/logs/kafka-resolve.log" \
    mvn -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_HOME/lib.partial" -DincludeScope=runtime \
    || die "resolving Kafka from Maven Central failed (see $LOCAL_DIR/logs/kafka-resolve.log)"
  [[ -f "$KAFKA_HOME/lib.partial/kafka_2.13-$KAFKA_VERSION.jar" ]] \
    || die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is not in $KAFKA_HOME/lib.partial"
  rm -rf "$KAFKA_HOME/lib"
  mv "$KAFKA_HOME/lib.partial" "$KAFKA_HOME/lib"
  printf '%s\n' "$want" >"$stamp"
  log "kafka: $KAFKA_VERSION ready ($(find "$KAFKA_HOME/lib" -name '*.jar' | wc -l) jars)"
}

# Why: one way to run a Kafka main class (broker, storage tool, CLI tools),
# with our Log4j 2 configuration. KAFKA_HEAP overrides the heap options.
# Usage: kafka_java MAIN_CLASS [ARGS...]
kafka_java() {
  local main="$1"
  shift
  # shellcheck disable=SC2086  # KAFKA_HEAP holds several options
  java ${KAFKA_HEAP:--Xms64m -Xmx256m} -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$REPO_ROOT/scripts/broker/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" "$main" "$@"
}

# Why: nextest runs each test in its own process (crash/restart tests stay
# isolated) and in parallel, and with --no-tests=fail a filter that matches
# nothing fails instead of passing. It is required: no fallback to cargo test.
ensure_nextest() {
  local have
  have="$(cargo nextest --version 2>/dev/null | head -n 1 || true)"
  if [[ "$have" == *"$NEXTEST_VERSION"* ]]; then
    log "cargo-nextest: $have"
    return 0
  fi
  log "cargo-nextest: found '${have:-nothing}', installing $NEXTEST_VERSION (a few minutes)"
  run_with_heartbeat "cargo install cargo-nextest@$NEXTEST_VERSION" "$LOCAL_DIR/logs/nextest-install.log" \
    cargo install "cargo-nextest@$NEXTEST_VERSION" --locked \
    || die "installing cargo-nextest $NEXTEST_VERSION failed"
}

# ---------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------

# Why: everything derives host, port, user and database from DATABASE_URL, so
# one variable points every tool at the same server. Prints
# "host port user dbname" (defaults 127.0.0.1 5432 postgres checkout).
pg_url_parts() {
  python3 - "$1" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
host = u.hostname or "127.0.0.1"
port = u.port or 5432
user = urllib.parse.unquote(u.username or "postgres")
db = urllib.parse.unquote(u.path.lstrip("/")) or "checkout"
print(host, port, user, db, sep="\t")
EOF
}

# Why: test.sh needs the same server with another database name.
# Usage: pg_url_with_db URL DBNAME
pg_url_with_db() {
  python3 - "$1" "$2" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + urllib.parse.quote(sys.argv[2]), u.query, u.fragment)))
EOF
}

# Why: the newest installed server binaries (Debian keeps them off PATH).
_pg_bindir() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  local d
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" && -x "$d/initdb" ]] || return 1
  printf '%s\n' "$d"
}

_pg_ready() {
  local host="$1" port="$2"
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$host" -p "$port" -t 3
  else
    tcp_open "$host" "$port"
  fi
}

_PG_STARTED=""  # "cluster:<version>" or "local:<datadir>:<user>" when we started it

# Why: the services and tests need a Postgres answering at DATABASE_URL. Use
# the one running; else start Debian's cluster; else install Postgres; else, as
# a last resort, run a private server in .local/pg (trust auth, URL's port).
# A server this function started is stopped at exit (KEEP_POSTGRES=1 keeps it).
# pg_stat_statements loaded in a server these scripts start: the journey
# bench counts the SQL statements of a purchase with it.
PG_SERVER_OPTIONS="-c shared_preload_libraries=pg_stat_statements"
ensure_postgres() {
  local url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}"
  local host port user db
  IFS=$'\t' read -r host port user db < <(pg_url_parts "$url")
  _pg_take_lease "$port"
  if _pg_ready "$host" "$port"; then
    log "postgres: answering at $host:$port"
    return 0
  fi
  case "$host" in
    127.0.0.1 | localhost | ::1) ;;
    *) die "postgres at $host:$port does not answer, and it is not local: start it yourself" ;;
  esac

  if [[ ! -d /etc/postgresql ]] && ! _pg_bindir >/dev/null; then
    log "postgres: no server binaries; installing Debian's postgresql"
    apt_install postgresql postgresql-client
  fi

  # Debian's cluster, if its port is the URL's port.
  local version=""
  if [[ -d /etc/postgresql ]]; then
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)"
  fi
  if [[ -n "$version" && -f "/etc/postgresql/$version/main/postgresql.conf" ]]; then
    local cport
    cport="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' \
      "/etc/postgresql/$version/main/postgresql.conf" | tail -n 1)"
    if [[ "${cport:-5432}" == "$port" ]]; then
      # Our dev/test URLs carry no password, and a stock Debian cluster asks
      # for one over TCP (installed by us now or shipped with the image):
      # a cluster this script starts gets trust for local connections.
      _pg_trust_local "/etc/postgresql/$version/main/pg_hba.conf"
      log "postgres: starting Debian cluster $version/main"
      if pg_ctlcluster --skip-systemctl-redirect "$version" main start -o "$PG_SERVER_OPTIONS"; then
        _PG_STARTED="cluster:$version"
        on_exit stop_started_postgres
      else
        # "already running" also fails here; readiness below decides.
        warn "pg_ctlcluster start returned non-zero"
      fi
      local deadline=$((SECONDS + 30))
      until _pg_ready "$host" "$port" || ((SECONDS >= deadline)); do sleep 0.5; done
      if _pg_ready "$host" "$port"; then
        log "postgres: answering at $host:$port"
        return 0
      fi
      warn "Debian cluster did not answer at $host:$port; falling back to a private server"
    else
      log "postgres: Debian cluster listens on ${cport:-5432}, URL wants $port; using a private server"
    fi
  fi
  _start_private_postgres "$host" "$port" "$user"
}

# Why: a stock Debian cluster asks for passwords over TCP, but our dev/test
# URLs carry none. Only applied to a cluster this script starts itself.
_pg_trust_local() {
  local hba="$1"
  grep -q '# checkout: trust local' "$hba" 2>/dev/null && return 0
  log "postgres: allowing trust auth for local connections in $hba"
  local tmp
  tmp="$(mktemp)"
  {
    echo '# checkout: trust local (dev/test machine, added by scripts/lib.sh)'
    echo 'local all all trust'
    echo 'host all all 127.0.0.1/32 trust'
    echo 'host all all ::1/128 trust'
    cat "$hba"
  } >"$tmp"
  cat "$tmp" >"$hba"
  rm -f "$tmp"
}

# Why: initdb and pg_ctl refuse to run as root; run a shell command as the
# server's owner (su from root, directly otherwise). Usage: _as_user USER CMD
_as_user() {
  if [[ $(id -u) -eq 0 && "$1" != root ]]; then
    su "$1" -s /bin/bash -c "$2"
  else
    bash -c "$2"
  fi
}

# Why: last resort when no usable system cluster exists: initdb + pg_ctl into
# .local/pg (PGDATA_DIR overrides). initdb refuses to run as root, so as root
# the server runs as the `postgres` user (created if missing).
_start_private_postgres() {
  local host="$1" port="$2" user="$3"
  local bindir datadir="${PGDATA_DIR:-$LOCAL_DIR/pg}"
  bindir="$(_pg_bindir)" || die "postgres server binaries not found"
  local owner
  owner="$(id -un)"
  if [[ $(id -u) -eq 0 ]]; then
    owner=postgres
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /nonexistent --shell /bin/bash postgres
    fi
  fi
  mkdir -p "$datadir"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$owner" "$datadir"
    chmod 700 "$datadir"
    # The server user must be able to reach the directory through its parents.
    if ! _as_user "$owner" "test -w '$datadir'"; then
      die "user $owner cannot write $datadir (a parent directory is private); set PGDATA_DIR to a reachable path"
    fi
  fi
  if [[ ! -f "$datadir/PG_VERSION" ]]; then
    log "postgres: initdb into $datadir (superuser $user, trust auth)"
    mkdir -p "$LOCAL_DIR/logs"
    _as_user "$owner" "'$bindir/initdb' -D '$datadir' -U '$user' --auth=trust -E UTF8 --locale=C.UTF-8" \
      >"$LOCAL_DIR/logs/initdb.log" 2>&1 \
      || { show_log_tail "$LOCAL_DIR/logs/initdb.log"; die "initdb failed"; }
  fi
  local listen="$host"
  [[ "$host" == localhost ]] && listen=127.0.0.1
  log "postgres: starting private server on $listen:$port ($datadir)"
  _as_user "$owner" "'$bindir/pg_ctl' -D '$datadir' -l '$datadir/server.log' -w -t 60 -o \"-p $port -k '$datadir' -c listen_addresses=$listen $PG_SERVER_OPTIONS\" start >/dev/null" \
    || { show_log_tail "$datadir/server.log"; die "pg_ctl start failed"; }
  _PG_STARTED="local:$datadir:$owner:$bindir"
  on_exit stop_started_postgres
  _pg_ready "$host" "$port" || die "private postgres does not answer at $host:$port"
  log "postgres: answering at $host:$port"
}

# Why: two runs (two checkouts, a test run beside the run stack) share one
# server: each holds a lease (a file named by its pid) while it runs, and the
# run that started the server stops it only when no other live run holds one.
_PG_LEASE=""
_pg_take_lease() {
  local dir="${TMPDIR:-/tmp}/checkout-postgres-$1.leases"
  mkdir -p "$dir" 2>/dev/null || return 0
  _PG_LEASE="$dir/$$"
  : >"$_PG_LEASE"
  on_exit _pg_drop_lease
}
_pg_drop_lease() { [[ -z "$_PG_LEASE" ]] || rm -f "$_PG_LEASE"; }
_pg_others_running() {
  [[ -n "$_PG_LEASE" ]] || return 1
  local lease pid
  for lease in "$(dirname "$_PG_LEASE")"/*; do
    [[ -e "$lease" && "$lease" != "$_PG_LEASE" ]] || continue
    pid="$(basename "$lease")"
    if kill -0 "$pid" 2>/dev/null; then return 0; fi
    rm -f "$lease" # its run died without cleaning up
  done
  return 1
}

# Why: leave the machine as we found it: stop a server only if we started it.
stop_started_postgres() {
  [[ -n "$_PG_STARTED" ]] || return 0
  if [[ "${KEEP_POSTGRES:-0}" == "1" ]]; then
    log "postgres: left running (KEEP_POSTGRES=1)"
    return 0
  fi
  if _pg_others_running; then
    log "postgres: left running (another run is using it)"
    return 0
  fi
  case "$_PG_STARTED" in
    cluster:*)
      log "postgres: stopping Debian cluster ${_PG_STARTED#cluster:}/main (we started it)"
      pg_ctlcluster --skip-systemctl-redirect "${_PG_STARTED#cluster:}" main stop || true
      ;;
    local:*)
      local rest="${_PG_STARTED#local:}" datadir owner bindir
      IFS=: read -r datadir owner bindir <<<"$rest"
      log "postgres: stopping private server in $datadir"
      _as_user "$owner" "'$bindir/pg_ctl' -D '$datadir' -m fast -w stop >/dev/null" || true
      ;;
  esac
  _PG_STARTED=""
}

# Why: tests get their own database on the same server (created if missing),
# so they never touch the run stack's data. Usage: ensure_database URL
ensure_database() {
  local url="$1" host port user db
  IFS=$'\t' read -r host port user db < <(pg_url_parts "$url")
  command -v psql >/dev/null || apt_install postgresql-client
  local admin_url
  admin_url="$(pg_url_with_db "$url" postgres)"
  local exists
  exists="$(psql "$admin_url" -XAtq -v ON_ERROR_STOP=1 \
    -c "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")" \
    || die "cannot connect to $admin_url"
  if [[ "$exists" == "1" ]]; then
    log "postgres: database $db exists"
  else
    log "postgres: creating database $db"
    psql "$admin_url" -XAtq -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"${db//\"/\"\"}\"" >/dev/null
  fi
}

# ---------------------------------------------------------------------------
# Python venv for the integration tests
# ---------------------------------------------------------------------------

# Why: integration tests drive Python clients (CHECKOUT_PYTHON). The venv lives
# in .local/venv and is rebuilt only when scripts/python/requirements.txt
# changes (its sha256 is kept inside the venv) or the venv is broken.
# The development secrets: generated once into FILE (mode 0600) and kept,
# so tokens minted with `checkoutctl token` and the simulator's keys stay
# valid across runs. A variable already set in the environment wins (real
# test-mode keys, say). The services have no defaults for any of these:
# this file is what makes development explicit.
# Usage: ensure_dev_secrets FILE   (then exports every variable in it)
DEV_SECRET_NAMES=(AUTH_JWT_HS256_SECRET RAZORPAY_KEY_ID RAZORPAY_KEY_SECRET
  RAZORPAY_WEBHOOK_SECRET STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET PII_MASTER_KEYS)
ensure_dev_secrets() {
  local file="$1" name value
  mkdir -p "$(dirname "$file")"
  if [[ ! -s "$file" ]]; then
    (
      umask 077
      python3 - "$(dirname "$file")/jwt-secret" >"$file" <<'EOF'
import os, secrets, sys
# An older run kept only the JWT secret: keep it, so its tokens stay valid.
old = sys.argv[1]
jwt = open(old).read().strip() if os.path.exists(old) else secrets.token_hex(32)
print("# Development secrets, generated by scripts/run.sh; never used in production.")
print(f"AUTH_JWT_HS256_SECRET={jwt}")
print(f"RAZORPAY_KEY_ID=rzp_test_{secrets.token_hex(8)}")
print(f"RAZORPAY_KEY_SECRET={secrets.token_hex(24)}")
print(f"RAZORPAY_WEBHOOK_SECRET={secrets.token_hex(24)}")
print(f"STRIPE_SECRET_KEY=sk_test_{secrets.token_hex(24)}")
print(f"STRIPE_WEBHOOK_SECRET=whsec_{secrets.token_hex(24)}")
EOF
    )
    log "secrets: generated $file (mode 0600)"
  fi
  chmod 600 "$file"
  # The master key of personal data (platform::pii), appended to a file
  # written before it existed; kept, since data sealed under it must open
  # after a restart.
  grep -q '^PII_MASTER_KEYS=' "$file" ||
    python3 -c 'import base64, secrets; print("PII_MASTER_KEYS=dev1:" + base64.b64encode(secrets.token_bytes(32)).decode())' >>"$file"
  for name in "${DEV_SECRET_NAMES[@]}"; do
    if [[ -z "${!name:-}" ]]; then
      value="$(sed -n "s/^$name=//p" "$file" | tail -n 1)"
      [[ -n "$value" ]] || die "$file has no $name; delete the file to generate a new one"
      printf -v "$name" '%s' "$value"
    fi
    export "${name?}"
  done
  # Not secrets, but required by the ingress with no default: the tokens
  # it takes must name this issuer and audience (checkoutctl token puts
  # them in). Kept in the same file, so sourcing it is enough to mint one;
  # a file written before they were required gets them appended.
  local setting
  for setting in AUTH_JWT_ISSUER=internhub-dev AUTH_JWT_AUDIENCE=internhub-checkout; do
    name="${setting%%=*}"
    grep -q "^$name=" "$file" || printf '%s\n' "$setting" >>"$file"
    if [[ -z "${!name:-}" ]]; then
      printf -v "$name" '%s' "$(sed -n "s/^$name=//p" "$file" | tail -n 1)"
    fi
    export "${name?}"
  done
}

# The demo exchange rates (INR → currency), published through the admin
# API as an operator would, with a development admin token: the rates pass
# the same checks and leave the same audit line as any other.
# Usage: seed_fx_rates API_URL FILE   (FILE: {"USD": "0.012", …})
seed_fx_rates() {
  local api="$1" file="$2" admin currency rate published=()
  if [[ ! -f "$file" ]]; then
    warn "$file not found: no exchange rates published"
    return 0
  fi
  command -v curl >/dev/null || apt_install curl
  admin="$("$BIN_DIR/checkoutctl" token --sub demo-seed --role admin)" || die "checkoutctl token failed"
  while IFS=$'\t' read -r currency rate; do
    curl -fsS -o /dev/null -X PUT "$api/api/v1/admin/fx-rates/$currency" \
      -H "authorization: Bearer $admin" -H 'content-type: application/json' \
      -d "{\"rate\":\"$rate\"}" || die "publishing the $currency rate failed"
    published+=("$currency=$rate")
  done < <(python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])).items(): print(k, v, sep="\t")' "$file")
  log "exchange rates published: ${published[*]}"
}

# Why: the secrets that used to be the public defaults (the simulator's
# constants, readable in this repository's history) must buy nothing: a
# webhook signed with them is refused by a stack the run command started.
# Usage: check_old_simulator_secrets_refused API_URL
check_old_simulator_secrets_refused() {
  local api="$1" body code failures=0
  body='{"entity":"event","event":"payment.captured","payload":{"payment":{"entity":{"id":"pay_forged","order_id":"order_forged","amount":100,"currency":"INR","status":"captured","notes":{}}}},"created_at":1}'
  local rz_sig
  rz_sig="$(python3 -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
    simulator_razorpay_webhook_secret "$body")"
  code="$(curl -s -w ' %{http_code}' -X POST "$api/webhooks/razorpay" -H 'content-type: application/json' \
    -H "x-razorpay-signature: $rz_sig" -H 'x-razorpay-event-id: evt_forged_1' -d "$body")"
  if [[ "$code" == *signature*' 400' ]]; then log "PASS  a Razorpay webhook signed with the old public secret: refused for its signature"
  else log "FAIL  a Razorpay webhook signed with the old public secret answered: $code"; failures=1; fi
  local t stripe_body st_sig
  t="$(date +%s)"
  stripe_body='{"id":"evt_forged_2","object":"event","type":"checkout.session.completed","created":1,"livemode":false,"pending_webhooks":1,"data":{"object":{"id":"cs_forged","object":"checkout.session","payment_status":"paid","status":"complete","amount_total":100,"currency":"usd","client_reference_id":"forged-1","metadata":{},"expires_at":1,"mode":"payment","created":1,"livemode":false}}}'
  st_sig="$(python3 -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), (sys.argv[2] + "." + sys.argv[3]).encode(), hashlib.sha256).hexdigest())' \
    whsec_simulator "$t" "$stripe_body")"
  code="$(curl -s -w ' %{http_code}' -X POST "$api/webhooks/stripe" -H 'content-type: application/json' \
    -H "stripe-signature: t=$t,v1=$st_sig" -d "$stripe_body")"
  if [[ "$code" == *signature*' 400' ]]; then log "PASS  a Stripe webhook signed with the old public secret: refused for its signature"
  else log "FAIL  a Stripe webhook signed with the old public secret answered: $code"; failures=1; fi
  return "$failures"
}

# Why: tokens, secrets and personal data never reach a log. After a whole
# purchase (the tour), every log file of the stack is searched for each
# cart and order token the tour saw, each email it used and each secret
# the stack runs with (RAZORPAY_KEY_ID is public: Razorpay's checkout shows
# it to the buyer). Prints what was found where (never the value itself).
# Usage: check_logs_hold_no_credentials LOG_DIR TOUR_LOG SECRETS_FILE
check_logs_hold_no_credentials() {
  local logs="$1" tour="$2" secrets="$3" found=0 kind value files
  local -a tokens emails values
  mapfile -t tokens < <(grep -oE '\b[0-9a-f]{32}\b' "$tour" | sort -u)
  mapfile -t emails < <(grep -oE '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+' "$tour" | sort -u)
  mapfile -t values < <(grep -v -e '^#' -e '^RAZORPAY_KEY_ID=' "$secrets" | sed -n 's/^[A-Z0-9_]*=//p')
  ((${#tokens[@]} > 0 && ${#emails[@]} > 0 && ${#values[@]} > 0)) ||
    die "nothing to search for (${#tokens[@]} tokens, ${#emails[@]} emails, ${#values[@]} secrets): the check would pass vacuously"
  for kind in tokens emails values; do
    local -n list="$kind"
    for value in "${list[@]}"; do
      files="$(grep -rlF -- "$value" "$logs"/*.log 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
      if [[ -n "$files" ]]; then
        log "FAIL  a ${kind%s} ($(printf '%s' "$value" | sha256sum | cut -c1-8)) is in: $files"
        found=$((found + 1))
      fi
    done
    unset -n list
  done
  if ((found)); then
    return 1
  fi
  log "PASS  no log of the stack holds any of ${#tokens[@]} tokens, ${#emails[@]} emails or ${#values[@]} secrets of the purchase"
}

# The offline assets of /docs (Swagger UI from npm's swagger-ui-dist) in
# web/node_modules, installed from web/package-lock.json; skipped when the
# lock file's hash matches the last install.
ensure_web_assets() {
  local web="$REPO_ROOT/web" stamp="$REPO_ROOT/web/node_modules/.lock.sha256" want
  want="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "web assets: up to date"
    return 0
  fi
  command -v npm >/dev/null || apt_install npm
  mkdir -p "$LOCAL_DIR/logs"
  run_with_heartbeat "npm ci (web/)" "$LOCAL_DIR/logs/npm-ci.log" \
    npm ci --prefix "$web" --ignore-scripts --no-audit --no-fund || die "npm ci in web/ failed (see $LOCAL_DIR/logs/npm-ci.log)"
  printf '%s\n' "$want" >"$stamp"
}

ensure_venv() {
  local venv="$LOCAL_DIR/venv"
  local req="$REPO_ROOT/scripts/python/requirements.txt"
  local stamp="$venv/.requirements.sha256"
  local want="none"
  if [[ -f "$req" ]]; then
    want="$(sha256sum "$req" | cut -d' ' -f1)"
  else
    warn "venv: $req does not exist yet; creating a venv without requirements"
  fi
  CHECKOUT_PYTHON="$venv/bin/python"
  export CHECKOUT_PYTHON
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null \
    && [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "venv: $venv up to date"
    return 0
  fi
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      # Debian's python3 ships venv support separately.
      rm -rf "$venv"
      apt_install python3-venv
      python3 -m venv "$venv"
    fi
    log "venv: created $venv ($("$venv/bin/python" --version 2>&1))"
  fi
  rm -f "$stamp"
  if [[ -f "$req" ]]; then
    run_with_heartbeat "pip install -r scripts/python/requirements.txt" "$LOCAL_DIR/logs/pip-install.log" \
      "$venv/bin/python" -m pip install --disable-pip-version-check -r "$req" \
      || die "pip install failed"
  fi
  printf '%s\n' "$want" >"$stamp"
}

# ---------------------------------------------------------------------------
# Cargo
# ---------------------------------------------------------------------------

# Why: binaries live in the workspace's target dir, which CARGO_TARGET_DIR or
# .cargo/config may move; ask cargo instead of guessing.
cargo_target_dir() {
  if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    printf '%s\n' "$CARGO_TARGET_DIR"
    return 0
  fi
  (cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null) \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' \
    || printf '%s\n' "$REPO_ROOT/target"
}

# ---------------------------------------------------------------------------
# Broker
# ---------------------------------------------------------------------------

# Why: one way to run an Apache Kafka node (broker and KRaft controller in
# one process), in the foreground, for both commands and for the tests that
# kill a broker with SIGKILL and start it again on the same data (through
# `scripts/kafka server`). DATADIR keeps its configuration, its log
# directory, its cluster id and, for a node of a cluster, its identity
# (DATADIR/node.env, written by start_kafka_cluster: node id, the controller
# quorum, the cluster id); storage is formatted only when DATADIR has none
# yet, so a restarted node keeps its data and its place in the cluster. The
# pid goes to DATADIR/server.pid (exec keeps it), so whoever restarts a node
# can be found and stopped by its data directory. Replaces the calling shell
# with the broker (exec). Usage: kafka_server DATADIR PORT CONTROLLER_PORT
kafka_server() {
  local datadir="$1" port="$2" cport="$3"
  mkdir -p "$datadir"
  local NODE_ID=1 NODES=1 CONTROLLERS="127.0.0.1:$cport" CLUSTER_ID="" INITIAL_CONTROLLERS=""
  if [[ -f "$datadir/node.env" ]]; then
    # shellcheck disable=SC1091  # written by start_kafka_cluster
    source "$datadir/node.env"
  fi
  local config="$datadir/server.properties"
  write_kafka_config "$config" "$datadir/data" "$port" "$cport" "$NODE_ID" "$CONTROLLERS" "$NODES"
  if [[ ! -f "$datadir/data/meta.properties" ]]; then
    local cluster_id="$CLUSTER_ID" quorum=(--standalone)
    [[ -n "$cluster_id" ]] || cluster_id="$(kafka_uuid)"
    # A cluster's nodes are formatted with the same initial quorum (KIP-853,
    # a dynamic quorum: each voter named with its metadata directory's id).
    [[ -z "$INITIAL_CONTROLLERS" ]] || quorum=(--initial-controllers "$INITIAL_CONTROLLERS")
    log "kafka: formatting storage in $datadir/data (cluster $cluster_id, node $NODE_ID of $NODES)"
    kafka_java kafka.tools.StorageTool format "${quorum[@]}" -t "$cluster_id" -c "$config" \
      >"$datadir/format.log" 2>&1 || { show_log_tail "$datadir/format.log"; die "formatting Kafka storage failed"; }
  fi
  printf '%s\n' "$$" >"$datadir/server.pid"
  # shellcheck disable=SC2086  # the heap options are several words
  exec java ${KAFKA_BROKER_HEAP:--Xms256m -Xmx1g} -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$REPO_ROOT/scripts/broker/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$config"
}

# Why: cluster ids and directory ids are Kafka Uuids: URL-safe base64 of 16
# random bytes, as Kafka's own Uuid.randomUuid(), never starting with '-'
# (StorageTool would take it for an option).
kafka_uuid() {
  python3 -c 'import base64, uuid
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        print(c)
        break'
}

# Why: the commands start the broker in the background and wait until it
# listens. Usage: start_kafka DATADIR PORT CONTROLLER_PORT. Sets BROKER_PID;
# the broker's output goes to BROKER_LOG (default DATADIR/kafka.log).
start_kafka() {
  local datadir="$1" port="$2" cport="$3"
  mkdir -p "$datadir"
  local logfile="${BROKER_LOG:-$datadir/kafka.log}"
  bg_start kafka "$logfile" "$REPO_ROOT/scripts/kafka" server "$datadir" "$port" "$cport"
  BROKER_PID=$BG_LAST_PID
  if ! wait_tcp 127.0.0.1 "$port" 90 "$BROKER_PID"; then
    show_log_tail "$logfile"
    die "kafka did not start on 127.0.0.1:$port"
  fi
  log "kafka $KAFKA_VERSION answering on 127.0.0.1:$port (controller :$cport, data $datadir/data)"
}

# Why: KAFKA_NODES=3 runs a cluster on this machine, as our users run one on
# three: three nodes, each broker and controller (a quorum of three
# controllers survives one down), one cluster id, distinct ports and data
# directories (BASEDIR/node-1 ...). The first start writes each node's
# identity to its node.env; later starts reuse it, so the cluster keeps its
# data. Starts every node, then waits until each listens (all must, or
# topics with three replicas cannot be created). The nodes' output goes to
# LOGDIR/kafka-<n>.log. Usage: start_kafka_cluster BASEDIR LOGDIR
# PORT:CONTROLLER_PORT... Sets KAFKA_NODE_PIDS, KAFKA_NODE_DIRS and
# KAFKA_NODE_PORTS (comma-separated, in node order) and CLUSTER_BROKERS.
start_kafka_cluster() {
  local basedir="$1" logdir="$2"
  shift 2
  local nodes=$# i pair port cport
  local ports=() cports=() controllers=() initial=() dirs=() pids=()
  for pair in "$@"; do
    ports+=("${pair%%:*}")
    cports+=("${pair##*:}")
    controllers+=("127.0.0.1:${pair##*:}")
  done
  mkdir -p "$basedir"
  if [[ ! -f "$basedir/node-1/node.env" ]]; then
    local cluster_id
    cluster_id="$(kafka_uuid)"
    for ((i = 1; i <= nodes; i++)); do
      initial+=("$i@127.0.0.1:${cports[$((i - 1))]}:$(kafka_uuid)")
    done
    for ((i = 1; i <= nodes; i++)); do
      mkdir -p "$basedir/node-$i"
      {
        echo "# Written once by scripts/lib.sh (start_kafka_cluster): this node's place in its cluster."
        echo "NODE_ID=$i"
        echo "NODES=$nodes"
        echo "CONTROLLERS=$(IFS=,; echo "${controllers[*]}")"
        echo "CLUSTER_ID=$cluster_id"
        echo "INITIAL_CONTROLLERS=$(IFS=,; echo "${initial[*]}")"
      } >"$basedir/node-$i/node.env"
    done
  fi
  for ((i = 1; i <= nodes; i++)); do
    port="${ports[$((i - 1))]}" cport="${cports[$((i - 1))]}"
    bg_start "kafka-$i" "$logdir/kafka-$i.log" \
      "$REPO_ROOT/scripts/kafka" server "$basedir/node-$i" "$port" "$cport"
    pids+=("$BG_LAST_PID")
    dirs+=("$basedir/node-$i")
  done
  for ((i = 1; i <= nodes; i++)); do
    port="${ports[$((i - 1))]}"
    if ! wait_tcp 127.0.0.1 "$port" 120 "${pids[$((i - 1))]}"; then
      show_log_tail "$logdir/kafka-$i.log"
      die "kafka node $i did not start on 127.0.0.1:$port"
    fi
  done
  KAFKA_NODE_PIDS="$(IFS=,; echo "${pids[*]}")"
  KAFKA_NODE_DIRS="$(IFS=,; echo "${dirs[*]}")"
  KAFKA_NODE_PORTS="$(IFS=,; echo "$*")"
  CLUSTER_BROKERS="$(for p in "${ports[@]}"; do printf '127.0.0.1:%s,' "$p"; done)"
  CLUSTER_BROKERS="${CLUSTER_BROKERS%,}"
  log "kafka $KAFKA_VERSION: $nodes nodes answering on $CLUSTER_BROKERS (controllers $(IFS=,; echo "${controllers[*]}"), data $basedir/node-*)"
}

# Why: a test that kills a node starts it again itself (on the same data
# directory), so the process that runs at exit may not be one bg_start
# knows. Stops whatever node runs on each directory of DIRS (comma-separated),
# found by its server.pid and checked against its command line.
stop_kafka_nodes_in() {
  local dir pid
  local IFS=,
  for dir in $1; do
    if pid="$(kafka_node_pid "$dir")"; then stop_pid "$pid" "kafka node in $dir"; fi
  done
}

# Why: a node's pid file outlives it and pids get reused: prints the pid of
# DIR/server.pid only while that process is a node running on DIR.
kafka_node_pid() {
  local dir="$1" pid
  [[ -f "$dir/server.pid" ]] || return 1
  pid="$(cat "$dir/server.pid")"
  [[ -n "$pid" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$dir/server.properties" || return 1
  printf '%s\n' "$pid"
}

# Why: the broker's settings, each with its reason, in one place. Written
# anew at every start, so a change here reaches an existing data directory.
# NODE_ID (default 1), CONTROLLERS (the quorum's host:port list, default this
# node's) and NODES (default 1) place the node in a cluster.
# Usage: write_kafka_config FILE LOG_DIR PORT CONTROLLER_PORT [NODE_ID CONTROLLERS NODES]
write_kafka_config() {
  local file="$1" logdir="$2" port="$3" cport="$4"
  local node_id="${5:-1}" controllers="${6:-127.0.0.1:$4}" nodes="${7:-1}"
  # Copies of every internal topic: one per node up to three; with three,
  # a write needs two in sync, so one node may be down (restarted, upgraded,
  # dead) and nothing acknowledged lives on a single disk.
  local rf=$((nodes < 3 ? nodes : 3))
  local min_isr=$((rf >= 3 ? 2 : 1))
  cat >"$file" <<EOF
# Written by scripts/lib.sh (write_kafka_config) at every start; edit it there.
# A node that is both broker and KRaft controller (Kafka 4 has no ZooKeeper):
# node $node_id of $nodes; the controller quorum is every node's controller.
process.roles=broker,controller
node.id=$node_id
controller.quorum.bootstrap.servers=$controllers
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
# Clients must be told an address they can reach: loopback, never a hostname.
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$logdir
# The internal topics (consumer offsets, transaction state, share groups)
# get min(3, nodes) copies: never more than there are nodes, or they are
# never created and every group or transaction waits for them. With three
# nodes, two must be in sync to commit an offset or a transaction, so
# committed offsets and transactions survive a node's loss.
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
# Defaults for a topic created without settings (checkoutctl create-topics
# sets both on ours): the same rule.
default.replication.factor=$rf
min.insync.replicas=$min_isr
# A replica that was out of sync never becomes leader: it would lose what
# producers with acks=all were told is written (Kafka's default; kept
# explicit because it is the point of the cluster).
unclean.leader.election.enable=false
# One partition each instead of 50: created in a second on two cores, and
# one coordinator serves all our groups and transactional producers.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
# A group forms at once instead of waiting 3 s for more members: tests start
# and kill processors and must not pay that on every join.
group.initial.rebalance.delay.ms=0
# Topics are created by checkoutctl create-topics from the topic catalog
# (partitions and cleanup policy per topic); a typo must fail, not create one.
auto.create.topics.enable=false
num.partitions=4
# Small segments, so compaction of changelog and entity topics can act on a
# development machine's volumes (only closed segments are compacted).
log.segment.bytes=16777216
log.cleaner.min.compaction.lag.ms=0
# Two cores are shared with Postgres and every service: few threads.
num.network.threads=2
num.io.threads=4
background.threads=4
log.cleaner.threads=1
# The cleaner clears its whole key map before every pass: with the default
# 128 MiB that clearing was 13 % of the broker's sampled CPU under the
# journey bench (JFR: SkimpyOffsetMap.clear). 16 MiB still maps ~700,000
# keys per pass, far more than a development machine's topics hold.
log.cleaner.dedupe.buffer.size=16777216
num.recovery.threads.per.data.dir=1
EOF
}

# ---------------------------------------------------------------------------
# Prometheus (Debian's), with the alert rules of monitoring/prometheus/
# ---------------------------------------------------------------------------

# Why: the run command scrapes every service and the test command unit-tests
# the alert rules with the same Prometheus an operator would run.
ensure_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return 0; fi
  log "installing Debian's prometheus (prometheus, promtool)"
  apt_install prometheus
  # The package enables a system service; ours is started by run.sh.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus 2>/dev/null || true
  fi
  command -v promtool >/dev/null || die "promtool not found after installing prometheus"
}

# Why: the rules are code: checked and unit-tested (each alert fires on series
# that should fire it and stays quiet otherwise) before any stack starts.
check_alert_rules() {
  local dir="$REPO_ROOT/monitoring/prometheus"
  promtool check rules "$dir/alerts.yml" || return 1
  (cd "$dir" && promtool test rules alerts.test.yml) || return 1
}

# Why: one scrape config for the local stack, from the same ops addresses
# run.sh starts the services on; the rule file is the repository's own.
# Usage: write_prometheus_config FILE JOB=HOST:PORT...
write_prometheus_config() {
  local file="$1"
  shift
  {
    echo "# Written by scripts/run.sh; the rules are monitoring/prometheus/alerts.yml."
    echo "global:"
    echo "  scrape_interval: 5s"
    echo "  evaluation_interval: 15s"
    echo "rule_files:"
    echo "  - $REPO_ROOT/monitoring/prometheus/alerts.yml"
    echo "scrape_configs:"
    local pair
    for pair in "$@"; do
      echo "  - job_name: ${pair%%=*}"
      echo "    static_configs:"
      echo "      - targets: [\"${pair#*=}\"]"
    done
  } >"$file"
}

# Why: "started" is not "scraping": every target must have been scraped
# successfully, and the rules loaded, before the run command says so.
# Usage: wait_prometheus_targets_up URL EXPECTED_TARGETS EXPECTED_RULES TIMEOUT
wait_prometheus_targets_up() {
  local url="$1" want="$2" rules="$3" timeout="$4" deadline up loaded
  deadline=$((SECONDS + timeout))
  while true; do
    up="$(curl -fsS "$url/api/v1/targets?state=active" 2>/dev/null | grep -o '"health":"up"' | wc -l)"
    loaded="$(curl -fsS "$url/api/v1/rules?type=alert" 2>/dev/null | grep -o '"type":"alerting"' | wc -l)"
    if ((up >= want && loaded >= rules)); then
      log "prometheus: $up/$want targets up, $loaded alert rules loaded"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      log "prometheus: $up/$want targets up, $loaded/$rules alert rules loaded after ${timeout}s"
      curl -fsS "$url/api/v1/targets?state=active" 2>/dev/null | grep -o '"scrapeUrl":"[^"]*"\|"health":"[a-z]*"\|"lastError":"[^"]*"' | paste - - - >&2 || true
      return 1
    fi
    sleep 1
  done
}

# Why: an alert over a metric no service exports never fires; each metric the
# rules read must be scraped from the running stack (they are all initialised
# at start-up, so this holds before any traffic).
# Usage: check_alert_metrics_scraped PROMETHEUS_URL
check_alert_metrics_scraped() {
  local url="$1" metric answer missing=()
  for metric in http_request_duration_seconds_bucket http_requests_total webhooks_received_total \
    order_payments_total db_pool_connections db_pool_max_connections pipeline_consumer_lag \
    pipeline_dead_letters_total gateway_breaker_state; do
    answer="$(curl -fsS "$url/api/v1/query" --data-urlencode "query=count($metric)" 2>/dev/null || true)"
    if [[ "$answer" != *'"result":[{'* ]]; then missing+=("$metric"); fi
  done
  if ((${#missing[@]})); then
    log "prometheus has no series of: ${missing[*]}"
    return 1
  fi
  log "prometheus scrapes every metric the alert rules read"
}

# Why: the demo coupons, through the admin API as an operator defines them,
# so the storefront lists some and one of them refuses a small cart.
# Usage: seed_coupons API_URL FILE
seed_coupons() {
  local api="$1" file="$2" admin code body published=()
  [[ -f "$file" ]] || return 0
  admin="$("$BIN_DIR/checkoutctl" token --sub demo-seed --role admin)" || die "checkoutctl token failed"
  while IFS=$'\t' read -r code body; do
    curl -fsS -o /dev/null -X PUT "$api/api/v1/admin/coupons/$code" \
      -H "authorization: Bearer $admin" -H 'content-type: application/json' \
      -d "$body" || die "publishing the coupon $code failed"
    published+=("$code")
  done < <(python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1])).items(): print(k, json.dumps(v), sep="\t")' "$file")
  log "demo coupons published: ${published[*]}"
}

# Why: the storefront is proven by the browser it was built for: Debian's
# chromium (installed when missing), driven by playwright-core from
# web/node_modules, against a running stack; screenshots of every step.
# Usage: run_storefront_test BASE_URL SCREENSHOT_DIR (BIN_DIR and the
# development secrets in the environment, for the tokens it signs in with)
run_storefront_test() {
  local base="$1" shots="$2" stamp
  command -v chromium >/dev/null || apt_install chromium
  ensure_web_assets
  stamp="$(date +%s)"
  mkdir -p "$shots"
  BASE_URL="$base" SCREENSHOTS="$shots" CHROMIUM="$(command -v chromium)" \
    USER_TOKEN="$("$BIN_DIR/checkoutctl" token --sub "shopper-$stamp")" \
    BUYER_TOKEN="$("$BIN_DIR/checkoutctl" token --sub "acme-hr-$stamp")" \
    ADMIN_TOKEN="$("$BIN_DIR/checkoutctl" token --sub "ops-$stamp" --role admin)" \
    timeout 600 node "$REPO_ROOT/scripts/browser/storefront.mjs"
}
