//! Edge cache rules: what is stored, for how long, under which key, and when
//! a hit becomes a `304 Not Modified`.
//!
//! # Contract
//!
//! * Only `GET` and `HEAD` requests are looked up ([`is_lookup_method`]); a
//!   `HEAD` is answered from the `GET` entry. Only responses to `GET` are
//!   stored ([`is_store_method`]): a `HEAD` response has no body.
//! * Only `200` responses are stored, never one with `Set-Cookie`, nor one
//!   whose `Cache-Control` has `no-store`, `private` or `no-cache`
//!   ([`storable`]). `no-cache` allows storing but demands revalidation on
//!   every use, which this cache cannot do (it never revalidates), so such
//!   responses are not stored. Qualified forms (`private="x"`,
//!   `no-cache="x"`) are treated like the bare directives.
//! * The TTL is the route's `ttl_s`, unless the origin's `s-maxage` (which
//!   replaces `max-age` for a shared cache) or else `max-age` is lower. A TTL
//!   of zero is not stored ([`ttl`]). `Expires` is not consulted.
//! * The entry is stored with `Cache-Control: public, max-age=<ttl>`
//!   ([`stored_cache_control`]) and the storage time in
//!   [`STORED_AT`] (`x-gateway-stored-at: <unix ms>`); a hit carries
//!   `Age` computed by [`age_s`], so that downstream caches keep the same
//!   freshness deadline. The stored `Cache-Control` is what hits return.
//! * The key ([`CachePolicy::cache_key`]) is a URL, as the Cache API requires:
//!
//!   ```text
//!   <scheme>://<host>[:<port>]/__gateway/cache/<variant>/<path>[?<query sorted by name>]
//!   ```
//!
//!   `<variant>` is the lower-case hex SHA-256 of an unambiguous
//!   (length-prefixed) encoding of the route's `vary` request headers (name
//!   and value, in config order, a missing header distinct from an empty one)
//!   and, on routes with `auth`, the verified subject. The subject never
//!   appears in the key in clear.
//!
//! # Why the key cannot be forged
//!
//! The variant sits in a fixed position: right after the host comes the
//! literal `/__gateway/cache/`, then exactly 64 hex digits, then the request
//! path (which starts with `/` and cannot contain `?`), then the query. A key
//! therefore decomposes in exactly one way into (scheme, host, port, variant,
//! path, query), and two requests share a key only if they agree on all of
//! them. Nothing a client sends reaches the variant except through SHA-256:
//! a client-supplied path such as `/__gateway/cache/<hex>/x` just becomes part
//! of the path after the real variant, and there is no reserved query
//! parameter to imitate. Header values and the subject are length-prefixed,
//! so no choice of values (say a `vary` header containing `&b=2` or NUL
//! bytes) encodes like another combination.
//!
//! # Normalization
//!
//! The scheme, host and port come from [`url::Url`], which lower-cases the
//! host and drops a default port; the path is kept as parsed (percent
//! encodings untouched). Query parameters are sorted by name (a stable sort:
//! parameters of one name keep their relative order, since `?a=1&a=2` and
//! `?a=2&a=1` are different requests to most origins), keeping the raw encoded
//! bytes; empty parameters (`a=1&&b=2`) are dropped. A fragment is never part
//! of the key.
//!
//! # Storing and invalidation
//!
//! * A response whose `Vary` names a request header that is not in the route's
//!   `vary` list (other than `Accept-Encoding`, which the runtime's cache
//!   handles) is not stored ([`CachePolicy::vary_storable`]): the key would not
//!   tell its variants apart, so one client would get the variant made for
//!   another (`Vary: Cookie` would serve one user's page to the next).
//! * A stored entry's headers are the origin's without hop-by-hop headers,
//!   those its `Connection` names included ([`stored_entry_edits`]).
//! * A successful (2xx) `POST`, `PUT`, `PATCH` or `DELETE` through a cached route
//!   deletes the entry a `GET` of the same URL with the same request's key parts
//!   (vary headers, subject) would hit ([`invalidates`], RFC 9111 4.4). Entries
//!   of other variants, and `Location`/`Content-Location` targets, are left to
//!   expire.

use std::fmt;
use std::fmt::Write as _;

use httpdate::HttpDate;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{CacheRule, Method, Route};
use crate::http::headers::HeaderEdits;
use crate::http::HeaderView;

pub mod phase;

/// The response header naming the cache outcome.
pub const X_CACHE: &str = "x-cache";

/// The header holding the storage time of an entry, in Unix milliseconds.
/// Strip it from responses sent to clients.
pub const STORED_AT: &str = "x-gateway-stored-at";

/// The header that keeps the origin's own `Cache-Control` on a stored entry
/// (the stored copy carries the gateway's TTL instead). Strip it from
/// responses sent to clients.
pub const ORIGIN_CACHE_CONTROL: &str = "x-gateway-origin-cache-control";

/// The path prefix of every key, in the gateway's reserved `/__gateway/` space.
pub const KEY_PREFIX: &str = "/__gateway/cache/";

/// Headers a `304 Not Modified` carries over from the cached `200` (RFC 9110
/// 15.4.5, plus `last-modified`); add `age`.
pub const NOT_MODIFIED_HEADERS: [&str; 7] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "last-modified",
    "vary",
];

/// Domain separation for the variant hash; bump the version to orphan old entries.
const VARIANT_DOMAIN: &[u8] = b"edge-gateway cache variant v1\0";

