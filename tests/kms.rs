//! The KMS providers against a real LocalStack: the sandboxed plugin talks
//! KMS only through the host's signed, allow-listed http capability.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use keyhost::config::{self, ProcessEnv, Profile};
use keyhost::envelope::{DataKey, EncryptionContext};
use keyhost::runtime::provider::{ProviderErrorKind, WrappedKey};
use keyhost::{CallError, Keyhost};
use keyhost_tests::localstack::LocalStack;
use keyhost_tests::*;

const ALL_OPERATIONS: &[&str] = &[
    "GenerateDataKey",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "DescribeKey",
];

struct Kms {
    localstack: LocalStack,
    key_arn: String,
    scratch: Scratch,
}

impl Kms {
    async fn start() -> Self {
        let localstack = LocalStack::start();
        let key = keyhost::infra::ensure_key(&localstack.target(), "alias/oponn-ballot-kek")
            .await
            .unwrap();
        assert!(key.created);
        Self {
            localstack,
            key_arn: key.arn,
            scratch: Scratch::new(),
        }
    }

    fn localstack_table(&self, operations: &[&str], extra: &str) -> String {
        provider_table(
            "localstack",
            &plugin("localstack"),
            &format!(
                "config = {{ key_id = \"{}\" }}\n{}\n{extra}",
                self.key_arn,
                self.localstack.http_grant(operations)
            ),
        )
    }

    fn profile(&self, toml: &str, name: &str) -> Profile {
        let file = self.scratch.write("keyhost.toml", toml);
        config::parse(&file, toml, Some(name), &ProcessEnv).unwrap()
    }

    fn keyhost(&self, operations: &[&str]) -> Keyhost {
        let toml = format!(
            "{}\n[profiles.p]\nencrypt = \"localstack\"\n",
            self.localstack_table(operations, "")
        );
        Keyhost::open(&self.profile(&toml, "p")).unwrap()
    }

    async fn sdk(&self) -> aws_sdk_kms::Client {
        self.localstack.target().client().await
    }
}

fn context(id: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("ballot_id", id), ("election_id", "e-2026")]).unwrap()
}

fn sdk_context(id: &str) -> std::collections::HashMap<String, String> {
    context(id)
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn envelopes_round_trip_through_the_localstack_plugin_and_record_the_key_arn() {
    let kms = Kms::start().await;
    let keyhost = kms.keyhost(ALL_OPERATIONS);
    let description = keyhost.encrypting_provider().describe().await.unwrap();
    assert_eq!(description.key_id, kms.key_arn);
    assert!(description.generate_data_key && description.re_encrypt);

    let envelope = keyhost.encrypt(context("b-1"), b"ballot").await.unwrap();
    assert_eq!(envelope.key_section().provider, "localstack");
    assert_eq!(envelope.key_section().key_id, kms.key_arn);
    assert_eq!(
        keyhost
            .decrypt(&envelope, &context("b-1"))
            .await
            .unwrap()
            .as_slice(),
        b"ballot"
    );
}

#[tokio::test]
async fn a_key_wrapped_by_the_plugin_decrypts_with_the_aws_sdk_and_the_reverse() {
    let kms = Kms::start().await;
    let keyhost = kms.keyhost(ALL_OPERATIONS);
    let provider = keyhost.encrypting_provider();
    let dek = DataKey::generate();
    let wrapped = provider.wrap(&dek, &context("b-2")).await.unwrap();

    let sdk = kms.sdk().await;
    let decrypted = sdk
        .decrypt()
        .ciphertext_blob(Blob::new(wrapped.ciphertext.clone()))
        .set_encryption_context(Some(sdk_context("b-2")))
        .key_id(&kms.key_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), dek.expose());

    let theirs = sdk
        .encrypt()
        .key_id(&kms.key_arn)
        .plaintext(Blob::new(dek.expose().to_vec()))
        .set_encryption_context(Some(sdk_context("b-3")))
        .send()
        .await
        .unwrap();
    let wrapped = WrappedKey {
        key_id: theirs.key_id().unwrap().to_owned(),
        ciphertext: theirs.ciphertext_blob().unwrap().as_ref().to_vec(),
    };
    let unwrapped = provider.unwrap(&wrapped, &context("b-3")).await.unwrap();
    assert_eq!(unwrapped.expose(), dek.expose());
}

