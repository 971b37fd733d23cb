//! Enrollment end to end through HTTP and the simulator's hosted page: a
//! buyer pays an order with seats and assigns them by email (once each,
//! never beyond the block), every new enrollment is an `EnrollmentCreated`
//! on `enrollment.events`, and a line whose internship closed between
//! placement and payment is an `EnrollmentFailed` with a support case on
//! `support.cases`, the order still PAID; a confirmation page waits for
//! its order's first enrollment in one request (`Prefer: wait`). The real ingress, processors,
//! sinks, broker, registry and Postgres.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::shop::Shop;
use common::{token, TestEnv, JWT_SECRET};
use schemas::records::enrollment::{EnrollmentEvent, EnrollmentEventKind};
use schemas::records::support::SupportCase;
use schemas::topics::{ENROLLMENT_EVENTS, SUPPORT_CASES};

impl Shop {
    async fn open() -> Shop {
        let env = TestEnv::new().await;
        // The ingress first: the simulator sends its webhooks there.
        let addr = env.spawn_ingress().await;
        let sim = env.spawn_gateway_simulator(Some(addr)).await;
        env.spawn_gateway_worker(&sim, 2);
        env.spawn_cart_processor();
        env.spawn_order_processor();
        env.spawn_sinks();
        env.spawn_webhook_processor();
        env.spawn_enrollment_processor();
        Shop {
            env,
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
            sim,
        }
    }

