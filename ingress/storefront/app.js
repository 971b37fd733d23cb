// The InternHub storefront: a client of the public API (/api/v1) and
// nothing else. Hash routes: #/ catalog and cart, #/order/<token> an order
// waiting for its payment, #/orders, #/enrollments, #/admin.
//
// Every write sends an Idempotency-Key and answers with the version it
// made; the page then reads with ?version=N and `Prefer: wait`, so it shows
// what it wrote without polling. An error is shown as its message and
// suggested action, never as JSON.

const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $("#main");
const store = {
  get token() { return sessionStorage.getItem("ih.token") || ""; },
  set token(v) { v ? sessionStorage.setItem("ih.token", v) : sessionStorage.removeItem("ih.token"); },
  get cart() { return localStorage.getItem("ih.cart") || ""; },
  set cart(v) { v ? localStorage.setItem("ih.cart", v) : localStorage.removeItem("ih.cart"); },
};
let settings = { razorpay_checkout_url: null };

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the request failed (${status})`);
    this.status = status;
    this.code = e.code;
    this.action = e.suggested_action || "";
    this.details = e.validation_messages || [];
  }
}

function key() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function api(method, path, body, { wait } = {}) {
  const headers = { accept: "application/json" };
  if (store.token) headers.authorization = `Bearer ${store.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["idempotency-key"] = key();
  if (wait) headers.prefer = `wait=${wait}`;
  const r = await fetch(`/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    // Through the CSSOM: the page's policy refuses style attributes.
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const exponents = {};
function money(minor, currency) {
  if (minor === null || minor === undefined) return "";
  const locale = currency === "INR" ? "en-IN" : "en-US";
  const f = new Intl.NumberFormat(locale, { style: "currency", currency });
  const exp = exponents[currency] ?? (exponents[currency] = f.resolvedOptions().maximumFractionDigits);
  return f.format(minor / 10 ** exp);
}

function notify(err) {
  const box = $("#notice");
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const message = err instanceof ApiError ? err.message : String(err.message || err);
  box.append(h("strong", { text: message }));
  if (err.details && err.details.length) box.append(h("ul", {}, err.details.map((d) => h("li", { text: d }))));
  if (err.action) box.append(h("span", { class: "action", text: err.action }));
  box.hidden = false;
}

function say(text) { $("#status").textContent = text; }

async function guarded(fn) {
  notify(null);
  try { await fn(); } catch (e) { notify(e); }
}

function badge(status) { return h("span", { class: `badge ${status}`, text: status.replace("_", " ") }); }

// ---------------------------------------------------------------- sign in

function who() {
  try {
    const claims = JSON.parse(atob(store.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { sub: claims.sub, admin: claims.role === "admin" };
  } catch { return null; }
}

function showSignedIn() {
  const me = store.token && who();
  $("#signin").hidden = !!me;
  $("#signedin").hidden = !me;
  $("#who").textContent = me ? `Signed in as ${me.sub}${me.admin ? " (admin)" : ""}` : "";
}

async function signIn(token) {
  store.token = token.trim();
  if (!who()) { store.token = ""; throw new Error("That is not a token: paste the output of `checkoutctl token --sub <you>`."); }
  // A guest cart joins the user's: attached, or merged into their cart.
  if (store.cart) {
    try {
      const r = await api("POST", `/cart/${store.cart}/auth/login`);
      store.cart = r.cart_token;
      say(r.merged ? "Your guest cart was merged into your cart." : "Your cart is now saved to your account.");
    } catch (e) {
      if (e.status === 404) store.cart = ""; else throw e;
    }
  }
}

// ---------------------------------------------------------------- catalog and cart

let catalog = [];
let cart = null;

async function loadCart(version) {
  if (!store.cart) { cart = null; return; }
  try {
    const q = version === undefined ? "" : `?version=${version}`;
    cart = await api("GET", `/cart/${store.cart}${q}`, undefined, { wait: 10 });
    if (cart.status !== "active") { store.cart = ""; cart = null; }
  } catch (e) {
    if (e.status === 404) { store.cart = ""; cart = null; } else throw e;
  }
}

// A write to the cart, then the cart as it made it; a refusal the cart
// processor recorded for this very write is shown as an error.
async function cartWrite(method, path, body) {
  const r = await api(method, path, body);
  await loadCart(r.version);
  const refused = cart && cart.last_rejection;
  if (refused && refused.command_id === r.command_id) {
    throw new ApiError(refused.status, refused);
  }
  return r;
}

async function addToCart(item, quantity, plan) {
  if (!store.cart) {
    const r = await api("POST", "/cart", { items: [{ internship_id: item, quantity }] });
    store.cart = r.cart_token;
    await loadCart(r.version);
  } else {
    await cartWrite("POST", `/cart/${store.cart}/items`, { internship_id: item, quantity });
  }
  if (plan) await cartWrite("PUT", `/cart/${store.cart}/plan/${plan}`);
  say(`Added to your cart.`);
}

function catalogCard(i) {
  const plans = i.billing_periods || [];
  const qty = h("input", { type: "number", min: "1", max: "100", value: "1", id: `qty-${i.internship_id}`, style: "width:5em" });
  const plan = plans.length
    ? h("select", { id: `plan-${i.internship_id}` },
      h("option", { value: "" , text: `Full programme — ${money(i.price_minor, i.currency)}` }),
      plans.map((p) => h("option", { value: p.plan_id, text: `${p.value} ${p.unit}${p.value > 1 ? "s" : ""} — ${money(p.price_minor, p.currency)}` })))
    : null;
  return h("article", { class: "card", "aria-labelledby": `t-${i.internship_id}` },
    h("h3", { id: `t-${i.internship_id}`, text: i.title }),
    h("p", { class: "muted", text: `${i.category} · ${money(i.price_minor, i.currency)}${i.tax_class === "exempt" ? " · GST exempt" : " + GST"}` }),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: qty.id, text: "Seats" }), qty),
      plan && h("div", {}, h("label", { for: plan.id, text: "Billing period" }), plan),
      h("button", {
        type: "button", "data-add": i.internship_id,
        onclick: () => guarded(async () => { await addToCart(i.internship_id, Number(qty.value), plan && plan.value); renderCart(); }),
      }, `Add ${i.title} to cart`)));
}

function breakdown(c) {
  const rows = [h("tr", {}, h("td", { text: "Subtotal" }), h("td", { class: "num", text: money(c.subtotal_minor, c.currency) }))];
  for (const d of c.discounts || []) {
    rows.push(h("tr", {}, h("td", { text: `Discount ${d.code || ""}` }), h("td", { class: "num", text: `− ${money(d.amount_minor, c.currency)}` })));
  }
  for (const t of c.taxes || []) {
    rows.push(h("tr", {}, h("td", { text: `${t.name} ${(Number(t.rate) * 100).toFixed(2).replace(/\.00$/, "")} %` }), h("td", { class: "num", text: money(t.amount_minor, t.currency || c.currency) })));
  }
  rows.push(h("tr", { class: "total" }, h("td", { text: "Total" }), h("td", { class: "num", "data-total": "", text: money(c.total_minor, c.currency) })));
  const table = h("table", { "aria-label": "Price breakdown" }, h("tbody", {}, rows));
  const fx = c.fx ? h("p", { class: "muted", "data-fx": "", text: `Prices converted from ${c.fx.base || "INR"} at ${c.fx.rate}${c.fx.as_of ? ` (rate of ${new Date(c.fx.as_of).toLocaleDateString()})` : ""}.` }) : null;
  return fx ? [table, fx] : [table];
}

function lineEditor(c, item) {
  const id = item.internship_id;
  const qty = h("input", { type: "number", min: "1", max: "100", value: String(item.quantity), id: `cq-${id}`, style: "width:5em" });
  const title = item.title + (item.plan_id ? ` (${item.plan_value} ${item.plan_unit}${item.plan_value > 1 ? "s" : ""})` : "");
  return h("li", { class: "card" },
    h("strong", { text: title }),
    h("div", { class: "muted", text: `${money(item.unit_price_minor, c.currency)} × ${item.quantity} = ${money(item.line_subtotal_minor, c.currency)}` }),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: qty.id, text: "Seats" }), qty),
      h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await cartWrite("PUT", `/cart/${store.cart}/items/${id}`, { quantity: Number(qty.value) }); renderCart(); }) }, `Update ${item.title}`),
      h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await cartWrite("DELETE", `/cart/${store.cart}/items/${id}`); renderCart(); }) }, `Remove ${item.title}`)));
}

const COUNTRIES = [["IN", "India"], ["US", "United States"], ["GB", "United Kingdom"], ["DE", "Germany"], ["SG", "Singapore"]];
const STATES = [["KA", "Karnataka"], ["MH", "Maharashtra"], ["DL", "Delhi"], ["TN", "Tamil Nadu"], ["TG", "Telangana"], ["WB", "West Bengal"]];
const CURRENCIES = ["INR", "USD", "EUR", "GBP"];

function buyerForm(c) {
  const b = c.buyer || {};
  const opt = (pairs, selected) => pairs.map(([v, t]) => h("option", { value: v, selected: v === selected, text: t }));
  const country = h("select", { id: "buyer-country" }, opt(COUNTRIES, b.country || "IN"));
  const state = h("select", { id: "buyer-state" }, h("option", { value: "", text: "—" }), opt(STATES, b.state || ""));
  const currency = h("select", { id: "buyer-currency" }, opt(CURRENCIES.map((x) => [x, x]), c.currency));
  const gstin = h("input", { id: "buyer-gstin", value: b.gstin || "", maxlength: "15", placeholder: "optional", style: "width:11em" });
  return h("form", {
    "aria-label": "Where you buy from",
    onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      const body = { country: country.value, currency: currency.value };
      if (country.value === "IN" && state.value) body.state = state.value;
      if (gstin.value.trim()) body.gstin = gstin.value.trim();
      await cartWrite("PUT", `/cart/${store.cart}/buyer`, body);
      renderCart();
    }); },
  }, h("div", { class: "row" },
    h("div", {}, h("label", { for: country.id, text: "Country" }), country),
    h("div", {}, h("label", { for: state.id, text: "State (India)" }), state),
    h("div", {}, h("label", { for: currency.id, text: "Currency" }), currency),
    h("div", {}, h("label", { for: gstin.id, text: "GSTIN" }), gstin),
    h("button", { type: "submit", class: "secondary" }, "Update location")));
}

async function couponsBlock(c) {
  const list = await api("GET", `/cart/${store.cart}/discounts`).catch(() => []);
  const code = h("input", { id: "coupon-code", autocomplete: "off", style: "width:10em" });
  const apply = (value) => guarded(async () => { await cartWrite("POST", `/cart/${store.cart}/coupon`, { code: value }); renderCart(); say(`Coupon ${value} applied.`); });
  return h("section", { "aria-labelledby": "coupons-h" },
    h("h3", { id: "coupons-h", text: "Coupons" }),
    (c.coupons || []).length ? h("ul", {}, c.coupons.map((k) => h("li", {}, `${k} applied `,
      h("button", { type: "button", class: "secondary", onclick: () => guarded(async () => { await cartWrite("DELETE", `/cart/${store.cart}/coupon/${k}`); renderCart(); }) }, `Remove ${k}`)))) : null,
    list.length ? h("ul", { "aria-label": "Available coupons" }, list.map((d) => h("li", {},
      h("strong", { text: d.code }), ` ${d.name} — `,
      d.applicable ? `saves ${money(d.discount_minor, c.currency)} ` : h("span", { class: "muted", text: `${d.reason} ` }),
      h("button", { type: "button", class: "secondary", onclick: () => apply(d.code) }, `Apply ${d.code}`)))) : null,
    h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); apply(code.value.trim().toUpperCase()); } },
      h("div", {}, h("label", { for: code.id, text: "Coupon code" }), code),
      h("button", { type: "submit" }, "Apply")));
}

let renders = 0;

// Built whole, then swapped in: a slower render started earlier never
// lands over a newer one.
async function renderCart() {
  const aside = $("#cart");
  if (!aside) return;
  const mine = ++renders;
  const heading = h("h2", { id: "cart-h", text: "Your cart" });
  if (!cart) { aside.replaceChildren(heading, h("p", { class: "muted", text: "Your cart is empty." })); return; }
  const c = cart;
  const coupons = await couponsBlock(c);
  if (mine !== renders) return;
  const email = h("input", { id: "checkout-email", type: "email", autocomplete: "email", placeholder: "you@example.com" });
  aside.replaceChildren(
    heading,
    h("ul", { style: "list-style:none;padding:0" }, c.items.map((i) => lineEditor(c, i))),
    buyerForm(c),
    ...breakdown(c),
    coupons,
    h("form", { "aria-label": "Checkout", onsubmit: (e) => { e.preventDefault(); guarded(() => checkout(email.value.trim())); } },
      h("label", { for: email.id, text: "Email for your receipt" }), email, " ",
      h("button", { type: "submit" }, "Checkout")),
    h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => guarded(share) }, "Share this cart"), h("span", { id: "share-link" })));
}

async function share() {
  const r = await api("POST", `/cart/${store.cart}/share`);
  $("#share-link").textContent = ` ${location.origin}/api/v1/cart/shared/${r.share_token}`;
}

async function checkout(email) {
  const body = { cart_token: store.cart, cart_version: cart.version };
  if (email) body.email = email;
  const r = await api("POST", "/order", body);
  store.cart = "";
  cart = null;
  location.hash = `#/order/${r.order_token}`;
}

async function viewCatalog() {
  catalog = await api("GET", "/internships");
  await loadCart();
  main().replaceChildren(h("div", { class: "grid" },
    h("section", { "aria-labelledby": "catalog-h" }, h("h1", { id: "catalog-h", text: "Internships" }), catalog.map(catalogCard)),
    h("aside", { id: "cart", "aria-labelledby": "cart-h" })));
  await renderCart();
}

// ---------------------------------------------------------------- order

function payUrl(attempt) {
  if (attempt.checkout_url) return attempt.checkout_url;
  if (attempt.gateway === "razorpay" && attempt.session_id && settings.razorpay_checkout_url) {
    return settings.razorpay_checkout_url.replace("{order_id}", encodeURIComponent(attempt.session_id));
  }
  return null;
}

// The order page being watched: a newer view (another page, a retry)
// replaces it, and the older loop stops at its next answer.
let watching = null;

async function viewOrder(token) {
  const mine = (watching = { token });
  let o = await api("GET", `/order/${token}?until=session`, undefined, { wait: 30 });
  for (;;) {
    if (watching !== mine) return;
    renderOrder(o);
    if (o.status === "paid" || o.status === "refunded") break;
    // One long request at a time: answered as soon as the order changes.
    o = await api("GET", `/order/${token}?version=${o.version + 1}`, undefined, { wait: 30 });
  }
  const list = await api("GET", `/me/enrollments?order=${token}`, undefined, { wait: 30 }).catch(() => null);
  if (watching === mine && list) renderOrder(o, list.enrollments);
  const docs = await taxDocuments(o);
  if (watching === mine && docs.length) renderOrder(o, list && list.enrollments, docs);
}

// The order's GST documents: issued by the pipeline a moment after the
// payment (or the refund), so asked a few times, then given up quietly.
async function taxDocuments(o) {
  const want = o.status === "refunded" ? 2 : 1;
  let docs = [];
  for (let i = 0; i < 20; i++) {
    const r = await api("GET", `/orders/${o.order_token}/invoices`).catch(() => null);
    docs = (r && r.documents) || [];
    if (docs.length >= want) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  return docs;
}

async function downloadPdf(doc) {
  const r = await fetch(doc.pdf, { headers: store.token ? { authorization: `Bearer ${store.token}` } : {} });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const a = h("a", { href: URL.createObjectURL(await r.blob()), download: `${doc.number.replaceAll("/", "-")}.pdf` });
  document.body.append(a); a.click(); a.remove();
}

function documentsList(docs) {
  return h("ul", { class: "plain" }, docs.map((d) => h("li", {},
    h("button", { type: "button", class: "secondary", onclick: () => guarded(() => downloadPdf(d)) },
      `Download ${d.kind === "credit_note" ? "credit note" : "tax invoice"} ${d.number} (PDF)`))));
}

function renderOrder(o, enrollments, docs) {
  const attempt = o.attempts[o.attempts.length - 1];
  const url = attempt && attempt.status === "open" ? payUrl(attempt) : null;
  const parts = [
    h("h1", {}, "Order ", badge(o.status)),
    h("p", { class: "muted", text: `Order ${o.order_token}` }),
    h("table", { "aria-label": "Order lines" }, h("tbody", {}, o.placed.lines.map((l) =>
      h("tr", {}, h("td", { text: `${l.title} × ${l.quantity}` }), h("td", { class: "num", text: money(l.line_total.amount_minor, l.line_total.currency) }))),
      h("tr", { class: "total" }, h("td", { text: "Total" }), h("td", { class: "num", text: money(o.total_minor, o.currency) })))),
  ];
  if (o.status === "awaiting_payment" && url) {
    parts.push(h("p", {},
      h("a", { href: url, target: "gateway", rel: "noopener", class: "pay", role: "button", id: "pay" }, `Pay ${money(o.total_minor, o.currency)} with ${attempt.gateway === "stripe" ? "Stripe" : "Razorpay"}`),
      h("span", { class: "muted", text: " — this page updates when the payment is confirmed." })));
  } else if (o.status === "awaiting_payment" || o.status === "pending") {
    parts.push(h("p", { class: "muted", text: "Opening the payment page…" }));
  }
  if (o.status === "failed" || o.status === "expired") {
    parts.push(h("p", {}, `The payment ${o.status === "failed" ? "did not go through" : "expired"}. `,
      h("button", { type: "button", id: "retry", onclick: () => guarded(async () => {
        const r = await api("POST", `/order/${o.order_token}/pay`);
        await api("GET", `/order/${o.order_token}?version=${r.version}`, undefined, { wait: 30 });
        viewOrder(o.order_token);
      }) }, "Try again")));
  }
  if (o.status === "paid") parts.push(h("p", { role: "status", text: "Paid — thank you." }));
  if (enrollments) {
    parts.push(h("h2", { text: "Enrollments" }), enrollmentsTable(enrollments));
  }
  if (docs && docs.length) {
    parts.push(h("h2", { text: "Tax documents" }), documentsList(docs));
  }
  main().replaceChildren(...parts);
}

// ---------------------------------------------------------------- my orders, my enrollments

async function viewOrders() {
  if (!store.token) { main().replaceChildren(h("p", { text: "Sign in to see your orders." })); return; }
  const r = await api("GET", "/me/orders");
  const orders = r.orders || r;
  main().replaceChildren(h("h1", { text: "My orders" }),
    orders.length ? h("table", {}, h("tbody", {}, orders.map((o) => h("tr", {},
      h("td", {}, h("a", { href: `#/order/${o.order_token}`, text: o.order_token.slice(0, 8) })),
      h("td", {}, badge(o.status)),
      h("td", { class: "num", text: money(o.total_minor, o.currency) }))))) : h("p", { text: "No orders yet." }));
}

function enrollmentsTable(list) {
  return h("table", {}, h("tbody", {}, list.map((e) => h("tr", {},
    h("td", { text: e.title }),
    h("td", { text: e.seats > 1 ? `${e.seats} seats, ${e.seats_left} left` : (e.email || "") }),
    h("td", {}, badge(e.status))))));
}

async function viewEnrollments() {
  if (!store.token) { main().replaceChildren(h("p", { text: "Sign in to see your enrollments." })); return; }
  const r = await api("GET", "/me/enrollments");
  const blocks = r.enrollments.filter((e) => e.seats > 1 && e.status === "active");
  main().replaceChildren(h("h1", { text: "My enrollments" }), enrollmentsTable(r.enrollments), ...blocks.map(seatForm));
}

function seatForm(block) {
  const id = `seats-${block.enrollment_id}`;
  const emails = h("textarea", { id, rows: "3", cols: "40", placeholder: "one address per line" });
  return h("section", { class: "card", "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h`, text: `Assign seats: ${block.title} (${block.seats_left} left)` }),
    h("form", { onsubmit: (e) => { e.preventDefault(); guarded(async () => {
      const list = emails.value.split(/[\s,;]+/).filter(Boolean);
      await api("POST", `/orders/${block.order_token}/seats/assign`, { internship_id: block.internship_id, emails: list });
      say(`${list.length} seat(s) assigned.`);
      for (let i = 0; i < 20; i++) {
        const r = await api("GET", "/me/enrollments");
        const b = r.enrollments.find((x) => x.enrollment_id === block.enrollment_id);
        if (!b || b.seats_left !== block.seats_left) break;
        await new Promise((res) => setTimeout(res, 250));
      }
      viewEnrollments();
    }); } },
    h("label", { for: id, text: "Email addresses" }), emails, " ",
    h("button", { type: "submit" }, "Assign seats")),
    h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => guarded(() => seatReport(block.order_token)) }, "Download the seat report (CSV)")));
}

