//! Hostile plugins: each misbehaviour ends in a typed error within the
//! deadline, is audited, and the very next operation on a good provider
//! succeeds.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use keyhost::config::{self, ProcessEnv};
use keyhost::envelope::{DataKey, EncryptionContext};
use keyhost::runtime::LoadError;
use keyhost::runtime::provider::WrappedKey;
use keyhost::{Error, Keyhost};
use keyhost_tests::*;

const DEADLINE_MS: u64 = 1000;

/// A server on loopback that accepts requests and then either never answers
/// or answers with a body far over any cap. Threads end with the process.
fn serve(hang: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                if hang {
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                // No Content-Length: the host must cap the body as it streams.
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..160 {
                    if stream.write_all(&chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn fixture_with_server(name: &str, port: u16) -> String {
    provider_table(
        name,
        &fixture("misbehave"),
        &format!(
            "limits = {{ deadline_ms = {DEADLINE_MS}, memory_mib = 16 }}\n\
             http = {{ endpoint = \"http://127.0.0.1:{port}\", allow_plain_http = true, auth = \"aws-sigv4\", service = \"kms\", \
             region = \"us-east-1\", static_credentials = {{ access_key_id = \"000000000001\", secret_access_key = \"test\" }}, \
             allowed_targets = [\"TrentService.Decrypt\"], request_timeout_ms = 30000, max_retries = 0 }}"
        ),
    )
}

struct Setup {
    scratch: Scratch,
    keyhost: Keyhost,
}

impl Setup {
    fn new() -> Self {
        let scratch = Scratch::new();
        let key = scratch.master_key_file("master.key");
        let toml = format!(
            "[runtime]\naudit_log = {:?}\n{}\n{}\n{}\n[profiles.p]\nencrypt = \"env\"\ndecrypt_only = [\"hang\", \"huge\"]\n",
            scratch.path("audit.jsonl"),
            env_provider_table(&key, ""),
            fixture_with_server("hang", serve(true)),
            fixture_with_server("huge", serve(false)),
        );
        let file = scratch.write("keyhost.toml", &toml);
        let keyhost =
            Keyhost::open(&config::parse(&file, &toml, Some("p"), &ProcessEnv).unwrap()).unwrap();
        Self { scratch, keyhost }
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.scratch.path("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The good provider still serves.
    async fn next_operation_succeeds(&self) {
        let context = EncryptionContext::from_pairs([("ballot_id", "after")]).unwrap();
        let envelope = self
            .keyhost
            .encrypt(context.clone(), b"still here")
            .await
            .unwrap();
        assert_eq!(
            self.keyhost
                .decrypt(&envelope, &context)
                .await
                .unwrap()
                .as_slice(),
            b"still here"
        );
    }
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::from_pairs(pairs.iter().copied()).unwrap()
}

/// (action, the error kind it must end in, text the message must hold)
const CASES: &[(&str, &str, &str)] = &[
    ("loop", "deadline", "deadline"),
    ("grow", "memory-limit", "memory"),
    ("recurse", "trap", "stack"),
    ("panic", "trap", "panicked"),
    ("fs", "internal", "fs: Err"),
    ("env", "internal", "env: 0 vars, HOME=None, args=0"),
    ("socket", "internal", "socket: Err"),
    ("other-host", "internal", "Denied"),
    (
        "forbidden-operation",
        "internal",
        "TrentService.ScheduleKeyDeletion is not allowed",
    ),
    ("authorization-header", "internal", "set by the host only"),
    ("host-header", "internal", "set by the host only"),
    ("slow-http", "deadline", "deadline"),
    (
        "crypto-abuse",
        "internal",
        "crypto: short key invalid-input, huge aad invalid-input, forged tag authentication-failed, huge digest invalid-input",
    ),
];

#[tokio::test]
async fn every_hostile_behaviour_ends_in_a_typed_error_within_the_deadline_and_is_audited() {
    let setup = Setup::new();
    let hang = setup.keyhost.provider("hang").unwrap();
    for (action, kind, text) in CASES {
        let started = Instant::now();
        let err = hang
            .wrap(&DataKey::generate(), &context(&[("misbehave", action)]))
            .await
            .expect_err(action);
        let elapsed = started.elapsed();
        assert_eq!(err.kind(), *kind, "{action}: {err}");
        assert!(err.to_string().contains(text), "{action}: {err}");
        assert!(
            elapsed < Duration::from_millis(DEADLINE_MS * 3),
            "{action} took {elapsed:?}"
        );
        let last = setup
            .audit_lines()
            .into_iter()
            .rev()
            .find(|l| l["operation"] == "wrap")
            .unwrap();
        assert_eq!(last["provider"], "hang");
        assert_eq!(last["outcome"], "error");
        assert_eq!(last["detail"], *kind, "{action}");
        setup.next_operation_succeeds().await;
    }
    keyhost::capabilities::audit::verify(&setup.scratch.path("audit.jsonl")).unwrap();
}

#[tokio::test]
async fn a_reply_over_the_response_cap_is_refused_by_the_host() {
    let setup = Setup::new();
    let huge = setup.keyhost.provider("huge").unwrap();
    let err = huge
        .wrap(
            &DataKey::generate(),
            &context(&[("misbehave", "slow-http")]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("TooLarge"), "{err}");
    setup.next_operation_succeeds().await;
}

#[tokio::test]
async fn oversized_or_short_answers_from_a_guest_are_refused() {
    let setup = Setup::new();
    let hang = setup.keyhost.provider("hang").unwrap();
    let err = hang
        .wrap(
            &DataKey::generate(),
            &context(&[("reply", "oversized-wrap")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "bad-reply", "{err}");

    let wrapped = hang
        .wrap(&DataKey::generate(), &context(&[]))
        .await
        .unwrap();
    for reply in ["short", "huge"] {
        let err = hang
            .unwrap(&wrapped, &context(&[("reply", reply)]))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), "bad-reply" | "memory-limit"),
            "{reply}: {err}"
        );
    }
    setup.next_operation_succeeds().await;
}

#[tokio::test]
async fn garbage_wrapped_keys_are_invalid_ciphertext_not_crashes() {
    let setup = Setup::new();
    let env = setup.keyhost.provider("env").unwrap();
    let key_id = env.describe().await.unwrap().key_id;
    for garbage in [vec![], vec![0u8; 1], vec![0xff; 60], vec![0x41; 8192]] {
        let wrapped = WrappedKey {
            key_id: key_id.clone(),
            ciphertext: garbage.clone(),
        };
        let err = env.unwrap(&wrapped, &context(&[])).await.unwrap_err();
        assert_eq!(
            err.kind(),
            "invalid-ciphertext",
            "{} bytes: {err}",
            garbage.len()
        );
    }
    setup.next_operation_succeeds().await;
}

#[tokio::test]
async fn a_log_flood_is_cut_off_without_slowing_the_host() {
    let setup = Setup::new();
    let hang = setup.keyhost.provider("hang").unwrap();
    let started = Instant::now();
    hang.wrap(
        &DataKey::generate(),
        &context(&[("misbehave", "log-flood")]),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_millis(DEADLINE_MS));
    setup.next_operation_succeeds().await;
}

#[test]
fn a_component_importing_what_the_host_does_not_provide_is_refused_at_load() {
    let scratch = Scratch::new();
    let toml = format!(
        "{}\n[profiles.p]\nencrypt = \"escapee\"\n",
        provider_table("escapee", &fixture("unknown-import"), "")
    );
    let file = scratch.write("keyhost.toml", &toml);
    let err = Keyhost::open(&config::parse(&file, &toml, Some("p"), &ProcessEnv).unwrap())
        .err()
        .unwrap();
    assert!(matches!(err, Error::Load(LoadError::Link { .. })), "{err}");
    assert!(
        err.to_string().contains("fixture:unknown-import/escape"),
        "{err}"
    );
}
