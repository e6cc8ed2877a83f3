//! From KMS errors and host http errors to `provider-error`.
//!
//! A KMS error is an HTTP 4xx/5xx whose JSON body is
//! `{"__type": "...", "message": "..."}` (or `Message`); the type may carry a
//! namespace (`com.amazonaws.kms#InvalidCiphertextException`) and the
//! `X-Amzn-ErrorType` header, when the host passes it on, takes precedence,
//! as in the AWS SDKs. Every message says what failed, for which key, why,
//! and how to fix it.

use keyhost_guest::ProviderError;
use keyhost_guest::http::HttpError;
use serde::Deserialize;

use crate::request::{KmsRequest, Operation};

/// The `provider-error` case an answer maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Denied,
    InvalidCiphertext,
    Unavailable,
    Throttled,
    Misconfigured,
    Internal,
}

impl Class {
    fn error(self, message: String) -> ProviderError {
        match self {
            Class::Denied => ProviderError::Denied(message),
            Class::InvalidCiphertext => ProviderError::InvalidCiphertext(message),
            Class::Unavailable => ProviderError::Unavailable(message),
            Class::Throttled => ProviderError::Throttled(message),
            Class::Misconfigured => ProviderError::Misconfigured(message),
            Class::Internal => ProviderError::Internal(message),
        }
    }
}

/// Error types whose credentials-or-signature meaning is the same: not
/// retryable, fixed by giving the host working credentials.
const CREDENTIAL_ERRORS: &[&str] = &[
    "UnrecognizedClient",
    "InvalidSignature",
    "ExpiredToken",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "SignatureDoesNotMatch",
];

/// The class of a KMS error from its status and (normalized) error type.
/// The type decides when it is known; the status otherwise.
pub fn classify(status: u16, code: Option<&str>) -> Class {
    if let Some(code) = code {
        match code {
            "InvalidCiphertextException" | "IncorrectKeyException" => {
                return Class::InvalidCiphertext;
            }
            "ThrottlingException" | "LimitExceededException" => return Class::Throttled,
            "NotFoundException"
            | "DisabledException"
            | "KMSInvalidStateException"
            | "InvalidKeyUsageException"
            | "InvalidArnException" => return Class::Misconfigured,
            "DependencyTimeoutException" | "KMSInternalException" | "KeyUnavailableException" => {
                return Class::Unavailable;
            }
            _ => {}
        }
        if code.starts_with("AccessDenied") || CREDENTIAL_ERRORS.iter().any(|c| code.starts_with(c))
        {
            return Class::Denied;
        }
    }
    match status {
        429 => Class::Throttled,
        500..=599 => Class::Unavailable,
        _ => Class::Internal,
    }
}

