//! Encrypt, decrypt and rewrap on top of a profile's providers.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::capabilities::Audit;
use crate::config::Profile;
use crate::envelope::{DataKey, EncryptionContext, Envelope, KeySection};
use crate::error::Error;
use crate::runtime::{Operation, Provider, Runtime, provider::WrappedKey};

/// A profile's providers, loaded and ready.
pub struct Keyhost {
    profile: String,
    runtime: Runtime,
    providers: BTreeMap<String, Provider>,
    encrypt: String,
    audit: Audit,
}

impl Keyhost {
    /// Loads every provider of `profile`: digest check, compile, link.
    /// Nothing is called yet, so an unreachable KMS does not stop decrypting
    /// envelopes of other providers.
    pub fn open(profile: &Profile) -> Result<Self, Error> {
        let audit = match &profile.runtime.audit_log {
            Some(path) => Audit::open_with(path, profile.runtime.audit_failure)?,
            None => Audit::disabled(),
        };
        let max_memory = profile
            .providers
            .values()
            .map(|p| p.limits.memory_bytes)
            .max()
            .unwrap_or(1 << 20);
        let runtime = Runtime::new(&profile.runtime, max_memory)?;
        let mut providers = BTreeMap::new();
        for (name, settings) in &profile.providers {
            providers.insert(name.clone(), runtime.load(settings, audit.clone())?);
        }
        Ok(Self {
            profile: profile.name.clone(),
            runtime,
            providers,
            encrypt: profile.encrypt.clone(),
            audit,
        })
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The providers in name order.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// The provider that wraps the keys of new envelopes.
    pub fn encrypting_provider(&self) -> &Provider {
        &self.providers[&self.encrypt]
    }

    /// A loaded provider by name; the error says how to load or retire it.
    pub fn provider(&self, name: &str) -> Result<&Provider, Error> {
        self.providers
            .get(name)
            .ok_or_else(|| Error::ProviderNotLoaded {
                provider: name.to_owned(),
                profile: self.profile.clone(),
                loaded: self.providers.keys().cloned().collect(),
            })
    }

    /// Seals `plaintext` under a fresh DEK wrapped by the encrypting provider.
    pub async fn encrypt(
        &self,
        context: EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Envelope, Error> {
        let provider = self.encrypting_provider();
        let name = provider.name();
        let description = provider
            .description()
            .await
            .map_err(Error::call(name, Operation::Describe))?;
        let (dek, wrapped) = if description.generate_data_key {
            provider
                .generate_data_key(&context)
                .await
                .map_err(Error::call(name, Operation::GenerateDataKey))?
        } else {
            let dek = DataKey::generate();
            let wrapped = provider
                .wrap(&dek, &context)
                .await
                .map_err(Error::call(name, Operation::Wrap))?;
            (dek, wrapped)
        };
        let key = KeySection {
            provider: name.to_owned(),
            key_id: wrapped.key_id,
            wrapped: wrapped.ciphertext,
        };
        Ok(Envelope::seal(&dek, context, key, plaintext)?)
    }

    /// Opens `envelope` if it is bound to exactly `expected`.
    pub async fn decrypt(
        &self,
        envelope: &Envelope,
        expected: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        if envelope.context() != expected {
            return Err(Error::ContextMismatch {
                expected: expected.to_string(),
                found: envelope.context().to_string(),
            });
        }
        // `open` checks the key commitment before decrypting.
        let dek = self.unwrap_unchecked(envelope).await?;
        Ok(envelope.open(&dek)?)
    }

    /// The envelope's DEK, unwrapped by the provider its key section names,
    /// and checked against the envelope's key commitment.
    pub async fn unwrap_key(&self, envelope: &Envelope) -> Result<DataKey, Error> {
        let dek = self.unwrap_unchecked(envelope).await?;
        envelope.check_commitment(&dek)?;
        Ok(dek)
    }

    async fn unwrap_unchecked(&self, envelope: &Envelope) -> Result<DataKey, Error> {
        let key = envelope.key_section();
        let provider = self.provider(&key.provider)?;
        let wrapped = WrappedKey {
            key_id: key.key_id.clone(),
            ciphertext: key.wrapped.clone(),
        };
        provider
            .unwrap(&wrapped, envelope.context())
            .await
            .map_err(Error::call(provider.name(), Operation::Unwrap))
    }
}