/// The `x-cache` value of a response on a route with a cache rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCache {
    /// Served from the edge cache.
    Hit,
    /// Looked up, not found, fetched from the origin (and stored if storable).
    Miss,
    /// Not looked up: a method other than GET/HEAD, or an auth route without subject.
    Bypass,
}

impl XCache {
    /// `HIT`, `MISS` or `BYPASS`.
    pub fn as_str(self) -> &'static str {
        match self {
            XCache::Hit => "HIT",
            XCache::Miss => "MISS",
            XCache::Bypass => "BYPASS",
        }
    }
}

impl fmt::Display for XCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route's cache rule, compiled once per isolate.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    ttl_s: u32,
    /// Lower-case `vary` header names, in config order.
    vary: Box<[Box<str>]>,
    /// The route has `auth`: the subject is part of the key.
    per_subject: bool,
    /// The variant when it depends on nothing (no `vary`, no `auth`).
    fixed_variant: Option<Box<str>>,
}

impl CachePolicy {
    /// Compiles `rule`; `per_subject` is true when the route has `auth`.
    pub fn new(rule: &CacheRule, per_subject: bool) -> CachePolicy {
        let vary: Box<[Box<str>]> = rule
            .vary
            .iter()
            .map(|h| h.to_ascii_lowercase().into_boxed_str())
            .collect();
        let fixed_variant = (vary.is_empty() && !per_subject).then(|| {
            let mut hex = String::with_capacity(64);
            push_hex(&mut hex, &VariantHasher::new().finish(None));
            hex.into_boxed_str()
        });
        CachePolicy {
            ttl_s: rule.ttl_s,
            vary,
            per_subject,
            fixed_variant,
        }
    }

    /// The policy of `route`, when it has a `cache` rule; keyed per subject
    /// when it has `auth`.
    pub fn for_route(route: &Route) -> Option<CachePolicy> {
        let rule = route.cache.as_ref()?;
        Some(CachePolicy::new(rule, route.auth.is_some()))
    }

    /// The route's `ttl_s`.
    pub fn ttl_s(&self) -> u32 {
        self.ttl_s
    }

    /// The lower-case names of the request headers in the key, in config order.
    pub fn vary_headers(&self) -> impl Iterator<Item = &str> {
        self.vary.iter().map(|h| &**h)
    }

    /// True when the route has `auth` and the subject is part of the key.
    pub fn per_subject(&self) -> bool {
        self.per_subject
    }

    /// The cache key URL of a request (see the module documentation).
    ///
    /// `header` returns a request header by lower-case name (several lines
    /// joined with `, `, as `Headers.get` does). `subject` is the verified
    /// token subject; it is ignored on routes without `auth`, and on routes
    /// with `auth` its absence yields `None`: do not use the cache (answer
    /// [`XCache::Bypass`]) rather than let subject-less users share entries.
    pub fn cache_key<F, V>(&self, url: &Url, mut header: F, subject: Option<&str>) -> Option<String>
    where
        F: FnMut(&str) -> Option<V>,
        V: AsRef<str>,
    {
        let mut hex = [0u8; 64];
        let variant: &str = match &self.fixed_variant {
            Some(v) => v,
            None => {
                let subject = match (self.per_subject, subject) {
                    (true, None) => return None,
                    (true, Some(s)) => Some(s),
                    (false, _) => None,
                };
                let mut h = VariantHasher::new();
                for name in self.vary.iter() {
                    h.header(name, header(name).as_ref().map(AsRef::as_ref));
                }
                hex_into(&mut hex, &h.finish(subject))
            }
        };

        let host = url.host_str().unwrap_or("");
        let path = url.path();
        let query = url.query().unwrap_or("");
        let mut key = String::with_capacity(
            url.scheme().len()
                + 3
                + host.len()
                + 6
                + KEY_PREFIX.len()
                + 64
                + path.len()
                + 1
                + query.len(),
        );
        key.push_str(url.scheme());
        key.push_str("://");
        key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        if let Some(port) = url.port() {
            let _ = write!(key, ":{port}");
        }
        key.push_str(KEY_PREFIX);
        key.push_str(variant);
        if !path.starts_with('/') {
            // Only for URLs that cannot be a request ("cannot be a base").
            key.push('/');
        }
        key.push_str(path);
        push_sorted_query(&mut key, query);
        Some(key)
    }

    /// Whether a response's `Vary` allows storing it under this route's key: not
    /// `*` (which never matches, RFC 9111 4.1, and which the Cache API refuses),
    /// and every request header it names is in the route's `vary` list or is
    /// `Accept-Encoding`. Names are compared case-insensitively; empty list
    /// elements are ignored.
    pub fn vary_storable(&self, vary: Option<&str>) -> bool {
        let Some(vary) = vary else {
            return true;
        };
        vary.split(',')
            .map(|h| h.trim_matches([' ', '\t']))
            .filter(|h| !h.is_empty())
            .all(|h| {
                h != "*"
                    && (h.eq_ignore_ascii_case("accept-encoding")
                        || self.vary.iter().any(|v| v.eq_ignore_ascii_case(h)))
            })
    }

    /// [`ttl`] with this route's `ttl_s`.
    pub fn ttl(&self, cache_control: Option<&str>) -> Option<u32> {
        ttl(self.ttl_s, cache_control)
    }

