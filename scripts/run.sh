#!/usr/bin/env bash
# THE run command: the whole checkout pipeline on this machine, no Docker.
#
#   scripts/run.sh            # build, start everything, stay in the foreground
#                             # (Ctrl-C / SIGTERM stops all it started)
#   scripts/run.sh --detach   # start everything, leave it running, return
#   scripts/run.sh stop       # stop a stack started by either of the above
#
# It starts: Apache Kafka (one node, broker + KRaft controller, data under
# .local/run/kafka/, kept across runs) on 127.0.0.1:9092 (controller 9093)
# unless a broker answers there already; the
# schema-registry on 8081 (same rule); then runs checkoutctl wait / migrate /
# create-topics / seed-catalog scripts/demo/catalog.json; then starts
# `processors cart` twice (ops 127.0.0.1:9101, :9102), `processors order`
# (ops :9104), `processors coupon` (ops :9105), `processors gateway` (the
# gateway worker, ops :9106), `processors webhook` (ops :9107), `processors
# webhook-retry` (ops :9110), `processors enrollment` (ops :9108),
# `processors invoice` (ops :9111; the demo seller of INVOICE_SUPPLIER_*
# unless set), `sinks all`
# (ops :9103), `sinks notifications` (the notification worker, ops :9109;
# emails as .eml files in .local/mail unless NOTIFY_TRANSPORT=smtp and
# SMTP_URL say otherwise),
# `ingress` (127.0.0.1:8080) and the `gateway-simulator` (127.0.0.1:8090: the
# Razorpay and Stripe endpoints, hosted checkout pages, signed webhooks),
# and Debian's Prometheus (PROMETHEUS_ADDR, 127.0.0.1:9090; installed when
# missing) scraping every service's /metrics with the alert rules of
# monitoring/prometheus/alerts.yml loaded.
# Logs: .local/run/logs/<name>.log.
#
# KAFKA_NODES=3 starts a cluster of three instead (each broker + controller,
# one cluster id, data under .local/run/kafka-3/node-<n>/, client ports
# 9092, 9094, 9096 and controllers 9093, 9095, 9097, or the ports of
# KAFKA_BROKERS with each controller on its port + 1), waits until all three
# answer and are in the cluster, and gives all three to every service as
# bootstrap servers; topics get three replicas and min.insync.replicas=2.
#
# Secrets: none of the services has a default for any. The first run
# generates development ones into .local/run/secrets.env (mode 0600; delete
# it for new ones) and hands the same values to the simulator and to our
# services; a variable set in the environment wins (AUTH_JWT_HS256_SECRET,
# RAZORPAY_KEY_ID, RAZORPAY_KEY_SECRET, RAZORPAY_WEBHOOK_SECRET,
# STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET).
#
# Demo data: scripts/demo/catalog.json (published to the catalog topic),
# scripts/demo/fx-rates.json (USD, EUR, GBP) and scripts/demo/coupons.json,
# both through the admin API.
#
# Environment: PROFILE=release (default) or dev; KAFKA_NODES (1 or 3); KAFKA_BROKERS,
# SCHEMA_REGISTRY_URL, DATABASE_URL, TOPIC_PREFIX, RUST_LOG (default info),
# INGRESS_ADDR; SIMULATOR_ADDR and the other SIMULATOR_* variables (webhook
# URLs, knobs; see standins/gateway-simulator/src/config.rs);
# RAZORPAY_BASE_URL, STRIPE_BASE_URL (default: the simulator); READY_TIMEOUT
# (seconds to wait for each /readyz, default 120).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

RUN_DIR="$LOCAL_DIR/run"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
READY_TIMEOUT="${READY_TIMEOUT:-120}"

