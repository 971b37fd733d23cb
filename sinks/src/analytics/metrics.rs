//! The analytics gauges, read from the analytics views every
//! `ANALYTICS_REFRESH_MS` (5000) by every sinks process that runs the
//! analytics sinks, and served on its `/metrics`:
//!
//! - `analytics_funnel{step}`: carts_created, orders_placed, orders_paid,
//!   orders_enrolled;
//! - `analytics_conversion_ratio{step}`: cart_to_order, order_to_paid,
//!   paid_to_enrolled, cart_to_paid (absent while its denominator is 0);
//! - `analytics_revenue{currency,period}`: gross revenue of paid orders in
//!   the currency's major units, `period` = `today` (UTC) or `total`;
//! - `analytics_payment_attempts{gateway,method,outcome}` and
//!   `analytics_payment_success_ratio{gateway,method}` (decided attempts);
//! - `analytics_coupon_uses{code}`: committed uses of the
//!   `ANALYTICS_TOP_COUPONS` (20) most used coupons;
//! - `analytics_refreshed_timestamp_seconds`: when the views were last read.
//!
//! The gauges are a copy of the views, never counted up, so a replayed
//! record cannot move them. Labels are bounded: fixed steps and periods,
//! the ISO 4217 currencies the system prices in, the gateways and methods,
//! the top coupon codes. A series that leaves the set (a coupon that fell
//! out of the top) is removed, not left at its last value. Ratios and
//! money are `f64` only here, at the Prometheus edge; the views hold them
//! as NUMERIC.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{register_gauge, register_gauge_vec, Gauge, GaugeVec};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sqlx::PgPool;

/// How often and how much: `ANALYTICS_REFRESH_MS`, `ANALYTICS_TOP_COUPONS`.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub every: Duration,
    pub top_coupons: i64,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let ms: u64 = platform::config::var("ANALYTICS_REFRESH_MS", "5000")
            .parse()
            .map_err(|e| anyhow::anyhow!("ANALYTICS_REFRESH_MS: {e}"))?;
        let top: i64 = platform::config::var("ANALYTICS_TOP_COUPONS", "20")
            .parse()
            .map_err(|e| anyhow::anyhow!("ANALYTICS_TOP_COUPONS: {e}"))?;
        anyhow::ensure!(ms > 0, "ANALYTICS_REFRESH_MS must be positive");
        anyhow::ensure!(top >= 0, "ANALYTICS_TOP_COUPONS must not be negative");
        Ok(Settings {
            every: Duration::from_millis(ms),
            top_coupons: top,
        })
    }
}

