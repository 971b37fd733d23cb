//! The registry's HTTP API against a real Postgres: Confluent's wire format
//! through `schema_registry_converter`, global ids, compatibility, errors,
//! config, concurrency, references and the ops endpoints.

mod common;

use apache_avro::types::Value as Avro;
use common::{encode, order_schema, spawn};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{json, Value};

const V1_FIELDS: &str = r#"[{"name":"id","type":"string"},{"name":"total_cents","type":"long"}]"#;
const V2_FIELDS: &str = r#"[{"name":"id","type":"string"},{"name":"total_cents","type":"long"},{"name":"currency","type":"string","default":"EUR"}]"#;
const NO_DEFAULT_FIELDS: &str = r#"[{"name":"id","type":"string"},{"name":"total_cents","type":"long"},{"name":"psp","type":"string"}]"#;
const TYPE_CHANGE_FIELDS: &str =
    r#"[{"name":"id","type":"int"},{"name":"total_cents","type":"long"}]"#;

#[tokio::test]
async fn converter_encodes_and_decodes_through_the_registry() {
    let app = spawn().await;
    // A '/' in the topic makes the converter send %2F in the subject.
    let topic = "shop/orders";
    let schema = order_schema(V1_FIELDS);
    let encoder = AvroEncoder::new(SrSettings::new(app.url.clone()));
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        topic.to_owned(),
        false,
        SuppliedSchema::new(
            Some("shop.Order".to_owned()),
            SchemaType::Avro,
            schema.clone(),
        ),
    );
    let bytes = encoder
        .encode(
            vec![
                ("id", Avro::String("o-1".into())),
                ("total_cents", Avro::Long(1250)),
            ],
            strategy,
        )
        .await
        .expect("encodes");

    let (status, latest) = app
        .get(&format!(
            "/subjects/{}/versions/latest",
            encode("shop/orders-value")
        ))
        .await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["subject"], "shop/orders-value");
    assert_eq!(latest["version"], 1);
    assert_eq!(latest["schema"], schema.as_str());
    let id = latest["id"].as_i64().unwrap() as u32;
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), id);

    let decoder = AvroDecoder::new(SrSettings::new(app.url.clone()));
    let decoded = decoder.decode(Some(&bytes)).await.expect("decodes");
    assert_eq!(
        decoded.value,
        Avro::Record(vec![
            ("id".into(), Avro::String("o-1".into())),
            ("total_cents".into(), Avro::Long(1250)),
        ])
    );
    app.teardown().await;
}

#[tokio::test]
async fn the_same_schema_gets_the_same_id_in_every_subject() {
    let app = spawn().await;
    let schema = order_schema(V1_FIELDS);
    let a = app.register_ok("orders-value", &schema).await;
    // Same schema, other formatting and key order.
    let reformatted = r#"{ "namespace": "shop", "name": "Order", "type": "record",
        "fields": [ {"type": "string", "name": "id"}, {"name": "total_cents", "type": "long"} ] }"#;
    let b = app.register_ok("refunds-value", reformatted).await;
    assert_eq!(a, b);

    // Registering again under the same subject adds no version.
    assert_eq!(app.register_ok("orders-value", &schema).await, a);
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([1]))
    );

    let (status, by_id) = app.get(&format!("/schemas/ids/{a}")).await;
    assert_eq!(status, 200);
    assert_eq!(by_id["schema"], schema.as_str());
    assert!(
        by_id.get("schemaType").is_none(),
        "AVRO is implied: {by_id}"
    );
    let (_, subjects) = app.get(&format!("/schemas/ids/{a}/subjects")).await;
    assert_eq!(subjects, json!(["orders-value", "refunds-value"]));

    // A different schema gets a different id.
    let other = app
        .register_ok("payments-value", &order_schema(V2_FIELDS))
        .await;
    assert_ne!(other, a);

    // The raw schema endpoints answer the schema text itself.
    let raw = app
        .http
        .get(app.url(&format!("/schemas/ids/{a}/schema")))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.text().await.unwrap(), schema);
    app.teardown().await;
}

