//! The transport: a rendered [`Notification`] becomes a MIME message
//! (`multipart/alternative`, text then HTML) with a Message-ID derived from
//! the notification id, handed to an SMTP server or, in development,
//! written as an `.eml` file into a folder (lettre's file transport).
//!
//! Settings (typed in [`MailConfig`], read by [`MailConfig::from_env`]):
//! `NOTIFY_TRANSPORT` = `file` (default) | `smtp`; `NOTIFY_FILE_DIR`
//! (default `.local/mail`); `SMTP_URL`, one of `smtps://host[:465]`
//! (implicit TLS), `smtp://host[:587]?tls=required` (STARTTLS, refused if
//! the server does not offer it) or `smtp://host[:25]` (plain: a relay on
//! the same host or network), default `smtp://127.0.0.1:2525`;
//! `SMTP_USERNAME` with the secret `SMTP_PASSWORD` (sent over TLS only);
//! `SMTP_CA_FILE` (a PEM root to trust besides the public ones, for a
//! private relay); `NOTIFY_FROM` (default `InternHub
//! <no-reply@internhub.local>`); `SMTP_TIMEOUT_MS` (default 10000: a stuck
//! server fails the send well within the consumer's poll interval).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{header, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use platform::config::var;

use super::decide::Notification;

/// Where emails go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// One `.eml` file per email in this folder (created at start-up).
    File(PathBuf),
    /// SMTP to `host:port`, with or without TLS.
    Smtp {
        host: String,
        port: u16,
        security: Security,
    },
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS: a relay on the same host or network only.
    Plain,
    /// STARTTLS, required: a server that does not offer it is refused
    /// (no silent downgrade to plain text).
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
}

/// The SMTP login. Its `Debug` shows the user, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SmtpLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpLogin")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub transport: TransportConfig,
    pub from: Mailbox,
    pub timeout: Duration,
    pub login: Option<SmtpLogin>,
    /// A PEM root certificate trusted besides the public roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("NOTIFY_TRANSPORT must be file or smtp, not {0:?}")]
    Transport(String),
    #[error("SMTP_URL {0:?}: {1}")]
    SmtpUrl(String, &'static str),
    #[error("NOTIFY_FROM {0:?} is not a mailbox: {1}")]
    From(String, String),
    #[error("SMTP_TIMEOUT_MS {0:?} is not a number of milliseconds")]
    Timeout(String),
    #[error(
        "SMTP_PASSWORD is not set: SMTP_USERNAME needs it, and it has no default (see {})",
        platform::config::SECRETS_DOC
    )]
    NoPassword,
    #[error("SMTP_USERNAME is set but SMTP_URL {0:?} has no TLS: a login is sent over TLS only (smtps:// or ?tls=required)")]
    LoginWithoutTls(String),
}

impl MailConfig {
    pub fn from_env() -> Result<MailConfig, ConfigError> {
        let smtp_url = var("SMTP_URL", "smtp://127.0.0.1:2525");
        let mut config = MailConfig::parse(
            &var("NOTIFY_TRANSPORT", "file"),
            &var("NOTIFY_FILE_DIR", ".local/mail"),
            &smtp_url,
            &var("NOTIFY_FROM", "InternHub <no-reply@internhub.local>"),
            &var("SMTP_TIMEOUT_MS", "10000"),
        )?;
        config.ca_file = Some(var("SMTP_CA_FILE", ""))
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from);
        if let TransportConfig::Smtp { security, .. } = config.transport {
            if let Some(username) = platform::config::optional_secret("SMTP_USERNAME") {
                if security == Security::Plain {
                    return Err(ConfigError::LoginWithoutTls(smtp_url));
                }
                let password = platform::config::optional_secret("SMTP_PASSWORD")
                    .ok_or(ConfigError::NoPassword)?;
                config.login = Some(SmtpLogin { username, password });
            }
        }
        Ok(config)
    }

    pub fn parse(
        transport: &str,
        file_dir: &str,
        smtp_url: &str,
        from: &str,
        timeout_ms: &str,
    ) -> Result<MailConfig, ConfigError> {
        let transport = match transport {
            "file" => TransportConfig::File(PathBuf::from(file_dir)),
            "smtp" => parse_smtp_url(smtp_url)?,
            other => return Err(ConfigError::Transport(other.to_owned())),
        };
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| ConfigError::From(from.to_owned(), e.to_string()))?;
        let timeout = timeout_ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| ConfigError::Timeout(timeout_ms.to_owned()))?;
        Ok(MailConfig {
            transport,
            from,
            timeout,
            login: None,
            ca_file: None,
        })
    }
}

