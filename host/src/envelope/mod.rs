//! The envelope: one ballot sealed under its own data key (DEK).
//!
//! An *envelope* holds a ballot's ciphertext (AES-256-GCM under a fresh
//! 256-bit DEK), the *encryption context* it is bound to, a *key commitment*
//! to the DEK, and a *key section*: the DEK wrapped by a master-key provider,
//! with the provider's name and the id of the master key.
//!
//! The context, nonce and commitment are the payload's associated data; the key
//! section is not, so a rewrap can replace it without touching the ballot. The
//! wrapped DEK is protected by the provider's own AEAD under the same context,
//! and providers check the key id they are handed, so a change anywhere in an
//! envelope is detected. The byte layout is specified in `docs/ENVELOPE.md`.
//!
//! This module is pure computation: no I/O, no providers.

mod context;
mod format;

pub use context::{ContextError, EncryptionContext};
pub use format::{EnvelopeError, KeySection, MAX_PAYLOAD_BYTES, check_provider_name};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Length of a data key in bytes (AES-256).
pub const DEK_LEN: usize = 32;
/// Length of the AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of the key commitment in bytes (HMAC-SHA-256).
pub const COMMITMENT_LEN: usize = 32;
/// Length of the AES-GCM authentication tag in bytes.
pub const TAG_LEN: usize = 16;

/// A plaintext data key. Its bytes are wiped when it is dropped and never
/// printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; DEK_LEN]>);

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; DEK_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Takes a key handed over by a provider; the source is wiped either way.
    pub fn from_vec(mut bytes: Vec<u8>) -> Result<Self, EnvelopeError> {
        let result = <[u8; DEK_LEN]>::try_from(bytes.as_slice())
            .map(|key| Self(Zeroizing::new(key)))
            .map_err(|_| EnvelopeError::DataKeyLength(bytes.len()));
        bytes.zeroize();
        result
    }

    pub fn expose(&self) -> &[u8; DEK_LEN] {
        &self.0
    }

    /// The commitment recorded in an envelope sealed with this key.
    ///
    /// AES-GCM alone is not key-committing: a crafted ciphertext can decrypt
    /// under two keys. The commitment, a PRF of the key, lets the opener reject
    /// a wrong key before decrypting anything.
    pub fn commitment(&self, nonce: &[u8; NONCE_LEN]) -> [u8; COMMITMENT_LEN] {
        let mut mac = commitment_mac(self);
        mac.update(nonce);
        mac.finalize().into_bytes().into()
    }

    fn verify_commitment(
        &self,
        nonce: &[u8; NONCE_LEN],
        commitment: &[u8; COMMITMENT_LEN],
    ) -> bool {
        let mut mac = commitment_mac(self);
        mac.update(nonce);
        // Constant time: the commitment must not become an oracle.
        mac.verify_slice(commitment).is_ok()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

fn commitment_mac(key: &DataKey) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .expect("HMAC accepts keys of any length");
    mac.update(b"keyhost/v1/key-commitment");
    mac
}

/// A parsed envelope. Build one with [`Envelope::seal`] or [`Envelope::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    context: EncryptionContext,
    nonce: [u8; NONCE_LEN],
    commitment: [u8; COMMITMENT_LEN],
    key: KeySection,
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// Encrypts `plaintext` under `dek`, bound to `context`, recording `key`
    /// (the same DEK, wrapped by a provider) in the key section.
    pub fn seal(
        dek: &DataKey,
        context: EncryptionContext,
        key: KeySection,
        plaintext: &[u8],
    ) -> Result<Self, EnvelopeError> {
        key.validate()?;
        if plaintext.len() > MAX_PAYLOAD_BYTES - TAG_LEN {
            return Err(EnvelopeError::FieldTooLarge {
                field: "payload",
                len: plaintext.len(),
                max: MAX_PAYLOAD_BYTES - TAG_LEN,
            });
        }
        // A nonce must never repeat under one key, but it is not secret: the
        // thread's CSPRNG (ChaCha12, seeded and reseeded from the OS) saves a
        // system call per envelope. The DEK itself comes from the OS.
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let commitment = dek.commitment(&nonce);
        let mut envelope = Self {
            context,
            nonce,
            commitment,
            key,
            ciphertext: Vec::new(),
        };
        let aad = envelope.associated_data();
        envelope.ciphertext = cipher(dek)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::Encryption)?;
        Ok(envelope)
    }

    /// Decrypts the payload with `dek`, which the caller unwrapped from the key
    /// section. A wrong key fails the commitment check before decryption.
    pub fn open(&self, dek: &DataKey) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        self.check_commitment(dek)?;
        let aad = self.associated_data();
        cipher(dek)
            .decrypt(
                &Nonce::from(self.nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| EnvelopeError::Tampered)
    }

    /// Fails unless `dek` is the key this envelope was sealed with.
    pub fn check_commitment(&self, dek: &DataKey) -> Result<(), EnvelopeError> {
        if dek.verify_commitment(&self.nonce, &self.commitment) {
            Ok(())
        } else {
            Err(EnvelopeError::KeyCommitmentMismatch)
        }
    }

    /// The same envelope with its key section replaced: the ballot ciphertext,
    /// nonce, context and commitment stay byte for byte.
    pub fn with_key_section(mut self, key: KeySection) -> Result<Self, EnvelopeError> {
        key.validate()?;
        self.key = key;
        Ok(self)
    }

    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    pub fn key_section(&self) -> &KeySection {
        &self.key
    }

    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// Length of the sealed payload, tag included.
    pub fn ciphertext_len(&self) -> usize {
        self.ciphertext.len()
    }

    /// Length of the plaintext the payload holds.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }
}

fn cipher(dek: &DataKey) -> Aes256Gcm {
    Aes256Gcm::new(dek.expose().into())
}

#[cfg(test)]
mod tests;
