//! `audit verify`: check the audit log's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Detect an edited, removed, reordered or truncated line, and say where.
    Verify {
        /// The audit log (JSON lines).
        file: PathBuf,
    },
}

impl AuditArgs {
    pub fn run(&self) -> anyhow::Result<ExitCode> {
        match &self.command {
            AuditCommand::Verify { file } => {
                let verified = keyhost::capabilities::audit::verify(file)?;
                println!(
                    "{}: {} lines, chain intact, last hash {}",
                    file.display(),
                    verified.lines,
                    verified.last_hash
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
