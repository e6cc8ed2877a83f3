//! The `localstack` provider: a KMS key in LocalStack, for development and
//! tests.
//!
//! Inside the guest it is the `aws-kms` provider under another name: the host
//! supplies LocalStack's endpoint (plain http, allowed for a local emulator),
//! its test credentials and the SigV4 signing, all from keyhost.toml. The
//! provider reads one setting, `key_id` (alias, key id or ARN).

struct LocalStack;

impl keyhost_kms_protocol::Flavor for LocalStack {
    const NAME: &'static str = "localstack";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
}

type Plugin = keyhost_kms_protocol::Provider<LocalStack>;

keyhost_guest::export!(Plugin with_types_in keyhost_guest::bindings);
