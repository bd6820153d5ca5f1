//! The gateway's own error responses: `application/problem+json` (RFC 9457).
//!
//! A problem says what went wrong in terms of the gateway's contract; it never
//! carries upstream bodies, stack traces, tokens or secrets.

use std::borrow::Cow;

/// Content type of every error the gateway produces.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// The kinds of errors the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    /// A WebSocket route asked without `Upgrade: websocket`.
    UpgradeRequired,
    PayloadTooLarge,
    UriTooLong,
    UnsupportedMediaType,
    TooManyRequests,
    /// A consumer's quota for the period is used up (429, its own type).
    QuotaExceeded,
    HeadersTooLarge,
    Internal,
    BadGateway,
    Unavailable,
    GatewayTimeout,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::Conflict => 409,
            Kind::UpgradeRequired => 426,
            Kind::PayloadTooLarge => 413,
            Kind::UriTooLong => 414,
            Kind::UnsupportedMediaType => 415,
            Kind::TooManyRequests => 429,
            Kind::QuotaExceeded => 429,
            Kind::HeadersTooLarge => 431,
            Kind::Internal => 500,
            Kind::BadGateway => 502,
            Kind::Unavailable => 503,
            Kind::GatewayTimeout => 504,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Bad request",
            Kind::Unauthorized => "Unauthorized",
            Kind::Forbidden => "Forbidden",
            Kind::NotFound => "No route matches this path",
            Kind::MethodNotAllowed => "Method not allowed on this route",
            Kind::Conflict => "Conflict",
            Kind::UpgradeRequired => "Upgrade required",
            Kind::PayloadTooLarge => "Request body too large",
            Kind::UriTooLong => "Request path too long",
            Kind::UnsupportedMediaType => "Unsupported request body type",
            Kind::TooManyRequests => "Rate limit exceeded",
            Kind::QuotaExceeded => "Quota exceeded",
            Kind::HeadersTooLarge => "Request headers too large",
            Kind::Internal => "Internal gateway error",
            Kind::BadGateway => "The origin could not be reached",
            Kind::Unavailable => "Service unavailable",
            Kind::GatewayTimeout => "The origin did not answer in time",
        }
    }

    /// The problem `type` URI: stable, one per kind.
    pub fn type_uri(self) -> &'static str {
        match self {
            Kind::BadRequest => "urn:edge-gateway:problem:bad-request",
            Kind::Unauthorized => "urn:edge-gateway:problem:unauthorized",
            Kind::Forbidden => "urn:edge-gateway:problem:forbidden",
            Kind::NotFound => "urn:edge-gateway:problem:not-found",
            Kind::MethodNotAllowed => "urn:edge-gateway:problem:method-not-allowed",
            Kind::Conflict => "urn:edge-gateway:problem:conflict",
            Kind::UpgradeRequired => "urn:edge-gateway:problem:upgrade-required",
            Kind::PayloadTooLarge => "urn:edge-gateway:problem:payload-too-large",
            Kind::UriTooLong => "urn:edge-gateway:problem:uri-too-long",
            Kind::UnsupportedMediaType => "urn:edge-gateway:problem:unsupported-media-type",
            Kind::TooManyRequests => "urn:edge-gateway:problem:rate-limited",
            Kind::QuotaExceeded => "urn:edge-gateway:problem:quota-exceeded",
            Kind::HeadersTooLarge => "urn:edge-gateway:problem:headers-too-large",
            Kind::Internal => "urn:edge-gateway:problem:internal",
            Kind::BadGateway => "urn:edge-gateway:problem:bad-gateway",
            Kind::Unavailable => "urn:edge-gateway:problem:unavailable",
            Kind::GatewayTimeout => "urn:edge-gateway:problem:gateway-timeout",
        }
    }
}

/// An error response decided by a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: Kind,
    /// A short, client-safe explanation.
    pub detail: Cow<'static, str>,
    /// Extra response headers (`Allow`, `WWW-Authenticate`, `Retry-After`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// What a validation found wrong, one entry a place (the body's `errors` array).
    pub errors: Vec<FieldError>,
}

/// One entry of a problem's `errors` array: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Into the request body (`""` for the whole body, `/items/0/name`), or
    /// `/query/NAME` for a query parameter.
    pub pointer: String,
    pub detail: String,
}

impl Problem {
    pub fn new(kind: Kind, detail: impl Into<Cow<'static, str>>) -> Self {
        Problem {
            kind,
            detail: detail.into(),
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// With an `errors` array in the body.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body, naming the request id.
    pub fn body(&self, request_id: &str) -> String {
        let mut body = serde_json::json!({
            "type": self.kind.type_uri(),
            "title": self.kind.title(),
            "status": self.kind.status(),
            "detail": self.detail,
            "request_id": request_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = serde_json::json!(self.errors);
        }
        body.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_contract_fields() {
        let p = Problem::new(Kind::MethodNotAllowed, "use GET").with_header("allow", "GET, HEAD");
        let v: serde_json::Value = serde_json::from_str(&p.body("rid-1")).unwrap();
        assert_eq!(v["status"], 405);
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v["type"], "urn:edge-gateway:problem:method-not-allowed");
        assert!(v["title"].is_string());
        assert_eq!(p.headers, vec![("allow", "GET, HEAD".to_string())]);
    }

    #[test]
    fn errors_are_listed_only_when_there_are_some() {
        let p = Problem::new(Kind::BadRequest, "invalid");
        let v: serde_json::Value = serde_json::from_str(&p.body("r")).unwrap();
        assert!(v.get("errors").is_none());
        let p = p.with_errors(vec![FieldError {
            pointer: "/a/0".into(),
            detail: "want string".into(),
        }]);
        let v: serde_json::Value = serde_json::from_str(&p.body("r")).unwrap();
        assert_eq!(
            v["errors"],
            serde_json::json!([{"pointer": "/a/0", "detail": "want string"}])
        );
        assert_eq!(Problem::new(Kind::UnsupportedMediaType, "x").status(), 415);
    }

    #[test]
    fn detail_is_escaped() {
        let p = Problem::new(Kind::BadRequest, "quote \" and \n newline");
        let v: serde_json::Value = serde_json::from_str(&p.body("r")).unwrap();
        assert_eq!(v["detail"], "quote \" and \n newline");
    }
}