    /// `user` places an order of `items`; its order token once the order
    /// has a payment session.
    async fn order(&self, user: &str, items: Value) -> (String, String) {
        let created: Value = self
            .http
            .post(format!("{}/cart", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({ "items": items }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cart = created["cart_token"].as_str().unwrap().to_owned();
        let version = created["version"].as_i64().unwrap();
        let seen = self
            .get(user, &format!("cart/{cart}?version={version}"))
            .await;
        assert_eq!(seen["stale"], false, "{seen}");
        let placed: Value = self
            .http
            .post(format!("{}/order", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({"cart_token": cart, "email": format!("{user}@example.com")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let order = placed["order_token"].as_str().unwrap().to_owned();
        let o = self
            .order_until(user, &order, |o| o["attempts"][0]["session_id"].is_string())
            .await;
        let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
        (order, session)
    }

    async fn assign(
        &self,
        user: &str,
        order: &str,
        body: Value,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/orders/{order}/seats/assign", self.base))
            .header("authorization", Self::bearer(user))
            .json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.unwrap()
    }

    /// The records of `enrollment.events` (committed), decoded.
    async fn events(&self) -> Vec<EnrollmentEvent> {
        let mut out = Vec::new();
        for r in self.env.read_topic(&ENROLLMENT_EVENTS.def, true).await {
            let e = self
                .env
                .codec
                .decode(&ENROLLMENT_EVENTS, r.value.as_deref())
                .await
                .unwrap();
            out.push(e);
        }
        out
    }

    /// The events once there are `n` (then exactly `n`: nothing more came
    /// with them).
    async fn events_until(&self, n: usize) -> Vec<EnrollmentEvent> {
        let started = Instant::now();
        loop {
            let events = self.events().await;
            if events.len() >= n {
                assert_eq!(events.len(), n, "{events:#?}");
                return events;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{n} events expected: {events:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The support cases (committed), decoded, each with its key.
    async fn cases(&self) -> Vec<(String, SupportCase)> {
        let mut out = Vec::new();
        for r in self.env.read_topic(&SUPPORT_CASES.def, true).await {
            let case = self
                .env
                .codec
                .decode(&SUPPORT_CASES, r.value.as_deref())
                .await
                .unwrap();
            let key = String::from_utf8(r.key.unwrap()).unwrap();
            out.push((key, case));
        }
        out
    }
}

fn created_sealed(events: &[EnrollmentEvent]) -> Vec<(String, i32, bool, Option<String>)> {
    let mut out: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            EnrollmentEventKind::EnrollmentCreated(c) => Some((
                c.internship_id.clone(),
                c.seats,
                c.access_granted,
                c.email.clone(),
            )),
            EnrollmentEventKind::EnrollmentFailed(_) => None,
        })
        .collect();
    out.sort();
    out
}

/// As [`created_sealed`], each email opened: every one travels sealed,
/// with its blind index.
async fn created(
    env: &TestEnv,
    events: &[EnrollmentEvent],
) -> Vec<(String, i32, bool, Option<String>)> {
    let mut out = Vec::new();
    for (internship, seats, access, email) in created_sealed(events) {
        if let Some(e) = &email {
            assert!(
                schemas::sealed::blind_index(e).is_some(),
                "an email sealed with its index on the topic: {e}"
            );
        }
        out.push((internship, seats, access, common::opened(env, email).await));
    }
    out.sort();
    out
}

/// The seats assigned from `block`: (email, status, access granted).
fn seats_of(list: &[Value], block: &Value) -> Vec<(String, String, bool)> {
    let mut out: Vec<_> = list
        .iter()
        .filter(|e| e["seat_of"] == block["enrollment_id"])
        .map(|e| {
            (
                e["email"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
                e["access_granted"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn block(list: &[Value]) -> &Value {
    list.iter()
        .find(|e| e["seats"].as_i64() > Some(1))
        .expect("a block of seats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_assigns_paid_seats_by_email_once_each_and_never_beyond_the_block() {
    let shop = Shop::open().await;
    let (order, session) = shop
        .order(
            "maya",
            json!([{"internship_id": "data-science", "quantity": 3}]),
        )
        .await;
    // Not paid yet: nothing to assign.
    let early = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "data-science", "emails": ["asha@example.com"]}),
            None,
        )
        .await;
    assert_eq!(early.status(), 409);
    let body: Value = early.json().await.unwrap();
    assert_eq!(body["error"]["code"], 3002, "{body}");

    shop.pay_at_gateway(&session).await;
    shop.order_until("maya", &order, |o| o["status"] == "paid")
        .await;
    let list = shop.enrollments_until("maya", |l| !l.is_empty()).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["seats"], 3);
    assert_eq!(list[0]["seats_left"], 3);
    assert_eq!(list[0]["access_granted"], false);
    assert_eq!(list[0]["order_token"], order.as_str());

    // Two seats, by email, with an Idempotency-Key.
    let body = json!({"internship_id": "data-science", "emails": ["asha@example.com", "Ravi@Example.COM"]});
    let first = shop
        .assign("maya", &order, body.clone(), Some("seats-1"))
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["order_token"], order.as_str());
    assert_eq!(first["internship_id"], "data-science");
    let command_id = first["command_id"].as_str().unwrap().to_owned();
    let replay = shop.assign("maya", &order, body, Some("seats-1")).await;
    assert_eq!(replay.status(), 202);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["command_id"], command_id.as_str());

    let list = shop.enrollments_until("maya", |l| l.len() == 3).await;
    let b = block(&list);
    assert_eq!(b["seats_left"], 1, "{list:?}");
    assert_eq!(
        seats_of(&list, b),
        [
            ("Ravi@example.com".to_owned(), "active".to_owned(), true),
            ("asha@example.com".to_owned(), "active".to_owned(), true),
        ],
        "the domain is lowercased, the local part kept: {list:?}"
    );
    for seat in list.iter().filter(|e| e["seat_of"] == b["enrollment_id"]) {
        assert_eq!(seat["seats"], 1);
        assert!(seat["seats_left"].is_null());
        assert_eq!(seat["order_token"], order.as_str());
        assert_eq!(seat["progress_percent"], 0);
    }

    // A repeat (another request, the same people, another spelling) is
    // accepted and assigns nothing: each already holds a seat.
    let again = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "data-science", "emails": ["ravi@example.com", "asha@example.com"]}),
            None,
        )
        .await;
    assert_eq!(again.status(), 202);
    // Two new people for the one seat left: refused whole.
    let over = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "data-science", "emails": ["chen@example.com", "dev@example.com"]}),
            None,
        )
        .await;
    assert_eq!(over.status(), 409);
    let over: Value = over.json().await.unwrap();
    assert_eq!(over["error"]["code"], 5001, "{over}");
    assert_eq!(
        over["error"]["message"],
        "2 new email(s) to assign, 1 seat(s) left"
    );
    // Invalid input: 422 with every problem, nothing written.
    let bad = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "data-science", "emails": ["not-an-email", "chen@example.com", "chen@example.com"]}),
            None,
        )
        .await;
    assert_eq!(bad.status(), 422);
    let bad: Value = bad.json().await.unwrap();
    let messages = bad["error"]["validation_messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{bad}");
    assert!(messages[0].as_str().unwrap().starts_with("emails[0]: "));
    assert_eq!(messages[1], "emails[2]: chen@example.com is listed twice");
    let personal = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "design", "emails": ["chen@example.com"]}),
            None,
        )
        .await;
    assert_eq!(personal.status(), 422);
    assert_eq!(
        personal.json::<Value>().await.unwrap()["error"]["code"],
        5002
    );
    // Another user: as if there were no such order.
    let other = shop
        .assign(
            "omar",
            &order,
            json!({"internship_id": "data-science", "emails": ["chen@example.com"]}),
            None,
        )
        .await;
    assert_eq!(other.status(), 404);
    assert_eq!(other.json::<Value>().await.unwrap()["error"]["code"], 3003);

    // The last seat. Applied after the repeat (same buyer, same partition):
    // three seats in all shows the repeat assigned nothing.
    let last = shop
        .assign(
            "maya",
            &order,
            json!({"internship_id": "data-science", "emails": ["chen@example.com"]}),
            None,
        )
        .await;
    assert_eq!(last.status(), 202);
    let list = shop
        .enrollments_until("maya", |l| block(l)["seats_left"] == 0)
        .await;
    assert_eq!(list.len(), 4, "{list:?}");
    assert_eq!(
        seats_of(&list, block(&list))
            .into_iter()
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        ["Ravi@example.com", "asha@example.com", "chen@example.com"]
    );

    // The seat report: a row per seat bought, each holder enrolled; as CSV
    // for a spreadsheet; nobody else's to read.
    let report = shop.get("maya", &format!("orders/{order}/seats")).await;
    let blocks = report["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{report}");
    assert_eq!(blocks[0]["internship_id"], "data-science");
    assert_eq!(
        (
            blocks[0]["seats"].clone(),
            blocks[0]["seats_assigned"].clone()
        ),
        (json!(3), json!(3))
    );
    let mut holders: Vec<(String, bool)> = blocks[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_owned(),
                r["enrolled"] == true,
            )
        })
        .collect();
    holders.sort();
    assert_eq!(
        holders,
        [
            ("Ravi@example.com".to_owned(), true),
            ("asha@example.com".to_owned(), true),
            ("chen@example.com".to_owned(), true)
        ]
    );
    let csv = shop
        .http
        .get(format!("{}/orders/{order}/seats?format=csv", shop.base))
        .header("authorization", Shop::bearer("maya"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "a header and a row per seat: {csv}");
    assert!(lines[0].starts_with("order_token,internship_id,title,seat,email"));
    for email in ["Ravi@example.com", "asha@example.com", "chen@example.com"] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(email)).count(),
            1,
            "{csv}"
        );
    }
    let theirs = shop
        .http
        .get(format!("{}/orders/{order}/seats", shop.base))
        .header("authorization", Shop::bearer("omar"))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 404);

    // Every new enrollment was an event: the block and three seats, once each.
    let events = shop.events_until(4).await;
    assert_eq!(
        created(&shop.env, &events).await,
        [
            (
                "data-science".to_owned(),
                1,
                true,
                Some("Ravi@example.com".to_owned())
            ),
            (
                "data-science".to_owned(),
                1,
                true,
                Some("asha@example.com".to_owned())
            ),
            (
                "data-science".to_owned(),
                1,
                true,
                Some("chen@example.com".to_owned())
            ),
            ("data-science".to_owned(), 3, false, None),
        ]
    );
    // Seat holders' addresses rest sealed: in no topic's bytes, no table's
    // rows; the buyer reads them opened (above). One holder's address
    // sealed twice (the repeat) compares by its blind index: one seat.
    for email in [
        "asha@example.com",
        "Ravi@example.com",
        "ravi@example.com",
        "chen@example.com",
    ] {
        assert!(
            common::where_in_clear(&shop.env, email).await.is_empty(),
            "{email} in the clear"
        );
    }
    // A holder erased by their address (each has a key of their own):
    // their seat stays, its address reads as absent; the others' do not.
    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let erased: Value = shop
        .http
        .post(format!("{}/admin/erasures", shop.base))
        .header("authorization", &admin)
        .header("idempotency-key", "erase-asha-1")
        .json(&json!({"email": "Asha@example.com", "reason": "she asked"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(erased["erased_keys"], 1, "{erased}");
    let list = shop.enrollments_until("maya", |_| true).await;
    let mut seats: Vec<Value> = list
        .iter()
        .filter(|e| e["seat_of"] == block(&list)["enrollment_id"])
        .map(|e| e["email"].clone())
        .collect();
    seats.sort_by_key(|e| e.to_string());
    assert_eq!(
        seats,
        [
            json!("Ravi@example.com"),
            json!("chen@example.com"),
            Value::Null
        ]
    );
    // Known by a pseudonym on the topic, never the account's id.
    let maya = common::pseudonym(&shop.env, "maya").await;
    for e in &events {
        assert_eq!(e.buyer_key, maya);
        assert_eq!(e.buyer_user_id.as_deref(), Some(maya.as_str()));
        assert_eq!(e.order_token, order);
    }
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "distinct event ids");
    assert!(shop.cases().await.is_empty(), "nothing failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internship_closed_after_placement_fails_its_line_and_opens_a_support_case() {
    let shop = Shop::open().await;
    let (order, session) = shop
        .order(
            "nora",
            json!([
                {"internship_id": "design", "quantity": 1},
                {"internship_id": "data-science", "quantity": 1}
            ]),
        )
        .await;
    // An admin closes data-science between placement and payment.
    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let closed = shop
        .http
        .put(format!("{}/admin/internships/data-science", shop.base))
        .header("authorization", admin)
        .json(&json!({"title": "data science", "category": "engineering",
                      "price_minor": 3_990_000, "currency": "INR", "active": false}))
        .send()
        .await
        .unwrap();
    assert!(
        closed.status().is_success(),
        "{}",
        closed.text().await.unwrap()
    );

    shop.pay_at_gateway(&session).await;
    // One EnrollmentCreated (design), one EnrollmentFailed (data-science).
    let events = shop.events_until(2).await;
    // The buyer's address travels sealed; opened, it is hers.
    let mut lines = created_sealed(&events);
    assert!(
        lines[0]
            .3
            .as_deref()
            .is_some_and(schemas::sealed::is_sealed),
        "{lines:?}"
    );
    lines[0].3 = common::opened(&shop.env, lines[0].3.take()).await;
    assert_eq!(
        lines,
        [(
            "design".to_owned(),
            1,
            true,
            Some("nora@example.com".to_owned())
        )]
    );
    let (failed_id, failed) = events
        .iter()
        .find_map(|e| match &e.event {
            EnrollmentEventKind::EnrollmentFailed(f) => Some((e.event_id.clone(), f.clone())),
            EnrollmentEventKind::EnrollmentCreated(_) => None,
        })
        .expect("an EnrollmentFailed");
    assert_eq!(failed.internship_id, "data-science");
    assert_eq!(failed.quantity, 1);
    assert_eq!(failed.code, "internship_closed");
    assert_eq!(
        failed.reason,
        "data-science was closed after the order was paid"
    );
    assert!(failed.catalog_version > 0, "{failed:?}");

    // A support case with the order, the reason and the buyer.
    let started = Instant::now();
    let cases = loop {
        let cases = shop.cases().await;
        if !cases.is_empty() || started.elapsed() > Duration::from_secs(30) {
            break cases;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(cases.len(), 1, "{cases:#?}");
    let (key, case) = &cases[0];
    assert_eq!(key, &order, "keyed by order token");
    assert_eq!(case.order_token, order);
    assert_eq!(case.kind, "enrollment_failed");
    assert_eq!(case.code, "internship_closed");
    assert_eq!(case.reason, failed.reason);
    assert_eq!(case.internship_id.as_deref(), Some("data-science"));
    let nora = common::pseudonym(&shop.env, "nora").await;
    assert_eq!(case.buyer_key, nora);
    assert_eq!(case.buyer_user_id.as_deref(), Some(nora.as_str()));
    assert_eq!(
        common::opened(&shop.env, case.buyer_email.clone())
            .await
            .as_deref(),
        Some("nora@example.com")
    );
    assert_eq!(case.cause_event_id, failed_id);
    // Materialized for people: the admin list shows it.
    let admin = format!("Bearer {}", token("ops", "admin", 600, JWT_SECRET));
    let started = Instant::now();
    let listed = loop {
        let listed: Value = shop
            .http
            .get(format!(
                "{}/admin/support-cases?order_token={order}",
                shop.base
            ))
            .header("authorization", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["cases"].as_array().is_some_and(|c| !c.is_empty())
            || started.elapsed() > Duration::from_secs(30)
        {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rows = listed["cases"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["case_id"], case.case_id.as_str());
    assert_eq!(rows[0]["order_token"], order.as_str());
    assert_eq!(rows[0]["buyer_user_id"], nora.as_str());
    assert_eq!(rows[0]["code"], "internship_closed");
    assert_eq!(rows[0]["reason"], case.reason.as_str());
    let buyer = shop
        .http
        .get(format!("{}/admin/support-cases", shop.base))
        .header("authorization", Shop::bearer("nora"))
        .send()
        .await
        .unwrap();
    assert_eq!(buyer.status(), 403, "people's cases are for admins");

    // The order stays PAID; the buyer is enrolled in what is still open.
    let o = shop.get("nora", &format!("order/{order}")).await;
    assert_eq!(o["status"], "paid", "{o}");
    let list = shop.enrollments_until("nora", |l| !l.is_empty()).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["internship_id"], "design");
    assert_eq!(list[0]["access_granted"], true);
    assert_eq!(list[0]["email"], "nora@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_page_waits_for_its_orders_first_enrollment_in_one_request() {
    let shop = Shop::open().await;
    let (first, first_session) = shop
        .order(
            "lena",
            json!([{"internship_id": "data-science", "quantity": 1}]),
        )
        .await;
    let (second, second_session) = shop
        .order("lena", json!([{"internship_id": "design", "quantity": 1}]))
        .await;
    let wait_for = |order: String, wait: u64| {
        let (http, base) = (shop.http.clone(), shop.base.clone());
        async move {
            let started = Instant::now();
            let res = http
                .get(format!("{base}/me/enrollments?order={order}"))
                .header("authorization", Shop::bearer("lena"))
                .header("prefer", format!("wait={wait}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            (res.json::<Value>().await.unwrap(), started.elapsed())
        }
    };

    // Not paid: the wait ends at its deadline, empty and stale.
    let (early, took) = wait_for(first.clone(), 1).await;
    assert_eq!(early["enrollments"], json!([]), "{early}");
    assert_eq!(early["stale"], true, "{early}");
    assert!(
        took >= Duration::from_millis(900),
        "answered before the wait: {took:?}"
    );

    // One request for the second order, sent before anything is paid.
    let waiting = tokio::spawn(wait_for(second.clone(), 30));
    shop.pay_at_gateway(&first_session).await;
    shop.enrollments_until("lena", |l| l.len() == 1).await;
    assert!(
        !waiting.is_finished(),
        "the first order's enrollment does not answer the second's wait"
    );
    shop.pay_at_gateway(&second_session).await;
    let (answer, took) = waiting.await.unwrap();
    assert_eq!(answer["stale"], false, "{answer}");
    let list = answer["enrollments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only the second order's: {answer}");
    assert_eq!(list[0]["order_token"], second.as_str());
    assert_eq!(list[0]["internship_id"], "design");
    // Woken by the sink's notification, not by its deadline.
    assert!(took < Duration::from_secs(25), "{took:?}");

    // Without `order`, every enrollment of the caller; a malformed order
    // token is refused.
    let all = shop.get("lena", "me/enrollments").await;
    assert_eq!(all["enrollments"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all["stale"], false);
    let bad = shop
        .http
        .get(format!(
            "{}/me/enrollments?order=not%20a%20token",
            shop.base
        ))
        .header("authorization", Shop::bearer("lena"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert!(body["error"]["code"].is_number(), "{body}");
}
