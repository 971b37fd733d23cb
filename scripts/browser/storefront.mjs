// The storefront in a real browser: Debian's chromium, headless, driven by
// playwright-core, against the run command's stack. It buys as a student
// would, by the page's labels and buttons only:
//
//   1. a guest pays through Razorpay in INR with a coupon, and downloads
//      the GST tax invoice as PDF from the order page;
//   2. a coupon the cart is too small for is refused, with the error's
//      suggested action on the page;
//   3. a failed payment, then a retry that pays;
//   4. a signed-in buyer (the guest cart merged) pays through Stripe in USD;
//   5. a company buys three seats and assigns two, then reads the seat
//      report; an admin opens the dashboard.
//
// Screenshots of every step go to SCREENSHOTS (a folder of the test logs).
// Usage: node scripts/browser/storefront.mjs (BASE_URL, CHROMIUM, SCREENSHOTS,
// USER_TOKEN, BUYER_TOKEN, ADMIN_TOKEN from the environment).

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const require = createRequire(new URL("../../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const BASE = process.env.BASE_URL || "http://127.0.0.1:8080";
const SHOTS = process.env.SCREENSHOTS || ".local/storefront";
const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
mkdirSync(SHOTS, { recursive: true });

let step = 0;
async function shot(page, name) {
  step += 1;
  const file = `${SHOTS}/${String(step).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

function log(what) {
  console.log(`- ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});

// The page in use, for a screenshot if a step fails; what went wrong in
// a page without failing a step (a script error, a policy violation).
let current = null;
const problems = [];

// A fresh visitor: no cart, no token (each context has its own storage).
async function visitor(viewport = { width: 1200, height: 900 }) {
  const context = await browser.newContext({ viewport });
  // Every page of the context, the gateway's windows included: a step
  // that cannot happen fails in 30 s rather than waiting.
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = await context.newPage();
  current = page;
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/.test(m.text())) problems.push(m.text());
  });
  await page.goto(BASE + "/");
  await page.getByRole("heading", { name: "Internships" }).waitFor();
  return { context, page };
}

async function add(page, title, { seats = 1 } = {}) {
  const card = page.getByRole("article", { name: title });
  await card.getByLabel("Seats").fill(String(seats));
  await card.getByRole("button", { name: `Add ${title} to cart` }).click();
  await page.locator("#cart").getByText(title, { exact: false }).first().waitFor();
}

async function setLocation(page, { country, state, currency }) {
  await page.getByLabel("Country").selectOption(country);
  if (state) await page.getByLabel("State (India)").selectOption(state);
  await page.getByLabel("Currency").selectOption(currency);
  await page.getByRole("button", { name: "Update location" }).click();
}

async function totalText(page) {
  return (await page.locator("[data-total]").textContent()).trim();
}