async function seatReport(order) {
  const r = await fetch(`/api/v1/orders/${order}/seats?format=csv`, { headers: { authorization: `Bearer ${store.token}` } });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const a = h("a", { href: URL.createObjectURL(await r.blob()), download: `seats-${order}.csv` });
  document.body.append(a); a.click(); a.remove();
}

// ---------------------------------------------------------------- admin

async function viewAdmin() {
  const me = who();
  if (!me || !me.admin) { main().replaceChildren(h("p", { text: "The dashboard is for admins: sign in with an admin token." })); return; }
  const a = await api("GET", "/admin/analytics");
  const f = a.funnel;
  const steps = [["Carts", f.carts_created], ["Orders placed", f.orders_placed], ["Paid", f.orders_paid], ["Enrolled", f.orders_enrolled]];
  const top = Math.max(1, ...steps.map((s) => s[1]));
  main().replaceChildren(h("h1", { text: "Dashboard" }),
    h("h2", { text: "Funnel" }),
    h("table", { "aria-label": "Funnel" }, h("tbody", {}, steps.map(([n, v]) => h("tr", {},
      h("td", { text: n }), h("td", { class: "num", text: String(v) }),
      h("td", { style: "width:60%" }, h("div", { class: "bar", style: `width:${(100 * v) / top}%` })))))),
    h("h2", { text: "Revenue (last 14 days)" }),
    h("table", {}, h("tbody", {}, a.revenue.map((d) => h("tr", {},
      h("td", { text: d.day }), h("td", { text: `${d.paid_orders} paid` }), h("td", { class: "num", text: money(d.gross_minor, d.currency) }))))),
    h("h2", { text: "Payment success" }),
    h("table", {}, h("tbody", {}, a.payments.map((p) => h("tr", {},
      h("td", { text: `${p.gateway} · ${p.method}` }), h("td", { text: `${p.paid} paid, ${p.failed} failed, ${p.expired} expired` }),
      h("td", { class: "num", text: p.success_rate === null ? "—" : `${(Number(p.success_rate) * 100).toFixed(1)} %` }))))),
    h("p", { class: "muted" }, "Latency, lag, dead letters and the gateways' breakers are on Prometheus and Grafana."));
}

// ---------------------------------------------------------------- router

async function route() {
  const hash = location.hash || "#/";
  watching = null;
  await guarded(async () => {
    const order = hash.match(/^#\/order\/([0-9a-f]{32})$/);
    if (order) await viewOrder(order[1]);
    else if (hash === "#/orders") await viewOrders();
    else if (hash === "#/enrollments") await viewEnrollments();
    else if (hash === "#/admin") await viewAdmin();
    else await viewCatalog();
  });
  main().focus();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  settings = await fetch("/storefront.json").then((r) => r.json()).catch(() => settings);
  $("#signin").addEventListener("submit", (e) => {
    e.preventDefault();
    guarded(async () => {
      await signIn($("#token").value);
      $("#token").value = "";
      await route();
      // Said once the page shows the signed-in person's cart and lists.
      showSignedIn();
    });
  });
  $("#signout").addEventListener("click", () => { store.token = ""; store.cart = ""; showSignedIn(); route(); });
  showSignedIn();
  route();
});
