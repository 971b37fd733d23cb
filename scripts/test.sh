#!/usr/bin/env bash
# THE test command: runs the whole workspace's tests against a throwaway broker
# and schema registry, and the local Postgres.
#
#   scripts/test.sh                      # every test
#   scripts/test.sh -E 'test(crash)'     # extra args go to cargo nextest run
#
# What it does:
#   1. installs what is missing: cargo-nextest (pinned), Apache Kafka (jars
#      from Maven Central, scripts/broker/pom.xml), Postgres, the Python venv
#      (.local/venv, from scripts/python/requirements.txt), Swagger UI's
#      files (web/node_modules, from npm), Debian's prometheus; checks the
#      alert rules and runs their unit tests (promtool); checks that no
#      product crate depends on a stand-in (standins/);
#   2. builds the workspace binaries (debug, the target dir the tests use);
#   3. starts a single-node Kafka (KAFKA_NODES=3: a cluster of three nodes)
#      in a throwaway directory and our
#      schema-registry, each on a free port, and a dedicated database
#      `checkout_test` on DATABASE_URL's server;
#   4. runs `cargo nextest run --workspace --no-fail-fast --no-tests=fail "$@"`;
#   5. with no extra args (and unless STACK=0): the run command's own stack
#      (scripts/run.sh --detach, dev profile, its own topics and schema):
#      the README's tour on it (scripts/tour.sh: Razorpay in INR, Stripe in
#      USD), no token, secret or email of it in any log of the stack,
#      webhooks signed with the old public simulator secrets refused,
#      the storefront's browser test (Debian's chromium driven by
#      playwright-core: Razorpay in INR with a coupon, a refused coupon, a
#      failed payment and its retry, Stripe in USD signed in, a bulk order's
#      seats and report; screenshots in the test logs' storefront/),
#      Prometheus scraping every service and every metric the alerts read,
#      then (unless CHAOS=0) the short fault suite against it,
#      scripts/chaos.sh for 80 s (CHAOS_SECONDS), a kill every 1.5 s (the
#      broker and Postgres among them, at least 6 kills), then its ledger
#      checks and every read model against its rebuild;
#   6. stops what it started and exits non-zero if either failed.
#
# KAFKA_NODES=3 runs every test against a three-node cluster (topics with
# three replicas, min.insync.replicas=2), and the cluster test
# (ingress/tests/cluster.rs, which kills brokers) with it; it is skipped
# otherwise. The tests learn the nodes from KAFKA_NODES, KAFKA_NODE_PIDS,
# KAFKA_NODE_PORTS (port:controller port) and KAFKA_NODE_DIRS, each
# comma-separated in node order:
#
#   KAFKA_NODES=3 scripts/test.sh -E 'binary(cluster)'
#
# Environment: DATABASE_URL (server to use; default
# postgres://postgres@127.0.0.1:5432/checkout — the tests get .../checkout_test),
# TEST_DATABASE_URL (use exactly this database instead), RUST_LOG, CI=true
# (per-phase timings). Logs of the broker and registry: .local/test/logs/latest/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
install_traps

# One log folder per run (two runs may share a checkout); keep the last 10.
TEST_DIR="$LOCAL_DIR/test"
LOG_DIR="$TEST_DIR/logs/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$LOG_DIR"
ln -sfn "$LOG_DIR" "$TEST_DIR/logs/latest"
find "$TEST_DIR/logs" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | head -n -10 \
  | while read -r old; do rm -rf "${TEST_DIR:?}/logs/$old"; done

step "tools: cargo-nextest, Apache Kafka"
ensure_nextest
ensure_kafka

step "postgres"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}"
ensure_postgres
TEST_DATABASE_URL="${TEST_DATABASE_URL:-$(pg_url_with_db "$DATABASE_URL" checkout_test)}"
ensure_database "$TEST_DATABASE_URL"
export DATABASE_URL="$TEST_DATABASE_URL"

step "python venv"
ensure_venv

step "web assets (Swagger UI for /docs, from npm)"
ensure_web_assets

step "alert rules (promtool check rules, promtool test rules)"
ensure_prometheus
check_alert_rules || die "the alert rules fail their checks (monitoring/prometheus/)"

