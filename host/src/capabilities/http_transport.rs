//! Sending a checked request to the granted endpoint.

use super::http::{AllowedRequest, HttpCapability};
use crate::runtime::bindings::http::{HttpError, Response};

pub(super) async fn send(
    _http: &HttpCapability,
    provider: &str,
    _request: AllowedRequest,
) -> Result<Response, HttpError> {
    Err(HttpError::Failed(format!(
        "provider {provider}: this keyhost build has no outbound http transport"
    )))
}
