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
            region: "us-east-1".into(),
            static_credentials: None,
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
    assert_eq!(parse_endpoint("https://[::1]").unwrap().port, 443);
    assert_eq!(parse_endpoint("http://[::1]:4566").unwrap().port, 4566);
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

// Property tests: `config::parse` never panics, on any text. Every input ends
// in a profile that keeps the promises below, or in an error whose message
// begins with the file's name.

use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;

/// The file name the properties parse under. Its directory does not exist, so
/// `env_files` entries are skipped as missing rather than read.
const PROP_FILE: &str = "/nonexistent/keyhost-proptest/keyhost.toml";

/// The repository's own configuration: env files, runtime, static
/// credentials, three providers and four profiles.
const REPO_CONFIG: &str = include_str!("../../../../keyhost.toml");

/// Variables that let every profile of both valid configs resolve.
fn prop_env() -> BTreeMap<String, String> {
    env(&[
        ("KMS_KEY_ID", "arn:aws:kms:us-east-1:000000000000:key/k1"),
        ("KEYHOST_SHA256_ENV", DIGEST),
        ("KEYHOST_SHA256_LOCALSTACK", DIGEST),
        ("KEYHOST_SHA256_AWS_KMS", DIGEST),
    ])
}

fn valid_configs() -> Vec<String> {
    vec![sample(), REPO_CONFIG.to_owned()]
}

fn any_valid_config() -> impl Strategy<Value = String> {
    select(valid_configs())
}

/// No profile, one the valid configs define, or anything at all.
fn any_profile() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        6 => select(vec!["legacy", "dev", "test", "prod"]).prop_map(|p| Some(p.to_owned())),
        1 => any::<String>().prop_map(Some),
    ]
}

