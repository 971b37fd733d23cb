//! The API contract under fuzzing: schemathesis (from the test venv,
//! `scripts/python/requirements.txt`) reads the ingress's own
//! `/openapi.json` and throws generated requests, valid and invalid, at
//! every operation, three times over: as a guest (no token), as a user and
//! as an admin. A run fails on any 5xx, on a dropped connection (a handler
//! that panicked), on any status an operation answers without documenting
//! it, and on a body, content type or header that does not match what is
//! documented for that status. Half the requests carry a real cart, share
//! or order token or catalog id instead of a random one, so they reach the
//! handlers' logic rather than "not found".
//!
//! The fuzzer must be able to reach every status without tripping the rate
//! limits, so the ingress runs as a child process with them raised
//! ([`TestEnv::ingress_child`]); a child also keeps a panicking handler
//! from taking the test process down with it. That 429 (and the other
//! statuses of the shared layers) are documented on every operation is
//! checked on the document itself, as the fuzzer seldom meets them.
//!
//! Bounded (about a minute): a few examples per operation and phase
//! (`FUZZ_EXAMPLES`, default 10), a fixed seed (`FUZZ_SEED` tries or
//! replays another one).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use common::{token, Api, TestEnv, CATALOG, JWT_SECRET};

/// The statuses any operation can answer: the request timeout, and a
/// dependency that is down or broken.
const EVERY_OPERATION: &[&str] = &["408", "500", "503"];
/// Behind authentication and the rate limit (everything under `/api/v1/`).
const EVERY_API_OPERATION: &[&str] = &["401", "429"];
/// With a JSON body read by the API: malformed, too large, not JSON, invalid.
const WITH_A_BODY: &[&str] = &["400", "413", "415", "422"];

