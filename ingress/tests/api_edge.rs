//! The API edge, route by route: authentication, ownership, roles, limits,
//! the error body, headers, and the OpenAPI document. Every refusal must
//! leave Kafka untouched.

mod common;

use std::time::Duration;

use rdkafka::consumer::Consumer;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use common::{token, TestEnv, JWT_SECRET};
use schemas::topics::{CART_COMMANDS, CATALOG_INTERNSHIPS};

/// Records in the command and catalog topics: the test's "nothing written".
async fn records_written(env: &TestEnv) -> i64 {
    let reader = platform::kafka::reader(&env.config.kafka_brokers).unwrap();
    let mut total = 0;
    for def in [&CART_COMMANDS.def, &CATALOG_INTERNSHIPS.def] {
        let topic = env.config.topics.name(def);
        for p in 0..def.partitions {
            total += reader
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .unwrap()
                .1;
        }
    }
    total
}

#[derive(Clone, Copy, Debug)]
enum Route {
    CreateCart,
    GetCart,
    AddItem,
    UpdateQuantity,
    RemoveItem,
    SetBuyer,
    PutInternship,
    PutFxRate,
    Estimate,
    ListInternships,
    Share,
    SharedView,
    CloneShared,
    Analytics,
    AuthCheck,
    Login,
    ChoosePlan,
    PutCoupon,
    ApplyCoupon,
    RemoveCoupon,
    ValidateCoupon,
    ListDiscounts,
    PlaceOrder,
    GetOrder,
    MyOrders,
    PayAgain,
}

/// An order token no order has.
const NO_ORDER: &str = "fedcba9876543210fedcba9876543210";

const ROUTES: [Route; 26] = [
    Route::PlaceOrder,
    Route::GetOrder,
    Route::MyOrders,
    Route::PayAgain,
    Route::ValidateCoupon,
    Route::ListDiscounts,
    Route::PutCoupon,
    Route::ApplyCoupon,
    Route::RemoveCoupon,
    Route::ChoosePlan,
    Route::Share,
    Route::SharedView,
    Route::CloneShared,
    Route::Analytics,
    Route::AuthCheck,
    Route::Login,
    Route::Estimate,
    Route::ListInternships,
    Route::CreateCart,
    Route::GetCart,
    Route::AddItem,
    Route::UpdateQuantity,
    Route::RemoveItem,
    Route::SetBuyer,
    Route::PutInternship,
    Route::PutFxRate,
];

impl Route {
    fn method(self) -> Method {
        match self {
            Route::CreateCart
            | Route::AddItem
            | Route::Estimate
            | Route::Share
            | Route::CloneShared
            | Route::AuthCheck
            | Route::Login
            | Route::ApplyCoupon
            | Route::ValidateCoupon
            | Route::PlaceOrder
            | Route::PayAgain => Method::POST,
            Route::GetCart
            | Route::ListInternships
            | Route::SharedView
            | Route::ListDiscounts
            | Route::GetOrder
            | Route::MyOrders => Method::GET,
            Route::Analytics | Route::ChoosePlan | Route::PutCoupon => Method::PUT,
            Route::RemoveCoupon => Method::DELETE,
            Route::RemoveItem => Method::DELETE,
            Route::UpdateQuantity | Route::SetBuyer | Route::PutInternship | Route::PutFxRate => {
                Method::PUT
            }
        }
    }

    fn admin(self) -> bool {
        matches!(
            self,
            Route::PutInternship | Route::PutFxRate | Route::PutCoupon
        )
    }

