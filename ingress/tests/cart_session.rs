//! Through HTTP: one active cart per user, login attach and merge, sharing
//! and cloning, attribution, and expiry (with a short TTL and a fast timer
//! tick instead of a day's wait).

mod common;

use std::time::Duration;

use reqwest::Client;
use serde_json::{json, Value};

use common::{token, TestEnv, JWT_SECRET};

struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn start(env: &TestEnv) -> Api {
        let addr = env.spawn_ingress().await;
        Api {
            http: Client::new(),
            base: format!("http://{addr}/api/v1"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The cart at `version` or later.
    async fn cart(&self, cart: &str, version: i64, bearer: Option<&str>) -> Value {
        let mut req = self
            .http
            .get(format!("{}/cart/{cart}?version={version}", self.base))
            .header("prefer", "wait=30");
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        let cart: Value = req.send().await.unwrap().json().await.unwrap();
        assert_eq!(cart["stale"], false, "{cart}");
        cart
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_one_active_cart_and_a_guest_cart_merges_into_it_on_login() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::start(&env).await;
    let alice = token("alice", "user", 600, JWT_SECRET);
    use reqwest::Method;

    let (s, mine) = api
        .call(
            Method::POST,
            "/cart",
            Some(&alice),
            Some(json!({"items": [{"internship_id": "design"}]})),
        )
        .await;
    assert_eq!(s, 201);
    let mine_token = mine["cart_token"].as_str().unwrap().to_owned();
    api.cart(&mine_token, mine["version"].as_i64().unwrap(), Some(&alice))
        .await;
    // Creating again gives back the active cart, with the new items in it.
    let (s, again) = api
        .call(
            Method::POST,
            "/cart",
            Some(&alice),
            Some(json!({"items": [{"internship_id": "design", "quantity": 2}]})),
        )
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["cart_token"], mine_token.as_str());
    let cart = api
        .cart(
            &mine_token,
            again["version"].as_i64().unwrap(),
            Some(&alice),
        )
        .await;
    assert_eq!(cart["items"][0]["quantity"], 3);

    // A guest fills a cart, then logs in as Alice: the cart merges into hers.
    let (_, guest) = api
        .call(
            Method::POST,
            "/cart",
            None,
            Some(json!({"items": [{"internship_id": "rust-backend"}], "device_id": "phone-1"})),
        )
        .await;
    let guest_token = guest["cart_token"].as_str().unwrap().to_owned();
    api.cart(&guest_token, guest["version"].as_i64().unwrap(), None)
        .await;
    let (s, plan) = api
        .call(
            Method::POST,
            &format!("/cart/{guest_token}/auth/check"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(plan["action"], "merge", "{plan}");
    assert_eq!(plan["merge_into"], mine_token.as_str());
    let (s, _) = api
        .call(
            Method::POST,
            &format!("/cart/{guest_token}/auth/login"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 401, "login needs a token");
    let (s, login) = api
        .call(
            Method::POST,
            &format!("/cart/{guest_token}/auth/login"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(s, 202, "{login}");
    assert_eq!(login["merged"], true);
    assert_eq!(login["cart_token"], mine_token.as_str());
    let guest_after = api
        .cart(
            &guest_token,
            login["guest_cart_version"].as_i64().unwrap(),
            None,
        )
        .await;
    assert_eq!(guest_after["status"], "merged");
    assert_eq!(guest_after["merged_into"], mine_token.as_str());
    // The items arrive in Alice's cart through the pipeline.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, cart) = api
            .call(
                Method::GET,
                &format!("/cart/{mine_token}"),
                Some(&alice),
                None,
            )
            .await;
        let ids: Vec<String> = cart["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["internship_id"].as_str().unwrap().to_owned())
            .collect();
        if ids.contains(&"rust-backend".to_owned()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "merged items never arrived: {cart}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The merged cart takes no more changes.
    let (s, refused) = api
        .call(
            Method::POST,
            &format!("/cart/{guest_token}/items"),
            None,
            Some(json!({"internship_id": "design"})),
        )
        .await;
    assert_eq!(
        (s, refused["error"]["code"].as_i64()),
        (409, Some(1005)),
        "{refused}"
    );

    // Bob logs in on a fresh guest cart: it simply becomes his.
    let bob = token("bob", "user", 600, JWT_SECRET);
    let (_, g2) = api.call(Method::POST, "/cart", None, Some(json!({}))).await;
    let g2_token = g2["cart_token"].as_str().unwrap().to_owned();
    api.cart(&g2_token, g2["version"].as_i64().unwrap(), None)
        .await;
    let (s, login) = api
        .call(
            Method::POST,
            &format!("/cart/{g2_token}/auth/login"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        (s, login["merged"].as_bool()),
        (202, Some(false)),
        "{login}"
    );
    api.cart(
        &g2_token,
        login["guest_cart_version"].as_i64().unwrap(),
        Some(&bob),
    )
    .await;
    let (s, _) = api
        .call(Method::GET, &format!("/cart/{g2_token}"), None, None)
        .await;
    assert_eq!(s, 404, "now Bob's: the token alone no longer opens it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_cart_shows_items_only_and_can_be_cloned_and_attribution_is_kept() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::start(&env).await;
    use reqwest::Method;
    let (_, c) = api
        .call(
            Method::POST,
            "/cart",
            None,
            Some(json!({"items": [{"internship_id": "design", "quantity": 4}]})),
        )
        .await;
    let cart = c["cart_token"].as_str().unwrap().to_owned();
    let (s, a) = api
        .call(
            Method::PUT,
            &format!("/cart/{cart}/analytics"),
            None,
            Some(json!({"pairs": {"utm_source": "newsletter"}})),
        )
        .await;
    assert_eq!(s, 202, "{a}");
    let (s, bad) = api
        .call(
            Method::PUT,
            &format!("/cart/{cart}/analytics"),
            None,
            Some(json!({"pairs": {"bad key!": "x"}})),
        )
        .await;
    assert_eq!((s, bad["error"]["code"].as_i64()), (422, Some(422)));
    let (s, shared) = api
        .call(Method::POST, &format!("/cart/{cart}/share"), None, None)
        .await;
    assert_eq!(s, 202, "{shared}");
    let share_token = shared["share_token"].as_str().unwrap().to_owned();
    assert_ne!(share_token, cart);
    let (_, again) = api
        .call(Method::POST, &format!("/cart/{cart}/share"), None, None)
        .await;
    assert_eq!(
        again["share_token"],
        share_token.as_str(),
        "sharing twice gives the same link"
    );
    let view = api
        .cart(&cart, again["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["analytics"]["utm_source"], "newsletter");
    assert_eq!(view["share_token"], share_token.as_str());

    let (s, public) = api
        .call(
            Method::GET,
            &format!("/cart/shared/{share_token}"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 200, "{public}");
    assert_eq!(public["items"][0]["quantity"], 4);
    let text = public.to_string();
    assert!(
        !text.contains(&cart) && !text.contains("buyer") && !text.contains("owner"),
        "no private data: {public}"
    );
    let (s, _) = api
        .call(
            Method::GET,
            "/cart/shared/0123456789abcdef0123456789abcdef",
            None,
            None,
        )
        .await;
    assert_eq!(s, 404);

    let (s, clone) = api
        .call(
            Method::POST,
            &format!("/cart/shared/{share_token}/clone"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 201, "{clone}");
    let cloned = api
        .cart(
            clone["cart_token"].as_str().unwrap(),
            clone["version"].as_i64().unwrap(),
            None,
        )
        .await;
    assert_eq!(cloned["items"][0]["internship_id"], "design");
    assert_eq!(cloned["items"][0]["quantity"], 4);
    assert_ne!(cloned["cart_token"], cart.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_cart_expires_and_later_commands_get_1002() {
    let env = TestEnv::new().await;
    // Two seconds stand for a day; the timer looks every 200 ms.
    env.spawn_cart_processor_with(processors::cart::service::Settings {
        ttl_ms: 2_000,
        tick: Duration::from_millis(200),
    });
    env.spawn_sinks();
    let api = Api::start(&env).await;
    use reqwest::Method;
    let (_, c) = api
        .call(
            Method::POST,
            "/cart",
            None,
            Some(json!({"items": [{"internship_id": "design"}]})),
        )
        .await;
    let cart = c["cart_token"].as_str().unwrap().to_owned();
    let version = c["version"].as_i64().unwrap();
    assert_eq!(api.cart(&cart, version, None).await["status"], "active");
    // The timer's command moves the cart on by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let expired = loop {
        let (_, view) = api
            .call(Method::GET, &format!("/cart/{cart}"), None, None)
            .await;
        if view["status"] == "expired" || std::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(expired["status"], "expired", "{expired}");
    assert!(expired["version"].as_i64().unwrap() > version);
    let (s, refused) = api
        .call(
            Method::POST,
            &format!("/cart/{cart}/items"),
            None,
            Some(json!({"internship_id": "design"})),
        )
        .await;
    assert_eq!(s, 410, "{refused}");
    assert_eq!(refused["error"]["code"], 1002);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billing_period_prices_its_line() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::start(&env).await;
    use reqwest::Method;
    let (_, c) = api
        .call(
            Method::POST,
            "/cart",
            None,
            Some(json!({"items": [{"internship_id": "design", "quantity": 2}]})),
        )
        .await;
    let cart = c["cart_token"].as_str().unwrap().to_owned();
    // The harness catalog offers `<id>-6m` at half the base price.
    let (s, chosen) = api
        .call(
            Method::PUT,
            &format!("/cart/{cart}/plan/design-6m"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 202, "{chosen}");
    let view = api
        .cart(&cart, chosen["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["items"][0]["plan_id"], "design-6m", "{view}");
    assert_eq!(view["items"][0]["plan_value"], 6);
    assert_eq!(view["items"][0]["plan_unit"], "month");
    assert_eq!(view["items"][0]["unit_price_minor"], 2_490_000 / 2);
    assert_eq!(view["subtotal_minor"], 2_490_000);
    let (_, other) = api
        .call(
            Method::PUT,
            &format!("/cart/{cart}/plan/rust-backend-6m"),
            None,
            None,
        )
        .await;
    let view = api
        .cart(&cart, other["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["last_rejection"]["error"]["code"], 1010, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_published_by_an_admin_discounts_a_cart_before_tax() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::start(&env).await;
    use reqwest::Method;
    let admin = token("ops", "admin", 600, JWT_SECRET);
    let (s, published) = api
        .call(
            Method::PUT,
            "/admin/coupons/WELCOME10",
            Some(&admin),
            Some(json!({"name": "Welcome 10 %", "kind": "percentage", "percent": "0.10", "cap_minor": 1_000_000})),
        )
        .await;
    assert_eq!(s, 202, "{published}");
    let (s, bad) = api
        .call(
            Method::PUT,
            "/admin/coupons/BAD1",
            Some(&admin),
            Some(json!({"name": "x", "kind": "fixed"})),
        )
        .await;
    assert_eq!(
        (s, bad["error"]["code"].as_i64()),
        (422, Some(422)),
        "a fixed coupon without amounts"
    );
    // The processor follows the coupons topic; a cart created now sees it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, c) = api
        .call(
            Method::POST,
            "/cart",
            None,
            Some(json!({"items": [{"internship_id": "design", "quantity": 2}]})),
        )
        .await;
    let cart = c["cart_token"].as_str().unwrap().to_owned();
    let (s, applied) = api
        .call(
            Method::POST,
            &format!("/cart/{cart}/coupon"),
            None,
            Some(json!({"code": "welcome10"})),
        )
        .await;
    assert_eq!(s, 202, "{applied}");
    let view = api
        .cart(&cart, applied["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["coupons"], json!(["WELCOME10"]), "{view}");
    assert_eq!(view["subtotal_minor"], 4_980_000);
    assert_eq!(view["discounts"][0]["code"], "WELCOME10");
    assert_eq!(view["discounts"][0]["amount_minor"], 498_000);
    assert_eq!(view["discount_total_minor"], 498_000);
    assert_eq!(view["items"][0]["line_discount_minor"], 498_000);
    // Tax (seller's state, 18 %) on the discounted ₹44,820.00.
    assert_eq!(view["tax_total_minor"], 806_760);
    assert_eq!(view["total_minor"], 4_482_000 + 806_760);

    let (_, unknown) = api
        .call(
            Method::POST,
            &format!("/cart/{cart}/coupon"),
            None,
            Some(json!({"code": "NOPE"})),
        )
        .await;
    let view = api
        .cart(&cart, unknown["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["last_rejection"]["error"]["code"], 2001, "{view}");
    assert_eq!(view["coupons"], json!(["WELCOME10"]));
    let (_, removed) = api
        .call(
            Method::DELETE,
            &format!("/cart/{cart}/coupon/WELCOME10"),
            None,
            None,
        )
        .await;
    let view = api
        .cart(&cart, removed["version"].as_i64().unwrap(), None)
        .await;
    assert_eq!(view["coupons"], json!([]));
    assert_eq!(view["discount_total_minor"], 0);
    // Validation reads the coupon from Postgres (the coupons sink), which
    // may trail the processor that applied it: wait for it there.
    let started = std::time::Instant::now();
    let (s, v) = loop {
        let (s, v) = api
            .call(
                Method::POST,
                "/cart/discount/validate",
                None,
                Some(json!({"cart_token": cart, "code": "welcome10"})),
            )
            .await;
        if s == 200 || v["error"]["code"] != 2001 || started.elapsed() > Duration::from_secs(30) {
            break (s, v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["discount_minor"], 498_000);
    let (_, offers) = api
        .call(Method::GET, &format!("/cart/{cart}/discounts"), None, None)
        .await;
    assert_eq!(offers[0]["applicable"], true, "{offers}");
    assert_eq!(offers[0]["discount_minor"], 498_000);
}

/// A waiter whose notification never comes (the row moved without one, as
/// after a listener reconnect) is woken by the versions poll within about
/// half a second, and reads the cart only when its version is there: not
/// once per half second while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_costs_a_version_poll_not_a_read_per_waiter() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let (cart, version) = env.create_cart().await;
    env.wait_for_versions(&[(cart.clone(), version)], Duration::from_secs(60))
        .await;
    let waiters = ingress::waiters::VersionWaiters::listen(&env.pool)
        .await
        .unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let wanted = version + 1_000;
    let waiter = {
        let (waiters, reads, pool, token) = (
            waiters.clone(),
            reads.clone(),
            env.pool.clone(),
            cart.as_str().to_owned(),
        );
        tokio::spawn(async move {
            waiters
                .wait_until(
                    &token,
                    Duration::from_secs(20),
                    wanted,
                    || {
                        reads.fetch_add(1, Ordering::SeqCst);
                        sqlx::query_scalar::<_, i64>(
                            "SELECT version FROM carts WHERE cart_token = $1",
                        )
                        .bind(&token)
                        .fetch_optional(&pool)
                    },
                    |v: &Option<i64>| *v,
                )
                .await
        })
    };
    // Three seconds of waiting: one read, however long.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "read once, then only the versions poll"
    );
    // The row moves without a NOTIFY.
    sqlx::query("UPDATE carts SET version = $2 WHERE cart_token = $1")
        .bind(cart.as_str())
        .bind(wanted)
        .execute(&env.pool)
        .await
        .unwrap();
    let moved = Instant::now();
    let (seen, reached) = waiter.await.unwrap().unwrap();
    assert!(reached, "woken by the poll");
    assert_eq!(seen, Some(wanted));
    // Not a latency target: without the poll it would end only at its
    // 20 s deadline (its last read would find the version all the same).
    assert!(
        moved.elapsed() < Duration::from_secs(10),
        "woken by the poll, not the deadline: {:?}",
        moved.elapsed()
    );
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}
