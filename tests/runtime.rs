//! The host running real components: the env plugin, a swapped-in second
//! provider, and a provider that misbehaves on request.

use std::time::{Duration, Instant};

use keyhost::config::{self, ProcessEnv, Profile};
use keyhost::envelope::{EncryptionContext, Envelope};
use keyhost::runtime::LoadError;
use keyhost::runtime::provider::ProviderErrorKind;
use keyhost::{CallError, Error, Keyhost};
use keyhost_tests::*;

fn profile(scratch: &Scratch, toml: &str, name: &str) -> Profile {
    let file = scratch.write("keyhost.toml", toml);
    config::parse(&file, toml, Some(name), &ProcessEnv).unwrap()
}

fn ballot_context(id: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("ballot_id", id), ("election_id", "e-2026")]).unwrap()
}

/// The env provider encrypting, the misbehaving fixture loaded as `fixture`.
fn env_and_fixture(scratch: &Scratch, fixture_extra: &str) -> Keyhost {
    let key = scratch.master_key_file("master.key");
    let toml = format!(
        "{}\n{}\n[profiles.p]\nencrypt = \"env\"\ndecrypt_only = [\"fixture\"]\n",
        env_provider_table(&key, ""),
        provider_table("fixture", &fixture("misbehave"), fixture_extra),
    );
    Keyhost::open(&profile(scratch, &toml, "p")).unwrap()
}

/// Only the env provider, reading its master key from `key_file`.
fn env_only(scratch: &Scratch, key_file: &std::path::Path, extra: &str) -> Keyhost {
    let toml = format!(
        "{}\n[profiles.p]\nencrypt = \"env\"\n",
        env_provider_table(key_file, extra)
    );
    Keyhost::open(&profile(scratch, &toml, "p")).unwrap()
}

fn fixture_only(scratch: &Scratch, extra: &str) -> Keyhost {
    let toml = format!(
        "{}\n[profiles.p]\nencrypt = \"fixture\"\n",
        provider_table("fixture", &fixture("misbehave"), extra)
    );
    Keyhost::open(&profile(scratch, &toml, "p")).unwrap()
}

async fn wrap_with(
    keyhost: &Keyhost,
    provider: &str,
    context: &EncryptionContext,
) -> Result<(), CallError> {
    let dek = keyhost::envelope::DataKey::generate();
    keyhost
        .provider(provider)
        .unwrap()
        .wrap(&dek, context)
        .await
        .map(|_| ())
}

fn misbehave(action: &str) -> EncryptionContext {
    EncryptionContext::from_pairs([("misbehave", action)]).unwrap()
}

#[tokio::test]
async fn the_env_component_encrypts_and_decrypts_a_ballot() {
    let scratch = Scratch::new();
    let keyhost = env_and_fixture(&scratch, "");
    let envelope = keyhost
        .encrypt(ballot_context("b-1"), b"yes on 4")
        .await
        .unwrap();
    assert_eq!(envelope.key_section().provider, "env");
    assert!(envelope.key_section().key_id.starts_with("env:sha256:"));
    let parsed = Envelope::parse(&envelope.to_bytes()).unwrap();
    let plaintext = keyhost
        .decrypt(&parsed, &ballot_context("b-1"))
        .await
        .unwrap();
    assert_eq!(plaintext.as_slice(), b"yes on 4");
}

#[tokio::test]
async fn every_single_byte_change_of_an_envelope_is_rejected() {
    let scratch = Scratch::new();
    let keyhost = env_and_fixture(&scratch, "");
    let context = ballot_context("b-2");
    let bytes = keyhost
        .encrypt(context.clone(), b"ballot")
        .await
        .unwrap()
        .to_bytes();
    for i in 0..bytes.len() {
        let mut altered = bytes.clone();
        altered[i] ^= 0x01;
        let outcome = match Envelope::parse(&altered) {
            Err(_) => continue,
            Ok(envelope) => keyhost.decrypt(&envelope, envelope.context()).await,
        };
        assert!(
            outcome.is_err(),
            "flipping a bit of byte {i} went unnoticed"
        );
    }
}

