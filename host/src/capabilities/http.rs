//! `keyhost:provider/http`: requests to the one endpoint a provider's grant
//! names. The guest supplies method, path, allowed headers and body; the host
//! owns the destination and every header that carries identity or framing,
//! signs the request itself, and refuses anything the grant does not allow.
//!
//! The check runs before any I/O and a refusal is the WIT `denied` error,
//! which providers must not retry.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

use crate::config::{HttpAuth, HttpGrant, Limits};
use crate::runtime::HostState;
use crate::runtime::bindings::http::{Header, Host, HttpError, Request, Response};

use super::http_transport::Transport;
use super::{AuditEvent, Outcome};

/// Headers only the host may set. A guest-chosen `Host` once let a Spin guest
/// reach other hosts (CVE-2024-32980); the rest carry credentials or framing.
const HOST_OWNED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpSetupError {
    #[error(
        "endpoint {endpoint} is a link-local or cloud metadata address; providers may not reach it"
    )]
    MetadataEndpoint { endpoint: String },
}

/// A provider's http grant, checked at load, ready for requests.
pub struct HttpCapability {
    pub grant: HttpGrant,
    max_request_bytes: usize,
    max_response_bytes: usize,
    /// Built on first use, so that loading a provider does no I/O.
    transport: OnceLock<Result<Transport, String>>,
}

/// A request that passed the grant check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The `X-Amz-Target` operation, for audit.
    pub operation: Option<String>,
}

impl HttpCapability {
    pub fn new(grant: HttpGrant, limits: &Limits) -> Result<Self, HttpSetupError> {
        // Check the address the client will connect to: the URL parser reads
        // spellings such as `2852039166` or `0xa9fea9fe` as IPv4 addresses.
        let normalized = reqwest::Url::parse(&grant.endpoint.to_string())
            .ok()
            .and_then(|url| {
                url.host_str()
                    .map(|h| h.trim_matches(['[', ']']).to_owned())
            });
        let literal = grant.endpoint.host.trim_matches(['[', ']']).to_owned();
        for host in normalized.iter().chain(std::iter::once(&literal)) {
            if let Ok(ip) = host.parse::<IpAddr>()
                && is_metadata_address(ip)
            {
                return Err(HttpSetupError::MetadataEndpoint {
                    endpoint: grant.endpoint.to_string(),
                });
            }
        }
        Ok(Self {
            grant,
            max_request_bytes: limits.max_request_bytes,
            max_response_bytes: limits.max_response_bytes,
            transport: OnceLock::new(),
        })
    }

    pub(super) fn transport(&self) -> Result<&Transport, String> {
        self.transport
            .get_or_init(|| Transport::new(&self.grant))
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The grant check. Every refusal says what was refused and how to allow
    /// it, if it can be allowed at all.
    pub fn check(&self, provider: &str, request: Request) -> Result<AllowedRequest, HttpError> {
        let method = request.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(HttpError::Denied(format!(
                "method {:?} is not allowed",
                request.method
            )));
        }
        check_path(&request.path)?;
        if request.body.len() > self.max_request_bytes {
            return Err(HttpError::TooLarge(format!(
                "request body of {} bytes is over provider {provider}'s limit of {} bytes (limits.max_request_kib)",
                request.body.len(),
                self.max_request_bytes
            )));
        }
        let mut headers = Vec::with_capacity(request.headers.len());
        let mut target = None;
        for Header { name, value } in request.headers {
            let lower = name.to_ascii_lowercase();
            if lower.is_empty() || !lower.bytes().all(is_token_byte) {
                return Err(HttpError::Denied(format!(
                    "header name {name:?} is not a valid token"
                )));
            }
            if HOST_OWNED_HEADERS.contains(&lower.as_str())
                || lower.starts_with("proxy-")
                || lower.starts_with("x-forwarded-")
            {
                return Err(HttpError::Denied(format!(
                    "header {name:?} is set by the host only; the host fixes the destination and signs requests itself"
                )));
            }
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(HttpError::Denied(format!(
                    "header {name:?} has a line break or control character in its value"
                )));
            }
            if lower == "x-amz-target" {
                if target.is_some() {
                    return Err(HttpError::Denied("X-Amz-Target is given twice".into()));
                }
                target = Some(value.clone());
            }
            headers.push((lower, value));
        }
        if matches!(self.grant.auth, HttpAuth::AwsSigV4 { .. }) {
            let Some(op) = &target else {
                return Err(HttpError::Denied(
                    "requests under an aws-sigv4 grant must name their operation in X-Amz-Target"
                        .into(),
                ));
            };
            if !self.grant.allowed_targets.iter().any(|t| t == op) {
                return Err(HttpError::Denied(format!(
                    "operation {op} is not allowed for provider {provider}; allowed: {}. Add it to providers.{provider}.http.allowed_targets to grant it",
                    self.grant.allowed_targets.join(", ")
                )));
            }
        }
        Ok(AllowedRequest {
            method,
            path: request.path,
            headers,
            body: request.body,
            operation: target,
        })
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_path(path: &str) -> Result<(), HttpError> {
    let deny = |why: &str| Err(HttpError::Denied(format!("path {path:?} {why}")));
    if !path.starts_with('/') {
        return deny("must begin with '/'");
    }
    if path.starts_with("//") {
        return deny("must not begin with '//'");
    }
    if path.len() > 2048 {
        return deny("is longer than 2048 bytes");
    }
    if path
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b == b'#' || b == b'\\')
    {
        return deny("has spaces, control characters, '#' or '\\'");
    }
    Ok(())
}

