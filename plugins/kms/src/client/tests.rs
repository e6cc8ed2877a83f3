use std::collections::VecDeque;

use serde_json::{Value, json};

use super::*;
use crate::request::Operation;

const ARN: &str = "arn:aws:kms:us-east-1:000000000000:key/8c3a5a0e-2b1f-4d7e-9a33-1f1f1f1f1f1f";
const NEXT_ARN: &str =
    "arn:aws:kms:us-east-1:000000000000:key/00000000-0000-4000-8000-000000000002";
/// 32 bytes of 0x2a.
const DEK_B64: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// What the fake host saw of one request.
#[derive(Debug)]
struct Sent {
    target: &'static str,
    body: Value,
}

/// A host with a config table and canned answers.
#[derive(Default)]
struct Fake {
    key_id: Option<String>,
    answers: VecDeque<Result<Reply, HttpError>>,
    sent: Vec<Sent>,
    logged: Vec<String>,
}

impl Fake {
    fn with_key(key_id: &str) -> Self {
        Self {
            key_id: Some(key_id.into()),
            ..Self::default()
        }
    }

    fn answer(mut self, status: u16, body: &str) -> Self {
        self.answers.push_back(Ok(Reply {
            status,
            headers: vec![("x-amzn-RequestId".into(), "req-1".into())],
            body: Zeroizing::new(body.as_bytes().to_vec()),
        }));
        self
    }

    fn fail(mut self, err: HttpError) -> Self {
        self.answers.push_back(Err(err));
        self
    }
}

impl Imports for Fake {
    fn configured_key_id(&mut self) -> Result<String, ProviderError> {
        self.key_id.clone().ok_or_else(|| {
            ProviderError::Misconfigured("the provider's config table has no \"key_id\"".into())
        })
    }

    fn send(&mut self, request: &mut request::KmsRequest) -> Result<Reply, HttpError> {
        let [(_, target), _] = request.headers();
        self.sent.push(Sent {
            target,
            body: serde_json::from_slice(&request.body).unwrap(),
        });
        self.answers.pop_front().expect("a canned answer")
    }

    fn debug(&mut self, line: &str) {
        self.logged.push(line.to_owned());
    }
}

fn kms(fake: Fake) -> Kms<Fake> {
    Kms::new(fake, "aws-kms", "0.1.0")
}

fn ctx() -> Vec<ContextEntry> {
    vec![ContextEntry {
        key: "ballot_id".into(),
        value: "b-17".into(),
    }]
}