step "the product does not depend on a stand-in"
# The schema registry and the gateway simulator stand in for Confluent's
# registry and the gateways in development and tests: no product crate may
# build with them (tests may run them, as dev-dependencies).
for crate in ingress processors sinks gateways platform schemas rules; do
  if cargo tree -p "$crate" -e normal,build --prefix none 2>/dev/null |
    grep -E '^(gateway-simulator|schema-registry) ' >/dev/null; then
    die "$crate depends on a stand-in (cargo tree -p $crate -e normal,build -i gateway-simulator)"
  fi
done
log "ingress, processors, sinks, gateways, platform, schemas and rules build without standins/"

step "build workspace binaries (debug)"
# Same profile and target dir as the tests, so the tests reuse this build.
# cargo prints a line per crate, which is progress enough for CI logs.
run_interruptible "cargo build" cargo build --workspace --bins || die "cargo build failed"
BIN_DIR="$(cargo_target_dir)/debug"
[[ -x "$BIN_DIR/schema-registry" ]] || die "no schema-registry binary in $BIN_DIR after the build"

KAFKA_NODES="${KAFKA_NODES:-1}"
[[ "$KAFKA_NODES" == 1 || "$KAFKA_NODES" == 3 ]] || die "KAFKA_NODES must be 1 or 3, not '$KAFKA_NODES'"
export KAFKA_NODES
BROKER_DATA="$(mktemp -d "${TMPDIR:-/tmp}/checkout-test-kafka.XXXXXX")"
# Why: the scratch dir goes when the script does (after the broker stopped).
# shellcheck disable=SC2317  # called indirectly by the exit trap
remove_broker_data() { rm -rf "$BROKER_DATA"; }
on_exit remove_broker_data
if [[ "$KAFKA_NODES" == 1 ]]; then
  step "start broker (Apache Kafka $KAFKA_VERSION, throwaway storage)"
  read -r BROKER_PORT CONTROLLER_PORT REGISTRY_PORT < <(free_port 3)
  BROKER_LOG="$LOG_DIR/kafka.log" start_kafka "$BROKER_DATA" "$BROKER_PORT" "$CONTROLLER_PORT"
  export KAFKA_BROKERS="127.0.0.1:$BROKER_PORT"
  BROKER_PIDS=("$BROKER_PID")
else
  step "start a 3-node cluster (Apache Kafka $KAFKA_VERSION, throwaway storage)"
  read -r P1 C1 P2 C2 P3 C3 REGISTRY_PORT < <(free_port 7)
  start_kafka_cluster "$BROKER_DATA" "$LOG_DIR" "$P1:$C1" "$P2:$C2" "$P3:$C3"
  export KAFKA_BROKERS="$CLUSTER_BROKERS" KAFKA_NODE_PIDS KAFKA_NODE_DIRS KAFKA_NODE_PORTS
  IFS=, read -ra BROKER_PIDS <<<"$KAFKA_NODE_PIDS"
  # A node a test killed and started again is the test's child, not ours:
  # stopped by its data directory (before the directory goes).
  # shellcheck disable=SC2317  # called indirectly by the exit trap
  stop_restarted_nodes() { stop_kafka_nodes_in "$KAFKA_NODE_DIRS"; }
  on_exit stop_restarted_nodes
  log "KAFKA_NODE_PIDS=$KAFKA_NODE_PIDS KAFKA_NODE_PORTS=$KAFKA_NODE_PORTS"
fi

step "start schema-registry"
bg_start schema-registry "$LOG_DIR/schema-registry.log" \
  env REGISTRY_ADDR="127.0.0.1:$REGISTRY_PORT" RUST_LOG="${RUST_LOG:-info}" \
  "$BIN_DIR/schema-registry"
REGISTRY_PID=$BG_LAST_PID
export SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
if ! wait_http "$SCHEMA_REGISTRY_URL/readyz" 60 "$REGISTRY_PID"; then
  show_log_tail "$LOG_DIR/schema-registry.log"
  die "schema-registry did not become ready"
fi

log "KAFKA_BROKERS=$KAFKA_BROKERS"
log "SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL"
log "DATABASE_URL=$DATABASE_URL"
log "CHECKOUT_PYTHON=$CHECKOUT_PYTHON"

step "wait for the broker"
"$BIN_DIR/checkoutctl" wait --timeout-secs 90 --brokers "$KAFKA_NODES" || die "the broker or registry did not answer"

