use super::*;
use crate::request;

const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/8c3a5a0e-2b1f-4d7e-9a33-1f1f1f1f1f1f";
/// 32 bytes of 0x2a.
const DEK_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn describe_request() -> KmsRequest {
    request::describe_key("alias/keyhost-test").unwrap()
}

fn generate_request() -> KmsRequest {
    request::generate_data_key("alias/keyhost-test", &[]).unwrap()
}

fn decrypt_request() -> KmsRequest {
    request::decrypt(ARN, b"blob", &[]).unwrap()
}

fn internal<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> String {
    match result {
        Err(ProviderError::Internal(m)) => m,
        other => panic!("expected internal, got {other:?}"),
    }
}

#[test]
fn describe_key_reports_the_key_arn() {
    let body = format!(
        r#"{{"KeyMetadata":{{"AWSAccountId":"000000000000","KeyId":"8c3a5a0e","Arn":"{ARN}","Enabled":true,"KeyUsage":"ENCRYPT_DECRYPT","KeySpec":"SYMMETRIC_DEFAULT","KeyState":"Enabled"}}}}"#
    );
    assert_eq!(
        describe_key(&describe_request(), body.as_bytes()).unwrap(),
        ARN
    );
}

#[test]
fn describe_key_without_metadata_or_arn_is_an_unexpected_answer() {
    let request = describe_request();
    assert!(internal(describe_key(&request, b"{}")).contains("has no KeyMetadata"));
    assert!(
        internal(describe_key(&request, br#"{"KeyMetadata":{}}"#))
            .contains("has no KeyMetadata.Arn")
    );
    assert!(
        internal(describe_key(&request, br#"{"KeyMetadata":{"Arn":""}}"#))
            .contains("empty KeyMetadata.Arn")
    );
}

#[test]
fn describe_key_of_a_signing_key_is_a_configuration_error() {
    let body = format!(r#"{{"KeyMetadata":{{"Arn":"{ARN}","KeyUsage":"SIGN_VERIFY"}}}}"#);
    match describe_key(&describe_request(), body.as_bytes()) {
        Err(ProviderError::Misconfigured(m)) => {
            assert!(
                m.contains("SIGN_VERIFY") && m.contains("ENCRYPT_DECRYPT") && m.contains("key_id"),
                "{m}"
            )
        }
        other => panic!("expected misconfigured, got {other:?}"),
    }
}

#[test]
fn generate_data_key_returns_the_plaintext_ciphertext_and_arn() {
    let body = format!(
        r#"{{"CiphertextBlob":"AQIDBA==","Plaintext":"{DEK_B64}","KeyId":"{ARN}","KeyMaterialId":"x"}}"#
    );
    let generated = generate_data_key(&generate_request(), body.as_bytes()).unwrap();
    assert_eq!(generated.plaintext.as_slice(), &[0x2a; 32]);
    assert_eq!(generated.wrapped.key_id, ARN);
    assert_eq!(generated.wrapped.ciphertext, [1, 2, 3, 4]);
}

#[test]
fn generate_data_key_with_a_plaintext_that_is_not_32_bytes_is_an_unexpected_answer() {
    let body = format!(r#"{{"CiphertextBlob":"AQID","Plaintext":"KioqKg==","KeyId":"{ARN}"}}"#);
    let message = internal(generate_data_key(&generate_request(), body.as_bytes()));
    assert!(
        message.contains("Plaintext of 4 bytes instead of 32"),
        "{message}"
    );
}

#[test]
fn generate_data_key_missing_a_field_names_the_field() {
    let request = generate_request();
    for (body, field) in [
        (
            format!(r#"{{"CiphertextBlob":"AQID","KeyId":"{ARN}"}}"#),
            "has no Plaintext",
        ),
        (
            format!(r#"{{"Plaintext":"{DEK_B64}","KeyId":"{ARN}"}}"#),
            "has no CiphertextBlob",
        ),
        (
            format!(r#"{{"CiphertextBlob":"AQID","Plaintext":"{DEK_B64}"}}"#),
            "has no KeyId",
        ),
        (
            format!(r#"{{"CiphertextBlob":"","Plaintext":"{DEK_B64}","KeyId":"{ARN}"}}"#),
            "empty CiphertextBlob",
        ),
    ] {
        let message = internal(generate_data_key(&request, body.as_bytes()));
        assert!(message.contains(field), "{field}: {message}");
        assert!(
            message.contains("GenerateDataKey") && message.contains("alias/keyhost-test"),
            "{message}"
        );
    }
}

#[test]
fn malformed_json_is_an_unexpected_answer_that_does_not_quote_the_body() {
    let request = decrypt_request();
    let message = internal(decrypt(&request, br#"{"Plaintext": "KioqKioqKioqKioqKioq"#));
    assert!(message.contains("ends before the JSON does"), "{message}");
    assert!(!message.contains("Kioq"), "{message}");
    let message = internal(decrypt(&request, b"<html>502 Bad Gateway</html>"));
    assert!(message.contains("is not valid JSON"), "{message}");
    let message = internal(decrypt(&request, br#"{"Plaintext": 42}"#));
    assert!(
        message.contains("wrong type") && !message.contains("42"),
        "{message}"
    );
}

#[test]
fn base64_that_does_not_decode_is_an_unexpected_answer() {
    let request = decrypt_request();
    let message = internal(decrypt(
        &request,
        br#"{"KeyId":"k","Plaintext":"not base64!"}"#,
    ));
    assert!(
        message.contains("Plaintext that is not valid base64"),
        "{message}"
    );
    let message = internal(encrypt(&request, br#"{"KeyId":"k","CiphertextBlob":"@@"}"#));
    assert!(
        message.contains("CiphertextBlob that is not valid base64"),
        "{message}"
    );
}

#[test]
fn decrypt_returns_the_32_byte_data_key() {
    let body = format!(
        r#"{{"KeyId":"{ARN}","Plaintext":"{DEK_B64}","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#
    );
    let dek = decrypt(&decrypt_request(), body.as_bytes()).unwrap();
    assert_eq!(dek.as_slice(), &[0x2a; 32]);
}

#[test]
fn decrypt_to_a_plaintext_that_is_not_32_bytes_is_an_invalid_ciphertext() {
    let body = format!(r#"{{"KeyId":"{ARN}","Plaintext":"aGVsbG8="}}"#);
    match decrypt(&decrypt_request(), body.as_bytes()) {
        Err(ProviderError::InvalidCiphertext(m)) => {
            assert!(m.contains("5 bytes") && m.contains(ARN), "{m}");
            assert!(!m.contains("hello") && !m.contains("aGVsbG8"), "{m}");
        }
        other => panic!("expected invalid-ciphertext, got {other:?}"),
    }
}

#[test]
fn encrypt_and_re_encrypt_record_the_arn_kms_reports() {
    let request = request::encrypt("alias/keyhost-test", &[0; 32], &[]).unwrap();
    let body = format!(
        r#"{{"CiphertextBlob":"AQIDBA==","KeyId":"{ARN}","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#
    );
    let wrapped = encrypt(&request, body.as_bytes()).unwrap();
    assert_eq!(
        (wrapped.key_id.as_str(), wrapped.ciphertext.as_slice()),
        (ARN, &[1, 2, 3, 4][..])
    );

    let request = request::re_encrypt(ARN, "alias/next", b"x", &[]).unwrap();
    let body = r#"{"CiphertextBlob":"BQY=","SourceKeyId":"arn:src","KeyId":"arn:dst"}"#;
    let wrapped = re_encrypt(&request, body.as_bytes()).unwrap();
    assert_eq!(
        (wrapped.key_id.as_str(), wrapped.ciphertext.as_slice()),
        ("arn:dst", &[5, 6][..])
    );
}

#[test]
fn the_debug_form_of_a_generated_key_hides_the_plaintext() {
    let body = format!(r#"{{"CiphertextBlob":"AQID","Plaintext":"{DEK_B64}","KeyId":"{ARN}"}}"#);
    let generated = generate_data_key(&generate_request(), body.as_bytes()).unwrap();
    let shown = format!("{generated:?}");
    assert!(
        shown.contains("plaintext_len: 32") && !shown.contains("42"),
        "{shown}"
    );
}

#[test]
fn answers_recorded_from_localstack_parse() {
    // LocalStack 4.14.0, trimmed of nothing but line breaks.
    let describe = br#"{"KeyMetadata": {"Description": "", "MultiRegion": false, "Origin": "AWS_KMS", "KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT", "AWSAccountId": "000000000042", "CreationDate": 1796297365.035433, "Enabled": true, "KeyManager": "CUSTOMER", "KeyState": "Enabled", "KeyId": "8094f20b-e6a4-4b37-beb4-476ee59fdf3b", "Arn": "arn:aws:kms:us-east-1:000000000042:key/8094f20b-e6a4-4b37-beb4-476ee59fdf3b", "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]}}"#;
    assert_eq!(
        describe_key(&describe_request(), describe).unwrap(),
        "arn:aws:kms:us-east-1:000000000042:key/8094f20b-e6a4-4b37-beb4-476ee59fdf3b"
    );
    let generated = br#"{"KeyId": "arn:aws:kms:us-east-1:000000000042:key/8094f20b-e6a4-4b37-beb4-476ee59fdf3b", "Plaintext": "+zEM2IX7KOBJ7qCIUbcAqbimdx+WgsWcNrI+572yIgE=", "CiphertextBlob": "ODA5NGYyMGItZTZhNC00YjM3LWJlYjQtNDc2ZWU1OWZkZjNixMb8KhNuUMhVNBXsVZycapn1jDKq9GXjT7VqkzafpKm5eTuEjQ7Ib/k65lWWUdwkJwxPpWfrLcsn7xLW/EecLwBD7y9NU5ex51sh3I6qRmg="}"#;
    let generated = generate_data_key(&generate_request(), generated).unwrap();
    assert_eq!(generated.plaintext.len(), 32);
    assert_eq!(generated.wrapped.ciphertext.len(), 116);
    let rewrapped = br#"{"CiphertextBlob": "ZDQxZjMyYjMtYjU0OS00Y2UwLThhZjAtMTJhNzI2ZTU0NzQ4A8BrCYm8xFghKvtrfinGK/EIRrKnRytJukQwDS49GtjPA6W4KQe/Uk2oQQ977g4JiCZEYAljK0sAd73FIUQmux7jeUrd9Bi6ElbPBL9K7uo=", "SourceKeyId": "arn:aws:kms:us-east-1:000000000042:key/8094f20b-e6a4-4b37-beb4-476ee59fdf3b", "KeyId": "arn:aws:kms:us-east-1:000000000042:key/d41f32b3-b549-4ce0-8af0-12a726e54748"}"#;
    let request = request::re_encrypt(ARN, "alias/next", b"x", &[]).unwrap();
    assert_eq!(
        re_encrypt(&request, rewrapped).unwrap().key_id,
        "arn:aws:kms:us-east-1:000000000042:key/d41f32b3-b549-4ce0-8af0-12a726e54748"
    );
}