    /// The TTL to store a response with, or `None` when it must not be
    /// stored: [`storable`] and [`ttl`] together. Call only for `GET`.
    pub fn store_ttl(
        &self,
        status: u16,
        cache_control: Option<&str>,
        has_set_cookie: bool,
    ) -> Option<u32> {
        if storable(status, cache_control, has_set_cookie) {
            self.ttl(cache_control)
        } else {
            None
        }
    }
}

/// True for the methods looked up in the cache: `GET` and `HEAD`.
pub fn is_lookup_method(method: Method) -> bool {
    matches!(method, Method::Get | Method::Head)
}

/// True for the only method whose responses are stored: `GET`.
pub fn is_store_method(method: Method) -> bool {
    method == Method::Get
}

/// Whether a response may be stored: status 200, no `Set-Cookie`, and no
/// `no-store`, `private` or `no-cache` directive. A `max-age=0` is caught by [`ttl`].
pub fn storable(status: u16, cache_control: Option<&str>, has_set_cookie: bool) -> bool {
    if status != 200 || has_set_cookie {
        return false;
    }
    let cc = cache_control.map(CacheControl::parse).unwrap_or_default();
    !(cc.no_store || cc.private || cc.no_cache)
}

/// True for the methods whose success invalidates the entry of the same URL:
/// `POST`, `PUT`, `PATCH` and `DELETE` (RFC 9111 4.4).
pub fn is_invalidating_method(method: Method) -> bool {
    matches!(
        method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    )
}

/// Whether a response to `method` deletes the stored `GET` entry of the same
/// key: an invalidating method answered with a 2xx status.
pub fn invalidates(method: Method, status: u16) -> bool {
    is_invalidating_method(method) && (200..300).contains(&status)
}

/// The edits that turn an origin response's headers into the headers of the
/// entry stored for it, to apply to a copy of those headers:
///
/// * hop-by-hop headers are dropped, including every header the origin's
///   `Connection` names (RFC 9110 7.6.1; a stored entry must not replay them),
///   in any spelling of the name (`_` for `-`, any case);
/// * `Set-Cookie` is dropped (never stored; such responses are not stored anyway);
/// * the origin's `Cache-Control` moves to [`ORIGIN_CACHE_CONTROL`] (served again
///   on hits) and the entry gets [`stored_cache_control`] of `ttl_s`;
/// * [`STORED_AT`] records `now_ms`, for the `Age` of hits.
///
/// Any [`STORED_AT`] or [`ORIGIN_CACHE_CONTROL`] the origin itself sent is replaced.
pub fn stored_entry_edits(
    origin_headers: &(impl HeaderView + ?Sized),
    ttl_s: u32,
    now_ms: u64,
) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    edits.remove_unwanted(
        origin_headers,
        &["set-cookie", STORED_AT, ORIGIN_CACHE_CONTROL],
    );
    edits.remove(ORIGIN_CACHE_CONTROL);
    if let Some(original) = origin_headers.get("cache-control") {
        edits.set(ORIGIN_CACHE_CONTROL, original);
    }
    edits.set("cache-control", stored_cache_control(ttl_s));
    edits.set(STORED_AT, stored_at_value(now_ms));
    edits
}

/// RFC 9111 3.5: a shared cache stores the response to a request carrying
/// `Authorization` only when the response says `public`, `s-maxage` or
/// `must-revalidate`. Routes with `auth` key entries per subject and need not
/// ask; on other routes, require this when the request had `Authorization`.
pub fn storable_with_authorization(cache_control: Option<&str>) -> bool {
    cache_control
        .map(CacheControl::parse)
        .is_some_and(|cc| cc.public || cc.must_revalidate || cc.s_maxage.is_some())
}

/// The TTL of a response: `route_ttl_s`, or the origin's `s-maxage` (else
/// `max-age`) when lower; `None` when that is zero (do not store).
///
/// A malformed `max-age`/`s-maxage` value counts as zero (stale); when a
/// directive repeats, the first occurrence counts (RFC 9111 4.2.1).
pub fn ttl(route_ttl_s: u32, cache_control: Option<&str>) -> Option<u32> {
    let cc = cache_control.map(CacheControl::parse).unwrap_or_default();
    let ttl = match cc.s_maxage.or(cc.max_age) {
        Some(origin) => origin.min(route_ttl_s),
        None => route_ttl_s,
    };
    (ttl > 0).then_some(ttl)
}

/// The `Cache-Control` to store an entry with: `public, max-age=<ttl>`.
pub fn stored_cache_control(ttl_s: u32) -> String {
    format!("public, max-age={ttl_s}")
}

/// The [`STORED_AT`] value for an entry stored at `now_ms`.
pub fn stored_at_value(now_ms: u64) -> String {
    now_ms.to_string()
}

/// The `Age` of a hit in whole seconds, from its [`STORED_AT`] value;
/// `None` when the header is missing or malformed (send no `Age`). A
/// storage time in the future counts as age 0.
pub fn age_s(stored_at: Option<&str>, now_ms: u64) -> Option<u64> {
    let stored_ms: u64 = stored_at?.trim().parse().ok()?;
    Some(now_ms.saturating_sub(stored_ms) / 1000)
}

