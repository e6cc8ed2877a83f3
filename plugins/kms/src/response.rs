//! Parsing the answers KMS gives with a 2xx status.
//!
//! Unknown fields are ignored (KMS adds some, such as `EncryptionAlgorithm`).
//! A base64 plaintext is read into a string that is zeroized on drop and
//! decoded into a zeroizing buffer; parse errors never quote the body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use keyhost_guest::{ProviderError, WrappedKey};
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::DEK_LEN;
use crate::request::KmsRequest;

/// What GenerateDataKey returns: the data key in plaintext and wrapped.
pub struct GeneratedKey {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub wrapped: WrappedKey,
}

impl std::fmt::Debug for GeneratedKey {
    /// Never shows the plaintext.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("plaintext_len", &self.plaintext.len())
            .field("key_id", &self.wrapped.key_id)
            .field("ciphertext_len", &self.wrapped.ciphertext.len())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeKeyResponse {
    key_metadata: Option<KeyMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyMetadata {
    arn: Option<String>,
    key_usage: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CiphertextResponse {
    key_id: Option<String>,
    ciphertext_blob: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PlaintextResponse {
    key_id: Option<String>,
    ciphertext_blob: Option<String>,
    #[serde(default, deserialize_with = "secret_string")]
    plaintext: Option<Zeroizing<String>>,
}

/// Moves the deserialized string straight into zeroizing memory.
fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

/// DescribeKey: the key's ARN, after checking it is an encryption key.
pub fn describe_key(request: &KmsRequest, body: &[u8]) -> Result<String, ProviderError> {
    let parsed: DescribeKeyResponse = parse(request, body)?;
    let metadata = parsed
        .key_metadata
        .ok_or_else(|| unexpected(request, "has no KeyMetadata"))?;
    if let Some(usage) = metadata.key_usage.as_deref()
        && usage != "ENCRYPT_DECRYPT"
    {
        return Err(ProviderError::Misconfigured(format!(
            "{} has key usage {usage}, so it cannot wrap data keys; set key_id in the provider's config table in keyhost.toml to a symmetric key with key usage ENCRYPT_DECRYPT",
            request.subject
        )));
    }
    non_empty(request, "KeyMetadata.Arn", metadata.arn)
}

/// GenerateDataKey: a 32-byte plaintext, its ciphertext, and the key's ARN.
pub fn generate_data_key(request: &KmsRequest, body: &[u8]) -> Result<GeneratedKey, ProviderError> {
    let parsed: PlaintextResponse = parse(request, body)?;
    let plaintext = plaintext(request, parsed.plaintext)?;
    if plaintext.len() != DEK_LEN {
        return Err(unexpected(
            request,
            &format!(
                "has a Plaintext of {} bytes instead of {DEK_LEN}",
                plaintext.len()
            ),
        ));
    }
    let wrapped = wrapped(request, parsed.key_id, parsed.ciphertext_blob)?;
    Ok(GeneratedKey { plaintext, wrapped })
}

/// Encrypt: the ciphertext and the ARN of the key that made it.
pub fn encrypt(request: &KmsRequest, body: &[u8]) -> Result<WrappedKey, ProviderError> {
    let parsed: CiphertextResponse = parse(request, body)?;
    wrapped(request, parsed.key_id, parsed.ciphertext_blob)
}

/// ReEncrypt: the new ciphertext and the ARN of the destination key.
pub fn re_encrypt(request: &KmsRequest, body: &[u8]) -> Result<WrappedKey, ProviderError> {
    encrypt(request, body)
}

/// Decrypt: the 32-byte data key.
///
/// A plaintext of another length decrypted fine but is not a data key this
/// provider wrapped, so it is reported as an invalid ciphertext.
pub fn decrypt(request: &KmsRequest, body: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    let parsed: PlaintextResponse = parse(request, body)?;
    let plaintext = plaintext(request, parsed.plaintext)?;
    if plaintext.len() != DEK_LEN {
        return Err(ProviderError::InvalidCiphertext(format!(
            "{} decrypted the wrapped key to {} bytes, but a data key is {DEK_LEN}; the envelope holds a KMS ciphertext that is not a keyhost data key",
            request.subject,
            plaintext.len()
        )));
    }
    Ok(plaintext)
}

fn parse<'a, T: Deserialize<'a>>(request: &KmsRequest, body: &'a [u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        // The error's own text can quote the body; say only what and where.
        let what = match e.classify() {
            serde_json::error::Category::Io => "could not be read",
            serde_json::error::Category::Syntax => "is not valid JSON",
            serde_json::error::Category::Data => "has a field of the wrong type",
            serde_json::error::Category::Eof => "ends before the JSON does",
        };
        unexpected(
            request,
            &format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}

fn plaintext(
    request: &KmsRequest,
    field: Option<Zeroizing<String>>,
) -> Result<Zeroizing<Vec<u8>>, ProviderError> {
    let text = field.ok_or_else(|| unexpected(request, "has no Plaintext"))?;
    let mut out = Zeroizing::new(Vec::new());
    // One allocation of the estimated length; zeroized over its capacity.
    BASE64
        .decode_vec(text.as_bytes(), &mut out)
        .map_err(|_| unexpected(request, "has a Plaintext that is not valid base64"))?;
    Ok(out)
}

fn wrapped(
    request: &KmsRequest,
    key_id: Option<String>,
    blob: Option<String>,
) -> Result<WrappedKey, ProviderError> {
    let blob = non_empty(request, "CiphertextBlob", blob)?;
    let ciphertext = BASE64
        .decode(blob.as_bytes())
        .map_err(|_| unexpected(request, "has a CiphertextBlob that is not valid base64"))?;
    if ciphertext.is_empty() {
        return Err(unexpected(request, "has an empty CiphertextBlob"));
    }
    let key_id = non_empty(request, "KeyId", key_id)?;
    Ok(WrappedKey { key_id, ciphertext })
}

fn non_empty(
    request: &KmsRequest,
    field: &str,
    value: Option<String>,
) -> Result<String, ProviderError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(unexpected(request, &format!("has an empty {field}"))),
        None => Err(unexpected(request, &format!("has no {field}"))),
    }
}

fn unexpected(request: &KmsRequest, problem: &str) -> ProviderError {
    ProviderError::Internal(format!(
        "KMS answered {} for {} with success, but the answer {problem}; the endpoint in the provider's http grant may not be KMS, or its KMS is incompatible",
        request.operation.name(),
        request.subject
    ))
}

#[cfg(test)]
mod tests;
