//! `rewrap` and `scan`: Phase 3 of the migration and its gate.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use keyhost::Keyhost;
use keyhost::config::Profile;
use keyhost::migrate::{self, Options, Progress, Rewrapper, ScanReport, Selection, Summary};

/// Where the envelopes are: a Postgres table or JSON lines.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Postgres connection string (or DATABASE_URL).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Table holding the envelopes, as name or schema.name.
    #[arg(long)]
    table: Option<String>,
    /// The table's id column.
    #[arg(long, default_value = "id")]
    id_column: String,
    /// The table's envelope column (bytea, or base64 text).
    #[arg(long, default_value = "envelope")]
    envelope_column: String,
    /// JSON lines {"id": ..., "envelope": "<base64>"}; `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with = "table")]
    jsonl: Option<PathBuf>,
}

enum Store {
    Table(migrate::postgres::TableSpec),
    Jsonl(Option<PathBuf>),
}

impl StoreArgs {
    fn store(&self) -> anyhow::Result<Store> {
        if let Some(table) = &self.table {
            let Some(url) = &self.database_url else {
                bail!(
                    "--table needs --database-url (or DATABASE_URL), such as postgres://user@127.0.0.1:5432/db"
                );
            };
            return Ok(Store::Table(migrate::postgres::TableSpec {
                database_url: url.clone(),
                table: table.clone(),
                id_column: self.id_column.clone(),
                envelope_column: self.envelope_column.clone(),
            }));
        }
        match &self.jsonl {
            Some(path) if path.as_os_str() == "-" => Ok(Store::Jsonl(None)),
            Some(path) => Ok(Store::Jsonl(Some(path.clone()))),
            None => bail!(
                "say where the envelopes are: --table NAME (with --database-url) or --jsonl FILE|-"
            ),
        }
    }
}

fn open_input(path: &Option<PathBuf>) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    Ok(match path {
        None => Box::new(BufReader::new(std::io::stdin())),
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
    })
}

#[derive(Args, Debug)]
pub struct RewrapArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Rewrap envelopes of this provider (default: every envelope not on the destination's current key).
    #[arg(long)]
    from: Option<String>,
    /// Provider to wrap with (default: the profile's encrypting provider).
    #[arg(long)]
    to: Option<String>,
    /// Envelopes worked on at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Most KMS requests per second, over the whole run (KMS quotas are per account).
    #[arg(long)]
    max_rps: Option<f64>,
    /// Rows per transaction.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Count what would be rewrapped; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Skip unwrapping each new key to check it against the envelope's commitment.
    #[arg(long)]
    no_verify: bool,
    /// Also check keys re-encrypted inside KMS (brings the DEK to the host).
    #[arg(long)]
    verify_re_encrypt: bool,
    /// With --jsonl: write the rewrapped lines here (default stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

impl RewrapArgs {
    pub async fn run(&self, profile: &Profile) -> anyhow::Result<ExitCode> {
        let store = self.store.store()?;
        let keyhost = Arc::new(Keyhost::open(profile)?);
        let to = self.to.clone().unwrap_or_else(|| profile.encrypt.clone());
        let options = Options {
            selection: match &self.from {
                Some(from) => Selection::Provider(from.clone()),
                None => Selection::NotOnCurrentKey,
            },
            concurrency: self.concurrency.max(1),
            max_rps: self.max_rps.filter(|r| *r > 0.0),
            batch: self.batch.max(1),
            dry_run: self.dry_run,
            verify: !self.no_verify,
            verify_re_encrypt: self.verify_re_encrypt,
        };
        let rewrapper = Arc::new(Rewrapper::new(keyhost, &to, options).await?);
        let (summary, summary_to_stderr) = match store {
            Store::Table(spec) => {
                let mut table = migrate::postgres::Table::open(&spec).await?;
                let progress = Progress::new(Some(table.count().await?), self.quiet);
                let summary = table.rewrap(rewrapper, &progress).await?;
                progress.finish();
                (summary, false)
            }
            Store::Jsonl(path) => {
                let mut input = open_input(&path)?;
                let progress = Progress::new(None, self.quiet);
                let summary = match &self.out {
                    None => {
                        let mut stdout = std::io::stdout().lock();
                        migrate::jsonl::rewrap(rewrapper, &mut input, &mut stdout, &progress)
                            .await?
                    }
                    Some(out) => {
                        // Written whole, then renamed: a failed run leaves no partial file.
                        let tmp = out.with_extension("keyhost-tmp");
                        let mut file = std::io::BufWriter::new(
                            std::fs::File::create(&tmp)
                                .with_context(|| format!("cannot create {}", tmp.display()))?,
                        );
                        let summary =
                            migrate::jsonl::rewrap(rewrapper, &mut input, &mut file, &progress)
                                .await?;
                        file.flush()?;
                        std::fs::rename(&tmp, out)
                            .with_context(|| format!("cannot write {}", out.display()))?;
                        summary
                    }
                };
                progress.finish();
                (summary, self.out.is_none())
            }
        };
        print_summary(&summary, self.json, self.dry_run, summary_to_stderr)?;
        Ok(if summary.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

fn print_summary(
    summary: &Summary,
    json: bool,
    dry_run: bool,
    to_stderr: bool,
) -> anyhow::Result<()> {
    let text = if json {
        serde_json::to_string_pretty(summary)? + "\n"
    } else {
        let mut text = String::new();
        if dry_run {
            text += &format!("dry run: {} would be rewrapped, ", summary.would_rewrap);
        } else {
            text += &format!("rewrapped {}, ", summary.rewrapped);
        }
        text += &format!(
            "already done {}, skipped {}, changed concurrently {}, failed {} ({:.1}s)\n",
            summary.already_done,
            summary.skipped,
            summary.conflicts,
            summary.failed.len(),
            summary.seconds
        );
        for failure in &summary.failed {
            text += &format!("failed {}: {}\n", failure.id, failure.error);
        }
        if summary.conflicts > 0 {
            text += "rows changed concurrently were left as they are; run again to finish them\n";
        }
        text
    };
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Exit non-zero if any envelope is still wrapped by this provider (the gate before Phase 4).
    #[arg(long, value_name = "PROVIDER")]
    require_none: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ScanArgs {
    pub async fn run(&self, profile: &Profile) -> anyhow::Result<ExitCode> {
        let store = self.store.store()?;
        // The current key is the encrypting provider's; scanning still works
        // when it cannot be asked (then nothing counts as current).
        let keyhost = Keyhost::open(profile)?;
        let current = keyhost
            .encrypting_provider()
            .description()
            .await
            .ok()
            .map(|d| d.key_id.clone());
        let current = current
            .as_deref()
            .map(|key| (profile.encrypt.as_str(), key));
        let report: ScanReport = match store {
            Store::Table(spec) => {
                migrate::postgres::Table::open(&spec)
                    .await?
                    .scan(current)
                    .await?
            }
            Store::Jsonl(path) => migrate::jsonl::scan(&mut open_input(&path)?, current)?,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "{} envelopes, {} not on the current key",
                report.total, report.not_current
            );
            for key in &report.keys {
                let mark = if key.current { " (current)" } else { "" };
                println!(
                    "{:>10}  {:<12} {}{mark}",
                    key.envelopes, key.provider, key.key_id
                );
            }
            for bad in &report.unreadable {
                println!("unreadable {}: {}", bad.id, bad.error);
            }
        }
        if let Some(provider) = &self.require_none {
            let left = report.count_for(provider);
            if left > 0 {
                eprintln!(
                    "keyhost: error: {left} envelopes are still wrapped by {provider}; run `keyhost rewrap --from {provider}` before removing it"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
