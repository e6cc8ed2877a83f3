//! The host functions a provider may be granted, one module per WIT
//! interface. Each checks the provider's grant first and fails closed with a
//! typed WIT error; a trap is kept for abuse of a limit.

pub mod audit;
mod config;
mod crypto;
pub mod http;
mod http_transport;
mod log;
pub(crate) use log::clean as clean_guest_text;
mod secrets;

use std::collections::BTreeMap;

pub use audit::{Audit, AuditError, AuditEvent, FailurePolicy, Outcome};

use crate::config::{Limits, ProviderSettings, SecretSource};

/// Everything a provider was granted, fixed when it is loaded.
pub struct Grants {
    pub provider: String,
    pub limits: Limits,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub http: Option<http::HttpCapability>,
}

impl Grants {
    pub fn from_settings(settings: &ProviderSettings) -> Result<Self, http::HttpSetupError> {
        Ok(Self {
            provider: settings.name.clone(),
            limits: settings.limits.clone(),
            config: settings.config.clone(),
            secrets: settings.secrets.clone(),
            http: settings
                .http
                .as_ref()
                .map(|grant| http::HttpCapability::new(grant.clone(), &settings.limits))
                .transpose()?,
        })
    }
}

/// The `types` interface has no functions; its host trait is empty.
impl crate::runtime::bindings::types::Host for crate::runtime::HostState {}
