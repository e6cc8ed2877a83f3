//! Progress for people: a bar with rate and ETA on a terminal, a plain line
//! every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Summary;

const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    plain: Option<Mutex<PlainState>>,
}

struct PlainState {
    started: Instant,
    last: Instant,
    done: u64,
    total: Option<u64>,
    rewrapped: u64,
    failed: u64,
}

impl Progress {
    /// A bar on a terminal (stderr), plain lines elsewhere, nothing if `quiet`.
    pub fn new(total: Option<u64>, quiet: bool) -> Self {
        if quiet {
            return Self {
                bar: None,
                plain: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(total) => {
                    ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                }
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} envelopes  {per_sec}  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            return Self {
                bar: Some(bar),
                plain: None,
            };
        }
        let now = Instant::now();
        Self {
            bar: None,
            plain: Some(Mutex::new(PlainState {
                started: now,
                last: now,
                done: 0,
                total,
                rewrapped: 0,
                failed: 0,
            })),
        }
    }

    pub fn advance(&self, rows: u64, batch: &Summary) {
        if let Some(bar) = &self.bar {
            bar.inc(rows);
            bar.set_message(format!(
                "{} rewrapped, {} failed",
                batch.rewrapped,
                batch.failed.len()
            ));
        }
        if let Some(plain) = &self.plain {
            let mut s = plain.lock().unwrap_or_else(|p| p.into_inner());
            s.done += rows;
            s.rewrapped += batch.rewrapped;
            s.failed += batch.failed.len() as u64;
            if s.last.elapsed() >= PLAIN_EVERY {
                s.last = Instant::now();
                let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(0.001);
                let of = s.total.map(|t| format!("/{t}")).unwrap_or_default();
                let eta = s
                    .total
                    .map(|t| {
                        format!(
                            ", eta {:.0}s",
                            t.saturating_sub(s.done) as f64 / rate.max(0.001)
                        )
                    })
                    .unwrap_or_default();
                eprintln!(
                    "keyhost: {}{of} envelopes, {} rewrapped, {} failed, {rate:.0}/s{eta}",
                    s.done, s.rewrapped, s.failed
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
