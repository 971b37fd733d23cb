#!/usr/bin/env bash
# The checkout benchmark: starts the whole stack (scripts/run.sh --detach,
# release build unless PROFILE=dev) unless an ingress already answers on
# 127.0.0.1:8080, runs `checkoutctl bench` against it, and stops what it
# started (a stack it starts runs on topics and a schema of its own,
# TOPIC_PREFIX/DATABASE_SCHEMA bench<time>, dropped after a run that
# succeeded unless KEEP_STATE=1). Loopback only. A stack it starts runs
# with the per-caller and webhook rate limits lifted (every simulated
# shopper, and the simulator, share one IP).
#
#   scripts/bench.sh                          # 200 sessions for 30 s
#   SESSIONS=1000 SECONDS_=60 scripts/bench.sh
#   WARMUP=10 scripts/bench.sh                # drop the first 10 s (journey too)
#   scripts/bench.sh journey                  # 50 buyers, cart → enrollment, 30 s
#   BUYERS=200 SECONDS_=60 scripts/bench.sh journey
#   BUYERS=10000 PACE=3-30 SECONDS_=300 scripts/bench.sh journey   # paced sessions
#
# The journey run then measures what bounds it: the broker's own produce →
# consume round trip (Kafka's EndToEndLatency, acks=all, one record at a
# time), and prints the CPU seconds each process used (from /proc).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

PROFILE="${PROFILE:-release}"
SESSIONS="${SESSIONS:-200}"
DURATION="${SECONDS_:-30}"
started_here=0
if ! http_ok "http://127.0.0.1:9100/readyz"; then
  # Topics and a Postgres schema of its own (left for inspection): every
  # run starts from empty state, so runs compare whatever earlier runs left
  # (restores and a coupon's usage grow with it).
  stamp="$(date +%Y%m%d%H%M%S)"
  export TOPIC_PREFIX="${TOPIC_PREFIX:-bench$stamp.}" DATABASE_SCHEMA="${DATABASE_SCHEMA:-bench_$stamp}"
  step "start the stack ($PROFILE; topics $TOPIC_PREFIX*, schema $DATABASE_SCHEMA)"
  # Every simulated shopper comes from 127.0.0.1: the per-IP limit would
  # measure the limiter, not the pipeline.
  RATE_LIMIT_API="${RATE_LIMIT_API:-1000000/1000000}" RATE_LIMIT_WEBHOOKS="${RATE_LIMIT_WEBHOOKS:-1000000/1000000}" \
    PROFILE="$PROFILE" bash scripts/run.sh --detach
  started_here=1
fi
if [[ "$PROFILE" == release ]]; then BIN="$(cargo_target_dir)/release"; else BIN="$(cargo_target_dir)/debug"; fi
status=0
if [[ "${1:-}" == journey ]]; then
  BUYERS="${BUYERS:-50}"
  step "journey bench: $BUYERS buyers, $DURATION s"
  ensure_dev_secrets "$LOCAL_DIR/run/secrets.env"
  "$BIN/checkoutctl" bench --journey --url http://127.0.0.1:8080 --simulator http://127.0.0.1:8090 \
    --buyers "$BUYERS" --seconds "$DURATION" --warmup-secs "${WARMUP:-0}" ${PACE:+--pace "$PACE"} --svg "$LOCAL_DIR/bench/journey-$(date +%Y%m%d-%H%M%S).svg" ||
    status=$?
  step "broker round trip (Kafka's EndToEndLatency: 2000 records of 512 bytes, acks=all)"
  bash scripts/kafka topics --create --if-not-exists --topic bench.e2e-latency --partitions 1 >/dev/null || true
  bash scripts/kafka e2e-latency bench.e2e-latency 2000 all 512 || warn "the broker round trip could not be measured"
else
  step "bench: $SESSIONS sessions, $DURATION s"
  "$BIN/checkoutctl" bench --url http://127.0.0.1:8080 --sessions "$SESSIONS" --seconds "$DURATION" \
    --warmup-secs "${WARMUP:-0}" || status=$?
fi
if ((started_here)); then
  # A failed run keeps its topics and schema for a look.
  if ((status == 0)); then drop_run_state "$TOPIC_PREFIX" "$DATABASE_SCHEMA"; fi
  bash scripts/run.sh stop
fi
exit "$status"