/// What one read of the views found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Views {
    pub funnel: Funnel,
    /// (currency, today, total), gross, major units.
    pub revenue: Vec<(String, Decimal, Decimal)>,
    pub payments: Vec<Payments>,
    /// (code, committed uses), most used first.
    pub coupons: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Funnel {
    pub carts_created: i64,
    pub orders_placed: i64,
    pub orders_paid: i64,
    pub orders_enrolled: i64,
    pub cart_to_order: Option<Decimal>,
    pub order_to_paid: Option<Decimal>,
    pub paid_to_enrolled: Option<Decimal>,
    pub cart_to_paid: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Payments {
    pub gateway: String,
    pub method: String,
    pub paid: i64,
    pub failed: i64,
    pub expired: i64,
    pub open: i64,
    pub success_rate: Option<Decimal>,
}

/// One series: its label values and value.
pub type Sample = (Vec<String>, f64);

/// The samples of each gauge family for `views`, by family (pure).
#[derive(Debug, Default, PartialEq)]
pub struct Samples {
    pub funnel: Vec<Sample>,
    pub conversion: Vec<Sample>,
    pub revenue: Vec<Sample>,
    pub attempts: Vec<Sample>,
    pub success: Vec<Sample>,
    pub coupons: Vec<Sample>,
}

fn labels(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// A NUMERIC as a gauge value. Prometheus keeps floats; the exact value
/// stays in the view.
fn float(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

pub fn samples(v: &Views) -> Samples {
    let f = &v.funnel;
    let mut out = Samples {
        funnel: [
            ("carts_created", f.carts_created),
            ("orders_placed", f.orders_placed),
            ("orders_paid", f.orders_paid),
            ("orders_enrolled", f.orders_enrolled),
        ]
        .iter()
        .map(|(step, n)| (labels(&[step]), *n as f64))
        .collect(),
        conversion: [
            ("cart_to_order", f.cart_to_order),
            ("order_to_paid", f.order_to_paid),
            ("paid_to_enrolled", f.paid_to_enrolled),
            ("cart_to_paid", f.cart_to_paid),
        ]
        .iter()
        .filter_map(|(step, r)| r.map(|r| (labels(&[step]), float(r))))
        .collect(),
        ..Samples::default()
    };
    for (currency, today, total) in &v.revenue {
        out.revenue
            .push((labels(&[currency, "today"]), float(*today)));
        out.revenue
            .push((labels(&[currency, "total"]), float(*total)));
    }
    for p in &v.payments {
        for (outcome, n) in [
            ("paid", p.paid),
            ("failed", p.failed),
            ("expired", p.expired),
            ("open", p.open),
        ] {
            out.attempts
                .push((labels(&[&p.gateway, &p.method, outcome]), n as f64));
        }
        if let Some(rate) = p.success_rate {
            out.success
                .push((labels(&[&p.gateway, &p.method]), float(rate)));
        }
    }
    out.coupons = v
        .coupons
        .iter()
        .map(|(code, n)| (labels(&[code]), *n as f64))
        .collect();
    out
}

/// Reads the views (one snapshot: the numbers agree with each other).
pub async fn read(pool: &PgPool, top_coupons: i64) -> Result<Views, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let funnel: Funnel = sqlx::query_as("SELECT * FROM analytics_funnel")
        .fetch_one(&mut *tx)
        .await?;
    let revenue: Vec<(String, Decimal, Decimal)> = sqlx::query_as(
        "SELECT currency::text,
                coalesce(sum(gross) FILTER (WHERE day = (now() AT TIME ZONE 'UTC')::date), 0),
                sum(gross)
         FROM analytics_revenue_daily GROUP BY currency ORDER BY currency",
    )
    .fetch_all(&mut *tx)
    .await?;
    let payments: Vec<Payments> = sqlx::query_as(
        "SELECT gateway, method, paid, failed, expired, open, success_rate
         FROM analytics_payment_success ORDER BY gateway, method",
    )
    .fetch_all(&mut *tx)
    .await?;
    let coupons: Vec<(String, i64)> = sqlx::query_as(
        "SELECT code, uses FROM analytics_coupon_usage
         ORDER BY uses DESC, held DESC, code LIMIT $1",
    )
    .bind(top_coupons)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Views {
        funnel,
        revenue,
        payments,
        coupons,
    })
}

/// A gauge family and the label sets it published last, so the ones that
/// left can be removed.
struct Family {
    vec: GaugeVec,
    published: BTreeSet<Vec<String>>,
}

impl Family {
    fn new(name: &str, help: &str, label_names: &[&str]) -> Family {
        Family {
            // Registered once per process (the gauges below are a
            // OnceLock); a duplicate name is a bug.
            vec: register_gauge_vec!(name, help, label_names).expect("metric registers once"),
            published: BTreeSet::new(),
        }
    }

    fn publish(&mut self, samples: &[Sample]) {
        let now: BTreeSet<Vec<String>> = samples.iter().map(|(l, _)| l.clone()).collect();
        for gone in self.published.difference(&now) {
            let values: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.vec.remove_label_values(&values);
        }
        for (l, value) in samples {
            let values: Vec<&str> = l.iter().map(String::as_str).collect();
            self.vec.with_label_values(&values).set(*value);
        }
        self.published = now;
    }
}

struct Gauges {
    funnel: Family,
    conversion: Family,
    revenue: Family,
    attempts: Family,
    success: Family,
    coupons: Family,
    refreshed: Gauge,
}

fn gauges() -> &'static std::sync::Mutex<Gauges> {
    static G: OnceLock<std::sync::Mutex<Gauges>> = OnceLock::new();
    G.get_or_init(|| {
        std::sync::Mutex::new(Gauges {
            funnel: Family::new(
                "analytics_funnel",
                "Checkout funnel counts from the analytics views",
                &["step"],
            ),
            conversion: Family::new(
                "analytics_conversion_ratio",
                "Conversion of each funnel step (absent while its denominator is 0)",
                &["step"],
            ),
            revenue: Family::new(
                "analytics_revenue",
                "Gross revenue of paid orders in the currency's major units, today (UTC) and in total",
                &["currency", "period"],
            ),
            attempts: Family::new(
                "analytics_payment_attempts",
                "Payment attempts by gateway, method and outcome",
                &["gateway", "method", "outcome"],
            ),
            success: Family::new(
                "analytics_payment_success_ratio",
                "Paid share of decided payment attempts by gateway and method",
                &["gateway", "method"],
            ),
            coupons: Family::new(
                "analytics_coupon_uses",
                "Committed uses of the most used coupons",
                &["code"],
            ),
            refreshed: register_gauge!(
                "analytics_refreshed_timestamp_seconds",
                "When the analytics gauges were last read from Postgres"
            )
            .expect("metric registers once"),
        })
    })
}

