//! Private servers for tests that kill one: the shared broker and Postgres
//! serve every test running in parallel, so a test that kills a broker or
//! a database runs its own, on free ports and a scratch directory, and can
//! SIGKILL it and start it again on the same data.
//!
//! - [`PrivateKafka`]: `scripts/kafka server DIR PORT CONTROLLER_PORT`, one
//!   KRaft node (the first start formats DIR; the script execs Java, so the
//!   child's pid is the broker's).
//! - [`PrivatePostgres`]: `initdb` and `postgres` from the Debian server
//!   packages, run as the `postgres` user when the tests run as root
//!   (`setpriv` execs, so the child's pid is the postmaster's).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{free_port, register_pid, unregister_pid};

/// Scratch directories to remove if the test exits from the panic hook.
fn dirs() -> &'static Mutex<Vec<PathBuf>> {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    &DIRS
}

/// Removes every scratch directory (the panic hook's last act; the
/// servers were killed before, with the other children).
pub fn cleanup_all() {
    let all: Vec<PathBuf> = dirs().lock().map(|d| d.clone()).unwrap_or_default();
    for d in all {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "checkout-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    ));
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    if let Ok(mut d) = dirs().lock() {
        d.push(dir.clone());
    }
    dir
}

fn forget_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Ok(mut d) = dirs().lock() {
        d.retain(|x| x != dir);
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the ingress crate sits in the workspace")
        .to_owned()
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn running(child: &mut Option<Child>) -> bool {
    child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

// ---------------------------------------------------------------------------
// Kafka
// ---------------------------------------------------------------------------

/// A single-node Apache Kafka of this test's own.
pub struct PrivateKafka {
    pub dir: PathBuf,
    pub port: u16,
    controller_port: u16,
    child: Option<Child>,
}

impl PrivateKafka {
    /// Formats a scratch directory and starts the broker; waits until it
    /// answers a metadata request.
    pub async fn start() -> PrivateKafka {
        let mut kafka = PrivateKafka {
            dir: scratch_dir("kafka"),
            port: free_port(),
            controller_port: free_port(),
            child: None,
        };
        for attempt in 1.. {
            kafka.spawn();
            match kafka.try_ready(Duration::from_secs(120)).await {
                Ok(()) => break,
                // scripts/lib.sh (kafka_server) draws a random cluster id
                // in URL-safe base64, which starts with '-' once in 64
                // draws; StorageTool then reads it as an option and the
                // format fails. Kafka's own Uuid.randomUuid() redraws such
                // ids. Until the script does, draw again here.
                Err(log)
                    if attempt < 4
                        && log.contains("argument --cluster-id/-t: expected one argument") =>
                {
                    eprintln!("private kafka: the cluster id began with '-' (scripts/lib.sh); formatting again");
                    kafka.kill9();
                    let _ = std::fs::remove_dir_all(kafka.dir.join("data"));
                }
                Err(log) => panic!("the private broker did not start; its log ends with:\n{log}"),
            }
        }
        kafka
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("the broker's log file");
        let child = Command::new("bash")
            .arg(repo_root().join("scripts/kafka"))
            .arg("server")
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(self.controller_port.to_string())
            // Several brokers may run at once on two cores.
            .env("KAFKA_BROKER_HEAP", "-Xms128m -Xmx512m")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file, again"))
            .stderr(log)
            .spawn()
            .expect("starting scripts/kafka server");
        register_pid(child.id());
        eprintln!(
            "private kafka: pid {} on 127.0.0.1:{} (data {})",
            child.id(),
            self.port,
            self.dir.display()
        );
        self.child = Some(child);
    }

    /// Waits until the broker answers a metadata request naming itself.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        if let Err(log) = self.try_ready(timeout).await {
            panic!("the private broker did not start; its log ends with:\n{log}");
        }
    }

    /// As [`PrivateKafka::wait_ready`]; the end of the broker's log if it
    /// exited or did not answer in time.
    async fn try_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let started = Instant::now();
        let brokers = self.brokers();
        let client: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("log_level", "0")
            .create()
            .expect("a metadata client");
        let client = std::sync::Arc::new(client);
        loop {
            if !running(&mut self.child) {
                return Err(log_tail(&self.log(), 40));
            }
            let c = client.clone();
            let answered = tokio::task::spawn_blocking(move || {
                use rdkafka::consumer::Consumer;
                c.fetch_metadata(None, Duration::from_secs(2))
                    .is_ok_and(|m| !m.brokers().is_empty())
            })
            .await
            .unwrap_or(false);
            if answered {
                eprintln!("private kafka: answering after {:?}", started.elapsed());
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "(no answer within {timeout:?})\n{}",
                    log_tail(&self.log(), 40)
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGKILL to the broker's JVM: nothing is flushed or closed. Returns
    /// whether it was running.
    pub fn kill9(&mut self) -> bool {
        let was = running(&mut self.child);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            unregister_pid(c.id());
        }
        was
    }

    /// Starts the broker again on the same data and ports.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the broker first");
        self.spawn();
        self.wait_ready(Duration::from_secs(120)).await;
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill9();
        forget_dir(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// Postgres
// ---------------------------------------------------------------------------

/// A Postgres server of this test's own (trust authentication, superuser
/// `postgres`).
pub struct PrivatePostgres {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

fn pg_bindir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin"))
        .find(|b| b.join("initdb").exists())
        .expect("Postgres server binaries under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` as the `postgres` user when we are root (initdb and postgres
/// refuse to run as root); `setpriv` execs, so the pid stays the program's.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// The pids whose parent is `pid` (read from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Whether `pid` runs (a zombie, dead but not reaped, does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let dir = scratch_dir("pg");
        let data = dir.join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {}", dir.display());
        }
        let out = as_postgres(&pg_bindir().join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = PrivatePostgres {
            dir,
            port: free_port(),
            child: None,
        };
        pg.spawn();
        pg.wait_ready(Duration::from_secs(60)).await;
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("the server's log file");
        let child = as_postgres(&pg_bindir().join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=32MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file, again"))
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        register_pid(child.id());
        eprintln!(
            "private postgres: pid {} on 127.0.0.1:{} (data {})",
            child.id(),
            self.port,
            self.dir.display()
        );
        self.child = Some(child);
    }

    pub async fn wait_ready(&mut self, timeout: Duration) {
        use sqlx::Connection;
        let started = Instant::now();
        loop {
            assert!(
                running(&mut self.child),
                "the private postgres exited; its log ends with:\n{}",
                log_tail(&self.log(), 40)
            );
            if let Ok(mut c) = sqlx::PgConnection::connect(&self.url()).await {
                if sqlx::query("SELECT 1").execute(&mut c).await.is_ok() {
                    eprintln!("private postgres: answering after {:?}", started.elapsed());
                    return;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "the private postgres did not answer within {timeout:?}; its log ends with:\n{}",
                log_tail(&self.log(), 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL to the postmaster and every process it started (backends,
    /// checkpointer, WAL writer): the server stops as in a power cut, and
    /// the next start recovers from the WAL. Returns whether it ran.
    pub fn kill9(&mut self) -> bool {
        let was = running(&mut self.child);
        let Some(mut c) = self.child.take() else {
            return was;
        };
        let family = children_of(c.id());
        let _ = c.kill();
        for pid in &family {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = c.wait();
        unregister_pid(c.id());
        // The next postmaster refuses to start while an old backend still
        // holds the shared memory: wait until they are gone.
        let deadline = Instant::now() + Duration::from_secs(20);
        while family.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        was
    }

    /// Starts the server again on the same data (crash recovery).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the server first");
        self.spawn();
        self.wait_ready(Duration::from_secs(60)).await;
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.kill9();
        forget_dir(&self.dir);
    }
}
