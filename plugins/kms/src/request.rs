//! KMS requests: the operation, its headers and its JSON body.
//!
//! Bodies are written into a buffer sized exactly beforehand, so a body that
//! holds a plaintext data key is never copied by a growing `Vec`, and the one
//! buffer is zeroized on drop.

use std::collections::BTreeMap;
use std::io::{self, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use keyhost_guest::{ContextEntry, ProviderError};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::DEK_LEN;

/// The HTTP method of every KMS request.
pub const METHOD: &str = "POST";
/// The path of every KMS request.
pub const PATH: &str = "/";
/// The media type of the JSON 1.1 protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The largest ciphertext KMS accepts in Decrypt and ReEncrypt.
pub const MAX_CIPHERTEXT_LEN: usize = 6144;

/// A KMS operation the providers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    DescribeKey,
    GenerateDataKey,
    Encrypt,
    Decrypt,
    ReEncrypt,
}

impl Operation {
    /// Every operation, for the host's `allowed_targets`.
    pub const ALL: [Operation; 5] = [
        Operation::DescribeKey,
        Operation::GenerateDataKey,
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::ReEncrypt,
    ];

    /// The operation's name, as in IAM actions (`kms:<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Operation::DescribeKey => "DescribeKey",
            Operation::GenerateDataKey => "GenerateDataKey",
            Operation::Encrypt => "Encrypt",
            Operation::Decrypt => "Decrypt",
            Operation::ReEncrypt => "ReEncrypt",
        }
    }

    /// The `X-Amz-Target` header value.
    pub fn target(self) -> &'static str {
        match self {
            Operation::DescribeKey => "TrentService.DescribeKey",
            Operation::GenerateDataKey => "TrentService.GenerateDataKey",
            Operation::Encrypt => "TrentService.Encrypt",
            Operation::Decrypt => "TrentService.Decrypt",
            Operation::ReEncrypt => "TrentService.ReEncrypt",
        }
    }
}

/// A request ready to send: `POST /` with [`KmsRequest::headers`] and `body`.
pub struct KmsRequest {
    pub operation: Operation,
    /// The key or keys involved, for messages: `key alias/x`, or
    /// `key A to key B` for ReEncrypt.
    pub subject: String,
    /// The JSON body; it may hold a plaintext data key (Encrypt).
    pub body: Zeroizing<Vec<u8>>,
}

impl KmsRequest {
    /// The headers the guest sets. Everything else is the host's.
    pub fn headers(&self) -> [(&'static str, &'static str); 2] {
        [
            ("X-Amz-Target", self.operation.target()),
            ("Content-Type", CONTENT_TYPE),
        ]
    }
}