/// Sets every analytics gauge from `views`.
pub fn publish(views: &Views) {
    let s = samples(views);
    let mut g = gauges().lock().unwrap_or_else(|e| e.into_inner());
    g.funnel.publish(&s.funnel);
    g.conversion.publish(&s.conversion);
    g.revenue.publish(&s.revenue);
    g.attempts.publish(&s.attempts);
    g.success.publish(&s.success);
    g.coupons.publish(&s.coupons);
    g.refreshed
        .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
}

/// Reads the views and publishes them every `settings.every` until the
/// task is aborted. A failed read leaves the gauges as they were (and
/// `analytics_refreshed_timestamp_seconds` shows how old they are).
pub fn refresh_periodically(pool: PgPool, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match read(&pool, settings.top_coupons).await {
                Ok(views) => publish(&views),
                Err(e) => tracing::warn!(error = %e, "analytics views not read; gauges kept"),
            }
            tokio::time::sleep(settings.every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_views_become_bounded_series_and_undefined_ratios_are_absent() {
        let views = Views {
            funnel: Funnel {
                carts_created: 4,
                orders_placed: 3,
                orders_paid: 2,
                orders_enrolled: 2,
                cart_to_order: Some(Decimal::new(7500, 4)),
                order_to_paid: Some(Decimal::new(6667, 4)),
                paid_to_enrolled: Some(Decimal::ONE),
                cart_to_paid: Some(Decimal::new(5000, 4)),
            },
            revenue: vec![(
                "INR".into(),
                Decimal::new(589_882, 2),
                Decimal::new(1_179_764, 2),
            )],
            payments: vec![Payments {
                gateway: "razorpay".into(),
                method: "unknown".into(),
                paid: 2,
                failed: 1,
                expired: 0,
                open: 1,
                success_rate: Some(Decimal::new(6667, 4)),
            }],
            coupons: vec![("SAVE10".into(), 1)],
        };
        let s = samples(&views);
        assert_eq!(s.funnel[0], (labels(&["carts_created"]), 4.0));
        assert_eq!(s.funnel[3], (labels(&["orders_enrolled"]), 2.0));
        assert_eq!(s.conversion[0], (labels(&["cart_to_order"]), 0.75));
        assert_eq!(
            s.revenue,
            [
                (labels(&["INR", "today"]), 5898.82),
                (labels(&["INR", "total"]), 11797.64)
            ]
        );
        assert_eq!(s.attempts.len(), 4);
        assert_eq!(
            s.attempts[1],
            (labels(&["razorpay", "unknown", "failed"]), 1.0)
        );
        assert_eq!(s.success, [(labels(&["razorpay", "unknown"]), 0.6667)]);
        assert_eq!(s.coupons, [(labels(&["SAVE10"]), 1.0)]);

        let empty = samples(&Views::default());
        assert!(empty.conversion.is_empty(), "no ratio of nothing");
        assert_eq!(empty.funnel.len(), 4, "the funnel is always there, at 0");
    }
}
