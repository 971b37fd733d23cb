//! Personal data sealed at rest: envelope encryption with AES-256-GCM.
//!
//! Each person has a data key of their own (a random 256-bit key) that
//! seals their personal fields at the edge, before they reach a topic or
//! a table; see [`schemas::sealed`] for the sealed value's shape. Data keys
//! are stored only wrapped (encrypted) by a master key, in the `pii_keys`
//! table, never in a topic, so:
//!
//! - a topic, a table or a backup holds ciphertext only;
//! - erasing a person is deleting their data key ([`Vault::erase`]):
//!   everything sealed under it, wherever it lies (topics, read models,
//!   their rebuilds, backups), is unreadable at once, while the records
//!   around it (an order's money) stay whole;
//! - rotating the master key re-wraps the data keys ([`Vault::rotate`]),
//!   nothing else: `PII_MASTER_KEYS` lists `id:base64key` pairs, the first
//!   wraps, every one unwraps, so a new master key goes first, the data keys
//!   are re-wrapped, and the old one is dropped from the list.
//!
//! The nonce is random per value (96 bits) and the data key's id is the
//! associated data, so a value moved to another key does not open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sqlx::PgPool;

use schemas::sealed::PREFIX;

/// How long an opened data key is kept in memory: an erasure done by one
/// replica takes effect in every other within this.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    #[error("PII_MASTER_KEYS: {0}")]
    Config(String),
    /// The data key is gone: the person was erased.
    #[error("erased")]
    Erased,
    /// Not a sealed value, or one that does not open with its key.
    #[error("a sealed value that does not open: {0}")]
    Corrupt(String),
    #[error("no master key {0} to unwrap a data key (PII_MASTER_KEYS)")]
    UnknownMaster(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The master keys, from `PII_MASTER_KEYS` (`id:base64,id:base64`; the
/// first wraps, all unwrap). Its `Debug` shows the ids only.
#[derive(Clone)]
pub struct Keyring {
    masters: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.masters.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring").field("masters", &ids).finish()
    }
}

impl Keyring {
    /// From `PII_MASTER_KEYS`, a secret (no default in any mode).
    pub fn from_env() -> anyhow::Result<Keyring> {
        Ok(Keyring::parse(&crate::config::secret("PII_MASTER_KEYS")?)?)
    }

    pub fn parse(spec: &str) -> Result<Keyring, PiiError> {
        let mut masters = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| PiiError::Config("each key is id:base64".into()))?;
            let bytes = STANDARD
                .decode(key.trim())
                .map_err(|_| PiiError::Config(format!("key {id}: not base64")))?;
            if bytes.len() != 32 {
                return Err(PiiError::Config(format!(
                    "key {id}: 32 bytes (256 bits), not {}",
                    bytes.len()
                )));
            }
            if id.is_empty() || id.contains('.') || masters.iter().any(|(m, _)| m == id) {
                return Err(PiiError::Config(format!(
                    "key id {id:?}: empty, dotted or twice"
                )));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            masters.push((id.to_owned(), cipher));
        }
        if masters.is_empty() {
            return Err(PiiError::Config("no key".into()));
        }
        Ok(Keyring { masters })
    }

    /// A new master key's value, for `PII_MASTER_KEYS` (base64).
    pub fn generate_key() -> String {
        STANDARD.encode(rand::random::<[u8; 32]>())
    }

    /// The id of the master key that wraps.
    pub fn current(&self) -> &str {
        &self.masters[0].0
    }

    fn wrap(&self, key_id: &str, data_key: &[u8; 32]) -> (String, Vec<u8>) {
        let (id, master) = &self.masters[0];
        (id.clone(), seal_bytes(master, key_id, data_key))
    }

    fn unwrap(&self, key_id: &str, master_id: &str, wrapped: &[u8]) -> Result<Aes256Gcm, PiiError> {
        let mut key = self.unwrap_raw(key_id, master_id, wrapped)?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        key.fill(0);
        Ok(cipher)
    }

    fn unwrap_raw(
        &self,
        key_id: &str,
        master_id: &str,
        wrapped: &[u8],
    ) -> Result<[u8; 32], PiiError> {
        let (_, master) = self
            .masters
            .iter()
            .find(|(id, _)| id == master_id)
            .ok_or_else(|| PiiError::UnknownMaster(master_id.to_owned()))?;
        // A master key of the same name but another value: what a new
        // development secrets file over an old database looks like.
        let mut key = open_bytes(master, key_id, wrapped).map_err(|_| {
            PiiError::Corrupt(format!(
                "data key {key_id} does not open under master key {master_id}: the database's keys \
                 were wrapped under another PII_MASTER_KEYS value (set the one they were made \
                 with, or use a fresh DATABASE_SCHEMA; see docs/personal-data.md)"
            ))
        })?;
        let raw: Result<[u8; 32], _> = key.as_slice().try_into();
        key.fill(0);
        raw.map_err(|_| PiiError::Corrupt(format!("data key {key_id}")))
    }
}