#[tokio::test]
async fn a_wrong_context_is_invalid_ciphertext_from_kms() {
    let kms = Kms::start().await;
    let keyhost = kms.keyhost(ALL_OPERATIONS);
    let provider = keyhost.encrypting_provider();
    let wrapped = provider
        .wrap(&DataKey::generate(), &context("b-4"))
        .await
        .unwrap();
    let err = provider
        .unwrap(&wrapped, &context("b-5"))
        .await
        .unwrap_err();
    assert_eq!(
        err.provider_kind(),
        Some(ProviderErrorKind::InvalidCiphertext),
        "{err}"
    );
}

#[tokio::test]
async fn re_encrypt_rewraps_inside_kms() {
    let kms = Kms::start().await;
    let keyhost = kms.keyhost(ALL_OPERATIONS);
    let provider = keyhost.encrypting_provider();
    let dek = DataKey::generate();
    let wrapped = provider.wrap(&dek, &context("b-6")).await.unwrap();
    let rewrapped = provider
        .re_encrypt(&wrapped, &context("b-6"), None)
        .await
        .unwrap();
    assert_ne!(rewrapped.ciphertext, wrapped.ciphertext);
    assert_eq!(rewrapped.key_id, kms.key_arn);
    assert_eq!(
        provider
            .unwrap(&rewrapped, &context("b-6"))
            .await
            .unwrap()
            .expose(),
        dek.expose()
    );
}

#[tokio::test]
async fn an_operation_missing_from_the_allow_list_is_denied_and_not_retried() {
    let kms = Kms::start().await;
    let keyhost = kms.keyhost(&["DescribeKey", "Decrypt"]);
    let started = Instant::now();
    let err = keyhost.encrypt(context("b-7"), b"x").await.unwrap_err();
    let call = err.call_error().unwrap();
    assert_eq!(
        call.provider_kind(),
        Some(ProviderErrorKind::Denied),
        "{err}"
    );
    assert!(err.to_string().contains("allowed_targets"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a denial must not be retried"
    );
}

#[tokio::test]
async fn a_stopped_kms_is_unavailable_within_the_timeout() {
    let mut kms = Kms::start().await;
    let keyhost = kms.keyhost(ALL_OPERATIONS);
    let envelope = keyhost.encrypt(context("b-8"), b"x").await.unwrap();
    kms.localstack.stop();
    let started = Instant::now();
    let err = keyhost
        .decrypt(&envelope, &context("b-8"))
        .await
        .unwrap_err();
    assert_eq!(
        err.call_error().and_then(CallError::provider_kind),
        Some(ProviderErrorKind::Unavailable),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn hostile_requests_are_refused_and_audited() {
    let kms = Kms::start().await;
    let audit = kms.scratch.path("audit.jsonl");
    let toml = format!(
        "[runtime]\naudit_log = {audit:?}\n{}\n[profiles.p]\nencrypt = \"fixture\"\n",
        provider_table(
            "fixture",
            &fixture("misbehave"),
            &kms.localstack.http_grant(&["Decrypt"])
        )
    );
    let keyhost = Keyhost::open(&kms.profile(&toml, "p")).unwrap();
    let provider = keyhost.provider("fixture").unwrap();
    for (action, expected) in [
        ("forbidden-operation", "ScheduleKeyDeletion is not allowed"),
        ("authorization-header", "set by the host only"),
        ("host-header", "set by the host only"),
        ("other-host", "must begin with '/'"),
    ] {
        let mischief = EncryptionContext::from_pairs([("misbehave", action)]).unwrap();
        let err = provider
            .wrap(&DataKey::generate(), &mischief)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("Denied") && message.contains(expected),
            "{action}: {message}"
        );
    }
    let log = std::fs::read_to_string(&audit).unwrap();
    let denied = log
        .lines()
        .filter(|l| l.contains("\"operation\":\"http\"") && l.contains("\"outcome\":\"denied\""))
        .count();
    assert_eq!(denied, 4, "{log}");
    keyhost::capabilities::audit::verify(&audit).unwrap();
}

/// The repository's keyhost.toml, with paths made absolute and its env file
/// in the scratch directory, so the shipped profiles are what is tested.
fn shipped_config(kms: &Kms) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("keyhost.toml"))
        .unwrap()
        .replace("\"dist/", &format!("\"{}/dist/", root.display()))
        .replace(
            "\".env.local\"",
            &format!("{:?}", kms.scratch.path(".env.local")),
        )
        .replace(
            "\".keyhost/",
            &format!("\"{}/", kms.scratch.dir.path().display()),
        );
    kms.scratch.write("shipped.toml", text)
}

