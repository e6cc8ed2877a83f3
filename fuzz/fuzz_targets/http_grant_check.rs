//! `HttpCapability::check`, the http grant check, on requests built from the
//! fuzz input, under an aws-sigv4 grant with an allow list and under an
//! unsigned one. It never panics, and every request it accepts keeps the
//! grant's promises: an allowed method; a path that begins with '/', not
//! '//', and leaves the granted origin unchanged once joined to it; the body
//! within the limit; header names that are lowercase tokens, none of them
//! host-owned; no CR, LF or NUL in a value; and for aws-sigv4 exactly one
//! X-Amz-Target, from the allow list.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use keyhost::capabilities::http::HttpCapability;
use keyhost::config::{Endpoint, HttpAuth, HttpGrant, Limits};
use keyhost::runtime::bindings::http::{Header, HttpError, Request};
use libfuzzer_sys::fuzz_target;

/// The host's list (HOST_OWNED_HEADERS in host/src/capabilities/http.rs),
/// repeated here as the oracle; keep the two in step.
const HOST_OWNED: &[&str] = &[
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
const OTHER_HEADERS: &[&str] = &["content-type", "accept", "user-agent", "x-amz-user-agent"];
const ALLOWED: &[&str] = &["TrentService.Encrypt", "TrentService.Decrypt"];
const BODY_LIMIT: usize = 256;

#[derive(Arbitrary, Debug)]
struct Input {
    sigv4: bool,
    method: Method,
    path: PathIn,
    headers: Vec<HeaderIn>,
    body: Vec<u8>,
}

/// Known spellings often, so that the fuzzer reaches the later checks.
#[derive(Arbitrary, Debug)]
enum Method {
    Known(u8, u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PathIn {
    Rooted(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
struct HeaderIn {
    name: NameIn,
    value: ValueIn,
}

#[derive(Arbitrary, Debug)]
enum NameIn {
    Target(u16),
    HostOwned(u8, u16),
    Other(u8, u16),
    Proxy(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ValueIn {
    Allowed(u8, String),
    Raw(String),
}

/// Flips the ASCII case of the characters whose bit is set in `mask`.
fn with_case(text: &str, mask: u16) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 16) & 1 == 1 {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Input {
    fn request(&self) -> Request {
        let method = match &self.method {
            Method::Known(i, mask) => with_case(pick(METHODS, *i), u16::from(*mask)),
            Method::Raw(s) => s.clone(),
        };
        let path = match &self.path {
            PathIn::Rooted(s) => format!("/{s}"),
            PathIn::Raw(s) => s.clone(),
        };
        let headers = self
            .headers
            .iter()
            .map(|h| Header {
                name: match &h.name {
                    NameIn::Target(mask) => with_case("x-amz-target", *mask),
                    NameIn::HostOwned(i, mask) => with_case(pick(HOST_OWNED, *i), *mask),
                    NameIn::Other(i, mask) => with_case(pick(OTHER_HEADERS, *i), *mask),
                    NameIn::Proxy(s) => format!("Proxy-{s}"),
                    NameIn::Raw(s) => s.clone(),
                },
                value: match &h.value {
                    // An allowed target, and sometimes something after it.
                    ValueIn::Allowed(i, tail) => format!("{}{tail}", pick(ALLOWED, *i)),
                    ValueIn::Raw(s) => s.clone(),
                },
            })
            .collect();
        Request {
            method,
            path,
            headers,
            body: self.body.clone(),
        }
    }
}

fn capability(sigv4: bool) -> HttpCapability {
    let auth = if sigv4 {
        HttpAuth::AwsSigV4 {
            service: "kms".into(),
            region: "us-east-1".into(),
            static_credentials: None,
        }
    } else {
        HttpAuth::None
    };
    let grant = HttpGrant {
        endpoint: Endpoint {
            scheme: "http".into(),
            host: "127.0.0.1".into(),
            port: 4566,
        },
        auth,
        allowed_targets: if sigv4 {
            ALLOWED.iter().map(|t| t.to_string()).collect()
        } else {
            Vec::new()
        },
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        max_retries: 0,
    };
    let limits = Limits {
        max_request_bytes: BODY_LIMIT,
        ..Limits::default()
    };
    HttpCapability::new(grant, &limits).expect("a loopback grant loads")
}

fuzz_target!(|input: Input| {
    let request = input.request();
    let sent = request.clone();
    let capability = capability(input.sigv4);
    let allowed = match capability.check("fuzz", request) {
        Ok(allowed) => allowed,
        Err(HttpError::Denied(message)) => {
            assert!(!message.is_empty());
            return;
        }
        Err(HttpError::TooLarge(_)) => {
            assert!(sent.body.len() > BODY_LIMIT);
            return;
        }
        Err(other) => panic!("the check gave {other:?}"),
    };

    assert!(METHODS.contains(&allowed.method.as_str()));
    assert_eq!(allowed.method, sent.method.to_ascii_uppercase());

    assert_eq!(allowed.path, sent.path);
    assert!(allowed.path.starts_with('/'), "{:?}", allowed.path);
    assert!(!allowed.path.starts_with("//"), "{:?}", allowed.path);
    let endpoint = &capability.grant.endpoint;
    let url = url::Url::parse(&format!("{endpoint}{}", allowed.path))
        .unwrap_or_else(|e| panic!("accepted path {:?} is not a URL: {e}", allowed.path));
    assert_eq!(url.scheme(), endpoint.scheme);
    assert_eq!(
        url.host_str(),
        Some(endpoint.host.as_str()),
        "{:?}",
        allowed.path
    );
    assert_eq!(url.port_or_known_default(), Some(endpoint.port));
    assert!(url.username().is_empty() && url.password().is_none());

    assert_eq!(allowed.body, sent.body);
    assert!(allowed.body.len() <= BODY_LIMIT);

    assert_eq!(allowed.headers.len(), sent.headers.len());
    for ((name, value), original) in allowed.headers.iter().zip(&sent.headers) {
        assert_eq!(*name, original.name.to_ascii_lowercase());
        assert_eq!(*value, original.value);
        assert!(!HOST_OWNED.contains(&name.as_str()), "{name}");
        assert!(!name.starts_with("proxy-"), "{name}");
        http::HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("accepted header name {name:?} is not a token: {e}"));
        assert!(!value.contains(['\r', '\n', '\0']), "{name}: {value:?}");
    }
    let targets: Vec<&String> = allowed
        .headers
        .iter()
        .filter(|(name, _)| name == "x-amz-target")
        .map(|(_, value)| value)
        .collect();
    assert!(targets.len() <= 1);
    assert_eq!(allowed.operation.as_ref(), targets.first().copied());
    if input.sigv4 {
        assert_eq!(targets.len(), 1);
        assert!(ALLOWED.contains(&targets[0].as_str()), "{:?}", targets[0]);
    }
});
