#!/usr/bin/env bash
# The fault suite: the journey load (checkoutctl bench --journey: one to
# three lines, every fifth buyer a block of three seats, every seventh a
# first payment that fails and is paid again, every sixth refunded by an
# admin once enrolled) while the stack's processes
# are SIGKILLed at random moments, each restarted exactly as it ran (its
# command line, environment and working directory, read from /proc before
# the kill); the broker and Postgres (the Debian cluster on DATABASE_URL's
# port; a kill that could not happen is not counted) are killed and
# restarted too (one at a time, never both). Bounded in time; it says what
# it does as it goes. At the end it checks the ledger the load wrote and
# prints it:
#
#   - every process is running at the end, and the README's tour
#     (scripts/tour.sh: a purchase through each gateway) passes on the same
#     stack after the faults;
#   - every order the ingress accepted is in the orders table; no placement
#     the load sent, answered or not (its order token is derived from the
#     cart), is left PENDING (a coupon reservation always answered);
#   - every order the simulator took a payment for is PAID, and no other,
#     unless an admin's refund of it was accepted: then it is REFUNDED
#     with every enrollment revoked (a refund whose answer was lost ends
#     either way, never elsewhere);
#   - one active enrollment per line of each paid order, none twice;
#   - the run's limited coupon (LIMITED_USES uses in all, applied by every
#     fourth journey) counted exactly the paid orders that carry it, and
#     no more than its limit;
#   - nothing in the dead-letter topic;
#   - each order's outcome on order.events once (`checkoutctl outcomes`),
#     and each email once (one file per Message-ID): duplicates a rebuild
#     would reproduce show here;
#   - every paid order has one tax invoice and every refunded one its
#     credit note, no other order has either, and the sales register on
#     invoice.documents numbers each series exactly 1..N, without a gap
#     or a repeat (`checkoutctl invoices`);
#   - every read model equals its rebuild from its topic, row for row (the
#     sinks stopped, each sink rebuilt with `checkoutctl rebuild SINK
#     --compare`, the sinks started again).
#
#   scripts/chaos.sh                              # 120 s, 15 buyers, a kill every 2 s (≥ 20 kills)
#   SECONDS_=120 BUYERS=40 KILL_EVERY=2 scripts/chaos.sh
#   KILL_INFRA=0 scripts/chaos.sh                 # services only
#   KAFKA_NODES=3 scripts/chaos.sh                # against three brokers (one killed)
#   SECONDS_=80 BUYERS=16 KILL_EVERY=1.5 BROKER_AT=2 POSTGRES_AT=5 MIN_KILLS=6 scripts/chaos.sh
#                                                 # the short run of the test command
#
# Starts the stack (scripts/run.sh --detach, PROFILE=dev unless set) unless
# an ingress answers on 127.0.0.1:8080, and stops what it started. A stack it
# starts runs on topics and a Postgres schema of its own (TOPIC_PREFIX
# chaos<time>., DATABASE_SCHEMA chaos_<time>; dropped when every check passed
# unless KEEP_STATE=1, kept for inspection otherwise), so
# it starts from empty state whatever earlier runs and benchmarks left (a
# processor restored the benchmarks' changelogs for longer than the load's
# timeouts after each kill).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
install_traps

PROFILE="${PROFILE:-dev}"
DURATION="${SECONDS_:-120}"
BUYERS="${BUYERS:-15}"
KILL_EVERY="${KILL_EVERY:-2}"
# A run of two minutes or more must land at least 20 kills (the default
# fault suite); a shorter one at least one.
MIN_KILLS="${MIN_KILLS:-$((DURATION >= 120 ? 20 : 1))}"
KILL_INFRA="${KILL_INFRA:-1}"
# Which kill (counting from 0) is the broker's, and which is Postgres'.
BROKER_AT="${BROKER_AT:-4}"
POSTGRES_AT="${POSTGRES_AT:-8}"
LIMITED_USES="${LIMITED_USES:-10}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}"
PIDS="$LOCAL_DIR/run/pids"
CHAOS_DIR="$LOCAL_DIR/chaos/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$CHAOS_DIR"
# What this run's stack wrote is newer than this file (its emails).
touch "$CHAOS_DIR/started"