/// Link-local addresses, where cloud instance metadata (and its credentials)
/// lives, and the few metadata addresses outside that range.
pub fn is_metadata_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_link_local()
                || v4.octets() == [100, 100, 100, 200]
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            (seg[0] & 0xffc0) == 0xfe80
                || v6.is_unspecified()
                || seg[..4] == [0xfd00, 0x0ec2, 0, 0]
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_metadata_address(IpAddr::V4(v4)))
        }
    }
}

impl Host for HostState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let started = Instant::now();
        let grants = self.grants.clone();
        let provider = grants.provider.as_str();
        let Some(http) = &grants.http else {
            let denial = format!(
                "provider {provider} has no http grant; add [providers.{provider}.http] to keyhost.toml to grant one endpoint"
            );
            self.audit_http(
                provider,
                None,
                Outcome::Denied,
                Some(denial.clone()),
                started,
            );
            return Ok(Err(HttpError::Denied(denial)));
        };
        let allowed = match http.check(provider, request) {
            Ok(allowed) => allowed,
            Err(err) => {
                self.audit_http(
                    provider,
                    None,
                    Outcome::Denied,
                    Some(http_error_text(&err)),
                    started,
                );
                return Ok(Err(err));
            }
        };
        let operation = allowed.operation.clone();
        let result = super::http_transport::send(http, provider, allowed).await;
        let (outcome, detail) = match &result {
            Ok(response) if response.status < 400 => (Outcome::Ok, None),
            Ok(response) => (Outcome::Error, Some(format!("status {}", response.status))),
            Err(err) => (Outcome::Error, Some(http_error_text(err))),
        };
        self.audit_http(provider, operation, outcome, detail, started);
        Ok(result)
    }
}

impl HostState {
    fn audit_http(
        &mut self,
        provider: &str,
        operation: Option<String>,
        outcome: Outcome,
        detail: Option<String>,
        started: Instant,
    ) {
        let mut event = AuditEvent::new("http", provider, outcome, started.elapsed());
        event.detail = match (operation, detail) {
            (Some(op), Some(d)) => Some(format!("{op}: {d}")),
            (Some(op), None) => Some(op),
            (None, d) => d,
        };
        // An http call the log cannot hold ends the operation: see runtime.
        if self.audit.record(event).is_err() {
            self.audit_failed = true;
        }
    }
}

pub(crate) fn http_error_text(err: &HttpError) -> String {
    match err {
        HttpError::Denied(m) => format!("denied: {m}"),
        HttpError::Timeout(m) => format!("timeout: {m}"),
        HttpError::Unreachable(m) => format!("unreachable: {m}"),
        HttpError::TooLarge(m) => format!("too large: {m}"),
        HttpError::Failed(m) => format!("failed: {m}"),
    }
}

#[cfg(test)]
mod tests;
