//! The shopper's side of the end-to-end tests: an HTTP client for the
//! ingress and the gateway simulator beside a [`TestEnv`], with the calls
//! the order, enrollment, analytics and notification tests all make. Each
//! test file starts the stages it needs (its own `Shop::open`) and adds its
//! own calls in an `impl Shop` of its own: a test file is a crate of its
//! own, and this module is part of it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{token, TestEnv, JWT_SECRET};

pub struct Shop {
    pub env: TestEnv,
    pub http: reqwest::Client,
    /// The ingress's `/api/v1`.
    pub base: String,
    /// The gateway simulator's base URL.
    pub sim: String,
}

impl Shop {
    pub fn bearer(user: &str) -> String {
        format!("Bearer {}", token(user, "user", 600, JWT_SECRET))
    }

    /// `GET /api/v1/{path}` as `user`, waiting (`Prefer: wait=30`) where
    /// the route waits.
    pub async fn get(&self, user: &str, path: &str) -> Value {
        self.http
            .get(format!("{}/{path}", self.base))
            .header("authorization", Self::bearer(user))
            .header("prefer", "wait=30")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Reads the order until `done` holds (a condition, not a sleep).
    pub async fn order_until(
        &self,
        user: &str,
        order: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let o = self.get(user, &format!("order/{order}")).await;
            if done(&o) {
                return o;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "order never got there: {o}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The buyer pays session `id` on the simulator's hosted page (its API).
    pub async fn pay_at_gateway(&self, id: &str) {
        let paid = self
            .http
            .post(format!("{}/sim/sessions/{id}/pay", self.sim))
            .json(&json!({"method": "card"}))
            .send()
            .await
            .unwrap();
        assert!(paid.status().is_success(), "{}", paid.text().await.unwrap());
    }

    /// `user`'s enrollments once `done` holds.
    pub async fn enrollments_until(
        &self,
        user: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let mine = self.get(user, "me/enrollments").await;
            let list = mine["enrollments"].as_array().cloned().unwrap_or_default();
            if done(&list) {
                return list;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "enrollments never got there: {mine}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
