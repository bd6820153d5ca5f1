//! Which counter a request counts against: the key value a route limits by,
//! and the KV key name of its counter in the current window.

use sha2::{Digest, Sha256};

use crate::config::RateLimit;

/// The header Cloudflare puts the client address in; the `ip` key reads it.
pub const CLIENT_IP_HEADER: &str = "cf-connecting-ip";

/// Prefix of every rate-limit key in KV.
pub const KV_PREFIX: &str = "rl:";

/// Upper bound of the length of a KV key this module makes, in bytes
/// (KV allows 512): prefix, route id or its hash (64), key hash (32), window
/// length and index (10 and 20 digits), and separators.
pub const MAX_KV_KEY_LEN: usize = 3 + 64 + 1 + 32 + 1 + 10 + 1 + 20;

pub use crate::config::KeyKind;

impl KeyKind {
    /// The key value of a request: `header` looks a request header up by its
    /// lowercase name, `identity` is the verified subject for `sub` and the
    /// consumer id for `consumer` (never an unverified claim). `None` (no such
    /// header, no identity, or the `route` key) means the request counts
    /// against the route's shared "no value" counter.
    pub fn value<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        identity: Option<&'a str>,
    ) -> Option<&'a str> {
        match self {
            KeyKind::Ip => header(CLIENT_IP_HEADER),
            KeyKind::Sub | KeyKind::Consumer => identity,
            KeyKind::Route => None,
            KeyKind::Header(name) => header(name),
        }
    }
}

/// The counter a request counts against in the window `now_ms` falls in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    /// `rl:{route}:{hash}:{window_s}:{window_index}`; never holds the raw key value.
    pub kv_key: String,
    /// `now_s / window_s`.
    pub window_index: u64,
    /// Start of the window, in milliseconds since the epoch.
    pub window_start_ms: u64,
    /// End of the window (exclusive), in milliseconds since the epoch.
    pub window_end_ms: u64,
    /// Length of `kv_key` without the window index.
    prefix_len: usize,
}

impl CounterKey {
    /// The counter of every window: `rl:{route}:{hash}:{window_s}` (the KV
    /// key without the window index). Global limits name their object by it.
    pub fn series(&self) -> &str {
        &self.kv_key[..self.prefix_len - 1]
    }

    /// The KV key of the same counter in the window before this one.
    pub fn previous_kv_key(&self) -> Option<String> {
        let index = self.window_index.checked_sub(1)?;
        Some(format!("{}{index}", &self.kv_key[..self.prefix_len]))
    }
}

/// The counter of `route_id`, the route's `limit` and a request's key value at
/// `now_ms`.
///
/// Windows are fixed and aligned to the epoch: window `i` covers the seconds
/// `[i * window_s, (i + 1) * window_s)`. The key value is hashed (SHA-256 over
/// the key spec and the value, truncated to 128 bits, hex) so that no client
/// address, subject or header value ever appears in a KV key, and so that a
/// hostile value of any length yields a key of bounded length. A missing value
/// hashes a marker no present value can produce, so requests without one share
/// one counter. A route id outside `[A-Za-z0-9._-]{1,64}` (the routes file
/// forbids it) is replaced by `~` and its own hash rather than trusted.
pub fn counter_key(
    route_id: &str,
    limit: &RateLimit,
    key_value: Option<&str>,
    now_ms: u64,
) -> CounterKey {
    let window_s = u64::from(limit.window_s.max(1));
    let window_index = now_ms / 1000 / window_s;
    // start <= now_ms, so only the end can overflow (near u64::MAX).
    let window_start_ms = window_index * window_s * 1000;
    let window_end_ms = window_start_ms.saturating_add(window_s * 1000);

    let route_ok = !route_id.is_empty()
        && route_id.len() <= 64
        && route_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let route = if route_ok {
        route_id.to_string()
    } else {
        format!("~{}", hex_digest(&[b"route\0", route_id.as_bytes()], 8))
    };

    let spec = limit.key.to_string();
    let hash = match key_value {
        Some(value) => hex_digest(
            &[b"ratelimit/1\0", spec.as_bytes(), b"\0v", value.as_bytes()],
            16,
        ),
        None => hex_digest(&[b"ratelimit/1\0", spec.as_bytes(), b"\0-"], 16),
    };

    let prefix = format!("{KV_PREFIX}{route}:{hash}:{window_s}:");
    CounterKey {
        prefix_len: prefix.len(),
        kv_key: format!("{prefix}{window_index}"),
        window_index,
        window_start_ms,
        window_end_ms,
    }
}

/// Hex of the first `bytes` bytes of SHA-256 over the concatenated parts.
pub(super) fn hex_digest(parts: &[&[u8]], bytes: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    digest
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}
