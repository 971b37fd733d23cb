//! The ingress: validates requests, writes them as commands to Kafka
//! (answering only after the broker acknowledged), and serves reads from
//! the Postgres read model, waiting for the caller's own write on request.
//!
//! - [`routes`]: the endpoints, one module per resource, and their OpenAPI;
//! - [`auth`]: bearer tokens, users, roles; [`rate_limit`]: budgets;
//! - [`error`]: the one error body every non-2xx answer uses;
//! - [`correlation`]: the `X-Correlation-ID` layer;
//! - [`extract`]: JSON input with unknown fields refused;
//! - [`commands`]: producing commands to Kafka, stamped with the
//!   [`table_versions`] they are priced at;
//! - [`idempotency`]: `Idempotency-Key` on every write: stable command ids,
//!   stored and replayed answers;
//! - [`read_model`] and [`waiters`]: reading carts and waiting for versions.

pub mod auth;
pub mod commands;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod http_metrics;
pub mod idempotency;
pub mod invoice_pdf;
pub mod personal;
pub mod rate_limit;
pub mod read_model;
pub mod routes;
pub mod table_versions;
pub mod waiters;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;

use platform::config::PipelineConfig;
use platform::ops::Readiness;

/// The master key of [`Config::for_tests`] (and of the tests' child
/// services, which must open what an in-process ingress sealed): a test
/// value, never read from a deployment's environment.
pub const TEST_PII_MASTER_KEYS: &str = "test:dGVzdC1tYXN0ZXIta2V5LW9mLTMyLWJ5dGVzLTAwMDA=";