impl std::fmt::Debug for KmsRequest {
    /// Never shows the body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsRequest")
            .field("operation", &self.operation)
            .field("subject", &self.subject)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The encryption context as a JSON object, keys in sorted order.
#[derive(Serialize)]
#[serde(transparent)]
struct Context<'a>(BTreeMap<&'a str, &'a str>);

impl<'a> Context<'a> {
    fn new(op: Operation, entries: &'a [ContextEntry]) -> Result<Self, ProviderError> {
        let map: BTreeMap<&str, &str> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        if map.len() != entries.len() {
            return Err(ProviderError::Internal(format!(
                "the encryption context for {} names a key twice; the host must pass each context key once",
                op.name()
            )));
        }
        Ok(Self(map))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeKeyBody<'a> {
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyBody<'a> {
    key_id: &'a str,
    key_spec: &'static str,
    #[serde(skip_serializing_if = "Context::is_empty")]
    encryption_context: Context<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptBody<'a> {
    key_id: &'a str,
    plaintext: &'a str,
    #[serde(skip_serializing_if = "Context::is_empty")]
    encryption_context: Context<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptBody<'a> {
    key_id: &'a str,
    ciphertext_blob: &'a str,
    #[serde(skip_serializing_if = "Context::is_empty")]
    encryption_context: Context<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptBody<'a> {
    source_key_id: &'a str,
    destination_key_id: &'a str,
    ciphertext_blob: &'a str,
    #[serde(skip_serializing_if = "Context::is_empty")]
    source_encryption_context: &'a Context<'a>,
    #[serde(skip_serializing_if = "Context::is_empty")]
    destination_encryption_context: &'a Context<'a>,
}

/// `DescribeKey {KeyId}`.
pub fn describe_key(key_id: &str) -> Result<KmsRequest, ProviderError> {
    let op = Operation::DescribeKey;
    check_key_id(op, key_id)?;
    finish(op, format!("key {key_id}"), &DescribeKeyBody { key_id })
}

/// `GenerateDataKey {KeyId, KeySpec: "AES_256", EncryptionContext}`.
pub fn generate_data_key(
    key_id: &str,
    context: &[ContextEntry],
) -> Result<KmsRequest, ProviderError> {
    let op = Operation::GenerateDataKey;
    check_key_id(op, key_id)?;
    let body = GenerateDataKeyBody {
        key_id,
        key_spec: "AES_256",
        encryption_context: Context::new(op, context)?,
    };
    finish(op, format!("key {key_id}"), &body)
}

/// `Encrypt {KeyId, Plaintext, EncryptionContext}` for a 32-byte data key.
pub fn encrypt(
    key_id: &str,
    dek: &[u8],
    context: &[ContextEntry],
) -> Result<KmsRequest, ProviderError> {
    let op = Operation::Encrypt;
    check_key_id(op, key_id)?;
    if dek.len() != DEK_LEN {
        return Err(ProviderError::Internal(format!(
            "the host asked to wrap a data key of {} bytes with key {key_id}; data keys are {DEK_LEN} bytes",
            dek.len()
        )));
    }
    // `encode` allocates the exact length once; the string is zeroized on drop.
    let plaintext = Zeroizing::new(BASE64.encode(dek));
    let body = EncryptBody {
        key_id,
        plaintext: &plaintext,
        encryption_context: Context::new(op, context)?,
    };
    finish(op, format!("key {key_id}"), &body)
}

/// `Decrypt {KeyId, CiphertextBlob, EncryptionContext}`: naming the key makes
/// KMS refuse a ciphertext made by any other key.
pub fn decrypt(
    key_id: &str,
    ciphertext: &[u8],
    context: &[ContextEntry],
) -> Result<KmsRequest, ProviderError> {
    let op = Operation::Decrypt;
    check_wrapped(op, key_id, ciphertext)?;
    let blob = BASE64.encode(ciphertext);
    let body = DecryptBody {
        key_id,
        ciphertext_blob: &blob,
        encryption_context: Context::new(op, context)?,
    };
    finish(op, format!("key {key_id}"), &body)
}

/// `ReEncrypt {SourceKeyId, DestinationKeyId, CiphertextBlob,
/// SourceEncryptionContext, DestinationEncryptionContext}`, the same context
/// on both sides. LocalStack needs `SourceKeyId`; AWS checks it.
pub fn re_encrypt(
    source_key_id: &str,
    destination_key_id: &str,
    ciphertext: &[u8],
    context: &[ContextEntry],
) -> Result<KmsRequest, ProviderError> {
    let op = Operation::ReEncrypt;
    check_wrapped(op, source_key_id, ciphertext)?;
    check_key_id(op, destination_key_id)?;
    let blob = BASE64.encode(ciphertext);
    let context = Context::new(op, context)?;
    let body = ReEncryptBody {
        source_key_id,
        destination_key_id,
        ciphertext_blob: &blob,
        source_encryption_context: &context,
        destination_encryption_context: &context,
    };
    finish(
        op,
        format!("key {source_key_id} to key {destination_key_id}"),
        &body,
    )
}

fn check_key_id(op: Operation, key_id: &str) -> Result<(), ProviderError> {
    if key_id.trim().is_empty() {
        return Err(ProviderError::Misconfigured(format!(
            "{} needs a KMS key, but the key id is empty; set key_id in the provider's config table in keyhost.toml to a key alias, id or ARN",
            op.name()
        )));
    }
    Ok(())
}

fn check_wrapped(op: Operation, key_id: &str, ciphertext: &[u8]) -> Result<(), ProviderError> {
    if key_id.trim().is_empty() {
        return Err(ProviderError::InvalidCiphertext(format!(
            "the wrapped key records no KMS key id, so {} cannot name the key that made it; the envelope is damaged",
            op.name()
        )));
    }
    if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT_LEN {
        return Err(ProviderError::InvalidCiphertext(format!(
            "the data key wrapped by key {key_id} is {} bytes; a KMS ciphertext is 1 to {MAX_CIPHERTEXT_LEN} bytes, so the envelope is damaged",
            ciphertext.len()
        )));
    }
    Ok(())
}

/// Serializes `body` into a buffer of exactly its length.
fn finish(
    operation: Operation,
    subject: String,
    body: &impl Serialize,
) -> Result<KmsRequest, ProviderError> {
    let failed = |e: serde_json::Error| {
        ProviderError::Internal(format!(
            "could not write the {} request for {subject}: {e}",
            operation.name()
        ))
    };
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, body).map_err(failed)?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *out, body).map_err(failed)?;
    debug_assert_eq!(out.len(), out.capacity());
    Ok(KmsRequest {
        operation,
        subject,
        body: out,
    })
}

/// Counts the bytes written to it.
struct Counter(usize);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
