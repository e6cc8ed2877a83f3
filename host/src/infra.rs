//! `keyhost infra`: the KMS key Oponn's envelopes are wrapped with, made (or
//! found) idempotently under its alias, with rotation enabled; and on-demand
//! rotation. Talks to KMS with `aws-sdk-kms`, so it also serves as the native
//! reference the plugins are tested against.

use std::path::Path;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};

use crate::config::StaticCredentials;

/// The alias of Oponn's ballot key-encryption key.
pub const DEFAULT_ALIAS: &str = "alias/oponn-ballot-kek";
/// The variable `infra up` writes and keyhost.toml reads.
pub const KEY_ID_VAR: &str = "KMS_KEY_ID";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfraError {
    #[error("KMS at {endpoint} refused or failed {operation}: {message}{hint}")]
    Kms {
        endpoint: String,
        operation: &'static str,
        message: String,
        hint: &'static str,
    },
    #[error("KMS answered {operation} without {field}")]
    Incomplete {
        operation: &'static str,
        field: &'static str,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where KMS is and how to sign for it.
#[derive(Debug, Clone)]
pub struct KmsTarget {
    /// `None` for the region's AWS endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// For an emulator; otherwise aws-config's default chain.
    pub credentials: Option<StaticCredentials>,
}

impl KmsTarget {
    /// A target for a local emulator with its usual test credentials.
    pub fn local(endpoint: &str, access_key_id: &str) -> Self {
        Self {
            endpoint: Some(endpoint.to_owned()),
            region: "us-east-1".into(),
            credentials: Some(StaticCredentials {
                access_key_id: access_key_id.to_owned(),
                secret_access_key: "test".into(),
            }),
        }
    }

    pub async fn client(&self) -> aws_sdk_kms::Client {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()));
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                None,
                None,
                "keyhost-infra",
            ));
        }
        aws_sdk_kms::Client::new(&loader.load().await)
    }

    fn describe(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{}.amazonaws.com", self.region))
    }

    fn error<E>(&self, operation: &'static str, error: E) -> InfraError
    where
        E: std::error::Error + 'static,
    {
        // The innermost causes say what happened; the outer ones repeat it.
        let mut parts = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            source = cause.source();
        }
        let message = parts.join(": ");
        let hint = if message.contains("dispatch failure") || message.contains("Connection refused")
        {
            "; is KMS running there? For LocalStack: `make services-up`"
        } else {
            ""
        };
        InfraError::Kms {
            endpoint: self.describe(),
            operation,
            message,
            hint,
        }
    }
}

/// What `ensure_key` found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub arn: String,
    pub created: bool,
}

/// Finds the key behind `alias`, or creates a symmetric key with rotation
/// enabled and gives it the alias. Running it twice changes nothing.
pub async fn ensure_key(target: &KmsTarget, alias: &str) -> Result<KeyInfo, InfraError> {
    let client = target.client().await;
    match client.describe_key().key_id(alias).send().await {
        Ok(found) => {
            let arn = found
                .key_metadata()
                .map(|m| m.arn().unwrap_or_default().to_owned())
                .filter(|a| !a.is_empty())
                .ok_or(InfraError::Incomplete {
                    operation: "DescribeKey",
                    field: "KeyMetadata.Arn",
                })?;
            return Ok(KeyInfo {
                arn,
                created: false,
            });
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception()) => {}
        Err(err) => return Err(target.error("DescribeKey", err)),
    }
    let created = client
        .create_key()
        .description("Oponn ballot key-encryption key (keyhost)")
        .key_usage(KeyUsageType::EncryptDecrypt)
        .key_spec(KeySpec::SymmetricDefault)
        .send()
        .await
        .map_err(|e| target.error("CreateKey", e))?;
    let meta = created.key_metadata().ok_or(InfraError::Incomplete {
        operation: "CreateKey",
        field: "KeyMetadata",
    })?;
    let arn = meta.arn().unwrap_or_default().to_owned();
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .map_err(|e| target.error("CreateAlias", e))?;
    client
        .enable_key_rotation()
        .key_id(meta.key_id())
        .send()
        .await
        .map_err(|e| target.error("EnableKeyRotation", e))?;
    Ok(KeyInfo { arn, created: true })
}

/// Creates a new backing key for `key_id` now; old ciphertexts still decrypt.
pub async fn rotate(target: &KmsTarget, key_id: &str) -> Result<(), InfraError> {
    target
        .client()
        .await
        .rotate_key_on_demand()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| target.error("RotateKeyOnDemand", e))?;
    Ok(())
}

/// Writes `KMS_KEY_ID=<arn>` into the env file, keeping its other lines.
pub fn write_key_id(env_file: &Path, arn: &str) -> Result<(), InfraError> {
    crate::config::set_in_env_file(env_file, KEY_ID_VAR, arn).map_err(|source| InfraError::Write {
        path: env_file.to_owned(),
        source,
    })
}