#[tokio::test]
async fn backward_evolution_is_accepted_and_breaking_changes_are_refused() {
    let app = spawn().await;
    let v1 = app
        .register_ok("orders-value", &order_schema(V1_FIELDS))
        .await;
    let v2 = app
        .register_ok("orders-value", &order_schema(V2_FIELDS))
        .await;
    assert_ne!(v1, v2);
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([1, 2]))
    );

    for fields in [NO_DEFAULT_FIELDS, TYPE_CHANGE_FIELDS] {
        let (status, body) = app.register("orders-value", &order_schema(fields)).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error_code"], 409);
        assert!(
            body["message"].as_str().unwrap().contains("incompatible"),
            "{body}"
        );
    }
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([1, 2]))
    );

    // The compatibility endpoint agrees, and explains when asked.
    let body = json!({ "schema": order_schema(NO_DEFAULT_FIELDS) });
    let (_, answer) = app
        .post(
            "/compatibility/subjects/orders-value/versions/latest",
            body.clone(),
        )
        .await;
    assert_eq!(answer, json!({ "is_compatible": false }));
    let (_, verbose) = app
        .post(
            "/compatibility/subjects/orders-value/versions/latest?verbose=true",
            body,
        )
        .await;
    assert_eq!(verbose["is_compatible"], false);
    assert!(
        verbose["messages"][0].as_str().unwrap().contains("psp"),
        "{verbose}"
    );
    let (_, answer) = app
        .post(
            "/compatibility/subjects/orders-value/versions/1",
            json!({ "schema": order_schema(V2_FIELDS) }),
        )
        .await;
    assert_eq!(answer, json!({ "is_compatible": true }));

    // NONE lets anything through.
    app.put("/config/orders-value", json!({ "compatibility": "NONE" }))
        .await;
    let (status, _) = app
        .register("orders-value", &order_schema(TYPE_CHANGE_FIELDS))
        .await;
    assert_eq!(status, 200);
    app.teardown().await;
}

#[tokio::test]
async fn transitive_levels_check_every_version() {
    let app = spawn().await;
    let without_default = r#"[{"name":"id","type":"string"},{"name":"total_cents","type":"long"},{"name":"currency","type":"string"}]"#;
    for (level, expected) in [("BACKWARD", 200), ("BACKWARD_TRANSITIVE", 409)] {
        let subject = format!("orders-{level}");
        app.put(
            &format!("/config/{subject}"),
            json!({ "compatibility": level }),
        )
        .await;
        app.register_ok(&subject, &order_schema(V1_FIELDS)).await;
        app.register_ok(&subject, &order_schema(V2_FIELDS)).await;
        // Reads v2 data (which has `currency`), not v1 data (which lacks it).
        let (status, body) = app.register(&subject, &order_schema(without_default)).await;
        assert_eq!(status, expected, "{level}: {body}");
    }
    // FORWARD: the old schema must read new data, so dropping a field the
    // old one needs is refused, adding one without a default is fine.
    app.put("/config/fwd", json!({ "compatibility": "FORWARD" }))
        .await;
    app.register_ok("fwd", &order_schema(V1_FIELDS)).await;
    let (status, _) = app
        .register("fwd", &order_schema(r#"[{"name":"id","type":"string"}]"#))
        .await;
    assert_eq!(status, 409);
    app.register_ok("fwd", &order_schema(NO_DEFAULT_FIELDS))
        .await;
    app.teardown().await;
}

#[tokio::test]
async fn errors_carry_confluent_codes() {
    let app = spawn().await;
    let schema = order_schema(V1_FIELDS);
    let id = app.register_ok("orders-value", &schema).await;

    let expect = |got: (u16, Value), status: u16, code: i64| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["error_code"], code, "{}", got.1);
        assert!(got.1["message"].is_string(), "{}", got.1);
    };
    expect(app.get("/subjects/missing/versions").await, 404, 40401);
    expect(app.get("/subjects/missing/versions/1").await, 404, 40401);
    expect(
        app.post("/subjects/missing", json!({ "schema": schema }))
            .await,
        404,
        40401,
    );
    expect(
        app.get("/subjects/orders-value/versions/7").await,
        404,
        40402,
    );
    expect(app.get("/schemas/ids/999999").await, 404, 40403);
    expect(app.get("/schemas/ids/999999/schema").await, 404, 40403);
    expect(
        app.post(
            "/subjects/orders-value",
            json!({ "schema": order_schema(V2_FIELDS) }),
        )
        .await,
        404,
        40403,
    );
    expect(
        app.register("orders-value", &order_schema(NO_DEFAULT_FIELDS))
            .await,
        409,
        409,
    );
    expect(
        app.register("orders-value", "{\"type\":\"record\",\"name\":\"X\"}")
            .await,
        422,
        42201,
    );
    expect(app.register("orders-value", "not json").await, 422, 42201);
    expect(app.register("orders-value", "").await, 422, 42201);
    expect(
        app.post(
            "/subjects/orders-value/versions",
            json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" }),
        )
        .await,
        422,
        42201,
    );
    expect(
        app.get("/subjects/orders-value/versions/abc").await,
        422,
        42202,
    );
    expect(
        app.get("/subjects/orders-value/versions/0").await,
        422,
        42202,
    );
    expect(
        app.put("/config", json!({ "compatibility": "SIDEWAYS" }))
            .await,
        422,
        42203,
    );
    expect(app.get("/config/orders-value").await, 404, 40408);
    expect(app.delete("/config/orders-value").await, 404, 40401);
    expect(app.get("/no/such/route").await, 404, 404);
    expect(
        app.call(reqwest::Method::PATCH, "/subjects", None).await,
        405,
        405,
    );

    // Bodies are read whatever content type they come with.
    let raw = app
        .http
        .post(app.url("/subjects/orders-value"))
        .header("Content-Type", "application/octet-stream")
        .body(json!({ "schema": schema }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);

    // Deletes: soft, then permanent, with Confluent's codes on the way.
    app.register_ok("orders-value", &order_schema(V2_FIELDS))
        .await;
    expect(
        app.delete("/subjects/orders-value/versions/1?permanent=true")
            .await,
        404,
        40407,
    );
    assert_eq!(
        app.delete("/subjects/orders-value/versions/1").await,
        (200, json!(1))
    );
    expect(
        app.delete("/subjects/orders-value/versions/1").await,
        404,
        40406,
    );
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([2]))
    );
    assert_eq!(
        app.get("/subjects/orders-value/versions?deleted=true")
            .await,
        (200, json!([1, 2]))
    );
    expect(
        app.delete("/subjects/orders-value?permanent=true").await,
        404,
        40405,
    );
    assert_eq!(
        app.delete("/subjects/orders-value").await,
        (200, json!([2]))
    );
    expect(app.delete("/subjects/orders-value").await, 404, 40404);
    expect(app.get("/subjects/orders-value/versions").await, 404, 40401);
    assert_eq!(app.get("/subjects").await, (200, json!([])));
    assert_eq!(
        app.get("/subjects?deleted=true").await,
        (200, json!(["orders-value"]))
    );
    // Records written before the delete must stay readable.
    assert_eq!(app.get(&format!("/schemas/ids/{id}")).await.0, 200);
    // Version numbers are not reused after a soft delete.
    assert_eq!(app.register_ok("orders-value", &schema).await, id);
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([3]))
    );
    assert_eq!(
        app.delete("/subjects/orders-value").await,
        (200, json!([3]))
    );
    assert_eq!(
        app.delete("/subjects/orders-value?permanent=true").await,
        (200, json!([1, 2, 3]))
    );
    expect(app.delete("/subjects/orders-value").await, 404, 40401);
    app.teardown().await;
}