fn keyhost_cli(kms: &Kms, config: &PathBuf, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(keyhost_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("LOCALSTACK_ENDPOINT", kms.localstack.endpoint())
        .env("LOCALSTACK_ACCESS_KEY_ID", &kms.localstack.access_key_id)
        .env(
            "OPONN_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env_remove("KMS_KEY_ID")
        .env_remove("KEYHOST_PROFILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(output: std::process::Output) -> Vec<u8> {
    assert!(
        output.status.success(),
        "keyhost failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn on_the_dev_profile_rotation_is_transparent_and_env_envelopes_still_decrypt() {
    let kms = Kms::start().await;
    let config = shipped_config(&kms);
    let endpoint = kms.localstack.endpoint();
    let env_file = kms.scratch.path(".env.local");
    let infra = |args: &[&str]| {
        let mut full = vec![
            "infra",
            "--endpoint",
            &endpoint,
            "--env-file",
            env_file.to_str().unwrap(),
        ];
        full.extend_from_slice(args);
        ok(keyhost_cli(&kms, &config, &full, b""))
    };
    let up = String::from_utf8(infra(&["up"])).unwrap();
    assert!(
        up.contains(&kms.key_arn),
        "infra up found the existing key: {up}"
    );
    assert!(
        std::fs::read_to_string(&env_file)
            .unwrap()
            .contains(&format!("KMS_KEY_ID={}", kms.key_arn))
    );

    let ctx = ["-c", "ballot_id=b-9"];
    let legacy = ok(keyhost_cli(
        &kms,
        &config,
        &[&["--profile", "legacy", "encrypt", "--armor"][..], &ctx].concat(),
        b"old ballot",
    ));
    let before = ok(keyhost_cli(
        &kms,
        &config,
        &[&["--profile", "dev", "encrypt", "--armor"][..], &ctx].concat(),
        b"before rotation",
    ));

    let material_before = current_key_material(&kms).await;
    infra(&["rotate"]);
    assert_ne!(
        current_key_material(&kms).await,
        material_before,
        "rotation made new key material"
    );

    let after = ok(keyhost_cli(
        &kms,
        &config,
        &[&["--profile", "dev", "encrypt", "--armor"][..], &ctx].concat(),
        b"after rotation",
    ));
    let decrypt = |envelope: &[u8]| {
        ok(keyhost_cli(
            &kms,
            &config,
            &[&["--profile", "dev", "decrypt"][..], &ctx].concat(),
            envelope,
        ))
    };
    assert_eq!(decrypt(&before), b"before rotation");
    assert_eq!(decrypt(&after), b"after rotation");
    assert_eq!(decrypt(&legacy), b"old ballot");

    let inspect = |envelope: &[u8]| -> serde_json::Value {
        serde_json::from_slice(&ok(keyhost_cli(
            &kms,
            &config,
            &["inspect", "--json"],
            envelope,
        )))
        .unwrap()
    };
    assert_eq!(inspect(&after)["provider"], "localstack");
    assert_eq!(inspect(&after)["key_id"], kms.key_arn.as_str());
    assert_eq!(inspect(&legacy)["provider"], "env");

    // A wrong context through the CLI: one clear line.
    let output = keyhost_cli(
        &kms,
        &config,
        &["--profile", "dev", "decrypt", "-c", "ballot_id=b-10"],
        &after,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bound to context"), "{stderr}");
}

async fn current_key_material(kms: &Kms) -> String {
    let key = kms
        .sdk()
        .await
        .describe_key()
        .key_id(&kms.key_arn)
        .send()
        .await
        .unwrap();
    let id = key
        .key_metadata()
        .unwrap()
        .current_key_material_id()
        .map(str::to_owned);
    id.expect("LocalStack reports CurrentKeyMaterialId")
}