/// `nonce || ciphertext` of `plain` under `cipher`, bound to `aad`.
fn seal_bytes(cipher: &Aes256Gcm, aad: &str, plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encrypts any message of our sizes");
    let mut out = nonce.to_vec();
    out.extend(ct);
    out
}

fn open_bytes(cipher: &Aes256Gcm, aad: &str, sealed: &[u8]) -> Result<Vec<u8>, PiiError> {
    if sealed.len() < 12 + 16 {
        return Err(PiiError::Corrupt("too short".into()));
    }
    let (nonce, ct) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| PiiError::Corrupt(format!("does not open under key {aad}")))
}

/// What a stored field reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The value (a plain one, stored before sealing, reads as itself).
    Plain(String),
    /// Sealed under a key that was erased.
    Erased,
}

impl Opened {
    /// The value, or `None` once erased.
    pub fn into_option(self) -> Option<String> {
        match self {
            Opened::Plain(v) => Some(v),
            Opened::Erased => None,
        }
    }
}

/// The `pii_keys` owner of the pseudonym key: not a person (people are
/// `user:`, `cart:`, `holder:`), so no erasure ever names it.
const PSEUDONYM_KEY_OWNER: &str = "pseudonyms";

/// Keyed one-way references (HMAC-SHA256): a user's pseudonymous id, an
/// email's blind index. Equal inputs give equal references, so topics and
/// tables can be joined and rules can compare, but without the key no one
/// can tell whose they are, nor confirm a guess. Its `Debug` hides the key.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    /// From a raw key (tests; services ask [`Vault::pseudonyms`]).
    pub fn from_key(key: [u8; 32]) -> Pseudonyms {
        Pseudonyms { key }
    }

    /// The pseudonymous id of the user a token's subject names
    /// (`u_` and 128 bits in hex): what every topic and table knows them by.
    pub fn user(&self, subject: &str) -> String {
        format!("u_{}", self.mac("user", subject))
    }

    /// The blind index of an email (`e_` and 128 bits in hex), over the
    /// trimmed, lowercased address.
    pub fn email(&self, email: &str) -> String {
        format!("e_{}", self.mac("email", &email.trim().to_lowercase()))
    }

    fn mac(&self, domain: &str, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// Seals and opens personal fields with the data keys in `pii_keys`.
pub struct Vault {
    pool: PgPool,
    keyring: Keyring,
    /// Opened data keys by key id (`None`: erased), with when they were read.
    cache: Mutex<HashMap<String, (Instant, Option<Aes256Gcm>)>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn new(pool: PgPool, keyring: Keyring) -> Vault {
        Vault {
            pool,
            keyring,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `plain` sealed under `person`'s data key (made on first use).
    pub async fn seal(&self, person: &str, plain: &str) -> Result<String, PiiError> {
        let (key_id, cipher) = self.key_of(person).await?;
        let bytes = seal_bytes(&cipher, &key_id, plain.as_bytes());
        let (nonce, ct) = bytes.split_at(12);
        Ok(format!(
            "{PREFIX}{key_id}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ct)
        ))
    }

    /// What a stored field holds: a sealed value opened, a plain one as it
    /// is, `Erased` when its key is gone.
    pub async fn open(&self, stored: &str) -> Result<Opened, PiiError> {
        if !schemas::sealed::is_sealed(stored) {
            return Ok(Opened::Plain(stored.to_owned()));
        }
        let mut parts = stored[PREFIX.len()..].split('.');
        let (Some(key_id), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(PiiError::Corrupt("shape".into()));
        };
        let Some(cipher) = self.key(key_id).await? else {
            return Ok(Opened::Erased);
        };
        let mut bytes = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| PiiError::Corrupt("nonce".into()))?;
        bytes.extend(
            URL_SAFE_NO_PAD
                .decode(ct)
                .map_err(|_| PiiError::Corrupt("ciphertext".into()))?,
        );
        let plain = open_bytes(&cipher, key_id, &bytes)?;
        String::from_utf8(plain)
            .map(Opened::Plain)
            .map_err(|_| PiiError::Corrupt("not UTF-8".into()))
    }

    /// As [`Vault::open`] for an optional field.
    pub async fn open_opt(&self, stored: Option<&str>) -> Result<Option<String>, PiiError> {
        match stored {
            Some(s) => Ok(self.open(s).await?.into_option()),
            None => Ok(None),
        }
    }

    /// Destroys `person`'s data key: whatever was sealed under it no
    /// longer opens, anywhere. True if there was one.
    pub async fn erase(&self, person: &str) -> Result<bool, PiiError> {
        let gone: Vec<String> =
            sqlx::query_scalar("DELETE FROM pii_keys WHERE person = $1 RETURNING key_id")
                .bind(person)
                .fetch_all(&self.pool)
                .await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for id in &gone {
            cache.insert(id.clone(), (Instant::now(), None));
        }
        Ok(!gone.is_empty())
    }

    /// Links `alias` (a one-way reference such as an email's hash) to
    /// `person`, so [`Vault::erase_alias`] finds their key.
    pub async fn link(&self, alias: &str, person: &str) -> Result<(), PiiError> {
        sqlx::query(
            "INSERT INTO pii_aliases (alias, person) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(alias)
        .bind(person)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Destroys the data key of every person linked to `alias`, and the
    /// links; returns how many keys.
    pub async fn erase_alias(&self, alias: &str) -> Result<u64, PiiError> {
        let mut tx = self.pool.begin().await?;
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM pii_keys WHERE person IN (SELECT person FROM pii_aliases WHERE alias = $1)
             RETURNING key_id",
        )
        .bind(alias)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pii_aliases WHERE alias = $1")
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for id in &gone {
            cache.insert(id.clone(), (Instant::now(), None));
        }
        Ok(gone.len() as u64)
    }

    /// Re-wraps every data key not wrapped by the current master key;
    /// returns how many. Run after putting a new master key first in
    /// `PII_MASTER_KEYS`, before removing the old one.
    pub async fn rotate(&self) -> Result<u64, PiiError> {
        let rows: Vec<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, master_id, wrapped FROM pii_keys WHERE master_id <> $1")
                .bind(self.keyring.current())
                .fetch_all(&self.pool)
                .await?;
        let mut n = 0;
        for (key_id, master_id, wrapped) in rows {
            let mut raw = open_bytes(
                &self
                    .keyring
                    .masters
                    .iter()
                    .find(|(id, _)| *id == master_id)
                    .ok_or_else(|| PiiError::UnknownMaster(master_id.clone()))?
                    .1,
                &key_id,
                &wrapped,
            )?;
            let data_key: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| PiiError::Corrupt(format!("data key {key_id}")))?;
            raw.fill(0);
            let (master, rewrapped) = self.keyring.wrap(&key_id, &data_key);
            n += sqlx::query(
                "UPDATE pii_keys SET master_id = $2, wrapped = $3 WHERE key_id = $1 AND master_id = $4",
            )
            .bind(&key_id)
            .bind(&master)
            .bind(&rewrapped)
            .bind(&master_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    /// An email sealed under `person`'s data key with its blind index
    /// appended (see [`schemas::sealed`]), so rules compare addresses
    /// without opening them.
    pub async fn seal_email(
        &self,
        person: &str,
        email: &str,
        pseudonyms: &Pseudonyms,
    ) -> Result<String, PiiError> {
        let sealed = self.seal(person, email).await?;
        Ok(format!("{sealed}.{}", pseudonyms.email(email)))
    }

    /// The key of the keyed one-way references ([`Pseudonyms`]): a data
    /// key of its own, made on first use, wrapped and rotated like every
    /// other, and never erased (it belongs to no person).
    pub async fn pseudonyms(&self) -> Result<Pseudonyms, PiiError> {
        let found: Option<(String, String, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, master_id, wrapped FROM pii_keys WHERE person = $1")
                .bind(PSEUDONYM_KEY_OWNER)
                .fetch_optional(&self.pool)
                .await?;
        let (key_id, master_id, wrapped) = match found {
            Some(row) => row,
            None => {
                self.key_of(PSEUDONYM_KEY_OWNER).await?;
                sqlx::query_as("SELECT key_id, master_id, wrapped FROM pii_keys WHERE person = $1")
                    .bind(PSEUDONYM_KEY_OWNER)
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(Pseudonyms {
            key: self.keyring.unwrap_raw(&key_id, &master_id, &wrapped)?,
        })
    }

    /// The person's data key, made and stored on first use (two replicas
    /// making one at once: the first stored wins, both use it).
    async fn key_of(&self, person: &str) -> Result<(String, Aes256Gcm), PiiError> {
        loop {
            let found: Option<(String, String, Vec<u8>)> =
                sqlx::query_as("SELECT key_id, master_id, wrapped FROM pii_keys WHERE person = $1")
                    .bind(person)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((key_id, master_id, wrapped)) = found {
                let cipher = self.keyring.unwrap(&key_id, &master_id, &wrapped)?;
                return Ok((key_id, cipher));
            }
            let key_id = uuid::Uuid::new_v4().simple().to_string();
            let data_key: [u8; 32] = rand::random();
            let (master, wrapped) = self.keyring.wrap(&key_id, &data_key);
            sqlx::query(
                "INSERT INTO pii_keys (key_id, person, master_id, wrapped) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (person) DO NOTHING",
            )
            .bind(&key_id)
            .bind(person)
            .bind(&master)
            .bind(&wrapped)
            .execute(&self.pool)
            .await?;
        }
    }

    /// The data key `key_id`, `None` once erased; cached a short while.
    async fn key(&self, key_id: &str) -> Result<Option<Aes256Gcm>, PiiError> {
        if let Some((at, key)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
        {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(key.clone());
            }
        }
        let found: Option<(String, Vec<u8>)> =
            sqlx::query_as("SELECT master_id, wrapped FROM pii_keys WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await?;
        let key = match found {
            Some((master_id, wrapped)) => Some(self.keyring.unwrap(key_id, &master_id, &wrapped)?),
            None => None,
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id.to_owned(), (Instant::now(), key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &[(&str, [u8; 32])]) -> Keyring {
        let spec: Vec<String> = spec
            .iter()
            .map(|(id, k)| format!("{id}:{}", STANDARD.encode(k)))
            .collect();
        Keyring::parse(&spec.join(",")).unwrap()
    }

    #[test]
    fn a_data_key_wrapped_by_the_old_master_unwraps_while_the_old_master_is_listed() {
        let data_key = [7u8; 32];
        let old = ring(&[("m1", [1; 32])]);
        let (master, wrapped) = old.wrap("k", &data_key);
        assert_eq!(master, "m1");
        // The new master first, the old one still listed: it unwraps.
        let both = ring(&[("m2", [2; 32]), ("m1", [1; 32])]);
        assert_eq!(both.current(), "m2");
        assert!(both.unwrap("k", "m1", &wrapped).is_ok());
        // Bound to its key id, and to its master.
        assert!(matches!(
            both.unwrap("other", "m1", &wrapped),
            Err(PiiError::Corrupt(_))
        ));
        let only_new = ring(&[("m2", [2; 32])]);
        assert!(matches!(
            only_new.unwrap("k", "m1", &wrapped),
            Err(PiiError::UnknownMaster(_))
        ));
    }

    #[test]
    fn pseudonyms_are_keyed_stable_and_domain_separated() {
        let a = Pseudonyms::from_key([1; 32]);
        let b = Pseudonyms::from_key([2; 32]);
        assert_eq!(a.user("u1"), a.user("u1"));
        assert_ne!(a.user("u1"), b.user("u1"));
        assert_ne!(a.user("u1"), a.user("u2"));
        assert!(a.user("u1").starts_with("u_") && a.user("u1").len() == 34);
        assert_eq!(a.email(" Asha@X.com "), a.email("asha@x.com"));
        assert_ne!(a.email("u1")[2..], a.user("u1")[2..]);
        assert_eq!(format!("{a:?}"), "Pseudonyms(..)");
    }

    #[test]
    fn master_keys_are_checked_and_never_printed() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("m1:c2hvcnQ=").is_err());
        assert!(Keyring::parse("no-colon").is_err());
        let key = Keyring::generate_key();
        let ring = Keyring::parse(&format!("m1:{key}")).unwrap();
        let shown = format!("{ring:?}");
        assert!(shown.contains("m1") && !shown.contains(&key), "{shown}");
    }
}
