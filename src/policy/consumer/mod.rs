//! Consumers and their API keys: the key format, what is stored in KV, the
//! per-isolate lookup cache, plans and quota periods. Pure: no I/O, no clock.
//!
//! # Keys
//!
//! A key is `gwk_`, 32 characters of base64url (24 random bytes, 192 bits),
//! then a 6-character checksum (base64url of the first 4 bytes of SHA-256 over
//! the prefix and the random part): 42 characters, `gwk_[A-Za-z0-9_-]{38}`.
//! The prefix lets secret scanners find leaked keys; the checksum lets the
//! gateway refuse a mistyped or made-up key without reading KV.
//!
//! # Storage (`GATEWAY_KV`)
//!
//! - `consumer:<id>`: the [`ConsumerRecord`] (plan, metadata, and per key its
//!   id, creation time, last four characters and SHA-256).
//! - `apikey:<sha256 hex of the key>`: the [`KeyRecord`] (consumer id, plan,
//!   key id). A key is never stored, logged or answered after its creation;
//!   keys carry 192 bits of entropy, so a plain SHA-256 cannot be reversed or
//!   searched, and a slow password hash would only cost CPU per request.

pub mod admin;
pub mod phase;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::QuotaPeriod;

/// The fixed start of every key.
pub const KEY_PREFIX: &str = "gwk_";
/// Random bytes in a key.
pub const KEY_RANDOM_BYTES: usize = 24;
const BODY_CHARS: usize = 32;
const CHECKSUM_CHARS: usize = 6;
/// The length of every key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + BODY_CHARS + CHECKSUM_CHARS;

/// How long an isolate trusts a key lookup it made (the contract allows 60 s).
pub const POSITIVE_TTL_MS: u64 = 30_000;
/// How long an isolate remembers that a key is unknown.
pub const NEGATIVE_TTL_MS: u64 = 5_000;
/// Most lookups an isolate remembers.
pub const MAX_CACHED_KEYS: usize = 4_096;
/// Most metadata entries of a consumer, and their sizes.
pub const MAX_METADATA: usize = 32;
pub const MAX_METADATA_KEY: usize = 64;
pub const MAX_METADATA_VALUE: usize = 1_024;
/// Most keys of one consumer.
pub const MAX_KEYS: usize = 16;

fn checksum(prefix_and_body: &str) -> String {
    let digest = Sha256::digest(prefix_and_body.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..4])
}

/// A new key from random bytes.
pub fn generate_key(random: &[u8; KEY_RANDOM_BYTES]) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(random, &mut key);
    let sum = checksum(&key);
    key.push_str(&sum);
    key
}

/// Whether `key` has the key format and a correct checksum. Cheap; reads nothing.
pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key.as_bytes()[KEY_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && checksum(&key[..KEY_LEN - CHECKSUM_CHARS]) == key[KEY_LEN - CHECKSUM_CHARS..]
}

/// The stored form of a key: SHA-256, lower-case hex.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// A key id: `k_` and 12 characters of base64url.
pub fn key_id(random: &[u8; 9]) -> String {
    format!("k_{}", URL_SAFE_NO_PAD.encode(random))
}

/// Whether `id` is a consumer id (`[A-Za-z0-9._-]{1,64}`, as plan names).
pub fn is_consumer_id(id: &str) -> bool {
    crate::config::validate::is_name(id)
}

/// Whether `id` could be a key id the gateway made.
pub fn is_key_id(id: &str) -> bool {
    id.len() == 14
        && id.starts_with("k_")
        && id.as_bytes()[2..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The KV key of a consumer.
pub fn consumer_kv_key(id: &str) -> String {
    format!("consumer:{id}")
}

/// The KV key of a key's record, from its hash.
pub fn key_kv_key(hash: &str) -> String {
    format!("apikey:{hash}")
}

/// One key of a consumer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub key_id: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub last4: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
}

/// A consumer, as stored under `consumer:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    pub id: String,
    pub plan: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    #[serde(default)]
    pub keys: Vec<StoredKey>,
}

