//! Progress for people: a bar with rate and ETA on a terminal, a plain line
//! every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Summary;

const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    output: Output,
    state: Mutex<State>,
}

enum Output {
    Quiet,
    Bar(ProgressBar),
    Plain,
}

/// Totals so far, for the bar's message and the plain lines.
struct State {
    started: Instant,
    last_line: Instant,
    done: u64,
    total: Option<u64>,
    rewrapped: u64,
    failed: u64,
}

impl Progress {
    /// A bar on a terminal (stderr), plain lines elsewhere, nothing if `quiet`.
    pub fn new(total: Option<u64>, quiet: bool) -> Self {
        let output = if quiet {
            Output::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} envelopes  {per_sec}  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Output::Bar(bar)
        } else {
            Output::Plain
        };
        let now = Instant::now();
        Self {
            output,
            state: Mutex::new(State {
                started: now,
                last_line: now,
                done: 0,
                total,
                rewrapped: 0,
                failed: 0,
            }),
        }
    }

    pub fn advance(&self, rows: u64, batch: &Summary) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += rows;
        s.rewrapped += batch.rewrapped;
        s.failed += batch.failed.len() as u64;
        match &self.output {
            Output::Quiet => {}
            Output::Bar(bar) => {
                bar.inc(rows);
                bar.set_message(format!("{} rewrapped, {} failed", s.rewrapped, s.failed));
            }
            Output::Plain if s.last_line.elapsed() >= PLAIN_EVERY => {
                s.last_line = Instant::now();
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
            Output::Plain => {}
        }
    }

    pub fn finish(&self) {
        if let Output::Bar(bar) = &self.output {
            bar.finish_and_clear();
        }
    }
}
