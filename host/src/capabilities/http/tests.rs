use std::time::Duration;

use super::*;
use crate::config::Endpoint;

fn kms_grant() -> HttpCapability {
    HttpCapability::new(
        HttpGrant {
            endpoint: Endpoint {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 4566,
            },
            auth: HttpAuth::AwsSigV4 {
                service: "kms".into(),
                region: "us-east-1".into(),
                static_credentials: None,
            },
            allowed_targets: vec!["TrentService.Encrypt".into(), "TrentService.Decrypt".into()],
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_retries: 0,
        },
        &Limits::default(),
    )
    .unwrap()
}

fn request(headers: &[(&str, &str)]) -> Request {
    Request {
        method: "POST".into(),
        path: "/".into(),
        headers: headers
            .iter()
            .map(|(n, v)| Header {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        body: b"{}".to_vec(),
    }
}

fn denial(result: Result<AllowedRequest, HttpError>) -> String {
    match result {
        Err(HttpError::Denied(message)) => message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn an_allowed_operation_passes_with_its_headers_lowercased() {
    let allowed = kms_grant()
        .check(
            "localstack",
            request(&[
                ("X-Amz-Target", "TrentService.Decrypt"),
                ("Content-Type", "application/x-amz-json-1.1"),
            ]),
        )
        .unwrap();
    assert_eq!(allowed.operation.as_deref(), Some("TrentService.Decrypt"));
    assert_eq!(
        allowed.headers[1],
        ("content-type".into(), "application/x-amz-json-1.1".into())
    );
}

#[test]
fn an_operation_outside_the_allow_list_is_denied_with_the_fix() {
    let message = denial(kms_grant().check(
        "localstack",
        request(&[("X-Amz-Target", "TrentService.ScheduleKeyDeletion")]),
    ));
    assert!(
        message.contains("TrentService.ScheduleKeyDeletion"),
        "{message}"
    );
    assert!(
        message.contains("providers.localstack.http.allowed_targets"),
        "{message}"
    );
}

#[test]
fn a_sigv4_request_without_an_operation_is_denied() {
    denial(kms_grant().check("localstack", request(&[])));
}

#[test]
fn host_owned_headers_are_denied_in_any_case() {
    for name in [
        "Host",
        "authorization",
        "X-AMZ-DATE",
        "X-Amz-Security-Token",
        "Content-Length",
        "Proxy-Whatever",
    ] {
        let message = denial(kms_grant().check(
            "p",
            request(&[("X-Amz-Target", "TrentService.Decrypt"), (name, "x")]),
        ));
        assert!(message.contains("host only"), "{name}: {message}");
    }
}

#[test]
fn header_injection_is_denied() {
    denial(kms_grant().check(
        "p",
        request(&[("X-Amz-Target", "TrentService.Decrypt\r\nHost: evil")]),
    ));
    denial(kms_grant().check(
        "p",
        request(&[("X-Amz-Target", "TrentService.Decrypt"), ("Bad Name", "x")]),
    ));
}

#[test]
fn paths_cannot_name_another_host_or_smuggle_characters() {
    for path in [
        "http://evil/",
        "//evil/x",
        "/a b",
        "/a#b",
        "relative",
        "/a\\b",
    ] {
        let mut req = request(&[("X-Amz-Target", "TrentService.Decrypt")]);
        req.path = path.into();
        denial(kms_grant().check("p", req));
    }
}

#[test]
fn an_oversized_body_is_too_large_not_denied() {
    let mut req = request(&[("X-Amz-Target", "TrentService.Decrypt")]);
    req.body = vec![0; Limits::default().max_request_bytes + 1];
    assert!(matches!(
        kms_grant().check("p", req),
        Err(HttpError::TooLarge(_))
    ));
}

#[test]
fn metadata_and_link_local_addresses_are_recognised() {
    for ip in [
        "169.254.169.254",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "100.100.100.200",
        "0.0.0.0",
    ] {
        assert!(is_metadata_address(ip.parse().unwrap()), "{ip}");
    }
    for ip in ["127.0.0.1", "::1", "52.94.1.1"] {
        assert!(!is_metadata_address(ip.parse().unwrap()), "{ip}");
    }
}

#[test]
fn a_grant_to_a_metadata_endpoint_is_refused_at_load() {
    let mut grant = kms_grant().grant;
    grant.endpoint.host = "169.254.169.254".into();
    assert!(HttpCapability::new(grant, &Limits::default()).is_err());
}

// Property tests: the grant check never panics, and whatever it lets through
// keeps the grant's promises: a path on the granted origin, no host-owned
// header, no line break in a value, and for aws-sigv4 exactly one allowed
// X-Amz-Target.

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// A small body limit, so that generated bodies fall on both sides of it.
const BODY_LIMIT: usize = 64;
const ALLOWED_TARGETS: [&str; 2] = ["TrentService.Encrypt", "TrentService.Decrypt"];

fn grant_for(sigv4: bool) -> HttpCapability {
    let mut grant = kms_grant().grant;
    if !sigv4 {
        grant.auth = HttpAuth::None;
        grant.allowed_targets.clear();
    }
    let limits = Limits {
        max_request_bytes: BODY_LIMIT,
        ..Limits::default()
    };
    HttpCapability::new(grant, &limits).unwrap()
}

/// Flips the ASCII case of the characters whose bit is set in `mask`.
fn with_case(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
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

fn any_case(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    (select(names), any::<u64>()).prop_map(|(name, mask)| with_case(name, mask))
}

fn any_method() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => any_case(METHODS),
        1 => select(vec!["CONNECT", "TRACE", "OPTIONS", "", "POST ", "GET\0", "PO\u{17f}T"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "/[!-~]{0,40}",
        2 => "/\\PC{0,24}",
        2 => select(vec![
            "/",
            "//evil.example/",
            "http://evil.example/",
            "/@evil.example",
            "/%2F%2Fevil.example",
            "/..//evil.example",
            "/\u{ff0f}evil.example",
            "/a b",
            "/a\tb",
            "/a#b",
            "/a\\b",
            "/\u{7f}",
            "/?Action=x",
            "relative",
            "",
        ])
        .prop_map(str::to_owned),
        1 => Just(format!("/{}", "a".repeat(2047))),
        1 => Just(format!("/{}", "a".repeat(2048))),
        1 => any::<String>(),
    ]
}

fn any_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any_case(&["x-amz-target"]),
        3 => any_case(&["content-type", "accept", "x-amz-user-agent", "user-agent"]),
        2 => any_case(HOST_OWNED_HEADERS),
        1 => "[pP][rR][oO][xX][yY]-[a-z]{0,8}",
        2 => "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}",
        1 => any::<String>(),
    ]
}

/// Inserts `c` at a position chosen by `at`.
fn insert_at(text: &str, at: Index, c: char) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars.insert(at.index(chars.len() + 1), c);
    chars.into_iter().collect()
}

fn any_header_value() -> impl Strategy<Value = String> {
    let plain = prop_oneof![
        4 => select(vec![
            ALLOWED_TARGETS[0],
            ALLOWED_TARGETS[1],
            "TrentService.ScheduleKeyDeletion",
            "trentservice.decrypt",
            "TrentService.Decrypt ",
            "application/x-amz-json-1.1",
            "",
        ])
        .prop_map(str::to_owned),
        2 => "[ -~]{0,30}",
        1 => any::<String>(),
    ];
    prop_oneof![
        4 => plain.clone(),
        1 => (plain, any::<Index>(), select(vec!['\r', '\n', '\0']))
            .prop_map(|(value, at, c)| insert_at(&value, at, c)),
    ]
}

/// Up to four headers, often with one allowed X-Amz-Target among them.
fn any_headers() -> impl Strategy<Value = Vec<Header>> {
    let header =
        (any_header_name(), any_header_value()).prop_map(|(name, value)| Header { name, value });
    let target =
        (any_case(&["x-amz-target"]), select(&ALLOWED_TARGETS[..])).prop_map(|(name, value)| {
            Header {
                name,
                value: value.to_owned(),
            }
        });
    (
        prop::option::weighted(0.7, target),
        prop::collection::vec(header, 0..4),
        any::<Index>(),
    )
        .prop_map(|(target, mut headers, at)| {
            if let Some(target) = target {
                headers.insert(at.index(headers.len() + 1), target);
            }
            headers
        })
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..BODY_LIMIT + 8)
}

/// Requests near the boundary of what a grant allows.
fn near_valid_request() -> impl Strategy<Value = Request> {
    (any_method(), any_path(), any_headers(), any_body()).prop_map(
        |(method, path, headers, body)| Request {
            method,
            path,
            headers,
            body,
        },
    )
}

/// A request every grant above accepts, to be spoiled one way at a time.
fn valid_request() -> Request {
    let mut request = request(&[
        ("X-Amz-Target", "TrentService.Decrypt"),
        ("Content-Type", "application/x-amz-json-1.1"),
    ]);
    request.path = "/".into();
    request
}

/// Checks every promise an accepted request keeps, and that a refusal is one
/// the check can give.
fn check_and_verify(sigv4: bool, request: Request) -> Result<(), TestCaseError> {
    let capability = grant_for(sigv4);
    let sent = request.clone();
    match capability.check("p", request) {
        Ok(allowed) => {
            prop_assert!(METHODS.contains(&allowed.method.as_str()));
            prop_assert_eq!(&allowed.method, &sent.method.to_ascii_uppercase());

            prop_assert_eq!(&allowed.path, &sent.path);
            prop_assert!(allowed.path.starts_with('/'), "{:?}", allowed.path);
            prop_assert!(!allowed.path.starts_with("//"), "{:?}", allowed.path);
            prop_assert!(allowed.path.len() <= 2048);
            let endpoint = &capability.grant.endpoint;
            let url = reqwest::Url::parse(&format!("{endpoint}{}", allowed.path));
            prop_assert!(url.is_ok(), "{:?} is not a URL: {url:?}", allowed.path);
            let url = url.unwrap();
            prop_assert_eq!(url.scheme(), endpoint.scheme.as_str());
            prop_assert_eq!(url.host_str(), Some(endpoint.host.as_str()));
            prop_assert_eq!(url.port_or_known_default(), Some(endpoint.port));
            prop_assert!(url.username().is_empty() && url.password().is_none());

            prop_assert_eq!(&allowed.body, &sent.body);
            prop_assert!(allowed.body.len() <= BODY_LIMIT);

            prop_assert_eq!(allowed.headers.len(), sent.headers.len());
            for ((name, value), original) in allowed.headers.iter().zip(&sent.headers) {
                prop_assert_eq!(name, &original.name.to_ascii_lowercase());
                prop_assert_eq!(value, &original.value);
                prop_assert!(!HOST_OWNED_HEADERS.contains(&name.as_str()), "{name}");
                prop_assert!(!name.starts_with("proxy-"), "{name}");
                prop_assert!(
                    http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                    "{name:?}"
                );
                prop_assert!(!value.contains(['\r', '\n', '\0']), "{name}: {value:?}");
            }
            let targets: Vec<&String> = allowed
                .headers
                .iter()
                .filter(|(name, _)| name == "x-amz-target")
                .map(|(_, value)| value)
                .collect();
            prop_assert!(targets.len() <= 1);
            prop_assert_eq!(allowed.operation.as_ref(), targets.first().copied());
            if sigv4 {
                prop_assert_eq!(targets.len(), 1);
                prop_assert!(
                    ALLOWED_TARGETS.contains(&targets[0].as_str()),
                    "{:?}",
                    targets[0]
                );
            }
        }
        Err(HttpError::Denied(message)) => prop_assert!(!message.is_empty()),
        Err(HttpError::TooLarge(_)) => prop_assert!(sent.body.len() > BODY_LIMIT),
        Err(other) => prop_assert!(false, "the check gave {other:?}"),
    }
    Ok(())
}

proptest! {
    // Each case takes microseconds; more cases reach more of the edges.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn checking_arbitrary_requests_never_panics(
        sigv4 in any::<bool>(),
        method in any::<String>(),
        path in any::<String>(),
        headers in prop::collection::vec((any::<String>(), any::<String>()), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let headers = headers.into_iter().map(|(name, value)| Header { name, value }).collect();
        check_and_verify(sigv4, Request { method, path, headers, body })?;
    }

    #[test]
    fn every_request_a_grant_accepts_keeps_the_grants_promises(
        sigv4 in any::<bool>(),
        request in near_valid_request(),
    ) {
        check_and_verify(sigv4, request)?;
    }

    #[test]
    fn an_accepted_path_never_leaves_the_granted_origin(
        sigv4 in any::<bool>(),
        path in any_path(),
    ) {
        let mut request = valid_request();
        request.path = path;
        check_and_verify(sigv4, request)?;
    }

    #[test]
    fn a_host_owned_header_in_any_case_is_denied_wherever_it_appears(
        sigv4 in any::<bool>(),
        name in prop_oneof![
            3 => any_case(HOST_OWNED_HEADERS),
            1 => "[pP][rR][oO][xX][yY]-[!#$%&'*+.^_`|~0-9A-Za-z-]{0,12}",
        ],
        value in "[ -~]{0,20}",
        at in any::<Index>(),
    ) {
        let mut request = valid_request();
        let at = at.index(request.headers.len() + 1);
        request.headers.insert(at, Header { name: name.clone(), value });
        let result = grant_for(sigv4).check("p", request);
        prop_assert!(
            matches!(&result, Err(HttpError::Denied(m)) if m.contains("host only")),
            "{name}: {result:?}"
        );
    }

    #[test]
    fn a_header_value_with_a_line_break_or_nul_anywhere_is_denied(
        sigv4 in any::<bool>(),
        which in any::<Index>(),
        at in any::<Index>(),
        c in select(vec!['\r', '\n', '\0']),
    ) {
        let mut request = valid_request();
        let header = which.index(request.headers.len());
        request.headers[header].value = insert_at(&request.headers[header].value, at, c);
        let result = grant_for(sigv4).check("p", request);
        prop_assert!(matches!(result, Err(HttpError::Denied(_))), "{result:?}");
    }

    #[test]
    fn a_sigv4_request_passes_only_with_exactly_one_allowed_target(
        targets in prop::collection::vec(
            (any_case(&["x-amz-target"]), select(vec![
                ALLOWED_TARGETS[0],
                ALLOWED_TARGETS[1],
                "TrentService.ScheduleKeyDeletion",
                "TrentService.Decrypt ",
                " TrentService.Decrypt",
                "trentservice.decrypt",
                "TrentService.Decrypt,TrentService.ScheduleKeyDeletion",
                "",
            ])),
            0..3,
        ),
    ) {
        let mut request = valid_request();
        request.headers = targets
            .iter()
            .map(|(name, value)| Header { name: name.clone(), value: value.to_string() })
            .collect();
        let expected = targets.len() == 1 && ALLOWED_TARGETS.contains(&targets[0].1);
        let result = grant_for(true).check("p", request);
        prop_assert_eq!(result.is_ok(), expected, "{:?}: {:?}", targets, result);
    }
}

#[test]
fn numeric_spellings_of_the_metadata_address_are_refused_at_load() {
    for host in [
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "169.254.169.254.",
        "0",
    ] {
        let mut grant = kms_grant().grant;
        grant.endpoint.host = host.into();
        assert!(
            HttpCapability::new(grant, &Limits::default()).is_err(),
            "{host}"
        );
    }
}

#[test]
fn control_characters_in_header_values_are_denied() {
    for value in ["a\u{1}b", "a\u{7f}b", "a\0b"] {
        denial(kms_grant().check(
            "p",
            request(&[
                ("X-Amz-Target", "TrentService.Decrypt"),
                ("X-Custom", value),
            ]),
        ));
    }
    kms_grant()
        .check(
            "p",
            request(&[
                ("X-Amz-Target", "TrentService.Decrypt"),
                ("X-Custom", "tab\tok"),
            ]),
        )
        .unwrap();
}
