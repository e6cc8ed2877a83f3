//! `keyhost:provider/secrets`: the guest may read only the secrets its
//! provider table grants by name; it never learns where others live.

use crate::config::SecretSource;
use crate::runtime::HostState;
use crate::runtime::bindings::secrets::{Host, Secret, SecretError};

impl Host for HostState {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<Secret, SecretError>> {
        let Some(source) = self.grants.secrets.get(&name) else {
            return Ok(Err(SecretError::NotGranted(format!(
                "provider {} has no secret {name:?}; grant it with [providers.{}.secrets] in keyhost.toml",
                self.grants.provider, self.grants.provider
            ))));
        };
        let origin = source.describe();
        // Read at each call, so a changed secret takes effect without a restart.
        let value = match source {
            SecretSource::Env(var) => std::env::var_os(var).map(|v| v.into_encoded_bytes()),
            SecretSource::File(path) => match std::fs::read(path) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Ok(Err(SecretError::NotFound(format!(
                        "cannot read {origin}: {e}"
                    ))));
                }
            },
        };
        Ok(match value {
            Some(value) if !value.is_empty() => Ok(Secret { value, origin }),
            _ => Err(SecretError::NotFound(format!(
                "{origin} is not set or is empty"
            ))),
        })
    }
}
