use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::config::{ConfigError, InstancePolicy, parse};

const DIGEST: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample() -> String {
    format!(
        r#"
default_profile = "legacy"

[providers.env]
component = "dist/plugins/env.wasm"
sha256 = "{DIGEST}"
instances = "reuse"
limits = {{ memory_mib = 8, deadline_ms = 500 }}
secrets.master-key = {{ env = "OPONN_MASTER_KEY" }}

[providers.localstack]
component = "dist/plugins/localstack.wasm"
sha256 = "{DIGEST}"
config = {{ key_id = "${{KMS_KEY_ID}}" }}
http = {{ endpoint = "http://127.0.0.1:4566", allow_plain_http = true, auth = "aws-sigv4", service = "kms", region = "us-east-1", allowed_targets = ["TrentService.Decrypt"] }}

[profiles.legacy]
encrypt = "env"

[profiles.dev]
encrypt = "localstack"
decrypt_only = ["env"]
"#
    )
}

fn invalid(err: ConfigError) -> (String, String) {
    match err {
        ConfigError::Invalid { key, problem, .. } => (key, problem),
        other => panic!("expected an invalid-key error, got {other}"),
    }
}

#[test]
fn the_default_profile_loads_only_its_providers() {
    let profile = parse(Path::new("/etc/keyhost.toml"), &sample(), None, &env(&[])).unwrap();
    assert_eq!(profile.name, "legacy");
    assert_eq!(profile.encrypt, "env");
    assert_eq!(profile.providers.keys().collect::<Vec<_>>(), ["env"]);
    let env_provider = &profile.providers["env"];
    assert_eq!(
        env_provider.component,
        Path::new("/etc/dist/plugins/env.wasm")
    );
    assert_eq!(env_provider.instances, InstancePolicy::Reuse);
    assert_eq!(env_provider.limits.memory_bytes, 8 << 20);
    assert_eq!(env_provider.limits.deadline, Duration::from_millis(500));
    assert_eq!(
        env_provider.secrets["master-key"],
        SecretSource::Env("OPONN_MASTER_KEY".into())
    );
}

#[test]
fn a_profile_that_needs_an_unset_variable_names_it() {
    let err = parse(Path::new("k.toml"), &sample(), Some("dev"), &env(&[])).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("k.toml: providers.localstack.config.key_id:"),
        "{message}"
    );
    assert!(message.contains("${KMS_KEY_ID}"), "{message}");
}

#[test]
fn variables_fill_in_values_for_the_selected_profile() {
    let profile = parse(
        Path::new("k.toml"),
        &sample(),
        Some("dev"),
        &env(&[("KMS_KEY_ID", "arn:aws:kms:us-east-1:000000000000:key/k1")]),
    )
    .unwrap();
    assert_eq!(profile.encrypt, "localstack");
    assert_eq!(profile.providers.len(), 2);
    let ls = &profile.providers["localstack"];
    assert_eq!(
        ls.config["key_id"],
        "arn:aws:kms:us-east-1:000000000000:key/k1"
    );
    let http = ls.http.as_ref().unwrap();
    assert_eq!(http.endpoint.to_string(), "http://127.0.0.1:4566");
    assert_eq!(
        http.auth,
        HttpAuth::AwsSigV4 {
            service: "kms".into(),
            region: "us-east-1".into()
        }
    );
}

#[test]
fn an_unknown_profile_lists_the_ones_that_exist() {
    let err = parse(Path::new("k.toml"), &sample(), Some("prod"), &env(&[])).unwrap_err();
    let (key, problem) = invalid(err);
    assert_eq!(key, "profiles.prod");
    assert!(problem.contains("dev, legacy"), "{problem}");
}

#[test]
fn a_typo_in_a_key_is_a_syntax_error_naming_the_key() {
    let text = sample().replace("instances = \"reuse\"", "instanses = \"reuse\"");
    let err = parse(Path::new("k.toml"), &text, None, &env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(err.to_string().contains("instanses"), "{err}");
}

#[test]
fn a_malformed_digest_is_refused_with_a_hint() {
    let text = sample().replacen(DIGEST, "abc", 1);
    let (key, problem) = invalid(parse(Path::new("k.toml"), &text, None, &env(&[])).unwrap_err());
    assert_eq!(key, "providers.env.sha256");
    assert!(problem.contains("sha256sum"), "{problem}");
}

#[test]
fn a_profile_naming_a_missing_provider_is_refused() {
    let text = sample().replace("decrypt_only = [\"env\"]", "decrypt_only = [\"vault\"]");
    let (key, problem) = invalid(
        parse(
            Path::new("k.toml"),
            &text,
            Some("dev"),
            &env(&[("KMS_KEY_ID", "k")]),
        )
        .unwrap_err(),
    );
    assert_eq!(key, "profiles.dev");
    assert!(problem.contains("[providers.vault]"), "{problem}");
}

#[test]
fn plain_http_needs_an_explicit_allowance() {
    let text = sample().replace("allow_plain_http = true, ", "");
    let (key, problem) = invalid(
        parse(
            Path::new("k.toml"),
            &text,
            Some("dev"),
            &env(&[("KMS_KEY_ID", "k")]),
        )
        .unwrap_err(),
    );
    assert_eq!(key, "providers.localstack.http.endpoint");
    assert!(problem.contains("allow_plain_http"), "{problem}");
}

#[test]
fn the_kms_endpoint_defaults_from_the_environment_then_the_region() {
    let text = sample().replace("endpoint = \"http://127.0.0.1:4566\", ", "");
    let vars = [("KMS_KEY_ID", "k")];
    let profile = parse(Path::new("k.toml"), &text, Some("dev"), &env(&vars)).unwrap();
    let endpoint = &profile.providers["localstack"]
        .http
        .as_ref()
        .unwrap()
        .endpoint;
    assert_eq!(
        endpoint.to_string(),
        "https://kms.us-east-1.amazonaws.com:443"
    );

    let vars = [
        ("KMS_KEY_ID", "k"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4999"),
        ("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:4566"),
    ];
    let profile = parse(Path::new("k.toml"), &text, Some("dev"), &env(&vars)).unwrap();
    let endpoint = &profile.providers["localstack"]
        .http
        .as_ref()
        .unwrap()
        .endpoint;
    assert_eq!(endpoint.port, 4566);
}

#[test]
fn endpoints_are_origins_without_paths_or_users() {
    assert!(parse_endpoint("https://kms.eu-west-1.amazonaws.com").is_ok());
    assert_eq!(parse_endpoint("http://localhost:4566/").unwrap().port, 4566);
    assert!(parse_endpoint("https://user@evil.example").is_err());
    assert!(parse_endpoint("https://kms.example/path").is_err());
    assert!(parse_endpoint("ftp://kms.example").is_err());
    assert!(parse_endpoint("kms.example").is_err());
    assert!(parse_endpoint("https://kms.example:99999").is_err());
}

#[test]
fn zero_limits_are_refused() {
    let text = sample().replace("deadline_ms = 500", "deadline_ms = 0");
    let (key, _) = invalid(parse(Path::new("k.toml"), &text, None, &env(&[])).unwrap_err());
    assert_eq!(key, "providers.env.limits.deadline_ms");
}
