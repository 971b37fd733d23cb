//! Who is calling: JWT bearer tokens (HS256 with a shared secret, or RS256
//! with the keys of a JWKS file), checked for signature, expiry and
//! not-before (with a small clock skew) and, when configured, issuer and
//! audience.
//!
//! [`Caller`] is the extractor every route uses: no `Authorization` header
//! is a guest (guest carts are authorized by their unguessable token); a
//! header that is present must hold a valid token, or the request is
//! refused with 401 before anything else happens. [`Admin`] additionally
//! requires `role = admin` (403 otherwise). Every refusal is written to the
//! audit log (target `audit`).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Tolerated clock difference for `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Admin,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default)]
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Where the user's emails go (OpenID Connect's `email` claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// A customer's pseudonym (`platform::pii::Pseudonyms::user` of the
    /// token's subject); an admin's subject as it is.
    pub id: String,
    pub role: Role,
    /// The token's `email` claim, when it holds an address.
    pub email: Option<String>,
}

#[derive(Clone, Default)]
pub struct AuthConfig {
    /// `AUTH_JWT_HS256_SECRET`
    pub hs256_secret: Option<String>,
    /// `AUTH_JWT_JWKS_FILE`: RS256 public keys, chosen by the token's `kid`.
    pub jwks_file: Option<String>,
    /// `AUTH_JWT_ISSUER`
    pub issuer: Option<String>,
    /// `AUTH_JWT_AUDIENCE`
    pub audience: Option<String>,
    /// `AUTH_JWT_MAX_LIFETIME_SECS` (default [`MAX_LIFETIME_SECS`]): a
    /// token that expires later than this from now is refused, whoever
    /// signed it: a leaked long-lived token is a standing key.
    pub max_lifetime_secs: Option<u64>,
}

/// The longest a token may still be valid for, unless configured.
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

impl AuthConfig {
    /// One of `AUTH_JWT_HS256_SECRET` and `AUTH_JWT_JWKS_FILE` is required:
    /// an ingress that could verify no token has no use, and a default
    /// secret would let anyone mint tokens. `AUTH_JWT_ISSUER` and
    /// `AUTH_JWT_AUDIENCE` are required too: a token another service of the
    /// same identity provider was given (for another audience) must not
    /// open ours. The run command sets development values.
    pub fn from_env() -> anyhow::Result<AuthConfig> {
        use platform::config::{optional_secret, secret};
        let config = AuthConfig {
            hs256_secret: optional_secret("AUTH_JWT_HS256_SECRET"),
            jwks_file: optional_secret("AUTH_JWT_JWKS_FILE"),
            issuer: Some(secret("AUTH_JWT_ISSUER")?),
            audience: Some(secret("AUTH_JWT_AUDIENCE")?),
            max_lifetime_secs: match optional_secret("AUTH_JWT_MAX_LIFETIME_SECS") {
                None => None,
                Some(n) => Some(
                    n.parse()
                        .map_err(|e| anyhow::anyhow!("AUTH_JWT_MAX_LIFETIME_SECS={n}: {e}"))?,
                ),
            },
        };
        anyhow::ensure!(
            config.hs256_secret.is_some() || config.jwks_file.is_some(),
            "AUTH_JWT_HS256_SECRET is not set (nor AUTH_JWT_JWKS_FILE): it has no default (see {})",
            platform::config::SECRETS_DOC
        );
        Ok(config)
    }
}

impl std::fmt::Debug for AuthConfig {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .finish()
    }
}

/// Verifies tokens; built once at start-up.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    max_lifetime_secs: u64,
    /// A customer is known by the pseudonym of their token's subject,
    /// never the subject itself: it is what every topic and table holds.
    pseudonyms: platform::pii::Pseudonyms,
}

