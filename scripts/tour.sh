#!/usr/bin/env bash
# The README's tour, run: two whole purchases against a running stack
# (scripts/run.sh), each checked on the way, every call and answer printed.
#
#   scripts/tour.sh                 # against http://127.0.0.1:8080 and the simulator on :8090
#   API=http://host:8080 SIM=http://host:8090 scripts/tour.sh
#
# 0. An admin publishes a coupon, WELCOME10.
# 1. Asha, in Karnataka, buys a Rust internship in INR with the coupon: the
#    order is routed to Razorpay, she pays by UPI on the simulator, the
#    gateway's signed webhook marks it paid, she is enrolled and her GST
#    tax invoice (CGST + SGST) is numbered and downloads as PDF.
# 2. A US company buys three seats of a data internship in USD (a rate the
#    demo data publishes): routed to Stripe, paid by card, enrolled, invoiced
#    as an export; two seats are assigned to people by email.
#
# Tokens are signed with the development secret the run command generated
# (.local/run/secrets.env). Exits non-zero at the first answer that is not
# what a buyer should see.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

API="${API:-http://127.0.0.1:8080}"
SIM="${SIM:-http://127.0.0.1:8090}"
CTL="${CHECKOUTCTL:-$(cargo_target_dir)/${PROFILE_DIR:-release}/checkoutctl}"
[[ -x "$CTL" ]] || CTL="$(cargo_target_dir)/debug/checkoutctl"
[[ -x "$CTL" ]] || die "no checkoutctl binary (build with scripts/run.sh first)"
command -v jq >/dev/null || apt_install jq
command -v curl >/dev/null || apt_install curl
ensure_dev_secrets "$LOCAL_DIR/run/secrets.env"

# Why: one place that prints the call, sends it and fails on a non-2xx.
# Usage: call METHOD PATH_OR_URL [JSON] (extra headers in $HEADERS)
call() {
  local method="$1" url="$2" body="${3:-}" out code
  [[ "$url" == http* ]] || url="$API$url"
  printf '\n$ curl -X %s %s %s\n' "$method" "$url" "${body:+-d '$body'}" >&2
  local args=(-sS -X "$method" "$url" -H "authorization: Bearer $JWT" -H 'content-type: application/json'
    -H "x-correlation-id: tour-$$" -w '\n%{http_code}')
  for h in "${HEADERS[@]}"; do args+=(-H "$h"); done
  [[ -z "$body" ]] || args+=(-d "$body")
  out="$(curl "${args[@]}")"
  code="${out##*$'\n'}"
  out="${out%$'\n'*}"
  printf '→ %s %s\n' "$code" "$(jq -c . <<<"$out" 2>/dev/null | cut -c1-400)" >&2
  [[ "$code" == 2* ]] || die "$method $url answered $code"
  printf '%s' "$out"
}
HEADERS=()

# Why: the long-polls of the tour, each bounded: the order's payment
# session, the order's enrollment, the order paid.
# Usage: session_of ORDER   (prints the gateway session id)
session_of() {
  local order="$1" o deadline=$((SECONDS + 30))
  while :; do
    HEADERS=("prefer: wait=5")
    o="$(call GET "/api/v1/order/$order")"
    HEADERS=()
    [[ "$(jq -r .status <<<"$o")" != failed ]] || die "order $order failed: $o"
    if jq -e '.attempts[0].session_id' <<<"$o" >/dev/null; then
      log "payment session $(jq -r '.attempts[0].session_id' <<<"$o") at $(jq -r '.attempts[0].gateway' <<<"$o")"
      jq -r '.attempts[0].session_id' <<<"$o"
      return
    fi
    ((SECONDS < deadline)) || die "no payment session for $order within 30 s"
    sleep 1
  done
}

# Usage: enrolled ORDER  (waits for the order's enrollments, prints them)
enrolled() {
  local order="$1" o deadline=$((SECONDS + 30))
  while :; do
    HEADERS=("prefer: wait=10")
    o="$(call GET "/api/v1/me/enrollments?order=$order")"
    HEADERS=()
    if [[ "$(jq --arg o "$order" '[.enrollments[] | select(.order_token == $o)] | length' <<<"$o")" -ge 1 ]]; then
      printf '%s' "$o"
      return
    fi
    ((SECONDS < deadline)) || die "no enrollment for $order within 30 s of paying"
  done
}