#[tokio::test]
async fn compatibility_config_is_read_and_written() {
    let app = spawn().await;
    assert_eq!(
        app.get("/config").await,
        (200, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    assert_eq!(
        app.put("/config", json!({ "compatibility": "FULL" })).await,
        (200, json!({ "compatibility": "FULL" }))
    );
    assert_eq!(
        app.get("/config").await,
        (200, json!({ "compatibilityLevel": "FULL" }))
    );

    let subject = format!("/config/{}", encode("team/orders-value"));
    assert_eq!(app.get(&subject).await.0, 404);
    assert_eq!(
        app.get(&format!("{subject}?defaultToGlobal=true")).await,
        (200, json!({ "compatibilityLevel": "FULL" }))
    );
    // Level names are case-insensitive; answers are upper case.
    assert_eq!(
        app.put(&subject, json!({ "compatibility": "forward_transitive" }))
            .await,
        (200, json!({ "compatibility": "FORWARD_TRANSITIVE" }))
    );
    assert_eq!(
        app.get(&subject).await,
        (200, json!({ "compatibilityLevel": "FORWARD_TRANSITIVE" }))
    );
    assert_eq!(
        app.delete(&subject).await,
        (200, json!({ "compatibilityLevel": "FORWARD_TRANSITIVE" }))
    );
    assert_eq!(app.get(&subject).await.0, 404);

    for level in [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] {
        assert_eq!(
            app.put("/config", json!({ "compatibility": level })).await,
            (200, json!({ "compatibility": level }))
        );
    }
    assert_eq!(
        app.delete("/config").await,
        (200, json!({ "compatibilityLevel": "FULL_TRANSITIVE" }))
    );
    assert_eq!(
        app.get("/config").await,
        (200, json!({ "compatibilityLevel": "BACKWARD" }))
    );
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_new_schema_agree() {
    let app = std::sync::Arc::new(spawn().await);
    // A second instance on the same store: the lock is in Postgres.
    let twin = std::sync::Arc::new(common::spawn_in(&app.db_schema).await);
    let schema = order_schema(V1_FIELDS);

    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 {
            app.clone()
        } else {
            twin.clone()
        };
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            app.register_ok("orders-value", &schema).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id: {ids:?}");
    assert_eq!(
        app.get("/subjects/orders-value/versions").await,
        (200, json!([1]))
    );

    // The same new schema in 8 subjects at once: one global id.
    let schema = order_schema(V2_FIELDS);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 {
            app.clone()
        } else {
            twin.clone()
        };
        let schema = schema.clone();
        tasks.push(tokio::spawn(async move {
            app.register_ok(&format!("s{i}"), &schema).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one id: {ids:?}");

    for i in 0..8 {
        assert_eq!(
            app.get(&format!("/subjects/s{i}/versions")).await,
            (200, json!([1]))
        );
    }
    // The twin shares the schema: tearing down one instance drops it.
    drop(twin);
    let app = std::sync::Arc::into_inner(app).expect("tasks are done");
    app.teardown().await;
}

#[tokio::test]
async fn references_resolve_against_other_subjects() {
    let app = spawn().await;
    let money = r#"{"type":"record","name":"Money","namespace":"shop","fields":[{"name":"cents","type":"long"},{"name":"currency","type":"string"}]}"#;
    app.register_ok("shop.Money", money).await;
    // `Money`, not `shop.Money`: schema_registry_converter only inlines a
    // reference written as `.shop.Money` or as a name in the same namespace.
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"total","type":"Money"}]}"#;
    let references = json!([{ "name": "shop.Money", "subject": "shop.Money", "version": 1 }]);
    let (status, body) = app
        .post(
            "/subjects/orders-value/versions",
            json!({ "schema": order, "schemaType": "AVRO", "references": references }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, version) = app.get("/subjects/orders-value/versions/1").await;
    assert_eq!(version["references"], references);
    assert_eq!(
        app.get("/subjects/shop.Money/versions/1/referencedby")
            .await,
        (200, json!([body["id"]]))
    );

    // Without the reference the name is unknown.
    let (status, _) = app.register("other-value", order).await;
    assert_eq!(status, 422);
    // A reference to a version that does not exist is an invalid schema.
    let bad = json!([{ "name": "shop.Money", "subject": "shop.Money", "version": 9 }]);
    let (status, body) = app
        .post(
            "/subjects/other-value/versions",
            json!({ "schema": order, "references": bad }),
        )
        .await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));

    // The converter inlines references when decoding.
    let id = body_id(&app.get("/subjects/orders-value/versions/1").await.1);
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&id.to_be_bytes());
    // id "o", total {cents 5, currency "EUR"}
    bytes.extend_from_slice(&[2, b'o', 10, 6, b'E', b'U', b'R']);
    let decoded = AvroDecoder::new(SrSettings::new(app.url.clone()))
        .decode(Some(&bytes))
        .await
        .expect("decodes");
    assert_eq!(
        decoded.value,
        Avro::Record(vec![
            ("id".into(), Avro::String("o".into())),
            (
                "total".into(),
                Avro::Record(vec![
                    ("cents".into(), Avro::Long(5)),
                    ("currency".into(), Avro::String("EUR".into())),
                ])
            ),
        ])
    );
    app.teardown().await;
}

fn body_id(body: &Value) -> u32 {
    body["id"].as_u64().unwrap() as u32
}

#[tokio::test]
async fn ops_endpoints_answer() {
    let app = spawn().await;
    assert_eq!(app.get("/").await, (200, json!({})));
    assert_eq!(app.get("/schemas/types").await, (200, json!(["AVRO"])));
    app.register_ok("orders-value", &order_schema(V1_FIELDS))
        .await;

    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (health.status().as_u16(), health.text().await.unwrap()),
        (200, "ok".to_owned())
    );
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("schema_registry_schemas_registered_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"schema_registry_http_requests_total{method="POST",route="/subjects/{subject}/versions",status="200"} 1"#),
        "{metrics}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn readyz_is_503_and_build_fails_when_postgres_is_unreachable() {
    let unreachable = "postgres://postgres@127.0.0.1:1/checkout";
    let config = schema_registry::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url: unreachable.to_owned(),
        db_schema: "unused".to_owned(),
    };
    assert!(schema_registry::Application::build(config).await.is_err());

    // A running registry whose database goes away: a lazy pool that never
    // connects stands in for it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy(unreachable)
        .unwrap();
    let state = schema_registry::routes::AppState {
        store: schema_registry::store::Store::from_pool(pool),
        metrics: std::sync::Arc::new(schema_registry::telemetry::Metrics::new().unwrap()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { axum::serve(listener, schema_registry::routes::router(state)).await },
    );
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Store failures reach clients as 50001 without database details.
    let (status, body) = {
        let r = client
            .get(format!("http://{addr}/subjects"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({ "error_code": 50001, "message": "Error in the backend data store" })
    );
}
