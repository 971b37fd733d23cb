//! Which gateway a payment session goes to first, and which is its
//! fallback: by currency, from `PAYMENT_ROUTES` (default
//! `INR=razorpay,stripe;*=stripe,razorpay`: rupees through Razorpay first,
//! everything else through Stripe first).

use gateways::Gateway;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// (currency code, or `*` for any), gateways in the order tried.
    routes: Vec<(String, Vec<Gateway>)>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing::parse("INR=razorpay,stripe;*=stripe,razorpay").expect("the default parses")
    }
}

impl Routing {
    pub fn parse(spec: &str) -> Result<Routing, String> {
        let mut routes = Vec::new();
        for route in spec.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (currency, list) = route
                .split_once('=')
                .ok_or_else(|| format!("PAYMENT_ROUTES: {route} is not CURRENCY=gateway,..."))?;
            let gateways = list
                .split(',')
                .map(|g| match g.trim() {
                    "razorpay" => Ok(Gateway::Razorpay),
                    "stripe" => Ok(Gateway::Stripe),
                    other => Err(format!("PAYMENT_ROUTES: unknown gateway {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if gateways.is_empty() {
                return Err(format!("PAYMENT_ROUTES: {route} names no gateway"));
            }
            routes.push((currency.trim().to_ascii_uppercase(), gateways));
        }
        if !routes.iter().any(|(c, _)| c == "*") {
            return Err("PAYMENT_ROUTES needs a route for * (any other currency)".into());
        }
        Ok(Routing { routes })
    }

    pub fn from_env() -> anyhow::Result<Routing> {
        let spec = platform::config::var("PAYMENT_ROUTES", "INR=razorpay,stripe;*=stripe,razorpay");
        Routing::parse(&spec).map_err(|e| anyhow::anyhow!(e))
    }

    /// The gateways to try for `currency`, first to last.
    pub fn gateways(&self, currency: &str) -> &[Gateway] {
        self.routes
            .iter()
            .find(|(c, _)| c == currency)
            .or_else(|| self.routes.iter().find(|(c, _)| c == "*"))
            .map(|(_, g)| g.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_go_to_razorpay_first_and_the_rest_to_stripe() {
        let r = Routing::default();
        assert_eq!(r.gateways("INR"), [Gateway::Razorpay, Gateway::Stripe]);
        assert_eq!(r.gateways("USD"), [Gateway::Stripe, Gateway::Razorpay]);
        let only = Routing::parse("*=stripe").unwrap();
        assert_eq!(only.gateways("INR"), [Gateway::Stripe]);
        assert!(Routing::parse("INR=razorpay").is_err(), "no default route");
        assert!(Routing::parse("*=paypal").is_err());
    }
}
