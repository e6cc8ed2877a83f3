//! The TOML shape of `keyhost.toml`, and its resolution into a [`Profile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::substitute::{EnvFiles, Lookup, expand};
use super::{
    ConfigError, Endpoint, HttpAuth, HttpGrant, Limits, Profile, ProviderSettings, RuntimeSettings,
    SecretSource, StaticCredentials,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    default_profile: Option<String>,
    #[serde(default)]
    env_files: Vec<String>,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    cache_dir: Option<String>,
    audit_log: Option<String>,
    #[serde(default)]
    audit_failure: crate::capabilities::FailurePolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    component: String,
    sha256: String,
    #[serde(default)]
    instances: InstancePolicy,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, RawSecret>,
    http: Option<RawHttp>,
}

/// How a provider's instances are used.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InstancePolicy {
    /// A fresh store and instance per operation: guest memory that held a
    /// plaintext DEK is discarded at once. The default.
    #[default]
    Fresh,
    /// Warm instances are kept and reused; the guest wipes its buffers, and an
    /// instance is dropped after any trap.
    Reuse,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u32>,
    deadline_ms: Option<u64>,
    max_instances: Option<u32>,
    max_request_kib: Option<u32>,
    max_response_kib: Option<u32>,
    log_lines_per_call: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// `scheme://host[:port]`. Defaults from `AWS_ENDPOINT_URL_KMS`,
    /// `AWS_ENDPOINT_URL`, then the region, for `aws-sigv4` grants.
    endpoint: Option<String>,
    #[serde(default)]
    allow_plain_http: bool,
    auth: String,
    service: Option<String>,
    region: Option<String>,
    /// Emulators only: `{ access_key_id = "...", secret_access_key = "..." }`.
    static_credentials: Option<RawStaticCredentials>,
    #[serde(default)]
    allowed_targets: Vec<String>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticCredentials {
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    encrypt: String,
    #[serde(default)]
    decrypt_only: Vec<String>,
}

/// Builds errors that name the file and the key.
struct At<'a> {
    file: &'a Path,
}

