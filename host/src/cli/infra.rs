//! `infra up` and `infra rotate`: the development KMS key in LocalStack (or,
//! with `--aws`, in a real account).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use keyhost::infra::{self, DEFAULT_ALIAS, KEY_ID_VAR, KmsTarget};

#[derive(Args, Debug)]
pub struct InfraArgs {
    #[command(subcommand)]
    command: InfraCommand,
    /// KMS endpoint (default: LOCALSTACK_ENDPOINT, AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, then LocalStack on 127.0.0.1:4566).
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// AWS region.
    #[arg(long, global = true, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Use real AWS: the region's endpoint and aws-config's credential chain.
    #[arg(long, global = true)]
    aws: bool,
    /// The key's alias.
    #[arg(long, global = true, default_value = DEFAULT_ALIAS)]
    alias: String,
    /// The env file that receives KMS_KEY_ID.
    #[arg(long, global = true, default_value = ".env.local")]
    env_file: PathBuf,
}

#[derive(Subcommand, Debug)]
enum InfraCommand {
    /// Create (or find) the key under its alias, enable rotation, write KMS_KEY_ID.
    Up,
    /// Rotate the key now (RotateKeyOnDemand); old envelopes still decrypt.
    Rotate {
        /// Key to rotate (default: KMS_KEY_ID from the environment or the env file, then the alias).
        #[arg(long)]
        key_id: Option<String>,
    },
}

impl InfraArgs {
    fn target(&self) -> KmsTarget {
        if self.aws {
            return KmsTarget {
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
                credentials: None,
            };
        }
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| std::env::var("LOCALSTACK_ENDPOINT").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_KMS").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:4566".into());
        let access_key =
            std::env::var("LOCALSTACK_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
        let mut target = KmsTarget::local(&endpoint, &access_key);
        target.region = self.region.clone();
        target
    }

    pub async fn run(&self) -> anyhow::Result<ExitCode> {
        let target = self.target();
        match &self.command {
            InfraCommand::Up => {
                let key = infra::ensure_key(&target, &self.alias).await?;
                infra::write_key_id(&self.env_file, &key.arn)?;
                let verb = if key.created { "created" } else { "found" };
                println!("{verb} {} -> {}", self.alias, key.arn);
                println!(
                    "wrote {KEY_ID_VAR}={} to {}",
                    key.arn,
                    self.env_file.display()
                );
            }
            InfraCommand::Rotate { key_id } => {
                let key_id = key_id
                    .clone()
                    .or_else(|| std::env::var(KEY_ID_VAR).ok())
                    .or_else(|| {
                        let text = std::fs::read_to_string(&self.env_file).ok()?;
                        keyhost::config::parse_env_file(&text)
                            .into_iter()
                            .find(|(k, _)| k == KEY_ID_VAR)
                            .map(|(_, v)| v)
                    })
                    .unwrap_or_else(|| self.alias.clone());
                infra::rotate(&target, &key_id).await?;
                println!(
                    "rotated {key_id}: new envelopes use the new backing key; old ones still decrypt"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