# Usage: invoiced ORDER SUPPLY  (waits for the order's tax invoice, checks
# its supply type, downloads its PDF into a temporary file and checks it is one)
invoiced() {
  local order="$1" supply="$2" docs deadline=$((SECONDS + 30)) pdf
  while :; do
    docs="$(call GET "/api/v1/orders/$order/invoices")"
    if jq -e '.documents[0].number' <<<"$docs" >/dev/null; then break; fi
    ((SECONDS < deadline)) || die "no tax invoice for $order within 30 s of paying"
    sleep 1
  done
  [[ "$(jq -r '.documents[0].document.supply' <<<"$docs")" == "$supply" ]] ||
    die "the invoice of $order is not $supply: $docs"
  pdf="$(mktemp)"
  curl -fsS "$API$(jq -r '.documents[0].pdf' <<<"$docs")" -H "authorization: Bearer $JWT" -o "$pdf" ||
    die "the invoice's PDF did not download"
  [[ "$(head -c 5 "$pdf")" == "%PDF-" ]] || die "the invoice's PDF is not a PDF"
  log "tax invoice $(jq -r '.documents[0].number' <<<"$docs") ($supply), PDF of $(wc -c <"$pdf") bytes"
  rm -f "$pdf"
}

# Usage: paid_through ORDER GATEWAY
paid_through() {
  local order="$1" gateway="$2" o deadline=$((SECONDS + 30))
  while :; do
    o="$(call GET "/api/v1/order/$order")"
    if [[ "$(jq -r .status <<<"$o")" == paid ]]; then
      [[ "$(jq -r '.attempts[0].gateway' <<<"$o")" == "$gateway" ]] ||
        die "order $order was paid through $(jq -r '.attempts[0].gateway' <<<"$o"), not $gateway"
      log "order $order paid through $gateway: $(jq -r '"\(.total_minor) minor units of \(.currency)"' <<<"$o")"
      return
    fi
    ((SECONDS < deadline)) || die "order $order is $(jq -r .status <<<"$o"), not paid, 30 s after paying"
    sleep 1
  done
}

step "an admin publishes a coupon: 10 % off"
JWT="$("$CTL" token --sub ops --role admin)"
call PUT /api/v1/admin/coupons/WELCOME10 '{"name":"Welcome 10 %","kind":"percentage","percent":"0.10"}' >/dev/null

step "1. Asha, in Karnataka, pays in INR through Razorpay"
JWT="$("$CTL" token --sub "asha-$RANDOM")"
CART="$(call POST /api/v1/cart '{"items":[{"internship_id":"rust-backend-2027","quantity":1}]}' | jq -r .cart_token)"
call POST "/api/v1/cart/$CART/coupon" '{"code":"WELCOME10"}' >/dev/null
V="$(call PUT "/api/v1/cart/$CART/buyer" '{"country":"IN","state":"KA"}' | jq .version)"
HEADERS=("prefer: wait=10")
o="$(call GET "/api/v1/cart/$CART?version=$V")"
HEADERS=()
[[ "$(jq -r .stale <<<"$o")" != true ]] || die "the cart was still stale after 10 s"
[[ "$(jq -r .currency <<<"$o")" == INR ]] || die "Asha's cart is not in INR"
(($(jq .discount_total_minor <<<"$o") > 0)) || die "WELCOME10 took nothing off"
log "cart: $(jq -c '{currency, subtotal_minor, discount_total_minor, tax_total_minor, total_minor}' <<<"$o")"
ORDER="$(call POST /api/v1/order "{\"cart_token\":\"$CART\",\"email\":\"asha@example.com\"}" | jq -r .order_token)"
SESSION="$(session_of "$ORDER")"
call POST "$SIM/sim/sessions/$SESSION/pay" '{"method":"upi"}' >/dev/null
enrolled "$ORDER" >/dev/null
paid_through "$ORDER" razorpay
invoiced "$ORDER" INTRA_STATE

step "2. A US company buys three seats in USD through Stripe and hands two out"
JWT="$("$CTL" token --sub "acme-$RANDOM")"
CART="$(call POST /api/v1/cart '{"items":[{"internship_id":"data-science-2027","quantity":3}]}' | jq -r .cart_token)"
V="$(call PUT "/api/v1/cart/$CART/buyer" '{"country":"US","currency":"USD"}' | jq .version)"
HEADERS=("prefer: wait=10")
o="$(call GET "/api/v1/cart/$CART?version=$V")"
HEADERS=()
[[ "$(jq -r .stale <<<"$o")" != true ]] || die "the cart was still stale after 10 s"
[[ "$(jq -r .currency <<<"$o")" == USD ]] || die "the company's cart is not in USD: $o"
ORDER="$(call POST /api/v1/order "{\"cart_token\":\"$CART\",\"email\":\"billing@acme.example\"}" | jq -r .order_token)"
SESSION="$(session_of "$ORDER")"
call POST "$SIM/sim/sessions/$SESSION/pay" '{"method":"card"}' >/dev/null
enrolled "$ORDER" >/dev/null
paid_through "$ORDER" stripe
invoiced "$ORDER" EXPORT
call POST "/api/v1/orders/$ORDER/seats/assign" \
  '{"internship_id":"data-science-2027","emails":["ana@example.com","raj@example.com"]}' >/dev/null
_step_close
log "tour done: one purchase paid through Razorpay in INR, one through Stripe in USD with two seats assigned"
