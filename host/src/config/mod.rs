//! `keyhost.toml`: providers, their grants and limits, and named profiles.
//!
//! A *provider* entry names a component (`.wasm`), its pinned sha256, and what
//! the host grants it: non-secret `config` values, named `secrets`, and at most
//! one `http` endpoint. A *profile* chooses which providers to load, the one
//! that encrypts, and the ones kept for decryption only.
//!
//! Strings may hold `${NAME}`; it is read from the process environment, then
//! from the files in `env_files`, and only for the providers the selected
//! profile loads. Every error names the file, the key and what is wrong.

mod raw;
mod substitute;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::InstancePolicy;

/// Environment variable that selects a profile when `--profile` is not given.
pub const PROFILE_ENV: &str = "KEYHOST_PROFILE";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    #[error("{}: {key}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// A profile resolved for use: everything needed to load its providers.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub file: PathBuf,
    pub runtime: RuntimeSettings,
    /// The provider that wraps keys of new envelopes.
    pub encrypt: String,
    /// Every provider the profile loads, the encrypting one included.
    pub providers: BTreeMap<String, ProviderSettings>,
}

#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Where compiled components are cached; none disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Where audit events go, one JSON line each; none keeps no audit file.
    pub audit_log: Option<PathBuf>,
    /// What happens to an operation whose event cannot be written.
    pub audit_failure: crate::capabilities::FailurePolicy,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub name: String,
    pub component: PathBuf,
    /// Lowercase hex sha256 the component must have.
    pub sha256: String,
    pub instances: InstancePolicy,
    pub limits: Limits,
    /// Non-secret values the guest can read through the `config` import.
    pub config: BTreeMap<String, String>,
    /// Secret name (as the guest asks for it) to where the host reads it.
    pub secrets: BTreeMap<String, SecretSource>,
    pub http: Option<HttpGrant>,
}

/// Resource limits for one provider's instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: usize,
    pub deadline: Duration,
    pub max_instances: usize,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Log lines a single operation may write; further lines are dropped.
    pub log_lines_per_call: u32,
}

impl Default for Limits {
    /// Generous for a key provider, tight for anything else.
    fn default() -> Self {
        Self {
            memory_bytes: 32 << 20,
            deadline: Duration::from_secs(10),
            max_instances: 64,
            max_request_bytes: 64 << 10,
            max_response_bytes: 64 << 10,
            log_lines_per_call: 32,
        }
    }
}

/// Where a granted secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the host process.
    Env(String),
    /// A file, such as a mounted Kubernetes or Docker secret; surrounding
    /// whitespace is the guest's to trim.
    File(PathBuf),
}

impl SecretSource {
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(var) => format!("environment variable {var}"),
            SecretSource::File(path) => format!("file {}", path.display()),
        }
    }
}

/// The one endpoint a provider may send requests to, and how the host signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// `scheme://host:port`, no path.
    pub endpoint: Endpoint,
    pub auth: HttpAuth,
    /// For `aws-sigv4`: the `X-Amz-Target` values the guest may send.
    pub allowed_targets: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// No signing: the request goes out as the guest built it.
    None,
    /// AWS Signature Version 4, with credentials from aws-config's default
    /// chain, or fixed ones for an emulator.
    AwsSigV4 {
        service: String,
        region: String,
        static_credentials: Option<StaticCredentials>,
    },
}

/// Fixed credentials for an emulator such as LocalStack, which derives its
/// account from the access key id. Never for a real AWS account.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Reads `file` and resolves the profile `requested` (or `KEYHOST_PROFILE`, or
/// the file's `default_profile`).
pub fn load(file: &Path, requested: Option<&str>) -> Result<Profile, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })?;
    let env_profile = std::env::var(PROFILE_ENV).ok();
    let requested = requested.or(env_profile.as_deref());
    parse(file, &text, requested, &substitute::ProcessEnv)
}

/// Resolves a profile from TOML text; `file` is used for messages and relative paths.
pub fn parse(
    file: &Path,
    text: &str,
    requested: Option<&str>,
    env: &dyn substitute::Lookup,
) -> Result<Profile, ConfigError> {
    let raw: raw::File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        message: e.to_string().trim_end().replace('\n', " "),
    })?;
    raw.resolve(file, requested, env)
}

pub use substitute::{Lookup, ProcessEnv, parse_env_file, set_in_env_file};