/// `com.amazonaws.kms#NotFoundException:http://...` → `NotFoundException`.
pub fn normalize_code(raw: &str) -> Option<&str> {
    let code = raw.rsplit('#').next().unwrap_or(raw);
    let code = code.split(':').next().unwrap_or(code).trim();
    (!code.is_empty()).then_some(code)
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// The `provider-error` for a non-2xx answer to `request`.
pub fn from_response(
    request: &KmsRequest,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> ProviderError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let header_code = header(headers, "x-amzn-errortype").and_then(normalize_code);
    let code = header_code.or_else(|| parsed.kind.as_deref().and_then(normalize_code));
    let class = classify(status, code);

    let op = request.operation.name();
    let subject = &request.subject;
    let lead = match class {
        Class::Denied => format!("KMS denied {op} for {subject}"),
        Class::InvalidCiphertext => format!("KMS refused the wrapped key in {op} for {subject}"),
        Class::Throttled => format!("KMS throttled {op} for {subject}"),
        Class::Misconfigured => format!("KMS cannot use {subject} for {op}"),
        Class::Unavailable => format!("KMS could not serve {op} for {subject}"),
        Class::Internal => format!("KMS gave an unexpected answer to {op} for {subject}"),
    };
    let mut detail = format!("HTTP {status}");
    if let Some(code) = code {
        detail.push(' ');
        detail.push_str(code);
    }
    if let Some(message) = parsed
        .message
        .as_deref()
        .map(scrub)
        .filter(|m| !m.is_empty())
    {
        detail.push_str(": ");
        detail.push_str(&message);
    }
    let hint = hint(class, code, request.operation);
    let mut message = format!("{lead} ({detail}); {hint}");
    if let Some(id) = header(headers, "x-amzn-requestid")
        .or_else(|| header(headers, "x-amz-request-id"))
        .map(scrub)
    {
        message.push_str(&format!(" [request id {id}]"));
    }
    class.error(message)
}

/// Why, and how to fix it.
fn hint(class: Class, code: Option<&str>, op: Operation) -> String {
    match (class, code) {
        (Class::InvalidCiphertext, Some("IncorrectKeyException")) => {
            "the wrapped key was made by another KMS key than the one its envelope records; the envelope is damaged or was edited".into()
        }
        (Class::InvalidCiphertext, _) => {
            "the wrapped key is damaged, or was wrapped under another encryption context; unwrap it with the exact context it was written with".into()
        }
        (Class::Throttled, _) => {
            "retry later with backoff, or raise the account's KMS request quota".into()
        }
        (Class::Denied, Some(c)) if !c.starts_with("AccessDenied") => {
            "KMS did not accept the credentials the host signs with; give the host valid, unexpired AWS credentials for this account and region".into()
        }
        (Class::Denied, _) => match op {
            Operation::ReEncrypt => "allow the credentials the host signs with kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the destination key, in the key policies or IAM".into(),
            _ => format!(
                "allow the credentials the host signs with kms:{} on this key, in its key policy or IAM",
                op.name()
            ),
        },
        (Class::Misconfigured, Some("DisabledException")) => {
            "the key is disabled; enable it, or set key_id in the provider's config table in keyhost.toml to an enabled key".into()
        }
        (Class::Misconfigured, Some("KMSInvalidStateException")) => {
            "the key is not in a usable state (such as pending deletion or pending import); cancel its deletion, finish its import, or use another key".into()
        }
        (Class::Misconfigured, Some("InvalidKeyUsageException")) => {
            "the key is not a symmetric encryption key; key_id in the provider's config table must name a SYMMETRIC_DEFAULT key with key usage ENCRYPT_DECRYPT".into()
        }
        (Class::Misconfigured, _) => {
            "no such key in the account and region the host signs for; check key_id in the provider's config table in keyhost.toml, and the endpoint and region of its http grant".into()
        }
        (Class::Unavailable, _) => {
            "KMS had a temporary failure; retry later".into()
        }
        (Class::Internal, _) => {
            "this is a bug in the provider or an endpoint that is not KMS; check the endpoint of the provider's http grant, and report the error with its request id".into()
        }
    }
}

/// The `provider-error` for a request the host did not complete.
pub fn from_http_error(request: &KmsRequest, err: HttpError) -> ProviderError {
    let op = request.operation.name();
    let subject = &request.subject;
    match err {
        HttpError::Denied(m) => {
            ProviderError::Denied(format!("the host refused to send {op} for {subject}: {m}"))
        }
        HttpError::Timeout(m) => ProviderError::Unavailable(format!(
            "KMS did not answer {op} for {subject} in time: {m}; check that the endpoint of the provider's http grant is up and reachable, or raise its request_timeout_ms"
        )),
        HttpError::Unreachable(m) => ProviderError::Unavailable(format!(
            "the host could not reach KMS for {op} for {subject}: {m}; check the endpoint of the provider's http grant and the network"
        )),
        HttpError::TooLarge(m) => ProviderError::Internal(format!(
            "{op} for {subject} was larger than the host allows: {m}"
        )),
        HttpError::Failed(m) => ProviderError::Misconfigured(format!(
            "the host could not send {op} for {subject}: {m}; check the AWS credentials and region the host signs with"
        )),
    }
}

/// A header's value, by case-insensitive name.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Longest KMS message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 300;
/// Runs of base64 this long are hidden: they can only be key material or
/// ciphertext, which never go into messages.
const MAX_BASE64_RUN: usize = 40;

/// A KMS message made safe to show: one line, at most [`MAX_MESSAGE_CHARS`],
/// with long base64 runs replaced by `[...]`.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if run.len() >= MAX_BASE64_RUN {
            out.push_str("[...]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=') {
            run.push(c);
            continue;
        }
        flush(&mut out, &mut run);
        out.push(if c.is_control() { ' ' } else { c });
    }
    flush(&mut out, &mut run);
    let out = out.trim();
    match out.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}...", &out[..cut]),
        None => out.to_owned(),
    }
}

#[cfg(test)]
mod tests;
