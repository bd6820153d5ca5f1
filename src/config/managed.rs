//! The headers the gateway manages itself: `request_headers` and `response_headers`
//! may neither set nor remove them (a validation error), so an edit can never
//! forge, hide or undo what the gateway decides.
//!
//! This is the one list; `crate::http::headers` re-exports it. It lives here because
//! the build script compiles only the configuration module.

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded in either direction.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers the gateway always removes from what it forwards, because it
/// sets them itself (or because they only have meaning between client and gateway).
pub const OWNED_REQUEST: [&str; 8] = [
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-dev-country",
    "x-dev-continent",
];

/// Besides the managed ones, request headers a `forward_claims` entry may not
/// name: a claim must not pose as the client's credentials, cookies or body
/// type.
const NOT_FROM_CLAIMS: [&str; 3] = ["authorization", "cookie", "content-type"];

/// Whether a `forward_claims` header is refused: a managed header, a
/// credential or body header, or a `cf-*` header of the platform. Compared
/// as [`is_managed`] compares (case, `_` as `-`).
pub fn is_reserved_for_claims(name: &str) -> bool {
    let folded = folded(name);
    is_managed(name, []) || NOT_FROM_CLAIMS.contains(&folded.as_str()) || folded.starts_with("cf-")
}

/// The upstream header naming a consumer's plan (set by the gateway).
pub const PLAN_HEADER: &str = "x-consumer-plan";

/// Exact names (lower case), besides [`HOP_BY_HOP`].
pub const MANAGED_HEADERS: [&str; 17] = [
    // Framing: the runtime's own.
    "content-length",
    "host",
    // Set on every upstream request.
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "traceparent",
    "cf-connecting-ip",
    // Local location headers, never forwarded.
    "x-dev-country",
    "x-dev-continent",
    // Set on answers.
    "retry-after",
    "www-authenticate",
    "x-cache",
    "server-timing",
    "age",
    "allow",
];

/// Name prefixes (lower case): CORS, rate-limit and quota headers, and the gateway's own.
pub const MANAGED_PREFIXES: [&str; 4] = ["access-control-", "ratelimit-", "x-quota-", "x-gateway-"];

fn fold(c: u8) -> u8 {
    if c == b'_' {
        b'-'
    } else {
        c.to_ascii_lowercase()
    }
}

/// `name` folded as servers read it: ASCII lower case, `_` as `-`.
fn folded(name: &str) -> String {
    name.bytes().map(|b| fold(b) as char).collect()
}

/// Whether `name` is managed by the gateway, `forward_claims` headers (`claims`) included.
/// Names compare case-insensitively with `_` equal to `-`, as CGI-style servers read them.
pub fn is_managed<'a>(name: &str, claims: impl IntoIterator<Item = &'a str>) -> bool {
    let name = folded(name);
    HOP_BY_HOP.contains(&name.as_str())
        || MANAGED_HEADERS.contains(&name.as_str())
        || MANAGED_PREFIXES.iter().any(|p| name.starts_with(p))
        || claims.into_iter().any(|c| folded(c) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_cannot_name_managed_credential_or_platform_headers() {
        for name in [
            "Authorization",
            "cookie",
            "Content_Type",
            "cf-ray",
            "CF-Connecting-IP",
            "x-forwarded-for",
            "traceparent",
            "host",
            "upgrade",
            "x-dev-country",
            "X-Request-Id",
        ] {
            assert!(is_reserved_for_claims(name), "{name}");
        }
        for name in ["x-user-id", "x-tenant", "x-user-email"] {
            assert!(!is_reserved_for_claims(name), "{name}");
        }
    }

    #[test]
    fn managed_names_in_every_spelling() {
        for name in [
            "X-Request-Id",
            "x_forwarded_for",
            "Transfer-Encoding",
            "Access-Control-Allow-Origin",
            "ratelimit-remaining",
            "X-Cache",
            "server-timing",
            "age",
            "traceparent",
            "x-gateway-stored-at",
            "X_USER_ID",
        ] {
            assert!(is_managed(name, ["x-user-id"]), "{name}");
        }
        for name in [
            "authorization",
            "x-api-version",
            "cookie",
            "x-user",
            "accept",
        ] {
            assert!(!is_managed(name, ["x-user-id"]), "{name}");
        }
    }
}