// Checkout, then the order page with its Pay link.
async function checkout(page, email) {
  if (email) await page.getByLabel("Email for your receipt").fill(email);
  await page.getByRole("button", { name: "Checkout" }).click();
  await page.waitForURL(/#\/order\/[0-9a-f]{32}$/);
  await page.locator("#pay").waitFor();
}

// The gateway's hosted page opens in a window of its own; the order page
// waits for the payment (one long request at a time) and updates.
async function payAtGateway(page, button, name) {
  const [gateway] = await Promise.all([page.waitForEvent("popup"), page.locator("#pay").click()]);
  await gateway.waitForLoadState();
  await shot(gateway, `${name}-gateway`);
  // The page posts its form (and Stripe's may send the buyer on to the
  // session's success URL): what counts is what the order page shows, so
  // the gateway's window is left as it is (it goes with its context).
  await gateway.getByRole("button", { name: button }).click({ noWaitAfter: true });
}

try {
  // 1. Razorpay, INR, a coupon from the list.
  log("a guest pays through Razorpay in INR with a coupon");
  {
    const { context, page } = await visitor();
    await shot(page, "catalog");
    await add(page, "Rust Backend Engineering");
    await setLocation(page, { country: "IN", state: "KA", currency: "INR" });
    await page.getByText("CGST 9 %").waitFor();
    await page.getByText("SGST 9 %").waitFor();
    const before = await totalText(page);
    await page.getByRole("button", { name: "Apply WELCOME10" }).click();
    await page.getByText("Discount", { exact: false }).first().waitFor();
    const after = await totalText(page);
    assert.notEqual(after, before, "the coupon changed the total");
    assert.match(after, /₹/);
    await shot(page, "cart-inr-with-coupon");
    await checkout(page, "asha@example.com");
    await shot(page, "order-awaiting-razorpay");
    await payAtGateway(page, "Pay (upi)", "razorpay");
    await page.getByRole("status").filter({ hasText: "Paid — thank you." }).waitFor();
    await page.getByRole("heading", { name: "Enrollments" }).waitFor();
    await page.getByRole("cell", { name: "Rust Backend Engineering", exact: true }).waitFor();
    await shot(page, "order-paid-enrolled");
    const invoice = page.getByRole("button", { name: /^Download tax invoice INV\/\d\d-\d\d\/\d{6} \(PDF\)$/ });
    await invoice.waitFor();
    await shot(page, "order-tax-documents");
    const [pdf] = await Promise.all([page.waitForEvent("download"), invoice.click()]);
    const bytes = await pdf.path().then((p) => import("node:fs").then((fs) => fs.readFileSync(p)));
    assert.equal(bytes.subarray(0, 5).toString("latin1"), "%PDF-", "a PDF");
    assert.match(pdf.suggestedFilename(), /^INV-\d\d-\d\d-\d{6}\.pdf$/);
    assert.ok(bytes.includes("TAX INVOICE"), "the document's title is drawn");
    await pdf.saveAs(`${SHOTS}/${pdf.suggestedFilename()}`);
    await context.close();
  }

  // 2. A coupon refused: the message and its suggested action, not JSON.
  log("a coupon the cart is too small for is refused with its suggested action");
  {
    const { context, page } = await visitor({ width: 390, height: 844 });
    await add(page, "Digital Marketing");
    await page.getByLabel("Coupon code").fill("TEAM15");
    await page.getByRole("button", { name: "Apply", exact: true }).click();
    const notice = page.locator("#notice");
    await notice.waitFor({ state: "visible" });
    const text = await notice.textContent();
    assert.match(text, /at least/, text);
    assert.match(text, /\./, "a suggested action");
    assert.doesNotMatch(text, /[{}]/, `no JSON on the page: ${text}`);
    await shot(page, "coupon-refused-phone");
    await context.close();
  }

  // 3. A failed payment, then a retry.
  log("a failed payment, then a retry that pays");
  {
    const { context, page } = await visitor();
    await add(page, "Product Design");
    await checkout(page, "ravi@example.com");
    await payAtGateway(page, "Fail the payment", "failing");
    await page.getByRole("button", { name: "Try again" }).waitFor();
    await shot(page, "order-failed");
    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("#pay").waitFor();
    await payAtGateway(page, "Pay (card)", "retry");
    await page.getByRole("status").filter({ hasText: "Paid — thank you." }).waitFor();
    await shot(page, "order-paid-after-retry");
    await context.close();
  }

  // 4. Signed in (the guest cart merged), Stripe, USD.
  log("a signed-in buyer pays through Stripe in USD");
  {
    const { context, page } = await visitor();
    await add(page, "Cloud and DevOps");
    await page.getByLabel("Development token").fill(need("USER_TOKEN"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(/^Signed in as /).waitFor();
    await page.locator("#cart").getByText("Cloud and DevOps").first().waitFor();
    await setLocation(page, { country: "US", currency: "USD" });
    await page.locator("[data-fx]").waitFor();
    assert.match(await totalText(page), /\$/);
    await shot(page, "cart-usd-signed-in");
    await checkout(page, "");
    await payAtGateway(page, "Pay (card)", "stripe");
    await page.getByRole("status").filter({ hasText: "Paid — thank you." }).waitFor();
    await page.getByRole("link", { name: "My orders" }).click();
    await page.getByRole("heading", { name: "My orders" }).waitFor();
    await page.getByText("paid").first().waitFor();
    await shot(page, "my-orders");
    await context.close();
  }

  // 5. A company's bulk purchase, seats assigned, the report; the dashboard.
  log("a company buys three seats, assigns two, and reads the seat report");
  {
    const { context, page } = await visitor();
    await page.getByLabel("Development token").fill(need("BUYER_TOKEN"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText(/^Signed in as /).waitFor();
    await add(page, "Data Science with Python", { seats: 3 });
    await checkout(page, "hr@acme.example");
    await payAtGateway(page, "Pay (card)", "bulk");
    await page.getByRole("status").filter({ hasText: "Paid — thank you." }).waitFor();
    // The order page shows the block once the enrollment is readable.
    await page.getByRole("cell", { name: "3 seats, 3 left" }).waitFor();
    await page.getByRole("link", { name: "My enrollments" }).click();
    await page.getByLabel("Email addresses").fill("meera@acme.example\nkabir@acme.example");
    await page.getByRole("button", { name: "Assign seats" }).click();
    await page.getByRole("cell", { name: "meera@acme.example" }).waitFor();
    await page.getByRole("cell", { name: "kabir@acme.example" }).waitFor();
    await page.getByText("3 seats, 1 left").waitFor();
    await shot(page, "seats-assigned");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Download the seat report (CSV)" }).click(),
    ]);
    const csv = await download.path().then((p) => import("node:fs").then((fs) => fs.readFileSync(p, "utf8")));
    const rows = csv.trim().split(/\r?\n/);
    assert.equal(rows.length, 4, `a header and a row per seat:\n${csv}`);
    assert.ok(rows.some((r) => r.includes("meera@acme.example")), csv);
    assert.ok(rows.some((r) => r.includes(",free,")), csv);
    await context.close();

    const admin = await visitor();
    await admin.page.getByLabel("Development token").fill(need("ADMIN_TOKEN"));
    await admin.page.getByRole("button", { name: "Sign in" }).click();
    await admin.page.getByRole("link", { name: "Dashboard" }).click();
    await admin.page.getByRole("heading", { name: "Funnel" }).waitFor();
    await admin.page.getByRole("heading", { name: "Payment success" }).waitFor();
    await shot(admin.page, "admin-dashboard");
    await admin.context.close();
  }
  assert.deepEqual(problems, [], "no script error, no policy violation");
  console.log("storefront: every journey passed");
} catch (e) {
  if (current && !current.isClosed()) await shot(current, "failure").catch(() => {});
  throw e;
} finally {
  await browser.close();
}