    fn path(self, cart: &str) -> String {
        match self {
            Route::CreateCart => "/api/v1/cart".into(),
            Route::GetCart => format!("/api/v1/cart/{cart}"),
            Route::AddItem => format!("/api/v1/cart/{cart}/items"),
            Route::UpdateQuantity | Route::RemoveItem => {
                format!("/api/v1/cart/{cart}/items/design")
            }
            Route::SetBuyer => format!("/api/v1/cart/{cart}/buyer"),
            Route::PutInternship => "/api/v1/admin/internships/new-internship".into(),
            Route::PutFxRate => "/api/v1/admin/fx-rates/USD".into(),
            Route::Estimate => "/api/v1/cart/estimate".into(),
            Route::ListInternships => "/api/v1/internships".into(),
            Route::Share => format!("/api/v1/cart/{cart}/share"),
            Route::SharedView => "/api/v1/cart/shared/0123456789abcdef0123456789abcdef".into(),
            Route::CloneShared => {
                "/api/v1/cart/shared/0123456789abcdef0123456789abcdef/clone".into()
            }
            Route::Analytics => format!("/api/v1/cart/{cart}/analytics"),
            Route::AuthCheck => format!("/api/v1/cart/{cart}/auth/check"),
            Route::Login => format!("/api/v1/cart/{cart}/auth/login"),
            Route::ChoosePlan => format!("/api/v1/cart/{cart}/plan/design-6m"),
            Route::PutCoupon => "/api/v1/admin/coupons/TEN10".into(),
            Route::ApplyCoupon => format!("/api/v1/cart/{cart}/coupon"),
            Route::RemoveCoupon => format!("/api/v1/cart/{cart}/coupon/TEN10"),
            Route::ValidateCoupon => "/api/v1/cart/discount/validate".into(),
            Route::ListDiscounts => format!("/api/v1/cart/{cart}/discounts"),
            Route::PlaceOrder => "/api/v1/order".into(),
            Route::GetOrder => format!("/api/v1/order/{NO_ORDER}"),
            Route::MyOrders => "/api/v1/me/orders".into(),
            Route::PayAgain => format!("/api/v1/order/{NO_ORDER}/pay"),
        }
    }

    fn valid_body(self) -> Option<Value> {
        match self {
            Route::CreateCart => {
                Some(json!({"items": [{"internship_id": "design", "quantity": 1}]}))
            }
            Route::AddItem => Some(json!({"internship_id": "design", "quantity": 1})),
            Route::GetCart
            | Route::RemoveItem
            | Route::ListInternships
            | Route::Share
            | Route::SharedView
            | Route::CloneShared
            | Route::AuthCheck
            | Route::Login
            | Route::ChoosePlan
            | Route::RemoveCoupon
            | Route::ListDiscounts
            | Route::GetOrder
            | Route::MyOrders
            | Route::PayAgain => None,
            Route::PlaceOrder => Some(json!({"cart_token": "0123456789abcdef0123456789abcdef"})),
            Route::ValidateCoupon => {
                Some(json!({"cart_token": "0123456789abcdef0123456789abcdef", "code": "TEN10"}))
            }
            Route::PutCoupon => {
                Some(json!({"name": "Ten", "kind": "percentage", "percent": "0.10"}))
            }
            Route::ApplyCoupon => Some(json!({"code": "TEN10"})),
            Route::Analytics => Some(json!({"pairs": {"utm_source": "x"}})),
            Route::Estimate => Some(
                json!({"items": [{"internship_id": "design", "quantity": 2}], "country": "IN"}),
            ),
            Route::UpdateQuantity => Some(json!({"quantity": 2})),
            Route::SetBuyer => Some(json!({"country": "IN", "state": "MH"})),
            Route::PutInternship => Some(
                json!({"title": "New", "category": "eng", "price_minor": 100, "currency": "INR"}),
            ),
            Route::PutFxRate => Some(json!({"rate": "0.012"})),
        }
    }

