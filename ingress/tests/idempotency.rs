//! `Idempotency-Key` through HTTP, on the real broker, registry and
//! Postgres: a repeat replays the first answer and writes nothing; the same
//! key for another request is refused; a repeat while the first runs gets
//! 409 (the first is held on a real table lock, no test double); keys are
//! per caller; a 5xx (an unknown outcome, made real by an ingress that
//! waits zero time for the broker's acknowledgement) is not stored, and its
//! retry writes the very same command id, which the cart applies once.
//! Also: `Prefer: wait` on a cart that is not visible yet waits for it.

mod common;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::Connection;

use common::{token, Answer, Api, TestEnv, JWT_SECRET};

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The cart at `version` or later (waited for).
async fn cart_at(api: &Api, cart: &str, version: i64, bearer: Option<&str>) -> Value {
    let mut req = api
        .request(Method::GET, &format!("/cart/{cart}?version={version}"))
        .header("prefer", "wait=30");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let answer = Api::send(req).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["stale"], false, "{answer:?}");
    answer.body
}

fn quantity(cart: &Value, internship: &str) -> i64 {
    cart["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["internship_id"] == internship)
        .map(|i| i["quantity"].as_i64().unwrap())
        .unwrap_or(0)
}

/// A guest cart, created without a key; its token and version.
async fn guest_cart(api: &Api) -> (String, i64) {
    let created = Api::send(api.request(Method::POST, "/cart").json(&json!({}))).await;
    assert_eq!(created.status, 201, "{created:?}");
    (
        created.body["cart_token"].as_str().unwrap().to_owned(),
        created.body["version"].as_i64().unwrap(),
    )
}

async fn add_item(api: &Api, cart: &str, key: &str, body: Value) -> Answer {
    Api::send(
        api.request(Method::POST, &format!("/cart/{cart}/items"))
            .header("idempotency-key", key)
            .json(&body),
    )
    .await
}

async fn commands_with_id(env: &TestEnv, id: &str) -> usize {
    env.cart_commands()
        .await
        .iter()
        .filter(|c| c.command_id == id)
        .count()
}

async fn commands_for_cart(env: &TestEnv, cart: &str) -> usize {
    env.cart_commands()
        .await
        .iter()
        .filter(|c| c.cart_token == cart)
        .count()
}

/// The offset of the cart's last command: the version it has once every
/// command written so far is applied.
async fn last_offset_of(env: &TestEnv, cart: &str) -> i64 {
    let brokers = env.config.kafka_brokers.clone();
    let topic = env.config.topics.name(&schemas::topics::CART_COMMANDS.def);
    let cart = cart.to_owned();
    tokio::task::spawn_blocking(move || {
        let reader = platform::kafka::reader(&brokers).unwrap();
        let mut last = -1;
        for partition in 0..schemas::topics::CART_COMMANDS.def.partitions {
            platform::kafka::read_partition(
                &reader,
                &topic,
                partition,
                rdkafka::Offset::Beginning,
                Duration::from_secs(30),
                |m| {
                    if rdkafka::Message::key(m)
                        == Some(schemas::Codec::encode_key(&cart).as_slice())
                    {
                        last = last.max(rdkafka::Message::offset(m));
                    }
                },
            )
            .unwrap();
        }
        last
    })
    .await
    .unwrap()
}

fn assert_error(answer: &Answer, status: u16, retryable: bool) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["status"], status, "{answer:?}");
    assert_eq!(answer.body["success"], false, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], status, "{answer:?}");
    assert_eq!(answer.body["error"]["retryable"], retryable, "{answer:?}");
    assert!(answer.header("idempotent-replayed").is_none(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_with_the_same_key_replays_the_first_answer_and_adds_once() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    let (cart, _) = guest_cart(&api).await;

    let k = key();
    let item = json!({"internship_id": "design", "quantity": 2});
    let first = add_item(&api, &cart, &k, item.clone()).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert!(first.header("idempotent-replayed").is_none());
    let repeat = add_item(&api, &cart, &k, item.clone()).await;
    assert_eq!(repeat.status, 202, "{repeat:?}");
    assert_eq!(repeat.body, first.body);
    assert_eq!(repeat.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        repeat.header("content-type"),
        first.header("content-type"),
        "the replay keeps the content type"
    );

    let version = first.body["version"].as_i64().unwrap();
    assert_eq!(
        quantity(&cart_at(&api, &cart, version, None).await, "design"),
        2
    );
    let id = first.body["command_id"].as_str().unwrap();
    assert_eq!(commands_with_id(&env, id).await, 1, "one command written");
    // CreateCart and the one AddItem: the repeat wrote nothing.
    assert_eq!(commands_for_cart(&env, &cart).await, 2);

    // A new cart with a key: the repeat gets the same cart (and Location).
    let k = key();
    let create = || {
        api.request(Method::POST, "/cart")
            .header("idempotency-key", &k)
            .json(&json!({"items": [{"internship_id": "rust-backend"}]}))
    };
    let first = Api::send(create()).await;
    assert_eq!(first.status, 201, "{first:?}");
    let repeat = Api::send(create()).await;
    assert_eq!(repeat.status, 201, "{repeat:?}");
    assert_eq!(repeat.body, first.body);
    assert_eq!(repeat.header("location"), first.header("location"));
    assert!(first.header("location").is_some());
    assert_eq!(repeat.header("idempotent-replayed"), Some("true"));
    let new_cart = first.body["cart_token"].as_str().unwrap();
    assert_eq!(commands_for_cart(&env, new_cart).await, 1, "one CreateCart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_for_another_request_is_refused_and_writes_nothing() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    let (cart, _) = guest_cart(&api).await;

    let k = key();
    let first = add_item(&api, &cart, &k, json!({"internship_id": "design"})).await;
    assert_eq!(first.status, 202, "{first:?}");
    let other_body = add_item(
        &api,
        &cart,
        &k,
        json!({"internship_id": "design", "quantity": 5}),
    )
    .await;
    assert_error(&other_body, 422, false);
    assert!(
        other_body.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{other_body:?}"
    );
    let other_path = Api::send(
        api.request(Method::PUT, &format!("/cart/{cart}/items/design"))
            .header("idempotency-key", &k)
            .json(&json!({"quantity": 3})),
    )
    .await;
    assert_error(&other_path, 422, false);

    // Malformed keys are refused before anything runs.
    for bad in ["has space".to_owned(), "k".repeat(256)] {
        let answer = add_item(&api, &cart, &bad, json!({"internship_id": "design"})).await;
        assert_error(&answer, 422, false);
        assert!(
            answer.body["error"]["validation_messages"][0]
                .as_str()
                .unwrap()
                .starts_with("Idempotency-Key"),
            "{answer:?}"
        );
    }

    assert_eq!(
        commands_for_cart(&env, &cart).await,
        2,
        "CreateCart and one AddItem"
    );
    let version = first.body["version"].as_i64().unwrap();
    assert_eq!(
        quantity(&cart_at(&api, &cart, version, None).await, "design"),
        1
    );

    // A refusal is not stored: the same key works for a fixed request.
    let k = key();
    let invalid = add_item(
        &api,
        &cart,
        &k,
        json!({"internship_id": "design", "quantity": 0}),
    )
    .await;
    assert_error(&invalid, 422, false);
    let fixed = add_item(
        &api,
        &cart,
        &k,
        json!({"internship_id": "design", "quantity": 1}),
    )
    .await;
    assert_eq!(fixed.status, 202, "{fixed:?}");
    assert!(fixed.header("idempotent-replayed").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_is_running_gets_409() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    let (cart, created) = guest_cart(&api).await;
    cart_at(&api, &cart, created, None).await;

    // Hold the first request inside its handler: it reads `carts` to
    // authorize the write, after its key was claimed.
    let mut lock = sqlx::PgConnection::connect_with(&env.pool.connect_options())
        .await
        .unwrap();
    sqlx::query(&format!(
        "SET search_path TO \"{}\"",
        env.config.database_schema
    ))
    .execute(&mut lock)
    .await
    .unwrap();
    let mut held = lock.begin().await.unwrap();
    sqlx::query("LOCK TABLE carts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();

    let k = key();
    let item = json!({"internship_id": "data-science", "quantity": 3});
    let first = tokio::spawn({
        let (base, cart, k, item) = (api.base.clone(), cart.clone(), k.clone(), item.clone());
        async move {
            let api = Api {
                http: reqwest::Client::new(),
                base,
            };
            add_item(&api, &cart, &k, item).await
        }
    });
    let started = Instant::now();
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE key = $1")
                .bind(&k)
                .fetch_optional(&env.pool)
                .await
                .unwrap();
        if state.as_deref() == Some("in_flight") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first request never claimed its key"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !first.is_finished(),
        "the first request is held on the lock"
    );

    let repeat = add_item(&api, &cart, &k, item.clone()).await;
    assert_error(&repeat, 409, true);
    assert_eq!(repeat.header("retry-after"), Some("1"));
    let different = add_item(&api, &cart, &k, json!({"internship_id": "design"})).await;
    assert_error(&different, 422, false);

    held.rollback().await.unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status, 202, "{first:?}");
    let after = add_item(&api, &cart, &k, item).await;
    assert_eq!(after.status, 202);
    assert_eq!(after.body, first.body);
    assert_eq!(after.header("idempotent-replayed"), Some("true"));

    let version = first.body["version"].as_i64().unwrap();
    assert_eq!(
        quantity(&cart_at(&api, &cart, version, None).await, "data-science"),
        3
    );
    let id = first.body["command_id"].as_str().unwrap();
    assert_eq!(commands_with_id(&env, id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_belong_to_their_caller() {
    let env = TestEnv::new().await;
    let api = Api::at(env.spawn_ingress().await);
    let alice = token("alice", "user", 600, JWT_SECRET);
    let bob = token("bob", "user", 600, JWT_SECRET);
    let k = key();
    let create = |bearer: Option<&str>| {
        let req = api
            .request(Method::POST, "/cart")
            .header("idempotency-key", &k)
            .json(&json!({"items": [{"internship_id": "design"}]}));
        match bearer {
            Some(b) => req.bearer_auth(b),
            None => req,
        }
    };
    let for_alice = Api::send(create(Some(&alice))).await;
    let for_bob = Api::send(create(Some(&bob))).await;
    let for_guest = Api::send(create(None)).await;
    for answer in [&for_alice, &for_bob, &for_guest] {
        assert_eq!(answer.status, 201, "{answer:?}");
        assert!(answer.header("idempotent-replayed").is_none(), "{answer:?}");
    }
    let carts = [&for_alice, &for_bob, &for_guest].map(|a| a.body["cart_token"].clone());
    assert_ne!(carts[0], carts[1]);
    assert_ne!(carts[0], carts[2]);
    assert_ne!(carts[1], carts[2]);
    let ids = [&for_alice, &for_bob, &for_guest].map(|a| a.body["command_id"].clone());
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[0], ids[2]);

    let again = Api::send(create(Some(&alice))).await;
    assert_eq!(again.body, for_alice.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        env.cart_commands().await.len(),
        3,
        "one CreateCart per caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_not_replayed_and_its_retry_is_applied_once() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    // An ingress that does not wait for the broker's acknowledgement at
    // all: every write is enqueued (and delivered) but answered 504.
    let impatient = Api::at(
        env.spawn_ingress_with(|c| c.ack_timeout = Duration::ZERO)
            .await,
    );
    let (cart, _) = guest_cart(&api).await;

    let k = key();
    let item = json!({"internship_id": "rust-backend", "quantity": 4});
    let unknown = add_item(&impatient, &cart, &k, item.clone()).await;
    assert_error(&unknown, 504, true);
    let id = unknown.body["error"]["command_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        unknown.body["error"]["suggested_action"]
            .as_str()
            .unwrap()
            .contains("same Idempotency-Key"),
        "{unknown:?}"
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(&k)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "a 5xx answer is not stored");

    let retry = add_item(&api, &cart, &k, item.clone()).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert!(
        retry.header("idempotent-replayed").is_none(),
        "the 504 was not replayed"
    );
    assert_eq!(
        retry.body["command_id"],
        id.as_str(),
        "the retry writes the same command"
    );
    let replay = add_item(&api, &cart, &k, item).await;
    assert_eq!(replay.body, retry.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // Both writes reached the topic; the cart applied the command once.
    let started = Instant::now();
    while commands_with_id(&env, &id).await < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the 504'd write never arrived"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        commands_for_cart(&env, &cart).await,
        3,
        "CreateCart and the same AddItem twice"
    );
    // Read the cart once both copies are applied (the processor moves the
    // cart to a duplicate's version without applying it again).
    let last = last_offset_of(&env, &cart).await;
    let read = cart_at(&api, &cart, last, None).await;
    assert_eq!(quantity(&read, "rust-backend"), 4, "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_wait_waits_for_a_cart_that_is_not_visible_yet() {
    let env = TestEnv::new().await;
    // No processor yet: the new cart cannot reach Postgres.
    env.spawn_sinks();
    let api = Api::at(env.spawn_ingress().await);
    let (cart, _) = guest_cart(&api).await;
    let read = |wait: Option<&str>| {
        let req = api.request(Method::GET, &format!("/cart/{cart}"));
        match wait {
            Some(w) => req.header("prefer", w),
            None => req,
        }
    };

    let at_once = Api::send(read(None)).await;
    assert_eq!(at_once.status, 404, "without Prefer: wait, 404 at once");
    let started = Instant::now();
    let gave_up = Api::send(read(Some("wait=1"))).await;
    assert_eq!(gave_up.status, 404, "{gave_up:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited before answering 404"
    );

    let waiting = tokio::spawn(Api::send(read(Some("wait=30"))));
    env.spawn_cart_processor();
    let found = waiting.await.unwrap();
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["cart_token"], cart.as_str());
    assert_eq!(found.body["stale"], false);
}

/// Guests share one key space, and a new cart's token is derived from the
/// key: a guessable guest key would let a second guest who sends the same
/// key and body be answered with the first guest's cart token. A guest's
/// key must be unguessable (refused with 422, nothing written); a signed-in
/// user's key lives in their own space and may be anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_obtain_another_guests_cart_by_replaying_a_guessable_key() {
    let env = TestEnv::new().await;
    env.spawn_cart_processor();
    let api = Api::at(env.spawn_ingress().await);
    let create = |key: &str, bearer: Option<String>| {
        let mut req = api
            .request(Method::POST, "/cart")
            .header("idempotency-key", key)
            .json(&json!({"items": []}));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        Api::send(req)
    };
    let before = env.cart_commands().await.len();
    for guessable in ["checkout-1", &"a".repeat(40)] {
        let first = create(guessable, None).await;
        assert_eq!(first.status, 422, "{first:?}");
        assert!(
            first.body["error"]["validation_messages"][0]
                .as_str()
                .unwrap()
                .contains("unguessable"),
            "{first:?}"
        );
        let second = create(guessable, None).await;
        assert_eq!(
            second.status, 422,
            "no guest is answered with a cart: {second:?}"
        );
        assert!(second.body["cart_token"].is_null());
    }
    assert_eq!(env.cart_commands().await.len(), before, "nothing written");

    // Unguessable keys work for guests, each its own cart.
    let (a, b) = (key(), key());
    let first = create(&a, None).await;
    let other = create(&b, None).await;
    assert_eq!((first.status, other.status), (201, 201));
    assert_ne!(first.body["cart_token"], other.body["cart_token"]);
    // A user's short key is theirs alone.
    let user = token("uma", "user", 600, JWT_SECRET);
    let mine = create("checkout-1", Some(user)).await;
    assert_eq!(mine.status, 201, "{mine:?}");
}
