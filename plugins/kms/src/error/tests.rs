use super::*;
use crate::request;

const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/8c3a5a0e-2b1f-4d7e-9a33-1f1f1f1f1f1f";

fn decrypt_request() -> KmsRequest {
    request::decrypt(ARN, b"blob", &[]).unwrap()
}

fn class_of(error: &ProviderError) -> (Class, String) {
    let (class, m) = match error {
        ProviderError::Denied(m) => (Class::Denied, m),
        ProviderError::InvalidCiphertext(m) => (Class::InvalidCiphertext, m),
        ProviderError::Unavailable(m) => (Class::Unavailable, m),
        ProviderError::Throttled(m) => (Class::Throttled, m),
        ProviderError::Misconfigured(m) => (Class::Misconfigured, m),
        ProviderError::Internal(m) => (Class::Internal, m),
    };
    (class, m.clone())
}

fn answer(status: u16, body: &str) -> ProviderError {
    from_response(&decrypt_request(), status, &[], body.as_bytes())
}

#[test]
fn kms_error_types_map_to_provider_errors_as_the_table_says() {
    let table = [
        ("InvalidCiphertextException", Class::InvalidCiphertext),
        ("IncorrectKeyException", Class::InvalidCiphertext),
        ("ThrottlingException", Class::Throttled),
        ("LimitExceededException", Class::Throttled),
        ("AccessDeniedException", Class::Denied),
        ("UnrecognizedClientException", Class::Denied),
        ("InvalidSignatureException", Class::Denied),
        ("ExpiredTokenException", Class::Denied),
        ("InvalidClientTokenId", Class::Denied),
        ("MissingAuthenticationTokenException", Class::Denied),
        ("IncompleteSignatureException", Class::Denied),
        ("SignatureDoesNotMatch", Class::Denied),
        ("NotFoundException", Class::Misconfigured),
        ("DisabledException", Class::Misconfigured),
        ("KMSInvalidStateException", Class::Misconfigured),
        ("InvalidKeyUsageException", Class::Misconfigured),
        ("InvalidArnException", Class::Misconfigured),
        ("DependencyTimeoutException", Class::Unavailable),
        ("KMSInternalException", Class::Unavailable),
        ("KeyUnavailableException", Class::Unavailable),
        ("ValidationException", Class::Internal),
        ("SerializationException", Class::Internal),
        ("UnsupportedOperationException", Class::Internal),
    ];
    for (code, class) in table {
        assert_eq!(classify(400, Some(code)), class, "{code}");
        let (got, message) = class_of(&answer(
            400,
            &format!(r#"{{"__type":"{code}","message":"m"}}"#),
        ));
        assert_eq!(got, class, "{code}: {message}");
    }
}

#[test]
fn statuses_decide_when_the_error_type_is_unknown_or_missing() {
    assert_eq!(classify(429, None), Class::Throttled);
    assert_eq!(classify(429, Some("SomethingNew")), Class::Throttled);
    assert_eq!(classify(500, None), Class::Unavailable);
    assert_eq!(classify(503, Some("SomethingNew")), Class::Unavailable);
    assert_eq!(classify(400, None), Class::Internal);
    assert_eq!(classify(404, None), Class::Internal);
    assert_eq!(classify(302, None), Class::Internal);
}

#[test]
fn a_known_error_type_wins_over_the_status() {
    assert_eq!(
        classify(500, Some("NotFoundException")),
        Class::Misconfigured
    );
    assert_eq!(
        classify(400, Some("KMSInternalException")),
        Class::Unavailable
    );
    assert_eq!(classify(503, Some("ThrottlingException")), Class::Throttled);
}

#[test]
fn error_types_lose_their_namespace_and_suffix() {
    assert_eq!(
        normalize_code("com.amazonaws.kms#InvalidCiphertextException"),
        Some("InvalidCiphertextException")
    );
    assert_eq!(
        normalize_code(
            "AccessDeniedException:http://internal.amazon.com/coral/com.amazon.coral.service/"
        ),
        Some("AccessDeniedException")
    );
    assert_eq!(
        normalize_code("NotFoundException"),
        Some("NotFoundException")
    );
    assert_eq!(normalize_code(" "), None);
    let (class, _) = class_of(&answer(
        400,
        r#"{"__type":"com.amazonaws.kms#IncorrectKeyException"}"#,
    ));
    assert_eq!(class, Class::InvalidCiphertext);
}

#[test]
fn the_error_type_header_is_preferred_to_the_body() {
    let headers = [(
        "X-Amzn-ErrorType".to_owned(),
        "ThrottlingException:http://internal.amazon.com/".to_owned(),
    )];
    let error = from_response(
        &decrypt_request(),
        400,
        &headers,
        br#"{"__type":"ValidationException"}"#,
    );
    assert_eq!(class_of(&error).0, Class::Throttled);
}

#[test]
fn both_spellings_of_the_message_field_are_read() {
    let (_, m) = class_of(&answer(
        400,
        r#"{"__type":"NotFoundException","message":"Key 'k' does not exist"}"#,
    ));
    assert!(m.contains("Key 'k' does not exist"), "{m}");
    let (_, m) = class_of(&answer(
        400,
        r#"{"__type":"NotFoundException","Message":"Invalid keyId k"}"#,
    ));
    assert!(m.contains("Invalid keyId k"), "{m}");
}

#[test]
fn messages_say_what_failed_for_which_key_why_and_how_to_fix_it() {
    let (class, m) = class_of(&answer(
        400,
        r#"{"__type":"InvalidCiphertextException","message":"The ciphertext is invalid."}"#,
    ));
    assert_eq!(class, Class::InvalidCiphertext);
    assert!(m.contains("Decrypt") && m.contains(ARN), "{m}");
    assert!(
        m.contains("HTTP 400 InvalidCiphertextException: The ciphertext is invalid."),
        "{m}"
    );
    assert!(m.contains("encryption context"), "{m}");

    let (_, m) = class_of(&answer(
        400,
        r#"{"__type":"AccessDeniedException","message":"no"}"#,
    ));
    assert!(m.contains("kms:Decrypt on this key"), "{m}");
    let (_, m) = class_of(&answer(400, r#"{"__type":"UnrecognizedClientException"}"#));
    assert!(m.contains("valid, unexpired AWS credentials"), "{m}");
    let (_, m) = class_of(&answer(400, r#"{"__type":"DisabledException"}"#));
    assert!(m.contains("disabled") && m.contains("enable it"), "{m}");
    let (_, m) = class_of(&answer(400, r#"{"__type":"NotFoundException"}"#));
    assert!(m.contains("key_id") && m.contains("region"), "{m}");
    let (_, m) = class_of(&answer(400, r#"{"__type":"ThrottlingException"}"#));
    assert!(m.contains("retry later"), "{m}");
}

#[test]
fn re_encrypt_denials_name_both_iam_actions() {
    let request = request::re_encrypt(ARN, "alias/next", b"x", &[]).unwrap();
    let error = from_response(&request, 400, &[], br#"{"__type":"AccessDeniedException"}"#);
    let (class, m) = class_of(&error);
    assert_eq!(class, Class::Denied);
    assert!(
        m.contains("kms:ReEncryptFrom") && m.contains("kms:ReEncryptTo"),
        "{m}"
    );
    assert!(m.contains(&format!("key {ARN} to key alias/next")), "{m}");
}

#[test]
fn an_error_body_that_is_not_json_still_maps_by_status() {
    let (class, m) = class_of(&answer(503, "<html>Service Unavailable</html>"));
    assert_eq!(class, Class::Unavailable);
    assert!(m.contains("HTTP 503") && m.contains("retry later"), "{m}");
    let (class, _) = class_of(&answer(429, ""));
    assert_eq!(class, Class::Throttled);
    let (class, m) = class_of(&answer(418, "teapot"));
    assert_eq!(class, Class::Internal);
    assert!(m.contains("HTTP 418") && m.contains("endpoint"), "{m}");
}

#[test]
fn the_request_id_is_quoted_when_the_host_passes_it_on() {
    let headers = [("x-amzn-RequestId".to_owned(), "4d9b-aa".to_owned())];
    let error = from_response(
        &decrypt_request(),
        500,
        &headers,
        br#"{"__type":"KMSInternalException"}"#,
    );
    let (_, m) = class_of(&error);
    assert!(m.ends_with("[request id 4d9b-aa]"), "{m}");
    let headers = [("x-amz-request-id".to_owned(), "77-bb".to_owned())];
    let error = from_response(&decrypt_request(), 503, &headers, b"");
    let (_, m) = class_of(&error);
    assert!(m.ends_with("[request id 77-bb]"), "{m}");
}

#[test]
fn kms_messages_are_one_short_line_without_key_material() {
    let secret = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
    let body = format!(
        r#"{{"__type":"ValidationException","message":"Value '{secret}' at 'plaintext'\nfailed"}}"#
    );
    let (_, m) = class_of(&answer(400, &body));
    assert!(!m.contains(secret) && !m.contains('\n'), "{m}");
    assert!(m.contains("Value '[...]' at 'plaintext' failed"), "{m}");
    assert_eq!(scrub(&"word ".repeat(200)).chars().count(), 303);
    let arn_message = format!("Key '{ARN}' does not exist");
    assert_eq!(scrub(&arn_message), arn_message);
}

#[test]
fn host_http_errors_map_to_provider_errors_as_the_table_says() {
    let request = decrypt_request();
    let cases = [
        (
            HttpError::Denied("operation not allowed".into()),
            Class::Denied,
        ),
        (HttpError::Timeout("5 s".into()), Class::Unavailable),
        (
            HttpError::Unreachable("connection refused".into()),
            Class::Unavailable,
        ),
        (HttpError::TooLarge("over 64 KiB".into()), Class::Internal),
        (
            HttpError::Failed("no AWS credentials".into()),
            Class::Misconfigured,
        ),
    ];
    for (err, class) in cases {
        let text = format!("{err:?}");
        let (got, m) = class_of(&from_http_error(&request, err));
        assert_eq!(got, class, "{text}: {m}");
        assert!(m.contains("Decrypt") && m.contains(ARN), "{m}");
    }
}

#[test]
fn host_http_error_messages_keep_the_host_reason_and_add_the_fix() {
    let request = decrypt_request();
    let (_, m) = class_of(&from_http_error(
        &request,
        HttpError::Failed("no AWS credentials found".into()),
    ));
    assert!(
        m.contains("no AWS credentials found") && m.contains("credentials and region"),
        "{m}"
    );
    let (_, m) = class_of(&from_http_error(
        &request,
        HttpError::Timeout("after 5000 ms".into()),
    ));
    assert!(
        m.contains("after 5000 ms") && m.contains("request_timeout_ms"),
        "{m}"
    );
}

#[test]
fn answers_recorded_from_localstack_map_as_expected() {
    // LocalStack 4.14.0: the type in X-Amzn-Errortype and in __type, often no message.
    let recorded = [
        (
            400,
            "InvalidCiphertextException",
            r#"{"__type": "InvalidCiphertextException"}"#,
            Class::InvalidCiphertext,
        ),
        (
            400,
            "IncorrectKeyException",
            r#"{"__type": "IncorrectKeyException", "message": "The key ID in the request does not identify a CMK that can perform this operation."}"#,
            Class::InvalidCiphertext,
        ),
        (
            400,
            "NotFoundException",
            r#"{"__type": "NotFoundException", "message": "Unable to find KMS alias with name alias/does-not-exist"}"#,
            Class::Misconfigured,
        ),
        (
            400,
            "DisabledException",
            r#"{"__type": "DisabledException", "message": "arn:aws:kms:us-east-1:000000000042:key/d41f32b3-b549-4ce0-8af0-12a726e54748 is disabled."}"#,
            Class::Misconfigured,
        ),
        (
            400,
            "InvalidKeyUsageException",
            r#"{"__type": "InvalidKeyUsageException", "message": "key usage is SIGN_VERIFY which is not valid for Encrypt."}"#,
            Class::Misconfigured,
        ),
        (
            400,
            "KMSInvalidStateException",
            r#"{"__type": "KMSInvalidStateException", "message": "arn:aws:kms:us-east-1:000000000042:key/d41f32b3-b549-4ce0-8af0-12a726e54748 is pending deletion."}"#,
            Class::Misconfigured,
        ),
        (
            500,
            "InternalError",
            r#"{"__type": "InternalError", "message": "exception while calling kms.ReEncrypt: expected string or bytes-like object, got 'NoneType'"}"#,
            Class::Unavailable,
        ),
    ];
    for (status, header, body, class) in recorded {
        let headers = [
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("X-Amzn-Errortype".to_owned(), header.to_owned()),
            (
                "x-amzn-RequestId".to_owned(),
                "8b0e18d0-069c-4b5c-a0f0-a8f8fdaf9994".to_owned(),
            ),
        ];
        let (got, m) = class_of(&from_response(
            &decrypt_request(),
            status,
            &headers,
            body.as_bytes(),
        ));
        assert_eq!(got, class, "{header}: {m}");
        assert!(m.contains(&format!("HTTP {status} {header}")), "{m}");
        assert!(
            m.ends_with("[request id 8b0e18d0-069c-4b5c-a0f0-a8f8fdaf9994]"),
            "{m}"
        );
    }
}