    /// The OpenAPI path template.
    fn template(self) -> &'static str {
        match self {
            Route::CreateCart => "/api/v1/cart",
            Route::GetCart => "/api/v1/cart/{token}",
            Route::AddItem => "/api/v1/cart/{token}/items",
            Route::UpdateQuantity | Route::RemoveItem => {
                "/api/v1/cart/{token}/items/{internship_id}"
            }
            Route::SetBuyer => "/api/v1/cart/{token}/buyer",
            Route::PutInternship => "/api/v1/admin/internships/{internship_id}",
            Route::PutFxRate => "/api/v1/admin/fx-rates/{currency}",
            Route::Estimate => "/api/v1/cart/estimate",
            Route::ListInternships => "/api/v1/internships",
            Route::Share => "/api/v1/cart/{token}/share",
            Route::SharedView => "/api/v1/cart/shared/{share_token}",
            Route::CloneShared => "/api/v1/cart/shared/{share_token}/clone",
            Route::Analytics => "/api/v1/cart/{token}/analytics",
            Route::AuthCheck => "/api/v1/cart/{token}/auth/check",
            Route::Login => "/api/v1/cart/{token}/auth/login",
            Route::ChoosePlan => "/api/v1/cart/{token}/plan/{plan_id}",
            Route::PutCoupon => "/api/v1/admin/coupons/{code}",
            Route::ApplyCoupon => "/api/v1/cart/{token}/coupon",
            Route::RemoveCoupon => "/api/v1/cart/{token}/coupon/{code}",
            Route::ValidateCoupon => "/api/v1/cart/discount/validate",
            Route::ListDiscounts => "/api/v1/cart/{token}/discounts",
            Route::PlaceOrder => "/api/v1/order",
            Route::GetOrder => "/api/v1/order/{order_token}",
            Route::MyOrders => "/api/v1/me/orders",
            Route::PayAgain => "/api/v1/order/{order_token}/pay",
        }
    }
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