started_here=0
# shellcheck disable=SC2317  # called indirectly by the exit trap
stop_stack() { if ((started_here)); then bash scripts/run.sh stop || true; fi; }
on_exit stop_stack
if ! http_ok "http://127.0.0.1:9100/readyz"; then
  stamp="$(date +%Y%m%d%H%M%S)"
  export TOPIC_PREFIX="${TOPIC_PREFIX:-chaos$stamp.}" DATABASE_SCHEMA="${DATABASE_SCHEMA:-chaos_$stamp}"
  step "start the stack ($PROFILE; topics $TOPIC_PREFIX*, schema $DATABASE_SCHEMA)"
  RATE_LIMIT_API="${RATE_LIMIT_API:-1000000/1000000}" RATE_LIMIT_WEBHOOKS="${RATE_LIMIT_WEBHOOKS:-1000000/1000000}" \
    PROFILE="$PROFILE" bash scripts/run.sh --detach
  started_here=1
fi
if [[ "$PROFILE" == release ]]; then BIN="$(cargo_target_dir)/release"; else BIN="$(cargo_target_dir)/debug"; fi

# Why: a process is restarted as it ran, whoever started it: its argv,
# environment and cwd come from /proc, the pid file is rewritten for
# `run.sh stop`. Usage: kill_and_restart NAME [SIGNAL [CMD ARGS...]]: CMD
# runs between the stop and the restart (default signal KILL, no CMD).
kill_and_restart() {
  local name="$1" signal="${2:-KILL}" pidfile="$PIDS/$1.pid" pid started logfile cwd
  shift $(($# < 2 ? $# : 2))
  [[ -f "$pidfile" ]] || { warn "no pid file for $name"; return 1; }
  { read -r pid; read -r started; read -r logfile; } <"$pidfile"
  # A pid is reused: the start time says whether it is still our process.
  if ! kill -0 "$pid" 2>/dev/null || [[ "$(proc_starttime "$pid")" != "$started" ]]; then
    warn "$name (pid $pid) is not running"
    return 1
  fi
  local -a argv envs
  mapfile -d '' argv <"/proc/$pid/cmdline"
  mapfile -d '' envs <"/proc/$pid/environ"
  cwd="$(readlink "/proc/$pid/cwd")"
  kill -s "$signal" "$pid"
  # A process that does not end within 20 s of SIGTERM is killed.
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.05
    waited=$((waited + 1))
    if ((waited == 400)); then warn "$name did not stop on SIG$signal: SIGKILL"; kill -9 "$pid"; fi
  done
  local between=0
  if (($#)); then "$@" || between=$?; fi
  printf '=== %s: restarted by chaos.sh after SIG%s\n' "$(date -u +%FT%TZ)" "$signal" >>"$logfile"
  # exec: the pid recorded is the process itself (no wrapper left behind).
  (cd "$cwd" && exec env -i "${envs[@]}" "${argv[@]}") </dev/null >>"$logfile" 2>&1 &
  local new=$!
  sleep 0.2
  printf '%s\n%s\n%s\n' "$new" "$(proc_starttime "$new")" "$logfile" >"$pidfile"
  log "SIG$signal $name (pid $pid), restarted as pid $new"
  return "$between"
}

# Why: a read model must equal its rebuild from its topic. Run while the
# sinks are stopped (a rebuild refuses a live group). Usage: compare_rebuilds
compare_rebuilds() {
  local sink status=0
  for sink in $SINKS_TO_REBUILD; do
    if "$BIN/checkoutctl" rebuild "$sink" --compare >>"$CHAOS_DIR/rebuild.log" 2>&1; then
      log "PASS  $sink equals its rebuild"
    else
      log "FAIL  $sink: $(grep -E 'differs|Error' "$CHAOS_DIR/rebuild.log" | tail -n 1)"
      status=1
    fi
  done
  return "$status"
}
# Every sink of `sinks all` (the notification worker's sent-log records
# emails sent, not a topic: it has no rebuild).
SINKS_TO_REBUILD="carts internships fx-rates coupons orders coupon-usage enrollments support-cases
  invoices analytics-carts analytics-orders analytics-enrollments analytics-coupons"

# Why: Postgres is Debian's cluster (or the private one run.sh started):
# an immediate stop is its SIGKILL (no checkpoint, crash recovery on start).
restart_postgres() {
  local host port version cluster
  IFS=$'\t' read -r host port _ _ < <(pg_url_parts "$DATABASE_URL")
  # The Debian cluster that serves DATABASE_URL's port, not any cluster.
  read -r version cluster < <(pg_lsclusters --no-header 2>/dev/null | awk -v p="$port" '$3 == p {print $1, $2; exit}')
  if [[ -z "${version:-}" ]] || ! is_local_pg "$host"; then
    warn "postgres at $host:$port is not a local Debian cluster: not killed (this kill is not counted)"
    return 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" stop -m immediate || return 1
  sleep 1
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start -o "$PG_SERVER_OPTIONS" || die "postgres $version/$cluster did not start again"
  log "postgres $version/$cluster (port $port): stopped immediately (no checkpoint) and started again"
}

is_local_pg() { [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == ::1 ]]; }

step "load: $BUYERS buyers for $DURATION s (ledger $CHAOS_DIR/ledger.txt)"
ensure_dev_secrets "$LOCAL_DIR/run/secrets.env"
"$BIN/checkoutctl" bench --journey --url http://127.0.0.1:8080 --simulator http://127.0.0.1:8090 \
  --buyers "$BUYERS" --seconds "$DURATION" --svg "$CHAOS_DIR/journey.svg" --limited-coupon "$LIMITED_USES" \
  --refund-every 6 --ledger "$CHAOS_DIR/ledger.txt" >"$CHAOS_DIR/load.log" 2>&1 &
LOAD_PID=$!

# The services a kill may hit; the simulator is the outside world (its
# sessions live in its memory), so it is spared.
mapfile -t victims < <(find "$PIDS" -name '*.pid' -printf '%f\n' | sed 's/\.pid$//' |
  grep -v -E -e '^kafka(-[0-9]+)?$' -e '^gateway-simulator$' -e '^postgres' | sort)
# One node (`kafka`), or three (`kafka-1`…`kafka-3` with KAFKA_NODES=3): one
# of them is killed, never two at once.
mapfile -t brokers < <(find "$PIDS" -name 'kafka*.pid' -printf '%f\n' | sed 's/\.pid$//' | sort)
log "victims: ${victims[*]}; brokers: ${brokers[*]}"
kills=0
infra_done=()
end=$((SECONDS + DURATION - 5))
sleep 8 # let the load get going
while ((SECONDS < end)) && kill -0 "$LOAD_PID" 2>/dev/null; do
  if ((KILL_INFRA)) && ((kills == BROKER_AT)) && [[ ! " ${infra_done[*]} " =~ " kafka " ]]; then
    # A broker this stack reused (not started by run.sh) has no pid file.
    ((${#brokers[@]})) || die "no broker pid file in $PIDS: the broker was not started by run.sh (KILL_INFRA=0 spares it)"
    kill_and_restart "${brokers[$((RANDOM % ${#brokers[@]}))]}" && kills=$((kills + 1))
    infra_done+=(kafka)
    sleep 10
  elif ((KILL_INFRA)) && ((kills == POSTGRES_AT)) && [[ ! " ${infra_done[*]} " =~ " postgres " ]]; then
    restart_postgres && kills=$((kills + 1))
    infra_done+=(postgres)
    sleep 5
  else
    victim="${victims[$((RANDOM % ${#victims[@]}))]}"
    kill_and_restart "$victim" && kills=$((kills + 1))
  fi
  sleep "$KILL_EVERY"
done
log "$kills kills; waiting for the load to end"
wait "$LOAD_PID" || warn "the load ended with status $?"
tail -n 40 "$CHAOS_DIR/load.log"

# Every process a kill restarted is up at the end: one that never came back
# would only stop new journeys, and the ledger checks would still pass.
not_running=()
for pidfile in "$PIDS"/*.pid; do
  pidfile_alive "$pidfile" >/dev/null || not_running+=("$(basename "$pidfile" .pid)")
done

step "after the faults: the README's tour on the same stack (scripts/tour.sh)"
# Journeys must still complete once the faults stop: a purchase paid through
# each gateway, end to end.
tour_failed=0
PROFILE_DIR="$(basename "$BIN")" bash scripts/tour.sh >"$CHAOS_DIR/tour.log" 2>&1 || {
  tour_failed=1
  tail -n 20 "$CHAOS_DIR/tour.log"
}

step "ledger checks"
[[ -s "$CHAOS_DIR/ledger.txt" ]] || die "the load wrote no ledger"
# The ledger: each placement the load sent, "placed" or "paid" when the
# ingress accepted it, "unanswered" when its answer was lost (the order
# token is derived from the cart, so it is known all the same); a paid
# order an admin refunded is "refunded", or "refund-unanswered" when the
# refund request's answer was lost.
tokens() { awk -v want="$1" '$2 ~ want {printf "%s\x27%s\x27", (n++?",":""), $1}' "$CHAOS_DIR/ledger.txt"; }
all="$(tokens '^(placed|paid|refunded|refund-unanswered)$')"
sent="$(tokens '.')"
paid="$(tokens '^paid$')"
unpaid="$(tokens '^(unanswered|placed)$')"
refunded="$(tokens '^refunded$')"
refund_unanswered="$(tokens '^refund-unanswered$')"
paid_any="$(tokens '^(paid|refunded|refund-unanswered)$')"
q() { PGOPTIONS="-c search_path=${DATABASE_SCHEMA:-public}" psql "$DATABASE_URL" -Atqc "$1"; }
arr() { if [[ -n "$1" ]]; then printf 'ARRAY[%s]::text[]' "$1"; else printf "'{}'::text[]"; fi; }
missing_sql="SELECT count(*) FROM unnest($(arr "$all")) t(tok) LEFT JOIN orders o ON o.order_token = t.tok WHERE o.order_token IS NULL"
pending_sql="SELECT count(*) FROM orders WHERE order_token = ANY($(arr "$sent")) AND status = 'pending'"
unpaid_paid_sql="SELECT count(*) FROM unnest($(arr "$paid")) t(tok) LEFT JOIN orders o ON o.order_token = t.tok WHERE o.status IS DISTINCT FROM 'paid'"
paid_not_sql="SELECT count(*) FROM orders WHERE order_token = ANY($(arr "$unpaid")) AND status IN ('paid', 'refunded')"
refunded_sql="SELECT count(*) FROM unnest($(arr "$refunded")) t(tok) LEFT JOIN orders o ON o.order_token = t.tok WHERE o.status IS DISTINCT FROM 'refunded'"
refund_either_sql="SELECT count(*) FROM unnest($(arr "$refund_unanswered")) t(tok) LEFT JOIN orders o ON o.order_token = t.tok WHERE o.status IS NULL OR o.status NOT IN ('paid', 'refunded')"
# A paid order has an active enrollment per line; a refunded one none.
enrol_sql="SELECT count(*) FROM orders o WHERE o.order_token = ANY($(arr "$paid_any")) AND
  (SELECT count(*) FROM enrollments e WHERE e.order_token = o.order_token AND e.status = 'active')
  <> CASE o.status WHEN 'refunded' THEN 0 ELSE jsonb_array_length(o.placed->'lines') END"
twice_sql="SELECT count(*) FROM (SELECT order_token, internship_id FROM enrollments
  WHERE order_token = ANY($(arr "$all")) GROUP BY 1, 2 HAVING count(*) > 1) d"
# Every order PAID or REFUNDED has its tax invoice, every REFUNDED one its
# credit note against it; no other order has either.
uninvoiced_sql="SELECT count(*) FROM orders o WHERE o.status IN ('paid', 'refunded') AND NOT EXISTS
  (SELECT 1 FROM invoices i WHERE i.order_token = o.order_token AND i.kind = 'tax_invoice')"
uncredited_sql="SELECT count(*) FROM orders o WHERE o.status = 'refunded' AND NOT EXISTS
  (SELECT 1 FROM invoices c JOIN invoices i ON i.order_token = c.order_token AND i.kind = 'tax_invoice'
   WHERE c.order_token = o.order_token AND c.kind = 'credit_note' AND c.against_number = i.number)"
stray_invoice_sql="SELECT count(*) FROM invoices i LEFT JOIN orders o ON o.order_token = i.order_token
  WHERE o.status IS NULL OR o.status NOT IN ('paid', 'refunded') OR (i.kind = 'credit_note' AND o.status <> 'refunded')"
# The pipeline drains after the load: up to 120 s for everything to land.
deadline=$((SECONDS + 120))
while :; do
  m="$(q "$missing_sql")" p="$(q "$unpaid_paid_sql")" e="$(q "$enrol_sql")" r="$(q "$refunded_sql")"
  i="$(q "$uninvoiced_sql")" c="$(q "$uncredited_sql")"
  if [[ "$m$p$e$r$i$c" == "000000" ]] || ((SECONDS > deadline)); then break; fi
  sleep 2
done
# The limited coupon: its committed uses against the paid orders carrying
# it (the ledger's third column), and its limit.
limited="$(awk '$3 ~ /^LIMIT-/ {print $3; exit}' "$CHAOS_DIR/ledger.txt")"
limited_demand="$(awk '$3 ~ /^LIMIT-/' "$CHAOS_DIR/ledger.txt" | wc -l)"
if [[ -n "$limited" ]]; then
  limited_uses="$(q "SELECT coalesce((SELECT committed FROM coupon_usage WHERE code = '$limited'), 0)")"
  # A refund gives the money back, not the coupon's use.
  limited_paid="$(q "SELECT count(*) FROM orders WHERE status IN ('paid', 'refunded') AND coupons @> '[{\"code\": \"$limited\"}]'::jsonb")"
fi
dead="$(bash scripts/kafka get-offsets --topic "${TOPIC_PREFIX:-}dead-letters" 2>/dev/null |
  awk -F: '{s+=$3} END {print s+0}')"
accepted="$(awk '$2!="unanswered"' "$CHAOS_DIR/ledger.txt" | wc -l)"
unanswered="$(awk '$2=="unanswered"' "$CHAOS_DIR/ledger.txt" | wc -l)"
# Each order's outcome (paid, failed, expired, refunded) is on order.events
# once: a duplicate that a rebuild would reproduce shows only here.
outcomes="$("$BIN/checkoutctl" outcomes 2>>"$CHAOS_DIR/outcomes.log" | tee -a "$CHAOS_DIR/outcomes.log" | tail -n 1)"
repeated_outcomes="$(sed -n 's/^outcomes: .* \([0-9][0-9]*\) repeated$/\1/p' <<<"$outcomes")"
# The sales register: every series 1..N, each order's documents once.
register="$("$BIN/checkoutctl" invoices 2>>"$CHAOS_DIR/invoices.log" | tee -a "$CHAOS_DIR/invoices.log" | tail -n 1)"
register_problems="$(sed -n 's/^invoices: .* \([0-9][0-9]*\) problems$/\1/p' <<<"$register")"
# Each email is sent once: one file per Message-ID among those this run's
# stack wrote (the file transport; a duplicate send is a second file).
repeated_emails="$(find "${NOTIFY_FILE_DIR:-$LOCAL_DIR/mail}" -name '*.eml' -newer "$CHAOS_DIR/started" -print0 2>/dev/null |
  xargs -0 -r grep -h -i -m1 '^Message-ID:' | sort | uniq -d | wc -l)"
paid_n="$(awk '$2 ~ /^(paid|refunded|refund-unanswered)$/' "$CHAOS_DIR/ledger.txt" | wc -l)"
refunded_n="$(awk '$2=="refunded"' "$CHAOS_DIR/ledger.txt" | wc -l)"
failures=0
check() {
  local what="$1" got="$2"
  if [[ "$got" == "0" ]]; then log "PASS  $what"; else log "FAIL  $what: $got"; failures=$((failures + 1)); fi
}
log "ledger: $accepted orders accepted ($unanswered more placements sent whose answer was lost), $paid_n paid at the gateway, $refunded_n of them refunded, $kills kills"
check "accepted orders missing from the orders table" "$(q "$missing_sql")"
check "placements, answered or not, left PENDING" "$(q "$pending_sql")"
check "orders paid at the gateway but not PAID" "$(q "$unpaid_paid_sql")"
check "orders PAID without a payment" "$(q "$paid_not_sql")"
check "refunds accepted but the order not REFUNDED" "$(q "$refunded_sql")"
check "refunds whose answer was lost, the order neither PAID nor REFUNDED" "$(q "$refund_either_sql")"
check "paid orders without one active enrollment per line, refunded ones with any" "$(q "$enrol_sql")"
check "enrollments of one order and internship twice" "$(q "$twice_sql")"
log "sales register: $register ($(q "SELECT string_agg(series || ' 1..' || n, ', ') FROM (SELECT series, count(*) n FROM invoices GROUP BY 1 ORDER BY 1) s"))"
check "paid or refunded orders without their tax invoice" "$(q "$uninvoiced_sql")"
check "refunded orders without a credit note against their invoice" "$(q "$uncredited_sql")"
check "documents of orders never paid, credit notes of orders not refunded" "$(q "$stray_invoice_sql")"
check "invoice series not exactly 1..N, or an order's document twice ($register)" "${register_problems:-unreadable}"
if [[ -n "$limited" ]]; then
  log "limited coupon $limited: $limited_demand orders placed with it, $limited_paid paid, $limited_uses uses counted (limit $LIMITED_USES)"
  check "limited coupon: uses counted minus paid orders carrying it" "$((limited_uses - limited_paid))"
  check "limited coupon: uses beyond its limit" "$((limited_uses > LIMITED_USES ? limited_uses - LIMITED_USES : 0))"
else
  log "limited coupon: no order was placed with it"
fi
check "records in the dead-letter topic" "$dead"
check "order outcomes written to order.events more than once ($outcomes)" "${repeated_outcomes:-unreadable}"
check "emails sent more than once (one Message-ID, two files)" "$repeated_emails"
check "processes not running at the end (${not_running[*]:-none})" "${#not_running[@]}"
check "the tour after the faults (see $CHAOS_DIR/tour.log)" "$tour_failed"
# Whatever is still in flight lands first: the rebuild compares against
# tables that have read their topics to the end.
sleep 10
step "read models against their rebuilds (sinks stopped meanwhile)"
rebuilt=0
kill_and_restart sinks TERM compare_rebuilds || rebuilt=1
check "read models differing from their rebuild (see $CHAOS_DIR/rebuild.log)" "$rebuilt"
((kills >= MIN_KILLS)) || { warn "$kills kills landed, fewer than $MIN_KILLS"; failures=$((failures + 1)); }
if ((failures)); then
  die "$failures check(s) failed; logs: $LOCAL_DIR/run/logs, load: $CHAOS_DIR/load.log"
fi
log "all checks passed ($CHAOS_DIR)"
if ((started_here)); then drop_run_state "$TOPIC_PREFIX" "$DATABASE_SCHEMA"; fi
