//! Secure by default: no service starts without its secrets. Each binary
//! is started with every secret it reads but one; it must exit non-zero at
//! once, naming the missing variable, before it connects to anything (the
//! broker and Postgres addresses given here lead nowhere, so a service that
//! went on would hang, not exit).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin_path, secret_envs};

/// The secrets each service reads, by binary and arguments.
const SERVICES: &[(&str, &[&str], &[&str])] = &[
    (
        "ingress",
        &[],
        &[
            "AUTH_JWT_HS256_SECRET",
            "AUTH_JWT_ISSUER",
            "AUTH_JWT_AUDIENCE",
            "RAZORPAY_WEBHOOK_SECRET",
            "STRIPE_WEBHOOK_SECRET",
            "PII_MASTER_KEYS",
        ],
    ),
    (
        "processors",
        &["gateway"],
        &[
            "RAZORPAY_KEY_ID",
            "RAZORPAY_KEY_SECRET",
            "STRIPE_SECRET_KEY",
        ],
    ),
    ("sinks", &["notifications"], &["PII_MASTER_KEYS"]),
    (
        "gateway-simulator",
        &[],
        &[
            "RAZORPAY_KEY_ID",
            "RAZORPAY_KEY_SECRET",
            "RAZORPAY_WEBHOOK_SECRET",
            "STRIPE_SECRET_KEY",
            "STRIPE_WEBHOOK_SECRET",
        ],
    ),
];

/// Runs `bin args` with only `envs` (and PATH), and returns its exit status
/// and standard error; fails the test if it is still running after 20 s.
fn run_without(bin: &str, args: &[&str], missing: &str) -> (Option<i32>, String) {
    let mut command = Command::new(bin_path(bin));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Addresses that lead nowhere: reaching them would hang, not exit.
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("INGRESS_ADDR", "127.0.0.1:0")
        .env("OPS_ADDR", "127.0.0.1:0")
        .env("SIMULATOR_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in secret_envs() {
        if name != missing {
            command.env(name, value);
        }
    }
    let mut child = command.spawn().expect("the binary starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting on the child") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{bin} {args:?} without {missing} was still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("reading stderr");
    (status.code(), stderr)
}

#[test]
fn every_service_stops_at_start_naming_the_secret_it_lacks() {
    for (bin, args, secrets) in SERVICES {
        for missing in *secrets {
            let (code, stderr) = run_without(bin, args, missing);
            assert!(
                code.is_some_and(|c| c != 0),
                "{bin} {args:?} without {missing}: exit {code:?}, stderr: {stderr}"
            );
            let line = stderr
                .lines()
                .find(|l| l.contains(missing))
                .unwrap_or_else(|| panic!("{bin} {args:?}: no line names {missing}: {stderr}"));
            assert!(
                line.contains("is not set") && line.contains("configuration.md#secrets"),
                "{bin} {args:?}: {line}"
            );
        }
    }
}

#[test]
fn the_ingress_with_an_empty_secret_does_not_start_either() {
    // An empty value is as good as none: `VAR=` in a .env file.
    let mut command = Command::new(bin_path("ingress"));
    command
        .env_clear()
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("INGRESS_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null());
    for (name, value) in secret_envs() {
        command.env(
            name,
            if name == "STRIPE_WEBHOOK_SECRET" {
                "  "
            } else {
                value.as_str()
            },
        );
    }
    let output = command.output().expect("the ingress runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRET is not set"),
        "{stderr}"
    );
}
