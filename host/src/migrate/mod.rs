//! Phase 3 of the migration: rewrap every envelope's data key from one
//! provider to another without touching the ballot ciphertext, and scan a
//! store for what is left.
//!
//! A *rewrap* replaces only an envelope's key section: the DEK is unwrapped
//! by the old provider (or, between keys of one KMS provider, re-encrypted
//! inside KMS) and wrapped by the new one, and the new wrapped key is checked
//! against the envelope's key commitment before anything is written. Stores
//! ([`postgres`], [`jsonl`]) decide how rows are read and written safely.

pub mod jsonl;
pub mod postgres;
mod progress;
mod scan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub use progress::Progress;
pub use scan::{KeyCount, ScanReport};

use crate::envelope::{Envelope, KeySection};
use crate::error::Error;
use crate::keyhost::Keyhost;
use crate::runtime::provider::WrappedKey;
use crate::runtime::{Operation, Provider};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    #[error("{0}")]
    Keyhost(#[from] Error),
    #[error("database: {message}")]
    Database { message: String },
    #[error("{0}")]
    Input(String),
    #[error("cannot write {what}: {source}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(error: tokio_postgres::Error) -> Self {
        let message = match error.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => {
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    source = cause.source();
                }
                text
            }
        };
        MigrateError::Database { message }
    }
}

/// Which envelopes a rewrap takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Envelopes wrapped by this provider.
    Provider(String),
    /// Every envelope not already on the destination's current key.
    NotOnCurrentKey,
}

/// How a rewrap runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub selection: Selection,
    /// Rows or lines worked on at once.
    pub concurrency: usize,
    /// KMS requests per second, over all rows; none for no cap.
    pub max_rps: Option<f64>,
    /// Rows per transaction.
    pub batch: usize,
    pub dry_run: bool,
    /// Unwrap each new wrapped key and check it against the commitment
    /// before writing.
    pub verify: bool,
    /// The same check after a re-encryption inside KMS. Off by default: it
    /// would bring the plaintext DEK to the host, which re-encryption avoids.
    pub verify_re_encrypt: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            selection: Selection::NotOnCurrentKey,
            concurrency: 16,
            max_rps: None,
            batch: 200,
            dry_run: false,
            verify: true,
            verify_re_encrypt: false,
        }
    }
}

/// What happened to one envelope.
#[derive(Debug)]
pub enum Outcome {
    /// Rewrapped; the new envelope bytes.
    Rewrapped(Vec<u8>),
    /// Would be rewrapped (dry run).
    WouldRewrap,
    /// Already on the destination's current key.
    AlreadyDone,
    /// Not selected (another provider than `--from`).
    Skipped,
    Failed(String),
}

/// The tally of a run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    pub rewrapped: u64,
    pub would_rewrap: u64,
    pub already_done: u64,
    pub skipped: u64,
    /// Rows another writer changed between read and write; left for a rerun.
    pub conflicts: u64,
    pub failed: Vec<Failure>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub id: String,
    pub error: String,
}

impl Summary {
    pub fn processed(&self) -> u64 {
        self.rewrapped
            + self.would_rewrap
            + self.already_done
            + self.skipped
            + self.conflicts
            + self.failed.len() as u64
    }

    /// Adds a batch's tally to this one.
    pub(crate) fn absorb(&mut self, batch: Summary) {
        self.rewrapped += batch.rewrapped;
        self.would_rewrap += batch.would_rewrap;
        self.already_done += batch.already_done;
        self.skipped += batch.skipped;
        self.conflicts += batch.conflicts;
        self.failed.extend(batch.failed);
    }

    pub(crate) fn record(&mut self, id: &str, outcome: &Outcome) {
        match outcome {
            Outcome::Rewrapped(_) => self.rewrapped += 1,
            Outcome::WouldRewrap => self.would_rewrap += 1,
            Outcome::AlreadyDone => self.already_done += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed(error) => self.failed.push(Failure {
                id: id.to_owned(),
                error: error.clone(),
            }),
        }
    }
}

/// Spaces KMS requests evenly so a run stays under the account's quota.
struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// A rewrap from the profile's providers to `to`, ready to apply to envelopes.
pub struct Rewrapper {
    keyhost: Arc<Keyhost>,
    to: String,
    to_key_id: String,
    re_encrypt: bool,
    options: Options,
    limiter: Option<RateLimiter>,
}