impl Verifier {
    pub fn new(
        config: &AuthConfig,
        pseudonyms: platform::pii::Pseudonyms,
    ) -> anyhow::Result<Arc<Verifier>> {
        let jwks = match &config.jwks_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("AUTH_JWT_JWKS_FILE {path}: {e}"))?;
                Some(
                    serde_json::from_str::<JwkSet>(&text)
                        .map_err(|e| anyhow::anyhow!("AUTH_JWT_JWKS_FILE {path}: {e}"))?,
                )
            }
            None => None,
        };
        if config.hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            anyhow::bail!("AUTH_JWT_HS256_SECRET must be at least 32 bytes");
        }
        if config.hs256_secret.is_none() && jwks.is_none() {
            tracing::warn!("no AUTH_JWT_HS256_SECRET or AUTH_JWT_JWKS_FILE: every bearer token will be refused");
        }
        Ok(Arc::new(Verifier {
            hs256: config
                .hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            max_lifetime_secs: config.max_lifetime_secs.unwrap_or(MAX_LIFETIME_SECS),
            pseudonyms,
        }))
    }

    /// The user a token stands for, or why it does not.
    pub fn verify(&self, token: &str) -> Result<User, String> {
        let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (
                self.hs256.clone().ok_or("HS256 tokens are not accepted")?,
                Algorithm::HS256,
            ),
            Algorithm::RS256 => {
                let set = self.jwks.as_ref().ok_or("RS256 tokens are not accepted")?;
                let jwk = match &header.kid {
                    Some(kid) => set.find(kid).ok_or("unknown key id")?,
                    None if set.keys.len() == 1 => &set.keys[0],
                    None => return Err("token has no key id".into()),
                };
                (
                    DecodingKey::from_jwk(jwk).map_err(|e| format!("bad key: {e}"))?,
                    Algorithm::RS256,
                )
            }
            other => return Err(format!("algorithm {other:?} is not accepted")),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        validation.set_required_spec_claims(&required);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if data.claims.exp > now + self.max_lifetime_secs + LEEWAY_SECS {
            return Err(format!(
                "invalid token: it lives longer than the maximum of {} s",
                self.max_lifetime_secs
            ));
        }
        let sub = data.claims.sub;
        if sub.is_empty() || sub.len() > 128 || sub.chars().any(char::is_control) {
            return Err("invalid subject".into());
        }
        // Customers are known by a pseudonym; staff by their account, which
        // is what an audit trail of their changes must name.
        let id = match data.claims.role {
            Role::Admin => sub,
            Role::User => self.pseudonyms.user(&sub),
        };
        Ok(User {
            id,
            role: data.claims.role,
            // A malformed claim is ignored rather than refusing the token:
            // the address is a convenience, the identity is `sub`.
            email: data
                .claims
                .email
                .and_then(|e| schemas::values::Email::parse(&e).ok())
                .map(String::from),
        })
    }
}

/// The caller of a request: a user, or a guest.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<User>);

impl Caller {
    pub fn user_id(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.id.as_str())
    }

    pub fn email(&self) -> Option<&str> {
        self.0.as_ref().and_then(|u| u.email.as_deref())
    }

    pub fn is_admin(&self) -> bool {
        self.0.as_ref().is_some_and(|u| u.role == Role::Admin)
    }
}

