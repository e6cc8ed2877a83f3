//! The `aws-kms` provider: a symmetric key in AWS KMS.
//!
//! Data keys are made by GenerateDataKey, wrapped by Encrypt, unwrapped by
//! Decrypt (naming the key the wrapped key records) and rewrapped by
//! ReEncrypt, each under the envelope's encryption context. The host owns the
//! endpoint and signs every request with its own AWS credentials; the
//! provider reads one setting, `key_id` (alias, key id or ARN).

struct AwsKms;

impl keyhost_kms_protocol::Flavor for AwsKms {
    const NAME: &'static str = "aws-kms";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
}

type Plugin = keyhost_kms_protocol::Provider<AwsKms>;

keyhost_guest::export!(Plugin with_types_in keyhost_guest::bindings);
