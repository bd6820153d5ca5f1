//! The `validate` hook: the query first, then the body (read into memory up to
//! the route's limit, validated, kept in `Ctx::body` for the upstream request).

use super::{invalid, is_json_type, not_json_type, ValidatePolicy};
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::pipeline::{Ctx, Exchange, Flow};
use crate::policy::body_limit;
use crate::ports::{BodyError, Ports};

impl ValidatePolicy {
    /// Passes a valid request on (its body read, in `cx.body`) or answers 400,
    /// 413 or 415.
    pub async fn on_request<P: Ports, H: HeaderView + ?Sized>(
        &self,
        x: &Exchange<'_, P, H>,
        cx: &mut Ctx,
    ) -> Result<Flow<P::Response>, Problem> {
        let req = x.req;
        let errors = self.query_errors(req.query);
        if !errors.is_empty() {
            return Err(invalid(
                "the query string does not match this route's parameters",
                errors,
            ));
        }
        if !self.checks_body(req.method, req.has_body) {
            return Ok(Flow::Continue);
        }
        let content_type = req.headers.get("content-type");
        if !is_json_type(content_type.as_deref()) {
            return Err(not_json_type(content_type.as_deref()));
        }
        // `max_body_bytes` already read a body of undeclared length.
        let bytes = if let Some(read) = cx.body.take() {
            read
        } else if req.has_body {
            match x.ports.read_body(self.max_body_bytes).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => return Err(body_limit::too_large(self.max_body_bytes)),
                Err(BodyError::Read(e)) => {
                    cx.log.error = Some(format!("request body: {e}"));
                    return Err(Problem::new(
                        Kind::BadRequest,
                        "the request body could not be read whole",
                    ));
                }
            }
        } else {
            Vec::new()
        };
        self.check_body(&bytes)?;
        cx.body = Some(bytes);
        Ok(Flow::Continue)
    }
}
