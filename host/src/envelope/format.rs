//! The envelope's byte layout (version 1), its parser and its writer.
//!
//! ```text
//! magic "KHEV" | version 0x01
//! context: count u8, then per entry key-len u8, key, value-len u16, value
//! nonce [12] | commitment [32]                  <- end of associated data
//! provider-len u8, provider | key-id-len u16, key-id | wrapped-len u16, wrapped
//! payload-len u32, payload (ciphertext and tag)
//! ```
//!
//! Integers are big-endian. Every length is checked against its limit before
//! anything is allocated, and the input must end exactly after the payload.

use super::context::{
    ContextError, EncryptionContext, MAX_ENTRIES, MAX_KEY_BYTES, MAX_VALUE_BYTES,
};
use super::{COMMITMENT_LEN, Envelope, NONCE_LEN, TAG_LEN};

pub(crate) const MAGIC: &[u8; 4] = b"KHEV";
pub(crate) const VERSION: u8 = 1;

/// Longest provider name, in bytes.
pub const MAX_PROVIDER_BYTES: usize = 64;
/// Longest key id, in bytes (a KMS key ARN is about 75).
pub const MAX_KEY_ID_BYTES: usize = 2048;
/// Largest wrapped key, in bytes (a KMS ciphertext blob is at most 6144).
pub const MAX_WRAPPED_BYTES: usize = 8192;
/// Largest payload (ciphertext and tag), in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("input is not a keyhost envelope (it does not begin with \"KHEV\")")]
    NotAnEnvelope,
    #[error("envelope version {0} is not supported; this keyhost reads version {VERSION}")]
    UnsupportedVersion(u8),
    #[error("envelope is truncated: {field} needs {needed} more bytes, {available} are left")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("envelope {field} is {len} bytes, over the {max}-byte limit")]
    FieldTooLarge {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("envelope {field} is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("envelope context is invalid: {0}")]
    Context(#[from] ContextError),
    #[error("envelope has {0} unexpected bytes after its payload")]
    TrailingBytes(usize),
    #[error("data key is {0} bytes; a data key is 32 bytes")]
    DataKeyLength(usize),
    #[error("the unwrapped data key does not match the envelope's key commitment")]
    KeyCommitmentMismatch,
    #[error(
        "envelope payload failed authentication: it was altered or sealed under another context"
    )]
    Tampered,
    #[error("payload encryption failed")]
    Encryption,
}

/// The rewrappable part of an envelope: who wrapped the DEK, with which key,
/// and the wrapped bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySection {
    pub provider: String,
    pub key_id: String,
    pub wrapped: Vec<u8>,
}

impl KeySection {
    /// Checks the limits the parser enforces, so that whatever is sealed can
    /// be read back.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        check_provider_name(&self.provider)?;
        check_len("key id", self.key_id.len(), 1, MAX_KEY_ID_BYTES)?;
        check_len("wrapped key", self.wrapped.len(), 1, MAX_WRAPPED_BYTES)?;
        Ok(())
    }
}

/// Provider names are short identifiers: lowercase ASCII letters, digits, `-`, `_`.
pub fn check_provider_name(name: &str) -> Result<(), EnvelopeError> {
    check_len("provider name", name.len(), 1, MAX_PROVIDER_BYTES)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(EnvelopeError::InvalidField {
            field: "provider name",
            reason: format!("{name:?} has characters other than a-z, 0-9, '-' and '_'"),
        });
    }
    Ok(())
}

fn check_len(field: &'static str, len: usize, min: usize, max: usize) -> Result<(), EnvelopeError> {
    if len > max {
        return Err(EnvelopeError::FieldTooLarge { field, len, max });
    }
    if len < min {
        return Err(EnvelopeError::InvalidField {
            field,
            reason: format!("it is {len} bytes, at least {min} are needed"),
        });
    }
    Ok(())
}