async fn call(
    http: &Client,
    base: &str,
    route: Route,
    cart: &str,
    bearer: Option<&str>,
    body: Body,
    case: &str,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = http
        .request(route.method(), format!("{base}{}", route.path(cart)))
        .header("x-correlation-id", case);
    if let Some(t) = bearer {
        req = req.header("authorization", t);
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
    };
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

fn assert_error(case: &str, status: StatusCode, body: &Value, want_status: u16, want_code: i64) {
    assert_eq!(status.as_u16(), want_status, "{case}: {body}");
    assert_eq!(body["status"], want_status, "{case}: {body}");
    assert_eq!(body["success"], false, "{case}");
    assert_eq!(body["error"]["code"], want_code, "{case}: {body}");
    assert_eq!(body["error"]["correlation_id"], case, "{case}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}"
    );
    assert!(body["error"]["validation_messages"].is_array(), "{case}");
    assert!(body["error"]["retryable"].is_boolean(), "{case}");
    assert!(
        body["error"]["suggested_action"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{case}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_callers_with_the_error_body_and_writes_nothing() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let addr = env.spawn_ingress().await;
    let base = format!("http://{addr}");
    let http = Client::new();
    let alice = format!("Bearer {}", token("alice", "user", 300, JWT_SECRET));
    let bob = format!("Bearer {}", token("bob", "user", 300, JWT_SECRET));
    let admin = format!("Bearer {}", token("root", "admin", 300, JWT_SECRET));

    // Alice's cart, materialized so the ingress knows its owner.
    let created: Value = http
        .post(format!("{base}/api/v1/cart"))
        .header("authorization", &alice)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cart = created["cart_token"].as_str().unwrap().to_owned();
    let v = created["version"].as_i64().unwrap();
    let read = http
        .get(format!("{base}/api/v1/cart/{cart}?version={v}"))
        .header("authorization", &alice)
        .header("prefer", "wait=30")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200, "the owner reads her cart");
    let admin_read = http
        .get(format!("{base}/api/v1/cart/{cart}"))
        .header("authorization", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_read.status(), 200, "an admin reads any cart");

    let before = records_written(&env).await;
    let bad_signature = format!(
        "Bearer {}",
        token(
            "alice",
            "user",
            300,
            "another-secret-another-secret-another"
        )
    );
    let expired = format!("Bearer {}", token("alice", "user", -3600, JWT_SECRET));
    let admin_expired = format!("Bearer {}", token("root", "admin", -3600, JWT_SECRET));
    for route in ROUTES {
        let body = || route.valid_body().map(Body::Json).unwrap_or(Body::None);
        let case = |what: &str| format!("{route:?}-{what}");
        let owner_token = if route.admin() { &admin } else { &alice };

        let c = case("bad-signature");
        let (s, b, _) = call(&http, &base, route, &cart, Some(&bad_signature), body(), &c).await;
        assert_error(&c, s, &b, 401, 401);

        let c = case("expired");
        let token = if route.admin() {
            &admin_expired
        } else {
            &expired
        };
        let (s, b, _) = call(&http, &base, route, &cart, Some(token), body(), &c).await;
        assert_error(&c, s, &b, 401, 401);

        let c = case("not-bearer");
        let (s, b, _) = call(
            &http,
            &base,
            route,
            &cart,
            Some("Basic YWxpY2U6eA=="),
            body(),
            &c,
        )
        .await;
        assert_error(&c, s, &b, 401, 401);

        match route {
            _ if route.admin() => {
                let c = case("no-token");
                let (s, b, _) = call(&http, &base, route, &cart, None, body(), &c).await;
                assert_error(&c, s, &b, 401, 401);
                let c = case("wrong-role");
                let (s, b, _) = call(&http, &base, route, &cart, Some(&alice), body(), &c).await;
                assert_error(&c, s, &b, 403, 403);
            }
            // Open to guests: nothing to own.
            Route::CreateCart
            | Route::Estimate
            | Route::ListInternships
            | Route::SharedView
            | Route::CloneShared
            // Names its cart in the body; that cart's owner is checked like the others'.
            | Route::ValidateCoupon
            // The caller's own list.
            | Route::MyOrders => {}
            // An order nobody has: unknown to everyone alike.
            Route::GetOrder | Route::PayAgain => {
                for (who, bearer) in [("wrong-owner", Some(bob.as_str())), ("guest", None)] {
                    let c = case(who);
                    let (s, b, _) = call(&http, &base, route, &cart, bearer, body(), &c).await;
                    assert_error(&c, s, &b, 404, 3003);
                }
            }
            _ => {
                for (who, bearer) in [
                    ("wrong-owner", Some(bob.as_str())),
                    ("guest-on-user-cart", None),
                ] {
                    let c = case(who);
                    let (s, b, _) = call(&http, &base, route, &cart, bearer, body(), &c).await;
                    if matches!(route, Route::Login) && bearer.is_none() {
                        assert_error(&c, s, &b, 401, 401);
                    } else {
                        assert_error(&c, s, &b, 404, 1001);
                    }
                }
            }
        }

        if route.valid_body().is_some() {
            let c = case("malformed-json");
            let (s, b, _) = call(
                &http,
                &base,
                route,
                &cart,
                Some(owner_token),
                Body::Raw("application/json", b"{,".to_vec()),
                &c,
            )
            .await;
            assert_error(&c, s, &b, 400, 400);

            let c = case("unknown-field");
            let mut v = route.valid_body().unwrap();
            v["unit_price"] = json!(1);
            let (s, b, _) = call(
                &http,
                &base,
                route,
                &cart,
                Some(owner_token),
                Body::Json(v),
                &c,
            )
            .await;
            assert_error(&c, s, &b, 422, 422);

            let c = case("oversized");
            let mut big = route.valid_body().unwrap().to_string().into_bytes();
            big.extend(std::iter::repeat_n(b' ', 70 * 1024));
            let (s, b, _) = call(
                &http,
                &base,
                route,
                &cart,
                Some(owner_token),
                Body::Raw("application/json", big),
                &c,
            )
            .await;
            assert_error(&c, s, &b, 413, 413);

            let c = case("wrong-content-type");
            let (s, b, _) = call(
                &http,
                &base,
                route,
                &cart,
                Some(owner_token),
                Body::Raw("text/plain", b"{}".to_vec()),
                &c,
            )
            .await;
            assert_error(&c, s, &b, 415, 415);
        }
    }
    assert_eq!(
        records_written(&env).await,
        before,
        "a refused request must write nothing to Kafka"
    );

    // The owner and an admin still get through where they should.
    let ok = http
        .post(format!("{base}/api/v1/cart/{cart}/items"))
        .header("authorization", &alice)
        .json(&json!({"internship_id": "design"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let ok = http
        .put(format!("{base}/api/v1/admin/internships/new-internship"))
        .header("authorization", &admin)
        .json(&Route::PutInternship.valid_body().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    assert_eq!(records_written(&env).await, before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_rate_limited_per_caller_with_retry_after() {
    let env = TestEnv::new().await;
    let addr = env
        .spawn_ingress_with(|c| {
            c.api_budget = ingress::rate_limit::Budget {
                per_second: 1,
                burst: 1,
            };
            c.admin_budget = ingress::rate_limit::Budget {
                per_second: 1,
                burst: 1,
            };
        })
        .await;
    let base = format!("http://{addr}");
    let http = Client::new();
    let cart = "0123456789abcdef0123456789abcdef";
    for route in ROUTES {
        // A caller of its own per route: budgets are per caller.
        let role = if route.admin() { "admin" } else { "user" };
        let bearer = format!(
            "Bearer {}",
            token(&format!("caller-{route:?}"), role, 300, JWT_SECRET)
        );
        let bearer = bearer.as_str();
        let c = format!("{route:?}-first");
        // The first call takes the budget when it arrives; it may answer
        // later than the budget refills (a placement waits for a cart it
        // cannot see yet), so the second is sent meanwhile.
        let first = tokio::spawn({
            let (http, base, bearer) = (http.clone(), base.clone(), bearer.to_owned());
            async move {
                call(
                    &http,
                    &base,
                    route,
                    cart,
                    Some(&bearer),
                    Body::Json(route.valid_body().unwrap_or(json!({}))),
                    &c,
                )
                .await
            }
        });
        let mut first = std::pin::pin!(first);
        let first_answer = tokio::time::timeout(Duration::from_millis(500), &mut first)
            .await
            .ok();
        let before = records_written(&env).await;
        let c = format!("{route:?}-limited");
        let (s, b, h) = call(
            &http,
            &base,
            route,
            cart,
            Some(bearer),
            Body::Json(route.valid_body().unwrap_or(json!({}))),
            &c,
        )
        .await;
        assert_error(&c, s, &b, 429, 429);
        assert_eq!(b["error"]["retryable"], true);
        assert!(
            h.get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|s| s >= 1),
            "{c}: Retry-After"
        );
        assert_eq!(records_written(&env).await, before, "{c}: nothing written");
        let (first, b, _) = match first_answer {
            Some(answer) => answer,
            None => first.await,
        }
        .expect("the first call ran");
        assert_ne!(first.as_u16(), 429, "{route:?}-first: {b}");
    }
    // Another caller has a budget of their own.
    let other = format!("Bearer {}", token("someone-else", "user", 300, JWT_SECRET));
    let res = http
        .post(format!("{base}/api/v1/cart"))
        .header("authorization", other)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// The gateways' webhooks have a budget of their own, per source address
/// (behind one trusted proxy, the address it saw): a flood from one
/// address is refused before any signature is checked, and another
/// address is not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_rate_limited_per_source_address() {
    let env = TestEnv::new().await;
    let addr = env
        .spawn_ingress_with(|c| {
            c.webhook_budget = ingress::rate_limit::Budget {
                per_second: 1,
                burst: 2,
            };
            c.trusted_proxies = 1;
        })
        .await;
    let http = Client::new();
    let deliver = |from: &'static str| {
        http.post(format!("http://{addr}/webhooks/razorpay"))
            .header("x-forwarded-for", from)
            .header("content-type", "application/json")
            .body(r#"{"event":"payment.captured"}"#)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(deliver("203.0.113.7").await.unwrap().status());
    }
    // Two within the burst (refused for their missing signature), then
    // the limit (a refill of 1/s may let one more through on a slow
    // machine, not four).
    assert!(
        statuses[..2]
            .iter()
            .all(|s| *s != StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = statuses[2..]
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 3, "{statuses:?}");
    let other = deliver("198.51.100.20").await.unwrap();
    assert_ne!(other.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Two replicas behind a balancer that alternates between them, each told
/// there are two: one caller gets the budget once in all, not once per
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_two_replicas() {
    let env = TestEnv::new().await;
    let budget = |c: &mut ingress::Config| {
        c.api_budget = ingress::rate_limit::Budget {
            per_second: 2,
            burst: 20,
        };
        c.replicas = 2;
    };
    let replicas = [
        env.spawn_ingress_with(budget).await,
        env.spawn_ingress_with(budget).await,
    ];
    let http = Client::new();
    let bearer = format!("Bearer {}", token("one-caller", "user", 300, JWT_SECRET));
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for n in 0..40 {
        let res = http
            .get(format!("http://{}/api/v1/internships", replicas[n % 2]))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        if res.status() != StatusCode::TOO_MANY_REQUESTS {
            allowed += 1;
        }
    }
    // A burst of 20 in all (10 per replica), and each replica's refill of
    // 1/s over the calls' time. Unshared, each replica would have let its
    // own burst of 20 through: all 40.
    let refill = 2 * (started.elapsed().as_secs() as usize + 1);
    assert!(
        (20..=20 + refill).contains(&allowed) && allowed < 40,
        "{allowed} of 40 allowed in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_security_headers_and_cors_only_for_configured_origins() {
    let env = TestEnv::new().await;
    let addr = env
        .spawn_ingress_with(|c| c.cors_origins = vec!["https://app.example".into()])
        .await;
    let http = Client::new();
    let res = http
        .get(format!("http://{addr}/api/v1/nowhere"))
        .send()
        .await
        .unwrap();
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'none'");
    assert!(h["strict-transport-security"]
        .to_str()
        .unwrap()
        .starts_with("max-age="));
    assert_eq!(h["referrer-policy"], "no-referrer");
    let preflight = |origin: &'static str| {
        http.request(Method::OPTIONS, format!("http://{addr}/api/v1/cart"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_and_validates() {
    let env = TestEnv::new().await;
    let addr = env.spawn_ingress().await;
    let http = Client::new();
    let doc: Value = http
        .get(format!("http://{addr}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    for route in ROUTES {
        let method = route.method().as_str().to_lowercase();
        assert!(
            paths
                .get(route.template())
                .and_then(|p| p.get(&method))
                .is_some(),
            "{route:?} ({method} {}) missing from /openapi.json",
            route.template()
        );
    }
    // Every documented operation is a live route (not the 404 fallback).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{token}", "0123456789abcdef0123456789abcdef")
                .replace("{internship_id}", "x");
            let res = http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("http://{addr}{concrete}"),
                )
                .send()
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["error"]["code"], 404,
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                body["error"]["code"], 405,
                "{method} {path} is documented but not routed"
            );
        }
    }
    // /docs works offline: the page names only paths of this server
    // (no CDN, no other host), and each of them answers.
    let docs = http
        .get(format!("http://{addr}/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    let referenced: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| page.split(attr).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(
        referenced
            .iter()
            .any(|r| r.ends_with("swagger-ui-bundle.js")),
        "the page does not load Swagger UI (assets missing? scripts/test.sh installs them): {page}"
    );
    for r in &referenced {
        assert!(
            r.starts_with('/') && !r.starts_with("//"),
            "/docs references {r}, not a path of this server"
        );
        let answer = http.get(format!("http://{addr}{r}")).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{r}");
        if r.ends_with("init.js") {
            assert!(answer.text().await.unwrap().contains("/openapi.json"));
        }
    }
    assert!(!page.contains("://"), "/docs names another host: {page}");
    // Only the files the page uses are served: nothing else of the disk.
    for path in [
        "/docs/assets/package.json",
        "/docs/assets/..%2F..%2FCargo.toml",
    ] {
        let answer = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path}");
    }

    common::python_check("validate_openapi.py", &doc, "OpenAPI document invalid");
}