fn python() -> String {
    std::env::var("CHECKOUT_PYTHON")
        .unwrap_or_else(|_| format!("{}/../.local/venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

/// The `schemathesis` entry point pip installed beside the venv's python.
fn schemathesis() -> PathBuf {
    let path = PathBuf::from(python()).with_file_name("schemathesis");
    assert!(
        path.exists(),
        "{} not found: run the tests through scripts/test.sh, which installs \
         scripts/python/requirements.txt into the venv",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_only_what_it_documents_and_never_5xx() {
    let env = TestEnv::new().await;
    // The whole pipeline, so reads after fuzzed writes see what the writes
    // did (and a processor choking on a fuzzed command fails the test).
    env.spawn_cart_processor();
    env.spawn_coupon_processor();
    env.spawn_order_processor();
    env.spawn_enrollment_processor();
    env.spawn_sinks();
    let (mut ingress, port) = env.ingress_child(None, &[]);
    ingress.wait_ready(Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");

    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let examples = std::env::var("FUZZ_EXAMPLES").unwrap_or_else(|_| "10".into());
    let seed = std::env::var("FUZZ_SEED").unwrap_or_else(|_| "20260101".into());
    let callers = [
        ("guest", None),
        ("user", Some(token("fuzz-user", "user", 3600, JWT_SECRET))),
        (
            "admin",
            Some(token("fuzz-admin", "admin", 3600, JWT_SECRET)),
        ),
    ];
    let mut failed = Vec::new();
    for (who, bearer) in callers {
        let started = Instant::now();
        let config = std::env::temp_dir().join(format!("fuzz-{who}-{}.toml", uuid::Uuid::new_v4()));
        let known = seed_resources(&base, bearer.as_deref()).await;
        eprintln!("fuzz: {who}: real resources to mix in: {known:?}");
        std::fs::write(&config, schemathesis_config(&known)).unwrap();
        eprintln!("fuzz: {who}: schemathesis, {examples} examples per operation, seed {seed}");
        let mut run = Command::new(schemathesis());
        run.arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,response_headers_conformance",
            ])
            // Stateful testing needs links between operations, which the
            // document does not declare.
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", &examples, "--seed", &seed])
            .args(["--workers", "2", "--request-timeout", "45"])
            .args(["--generation-database", "none", "--no-color"])
            // Keep the reports out of the checkout.
            .current_dir(std::env::temp_dir());
        if let Some(bearer) = &bearer {
            run.args(["--header", &format!("Authorization: Bearer {bearer}")]);
        }
        let status = run
            .status()
            .unwrap_or_else(|e| panic!("running schemathesis: {e}"));
        eprintln!(
            "fuzz: {who}: {} after {:.0?}",
            if status.success() { "passed" } else { "FAILED" },
            started.elapsed()
        );
        let _ = std::fs::remove_file(&config);
        if !status.success() {
            failed.push(who);
        }
        assert!(
            ingress.is_running(),
            "the ingress died while fuzzed as {who}"
        );
    }
    let undocumented = shared_statuses_missing(&doc);
    assert!(
        undocumented.is_empty(),
        "operations missing the statuses of the shared layers (with the ErrorBody schema):\n{}",
        undocumented.join("\n")
    );
    assert!(
        failed.is_empty(),
        "schemathesis found failures as {failed:?} (see its report above; FUZZ_SEED={seed} replays it)"
    );
}

/// `METHOD path: status` for each shared status an operation does not
/// document with the ErrorBody schema.
fn shared_statuses_missing(doc: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let api = path.starts_with("/api/v1/");
            let body = op.get("requestBody").is_some();
            let mut want: Vec<&str> = EVERY_OPERATION.to_vec();
            if api {
                want.extend(EVERY_API_OPERATION);
            }
            if api && body {
                want.extend(WITH_A_BODY);
            } else if body {
                // The webhooks read their body raw: only its size is the layers'.
                want.push("413");
            }
            if path.starts_with("/api/v1/admin/") {
                want.push("403");
            }
            for status in want {
                let schema =
                    &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
                if schema != "#/components/schemas/ErrorBody" {
                    missing.push(format!("{} {path}: {status}", method.to_uppercase()));
                }
            }
        }
    }
    missing
}

/// Values that name something real, by the parameter they go in: random
/// tokens only ever meet "not found", so half the generated requests get
/// one of these instead and reach the handlers' logic.
#[derive(Debug, Default)]
struct Known {
    carts: Vec<String>,
    shares: Vec<String>,
    orders: Vec<String>,
}

/// As `bearer` (a guest without): two carts with an item and a buyer, one
/// shared, and an order placed for the other.
async fn seed_resources(base: &str, bearer: Option<&str>) -> Known {
    let api = Api::at(base.trim_start_matches("http://").parse().unwrap());
    let call = |method: Method, path: &str, body: Value| {
        let mut request = api.request(method, path).json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        Api::send(request)
    };
    let mut known = Known::default();
    for _ in 0..2 {
        // Each cart its own (a user with an active cart gets that one back).
        let created = call(
            Method::POST,
            "/cart",
            json!({"items": [{"internship_id": CATALOG[0].0, "quantity": 1}]}),
        )
        .await;
        let Some(cart) = created.body["cart_token"].as_str().map(str::to_owned) else {
            panic!("seeding: creating a cart answered {created:?}");
        };
        let buyer = call(
            Method::PUT,
            &format!("/cart/{cart}/buyer"),
            json!({"country": "IN", "state": "MH"}),
        )
        .await;
        assert_eq!(buyer.status, 202, "seeding: setting the buyer: {buyer:?}");
        if !known.carts.contains(&cart) {
            known.carts.push(cart);
        }
    }
    let first = known.carts[0].clone();
    let shared = call(Method::POST, &format!("/cart/{first}/share"), json!({})).await;
    known
        .shares
        .extend(shared.body["share_token"].as_str().map(str::to_owned));
    // Once the cart processor has applied the buyer, the order can be placed.
    let last = known.carts.last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while known.orders.is_empty() && Instant::now() < deadline {
        let placed = call(Method::POST, "/order", json!({"cart_token": last})).await;
        match placed.body["order_token"].as_str() {
            Some(order) => known.orders.push(order.to_owned()),
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    known
}

/// A schemathesis config binding each parameter that names a resource to
/// the known values, with probability one half.
fn schemathesis_config(known: &Known) -> String {
    let list = |values: &[String]| serde_json::to_string(values).unwrap();
    let internships: Vec<String> = CATALOG.iter().map(|(id, _)| (*id).to_owned()).collect();
    let plans: Vec<String> = CATALOG.iter().map(|(id, _)| format!("{id}-6m")).collect();
    let mut out = String::new();
    let mut bind = |dictionary: &str, values: &[String], parameters: &[&str]| {
        if values.is_empty() {
            return;
        }
        out.push_str(&format!(
            "[dictionaries.{dictionary}]\nvalues = {}\n",
            list(values)
        ));
        for parameter in parameters {
            out.push_str(&format!(
                "[parameters.\"{parameter}\"]\ndictionary = \"{dictionary}\"\nprobability = 0.5\n"
            ));
        }
    };
    bind("carts", &known.carts, &["path.token", "body.cart_token"]);
    bind("shares", &known.shares, &["path.share_token"]);
    bind("orders", &known.orders, &["path.order_token"]);
    bind(
        "internships",
        &internships,
        &[
            "path.internship_id",
            "body.internship_id",
            "body.items[*].internship_id",
        ],
    );
    bind("plans", &plans, &["path.plan_id"]);
    out
}