/// The bearer token of a request, if it has an `Authorization` header.
pub fn bearer(parts: &Parts) -> Option<Result<&str, ()>> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    Some(token.ok_or(()))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let caller = match bearer(parts) {
            None => Caller(None),
            Some(Err(())) => {
                audit_refusal(parts, "authorization header is not a bearer token");
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>`".into(),
                ));
            }
            Some(Ok(token)) => {
                let verifier = parts
                    .extensions
                    .get::<Arc<Verifier>>()
                    .cloned()
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no verifier installed")))?;
                match verifier.verify(token) {
                    Ok(user) => Caller(Some(user)),
                    Err(reason) => {
                        audit_refusal(parts, &reason);
                        return Err(ApiError::Unauthorized(reason));
                    }
                }
            }
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

fn audit_refusal(parts: &Parts, reason: &str) {
    tracing::warn!(target: "audit", event = "auth_failure", method = %parts.method, path = %parts.uri.path(), reason, "authentication refused");
}

/// Authenticates every API request up front, so a route that never names
/// [`Caller`] still refuses a bad token (401) and new routes inherit it.
pub async fn authenticate(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &()).await {
        Ok(_) => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// A caller with `role = admin`.
#[derive(Debug, Clone)]
pub struct Admin(pub User);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller(Some(user)) if user.role == Role::Admin => Ok(Admin(user)),
            Caller(Some(user)) => {
                tracing::warn!(target: "audit", event = "role_denied", user = %user.id, path = %parts.uri.path(), "admin role required");
                Err(ApiError::Forbidden(
                    "this endpoint requires the admin role".into(),
                ))
            }
            Caller(None) => {
                audit_refusal(parts, "no token on an admin endpoint");
                Err(ApiError::Unauthorized(
                    "this endpoint requires a bearer token".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(claims: &Claims, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims() -> Claims {
        Claims {
            sub: "u1".into(),
            role: Role::User,
            exp: now() + 60,
            nbf: None,
            iss: None,
            aud: None,
            email: None,
        }
    }

    fn verifier(issuer: Option<&str>, audience: Option<&str>) -> Arc<Verifier> {
        Verifier::new(
            &AuthConfig {
                hs256_secret: Some(SECRET.into()),
                jwks_file: None,
                issuer: issuer.map(Into::into),
                audience: audience.map(Into::into),
                max_lifetime_secs: None,
            },
            pseudonyms(),
        )
        .unwrap()
    }

    fn pseudonyms() -> platform::pii::Pseudonyms {
        platform::pii::Pseudonyms::from_key([9; 32])
    }

    #[test]
    fn a_token_that_lives_longer_than_the_maximum_is_refused() {
        let v = verifier(None, None);
        let day = 24 * 3600;
        let long = Claims {
            exp: now() + 2 * day,
            ..claims()
        };
        let refused = v.verify(&token(&long, SECRET)).unwrap_err();
        assert!(refused.contains("longer than the maximum"), "{refused}");
        let within = Claims {
            exp: now() + day - 60,
            ..claims()
        };
        assert!(v.verify(&token(&within, SECRET)).is_ok());
        let strict = Verifier::new(
            &AuthConfig {
                hs256_secret: Some(SECRET.into()),
                max_lifetime_secs: Some(600),
                ..AuthConfig::default()
            },
            pseudonyms(),
        )
        .unwrap();
        assert!(strict.verify(&token(&within, SECRET)).is_err());
        assert!(strict.verify(&token(&claims(), SECRET)).is_ok());
    }

    #[test]
    fn a_valid_token_names_its_user_and_role() {
        let v = verifier(None, None);
        assert_eq!(
            v.verify(&token(&claims(), SECRET)),
            Ok(User {
                id: pseudonyms().user("u1"),
                role: Role::User,
                email: None,
            })
        );
        let admin = Claims {
            role: Role::Admin,
            ..claims()
        };
        let staff = v.verify(&token(&admin, SECRET)).unwrap();
        assert_eq!(staff.role, Role::Admin);
        assert_eq!(staff.id, "u1", "staff are named by their account");
    }

    #[test]
    fn bad_signature_expiry_and_not_before_are_refused() {
        let v = verifier(None, None);
        assert!(v
            .verify(&token(&claims(), "another-secret-another-secret-00"))
            .is_err());
        assert!(v
            .verify(&token(
                &Claims {
                    exp: now() - 120,
                    ..claims()
                },
                SECRET
            ))
            .is_err());
        assert!(v
            .verify(&token(
                &Claims {
                    nbf: Some(now() + 600),
                    ..claims()
                },
                SECRET
            ))
            .is_err());
        // Within the clock skew both are still fine.
        assert!(v
            .verify(&token(
                &Claims {
                    exp: now() - 5,
                    nbf: Some(now() + 5),
                    ..claims()
                },
                SECRET
            ))
            .is_ok());
        assert!(v.verify("not.a.token").is_err());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let v = verifier(Some("https://id.example"), Some("checkout"));
        let good = Claims {
            iss: Some("https://id.example".into()),
            aud: Some("checkout".into()),
            ..claims()
        };
        assert!(v.verify(&token(&good, SECRET)).is_ok());
        assert!(v
            .verify(&token(
                &Claims {
                    iss: Some("evil".into()),
                    ..good.clone()
                },
                SECRET
            ))
            .is_err());
        assert!(v
            .verify(&token(
                &Claims {
                    aud: Some("other".into()),
                    ..good.clone()
                },
                SECRET
            ))
            .is_err());
        assert!(v.verify(&token(&claims(), SECRET)).is_err());
    }

    #[test]
    fn the_email_claim_is_kept_when_it_is_an_address() {
        let v = verifier(None, None);
        let with = |email: &str| Claims {
            email: Some(email.into()),
            ..claims()
        };
        let user = v.verify(&token(&with("Ana@Example.com"), SECRET)).unwrap();
        assert_eq!(user.email.as_deref(), Some("Ana@example.com"));
        let user = v.verify(&token(&with("not an address"), SECRET)).unwrap();
        assert_eq!(
            user.email, None,
            "a malformed claim is dropped, the token kept"
        );
    }

    #[test]
    fn short_secrets_are_refused_at_start_up() {
        let short = AuthConfig {
            hs256_secret: Some("short".into()),
            ..AuthConfig::default()
        };
        assert!(Verifier::new(&short, pseudonyms()).is_err());
    }

    /// A throwaway RSA key made for this test (`openssl genrsa 2048`) and its
    /// public half as a JWKS: the RS256 path end to end.
    const TEST_RSA_KEY: &str = include_str!("test_rsa_key.pem");

    #[test]
    fn rs256_tokens_are_checked_against_the_jwks_key_named_by_kid() {
        let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/src/test_jwks.json");
        let v = Verifier::new(
            &AuthConfig {
                jwks_file: Some(jwks.into()),
                ..AuthConfig::default()
            },
            pseudonyms(),
        )
        .unwrap();
        let key = EncodingKey::from_rsa_pem(TEST_RSA_KEY.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        let good = encode(&header, &claims(), &key).unwrap();
        // The user is known by the subject's pseudonym, never the subject.
        assert_eq!(v.verify(&good).map(|u| u.id), Ok(pseudonyms().user("u1")));
        header.kid = Some("unknown".into());
        assert!(v
            .verify(&encode(&header, &claims(), &key).unwrap())
            .is_err());
        // An HS256 token is refused when only RS256 keys are configured.
        assert!(v.verify(&token(&claims(), SECRET)).is_err());
    }
}
