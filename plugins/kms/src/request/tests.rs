use serde_json::{Value, json};

use super::*;

const KEY: &str = "alias/keyhost-test";
const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/8c3a5a0e-2b1f-4d7e-9a33-1f1f1f1f1f1f";

fn ctx(pairs: &[(&str, &str)]) -> Vec<ContextEntry> {
    pairs
        .iter()
        .map(|(k, v)| ContextEntry {
            key: k.to_string(),
            value: v.to_string(),
        })
        .collect()
}

fn body(request: &KmsRequest) -> Value {
    serde_json::from_slice(&request.body).expect("the body is JSON")
}

fn misconfigured(result: Result<KmsRequest, ProviderError>) -> String {
    match result {
        Err(ProviderError::Misconfigured(m)) => m,
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

fn invalid_ciphertext(result: Result<KmsRequest, ProviderError>) -> String {
    match result {
        Err(ProviderError::InvalidCiphertext(m)) => m,
        other => panic!("expected invalid-ciphertext, got {other:?}"),
    }
}

fn internal(result: Result<KmsRequest, ProviderError>) -> String {
    match result {
        Err(ProviderError::Internal(m)) => m,
        other => panic!("expected internal, got {other:?}"),
    }
}

#[test]
fn every_request_names_its_operation_and_the_json_1_1_content_type() {
    for (op, request) in [
        (Operation::DescribeKey, describe_key(KEY).unwrap()),
        (
            Operation::GenerateDataKey,
            generate_data_key(KEY, &[]).unwrap(),
        ),
        (Operation::Encrypt, encrypt(KEY, &[7; 32], &[]).unwrap()),
        (Operation::Decrypt, decrypt(ARN, b"blob", &[]).unwrap()),
        (
            Operation::ReEncrypt,
            re_encrypt(ARN, KEY, b"blob", &[]).unwrap(),
        ),
    ] {
        assert_eq!(request.operation, op);
        let [target, content_type] = request.headers();
        assert_eq!(target.0, "X-Amz-Target");
        assert_eq!(target.1, format!("TrentService.{}", op.name()));
        assert_eq!(content_type, ("Content-Type", "application/x-amz-json-1.1"));
    }
    assert_eq!((METHOD, PATH), ("POST", "/"));
}

#[test]
fn requests_set_no_header_the_host_owns() {
    let request = encrypt(KEY, &[7; 32], &ctx(&[("a", "b")])).unwrap();
    for (name, _) in request.headers() {
        let lower = name.to_ascii_lowercase();
        assert!(
            ![
                "host",
                "authorization",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-content-sha256",
                "content-length"
            ]
            .contains(&lower.as_str()),
            "{name} is the host's"
        );
    }
}

#[test]
fn the_operations_cover_every_target_a_grant_must_allow() {
    let targets: Vec<_> = Operation::ALL.iter().map(|op| op.target()).collect();
    assert_eq!(
        targets,
        [
            "TrentService.DescribeKey",
            "TrentService.GenerateDataKey",
            "TrentService.Encrypt",
            "TrentService.Decrypt",
            "TrentService.ReEncrypt",
        ]
    );
}

#[test]
fn describe_key_sends_only_the_key_id() {
    let request = describe_key(KEY).unwrap();
    assert_eq!(body(&request), json!({ "KeyId": KEY }));
    assert_eq!(request.subject, format!("key {KEY}"));
}

#[test]
fn generate_data_key_asks_for_an_aes_256_key_under_the_context() {
    let request =
        generate_data_key(KEY, &ctx(&[("ballot_id", "b-17"), ("election", "e-1")])).unwrap();
    assert_eq!(
        body(&request),
        json!({
            "KeyId": KEY,
            "KeySpec": "AES_256",
            "EncryptionContext": { "ballot_id": "b-17", "election": "e-1" },
        })
    );
}

#[test]
fn an_empty_context_is_left_out_of_the_body() {
    assert_eq!(
        body(&generate_data_key(KEY, &[]).unwrap()),
        json!({ "KeyId": KEY, "KeySpec": "AES_256" })
    );
    assert_eq!(
        body(&re_encrypt(ARN, KEY, &[1, 2, 3], &[]).unwrap()),
        json!({ "SourceKeyId": ARN, "DestinationKeyId": KEY, "CiphertextBlob": "AQID" })
    );
}

#[test]
fn encrypt_sends_the_data_key_as_standard_padded_base64() {
    let dek: Vec<u8> = (0..32).map(|i| 0xe0 + (i % 32) as u8).collect();
    let request = encrypt(KEY, &dek, &ctx(&[("ballot_id", "b-17")])).unwrap();
    let expected = "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8=";
    assert_eq!(
        body(&request),
        json!({
            "KeyId": KEY,
            "Plaintext": expected,
            "EncryptionContext": { "ballot_id": "b-17" },
        })
    );
}

#[test]
fn encrypt_refuses_a_data_key_that_is_not_32_bytes() {
    let message = internal(encrypt(KEY, &[1; 16], &[]));
    assert!(
        message.contains("16 bytes") && message.contains(KEY),
        "{message}"
    );
}

#[test]
fn decrypt_names_the_recorded_key_and_sends_the_ciphertext_as_base64() {
    let request = decrypt(ARN, b"\x01\x02\x03\xff", &ctx(&[("ballot_id", "b-17")])).unwrap();
    assert_eq!(
        body(&request),
        json!({
            "KeyId": ARN,
            "CiphertextBlob": "AQID/w==",
            "EncryptionContext": { "ballot_id": "b-17" },
        })
    );
    assert_eq!(request.subject, format!("key {ARN}"));
}

#[test]
fn decrypt_refuses_a_wrapped_key_without_a_key_id_or_ciphertext() {
    assert!(invalid_ciphertext(decrypt("", b"blob", &[])).contains("no KMS key id"));
    assert!(invalid_ciphertext(decrypt(ARN, b"", &[])).contains("0 bytes"));
    let huge = vec![0; MAX_CIPHERTEXT_LEN + 1];
    assert!(invalid_ciphertext(decrypt(ARN, &huge, &[])).contains("6145 bytes"));
}

#[test]
fn re_encrypt_names_both_keys_and_the_same_context_on_both_sides() {
    let request = re_encrypt(
        ARN,
        "alias/next",
        b"\x00\x01",
        &ctx(&[("ballot_id", "b-17")]),
    )
    .unwrap();
    assert_eq!(
        body(&request),
        json!({
            "SourceKeyId": ARN,
            "DestinationKeyId": "alias/next",
            "CiphertextBlob": "AAE=",
            "SourceEncryptionContext": { "ballot_id": "b-17" },
            "DestinationEncryptionContext": { "ballot_id": "b-17" },
        })
    );
    assert_eq!(request.subject, format!("key {ARN} to key alias/next"));
}

#[test]
fn the_context_is_a_json_object_of_its_entries_in_key_order() {
    let request = decrypt(
        ARN,
        b"x",
        &ctx(&[("z", "1"), ("a", "2"), ("m", "quote \" and \\ and é")]),
    )
    .unwrap();
    let text = std::str::from_utf8(&request.body).unwrap();
    assert!(
        text.ends_with(r#""EncryptionContext":{"a":"2","m":"quote \" and \\ and é","z":"1"}}"#),
        "{text}"
    );
}

#[test]
fn a_context_that_repeats_a_key_is_refused() {
    let message = internal(decrypt(ARN, b"x", &ctx(&[("a", "1"), ("a", "2")])));
    assert!(message.contains("twice"), "{message}");
}

#[test]
fn an_empty_key_id_is_a_configuration_error_that_says_how_to_fix_it() {
    let message = misconfigured(generate_data_key(" ", &[]));
    assert!(
        message.contains("key_id") && message.contains("keyhost.toml"),
        "{message}"
    );
    misconfigured(re_encrypt(ARN, "", b"x", &[]));
}

#[test]
fn bodies_fill_their_buffer_exactly_so_it_never_reallocates() {
    let request = encrypt(KEY, &[9; 32], &ctx(&[("k", "v\u{1}\u{7f}")])).unwrap();
    assert_eq!(request.body.len(), request.body.capacity());
}

#[test]
fn the_debug_form_of_a_request_hides_its_body() {
    let request = encrypt(KEY, &[0xab; 32], &[]).unwrap();
    let shown = format!("{request:?}");
    assert!(!shown.contains("q6ur"), "{shown}");
    assert!(shown.contains("body_len"), "{shown}");
}