/// Whether a hit is answered `304 Not Modified` (RFC 9110 13.1.2, 13.1.3, 13.2.2).
///
/// `If-None-Match`, when present, decides alone: `*` matches any entry,
/// otherwise a listed entity tag must equal the entry's `ETag` under weak
/// comparison (`W/` ignored); a malformed list matches nothing. Only without
/// it is `If-Modified-Since` consulted: 304 when the entry's `Last-Modified`
/// is not later than it; an invalid date on either side means no 304.
/// For `GET` and `HEAD` only.
pub fn not_modified(
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<&str>,
) -> bool {
    if let Some(list) = if_none_match {
        return if_none_match_matches(list, etag);
    }
    let (Some(since), Some(modified)) = (if_modified_since, last_modified) else {
        return false;
    };
    match (
        since.trim().parse::<HttpDate>(),
        modified.trim().parse::<HttpDate>(),
    ) {
        (Ok(since), Ok(modified)) => modified <= since,
        _ => false,
    }
}

/// Whether an `If-None-Match` list matches an entry with `etag` (weak comparison).
fn if_none_match_matches(list: &str, etag: Option<&str>) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    let etag = etag.trim();
    let opaque = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(inner) = tag.strip_prefix('"') else {
            return false;
        };
        let Some(end) = inner.find('"') else {
            return false;
        };
        let candidate = &tag[..end + 2];
        if candidate == opaque {
            return true;
        }
        rest = &tag[end + 2..];
        let after = rest.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with(',')) {
            return false;
        }
    }
}

/// The `Cache-Control` directives the edge cache cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache`, bare or qualified.
    pub no_cache: bool,
    /// `private`, bare or qualified.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// First `max-age`, in seconds; a malformed value is 0, a huge one 2^31.
    pub max_age: Option<u32>,
    /// First `s-maxage`, in seconds; a malformed value is 0, a huge one 2^31.
    pub s_maxage: Option<u32>,
}

impl CacheControl {
    /// Parses a `Cache-Control` field value (several lines joined with `,`).
    /// Directive names are case-insensitive; quoted values may contain commas.
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        for (name, arg) in Directives(value) {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("no-store") {
                cc.no_store = true;
            } else if is("no-cache") {
                cc.no_cache = true;
            } else if is("private") {
                cc.private = true;
            } else if is("public") {
                cc.public = true;
            } else if is("must-revalidate") {
                cc.must_revalidate = true;
            } else if is("max-age") {
                cc.max_age.get_or_insert(delta_seconds(arg));
            } else if is("s-maxage") {
                cc.s_maxage.get_or_insert(delta_seconds(arg));
            }
        }
        cc
    }
}

/// RFC 9111 1.2.2: digits; anything else is 0 (stale); overflow caps at 2^31.
fn delta_seconds(arg: Option<&str>) -> u32 {
    const CAP: u64 = 1 << 31;
    match arg {
        Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
            let mut n: u64 = 0;
            for b in a.bytes() {
                n = (n * 10 + u64::from(b - b'0')).min(CAP);
            }
            n as u32
        }
        _ => 0,
    }
}

/// Iterates `name[=value]` directives; a quoted value is returned without its quotes.
struct Directives<'a>(&'a str);

impl<'a> Iterator for Directives<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.0.trim_start_matches([' ', '\t', ',']);
        if s.is_empty() {
            self.0 = s;
            return None;
        }
        let name_end = s.find(['=', ',']).unwrap_or(s.len());
        let name = s[..name_end].trim();
        let rest = &s[name_end..];
        let Some(after_eq) = rest.strip_prefix('=') else {
            self.0 = rest;
            return Some((name, None));
        };
        let after_eq = after_eq.trim_start_matches([' ', '\t']);
        if let Some(quoted) = after_eq.strip_prefix('"') {
            // quoted-string: up to the first unescaped quote.
            let bytes = quoted.as_bytes();
            let mut i = 0;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            let end = i.min(bytes.len());
            let value = &quoted[..end];
            let tail = quoted.get(end + 1..).unwrap_or("");
            self.0 = &tail[tail.find(',').unwrap_or(tail.len())..];
            Some((name, Some(value)))
        } else {
            let end = after_eq.find(',').unwrap_or(after_eq.len());
            self.0 = &after_eq[end..];
            Some((name, Some(after_eq[..end].trim())))
        }
    }
}

/// Appends `?` and the query's non-empty parameters sorted by name; parameters
/// of one name keep their relative order (a stable sort).
fn push_sorted_query(key: &mut String, query: &str) {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if params.is_empty() {
        return;
    }
    params.sort_by(|a, b| param_name(a).cmp(param_name(b)));
    key.push('?');
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            key.push('&');
        }
        key.push_str(p);
    }
}

fn param_name(param: &str) -> &str {
    param.split_once('=').map_or(param, |(n, _)| n)
}

/// Hashes the variant parts with an unambiguous encoding.
struct VariantHasher(Sha256);

impl VariantHasher {
    fn new() -> VariantHasher {
        let mut h = Sha256::new();
        h.update(VARIANT_DOMAIN);
        VariantHasher(h)
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_be_bytes());
        self.0.update(b);
    }

    /// `H` name, then `0` (missing) or `1` value.
    fn header(&mut self, name: &str, value: Option<&str>) {
        self.0.update(b"H");
        self.bytes(name.as_bytes());
        match value {
            None => self.0.update([0]),
            Some(v) => {
                self.0.update([1]);
                self.bytes(v.as_bytes());
            }
        }
    }

    /// `S` then `0` (no subject) or `1` subject, and the digest.
    fn finish(mut self, subject: Option<&str>) -> [u8; 32] {
        self.0.update(b"S");
        match subject {
            None => self.0.update([0]),
            Some(s) => {
                self.0.update([1]);
                self.bytes(s.as_bytes());
            }
        }
        self.0.finalize().into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into<'a>(out: &'a mut [u8; 64], digest: &[u8; 32]) -> &'a str {
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