# Why: the one place that says how to call this script.
usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# Why: `run.sh stop` must stop a detached stack (or one whose terminal is
# gone) from its pid files, newest first, and the Postgres it started, if any.
stop_from_pidfiles() {
  local found=0 name pid
  if [[ -f "$PID_DIR/order" ]]; then
    local names=() cluster_told=0
    mapfile -t names <"$PID_DIR/order"
    local i
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do
      name="${names[$i]}"
      if [[ "$name" == kafka-[0-9]* && "$cluster_told" == 0 ]]; then
        # A cluster's nodes stop together (see stop_all_bg in lib.sh).
        cluster_told=1
        local n p
        for n in "${names[@]}"; do
          if [[ "$n" == kafka-[0-9]* ]] && p="$(pidfile_alive "$PID_DIR/$n.pid")"; then
            kill -TERM "$p" 2>/dev/null || true
          fi
        done
      fi
      if pid="$(pidfile_alive "$PID_DIR/$name.pid")"; then
        found=1
        stop_pid "$pid" "$name"
      fi
      rm -f "$PID_DIR/$name.pid"
    done
  fi
  if [[ -f "$PID_DIR/postgres.started" ]]; then
    _PG_STARTED="$(cat "$PID_DIR/postgres.started")"
    stop_started_postgres
    found=1
  fi
  rm -rf "$PID_DIR"
  if ((found)); then
    log "stack stopped"
  else
    log "nothing to stop (no live processes in $PID_DIR)"
  fi
}

