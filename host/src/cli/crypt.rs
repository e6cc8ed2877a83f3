//! `encrypt`, `decrypt` and `inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::Args;
use keyhost::Keyhost;
use keyhost::config::Profile;
use keyhost::envelope::EncryptionContext;
use serde_json::json;

use super::io::{armor, parse_envelope, read_input, write_output};

#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// Context entry bound to the envelope, as key=value (repeatable).
    #[arg(long = "context", short = 'c', value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// Read the ballot from this file instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Write the envelope to this file instead of stdout.
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the envelope as base64 text.
    #[arg(long)]
    armor: bool,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// Context the envelope must be bound to, as key=value (repeatable).
    #[arg(long = "context", short = 'c', value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// Read the envelope (binary or base64) from this file instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Write the ballot to this file instead of stdout.
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Read the envelope (binary or base64) from this file instead of stdin.
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
}

impl EncryptArgs {
    pub async fn run(&self, profile: &Profile) -> anyhow::Result<ExitCode> {
        let context = EncryptionContext::from_assignments(&self.context)?;
        let plaintext = zeroize::Zeroizing::new(read_input(self.input.as_deref())?);
        let keyhost = Keyhost::open(profile)?;
        let envelope = keyhost.encrypt(context, &plaintext).await?;
        let bytes = envelope.to_bytes();
        if self.armor {
            write_output(self.output.as_ref(), &armor(&bytes), false)?;
        } else {
            write_output(self.output.as_ref(), &bytes, true)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl DecryptArgs {
    pub async fn run(&self, profile: &Profile) -> anyhow::Result<ExitCode> {
        let expected = EncryptionContext::from_assignments(&self.context)?;
        let envelope = parse_envelope(&read_input(self.input.as_deref())?)?;
        if expected.is_empty() && !envelope.context().is_empty() {
            anyhow::bail!(
                "the envelope is bound to a context; pass it with --context for each of: {}",
                envelope.context().keys().collect::<Vec<_>>().join(", ")
            );
        }
        let keyhost = Keyhost::open(profile)?;
        let plaintext = keyhost.decrypt(&envelope, &expected).await?;
        write_output(self.output.as_ref(), &plaintext, false)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl InspectArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        let bytes = read_input(self.input.as_deref())?;
        let envelope = parse_envelope(&bytes)?;
        let key = envelope.key_section();
        let wrapped = base64::engine::general_purpose::STANDARD.encode(&key.wrapped);
        let size = envelope.to_bytes().len();
        if self.json {
            let context: serde_json::Map<String, serde_json::Value> = envelope
                .context()
                .iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            let report = json!({
                "version": 1,
                "provider": key.provider,
                "key_id": key.key_id,
                "context": context,
                "envelope_bytes": size,
                "plaintext_bytes": envelope.plaintext_len(),
                "wrapped_key_bytes": key.wrapped.len(),
                "wrapped_key": wrapped,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("version:        1");
            println!("provider:       {}", key.provider);
            println!("key id:         {}", key.key_id);
            println!("context:        {}", envelope.context());
            println!("envelope:       {size} bytes");
            println!("plaintext:      {} bytes", envelope.plaintext_len());
            println!("wrapped key:    {} bytes", key.wrapped.len());
            println!("wrapped key b64: {wrapped}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