step "tests (cargo nextest)"
status=0
run_interruptible "cargo nextest" cargo nextest run --workspace --no-fail-fast --no-tests=fail "$@" || status=$?

if ((status != 0)); then
  log "tests failed (status $status); broker and registry logs: $LOG_DIR/"
  for pid in "${BROKER_PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn "a broker ($(_bg_name_of "$pid"), pid $pid) had died during the tests (or a test killed it)"
      show_log_tail "$LOG_DIR/$(_bg_name_of "$pid").log"
    fi
  done
  if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then
    warn "the schema-registry had died during the tests"
    show_log_tail "$LOG_DIR/schema-registry.log"
  fi
fi
# The run command's own stack (scripts/run.sh, dev profile, run.sh's ports
# and broker, topics and a Postgres schema of its own, dropped after a
# pass): the README's tour on it, the old public secrets refused, then the
# short fault suite against it. A filtered run (extra args) is a subset:
# none of this. STACK=0 skips all of it, CHAOS=0 the fault suite only.
if (($# == 0)) && [[ "${STACK:-1}" != 0 ]]; then
  stamp="$(date +%Y%m%d%H%M%S)"
  step "the run command's stack (scripts/run.sh --detach; topics stack$stamp.*)"
  stack_status=0
  (
    # Not the test broker's and registry's: run.sh starts its own.
    unset KAFKA_BROKERS SCHEMA_REGISTRY_URL KAFKA_NODE_PIDS KAFKA_NODE_PORTS KAFKA_NODE_DIRS
    export TOPIC_PREFIX="stack$stamp." DATABASE_SCHEMA="stack_$stamp" PROFILE=dev
    export RATE_LIMIT_API="${RATE_LIMIT_API:-1000000/1000000}"
    export RATE_LIMIT_WEBHOOKS="${RATE_LIMIT_WEBHOOKS:-1000000/1000000}"
    # shellcheck disable=SC2317  # called by the exit trap
    stop_stack() { bash scripts/run.sh stop >/dev/null 2>&1 || true; }
    trap stop_stack EXIT
    bash scripts/run.sh --detach || exit 1
    ensure_dev_secrets "$LOCAL_DIR/run/secrets.env"
    step "the README's tour on it (scripts/tour.sh)"
    PROFILE_DIR=debug bash scripts/tour.sh >"$LOG_DIR/tour.log" 2>&1 || {
      tail -n 40 "$LOG_DIR/tour.log"
      exit 1
    }
    tail -n 3 "$LOG_DIR/tour.log"
    step "no token, secret or email of the purchase in any log"
    check_logs_hold_no_credentials "$LOCAL_DIR/run/logs" "$LOG_DIR/tour.log" "$LOCAL_DIR/run/secrets.env" || exit 1
    step "the old public webhook secrets buy nothing"
    check_old_simulator_secrets_refused "http://127.0.0.1:8080" || exit 1
    step "the storefront in a real browser (chromium, playwright-core)"
    run_storefront_test "http://127.0.0.1:8080" "$LOG_DIR/storefront" || exit 1
    log "screenshots: $LOG_DIR/storefront/"
    step "prometheus scrapes every service and every metric the alerts read"
    check_alert_metrics_scraped "http://${PROMETHEUS_ADDR:-127.0.0.1:9090}" || exit 1
    if [[ "${CHAOS:-1}" != 0 ]]; then
      step "fault suite, short (scripts/chaos.sh; CHAOS=0 skips it)"
      SECONDS_="${CHAOS_SECONDS:-80}" BUYERS=16 KILL_EVERY=1.5 BROKER_AT=2 POSTGRES_AT=5 MIN_KILLS=6 \
        bash scripts/chaos.sh || exit 1
    fi
    # While the broker still runs: its topics go, then the stack.
    drop_run_state "$TOPIC_PREFIX" "$DATABASE_SCHEMA"
  ) || stack_status=$?
  if ((stack_status != 0)); then
    log "the run command's stack failed a check (status $stack_status); logs: $LOG_DIR/tour.log, $LOCAL_DIR/chaos/, $LOCAL_DIR/run/logs/"
    ((status != 0)) || status=$stack_status
  fi
fi
print_step_summary
exit "$status"