# Why: two stacks would fight over ports and the broker's data; say so clearly.
refuse_if_running() {
  local f
  for f in "$PID_DIR"/*.pid; do
    [[ -e "$f" ]] || continue
    if pidfile_alive "$f" >/dev/null; then
      die "a stack is already running ($(basename "$f" .pid) and others); stop it with: scripts/run.sh stop"
    fi
  done
  rm -rf "$PID_DIR"
}

# Why: "host:port" of a URL or broker list entry, for reuse-or-start decisions.
host_port_of() {
  python3 - "$1" <<'EOF'
import sys, urllib.parse
v = sys.argv[1].split(",")[0].strip()
if "://" not in v:
    v = "tcp://" + v
u = urllib.parse.urlsplit(v)
print(u.hostname or "127.0.0.1", u.port or 0, sep="\t")
EOF
}

is_local_host() {
  [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == ::1 ]]
}

# Why: a port held by something else makes a service fail with a bind error
# deep in its log; check up front and name the port.
require_free_port() {
  local host="$1" port="$2" what="$3"
  if tcp_open "$host" "$port"; then
    die "$host:$port (for $what) is already in use; stop whatever listens there (ss -ltnp | grep :$port)"
  fi
}

# Why: checkoutctl's output goes to the console (it is short) and to a log.
run_ctl() {
  log "checkoutctl $*"
  "$BIN_DIR/checkoutctl" "$@" 2>&1 | tee -a "$LOG_DIR/checkoutctl.log" \
    || die "checkoutctl $* failed (see $LOG_DIR/checkoutctl.log)"
}

# Why: start one service and wait for its /readyz; on failure show its log.
# Usage: start_service NAME OPS_URL CMD [ARGS...]
start_service() {
  local name="$1" url="$2"
  shift 2
  bg_start "$name" "$LOG_DIR/$name.log" "$@"
  STARTED_PIDS+=("$BG_LAST_PID")
  STARTED_NAMES+=("$name")
  STARTED_URLS+=("$url")
}

# Why: wait for all services at once (processors joining the group take a few
# seconds each; waiting in turn would add those up).
wait_services_ready() {
  local i
  for i in "${!STARTED_NAMES[@]}"; do
    if ! wait_http "${STARTED_URLS[$i]}/readyz" "$READY_TIMEOUT" "${STARTED_PIDS[$i]}"; then
      show_log_tail "$LOG_DIR/${STARTED_NAMES[$i]}.log"
      die "${STARTED_NAMES[$i]} did not become ready"
    fi
    log "${STARTED_NAMES[$i]} ready (${STARTED_URLS[$i]})"
  done
}

# Why: KAFKA_NODES=3 follows the single node's rules, for three: a cluster
# whose three brokers all answer is reused, one started here keeps its data
# in .local/run/kafka-3/, and a cluster only partly up is an error (starting
# the missing nodes beside someone else's would mix two clusters).
start_run_cluster() {
  local entry host port answering=0 pairs=() cports entries
  IFS=, read -ra entries <<<"$KAFKA_BROKERS"
  ((${#entries[@]} == 3)) || die "KAFKA_NODES=3 needs three KAFKA_BROKERS, not '$KAFKA_BROKERS'"
  IFS=, read -ra cports <<<"${KAFKA_CONTROLLER_PORTS:-}"
  local i=0
  for entry in "${entries[@]}"; do
    IFS=$'\t' read -r host port < <(host_port_of "$entry")
    is_local_host "$host" || die "KAFKA_NODES=3 runs its nodes on 127.0.0.1; $entry is not local"
    if tcp_open 127.0.0.1 "$port"; then answering=$((answering + 1)); fi
    pairs+=("$port:${cports[$i]:-$((port + 1))}")
    i=$((i + 1))
  done
  if ((answering == 3)); then
    BROKER_NOTE="3 nodes already running, reused; not stopped by this script"
    log "brokers already answer on $KAFKA_BROKERS: reusing them"
    return 0
  fi
  ((answering == 0)) || die "only $answering of the 3 brokers in $KAFKA_BROKERS answer; stop them or start the rest"
  local pair
  for pair in "${pairs[@]}"; do
    require_free_port 127.0.0.1 "${pair##*:}" "kafka controller"
  done
  start_kafka_cluster "$RUN_DIR/kafka-3" "$LOG_DIR" "${pairs[@]}"
  BROKER_NOTE="Apache Kafka $KAFKA_VERSION, 3 nodes (controllers ${pairs[*]#*:}), data in .local/run/kafka-3/"
}

# ---------------------------------------------------------------------------

MODE=foreground
case "${1:-}" in
  stop)
    stop_from_pidfiles
    exit 0
    ;;
  --detach | -d) MODE=detach ;;
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage >&2
    exit 2
    ;;
esac

refuse_if_running
mkdir -p "$LOG_DIR"
# Pid files in both modes, so `scripts/run.sh stop` works from another terminal.
BG_PIDFILE_DIR="$PID_DIR"
# Own session for each service: a terminal's Ctrl-C reaches only this script,
# which then stops the services in order (ingress first, broker last).
BG_SETSID=1
install_traps

KAFKA_NODES="${KAFKA_NODES:-1}"
case "$KAFKA_NODES" in
  1) export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}" ;;
  3) export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096}" ;;
  *) die "KAFKA_NODES must be 1 or 3, not '$KAFKA_NODES'" ;;
esac
export KAFKA_NODES
export SCHEMA_REGISTRY_URL="${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}"
export TOPIC_PREFIX="${TOPIC_PREFIX:-}"
export RUST_LOG="${RUST_LOG:-info}"
INGRESS_ADDR="${INGRESS_ADDR:-127.0.0.1:8080}"
SIMULATOR_ADDR="${SIMULATOR_ADDR:-127.0.0.1:8090}"
OPS_INGRESS="127.0.0.1:9100"
OPS_CART_1="127.0.0.1:9101"
OPS_CART_2="127.0.0.1:9102"
OPS_SINKS="127.0.0.1:9103"
OPS_ORDER="127.0.0.1:9104"
OPS_COUPON="127.0.0.1:9105"
OPS_GATEWAY="127.0.0.1:9106"
OPS_WEBHOOK="127.0.0.1:9107"
OPS_ENROLLMENT="127.0.0.1:9108"
OPS_WEBHOOK_RETRY="127.0.0.1:9110"
OPS_INVOICE="127.0.0.1:9111"
OPS_NOTIFY="127.0.0.1:9109"
PROMETHEUS_ADDR="${PROMETHEUS_ADDR:-127.0.0.1:9090}"
# The notification worker's development default: lettre's file transport.
export NOTIFY_FILE_DIR="${NOTIFY_FILE_DIR:-$LOCAL_DIR/mail}"
# Where buyers may be sent back after paying (development: a local frontend).
export ORDER_RETURN_ORIGINS="${ORDER_RETURN_ORIGINS:-http://localhost:3000,http://127.0.0.1:3000}"
export ORDER_RETURN_HTTP_ALLOWED="${ORDER_RETURN_HTTP_ALLOWED:-true}"

PROFILE="${PROFILE:-release}"
case "$PROFILE" in
  release) BUILD_ARGS=(--release) OUT_DIR=release ;;
  dev | debug) BUILD_ARGS=() OUT_DIR=debug ;;
  *) die "PROFILE must be release or dev, not '$PROFILE'" ;;
esac

step "tools: Apache Kafka"
ensure_kafka

step "web assets (Swagger UI for /docs, from npm)"
ensure_web_assets

step "postgres"
ensure_postgres
if [[ -n "$_PG_STARTED" ]]; then
  mkdir -p "$PID_DIR"
  printf '%s\n' "$_PG_STARTED" >"$PID_DIR/postgres.started"
fi

step "build workspace binaries ($PROFILE)"
run_interruptible "cargo build" cargo build "${BUILD_ARGS[@]}" --bins || die "cargo build failed"
BIN_DIR="$(cargo_target_dir)/$OUT_DIR"
for bin in schema-registry checkoutctl processors sinks ingress gateway-simulator; do
  [[ -x "$BIN_DIR/$bin" ]] || die "no $bin binary in $BIN_DIR after the build"
done

step "check ports"
IFS=$'\t' read -r ingress_host ingress_port < <(host_port_of "$INGRESS_ADDR")
require_free_port "$ingress_host" "$ingress_port" ingress
require_free_port 127.0.0.1 9100 "ingress ops"
require_free_port 127.0.0.1 9101 "processors cart #1 ops"
require_free_port 127.0.0.1 9102 "processors cart #2 ops"
require_free_port 127.0.0.1 9103 "sinks ops"
require_free_port 127.0.0.1 9104 "processors order ops"
require_free_port 127.0.0.1 9105 "processors coupon ops"
require_free_port 127.0.0.1 9106 "processors gateway ops"
require_free_port 127.0.0.1 9107 "processors webhook ops"
require_free_port 127.0.0.1 9108 "processors enrollment ops"
require_free_port 127.0.0.1 9110 "processors webhook-retry ops"
require_free_port 127.0.0.1 9111 "processors invoice ops"
require_free_port 127.0.0.1 9109 "sinks notifications ops"
IFS=$'\t' read -r prom_host prom_port < <(host_port_of "$PROMETHEUS_ADDR")
require_free_port "$prom_host" "$prom_port" prometheus
IFS=$'\t' read -r sim_host sim_port < <(host_port_of "$SIMULATOR_ADDR")
require_free_port "$sim_host" "$sim_port" gateway-simulator

step "broker (Apache Kafka $KAFKA_VERSION)"
IFS=$'\t' read -r broker_host broker_port < <(host_port_of "$KAFKA_BROKERS")
BROKER_NOTE=""
if [[ "$KAFKA_NODES" == 3 ]]; then
  start_run_cluster
elif ! is_local_host "$broker_host"; then
  BROKER_NOTE="external, not managed here"
  log "KAFKA_BROKERS=$KAFKA_BROKERS is not local: using it as is"
elif tcp_open "$broker_host" "$broker_port"; then
  BROKER_NOTE="already running, reused; not stopped by this script"
  log "a broker already answers on $broker_host:$broker_port: reusing it"
else
  require_free_port 127.0.0.1 9093 "kafka controller"
  BROKER_LOG="$LOG_DIR/kafka.log" start_kafka "$RUN_DIR/kafka" "$broker_port" 9093
  BROKER_NOTE="Apache Kafka $KAFKA_VERSION, data in .local/run/kafka/"
fi

step "schema-registry"
IFS=$'\t' read -r reg_host reg_port < <(host_port_of "$SCHEMA_REGISTRY_URL")
REGISTRY_NOTE=""
if ! is_local_host "$reg_host"; then
  REGISTRY_NOTE="external, not managed here"
  log "SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL is not local: using it as is"
elif http_ok "$SCHEMA_REGISTRY_URL/readyz"; then
  REGISTRY_NOTE="already running, reused; not stopped by this script"
  log "a registry already answers at $SCHEMA_REGISTRY_URL: reusing it"
else
  require_free_port "$reg_host" "$reg_port" schema-registry
  bg_start schema-registry "$LOG_DIR/schema-registry.log" \
    env REGISTRY_ADDR="$reg_host:$reg_port" "$BIN_DIR/schema-registry"
  if ! wait_http "$SCHEMA_REGISTRY_URL/readyz" 60 "$BG_LAST_PID"; then
    show_log_tail "$LOG_DIR/schema-registry.log"
    die "schema-registry did not become ready"
  fi
  REGISTRY_NOTE="started here"
fi

step "checkoutctl: wait, migrate, create-topics, seed-catalog"
: >"$LOG_DIR/checkoutctl.log"
run_ctl wait --timeout-secs 120 --brokers "$KAFKA_NODES"
run_ctl migrate
run_ctl create-topics
CATALOG="scripts/demo/catalog.json"
FX_RATES="scripts/demo/fx-rates.json"
if [[ -f "$CATALOG" ]]; then
  run_ctl seed-catalog "$CATALOG"
else
  warn "$CATALOG not found: catalog not seeded"
fi

step "services"
# Development is explicit: no service has a default for any secret, so the
# run command generates them once (.local/run/secrets.env, mode 0600) and
# gives the same values to the simulator and to our services. Variables set
# in the environment win (real test-mode keys, say).
ensure_dev_secrets "$RUN_DIR/secrets.env"
STARTED_PIDS=()
STARTED_NAMES=()
STARTED_URLS=()
# Each instance keeps its name across restarts: its transactional id is
# derived from it, so a restarted instance fences what its last run left.
start_service processors-cart-1 "http://$OPS_CART_1" \
  env OPS_ADDR="$OPS_CART_1" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" cart
start_service processors-cart-2 "http://$OPS_CART_2" \
  env OPS_ADDR="$OPS_CART_2" PROCESSOR_INSTANCE=2 "$BIN_DIR/processors" cart
start_service processors-order "http://$OPS_ORDER" \
  env OPS_ADDR="$OPS_ORDER" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" order
start_service processors-coupon "http://$OPS_COUPON" \
  env OPS_ADDR="$OPS_COUPON" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" coupon
start_service sinks "http://$OPS_SINKS" \
  env OPS_ADDR="$OPS_SINKS" "$BIN_DIR/sinks" all
# The storefront pays a Razorpay order on the simulator's hosted page (in
# production: Razorpay's Checkout).
RAZORPAY_CHECKOUT_PAGE="${STOREFRONT_RAZORPAY_CHECKOUT_URL:-}"
[[ -n "$RAZORPAY_CHECKOUT_PAGE" ]] || RAZORPAY_CHECKOUT_PAGE="http://$SIMULATOR_ADDR/checkout/{order_id}"
start_service ingress "http://$OPS_INGRESS" \
  env INGRESS_ADDR="$INGRESS_ADDR" OPS_ADDR="$OPS_INGRESS" \
  STOREFRONT_RAZORPAY_CHECKOUT_URL="$RAZORPAY_CHECKOUT_PAGE" \
  "$BIN_DIR/ingress"
# The development default for both gateways; it sends its webhooks to the
# ingress, as Razorpay and Stripe would.
start_service gateway-simulator "http://$SIMULATOR_ADDR" \
  env SIMULATOR_ADDR="$SIMULATOR_ADDR" \
  SIMULATOR_WEBHOOK_URL_RAZORPAY="${SIMULATOR_WEBHOOK_URL_RAZORPAY:-http://$INGRESS_ADDR/webhooks/razorpay}" \
  SIMULATOR_WEBHOOK_URL_STRIPE="${SIMULATOR_WEBHOOK_URL_STRIPE:-http://$INGRESS_ADDR/webhooks/stripe}" \
  "$BIN_DIR/gateway-simulator"
start_service processors-webhook "http://$OPS_WEBHOOK" \
  env OPS_ADDR="$OPS_WEBHOOK" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" webhook
start_service processors-webhook-retry "http://$OPS_WEBHOOK_RETRY" \
  env OPS_ADDR="$OPS_WEBHOOK_RETRY" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" webhook-retry
start_service processors-enrollment "http://$OPS_ENROLLMENT" \
  env OPS_ADDR="$OPS_ENROLLMENT" PROCESSOR_INSTANCE=1 "$BIN_DIR/processors" enrollment
# The seller the invoices name: a demo one here; a deployment sets its own
# (the service refuses to start without them).
start_service processors-invoice "http://$OPS_INVOICE" \
  env OPS_ADDR="$OPS_INVOICE" PROCESSOR_INSTANCE=1 \
  INVOICE_SUPPLIER_NAME="${INVOICE_SUPPLIER_NAME:-InternHub Learning Pvt Ltd (demo)}" \
  INVOICE_SUPPLIER_GSTIN="${INVOICE_SUPPLIER_GSTIN:-29AAGCI1234F1Z5}" \
  INVOICE_SUPPLIER_ADDRESS="${INVOICE_SUPPLIER_ADDRESS:-12 Residency Road, Bengaluru, Karnataka 560025}" \
  "$BIN_DIR/processors" invoice
# The gateway worker opens payment sessions at the simulator unless
# RAZORPAY_BASE_URL/STRIPE_BASE_URL and real test keys say otherwise.
start_service processors-gateway "http://$OPS_GATEWAY" \
  env OPS_ADDR="$OPS_GATEWAY" RAZORPAY_BASE_URL="${RAZORPAY_BASE_URL:-http://$SIMULATOR_ADDR}" \
  STRIPE_BASE_URL="${STRIPE_BASE_URL:-http://$SIMULATOR_ADDR}" "$BIN_DIR/processors" gateway
# Order, payment-failure and enrollment emails (see docs/notifications.md).
start_service notifications "http://$OPS_NOTIFY" \
  env OPS_ADDR="$OPS_NOTIFY" "$BIN_DIR/sinks" notifications
wait_services_ready
# The demo exchange rates, through the admin API as an operator publishes
# them: a buyer who picks USD, EUR or GBP is priced (and routed to Stripe)
# on a fresh stack.
seed_fx_rates "http://$INGRESS_ADDR" "$FX_RATES"
seed_coupons "http://$INGRESS_ADDR" scripts/demo/coupons.json
# The demo data is part of "up": the catalog the seed published must be
# readable (the internships sink has materialized it) before we say so, or
# a load started right away finds an empty catalog.
if [[ -f "$CATALOG" ]]; then
  log "waiting for the demo catalog to be readable at http://$INGRESS_ADDR/api/v1/internships"
  deadline=$((SECONDS + READY_TIMEOUT))
  until http_body_contains "http://$INGRESS_ADDR/api/v1/internships" '"internship_id"'; do
    ((SECONDS < deadline)) || die "the seeded catalog was not readable within ${READY_TIMEOUT}s (see $LOG_DIR/sinks.log)"
    sleep 0.5
  done
  log "demo catalog readable"
fi
_step_close

step "prometheus (Debian's), scraping every service, with the alert rules"
ensure_prometheus
PROM_TARGETS=(
  ingress="$OPS_INGRESS" processors-cart-1="$OPS_CART_1" processors-cart-2="$OPS_CART_2"
  processors-order="$OPS_ORDER" processors-coupon="$OPS_COUPON" processors-gateway="$OPS_GATEWAY"
  processors-webhook="$OPS_WEBHOOK" processors-webhook-retry="$OPS_WEBHOOK_RETRY"
  processors-enrollment="$OPS_ENROLLMENT" processors-invoice="$OPS_INVOICE"
  sinks="$OPS_SINKS" notifications="$OPS_NOTIFY"
  prometheus="$PROMETHEUS_ADDR"
)
write_prometheus_config "$RUN_DIR/prometheus.yml" "${PROM_TARGETS[@]}"
mkdir -p "$RUN_DIR/prometheus"
bg_start prometheus "$LOG_DIR/prometheus.log" \
  prometheus --config.file="$RUN_DIR/prometheus.yml" --storage.tsdb.path="$RUN_DIR/prometheus" \
  --storage.tsdb.retention.time=7d --web.listen-address="$PROMETHEUS_ADDR"
if ! wait_http "http://$PROMETHEUS_ADDR/-/ready" 60 "$BG_LAST_PID"; then
  show_log_tail "$LOG_DIR/prometheus.log"
  die "prometheus did not become ready"
fi
ALERT_RULES="$(grep -c '^ *- alert:' monitoring/prometheus/alerts.yml)"
wait_prometheus_targets_up "http://$PROMETHEUS_ADDR" "${#PROM_TARGETS[@]}" "$ALERT_RULES" 60 \
  || die "prometheus does not scrape every service (see http://$PROMETHEUS_ADDR/targets)"

API="http://$INGRESS_ADDR"
cat <<EOF

Checkout stack is up (profile $PROFILE).
  storefront           $API/           (sign in: checkoutctl token --sub you)
  ingress (API)        $API/api/v1     /healthz; ops http://$OPS_INGRESS: /healthz /readyz /metrics
  gateway-simulator    http://$SIMULATOR_ADDR   Razorpay + Stripe (/v1/...), checkout pages /checkout/{id}
  processors cart #1   http://$OPS_CART_1   ops: /healthz /readyz /metrics
  processors cart #2   http://$OPS_CART_2   ops
  processors order     http://$OPS_ORDER   ops
  processors coupon    http://$OPS_COUPON   ops
  processors gateway   http://$OPS_GATEWAY   ops (payment sessions at the gateways)
  processors webhook   http://$OPS_WEBHOOK   ops (gateway webhooks → orders)
  processors webhook-retry http://$OPS_WEBHOOK_RETRY ops (webhooks ahead of their order, retried)
  processors enrollment http://$OPS_ENROLLMENT  ops (paid orders → enrollments)
  processors invoice   http://$OPS_INVOICE   ops (paid orders → GST invoices, refunds → credit notes)
  sinks all            http://$OPS_SINKS   ops
  sinks notifications  http://$OPS_NOTIFY   ops (emails: ${NOTIFY_TRANSPORT:-file}, ${NOTIFY_FILE_DIR})
  prometheus           http://$PROMETHEUS_ADDR   every service's /metrics, alerts from monitoring/prometheus/alerts.yml
  schema-registry      $SCHEMA_REGISTRY_URL   ($REGISTRY_NOTE)
  kafka                $KAFKA_BROKERS        ($BROKER_NOTE)
  postgres             $DATABASE_URL
  logs                 $LOG_DIR/<name>.log

Try it: the README's tour, a purchase paid through Razorpay in INR and one
through Stripe in USD (scripts/tour.sh runs the same calls and checks them):
  set -a; . $RUN_DIR/secrets.env; set +a   # the development secrets, for checkoutctl token
  scripts/tour.sh
  API documentation: $API/docs (document: $API/openapi.json)
  emails sent:       ls $NOTIFY_FILE_DIR

EOF

if [[ "$MODE" == detach ]]; then
  BG_KEEP=1
  log "detached; pid files in $PID_DIR. Stop with: scripts/run.sh stop"
  exit 0
fi

log "running in the foreground; Ctrl-C stops everything this script started"
# Report (once each) any service that dies, but keep the rest running: killing
# one processor instance to watch the other take over is a normal experiment.
declare -A REPORTED=()
while true; do
  for i in "${!_BG_PIDS[@]}"; do
    pid="${_BG_PIDS[$i]}"
    if [[ -z "${REPORTED[$pid]:-}" ]] && ! kill -0 "$pid" 2>/dev/null; then
      REPORTED[$pid]=1
      st=0
      wait "$pid" 2>/dev/null || st=$?
      warn "${_BG_NAMES[$i]} (pid $pid) exited with status $st; see $LOG_DIR/${_BG_NAMES[$i]}.log"
    fi
  done
  sleep 2 &
  wait $! || true
done