#[tokio::test]
async fn a_wrong_context_is_rejected_before_and_inside_the_provider() {
    let scratch = Scratch::new();
    let keyhost = env_and_fixture(&scratch, "");
    let envelope = keyhost
        .encrypt(ballot_context("b-3"), b"ballot")
        .await
        .unwrap();
    let err = keyhost
        .decrypt(&envelope, &ballot_context("b-4"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ContextMismatch { .. }), "{err}");

    // The wrapped key moved to another ballot's envelope: the provider refuses it.
    let other = keyhost
        .encrypt(ballot_context("b-4"), b"other")
        .await
        .unwrap();
    let spliced = other
        .with_key_section(envelope.key_section().clone())
        .unwrap();
    let err = keyhost
        .decrypt(&spliced, &ballot_context("b-4"))
        .await
        .unwrap_err();
    assert_eq!(
        err.call_error().and_then(CallError::provider_kind),
        Some(ProviderErrorKind::InvalidCiphertext),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_component_is_swapped_in_by_configuration_alone() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "config = { pad = \"7\" }");
    let envelope = keyhost
        .encrypt(ballot_context("b-5"), b"ballot")
        .await
        .unwrap();
    assert_eq!(envelope.key_section().provider, "fixture");
    assert_eq!(envelope.key_section().key_id, "fixture:pad-7");
    let plaintext = keyhost
        .decrypt(&envelope, &ballot_context("b-5"))
        .await
        .unwrap();
    assert_eq!(plaintext.as_slice(), b"ballot");
}

#[tokio::test]
async fn a_profile_without_the_wrapping_provider_names_it_and_the_rewrap_command() {
    let scratch = Scratch::new();
    let with_env = env_and_fixture(&scratch, "");
    let envelope = with_env
        .encrypt(ballot_context("b-6"), b"ballot")
        .await
        .unwrap();
    let without_env = fixture_only(&scratch, "");
    let err = without_env
        .decrypt(&envelope, &ballot_context("b-6"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::ProviderNotLoaded { .. }));
    assert!(
        message.contains("\"env\"") && message.contains("keyhost rewrap --from env"),
        "{message}"
    );
}

#[test]
fn a_component_whose_digest_does_not_match_is_refused() {
    let scratch = Scratch::new();
    let key = scratch.master_key_file("master.key");
    let table =
        env_provider_table(&key, "").replace(&sha256_file(&plugin("env")), &"ab".repeat(32));
    let toml = format!("{table}\n[profiles.p]\nencrypt = \"env\"\n");
    let err = Keyhost::open(&profile(&scratch, &toml, "p"))
        .err()
        .expect("loading must fail");
    assert!(
        matches!(err, Error::Load(LoadError::DigestMismatch { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("refusing to load"), "{err}");
}

#[tokio::test]
async fn a_missing_or_malformed_master_key_is_a_clear_misconfiguration() {
    let scratch = Scratch::new();
    let missing = scratch.path("absent.key");
    let keyhost = env_only(&scratch, &missing, "");
    let err = keyhost
        .encrypt(ballot_context("b-7"), b"x")
        .await
        .unwrap_err();
    assert_eq!(
        err.call_error().and_then(CallError::provider_kind),
        Some(ProviderErrorKind::Misconfigured)
    );
    assert!(err.to_string().contains("absent.key"), "{err}");

    let short = scratch.write("short.key", "c2hvcnQ=");
    let keyhost = env_only(&scratch, &short, "");
    let err = keyhost
        .encrypt(ballot_context("b-7"), b"x")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("decodes to 5 bytes, not 32"),
        "{err}"
    );
}

#[tokio::test]
async fn an_envelope_from_another_master_key_is_refused_by_fingerprint() {
    let scratch = Scratch::new();
    let first = env_and_fixture(&scratch, "");
    let envelope = first
        .encrypt(ballot_context("b-8"), b"ballot")
        .await
        .unwrap();
    let other_scratch = Scratch::new();
    let second = env_and_fixture(&other_scratch, "");
    let err = second
        .decrypt(&envelope, &ballot_context("b-8"))
        .await
        .unwrap_err();
    assert_eq!(
        err.call_error().and_then(CallError::provider_kind),
        Some(ProviderErrorKind::InvalidCiphertext)
    );
    assert!(
        err.to_string()
            .contains("wrapped with master key env:sha256:"),
        "{err}"
    );
}

async fn a_trap_does_not_break_the_next_call(policy: &str) {
    let scratch = Scratch::new();
    let keyhost = env_and_fixture(&scratch, &format!("instances = \"{policy}\""));
    let err = wrap_with(&keyhost, "fixture", &misbehave("panic"))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Trapped { .. }), "{err}");
    wrap_with(&keyhost, "fixture", &ballot_context("b-9"))
        .await
        .unwrap();
    let envelope = keyhost
        .encrypt(ballot_context("b-9"), b"still serving")
        .await
        .unwrap();
    assert_eq!(
        keyhost
            .decrypt(&envelope, &ballot_context("b-9"))
            .await
            .unwrap()
            .as_slice(),
        b"still serving"
    );
}