/// Parses `text` and checks the outcome: an error names the file; a profile
/// holds only what resolution promises.
fn parse_and_check(text: &str, profile: Option<&str>) -> Result<(), TestCaseError> {
    let file = Path::new(PROP_FILE);
    match parse(file, text, profile, &prop_env()) {
        Err(err) => {
            let message = err.to_string();
            prop_assert!(
                message.starts_with(&format!("{PROP_FILE}: ")),
                "the error does not begin with the file name: {message}"
            );
            prop_assert!(
                matches!(
                    err,
                    ConfigError::Syntax { .. } | ConfigError::Invalid { .. }
                ),
                "parse read a file: {message}"
            );
        }
        Ok(resolved) => {
            prop_assert_eq!(&resolved.file, file);
            prop_assert!(resolved.providers.contains_key(&resolved.encrypt));
            for (name, provider) in &resolved.providers {
                prop_assert_eq!(&provider.name, name);
                prop_assert!(
                    crate::envelope::check_provider_name(name).is_ok(),
                    "{name:?}"
                );
                prop_assert!(
                    provider.sha256.len() == 64
                        && provider
                            .sha256
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "sha256 {:?}",
                    provider.sha256
                );
                let limits = &provider.limits;
                prop_assert!(limits.memory_bytes > 0 && limits.memory_bytes <= 4 << 30);
                prop_assert!(!limits.deadline.is_zero());
                prop_assert!(limits.max_instances > 0);
                prop_assert!(limits.max_request_bytes > 0 && limits.max_response_bytes > 0);
                for source in provider.secrets.values() {
                    if let SecretSource::Env(var) = source {
                        prop_assert!(!var.is_empty());
                    }
                }
                if let Some(http) = &provider.http {
                    let endpoint = &http.endpoint;
                    prop_assert!(endpoint.scheme == "https" || endpoint.scheme == "http");
                    prop_assert!(!endpoint.host.is_empty() && endpoint.port != 0);
                    prop_assert!(!endpoint.host.contains(['/', '?', '#', '@']));
                    prop_assert!(!http.connect_timeout.is_zero());
                    prop_assert!(!http.request_timeout.is_zero());
                    prop_assert!(http.max_retries <= 10);
                    if matches!(http.auth, HttpAuth::AwsSigV4 { .. }) {
                        prop_assert!(!http.allowed_targets.is_empty());
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_configs_the_properties_mutate_resolve_every_profile() {
    for text in valid_configs() {
        let defined: Vec<&str> = if text.contains("[profiles.prod]") {
            vec!["legacy", "dev", "test", "prod"]
        } else {
            vec!["legacy", "dev"]
        };
        for profile in defined {
            parse(Path::new(PROP_FILE), &text, Some(profile), &prop_env())
                .unwrap_or_else(|e| panic!("{profile}: {e}"));
        }
    }
}

/// A TOML basic string holding exactly `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Strings that mean something to some key, with the edge cases of each.
fn interesting_string() -> impl Strategy<Value = String> {
    let known = select(vec![
        "",
        "env",
        "localstack",
        "aws-kms",
        "Env",
        "legacy",
        "dev",
        "kms",
        "us-east-1",
        "aws-sigv4",
        "none",
        "AWS-SIGV4",
        "fresh",
        "reuse",
        "fail-closed",
        "continue",
        DIGEST,
        "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0",
        "abc",
        "http://127.0.0.1:4566",
        "https://kms.us-east-1.amazonaws.com",
        "https://[::1]:8443/",
        "https://[fe80::1]",
        "https://169.254.169.254",
        "https://user@host",
        "https://host:0",
        "https://host:99999",
        "https://host:",
        "https://:443",
        "https://",
        "ftp://host",
        "://",
        "${KMS_KEY_ID}",
        "${UNSET}",
        "${UNSET:-http://127.0.0.1:4566}",
        "${UNSET:-}",
        "${",
        "${}",
        "${A B}",
        "${:-x}",
        "x${KMS_KEY_ID}y${",
        "dist/plugins/env.wasm",
        "/abs/component.wasm",
        "../../component.wasm",
        "TrentService.Decrypt",
        "OPONN_MASTER_KEY",
    ])
    .prop_map(str::to_owned);
    prop_oneof![6 => known, 2 => "\\PC{0,24}", 1 => any::<String>()]
}

fn interesting_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => 1i64..100,
        1 => select(vec![
            0,
            -1,
            4096,
            4097,
            i64::from(u32::MAX),
            i64::from(u32::MAX) + 1,
            i64::MAX,
            i64::MIN,
        ]),
        1 => any::<i64>(),
    ]
}

/// Any TOML value: a string, an integer, or a value of some other type.
fn any_value() -> BoxedStrategy<String> {
    prop_oneof![
        interesting_string().prop_map(|s| toml_string(&s)),
        interesting_int().prop_map(|n| n.to_string()),
        select(vec![
            "\"\"",
            "1.5",
            "nan",
            "inf",
            "true",
            "[]",
            "{}",
            "[1, \"a\"]",
            "1979-05-27",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn strings(values: &'static [&'static str]) -> BoxedStrategy<String> {
    select(values).prop_map(toml_string).boxed()
}

fn string_list(values: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::collection::vec(select(values), 0..4)
        .prop_map(|v| {
            let items: Vec<String> = v.into_iter().map(toml_string).collect();
            format!("[{}]", items.join(", "))
        })
        .boxed()
}

/// Mostly one of `good`, sometimes one of `bad`.
fn good_or_bad(
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> BoxedStrategy<String> {
    prop_oneof![6 => strings(good), 1 => strings(bad)].boxed()
}

fn ints(low: i64, high: i64) -> BoxedStrategy<String> {
    prop_oneof![30 => low..=high, 1 => Just(0)]
        .prop_map(|n| n.to_string())
        .boxed()
}

const PROVIDER_NAMES: &[&str] = &["env", "localstack", "Env", "a.b", ""];
const GOOD_PROVIDER_NAMES: &[&str] = &["env", "localstack"];
/// Stand for the generated config's own provider and profile names.
const THIS_PROVIDER: &str = "@provider";
const THIS_PROFILE: &str = "@profile";
const PROFILE_NAMES: &[&str] = &["dev", "legacy", "prod"];
const PATHS: &[&str] = &[
    "dist/plugins/env.wasm",
    "/abs/component.wasm",
    "../../component.wasm",
    "${UNSET:-.keyhost/cache}",
    "${KMS_KEY_ID}",
    "",
];
const BAD_PATHS: &[&str] = &["${UNSET}", "${", "${}", "${A B}"];
const ENDPOINTS: &[&str] = &[
    "http://127.0.0.1:4566",
    "https://kms.us-east-1.amazonaws.com",
    "https://[::1]:8443/",
    "HTTPS://KMS.EXAMPLE:1",
    "https://[fe80::1]",
    "https://169.254.169.254",
    "${UNSET:-http://127.0.0.1:4566}",
];
const BAD_ENDPOINTS: &[&str] = &[
    "https://user@host",
    "https://host/path",
    "https://host:0",
    "https://host:99999",
    "https://host:",
    "https://:443",
    "https://",
    "ftp://host",
    "host",
    "${UNSET}",
];
const TARGETS: &[&str] = &[
    "TrentService.Decrypt",
    "TrentService.Encrypt",
    "",
    "${KMS_KEY_ID}",
];

/// A generated key: where it goes and the values that are right for it.
type Key = (&'static str, fn() -> BoxedStrategy<String>);

/// The keys of a generated config, in template order, each with the values
/// that suit it (which still include the edge cases resolution must catch).
const TEMPLATE: &[Key] = &[
    ("default_profile", || {
        prop_oneof![3 => Just(toml_string(THIS_PROFILE)), 1 => strings(PROFILE_NAMES)].boxed()
    }),
    ("env_files", || {
        string_list(&[".env.local", "dist/plugins/digests.env"])
    }),
    ("runtime.cache_dir", || good_or_bad(PATHS, BAD_PATHS)),
    ("runtime.audit_log", || good_or_bad(PATHS, BAD_PATHS)),
    ("runtime.audit_failure", || {
        strings(&["fail-closed", "continue"])
    }),
    ("component", || good_or_bad(PATHS, BAD_PATHS)),
    ("sha256", || {
        good_or_bad(
            &[
                DIGEST,
                "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0",
                "${KEYHOST_SHA256_ENV}",
            ],
            &[
                "${UNSET:-abc}",
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f",
                "g0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f",
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1fé",
            ],
        )
    }),
    ("instances", || strings(&["fresh", "reuse"])),
    ("limits.memory_mib", || ints(1, 4100)),
    ("limits.deadline_ms", || ints(1, 100_000)),
    ("limits.max_instances", || ints(1, 100)),
    ("limits.max_request_kib", || ints(1, 1024)),
    ("limits.max_response_kib", || ints(1, 1024)),
    ("limits.log_lines_per_call", || ints(0, 100)),
    ("config.key_id", || {
        interesting_string().prop_map(|s| toml_string(&s)).boxed()
    }),
    ("secrets.master-key.env", || {
        strings(&["OPONN_MASTER_KEY", "${UNSET:-}", "${KMS_KEY_ID}"])
    }),
    ("secrets.master-key.file", || good_or_bad(PATHS, BAD_PATHS)),
    ("http.endpoint", || good_or_bad(ENDPOINTS, BAD_ENDPOINTS)),
    ("http.allow_plain_http", || {
        any::<bool>().prop_map(|b| b.to_string()).boxed()
    }),
    ("http.auth", || {
        good_or_bad(&["aws-sigv4", "none"], &["AWS-SIGV4", ""])
    }),
    ("http.service", || {
        strings(&["kms", "kms-fips", "${UNSET:-kms}"])
    }),
    ("http.region", || {
        strings(&["us-east-1", "${AWS_REGION:-eu-west-1}", ""])
    }),
    ("http.static_credentials.access_key_id", || {
        strings(&["test", "${UNSET:-test}"])
    }),
    ("http.static_credentials.secret_access_key", || {
        strings(&["test", "${UNSET}"])
    }),
    ("http.allowed_targets", || string_list(TARGETS)),
    ("http.connect_timeout_ms", || ints(1, 10_000)),
    ("http.request_timeout_ms", || ints(1, 10_000)),
    ("http.max_retries", || ints(0, 20)),
    ("profile.encrypt", || {
        prop_oneof![6 => Just(toml_string(THIS_PROVIDER)), 1 => strings(PROVIDER_NAMES)].boxed()
    }),
    ("profile.decrypt_only", || {
        prop_oneof![3 => Just("[]".to_owned()), 1 => string_list(PROVIDER_NAMES)].boxed()
    }),
];

/// A config built key by key from [`TEMPLATE`]: most keys right for their
/// place so that most configs get past the TOML layer, a few wrong in type or
/// value, some left out.
/// Comes with the profile to ask for: the one it defines, mostly, or none
/// (then `default_profile` decides), or one it may not define.
fn generated_config() -> impl Strategy<Value = (String, Option<String>)> {
    let values: Vec<BoxedStrategy<Option<String>>> = TEMPLATE
        .iter()
        .map(|(_, good)| {
            let value = prop_oneof![40 => good(), 1 => any_value()];
            prop::option::weighted(0.95, value).boxed()
        })
        .collect();
    let provider = prop_oneof![9 => select(GOOD_PROVIDER_NAMES), 1 => select(PROVIDER_NAMES)];
    let profile = select(PROFILE_NAMES);
    let requested = prop_oneof![
        6 => Just(Requested::Defined),
        2 => Just(Requested::Default),
        1 => select(PROFILE_NAMES).prop_map(Requested::Named),
    ];
    // Which optional parts appear; a secret names one source, rarely both.
    let switches = (any::<bool>(), any::<bool>(), 0u8..10);
    (values, provider, profile, requested, switches).prop_map(
        |(values, provider, profile, requested, switches)| {
            let (with_http, with_credentials, secret) = switches;
            let (secret_env, secret_file) = (secret < 5 || secret == 9, secret >= 5);
            let mut sections: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for ((key, _), value) in TEMPLATE.iter().zip(values) {
                let Some(value) = value else { continue };
                let (section, field) = match key.split_once('.') {
                    Some((s @ ("runtime" | "profile" | "http"), f)) => (s, f),
                    _ if *key == "default_profile" || *key == "env_files" => ("", *key),
                    _ => ("provider", *key),
                };
                let skip = (section == "http" && !with_http)
                    || (field.starts_with("static_credentials") && !with_credentials)
                    || (field.ends_with("master-key.env") && !secret_env)
                    || (field.ends_with("master-key.file") && !secret_file);
                if !skip {
                    sections
                        .entry(section)
                        .or_default()
                        .push(format!("{field} = {value}"));
                }
            }
            let provider = toml_string(provider);
            let profile_name = toml_string(profile);
            for lines in sections.values_mut() {
                for line in lines.iter_mut() {
                    *line = line
                        .replace(&toml_string(THIS_PROVIDER), &provider)
                        .replace(&toml_string(THIS_PROFILE), &profile_name);
                }
            }
            let headers = [
                ("", String::new()),
                ("runtime", "[runtime]\n".to_owned()),
                ("provider", format!("[providers.{provider}]\n")),
                ("http", format!("[providers.{provider}.http]\n")),
                ("profile", format!("[profiles.{profile_name}]\n")),
            ];
            let mut text = String::new();
            for (section, header) in headers {
                if let Some(lines) = sections.get(section) {
                    text.push_str(&header);
                    for line in lines {
                        text.push_str(line);
                        text.push('\n');
                    }
                }
            }
            let requested = match requested {
                Requested::Defined => Some(profile.to_owned()),
                Requested::Default => None,
                Requested::Named(name) => Some(name.to_owned()),
            };
            (text, requested)
        },
    )
}

#[derive(Clone, Debug)]
enum Requested {
    Defined,
    Default,
    Named(&'static str),
}

/// One change to the bytes of a valid config.
#[derive(Clone, Debug)]
enum ByteEdit {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
}

/// Bytes TOML gives a meaning to, and any byte at all.
fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => select(b"\"'=[]{},.#\n\r\t\\$:-_/ 0123456789aeftnux".to_vec()),
        1 => any::<u8>(),
    ]
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), edit_byte()).prop_map(|(i, b)| ByteEdit::Replace(i, b)),
        (any::<Index>(), edit_byte()).prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        any::<Index>().prop_map(ByteEdit::Delete),
    ]
}

/// Applies byte edits; bytes that are no longer UTF-8 become U+FFFD, since
/// the parser takes text.
fn apply_byte_edits(text: &str, edits: &[ByteEdit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        match edit {
            ByteEdit::Replace(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            ByteEdit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            ByteEdit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i.index(bytes.len()));
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One change to the characters of a valid config: a character, or a
/// fragment of TOML or of `${}` syntax.
#[derive(Clone, Debug)]
enum CharEdit {
    Replace(Index, char),
    Insert(Index, char),
    Delete(Index),
    Splice(Index, &'static str),
}

fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        2 => select(vec![
            '"', '\'', '=', '[', ']', '{', '}', ',', '.', '#', '\n', '\\', '$', '0', '-', ' ',
            '\0', '\u{7f}', '\u{feff}', '\u{2028}', '\u{10ffff}',
        ]),
        1 => any::<char>(),
    ]
}

const FRAGMENTS: &[&str] = &[
    "${",
    "}",
    "${UNSET}",
    "${KMS_KEY_ID:-",
    ":-",
    "\"\"\"",
    "'''",
    "\\u0000",
    "\\uD800",
    "\\U0010FFFF",
    "\\x",
    "\n[providers.x]\n",
    "\n[[profiles]]\n",
    "\n[profiles.dev]\nencrypt = \"env\"\n",
    " = 0",
    " = -1",
    " = 18446744073709551615",
    " = 4294967296",
    " = inf",
    " = 1979-05-27T07:32:00Z",
    " = true",
    " = []",
    " = {}",
    "0",
    "4294967295",
    "\"https://169.254.169.254\"",
    "\"http://[::ffff:169.254.169.254]:80\"",
];

fn char_edit() -> impl Strategy<Value = CharEdit> {
    prop_oneof![
        (any::<Index>(), edit_char()).prop_map(|(i, c)| CharEdit::Replace(i, c)),
        (any::<Index>(), edit_char()).prop_map(|(i, c)| CharEdit::Insert(i, c)),
        any::<Index>().prop_map(CharEdit::Delete),
        (any::<Index>(), select(FRAGMENTS)).prop_map(|(i, f)| CharEdit::Splice(i, f)),
    ]
}

fn apply_char_edits(text: &str, edits: &[CharEdit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match edit {
            CharEdit::Replace(i, c) if !chars.is_empty() => {
                let at = i.index(chars.len());
                chars[at] = *c;
            }
            CharEdit::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
            CharEdit::Delete(i) if !chars.is_empty() => {
                chars.remove(i.index(chars.len()));
            }
            CharEdit::Splice(i, fragment) => {
                let at = i.index(chars.len() + 1);
                chars.splice(at..at, fragment.chars());
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// One change to the lines of a valid config.
#[derive(Clone, Debug)]
enum LineEdit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<Index>().prop_map(LineEdit::Delete),
        any::<Index>().prop_map(LineEdit::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
    ]
}

fn apply_line_edits(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        match edit {
            LineEdit::Delete(i) => {
                lines.remove(i.index(lines.len()));
            }
            LineEdit::Duplicate(i) => {
                let at = i.index(lines.len());
                lines.insert(at, lines[at]);
            }
            LineEdit::Swap(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
        }
    }
    lines.join("\n")
}

proptest! {
    // Each case takes microseconds; more cases reach more of the edges.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parsing_arbitrary_text_never_panics_and_every_error_names_the_file(
        text in any::<String>(),
        profile in any_profile(),
    ) {
        parse_and_check(&text, profile.as_deref())?;
    }

    #[test]
    fn parsing_configs_built_key_by_key_never_panics_and_every_error_names_the_file(
        (text, profile) in generated_config(),
    ) {
        parse_and_check(&text, profile.as_deref())?;
    }

    #[test]
    fn parsing_a_valid_config_with_random_byte_edits_never_panics(
        text in any_valid_config(),
        edits in prop::collection::vec(byte_edit(), 1..8),
        profile in any_profile(),
    ) {
        parse_and_check(&apply_byte_edits(&text, &edits), profile.as_deref())?;
    }

    #[test]
    fn parsing_a_valid_config_with_random_character_edits_never_panics(
        text in any_valid_config(),
        edits in prop::collection::vec(char_edit(), 1..8),
        profile in any_profile(),
    ) {
        parse_and_check(&apply_char_edits(&text, &edits), profile.as_deref())?;
    }

    #[test]
    fn parsing_any_truncation_of_a_valid_config_never_panics(
        text in any_valid_config(),
        cut in any::<Index>(),
        profile in any_profile(),
    ) {
        // Cut at any byte, even inside a character.
        let cut = cut.index(text.len() + 1);
        let truncated = String::from_utf8_lossy(&text.as_bytes()[..cut]);
        parse_and_check(&truncated, profile.as_deref())?;
    }

    #[test]
    fn parsing_a_valid_config_with_lines_deleted_duplicated_or_swapped_never_panics(
        text in any_valid_config(),
        edits in prop::collection::vec(line_edit(), 1..5),
        profile in any_profile(),
    ) {
        parse_and_check(&apply_line_edits(&text, &edits), profile.as_deref())?;
    }
}
