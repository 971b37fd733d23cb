//! Notifications end to end: a buyer places an order with an email
//! address and pays (or fails to pay) at the gateway simulator; the
//! notification worker (`sinks notifications`, a real process so it can be
//! killed) sends over SMTP to a real SMTP server, aiosmtpd
//! (`scripts/python/mail_catcher.py`, from the test venv), which writes
//! every message it accepts into a folder; the test reads them back
//! (subject, recipient, Message-ID, the decoded text and HTML parts).
//!
//! The faults: the worker SIGKILLed after it sent an email and before its
//! batch committed (the email must not come twice), and the SMTP server
//! down while a payment-failure email is due (the email must come once
//! the server is back, and the worker must say it is not ready meanwhile).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::shop::Shop as Stack;
use common::{ChildGuard, TestEnv};

const BUYER_EMAIL: &str = "buyer@example.com";

impl Stack {
    async fn open() -> Stack {
        let env = TestEnv::new().await;
        let addr = env.spawn_ingress().await;
        let sim = env.spawn_gateway_simulator(Some(addr)).await;
        env.spawn_gateway_worker(&sim, 2);
        env.spawn_cart_processor();
        env.spawn_order_processor();
        env.spawn_sinks();
        env.spawn_webhook_processor();
        env.spawn_enrollment_processor();
        Stack {
            env,
            http: reqwest::Client::new(),
            base: format!("http://{addr}/api/v1"),
            sim,
        }
    }

    /// `sinks notifications` sending to the SMTP server on `smtp_port`.
    fn worker(&self, smtp_port: u16, extra: &[(&str, &str)]) -> ChildGuard {
        let url = format!("smtp://127.0.0.1:{smtp_port}");
        let mut envs = vec![
            ("NOTIFY_TRANSPORT", "smtp"),
            ("SMTP_URL", url.as_str()),
            ("SMTP_TIMEOUT_MS", "3000"),
            ("NOTIFY_FROM", "InternHub <no-reply@internhub.test>"),
        ];
        envs.extend_from_slice(extra);
        self.env.child_with("sinks", &["notifications"], &envs)
    }