#[tokio::test]
async fn a_trap_in_one_call_does_not_break_the_next_with_fresh_instances() {
    a_trap_does_not_break_the_next_call("fresh").await;
}

#[tokio::test]
async fn a_trap_in_one_call_does_not_break_the_next_with_reused_instances() {
    a_trap_does_not_break_the_next_call("reuse").await;
}

#[tokio::test]
async fn reused_instances_serve_many_operations() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "instances = \"reuse\"");
    for i in 0..50 {
        let context = ballot_context(&format!("b-{i}"));
        let envelope = keyhost.encrypt(context.clone(), b"ballot").await.unwrap();
        assert_eq!(
            keyhost
                .decrypt(&envelope, &context)
                .await
                .unwrap()
                .as_slice(),
            b"ballot"
        );
    }
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "limits = { deadline_ms = 200 }");
    let started = Instant::now();
    let err = wrap_with(&keyhost, "fixture", &misbehave("loop"))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::DeadlineExceeded { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    wrap_with(&keyhost, "fixture", &ballot_context("b-10"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_memory_cap() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "limits = { memory_mib = 8 }");
    let err = wrap_with(&keyhost, "fixture", &misbehave("grow"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::MemoryLimit { limit, .. } if limit == 8 << 20),
        "{err}"
    );
    wrap_with(&keyhost, "fixture", &ballot_context("b-11"))
        .await
        .unwrap();
}

#[tokio::test]
async fn unbounded_recursion_is_a_trap_not_a_crash() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "");
    let err = wrap_with(&keyhost, "fixture", &misbehave("recurse"))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Trapped { .. }), "{err}");
    wrap_with(&keyhost, "fixture", &ballot_context("b-12"))
        .await
        .unwrap();
}

async fn probe(action: &str) -> String {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "");
    match wrap_with(&keyhost, "fixture", &misbehave(action))
        .await
        .unwrap_err()
    {
        CallError::Provider {
            kind: ProviderErrorKind::Internal,
            message,
        } => message,
        other => panic!("expected the probe's report, got {other}"),
    }
}

#[tokio::test]
async fn the_guest_sees_no_filesystem() {
    let report = probe("fs").await;
    assert!(report.starts_with("fs: Err"), "{report}");
}

#[tokio::test]
async fn the_guest_sees_no_environment_and_no_arguments() {
    assert_eq!(probe("env").await, "env: 0 vars, HOME=None, args=0");
}

#[tokio::test]
async fn the_guest_cannot_open_a_socket() {
    let report = probe("socket").await;
    assert!(report.starts_with("socket: Err"), "{report}");
}

#[tokio::test]
async fn a_provider_without_an_http_grant_is_denied_any_request() {
    let report = probe("forbidden-operation").await;
    assert!(
        report.contains("Denied") && report.contains("has no http grant"),
        "{report}"
    );
}

