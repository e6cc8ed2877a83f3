//! The providers' behaviour, over the few host imports it needs.
//!
//! [`Kms`] does what each `provider` export does: it builds the request,
//! sends it through [`Imports`], maps failures, and parses the answer. The
//! guest implements [`Imports`] with the real imports ([`crate::guest`]);
//! tests implement it with a fake.

use keyhost_guest::http::HttpError;
use keyhost_guest::{ContextEntry, Description, Features, ProviderError, WrappedKey};
use zeroize::Zeroizing;

use crate::response::GeneratedKey;
use crate::{error, request, response};

/// A KMS answer as the host passes it on.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// May hold a base64 plaintext data key (GenerateDataKey, Decrypt).
    pub body: Zeroizing<Vec<u8>>,
}

/// What the providers need from the host.
pub trait Imports {
    /// The `key_id` setting of the provider's config table.
    fn configured_key_id(&mut self) -> Result<String, ProviderError>;

    /// Sends `request` as `POST /` with its headers and body. The body may be
    /// taken; the caller does not use it again.
    fn send(&mut self, request: &mut request::KmsRequest) -> Result<Reply, HttpError>;

    /// One debug line for the host's log. Never key material or ciphertext.
    fn debug(&mut self, line: &str);
}

/// A KMS provider named `name`.
pub struct Kms<I> {
    pub imports: I,
    pub name: &'static str,
    pub version: &'static str,
}

impl<I: Imports> Kms<I> {
    pub fn new(imports: I, name: &'static str, version: &'static str) -> Self {
        Self {
            imports,
            name,
            version,
        }
    }

    /// DescribeKey on the configured key: its ARN names new wrapped keys.
    pub fn describe(&mut self) -> Result<Description, ProviderError> {
        let key_id = self.key_id()?;
        let mut request = request::describe_key(&key_id)?;
        let reply = self.call(&mut request)?;
        let arn = response::describe_key(&request, &reply.body)?;
        Ok(Description {
            name: self.name.into(),
            version: self.version.into(),
            key_id: arn,
            features: Features::GENERATE_DATA_KEY | Features::RE_ENCRYPT,
        })
    }

    /// GenerateDataKey with the configured key; the wrapped key records the
    /// key's ARN as KMS reports it.
    pub fn generate_data_key(
        &mut self,
        context: &[ContextEntry],
    ) -> Result<GeneratedKey, ProviderError> {
        let key_id = self.key_id()?;
        let mut request = request::generate_data_key(&key_id, context)?;
        let reply = self.call(&mut request)?;
        response::generate_data_key(&request, &reply.body)
    }

    /// Encrypt `dek` with the configured key.
    pub fn wrap(
        &mut self,
        dek: &[u8],
        context: &[ContextEntry],
    ) -> Result<WrappedKey, ProviderError> {
        let key_id = self.key_id()?;
        let mut request = request::encrypt(&key_id, dek, context)?;
        let reply = self.call(&mut request)?;
        response::encrypt(&request, &reply.body)
    }

    /// Decrypt with the key the wrapped key records, so KMS refuses a
    /// ciphertext made by any other key.
    pub fn unwrap(
        &mut self,
        wrapped: &WrappedKey,
        context: &[ContextEntry],
    ) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
        let mut request = request::decrypt(&wrapped.key_id, &wrapped.ciphertext, context)?;
        let reply = self.call(&mut request)?;
        response::decrypt(&request, &reply.body)
    }

    /// ReEncrypt from the recorded key to `destination` (the configured key
    /// when none), under the same context.
    pub fn re_encrypt(
        &mut self,
        wrapped: &WrappedKey,
        context: &[ContextEntry],
        destination: Option<&str>,
    ) -> Result<WrappedKey, ProviderError> {
        let destination = match destination {
            Some(d) if d.trim().is_empty() => {
                return Err(ProviderError::Misconfigured(format!(
                    "the destination key id for re-encrypting the data key wrapped by key {} is empty; name a key alias, id or ARN, or none for the configured key",
                    wrapped.key_id
                )));
            }
            Some(d) => d.trim().to_owned(),
            None => self.key_id()?,
        };
        let mut request =
            request::re_encrypt(&wrapped.key_id, &destination, &wrapped.ciphertext, context)?;
        let reply = self.call(&mut request)?;
        response::re_encrypt(&request, &reply.body)
    }

    fn key_id(&mut self) -> Result<String, ProviderError> {
        let key_id = self.imports.configured_key_id()?;
        let key_id = key_id.trim();
        if key_id.is_empty() {
            return Err(ProviderError::Misconfigured(format!(
                "the {} provider's key_id is empty; set key_id in its config table in keyhost.toml to a KMS key alias (alias/name), key id or key ARN",
                self.name
            )));
        }
        Ok(key_id.to_owned())
    }

    /// Sends `request`; a non-2xx answer or a host failure is an error.
    fn call(&mut self, request: &mut request::KmsRequest) -> Result<Reply, ProviderError> {
        let result = self.imports.send(request);
        let outcome = match &result {
            Ok(reply) => format!("HTTP {}", reply.status),
            Err(e) => match e {
                HttpError::Denied(_) => "denied by the host".into(),
                HttpError::Timeout(_) => "timed out".into(),
                HttpError::Unreachable(_) => "endpoint unreachable".into(),
                HttpError::TooLarge(_) => "too large".into(),
                HttpError::Failed(_) => "failed in the host".into(),
            },
        };
        // The host tags the line with the provider.
        self.imports.debug(&format!(
            "{} for {}: {outcome}",
            request.operation.target(),
            request.subject
        ));
        let reply = result.map_err(|e| error::from_http_error(request, e))?;
        if !(200..300).contains(&reply.status) {
            return Err(error::from_response(
                request,
                reply.status,
                &reply.headers,
                &reply.body,
            ));
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests;