#[test]
fn describe_reports_the_arn_of_the_configured_key_and_both_features() {
    let mut kms = kms(Fake::with_key(" alias/keyhost ").answer(
        200,
        &format!(r#"{{"KeyMetadata":{{"Arn":"{ARN}","KeyUsage":"ENCRYPT_DECRYPT"}}}}"#),
    ));
    let description = kms.describe().unwrap();
    assert_eq!(description.name, "aws-kms");
    assert_eq!(description.version, "0.1.0");
    assert_eq!(description.key_id, ARN);
    assert_eq!(
        description.features,
        Features::GENERATE_DATA_KEY | Features::RE_ENCRYPT
    );
    assert_eq!(kms.imports.sent[0].target, Operation::DescribeKey.target());
    assert_eq!(
        kms.imports.sent[0].body,
        json!({ "KeyId": "alias/keyhost" })
    );
}

#[test]
fn a_missing_key_id_is_a_configuration_error_and_sends_nothing() {
    let mut kms = kms(Fake::default());
    assert!(matches!(
        kms.describe(),
        Err(ProviderError::Misconfigured(_))
    ));
    let mut kms = self::kms(Fake::with_key("  "));
    match kms.generate_data_key(&ctx()) {
        Err(ProviderError::Misconfigured(m)) => {
            assert!(m.contains("aws-kms provider's key_id is empty"), "{m}")
        }
        Err(other) => panic!("expected misconfigured, got {other:?}"),
        Ok(generated) => panic!("expected misconfigured, got {generated:?}"),
    }
    assert!(kms.imports.sent.is_empty());
}

#[test]
fn generate_data_key_wraps_under_the_context_and_records_the_arn_from_kms() {
    let mut kms = kms(Fake::with_key("alias/keyhost").answer(
        200,
        &format!(r#"{{"CiphertextBlob":"AQID","Plaintext":"{DEK_B64}","KeyId":"{ARN}"}}"#),
    ));
    let generated = kms.generate_data_key(&ctx()).unwrap();
    assert_eq!(generated.plaintext.as_slice(), &[0x2a; 32]);
    assert_eq!(generated.wrapped.key_id, ARN);
    assert_eq!(
        kms.imports.sent[0].body,
        json!({ "KeyId": "alias/keyhost", "KeySpec": "AES_256", "EncryptionContext": { "ballot_id": "b-17" } })
    );
}

#[test]
fn wrap_encrypts_with_the_configured_key() {
    let mut kms = kms(Fake::with_key("alias/keyhost").answer(
        200,
        &format!(r#"{{"CiphertextBlob":"AQID","KeyId":"{ARN}"}}"#),
    ));
    let wrapped = kms.wrap(&[0x2a; 32], &ctx()).unwrap();
    assert_eq!(
        (wrapped.key_id.as_str(), wrapped.ciphertext.as_slice()),
        (ARN, &[1, 2, 3][..])
    );
    let sent = &kms.imports.sent[0];
    assert_eq!(sent.target, "TrentService.Encrypt");
    assert_eq!(sent.body["Plaintext"], DEK_B64);
}

#[test]
fn unwrap_decrypts_with_the_recorded_key_not_the_configured_one() {
    let mut kms = kms(Fake::with_key("alias/keyhost").answer(
        200,
        &format!(r#"{{"KeyId":"{ARN}","Plaintext":"{DEK_B64}"}}"#),
    ));
    let wrapped = WrappedKey {
        key_id: ARN.into(),
        ciphertext: vec![1, 2, 3],
    };
    let dek = kms.unwrap(&wrapped, &ctx()).unwrap();
    assert_eq!(dek.as_slice(), &[0x2a; 32]);
    assert_eq!(
        kms.imports.sent[0].body,
        json!({ "KeyId": ARN, "CiphertextBlob": "AQID", "EncryptionContext": { "ballot_id": "b-17" } })
    );
}

#[test]
fn unwrap_under_another_context_is_an_invalid_ciphertext() {
    let mut kms = kms(Fake::with_key("alias/keyhost").answer(
        400,
        r#"{"__type":"InvalidCiphertextException","message":""}"#,
    ));
    let wrapped = WrappedKey {
        key_id: ARN.into(),
        ciphertext: vec![1, 2, 3],
    };
    match kms.unwrap(&wrapped, &ctx()) {
        Err(ProviderError::InvalidCiphertext(m)) => {
            assert!(m.contains(ARN) && m.ends_with("[request id req-1]"), "{m}")
        }
        other => panic!("expected invalid-ciphertext, got {other:?}"),
    }
}

#[test]
fn re_encrypt_goes_to_the_configured_key_when_no_destination_is_given() {
    let answer =
        format!(r#"{{"CiphertextBlob":"BAU=","SourceKeyId":"{ARN}","KeyId":"{NEXT_ARN}"}}"#);
    let mut kms = kms(Fake::with_key("alias/next")
        .answer(200, &answer)
        .answer(200, &answer));
    let wrapped = WrappedKey {
        key_id: ARN.into(),
        ciphertext: vec![1, 2, 3],
    };
    let rewrapped = kms.re_encrypt(&wrapped, &ctx(), None).unwrap();
    assert_eq!(
        (rewrapped.key_id.as_str(), rewrapped.ciphertext.as_slice()),
        (NEXT_ARN, &[4, 5][..])
    );
    assert_eq!(
        kms.imports.sent[0].body,
        json!({
            "SourceKeyId": ARN,
            "DestinationKeyId": "alias/next",
            "CiphertextBlob": "AQID",
            "SourceEncryptionContext": { "ballot_id": "b-17" },
            "DestinationEncryptionContext": { "ballot_id": "b-17" },
        })
    );
    kms.re_encrypt(&wrapped, &ctx(), Some(NEXT_ARN)).unwrap();
    assert_eq!(kms.imports.sent[1].body["DestinationKeyId"], NEXT_ARN);
}

#[test]
fn re_encrypt_to_an_empty_destination_is_refused_without_a_request() {
    let mut kms = kms(Fake::with_key("alias/next"));
    let wrapped = WrappedKey {
        key_id: ARN.into(),
        ciphertext: vec![1],
    };
    assert!(matches!(
        kms.re_encrypt(&wrapped, &ctx(), Some(" ")),
        Err(ProviderError::Misconfigured(_))
    ));
    assert!(kms.imports.sent.is_empty());
}

#[test]
fn a_host_failure_is_mapped_and_never_retried() {
    let mut kms =
        kms(Fake::with_key("alias/keyhost").fail(HttpError::Denied("not granted".into())));
    assert!(matches!(
        kms.wrap(&[0; 32], &[]),
        Err(ProviderError::Denied(_))
    ));
    assert_eq!(kms.imports.sent.len(), 1);
}

#[test]
fn each_call_logs_one_debug_line_without_key_material_or_ciphertext() {
    let mut kms = kms(Fake::with_key("alias/keyhost").answer(
        200,
        &format!(
            r#"{{"CiphertextBlob":"AQIDBAUGBwgJCgsMDQ4P","Plaintext":"{DEK_B64}","KeyId":"{ARN}"}}"#
        ),
    ));
    kms.generate_data_key(&ctx()).unwrap();
    assert_eq!(
        kms.imports.logged,
        ["TrentService.GenerateDataKey for key alias/keyhost: HTTP 200"]
    );
    let line = &kms.imports.logged[0];
    assert!(!line.contains("Kioq") && !line.contains("AQID"), "{line}");
}