impl At<'_> {
    fn err(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl File {
    pub(super) fn resolve(
        self,
        file: &Path,
        requested: Option<&str>,
        env: &dyn Lookup,
    ) -> Result<Profile, ConfigError> {
        let at = At { file };
        let base = file.parent().unwrap_or(Path::new("."));
        let profile_names = || self.profiles.keys().cloned().collect::<Vec<_>>().join(", ");

        let name = requested
            .map(str::to_owned)
            .or_else(|| self.default_profile.clone())
            .ok_or_else(|| {
                at.err(
                    "default_profile",
                    format!(
                        "no profile chosen: pass --profile, set KEYHOST_PROFILE, or set default_profile (profiles: {})",
                        profile_names()
                    ),
                )
            })?;
        let profile = self.profiles.get(&name).ok_or_else(|| {
            at.err(
                format!("profiles.{name}"),
                format!("no such profile; the file defines: {}", profile_names()),
            )
        })?;

        let env_paths: Vec<PathBuf> = self.env_files.iter().map(|p| base.join(p)).collect();
        let files = EnvFiles::read(&env_paths).map_err(|(path, e)| {
            at.err("env_files", format!("cannot read {}: {e}", path.display()))
        })?;
        let expand_at = |key: &str, value: &str| {
            expand(value, env, &files).map_err(|problem| at.err(key, problem))
        };

        let mut wanted = vec![profile.encrypt.clone()];
        for extra in &profile.decrypt_only {
            if wanted.contains(extra) {
                return Err(at.err(
                    format!("profiles.{name}.decrypt_only"),
                    format!("provider {extra:?} is listed twice"),
                ));
            }
            wanted.push(extra.clone());
        }

        let mut providers = BTreeMap::new();
        for provider_name in wanted {
            let raw = self.providers.get(&provider_name).ok_or_else(|| {
                at.err(
                    format!("profiles.{name}"),
                    format!(
                        "names provider {provider_name:?}, but there is no [providers.{provider_name}] table"
                    ),
                )
            })?;
            let settings = raw.resolve(&provider_name, base, &at, &expand_at, env)?;
            providers.insert(provider_name, settings);
        }

        let runtime = RuntimeSettings {
            cache_dir: self
                .runtime
                .cache_dir
                .as_deref()
                .map(|p| expand_at("runtime.cache_dir", p).map(|p| base.join(p)))
                .transpose()?,
            audit_log: self
                .runtime
                .audit_log
                .as_deref()
                .map(|p| expand_at("runtime.audit_log", p).map(|p| base.join(p)))
                .transpose()?,
            audit_failure: self.runtime.audit_failure,
        };

        Ok(Profile {
            name,
            file: file.to_owned(),
            runtime,
            encrypt: profile.encrypt.clone(),
            providers,
        })
    }
}

type Expand<'a> = dyn Fn(&str, &str) -> Result<String, ConfigError> + 'a;

impl RawProvider {
    fn resolve(
        &self,
        name: &str,
        base: &Path,
        at: &At<'_>,
        expand: &Expand<'_>,
        env: &dyn Lookup,
    ) -> Result<ProviderSettings, ConfigError> {
        let key = |field: &str| format!("providers.{name}.{field}");
        crate::envelope::check_provider_name(name)
            .map_err(|e| at.err(format!("providers.{name}"), e.to_string()))?;

        let component = base.join(expand(&key("component"), &self.component)?);
        let sha256 = expand(&key("sha256"), &self.sha256)?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(at.err(
                key("sha256"),
                format!(
                    "{sha256:?} is not a sha256 digest (64 hex digits); `sha256sum {}` prints it",
                    component.display()
                ),
            ));
        }

        let defaults = Limits::default();
        let l = &self.limits;
        let positive = |field: &str, v: Option<u64>, default: u64| -> Result<u64, ConfigError> {
            match v {
                Some(0) => Err(at.err(key(&format!("limits.{field}")), "must be greater than 0")),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let limits = Limits {
            memory_bytes: positive(
                "memory_mib",
                l.memory_mib.map(u64::from),
                (defaults.memory_bytes >> 20) as u64,
            )? as usize
                * (1 << 20),
            deadline: Duration::from_millis(positive(
                "deadline_ms",
                l.deadline_ms,
                defaults.deadline.as_millis() as u64,
            )?),
            max_instances: positive(
                "max_instances",
                l.max_instances.map(u64::from),
                defaults.max_instances as u64,
            )? as usize,
            max_request_bytes: positive(
                "max_request_kib",
                l.max_request_kib.map(u64::from),
                (defaults.max_request_bytes >> 10) as u64,
            )? as usize
                * 1024,
            max_response_bytes: positive(
                "max_response_kib",
                l.max_response_kib.map(u64::from),
                (defaults.max_response_bytes >> 10) as u64,
            )? as usize
                * 1024,
            log_lines_per_call: l.log_lines_per_call.unwrap_or(defaults.log_lines_per_call),
        };
        if limits.memory_bytes > 4 << 30 {
            return Err(at.err(key("limits.memory_mib"), "must be at most 4096 (4 GiB)"));
        }

        let mut config = BTreeMap::new();
        for (k, v) in &self.config {
            config.insert(k.clone(), expand(&key(&format!("config.{k}")), v)?);
        }
        let mut secrets = BTreeMap::new();
        for (k, v) in &self.secrets {
            let source = match (&v.env, &v.file) {
                (Some(var), None) => {
                    let var = expand(&key(&format!("secrets.{k}.env")), var)?;
                    if var.is_empty() {
                        return Err(at.err(key(&format!("secrets.{k}.env")), "names no variable"));
                    }
                    SecretSource::Env(var)
                }
                (None, Some(path)) => {
                    SecretSource::File(base.join(expand(&key(&format!("secrets.{k}.file")), path)?))
                }
                _ => {
                    return Err(at.err(
                        key(&format!("secrets.{k}")),
                        "give exactly one source: { env = \"VAR\" } or { file = \"PATH\" }",
                    ));
                }
            };
            secrets.insert(k.clone(), source);
        }
        let http = self
            .http
            .as_ref()
            .map(|h| h.resolve(&key("http"), at, expand, env))
            .transpose()?;

        Ok(ProviderSettings {
            name: name.to_owned(),
            component,
            sha256,
            instances: self.instances,
            limits,
            config,
            secrets,
            http,
        })
    }
}

impl RawHttp {
    fn resolve(
        &self,
        key: &str,
        at: &At<'_>,
        expand: &Expand<'_>,
        env: &dyn Lookup,
    ) -> Result<HttpGrant, ConfigError> {
        let field = |f: &str| format!("{key}.{f}");
        let auth = match self.auth.as_str() {
            "none" => HttpAuth::None,
            "aws-sigv4" => {
                let service = self.service.as_deref().ok_or_else(|| {
                    at.err(
                        field("service"),
                        "aws-sigv4 needs the service to sign for, such as \"kms\"",
                    )
                })?;
                let region = self.region.as_deref().ok_or_else(|| {
                    at.err(
                        field("region"),
                        "aws-sigv4 needs a region, such as \"us-east-1\"",
                    )
                })?;
                let static_credentials = match &self.static_credentials {
                    None => None,
                    Some(c) => Some(StaticCredentials {
                        access_key_id: expand(
                            &field("static_credentials.access_key_id"),
                            &c.access_key_id,
                        )?,
                        secret_access_key: expand(
                            &field("static_credentials.secret_access_key"),
                            &c.secret_access_key,
                        )?,
                    }),
                };
                HttpAuth::AwsSigV4 {
                    service: expand(&field("service"), service)?,
                    region: expand(&field("region"), region)?,
                    static_credentials,
                }
            }
            other => {
                return Err(at.err(
                    field("auth"),
                    format!("unknown auth scheme {other:?}; known: \"aws-sigv4\", \"none\""),
                ));
            }
        };

        let (endpoint_text, endpoint_key) = match &self.endpoint {
            Some(e) => (expand(&field("endpoint"), e)?, field("endpoint")),
            None => match &auth {
                HttpAuth::AwsSigV4 {
                    service, region, ..
                } => {
                    let upper = service.to_ascii_uppercase().replace('-', "_");
                    if let Some(url) = env.get(&format!("AWS_ENDPOINT_URL_{upper}")) {
                        (url, format!("AWS_ENDPOINT_URL_{upper}"))
                    } else if let Some(url) = env.get("AWS_ENDPOINT_URL") {
                        (url, "AWS_ENDPOINT_URL".into())
                    } else {
                        (
                            format!("https://{service}.{region}.amazonaws.com"),
                            field("region"),
                        )
                    }
                }
                HttpAuth::None => return Err(at.err(field("endpoint"), "is required")),
            },
        };
        let endpoint = parse_endpoint(&endpoint_text).map_err(|p| at.err(&endpoint_key, p))?;
        if endpoint.scheme == "http" && !self.allow_plain_http {
            return Err(at.err(
                &endpoint_key,
                format!("{endpoint} is plain http; set {} = true to allow it (for a local emulator only)", field("allow_plain_http")),
            ));
        }
        if matches!(auth, HttpAuth::AwsSigV4 { .. }) && self.allowed_targets.is_empty() {
            return Err(at.err(
                field("allowed_targets"),
                "is empty, so every request would be refused; list operations such as \"TrentService.Decrypt\"",
            ));
        }
        let ms = |f: &str, v: Option<u64>, d: u64| -> Result<Duration, ConfigError> {
            match v {
                Some(0) => Err(at.err(field(f), "must be greater than 0")),
                v => Ok(Duration::from_millis(v.unwrap_or(d))),
            }
        };
        Ok(HttpGrant {
            endpoint,
            auth,
            allowed_targets: self.allowed_targets.clone(),
            connect_timeout: ms("connect_timeout_ms", self.connect_timeout_ms, 2_000)?,
            request_timeout: ms("request_timeout_ms", self.request_timeout_ms, 5_000)?,
            max_retries: self.max_retries.unwrap_or(3).min(10),
        })
    }
}

/// `scheme://host[:port][/]`: the endpoint is an origin, so any path, query,
/// or user info is refused.
pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not a URL of the form https://host[:port]"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return Err(format!("{text:?}: scheme must be https or http")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{text:?}: give only scheme, host and port, with no path, query or user"
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !authority.starts_with('[') || h.ends_with(']') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("{text:?}: port {p:?} is not a number from 1 to 65535"))?;
            (h, port)
        }
        _ => (authority, default_port),
    };
    if host.is_empty() || port == 0 {
        return Err(format!("{text:?}: host or port is missing"));
    }
    Ok(Endpoint {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests;