impl Envelope {
    /// Parses a binary envelope. Never panics; every malformed input is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader { rest: bytes };
        if r.rest.len() < MAGIC.len() || &r.rest[..MAGIC.len()] != MAGIC {
            return Err(EnvelopeError::NotAnEnvelope);
        }
        r.take("magic", MAGIC.len())?;
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }

        let count = r.u8("context count")? as usize;
        if count > MAX_ENTRIES {
            return Err(ContextError::TooManyEntries { count }.into());
        }
        let mut context = EncryptionContext::new();
        let mut previous: Option<&str> = None;
        for _ in 0..count {
            let key_len = r.u8("context key length")? as usize;
            check_len("context key", key_len, 1, MAX_KEY_BYTES)?;
            let key = r.utf8("context key", key_len)?;
            let value_len = r.u16("context value length")? as usize;
            check_len("context value", value_len, 0, MAX_VALUE_BYTES)?;
            let value = r.utf8("context value", value_len)?;
            // One context, one encoding: keys strictly ascending.
            if previous.is_some_and(|p| p >= key) {
                return Err(EnvelopeError::InvalidField {
                    field: "context",
                    reason: "keys are not in strictly ascending order".into(),
                });
            }
            previous = Some(key);
            context.insert(key.to_owned(), value.to_owned())?;
        }
        let nonce: [u8; NONCE_LEN] = r.array("nonce")?;
        let commitment: [u8; COMMITMENT_LEN] = r.array("key commitment")?;

        let provider_len = r.u8("provider name length")? as usize;
        check_len("provider name", provider_len, 1, MAX_PROVIDER_BYTES)?;
        let provider = r.utf8("provider name", provider_len)?.to_owned();
        check_provider_name(&provider)?;
        let key_id_len = r.u16("key id length")? as usize;
        check_len("key id", key_id_len, 1, MAX_KEY_ID_BYTES)?;
        let key_id = r.utf8("key id", key_id_len)?.to_owned();
        let wrapped_len = r.u16("wrapped key length")? as usize;
        check_len("wrapped key", wrapped_len, 1, MAX_WRAPPED_BYTES)?;
        let wrapped = r.take("wrapped key", wrapped_len)?.to_vec();

        let payload_len = r.u32("payload length")? as usize;
        check_len("payload", payload_len, TAG_LEN, MAX_PAYLOAD_BYTES)?;
        let ciphertext = r.take("payload", payload_len)?.to_vec();
        if !r.rest.is_empty() {
            return Err(EnvelopeError::TrailingBytes(r.rest.len()));
        }
        Ok(Self {
            context,
            nonce,
            commitment,
            key: KeySection {
                provider,
                key_id,
                wrapped,
            },
            ciphertext,
        })
    }

    /// The binary encoding, as [`Envelope::parse`] reads it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.associated_data();
        let key = &self.key;
        out.reserve(1 + key.provider.len() + 2 + key.key_id.len() + 2 + key.wrapped.len());
        // Lengths were validated when the key section entered the envelope.
        out.push(key.provider.len() as u8);
        out.extend_from_slice(key.provider.as_bytes());
        out.extend_from_slice(&(key.key_id.len() as u16).to_be_bytes());
        out.extend_from_slice(key.key_id.as_bytes());
        out.extend_from_slice(&(key.wrapped.len() as u16).to_be_bytes());
        out.extend_from_slice(&key.wrapped);
        out.extend_from_slice(&(self.ciphertext.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Magic, version, context, nonce and commitment: what the payload's tag
    /// authenticates besides the ciphertext.
    pub(crate) fn associated_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.context.len() * 32);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.context.len() as u8);
        for (key, value) in self.context.iter() {
            out.push(key.len() as u8);
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.commitment);
        out
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.rest.len() < n {
            return Err(EnvelopeError::Truncated {
                field,
                needed: n,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EnvelopeError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EnvelopeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn utf8(&mut self, field: &'static str, n: usize) -> Result<&'a str, EnvelopeError> {
        let bytes = self.take(field, n)?;
        std::str::from_utf8(bytes).map_err(|_| EnvelopeError::InvalidField {
            field,
            reason: "it is not UTF-8".into(),
        })
    }
}
