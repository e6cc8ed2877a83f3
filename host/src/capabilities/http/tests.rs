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