impl ConsumerRecord {
    /// The admin view: everything but the key hashes.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "plan": self.plan,
            "metadata": self.metadata,
            "created": self.created,
            "keys": self.keys.iter().map(|k| serde_json::json!({
                "key_id": k.key_id,
                "created": k.created,
                "last4": k.last4,
            })).collect::<Vec<_>>(),
        })
    }
}

/// What `apikey:<hash>` holds: enough to admit a request with one KV read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub consumer: String,
    pub plan: String,
    pub key_id: String,
}

/// Checks a consumer's metadata: string values, bounded.
pub fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), String> {
    if metadata.len() > MAX_METADATA {
        return Err(format!("metadata has more than {MAX_METADATA} entries"));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.len() > MAX_METADATA_KEY {
            return Err(format!(
                "metadata names are 1 to {MAX_METADATA_KEY} bytes long"
            ));
        }
        if v.len() > MAX_METADATA_VALUE {
            return Err(format!(
                "metadata value of \"{k}\" is longer than {MAX_METADATA_VALUE} bytes"
            ));
        }
    }
    Ok(())
}

/// The consumer a request's key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    pub id: String,
    pub plan: String,
}

/// Key lookups one isolate made, by key hash: found (for [`POSITIVE_TTL_MS`])
/// or unknown (for [`NEGATIVE_TTL_MS`]).
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: HashMap<String, (Option<ConsumerRef>, u64)>,
}

/// What the cache knows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Found(ConsumerRef),
    Unknown,
    /// Not known, or known too long ago: read KV.
    Miss,
}

impl KeyCache {
    pub fn new() -> KeyCache {
        KeyCache::default()
    }

    pub fn get(&self, hash: &str, now_ms: u64) -> Cached {
        match self.entries.get(hash) {
            Some((found, until)) if now_ms < *until => match found {
                Some(c) => Cached::Found(c.clone()),
                None => Cached::Unknown,
            },
            _ => Cached::Miss,
        }
    }

    /// Remembers a lookup (also a change this isolate made: it holds at once here).
    pub fn put(&mut self, hash: &str, found: Option<ConsumerRef>, now_ms: u64) {
        if self.entries.len() >= MAX_CACHED_KEYS && !self.entries.contains_key(hash) {
            self.entries.retain(|_, (_, until)| now_ms < *until);
            if self.entries.len() >= MAX_CACHED_KEYS {
                // Unknown keys first: a flood of made-up keys must not evict real ones.
                self.entries.retain(|_, (found, _)| found.is_some());
            }
            if self.entries.len() >= MAX_CACHED_KEYS {
                self.entries.clear();
            }
        }
        let ttl = if found.is_some() {
            POSITIVE_TTL_MS
        } else {
            NEGATIVE_TTL_MS
        };
        self.entries
            .insert(hash.to_string(), (found, now_ms.saturating_add(ttl)));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year and month of a day since 1970-01-01.
fn year_month(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

const DAY_MS: u64 = 86_400_000;

/// The calendar period (UTC) holding `now_ms`, as `[start_ms, end_ms)`.
pub fn period_bounds(now_ms: u64, period: QuotaPeriod) -> (u64, u64) {
    let day = now_ms / DAY_MS;
    match period {
        QuotaPeriod::Day => (day * DAY_MS, (day + 1) * DAY_MS),
        QuotaPeriod::Month => {
            let (y, m) = year_month(day as i64);
            let start = days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = days_from_civil(ny, nm, 1);
            (start as u64 * DAY_MS, end as u64 * DAY_MS)
        }
    }
}

/// The global counter of a consumer's quota (also its Durable Object's name).
pub fn quota_counter(consumer: &str, period: QuotaPeriod) -> String {
    match period {
        QuotaPeriod::Day => format!("quota:{consumer}:day"),
        QuotaPeriod::Month => format!("quota:{consumer}:month"),
    }
}