    /// `user` places a cart of one `design` internship, with the buyer's
    /// address; the order's token once its payment session is open.
    async fn order_with_session(&self, user: &str) -> (String, Value) {
        let created: Value = self
            .http
            .post(format!("{}/cart", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({"items": [{"internship_id": "design", "quantity": 1}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cart = created["cart_token"].as_str().unwrap().to_owned();
        let version = created["version"].as_i64().unwrap();
        let c = self
            .get(user, &format!("cart/{cart}?version={version}"))
            .await;
        assert_eq!(c["stale"], false, "{c}");
        let placed = self
            .http
            .post(format!("{}/order", self.base))
            .header("authorization", Self::bearer(user))
            .json(&json!({"cart_token": cart, "email": BUYER_EMAIL}))
            .send()
            .await
            .unwrap();
        assert_eq!(placed.status(), 202);
        let placed: Value = placed.json().await.unwrap();
        let order = placed["order_token"].as_str().unwrap().to_owned();
        let o = self
            .order_until(user, &order, |o| o["attempts"][0]["session_id"].is_string())
            .await;
        (order, o)
    }

    /// The buyer pays (`pay`) or fails (`fail`) session `id` at the
    /// simulator; its webhooks go to the ingress.
    async fn at_gateway(&self, id: &str, action: &str) {
        let res = self
            .http
            .post(format!("{}/sim/sessions/{id}/{action}", self.sim))
            .json(&json!({"method": "card"}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }

    /// Waits until the stage `group` (a notification stage) has stored an
    /// offset past `offset` of `partition` in Postgres: the record there
    /// and everything before it are done.
    async fn committed_past(&self, stage: &str, partition: i32, offset: i64) {
        let group = self.env.config.topics.group(stage);
        let started = Instant::now();
        loop {
            let next: Option<i64> = sqlx::query_scalar(
                "SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND partition = $2",
            )
            .bind(&group)
            .bind(partition)
            .fetch_optional(&self.env.pool)
            .await
            .unwrap();
            if next.is_some_and(|n| n > offset) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{stage} never committed past {partition}@{offset} (at {next:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sent-log row of the email of `kind`: (partition, offset) of the
    /// record that asked for it.
    async fn logged(&self, kind: &str) -> Vec<(i32, i64, String)> {
        sqlx::query_as(
            "SELECT source_partition, source_offset, message_id FROM notifications_sent WHERE kind = $1",
        )
        .bind(kind)
        .fetch_all(&self.env.pool)
        .await
        .unwrap()
    }
}

/// A real SMTP server (aiosmtpd) writing each message it accepts as JSON
/// into `dir`; killed when dropped.
struct Mailroom {
    port: u16,
    dir: PathBuf,
    server: Option<Child>,
    /// `--tls starttls|implicit`, `--login USER:PASSWORD`.
    options: Vec<String>,
}

impl Mailroom {
    fn open(label: &str) -> Mailroom {
        let dir = std::env::temp_dir().join(format!(
            "mailroom-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Mailroom {
            port: common::free_port(),
            dir,
            server: None,
            options: Vec::new(),
        };
        m.start();
        m
    }

    /// A server that requires TLS (`starttls` or `implicit`) and the login
    /// `user:password`. Its certificate, for 127.0.0.1, is signed by a
    /// private CA whose certificate it writes to [`Mailroom::certificate`].
    fn secure(tls: &str, login: &str) -> Mailroom {
        let dir =
            std::env::temp_dir().join(format!("mailroom-{tls}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.with_extension("pem");
        let mut m = Mailroom {
            port: common::free_port(),
            dir,
            server: None,
            options: vec![
                "--tls".into(),
                tls.into(),
                "--cert-out".into(),
                cert.display().to_string(),
                "--login".into(),
                login.into(),
            ],
        };
        m.start();
        m
    }

    fn certificate(&self) -> PathBuf {
        self.dir.with_extension("pem")
    }

    fn python() -> String {
        std::env::var("CHECKOUT_PYTHON").unwrap_or_else(|_| {
            panic!("CHECKOUT_PYTHON is not set: run the tests through scripts/test.sh, which creates the venv with aiosmtpd")
        })
    }

    /// Starts the server on its port and waits until it accepts.
    fn start(&mut self) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/python/mail_catcher.py");
        let child = Command::new(Self::python())
            .arg(&script)
            .arg(self.port.to_string())
            .arg(&self.dir)
            .args(&self.options)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the SMTP server");
        common::register_pid(child.id());
        self.server = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the SMTP server never listened on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the port refuses connections until [`Mailroom::start`].
    fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
            common::unregister_pid(child.id());
        }
        assert!(std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err());
    }

    /// Every message received so far.
    fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push(serde_json::from_str(&text).unwrap());
            }
        }
        out
    }

    fn with_subject(&self, prefix: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["subject"].as_str().unwrap_or("").starts_with(prefix))
            .collect()
    }

    /// Waits until a message whose subject starts with `prefix` arrived,
    /// polling every 10 ms; returns it.
    async fn wait_for(&self, prefix: &str, timeout: Duration) -> Value {
        self.wait_for_since(prefix, timeout).await.0
    }

    /// As [`Mailroom::wait_for`], with the instant of the last poll that
    /// did not find it: the message arrived after it.
    async fn wait_for_since(&self, prefix: &str, timeout: Duration) -> (Value, Instant) {
        let started = Instant::now();
        let mut last_miss = started;
        loop {
            let polled = Instant::now();
            if let Some(m) = self.with_subject(prefix).into_iter().next() {
                return (m, last_miss);
            }
            last_miss = polled;
            assert!(
                started.elapsed() < timeout,
                "no email {prefix:?} within {timeout:?}; got {:?}",
                self.messages()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Mailroom {
    fn drop(&mut self) {
        self.stop_quietly();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.certificate());
    }
}

impl Mailroom {
    fn stop_quietly(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
            common::unregister_pid(child.id());
        }
    }
}

/// `123456` minor units of INR as the emails show them.
fn inr(minor: i64) -> String {
    format!("{}.{:02} INR", minor / 100, minor % 100)
}

fn one_metric(scrape: &common::Scrape, name: &str, label: &str) -> f64 {
    scrape
        .0
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{')?;
            (metric == name && labels.contains(label)).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_emails_its_confirmation_and_enrollment_once_even_when_the_worker_dies_after_sending(
) {
    let stack = Stack::open().await;
    let mail = Mailroom::open("paid");
    // Every batch of the worker is held 6 s after its emails went out and
    // before its offsets commit: the window the kill below lands in. It is
    // wide because CI runs this beside other tests: with 1.5 s a loaded
    // machine once took longer than half of it to count the sent email.
    let hold = Duration::from_millis(6000);
    let mut worker = stack.worker(mail.port, &[("FAULT_HOLD_BATCH_MS", "6000")]);
    worker.wait_ready(Duration::from_secs(60)).await;

    let (order, o) = stack.order_with_session("nina").await;
    let total = o["total_minor"].as_i64().unwrap();
    assert_eq!(o["currency"], "INR", "{o}");
    // The catalog's title of the line (the test catalog titles by id).
    let title = o["placed"]["lines"][0]["title"]
        .as_str()
        .unwrap()
        .to_owned();
    let line_total = o["placed"]["lines"][0]["line_total"]["amount_minor"]
        .as_i64()
        .unwrap();
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
    stack.at_gateway(&session, "pay").await;

    // The confirmation arrives; the batch that sent it is still held (its
    // offsets not stored). Kill the worker there.
    let (confirmation, last_miss) = mail
        .wait_for_since("Your InternHub order is confirmed", Duration::from_secs(60))
        .await;
    // The server has it; the worker commits its sent-log row and counts
    // it as soon as the server's answer reaches it.
    loop {
        let scrape = worker.scrape().await.unwrap();
        let sent = one_metric(
            &scrape,
            "notifications_sent_total",
            "kind=\"order_confirmation\"",
        );
        let open = scrape
            .get("pipeline_uncommitted_records", "notifications-orders")
            .unwrap_or(0.0);
        if sent == 1.0 {
            assert!(
                open > 0.0,
                "the batch that sent the confirmation is still open"
            );
            break;
        }
        assert!(
            last_miss.elapsed() < hold,
            "the worker did not count the email it sent within the hold ({hold:?}); sent {sent}, open {open}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The email was sent after `last_miss` (a poll that did not see it),
    // and its batch commits no sooner than `hold` after the send: a kill
    // now lands before that commit.
    let polled = last_miss.elapsed();
    assert!(polled < hold, "too slow to land in the hold: {polled:?}");
    eprintln!("SIGKILL of the worker {polled:?} after the confirmation was sent (hold {hold:?})");
    assert!(worker.kill9(), "the worker was running when killed");
    let (partition, offset, message_id) = stack.logged("order_confirmation").await[0].clone();
    let stored: Option<i64> = sqlx::query_scalar(
        "SELECT next_offset FROM sink_offsets WHERE consumer_group = $1 AND partition = $2",
    )
    .bind(stack.env.config.topics.group("notifications-orders"))
    .bind(partition)
    .fetch_optional(&stack.env.pool)
    .await
    .unwrap();
    assert!(
        stored.is_none_or(|n| n <= offset),
        "killed in flight: the paid snapshot's offset {offset} was not stored (stored {stored:?}; waited {polled:?} of a {hold:?} hold)"
    );

    // The buyer's emails, as a mail client reads them.
    assert_eq!(confirmation["rcpt_tos"], json!([BUYER_EMAIL]));
    assert_eq!(confirmation["to"], BUYER_EMAIL);
    assert_eq!(confirmation["from"], "InternHub <no-reply@internhub.test>");
    assert_eq!(confirmation["content_type"], "multipart/alternative");
    assert_eq!(
        confirmation["subject"],
        format!("Your InternHub order is confirmed: {}", inr(total))
    );
    assert_eq!(confirmation["message_id"], message_id.as_str());
    assert!(message_id.ends_with("@internhub.test>"), "{message_id}");
    let text = confirmation["text"].as_str().unwrap();
    let html = confirmation["html"].as_str().unwrap();
    assert!(text.contains(&format!("Order {order}")), "{text}");
    assert!(text.contains(&format!("Total: {}", inr(total))), "{text}");
    assert!(text.contains("through razorpay (reference pay_"), "{text}");
    assert!(
        text.contains(&format!("  {title} x 1  {}\n", inr(line_total))),
        "{text}"
    );
    assert!(html.contains(&format!("<td>{title}</td>")), "{html}");
    assert!(
        html.contains(&format!("<strong>{}</strong>", inr(total))),
        "{html}"
    );

    // A new worker reads the held batch again: the sent-log answers, no
    // second confirmation.
    let mut again = stack.worker(mail.port, &[]);
    again.wait_ready(Duration::from_secs(60)).await;
    let enrolled = mail
        .wait_for("You are enrolled: ", Duration::from_secs(60))
        .await;
    stack
        .committed_past("notifications-orders", partition, offset)
        .await;
    let (e_part, e_off, _) = stack.logged("enrollment").await[0].clone();
    stack
        .committed_past("notifications-enrollments", e_part, e_off)
        .await;
    let scrape = again.scrape().await.unwrap();
    assert!(
        one_metric(
            &scrape,
            "notifications_already_sent_total",
            "kind=\"order_confirmation\""
        ) >= 1.0,
        "the restarted worker read the paid snapshot again and found it in the sent-log"
    );
    assert_eq!(
        one_metric(
            &scrape,
            "notifications_sent_total",
            "kind=\"order_confirmation\""
        ),
        0.0,
        "and sent nothing for it"
    );
    assert_eq!(
        mail.with_subject("Your InternHub order is confirmed").len(),
        1,
        "one confirmation: {:?}",
        mail.messages()
    );
    assert_eq!(mail.with_subject("You are enrolled").len(), 1);
    assert_eq!(mail.messages().len(), 2, "{:?}", mail.messages());
    assert_eq!(enrolled["rcpt_tos"], json!([BUYER_EMAIL]));
    let text = enrolled["text"].as_str().unwrap();
    assert_eq!(enrolled["subject"], format!("You are enrolled: {title}"));
    assert!(
        text.contains(&format!("You are enrolled in {title}.")),
        "{text}"
    );
    assert!(text.contains(&format!("Order: {order}")), "{text}");
    assert!(enrolled["html"]
        .as_str()
        .unwrap()
        .contains("Internship: <code>design</code>"));
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications_sent")
        .fetch_one(&stack.env.pool)
        .await
        .unwrap();
    assert_eq!(logged, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_holds_the_payment_failure_email_until_the_server_is_back() {
    let stack = Stack::open().await;
    let mut mail = Mailroom::open("outage");
    let mut worker = stack.worker(mail.port, &[]);
    worker.wait_ready(Duration::from_secs(60)).await;

    let (order, o) = stack.order_with_session("olga").await;
    let total = o["total_minor"].as_i64().unwrap();
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();

    mail.stop();
    stack.at_gateway(&session, "fail").await;
    let o = stack
        .order_until("olga", &order, |o| o["status"] == "failed")
        .await;

    // The worker tries, fails, and says so: not ready, failures counted,
    // the failed order's record not committed.
    let started = Instant::now();
    loop {
        let scrape = worker.scrape().await.unwrap();
        let failures = one_metric(
            &scrape,
            "notifications_send_failures_total",
            "kind=\"payment_failed\",outcome=\"retried\"",
        );
        let ready = reqwest::get(worker.ops_url("/readyz")).await.unwrap();
        if failures >= 2.0 && ready.status() == 503 {
            let body: Value = ready.json().await.unwrap();
            let smtp = body["checks"]["smtp"].as_str().unwrap_or("");
            assert!(
                smtp.starts_with(&format!("smtp://127.0.0.1:{} failing", mail.port)),
                "{body}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the outage was never reported (failures {failures})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mail.messages().is_empty());
    // A failed send leaves its claim, never a delivery.
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications_sent WHERE delivered")
            .fetch_one(&stack.env.pool)
            .await
            .unwrap();
    assert_eq!(delivered, 0, "a failed send is not marked delivered");

    // Back: the email arrives, once, and the worker is ready again.
    mail.start();
    let failed = mail
        .wait_for("Your InternHub payment of", Duration::from_secs(60))
        .await;
    worker.wait_ready(Duration::from_secs(30)).await;
    let (partition, offset, message_id) = stack.logged("payment_failed").await[0].clone();
    stack
        .committed_past("notifications-orders", partition, offset)
        .await;
    assert_eq!(mail.messages().len(), 1, "{:?}", mail.messages());
    assert_eq!(failed["rcpt_tos"], json!([BUYER_EMAIL]));
    assert_eq!(failed["message_id"], message_id.as_str());
    assert_eq!(
        failed["subject"],
        format!(
            "Your InternHub payment of {} did not go through",
            inr(total)
        )
    );
    let reason = o["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["to_status"] == "failed")
        .and_then(|t| t["reason"].as_str())
        .unwrap()
        .to_owned();
    let text = failed["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("order {order} (attempt 1)")),
        "{text}"
    );
    assert!(text.contains(&reason), "{text} / {reason}");
    assert!(failed["html"]
        .as_str()
        .unwrap()
        .contains("did not go through"));
    let scrape = worker.scrape().await.unwrap();
    assert_eq!(
        one_metric(
            &scrape,
            "notifications_sent_total",
            "kind=\"payment_failed\""
        ),
        1.0
    );
}

/// Real providers (SES, SendGrid, Gmail, Postmark) take mail over TLS with
/// a login only. The worker sends through a server that refuses anything
/// else: first one that requires STARTTLS, then one that speaks TLS from
/// the first byte, each with a certificate from a private CA the worker
/// trusts through `SMTP_CA_FILE`, and a login. Each message arrives marked as
/// received over TLS from that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_out_over_starttls_or_implicit_tls_with_a_login() {
    let stack = Stack::open().await;
    let (user, password) = ("mailer", "smtp-login-secret-7f3a");
    for (n, tls) in ["starttls", "implicit"].into_iter().enumerate() {
        let mail = Mailroom::secure(tls, &format!("{user}:{password}"));
        let url = match tls {
            "starttls" => format!("smtp://127.0.0.1:{}?tls=required", mail.port),
            _ => format!("smtps://127.0.0.1:{}", mail.port),
        };
        let ca = mail.certificate().display().to_string();
        let mut worker = stack.env.child_with(
            "sinks",
            &["notifications"],
            &[
                ("NOTIFY_TRANSPORT", "smtp"),
                ("SMTP_URL", url.as_str()),
                ("SMTP_USERNAME", user),
                ("SMTP_PASSWORD", password),
                ("SMTP_CA_FILE", ca.as_str()),
                ("SMTP_TIMEOUT_MS", "3000"),
                ("NOTIFY_FROM", "InternHub <no-reply@internhub.test>"),
            ],
        );
        worker.wait_ready(Duration::from_secs(60)).await;
        let (_, o) = stack.order_with_session(&format!("tls-buyer-{n}")).await;
        let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
        stack.at_gateway(&session, "pay").await;
        let m = mail
            .wait_for("Your InternHub order is confirmed", Duration::from_secs(60))
            .await;
        assert_eq!(m["tls"], true, "{tls}: {m}");
        assert_eq!(m["login"], user, "{tls}: {m}");
        assert_eq!(m["rcpt_tos"], json!([BUYER_EMAIL]), "{tls}: {m}");
        drop(worker);
    }
}

/// The window between a send and its mark: the worker is killed after
/// the file transport wrote the confirmation and before its claim was
/// marked delivered. The next worker finds the claim unmarked, finds the
/// message on disk, marks it, and writes no second file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_sending_and_marking_sends_nothing_twice() {
    let stack = Stack::open().await;
    let dir = std::env::temp_dir().join(format!("mail-{}", uuid::Uuid::new_v4().simple()));
    let dir_s = dir.to_string_lossy().into_owned();
    let file_worker = |extra: &[(&str, &str)]| {
        let mut envs = vec![
            ("NOTIFY_TRANSPORT", "file"),
            ("NOTIFY_FILE_DIR", dir_s.as_str()),
            ("NOTIFY_FROM", "InternHub <no-reply@internhub.test>"),
        ];
        envs.extend_from_slice(extra);
        stack.env.child_with("sinks", &["notifications"], &envs)
    };
    let mut worker = file_worker(&[("FAULT_HOLD_SENT_MS", "6000")]);
    worker.wait_ready(Duration::from_secs(60)).await;
    let (_order, o) = stack.order_with_session("olga").await;
    let session = o["attempts"][0]["session_id"].as_str().unwrap().to_owned();
    stack.at_gateway(&session, "pay").await;

    // The confirmation's file is written; its claim is not marked yet.
    let confirmations = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .filter(|t| t.contains("Your InternHub order is confirmed"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let started = Instant::now();
    while confirmations().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no confirmation written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unmarked: Vec<bool> = sqlx::query_scalar(
        "SELECT delivered FROM notifications_sent WHERE kind = 'order_confirmation'",
    )
    .fetch_all(&stack.env.pool)
    .await
    .unwrap();
    assert_eq!(
        unmarked,
        [false],
        "killed in flight: sent, claim not marked"
    );
    assert!(worker.kill9(), "the worker was running when killed");

    let mut next = file_worker(&[]);
    next.wait_ready(Duration::from_secs(60)).await;
    let started = Instant::now();
    loop {
        let marked: Vec<bool> = sqlx::query_scalar(
            "SELECT delivered FROM notifications_sent WHERE kind = 'order_confirmation'",
        )
        .fetch_all(&stack.env.pool)
        .await
        .unwrap();
        if marked == [true] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not marked: {marked:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A send comes before its mark, in the same transaction: marked
    // delivered means any second file would be there already.
    assert_eq!(
        confirmations().len(),
        1,
        "the confirmation was written twice"
    );
    // The sent-log keeps a reference to the address, not the address.
    let recipient: String = sqlx::query_scalar(
        "SELECT recipient FROM notifications_sent WHERE kind = 'order_confirmation'",
    )
    .fetch_one(&stack.env.pool)
    .await
    .unwrap();
    assert!(!recipient.contains('@'), "{recipient}");
    let _ = std::fs::remove_dir_all(&dir);
}