fn push_hex(s: &mut String, digest: &[u8; 32]) {
    let mut buf = [0u8; 64];
    s.push_str(hex_into(&mut buf, digest));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn policy(vary: &[&str], auth: bool) -> CachePolicy {
        let rule = CacheRule {
            ttl_s: 300,
            vary: vary.iter().map(|s| s.to_string()).collect(),
        };
        CachePolicy::new(&rule, auth)
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A key with headers given as (lower-case name, value) pairs.
    fn key(
        p: &CachePolicy,
        u: &str,
        headers: &[(&str, &str)],
        subject: Option<&str>,
    ) -> Option<String> {
        p.cache_key(
            &url(u),
            |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
            subject,
        )
    }

    fn variant_of(key: &str) -> &str {
        let at = key.find(KEY_PREFIX).unwrap() + KEY_PREFIX.len();
        &key[at..at + 64]
    }

    #[test]
    fn key_shape_and_normalization() {
        let p = policy(&[], false);
        let k = key(&p, "HTTPS://API.Example.COM:443/users/1?b=2&a=1", &[], None).unwrap();
        let v = variant_of(&k);
        assert_eq!(v.len(), 64);
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(
            k,
            format!("https://api.example.com/__gateway/cache/{v}/users/1?a=1&b=2")
        );
        // Non-default port kept, scheme kept.
        let k2 = key(&p, "http://api.example.com:8080/x", &[], None).unwrap();
        assert_eq!(
            k2,
            format!("http://api.example.com:8080/__gateway/cache/{v}/x")
        );
        let k3 = key(&p, "http://api.example.com:80/x#frag", &[], None).unwrap();
        assert_eq!(k3, format!("http://api.example.com/__gateway/cache/{v}/x"));
        // The fixed variant equals the computed one.
        let mut h = [0u8; 64];
        assert_eq!(v, hex_into(&mut h, &VariantHasher::new().finish(None)));
        // Keys are URLs.
        assert!(Url::parse(&k).is_ok());
    }

    #[test]
    fn query_sorting_keeps_raw_bytes_and_the_order_of_repeated_names() {
        let p = policy(&[], false);
        let q = |u: &str| {
            let k = key(&p, u, &[], None).unwrap();
            k.split_once('?').map(|(_, q)| q.to_owned())
        };
        assert_eq!(q("https://h/p?b=2&a=2&a=1").as_deref(), Some("a=2&a=1&b=2"));
        assert_eq!(q("https://h/p?a=1&b=%2F&a").as_deref(), Some("a=1&a&b=%2F"));
        assert_eq!(
            q("https://h/p?x=a+b&x=a%20b").as_deref(),
            Some("x=a+b&x=a%20b")
        );
        // `?a=1&a=2` and `?a=2&a=1` are different requests, hence different entries.
        assert_ne!(
            key(&p, "https://h/p?a=1&a=2", &[], None),
            key(&p, "https://h/p?a=2&a=1", &[], None)
        );
        assert_eq!(
            key(&p, "https://h/p?b=1&a=1&c=3&a=2", &[], None),
            key(&p, "https://h/p?a=1&c=3&a=2&b=1", &[], None)
        );
        // Names are compared first: "a" < "a%3D", whatever the values.
        assert_eq!(q("https://h/p?a%3D=1&a=z").as_deref(), Some("a=z&a%3D=1"));
        assert_eq!(q("https://h/p?a=1&&b=2&").as_deref(), Some("a=1&b=2"));
        assert_eq!(q("https://h/p?"), None);
        assert_eq!(q("https://h/p"), None);
        assert_eq!(
            key(&p, "https://h/p?b&a", &[], None),
            key(&p, "https://h/p?a&b", &[], None)
        );
        assert_ne!(
            key(&p, "https://h/p?a=1", &[], None),
            key(&p, "https://h/p?a=%31", &[], None)
        );
    }

    #[test]
    fn path_is_kept_as_is() {
        let p = policy(&[], false);
        assert_ne!(
            key(&p, "https://h/a%2Fb", &[], None),
            key(&p, "https://h/a/b", &[], None)
        );
        assert_ne!(
            key(&p, "https://h/A", &[], None),
            key(&p, "https://h/a", &[], None)
        );
        assert_eq!(
            key(&p, "https://h/a/../b", &[], None),
            key(&p, "https://h/b", &[], None)
        );
    }

    #[test]
    fn vary_headers_in_config_order_missing_distinct_from_empty() {
        let p = policy(&["Accept-Language", "X-Tenant"], false);
        assert_eq!(
            p.vary_headers().collect::<Vec<_>>(),
            ["accept-language", "x-tenant"]
        );
        let u = "https://h/p";
        let en = key(
            &p,
            u,
            &[("accept-language", "en"), ("x-tenant", "t1")],
            None,
        );
        let fr = key(
            &p,
            u,
            &[("accept-language", "fr"), ("x-tenant", "t1")],
            None,
        );
        let en2 = key(
            &p,
            u,
            &[
                ("x-tenant", "t1"),
                ("accept-language", "en"),
                ("other", "x"),
            ],
            None,
        );
        assert_ne!(en, fr);
        assert_eq!(en, en2);
        let missing = key(&p, u, &[("x-tenant", "t1")], None);
        let empty = key(&p, u, &[("accept-language", ""), ("x-tenant", "t1")], None);
        assert_ne!(missing, empty);
        assert_ne!(missing, en);
        // Swapping values between headers changes the key.
        assert_ne!(
            key(&p, u, &[("accept-language", "a"), ("x-tenant", "b")], None),
            key(&p, u, &[("accept-language", "b"), ("x-tenant", "a")], None),
        );
        // Owned header values work too.
        let owned = p.cache_key(&url(u), |n| Some(format!("{n}!")), None);
        assert!(owned.is_some());
    }

    #[test]
    fn vary_values_cannot_imitate_other_combinations() {
        let p = policy(&["a", "b"], false);
        let u = "https://h/p";
        let keys = [
            key(&p, u, &[("a", "1"), ("b", "2")], None),
            key(&p, u, &[("a", "1&b=2")], None),
            key(&p, u, &[("a", "1\u{1}\0\0\0\0\0\0\0\u{1}2")], None),
            key(&p, u, &[("b", "2")], None),
            key(&p, u, &[("a", ""), ("b", "")], None),
            key(&p, u, &[], None),
            key(
                &p,
                u,
                &[("a", "1"), ("b", "2")],
                Some("ignored-without-auth"),
            ),
        ];
        let unique: HashSet<_> = keys[..6].iter().collect();
        assert_eq!(unique.len(), 6);
        assert_eq!(keys[0], keys[6]);
    }

    #[test]
    fn subject_partitions_auth_routes_and_is_never_in_clear() {
        let p = policy(&[], true);
        let u = "https://h/me";
        let alice = key(&p, u, &[], Some("alice")).unwrap();
        let bob = key(&p, u, &[], Some("bob")).unwrap();
        assert_ne!(alice, bob);
        assert!(!alice.contains("alice"));
        assert_eq!(key(&p, u, &[], None), None);
        let anon = policy(&[], false);
        assert_ne!(Some(alice.clone()), key(&anon, u, &[], None));
        // Subject and a vary header with the same bytes do not meet.
        let pv = policy(&["x"], true);
        assert_ne!(
            key(&pv, u, &[("x", "alice")], Some("")),
            key(&pv, u, &[("x", "")], Some("alice")),
        );
        assert_eq!(key(&pv, u, &[("x", "1")], None), None);
    }

    #[test]
    fn client_supplied_prefix_or_query_cannot_collide() {
        // A client puts another variant's hex in its path: the real variant comes first.
        let p = policy(&["x-tenant"], false);
        let victim = key(&p, "https://h/data", &[("x-tenant", "acme")], None).unwrap();
        let v = variant_of(&victim).to_owned();
        let forged_path = format!("https://h/__gateway/cache/{v}/data");
        let forged = key(&p, &forged_path, &[], None).unwrap();
        assert_ne!(forged, victim);
        assert!(forged.ends_with(&format!("/__gateway/cache/{v}/data")));
        assert_ne!(variant_of(&forged), v);
        // Query parameters shaped like the key parts change nothing but the query.
        let q = key(
            &p,
            &format!("https://h/data?__gateway=cache&variant={v}"),
            &[],
            None,
        )
        .unwrap();
        assert!(q.starts_with("https://h/__gateway/cache/"));
        assert_ne!(q, victim);
        assert_ne!(variant_of(&q), v);
        // Every key decomposes at the fixed offsets.
        let all = [victim, forged, q];
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn policy_from_route() {
        let route = |json: &str| -> Route { serde_json::from_str(json).unwrap() };
        let none = route(r#"{"id": "a", "path": "/a", "origin": "o"}"#);
        assert!(CachePolicy::for_route(&none).is_none());
        let anon = route(r#"{"id": "a", "path": "/a", "origin": "o", "cache": {"ttl_s": 60}}"#);
        let p = CachePolicy::for_route(&anon).unwrap();
        assert_eq!((p.ttl_s(), p.per_subject()), (60, false));
        let user = route(
            r#"{"id": "a", "path": "/a", "origin": "o", "auth": {"jwt": "main"},
                "cache": {"ttl_s": 60, "vary": ["Accept"]}}"#,
        );
        let p = CachePolicy::for_route(&user).unwrap();
        assert!(p.per_subject());
        assert_eq!(p.vary_headers().collect::<Vec<_>>(), ["accept"]);
    }

    #[test]
    fn parsers_never_panic() {
        let odd = [
            "",
            "=",
            ",=,",
            "\"",
            "a=\"",
            "a=\"\\",
            "a=\"\\é\"",
            "é=é",
            "max-age=\"é",
            "max-age=\"1\"\"2\"",
            "W/",
            "W/\"",
            "\"é\",\"",
            "*,",
            "\u{0}",
        ];
        for s in odd {
            let _ = CacheControl::parse(s);
            let _ = ttl(10, Some(s));
            let _ = not_modified(Some(s), Some(s), Some(s), Some(s));
            let _ = not_modified(None, Some(s), Some(s), Some(s));
            let _ = age_s(Some(s), 0);
            let _ = policy(&["x"], false).vary_storable(Some(s));
        }
    }

    #[test]
    fn storable_rules() {
        assert!(storable(200, None, false));
        assert!(storable(200, Some("public, max-age=60"), false));
        assert!(!storable(200, None, true));
        for s in [201, 203, 204, 206, 301, 304, 404, 500] {
            assert!(!storable(s, None, false), "{s}");
        }
        for cc in [
            "no-store",
            "private",
            "no-cache",
            "PRIVATE",
            "max-age=60, Private",
            "private=\"set-cookie\"",
            "no-cache=\"set-cookie, x-foo\", max-age=60",
            "public,no-store",
        ] {
            assert!(!storable(200, Some(cc), false), "{cc}");
        }
        // A quoted value containing a directive name is not that directive.
        assert!(storable(
            200,
            Some("foo=\"no-store, private\", max-age=5"),
            false
        ));
        assert!(storable(200, Some("x-private, no-storage"), false));
    }

    #[test]
    fn ttl_rules() {
        assert_eq!(ttl(300, None), Some(300));
        assert_eq!(ttl(300, Some("public")), Some(300));
        assert_eq!(ttl(300, Some("max-age=60")), Some(60));
        assert_eq!(ttl(300, Some("max-age=600")), Some(300));
        assert_eq!(ttl(300, Some("max-age=0")), None);
        assert_eq!(ttl(300, Some("max-age=\"30\"")), Some(30));
        // s-maxage takes precedence over max-age, either way.
        assert_eq!(ttl(300, Some("max-age=10, s-maxage=120")), Some(120));
        assert_eq!(ttl(300, Some("s-maxage=120, max-age=600")), Some(120));
        assert_eq!(ttl(300, Some("max-age=600, s-maxage=0")), None);
        // First occurrence wins; malformed counts as stale; overflow caps.
        assert_eq!(ttl(300, Some("max-age=30, max-age=200")), Some(30));
        assert_eq!(ttl(300, Some("max-age=abc")), None);
        assert_eq!(ttl(300, Some("max-age=")), None);
        assert_eq!(ttl(300, Some("max-age=-5")), None);
        assert_eq!(ttl(300, Some("max-age=99999999999999999999999")), Some(300));
        assert_eq!(ttl(300, Some("MAX-AGE = 7")), Some(7));
        let p = policy(&[], false);
        assert_eq!(p.store_ttl(200, Some("max-age=60"), false), Some(60));
        assert_eq!(p.store_ttl(200, Some("max-age=0"), false), None);
        assert_eq!(p.store_ttl(200, Some("no-store"), false), None);
        assert_eq!(p.store_ttl(404, None, false), None);
        assert_eq!(p.store_ttl(200, None, true), None);
    }

    #[test]
    fn cache_control_parsing() {
        let cc = CacheControl::parse("public, max-age=60, s-maxage=\"30\", must-revalidate");
        assert_eq!(
            cc,
            CacheControl {
                public: true,
                must_revalidate: true,
                max_age: Some(60),
                s_maxage: Some(30),
                ..CacheControl::default()
            }
        );
        assert_eq!(CacheControl::parse(""), CacheControl::default());
        assert_eq!(CacheControl::parse(" , ,"), CacheControl::default());
        let weird = CacheControl::parse("ext=\"a\\\"b, no-store\", private");
        assert!(weird.private && !weird.no_store);
        let unterminated = CacheControl::parse("ext=\"abc, no-store");
        assert!(!unterminated.no_store);
    }

    #[test]
    fn other_storage_guards() {
        let plain = policy(&[], false);
        let lang = policy(&["Accept-Language"], false);
        for p in [&plain, &lang] {
            assert!(p.vary_storable(None));
            assert!(p.vary_storable(Some("Accept-Encoding")));
            assert!(p.vary_storable(Some(" accept-encoding ,, ")));
            assert!(!p.vary_storable(Some("*")));
            assert!(!p.vary_storable(Some("accept-encoding, *")));
            // The leak: one user's variant served to another.
            assert!(!p.vary_storable(Some("Cookie")));
            assert!(!p.vary_storable(Some("Accept-Encoding, Authorization")));
            assert!(!p.vary_storable(Some("Origin")));
        }
        assert!(!plain.vary_storable(Some("Accept-Language")));
        assert!(lang.vary_storable(Some("accept-language, Accept-Encoding")));
        assert!(!lang.vary_storable(Some("accept-language, cookie")));
        for m in [Method::Post, Method::Put, Method::Patch, Method::Delete] {
            assert!(is_invalidating_method(m));
            assert!(invalidates(m, 200) && invalidates(m, 204) && invalidates(m, 299));
            assert!(!invalidates(m, 304) && !invalidates(m, 404) && !invalidates(m, 500));
        }
        for m in [Method::Get, Method::Head, Method::Options] {
            assert!(!is_invalidating_method(m) && !invalidates(m, 200));
        }
        assert!(storable_with_authorization(Some("public, max-age=60")));
        assert!(storable_with_authorization(Some("s-maxage=60")));
        assert!(storable_with_authorization(Some("must-revalidate")));
        assert!(!storable_with_authorization(Some("max-age=60")));
        assert!(!storable_with_authorization(None));
        assert!(is_lookup_method(Method::Get) && is_lookup_method(Method::Head));
        assert!(!is_lookup_method(Method::Post) && !is_lookup_method(Method::Options));
        assert!(is_store_method(Method::Get) && !is_store_method(Method::Head));
    }

    /// Applies `edits` to `headers` as the edge does.
    fn edited(headers: &[(&str, &str)], edits: &HeaderEdits) -> Vec<(String, String)> {
        let mut list: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        edits.apply_to(&mut list);
        list.sort();
        list
    }

    #[test]
    fn stored_entries_hold_no_hop_by_hop_header_not_even_one_connection_names() {
        let origin = [
            ("Content-Type", "application/json"),
            ("Connection", "x-secret, X_Other"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("set-cookie", "a=b"),
            ("cache-control", "max-age=600"),
            ("x-gateway-stored-at", "1"),
            ("x-end-to-end", "kept"),
        ];
        let edits = stored_entry_edits(&origin, 60, 1_000);
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            edited(&origin, &edits),
            owned(&[
                ("Content-Type", "application/json"),
                ("cache-control", "public, max-age=60"),
                (ORIGIN_CACHE_CONTROL, "max-age=600"),
                (STORED_AT, "1000"),
                ("x-end-to-end", "kept"),
            ])
        );
        // Without an origin Cache-Control, a forged copy of the kept one is dropped.
        let forged = [("x-gateway-origin-cache-control", "no-store")];
        let edits = stored_entry_edits(&forged, 5, 7);
        assert_eq!(
            edited(&forged, &edits),
            owned(&[("cache-control", "public, max-age=5"), (STORED_AT, "7")])
        );
    }

    #[test]
    fn stored_values_and_age() {
        assert_eq!(stored_cache_control(60), "public, max-age=60");
        assert_eq!(stored_at_value(1_700_000_000_123), "1700000000123");
        let at = stored_at_value(1_000_000);
        assert_eq!(age_s(Some(&at), 1_000_000), Some(0));
        assert_eq!(age_s(Some(&at), 1_000_999), Some(0));
        assert_eq!(age_s(Some(&at), 1_061_000), Some(61));
        assert_eq!(age_s(Some(&at), 5), Some(0));
        assert_eq!(age_s(Some(" 1000 "), 3000), Some(2));
        assert_eq!(age_s(Some("soon"), 3000), None);
        assert_eq!(age_s(None, 3000), None);
    }

    #[test]
    fn if_none_match() {
        let tag = Some("\"v1\"");
        assert!(not_modified(Some("\"v1\""), None, tag, None));
        assert!(not_modified(Some("W/\"v1\""), None, tag, None));
        assert!(not_modified(Some("\"v1\""), None, Some("W/\"v1\""), None));
        assert!(not_modified(Some("\"a\", W/\"v1\""), None, tag, None));
        assert!(not_modified(Some("\"a\",\"v1\""), None, tag, None));
        assert!(not_modified(Some("*"), None, tag, None));
        assert!(not_modified(Some(" * "), None, None, None));
        assert!(!not_modified(Some("\"v2\""), None, tag, None));
        assert!(!not_modified(Some("\"V1\""), None, tag, None));
        assert!(!not_modified(Some("\"v1\""), None, None, None));
        assert!(!not_modified(Some(""), None, tag, None));
        // Commas inside a tag are part of it.
        assert!(not_modified(Some("\"a,b\""), None, Some("\"a,b\""), None));
        assert!(!not_modified(Some("\"a,b\""), None, Some("\"a\""), None));
        // Malformed lists match nothing (no 304: the full response is safe).
        assert!(!not_modified(Some("v1"), None, Some("v1"), None));
        assert!(!not_modified(Some("\"x\"junk, \"v1\""), None, tag, None));
        assert!(!not_modified(Some("\"v1"), None, tag, None));
    }

    #[test]
    fn if_modified_since_and_precedence() {
        let lm = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        assert!(not_modified(
            None,
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            None,
            lm
        ));
        assert!(not_modified(
            None,
            Some("Thu, 22 Oct 2015 00:00:00 GMT"),
            None,
            lm
        ));
        assert!(!not_modified(
            None,
            Some("Wed, 21 Oct 2015 07:27:59 GMT"),
            None,
            lm
        ));
        // RFC 850 and asctime forms are HTTP dates too.
        assert!(not_modified(
            None,
            Some("Thursday, 22-Oct-15 00:00:00 GMT"),
            None,
            lm
        ));
        assert!(not_modified(
            None,
            Some("Thu Oct 22 00:00:00 2015"),
            None,
            lm
        ));
        assert!(!not_modified(None, Some("yesterday"), None, lm));
        assert!(!not_modified(
            None,
            Some("Thu, 22 Oct 2015 00:00:00 GMT"),
            None,
            None
        ));
        assert!(!not_modified(
            None,
            Some("Thu, 22 Oct 2015 00:00:00 GMT"),
            None,
            Some("garbage")
        ));
        assert!(!not_modified(None, None, Some("\"v1\""), lm));
        // If-None-Match decides alone, whichever way.
        let later = Some("Thu, 22 Oct 2015 00:00:00 GMT");
        assert!(!not_modified(Some("\"other\""), later, Some("\"v1\""), lm));
        assert!(not_modified(
            Some("\"v1\""),
            Some("Tue, 20 Oct 2015 00:00:00 GMT"),
            Some("\"v1\""),
            lm
        ));
    }

    #[test]
    fn x_cache_names() {
        assert_eq!(XCache::Hit.as_str(), "HIT");
        assert_eq!(XCache::Miss.to_string(), "MISS");
        assert_eq!(XCache::Bypass.as_str(), "BYPASS");
        assert_eq!(X_CACHE, "x-cache");
    }
}