impl Rewrapper {
    /// Asks the destination for its current key, so the run knows what is done.
    pub async fn new(
        keyhost: Arc<Keyhost>,
        to: &str,
        options: Options,
    ) -> Result<Self, MigrateError> {
        let destination = keyhost.provider(to)?;
        let description = destination
            .description()
            .await
            .map_err(Error::call(to, Operation::Describe))?
            .clone();
        if let Selection::Provider(from) = &options.selection {
            keyhost.provider(from)?;
        }
        let limiter = options.max_rps.map(RateLimiter::new);
        Ok(Self {
            to: to.to_owned(),
            to_key_id: description.key_id,
            re_encrypt: description.re_encrypt,
            keyhost,
            options,
            limiter,
        })
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The destination's current key id.
    pub fn destination_key_id(&self) -> &str {
        &self.to_key_id
    }

    fn destination(&self) -> &Provider {
        self.keyhost.provider(&self.to).expect("checked in new")
    }

    async fn throttle(&self, provider: &Provider) {
        if let Some(limiter) = &self.limiter
            && provider.has_http_grant()
        {
            limiter.acquire().await;
        }
    }

    /// Rewraps one stored envelope, never failing the run: errors become
    /// [`Outcome::Failed`] with a message that names what went wrong.
    pub async fn rewrap(&self, stored: &[u8]) -> Outcome {
        let envelope = match Envelope::parse(stored) {
            Ok(envelope) => envelope,
            Err(e) => return Outcome::Failed(format!("not a valid envelope: {e}")),
        };
        let key = envelope.key_section();
        if key.provider == self.to && key.key_id == self.to_key_id {
            return Outcome::AlreadyDone;
        }
        if let Selection::Provider(from) = &self.options.selection
            && &key.provider != from
        {
            return Outcome::Skipped;
        }
        if self.options.dry_run {
            return Outcome::WouldRewrap;
        }
        match self.rewrap_key(&envelope).await {
            Ok(new_key) => match envelope.with_key_section(new_key) {
                Ok(rewrapped) => Outcome::Rewrapped(rewrapped.to_bytes()),
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    async fn rewrap_key(&self, envelope: &Envelope) -> Result<KeySection, Error> {
        let key = envelope.key_section();
        let context = envelope.context();
        let destination = self.destination();
        let wrapped = WrappedKey {
            key_id: key.key_id.clone(),
            ciphertext: key.wrapped.clone(),
        };
        let new = if key.provider == self.to && self.re_encrypt {
            // One KMS provider, another key: the DEK never leaves KMS.
            self.throttle(destination).await;
            let new = destination
                .re_encrypt(&wrapped, context, Some(&self.to_key_id))
                .await
                .map_err(Error::call(&self.to, Operation::ReEncrypt))?;
            if self.options.verify_re_encrypt {
                self.verify(envelope, &new).await?;
            }
            new
        } else {
            let source = self.keyhost.provider(&key.provider)?;
            self.throttle(source).await;
            let dek = self.keyhost.unwrap_key(envelope).await?;
            self.throttle(destination).await;
            let new = destination
                .wrap(&dek, context)
                .await
                .map_err(Error::call(&self.to, Operation::Wrap))?;
            if self.options.verify {
                self.verify(envelope, &new).await?;
            }
            new
        };
        Ok(KeySection {
            provider: self.to.clone(),
            key_id: new.key_id,
            wrapped: new.ciphertext,
        })
    }

    /// The new wrapped key must unwrap to the DEK the envelope commits to.
    async fn verify(&self, envelope: &Envelope, new: &WrappedKey) -> Result<(), Error> {
        let destination = self.destination();
        self.throttle(destination).await;
        let dek = destination
            .unwrap(new, envelope.context())
            .await
            .map_err(Error::call(&self.to, Operation::Unwrap))?;
        envelope.check_commitment(&dek)?;
        Ok(())
    }
}

/// Rewraps `items` with at most `concurrency` at once; the outcomes keep
/// the items' order. An item that could not be read is failed as it is.
pub(super) async fn rewrap_all(
    rewrapper: &Arc<Rewrapper>,
    items: &[(String, Result<Vec<u8>, String>)],
) -> Vec<Outcome> {
    let concurrency = rewrapper.options().concurrency.max(1);
    let mut outcomes: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    while next < items.len() || !tasks.is_empty() {
        while next < items.len() && tasks.len() < concurrency {
            let index = next;
            next += 1;
            match &items[index].1 {
                Err(problem) => outcomes[index] = Some(Outcome::Failed(problem.clone())),
                Ok(bytes) => {
                    let rewrapper = rewrapper.clone();
                    let bytes = bytes.clone();
                    tasks.spawn(async move { (index, rewrapper.rewrap(&bytes).await) });
                }
            }
        }
        // A task that panicked leaves its slot empty: reported as failed below.
        if let Some(Ok((index, outcome))) = tasks.join_next().await {
            outcomes[index] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed("not processed".into())))
        .collect()
}