#[derive(Debug, Clone)]
pub struct Config {
    /// `INGRESS_ADDR`: the API, the storefront's calls and the webhooks.
    pub addr: SocketAddr,
    /// `OPS_ADDR` (default `127.0.0.1:9100`): `/readyz` and `/metrics`,
    /// apart from the public port, so the internet reaches neither the
    /// readiness checks (which query Kafka, the registry and Postgres and
    /// tell their errors) nor the metrics. `/healthz` answers on both.
    pub ops_addr: SocketAddr,
    pub pipeline: PipelineConfig,
    pub auth: auth::AuthConfig,
    /// `RATE_LIMIT_API` (per second/burst, per caller)
    pub api_budget: rate_limit::Budget,
    /// `RATE_LIMIT_ADMIN`
    pub admin_budget: rate_limit::Budget,
    /// `RATE_LIMIT_WEBHOOKS` (per source address)
    pub webhook_budget: rate_limit::Budget,
    /// `INGRESS_REPLICAS` (default 1): how many replicas share the budgets;
    /// each enforces its share ([`rate_limit::Budget::share`]).
    pub replicas: u32,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins; none by default.
    pub cors_origins: Vec<String>,
    /// `TRUSTED_PROXIES` (default 0): how many proxies of ours stand in
    /// front of the ingress; the client IP is then that many entries from
    /// the right of `X-Forwarded-For` (`TRUST_FORWARDED_FOR=true`, the
    /// older setting, means one).
    pub trusted_proxies: u32,
    /// `REQUEST_TIMEOUT_SECS`: longer than the longest `Prefer: wait`.
    pub request_timeout: Duration,
    /// `KAFKA_ACK_TIMEOUT_MS`: how long a write waits for the broker's
    /// acknowledgement before answering 504 (outcome unknown); shorter
    /// than the request timeout.
    pub ack_timeout: Duration,
    /// The seller's pricing policy (`PRICING_*`, as the cart processor
    /// reads it), for estimates.
    pub pricing: rules::pricing::PricingPolicy,
    /// `CART_MAX_QUANTITY`, `CART_MAX_LINES` (as the cart processor reads them).
    pub limits: rules::cart::CartLimits,
    /// `ORDER_RETURN_ORIGINS`, `ORDER_RETURN_HTTP_ALLOWED`.
    pub return_urls: routes::orders::ReturnUrls,
    /// `RAZORPAY_WEBHOOK_SECRET`, `STRIPE_WEBHOOK_SECRET` (and their
    /// `_PREVIOUS`/`_PREVIOUS_UNTIL` during a rotation).
    pub webhooks: routes::webhooks::WebhookConfig,
    /// `DOCS_ASSETS_DIR`: Swagger UI's files for `/docs`.
    pub docs_assets: std::path::PathBuf,
    /// `STOREFRONT_RAZORPAY_CHECKOUT_URL`: where the storefront sends a
    /// buyer to pay a Razorpay order (`{order_id}` replaced).
    pub razorpay_checkout_url: Option<String>,
    /// `PII_MASTER_KEYS`: the master keys wrapping personal data keys
    /// (`platform::pii`; a secret).
    pub pii: platform::pii::Keyring,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        use platform::config::var;
        Ok(Config {
            addr: platform::config::addr("INGRESS_ADDR", "127.0.0.1:8080")?,
            ops_addr: platform::config::addr("OPS_ADDR", "127.0.0.1:9100")?,
            pipeline: PipelineConfig::from_env()?,
            auth: auth::AuthConfig::from_env()?,
            api_budget: rate_limit::Budget::from_env(
                "RATE_LIMIT_API",
                rate_limit::Budget {
                    per_second: 20,
                    burst: 40,
                },
            )?,
            admin_budget: rate_limit::Budget::from_env(
                "RATE_LIMIT_ADMIN",
                rate_limit::Budget {
                    per_second: 10,
                    burst: 20,
                },
            )?,
            // A gateway sends two or three events per payment from a pool
            // of addresses: a thousand a second from one address is more
            // than a thousand purchases a second would bring, so beyond it
            // is a flood, not a gateway.
            webhook_budget: rate_limit::Budget::from_env(
                "RATE_LIMIT_WEBHOOKS",
                rate_limit::Budget {
                    per_second: 1000,
                    burst: 2000,
                },
            )?,
            replicas: {
                let raw = var("INGRESS_REPLICAS", "1");
                raw.parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow::anyhow!("INGRESS_REPLICAS={raw}: a number above 0"))?
            },
            cors_origins: var("CORS_ALLOWED_ORIGINS", "")
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect(),
            trusted_proxies: match var("TRUSTED_PROXIES", "").as_str() {
                "" if var("TRUST_FORWARDED_FOR", "false") == "true" => 1,
                "" => 0,
                n => n
                    .parse()
                    .map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES={n}: {e}"))?,
            },
            request_timeout: Duration::from_secs(var("REQUEST_TIMEOUT_SECS", "40").parse()?),
            ack_timeout: Duration::from_millis(var("KAFKA_ACK_TIMEOUT_MS", "15000").parse()?),
            pricing: rules::pricing::PricingPolicy::from_settings(var)?,
            limits: rules::cart::CartLimits::from_settings(var)?,
            return_urls: routes::orders::ReturnUrls::from_env(),
            webhooks: routes::webhooks::WebhookConfig::from_env()?,
            docs_assets: var("DOCS_ASSETS_DIR", routes::docs::DEFAULT_ASSETS_DIR).into(),
            razorpay_checkout_url: Some(var("STOREFRONT_RAZORPAY_CHECKOUT_URL", ""))
                .filter(|u| !u.is_empty()),
            pii: platform::pii::Keyring::from_env()?,
        })
    }

    /// The configuration for tests: port 0, the given pipeline, HS256
    /// secret and webhook secrets.
    pub fn for_tests(
        pipeline: PipelineConfig,
        hs256_secret: &str,
        webhooks: routes::webhooks::WebhookConfig,
    ) -> Config {
        Config {
            addr: "127.0.0.1:0".parse().expect("a literal address"),
            ops_addr: "127.0.0.1:0".parse().expect("a literal address"),
            pipeline,
            auth: auth::AuthConfig {
                hs256_secret: Some(hs256_secret.to_owned()),
                ..auth::AuthConfig::default()
            },
            api_budget: rate_limit::Budget {
                per_second: 1000,
                burst: 1000,
            },
            admin_budget: rate_limit::Budget {
                per_second: 1000,
                burst: 1000,
            },
            webhook_budget: rate_limit::Budget {
                per_second: 1000,
                burst: 1000,
            },
            replicas: 1,
            cors_origins: Vec::new(),
            trusted_proxies: 0,
            request_timeout: Duration::from_secs(40),
            ack_timeout: Duration::from_secs(15),
            pricing: rules::pricing::PricingPolicy::default(),
            limits: rules::cart::CartLimits::default(),
            return_urls: routes::orders::ReturnUrls {
                origins: vec!["https://shop.example".into()],
                allow_http: false,
            },
            webhooks,
            docs_assets: concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../web/node_modules/swagger-ui-dist"
            )
            .into(),
            razorpay_checkout_url: None,
            pii: platform::pii::Keyring::parse(TEST_PII_MASTER_KEYS)
                .expect("the test master key parses"),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub commands: commands::CommandWriter,
    /// Seals personal fields on their way in, opens them on their way out.
    pub vault: Arc<platform::pii::Vault>,
    /// Users' pseudonyms and emails' blind indexes.
    pub pseudonyms: platform::pii::Pseudonyms,
    pub pool: PgPool,
    pub waiters: Arc<waiters::VersionWaiters>,
    pub pricing: Arc<rules::pricing::PricingPolicy>,
    pub limits: rules::cart::CartLimits,
    pub return_urls: Arc<routes::orders::ReturnUrls>,
    pub webhooks: Arc<routes::webhooks::WebhookConfig>,
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    /// Where the ops endpoints answer; they stop when this is dropped
    /// (when the API stops, or an application built is never run).
    ops_addr: SocketAddr,
    _ops_stop: tokio::sync::oneshot::Sender<()>,
    pool: PgPool,
}

/// How often expired idempotency keys are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// How often the `orders` gauge is counted again.
const COUNT_EVERY: Duration = Duration::from_secs(15);

