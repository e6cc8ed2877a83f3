//! `config::parse` on arbitrary text, under no profile, `dev` and `prod`: it
//! never panics, every error begins with the file's name, and every profile
//! it resolves keeps resolution's promises (the same ones the property tests
//! in host/src/config/raw/tests.rs check).

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use keyhost::capabilities::http::HttpCapability;
use keyhost::config::{self, ConfigError, HttpAuth, SecretSource};
use libfuzzer_sys::fuzz_target;

/// A directory that does not exist, so `env_files` entries are missing files,
/// skipped without reading.
const FILE: &str = "/nonexistent/keyhost-fuzz/keyhost.toml";
const DIGEST: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

static ENV: LazyLock<BTreeMap<String, String>> = LazyLock::new(|| {
    [
        ("KMS_KEY_ID", "arn:aws:kms:us-east-1:000000000000:key/k1"),
        ("KEYHOST_SHA256_ENV", DIGEST),
        ("KEYHOST_SHA256_LOCALSTACK", DIGEST),
        ("KEYHOST_SHA256_AWS_KMS", DIGEST),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `env_files` are read from disk: keep the fuzzer off devices such as
    // /dev/zero, which never end (escapes could spell such a path too).
    if ["/dev", "/proc", "/sys", "\\u", "\\U"]
        .iter()
        .any(|p| text.contains(p))
    {
        return;
    }
    for profile in [None, Some("dev"), Some("prod")] {
        check(text, profile);
    }
});

fn check(text: &str, profile: Option<&str>) {
    let file = Path::new(FILE);
    let resolved = match config::parse(file, text, profile, &*ENV) {
        Ok(resolved) => resolved,
        Err(err) => {
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("{FILE}: ")),
                "the error does not begin with the file name: {message}"
            );
            assert!(
                matches!(
                    err,
                    ConfigError::Syntax { .. } | ConfigError::Invalid { .. }
                ),
                "parse read a file: {message}"
            );
            return;
        }
    };
    assert_eq!(resolved.file, file);
    assert!(resolved.providers.contains_key(&resolved.encrypt));
    for (name, provider) in &resolved.providers {
        assert_eq!(&provider.name, name);
        keyhost::envelope::check_provider_name(name).expect("a provider name the envelope refuses");
        assert!(
            provider.sha256.len() == 64
                && provider
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "sha256 {:?}",
            provider.sha256
        );
        let limits = &provider.limits;
        assert!(limits.memory_bytes > 0 && limits.memory_bytes <= 4 << 30);
        assert!(!limits.deadline.is_zero());
        assert!(limits.max_instances > 0);
        assert!(limits.max_request_bytes > 0 && limits.max_response_bytes > 0);
        for source in provider.secrets.values() {
            if let SecretSource::Env(var) = source {
                assert!(!var.is_empty());
            }
        }
        if let Some(http) = &provider.http {
            let endpoint = &http.endpoint;
            assert!(endpoint.scheme == "https" || endpoint.scheme == "http");
            assert!(!endpoint.host.is_empty() && endpoint.port != 0);
            assert!(!endpoint.host.contains(['/', '?', '#', '@']), "{endpoint}");
            assert!(!http.connect_timeout.is_zero() && !http.request_timeout.is_zero());
            assert!(http.max_retries <= 10);
            if matches!(http.auth, HttpAuth::AwsSigV4 { .. }) {
                assert!(!http.allowed_targets.is_empty());
            }
            // Loading the grant never panics either.
            let _ = HttpCapability::new(http.clone(), limits);
        }
    }
}
