//! Argument parsing and the commands behind it.

mod audit;
mod crypt;
mod infra;
mod io;
mod migrate;
mod providers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyhost::config::{self, Profile};

/// Envelope encryption with sandboxed master-key providers.
#[derive(Parser, Debug)]
#[command(name = "keyhost", version, about)]
pub struct Args {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "KEYHOST_CONFIG",
        default_value = "keyhost.toml"
    )]
    config: PathBuf,
    /// Profile to use (default: KEYHOST_PROFILE, then the file's default_profile).
    #[arg(long, global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encrypt a ballot into an envelope.
    Encrypt(crypt::EncryptArgs),
    /// Decrypt an envelope bound to the given context.
    Decrypt(crypt::DecryptArgs),
    /// Show an envelope's header without decrypting it.
    Inspect(crypt::InspectArgs),
    /// List the profile's providers, their digests, key ids and health.
    Providers(providers::ProvidersArgs),
    /// Provision the development KMS key, or rotate it.
    Infra(infra::InfraArgs),
    /// Rewrap data keys to another provider or key (Phase 3), ballots untouched.
    Rewrap(migrate::RewrapArgs),
    /// Count envelopes by provider and key id.
    Scan(migrate::ScanArgs),
    /// Check the audit log.
    Audit(audit::AuditArgs),
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Encrypt(cmd) => cmd.run(&load_profile(&args)?).await,
        Command::Decrypt(cmd) => cmd.run(&load_profile(&args)?).await,
        Command::Inspect(cmd) => cmd.run(),
        Command::Providers(cmd) => cmd.run(&load_profile(&args)?).await,
        Command::Infra(cmd) => cmd.run().await,
        Command::Rewrap(cmd) => cmd.run(&load_profile(&args)?).await,
        Command::Scan(cmd) => cmd.run(&load_profile(&args)?).await,
        Command::Audit(cmd) => cmd.run(),
    }
}

fn load_profile(args: &Args) -> anyhow::Result<Profile> {
    if !args.config.exists() {
        anyhow::bail!(
            "no configuration at {}; pass --config FILE or set KEYHOST_CONFIG",
            args.config.display()
        );
    }
    config::load(&args.config, args.profile.as_deref())
        .with_context(|| "cannot load the configuration".to_string())
}