impl Application {
    /// Connects to Kafka, the registry and Postgres, and binds the address
    /// (port 0 picks a free one, for tests).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let p = &config.pipeline;
        anyhow::ensure!(
            config.ack_timeout < config.request_timeout,
            "KAFKA_ACK_TIMEOUT_MS must be shorter than REQUEST_TIMEOUT_SECS"
        );
        let pool = platform::db::connect(&p.database_url, &p.database_schema, 16).await?;
        platform::db::report_pool(&pool);
        // Registered now, so a first scrape already has every series.
        let _ = http_metrics::metrics();
        let codec = p.codec().await?;
        let producer = platform::kafka::producer(&p.kafka_brokers)?;
        platform::kafka::warm_up(&producer, Duration::from_secs(10)).await?;
        let waiters = waiters::VersionWaiters::listen(&pool).await?;
        let readiness = Readiness::new()
            .kafka(producer.clone())
            .registry(p.schema_registry_url.clone())
            .postgres(pool.clone());
        let vault = Arc::new(platform::pii::Vault::new(pool.clone(), config.pii.clone()));
        let state = AppState {
            commands: commands::CommandWriter::new(
                producer,
                codec.clone(),
                config.ack_timeout,
                table_versions::TableVersions::follow(&p.kafka_brokers, codec.names()).await?,
            ),
            // The sinks' migrations make `pii_keys`: a fresh stack may
            // start the ingress first.
            pseudonyms: platform::startup::patiently(
                "the pseudonym key (pii_keys)",
                platform::startup::wait_limit()?,
                |e: &platform::pii::PiiError| matches!(e, platform::pii::PiiError::Db(_)),
                || vault.pseudonyms(),
            )
            .await?,
            vault,
            pool,
            waiters,
            pricing: Arc::new(config.pricing.clone()),
            limits: config.limits,
            return_urls: Arc::new(config.return_urls.clone()),
            webhooks: Arc::new(config.webhooks.clone()),
        };
        let verifier = auth::Verifier::new(&config.auth, state.pseudonyms.clone())?;
        let groups = routes::Groups {
            api: rate_limit::Limiter::new(
                "api",
                config.api_budget.share(config.replicas),
                verifier.clone(),
                config.trusted_proxies,
            ),
            admin: rate_limit::Limiter::new(
                "admin",
                config.admin_budget.share(config.replicas),
                verifier.clone(),
                config.trusted_proxies,
            ),
            webhooks: rate_limit::Limiter::new(
                "webhooks",
                config.webhook_budget.share(config.replicas),
                verifier.clone(),
                config.trusted_proxies,
            ),
        };
        let keys = idempotency::Keys::new(state.pool.clone(), config.request_timeout);
        let (api, doc) = routes::api(state.clone(), groups, keys);
        let router = Router::new()
            .merge(api)
            .merge(routes::docs::router(doc, config.docs_assets.clone()))
            .merge(routes::storefront::router(
                config.razorpay_checkout_url.clone(),
            ))
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed)
            .route_layer(axum::middleware::from_fn(http_metrics::layer))
            // Liveness for a load balancer; readiness and metrics are on
            // the ops listener only.
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .layer(cors(&config.cors_origins)?)
            .layer(axum::Extension(verifier))
            .layer(axum::middleware::from_fn(error::normalize))
            .layer(axum::middleware::from_fn(correlation::layer))
            .layer(security_headers());
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let (ops_stop, ops_stopped) = tokio::sync::oneshot::channel::<()>();
        let ops_addr = platform::ops::serve(config.ops_addr, readiness, async {
            let _ = ops_stopped.await;
        })
        .await
        .map_err(|e| anyhow::anyhow!("OPS_ADDR {}: {e}", config.ops_addr))?;
        Ok(Application {
            listener,
            router,
            ops_addr,
            _ops_stop: ops_stop,
            pool: state.pool,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/readyz` and `/metrics` answer.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let counts = http_metrics::refresh_orders_periodically(self.pool.clone(), COUNT_EVERY);
        let purge = idempotency::purge_expired_periodically(self.pool, PURGE_EVERY);
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        purge.abort();
        counts.abort();
        Ok(served?)
    }
}

/// CORS for the configured origins only; no origins, no CORS headers.
fn cors(origins: &[String]) -> anyhow::Result<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o).map_err(|e| anyhow::anyhow!("CORS_ALLOWED_ORIGINS {o}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-correlation-id"),
            header::HeaderName::from_static("prefer"),
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-correlation-id"),
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static(idempotency::REPLAYED_HEADER),
        ])
        .max_age(Duration::from_secs(600)))
}

/// Security headers on every answer.
fn security_headers() -> tower::layer::util::Stack<
    tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue>,
    tower::layer::util::Stack<
        tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue>,
        tower::layer::util::Stack<
            tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue>,
            tower_http::set_header::SetResponseHeaderLayer<axum::http::HeaderValue>,
        >,
    >,
> {
    use axum::http::{header, HeaderValue};
    use tower_http::set_header::SetResponseHeaderLayer as Set;
    tower::layer::util::Stack::new(
        Set::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        ),
        tower::layer::util::Stack::new(
            Set::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            tower::layer::util::Stack::new(
                // The storefront's page sets a fuller policy of its own.
                Set::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("frame-ancestors 'none'"),
                ),
                Set::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ),
        ),
    )
}