/// `smtps://host[:465]`, `smtp://host[:587]?tls=required` or
/// `smtp://host[:25]`. A login in the URL is refused (it would show in
/// process listings and logs: `SMTP_USERNAME`/`SMTP_PASSWORD` carry it),
/// and so is any other query, such as `tls=opportunistic`, which a network
/// attacker downgrades to plain text.
fn parse_smtp_url(url: &str) -> Result<TransportConfig, ConfigError> {
    let bad = |why| ConfigError::SmtpUrl(url.to_owned(), why);
    let (rest, implicit) = if let Some(rest) = url.strip_prefix("smtps://") {
        (rest, true)
    } else if let Some(rest) = url.strip_prefix("smtp://") {
        (rest, false)
    } else {
        return Err(bad("must start with smtps:// or smtp://"));
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if hostport.contains('@') {
        return Err(bad(
            "no login in the URL: set SMTP_USERNAME and SMTP_PASSWORD",
        ));
    }
    let security = match (implicit, query) {
        (true, None) => Security::Implicit,
        (false, None) => Security::Plain,
        (false, Some("tls=required")) => Security::StartTls,
        _ => return Err(bad("the only query is ?tls=required, on smtp://")),
    };
    let hostport = hostport.trim_end_matches('/');
    let default_port = match security {
        Security::Plain => 25,
        Security::StartTls => 587,
        Security::Implicit => 465,
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (hostport, default_port),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(TransportConfig::Smtp {
        host: host.to_owned(),
        port,
        security,
    })
}

/// Why a send failed. A failure is retried (the worker does not commit
/// the batch) unless it is [`permanent`](SendError::permanent): the server
/// refused this message for good (a 5xx, such as a mailbox it does not
/// have), or the message cannot be built. Those are recorded as refused and
/// the worker moves on: one bad address must not stall every email after
/// it.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("writing the message file: {0}")]
    File(#[from] lettre::transport::file::Error),
}

impl SendError {
    pub fn permanent(&self) -> bool {
        match self {
            SendError::Build(_) => true,
            SendError::Smtp(e) => {
                e.is_permanent() && !e.status().is_some_and(|c| about_us(&c.to_string()))
            }
            SendError::File(_) => false,
        }
    }
}

/// Replies that are permanent for the server but say nothing about the
/// message: our login or TLS is wrong (530 authentication or STARTTLS
/// required, 534 mechanism too weak, 535 credentials invalid, 538
/// encryption required). Every email would be refused alike, so they are
/// retried until the configuration is fixed, not recorded as refused.
fn about_us(code: &str) -> bool {
    matches!(code, "530" | "534" | "535" | "538")
}

pub enum Mailer {
    /// The development transport, and the folder it writes to.
    File(AsyncFileTransport<Tokio1Executor>, PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

pub struct Sender {
    mailer: Mailer,
    from: Mailbox,
    /// The domain of Message-IDs: the sender's.
    domain: String,
    /// What `/readyz` and the logs call this transport.
    pub describe: String,
}

impl Sender {
    pub async fn new(config: &MailConfig) -> anyhow::Result<Sender> {
        let (mailer, describe) = match &config.transport {
            TransportConfig::File(dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| {
                    anyhow::anyhow!("creating the mail folder {}: {e}", dir.display())
                })?;
                (
                    Mailer::File(AsyncFileTransport::new(dir), dir.clone()),
                    format!("file:{}", dir.display()),
                )
            }
            TransportConfig::Smtp {
                host,
                port,
                security,
            } => (
                Mailer::Smtp(smtp_transport(config, host, *port, *security).await?),
                match security {
                    Security::Plain => format!("smtp://{host}:{port}"),
                    Security::StartTls => format!("smtp://{host}:{port}?tls=required"),
                    Security::Implicit => format!("smtps://{host}:{port}"),
                },
            ),
        };
        Ok(Sender {
            mailer,
            from: config.from.clone(),
            domain: config.from.email.domain().to_owned(),
            describe,
        })
    }

    /// The Message-ID of notification `n`: the same on every resend.
    pub fn message_id(&self, n: &Notification) -> String {
        message_id(n.id, &self.domain)
    }

    /// Whether `n` was delivered already, as far as the transport can
    /// tell: the file transport looks for a message with its Message-ID in
    /// its folder; an SMTP server cannot be asked (`None`).
    pub async fn delivered(&self, n: &Notification) -> Option<bool> {
        let Mailer::File(_, dir) = &self.mailer else {
            return None;
        };
        let header = format!("Message-ID: {}", self.message_id(n));
        let mut entries = tokio::fs::read_dir(dir).await.ok()?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.path().extension().is_some_and(|e| e == "eml") {
                if let Ok(text) = tokio::fs::read_to_string(entry.path()).await {
                    if text.lines().any(|l| l.eq_ignore_ascii_case(&header)) {
                        return Some(true);
                    }
                }
            }
        }
        Some(false)
    }

    /// Hands `n` to the transport; `Ok` once the server accepted it (or
    /// the file is written).
    pub async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let message = build(n, &self.from, &self.message_id(n))?;
        match &self.mailer {
            Mailer::File(t, _) => {
                t.send(message).await?;
            }
            Mailer::Smtp(t) => {
                t.send(message).await?;
            }
        }
        Ok(())
    }
}

/// The SMTP transport: TLS checked against the public roots (and
/// `SMTP_CA_FILE`'s), the login when configured.
async fn smtp_transport(
    config: &MailConfig,
    host: &str,
    port: u16,
    security: Security,
) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(config.timeout));
    if security != Security::Plain {
        let mut tls = TlsParameters::builder(host.to_owned());
        if let Some(path) = &config.ca_file {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| anyhow::anyhow!("SMTP_CA_FILE {}: {e}", path.display()))?;
            let root = Certificate::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("SMTP_CA_FILE {}: {e}", path.display()))?;
            tls = tls.add_root_certificate(root);
        }
        let tls = tls.build_rustls()?;
        builder = builder.tls(match security {
            Security::Implicit => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if let Some(login) = &config.login {
        builder = builder.credentials(Credentials::new(
            login.username.clone(),
            login.password.clone(),
        ));
    }
    Ok(builder.build())
}

pub fn message_id(id: uuid::Uuid, domain: &str) -> String {
    format!("<{}@{domain}>", id.simple())
}

/// The MIME message: text and HTML alternatives, our Message-ID.
pub fn build(
    n: &Notification,
    from: &Mailbox,
    message_id: &str,
) -> Result<Message, lettre::error::Error> {
    Message::builder()
        .from(from.clone())
        .to(n.to.clone())
        .subject(n.rendered.subject.clone())
        .message_id(Some(message_id.to_owned()))
        .header(header::MIME_VERSION_1_0)
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(n.rendered.text.clone()))
                .singlepart(SinglePart::html(n.rendered.html.clone())),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::decide::Kind;
    use crate::notifications::templates::Rendered;

    #[test]
    fn settings_parse_with_their_defaults_and_refuse_what_this_build_cannot_do() {
        let c = MailConfig::parse(
            "file",
            ".local/mail",
            "smtp://x:1",
            "A <a@b.example>",
            "10000",
        )
        .unwrap();
        assert_eq!(c.transport, TransportConfig::File(".local/mail".into()));
        assert_eq!(c.from.email.to_string(), "a@b.example");
        assert_eq!(c.timeout, Duration::from_secs(10));
        let s =
            MailConfig::parse("smtp", "", "smtp://127.0.0.1:2525", "a@b.example", "500").unwrap();
        let smtp = |host: &str, port, security| TransportConfig::Smtp {
            host: host.into(),
            port,
            security,
        };
        assert_eq!(s.transport, smtp("127.0.0.1", 2525, Security::Plain));
        assert_eq!(
            parse_smtp_url("smtp://relay.local").unwrap(),
            smtp("relay.local", 25, Security::Plain)
        );
        assert_eq!(
            parse_smtp_url("smtps://smtp.example.com").unwrap(),
            smtp("smtp.example.com", 465, Security::Implicit)
        );
        assert_eq!(
            parse_smtp_url("smtp://smtp.example.com?tls=required").unwrap(),
            smtp("smtp.example.com", 587, Security::StartTls)
        );
        assert_eq!(
            parse_smtp_url("smtp://relay:2587?tls=required").unwrap(),
            smtp("relay", 2587, Security::StartTls)
        );
        assert!(matches!(
            MailConfig::parse("pigeon", "", "", "a@b.example", "1"),
            Err(ConfigError::Transport(_))
        ));
        // A login in the URL, a downgradable or unknown query, a bad port.
        assert!(parse_smtp_url("smtp://u:p@relay:25").is_err());
        assert!(parse_smtp_url("smtps://u:p@relay").is_err());
        assert!(parse_smtp_url("smtp://relay?tls=opportunistic").is_err());
        assert!(parse_smtp_url("smtps://relay?tls=required").is_err());
        assert!(parse_smtp_url("http://relay").is_err());
        assert!(parse_smtp_url("smtp://relay:http").is_err());
        assert!(MailConfig::parse("file", "d", "", "not a mailbox", "1").is_err());
    }

    #[test]
    fn a_refusal_of_our_login_or_tls_is_not_a_refusal_of_the_message() {
        assert!(about_us("535") && about_us("530") && about_us("538"));
        assert!(!about_us("550") && !about_us("553"));
    }

    #[test]
    fn a_login_debugs_without_its_password() {
        let login = SmtpLogin {
            username: "mailer".into(),
            password: "hunter2-smtp".into(),
        };
        let shown = format!("{login:?}");
        assert!(
            shown.contains("mailer") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn a_message_has_both_parts_and_a_message_id_derived_from_the_notification() {
        let id = uuid::Uuid::from_u128(0xabc);
        let n = Notification {
            id,
            kind: Kind::Enrollment,
            subject_key: "e-1".into(),
            to: "buyer@example.com".parse().unwrap(),
            rendered: Rendered {
                subject: "You are enrolled: Design".into(),
                text: "plain words".into(),
                html: "<p>html words</p>".into(),
            },
        };
        let from: Mailbox = "InternHub <no-reply@internhub.local>".parse().unwrap();
        let mid = message_id(id, "internhub.local");
        assert_eq!(mid, "<00000000000000000000000000000abc@internhub.local>");
        let raw = String::from_utf8(build(&n, &from, &mid).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <00000000000000000000000000000abc@internhub.local>\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Subject: You are enrolled: Design\r\n"));
        assert!(raw.contains("To: buyer@example.com\r\n"));
        assert!(raw.contains("Content-Type: multipart/alternative;"));
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(raw.contains("Content-Type: text/html; charset=utf-8"));
        assert!(raw.contains("plain words"));
        assert!(raw.contains("<p>html words</p>"));
    }

    #[tokio::test]
    async fn the_file_transport_writes_the_email_into_the_folder() {
        let dir = std::env::temp_dir().join(format!("notify-{}", uuid::Uuid::new_v4().simple()));
        let config = MailConfig::parse(
            "file",
            dir.to_str().unwrap(),
            "",
            "InternHub <no-reply@internhub.local>",
            "1000",
        )
        .unwrap();
        let sender = Sender::new(&config).await.unwrap();
        assert_eq!(sender.describe, format!("file:{}", dir.display()));
        let n = Notification {
            id: uuid::Uuid::from_u128(7),
            kind: Kind::OrderConfirmation,
            subject_key: "ord1".into(),
            to: "buyer@example.com".parse().unwrap(),
            rendered: Rendered {
                subject: "Your InternHub order is confirmed: 29382.00 INR".into(),
                text: "Total: 29382.00 INR".into(),
                html: "<p>Total</p>".into(),
            },
        };
        sender.send(&n).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].extension().unwrap(), "eml");
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        assert!(raw.contains("Subject: Your InternHub order is confirmed: 29382.00 INR"));
        assert!(raw.contains("Message-ID: <00000000000000000000000000000007@internhub.local>"));
        assert!(raw.contains("Total: 29382.00 INR"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