#[tokio::test]
async fn a_log_flood_is_cut_off_and_the_operation_completes() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "limits = { deadline_ms = 5000 }");
    wrap_with(&keyhost, "fixture", &misbehave("log-flood"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_data_key_of_the_wrong_length_from_a_provider_is_refused() {
    let scratch = Scratch::new();
    let keyhost = fixture_only(&scratch, "");
    let envelope = keyhost
        .encrypt(ballot_context("b-13"), b"ballot")
        .await
        .unwrap();
    let provider = keyhost.provider("fixture").unwrap();
    let wrapped = keyhost::runtime::provider::WrappedKey {
        key_id: envelope.key_section().key_id.clone(),
        ciphertext: envelope.key_section().wrapped.clone(),
    };
    let mut context = ballot_context("b-13");
    context.insert("reply".into(), "short".into()).unwrap();
    let err = provider.unwrap(&wrapped, &context).await.unwrap_err();
    assert!(matches!(err, CallError::BadReply(_)), "{err}");
}

#[tokio::test]
async fn operations_are_audited_without_context_values() {
    let scratch = Scratch::new();
    let key = scratch.master_key_file("master.key");
    let audit = scratch.path("audit.jsonl");
    let toml = format!(
        "[runtime]\naudit_log = {audit:?}\n{}\n[profiles.p]\nencrypt = \"env\"\n",
        env_provider_table(&key, "")
    );
    let keyhost = Keyhost::open(&profile(&scratch, &toml, "p")).unwrap();
    let envelope = keyhost
        .encrypt(ballot_context("b-secret-14"), b"ballot")
        .await
        .unwrap();
    keyhost
        .decrypt(&envelope, &ballot_context("b-secret-14"))
        .await
        .unwrap();
    let log = std::fs::read_to_string(&audit).unwrap();
    let operations: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["operation"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(operations, ["describe", "wrap", "unwrap"]);
    assert!(!log.contains("b-secret-14"));
    assert_eq!(
        keyhost::capabilities::audit::verify(&audit).unwrap().lines,
        3
    );
}

#[tokio::test]
async fn a_precompiled_component_is_reused_and_a_corrupt_one_is_recompiled() {
    let scratch = Scratch::new();
    let key = scratch.master_key_file("master.key");
    let cache = scratch.path("cache");
    let toml = format!(
        "[runtime]\ncache_dir = {cache:?}\n{}\n[profiles.p]\nencrypt = \"env\"\n",
        env_provider_table(&key, "")
    );
    let first = Keyhost::open(&profile(&scratch, &toml, "p")).unwrap();
    let envelope = first
        .encrypt(ballot_context("b-15"), b"ballot")
        .await
        .unwrap();
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0]
            .to_string_lossy()
            .contains(&sha256_file(&plugin("env")))
    );

    let second = Keyhost::open(&profile(&scratch, &toml, "p")).unwrap();
    assert_eq!(
        second
            .decrypt(&envelope, &ballot_context("b-15"))
            .await
            .unwrap()
            .as_slice(),
        b"ballot"
    );

    std::fs::write(&entries[0], b"not a precompiled component").unwrap();
    let third = Keyhost::open(&profile(&scratch, &toml, "p")).unwrap();
    assert_eq!(
        third
            .decrypt(&envelope, &ballot_context("b-15"))
            .await
            .unwrap()
            .as_slice(),
        b"ballot"
    );
}

#[tokio::test]
async fn a_warm_env_instance_serves_thousands_of_operations_within_one_mib() {
    // The env plugin's heap is a call arena that rewinds after every call;
    // if anything outlived its call, the heap would outgrow the 1 MiB cap
    // long before the loop ends (each call copies in a 2 KiB context).
    let scratch = Scratch::new();
    let key = scratch.master_key_file("master.key");
    let keyhost = env_only(
        &scratch,
        &key,
        "instances = \"reuse\"\nlimits = { memory_mib = 1, max_instances = 1 }",
    );
    let long = "v".repeat(1000);
    let context = EncryptionContext::from_pairs([
        ("ballot_id", "b-1"),
        ("note_a", long.as_str()),
        ("note_b", long.as_str()),
    ])
    .unwrap();
    for round in 0..1500 {
        let envelope = keyhost
            .encrypt(context.clone(), b"ballot")
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let opened = keyhost
            .decrypt(&envelope, &context)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(opened.as_slice(), b"ballot");
    }
}

#[tokio::test]
async fn a_warm_env_instance_picks_up_a_changed_master_key() {
    let scratch = Scratch::new();
    let key = scratch.master_key_file("master.key");
    let keyhost = env_only(&scratch, &key, "instances = \"reuse\"");
    let context = ballot_context("b-1");
    let before = keyhost.encrypt(context.clone(), b"ballot").await.unwrap();

    // Same length, different bytes: the warm instance's cached key must not
    // be taken for it.
    std::fs::write(&key, random_master_key()).unwrap();
    let after = keyhost.encrypt(context.clone(), b"ballot").await.unwrap();
    assert_ne!(
        before.key_section().key_id,
        after.key_section().key_id,
        "the new envelope must name the new key"
    );
    assert_eq!(
        keyhost.decrypt(&after, &context).await.unwrap().as_slice(),
        b"ballot"
    );
    let err = keyhost.decrypt(&before, &context).await.unwrap_err();
    assert!(
        err.to_string().contains(&before.key_section().key_id),
        "the error names the key the envelope needs: {err}"
    );
}
