//! Rewrapping envelopes kept as JSON lines: `{"id": ..., "envelope": "<base64>"}`.
//!
//! Every input line comes out, in order: rewrapped, or unchanged when it is
//! done, skipped or failed (failures are in the summary with their ids).
//! Other fields of a line are kept.

use std::io::{BufRead, Write};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use super::{MigrateError, Outcome, Progress, Rewrapper, ScanReport, Summary, rewrap_all};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Line {
    id: String,
    record: Option<serde_json::Map<String, Value>>,
    raw: String,
    envelope: Result<Vec<u8>, String>,
}

fn parse_line(number: usize, raw: String) -> Line {
    let fallback_id = format!("line {number}");
    let parsed: Result<serde_json::Map<String, Value>, String> =
        serde_json::from_str(&raw).map_err(|e| format!("not a JSON object: {e}"));
    match parsed {
        Err(error) => Line {
            id: fallback_id,
            record: None,
            raw,
            envelope: Err(error),
        },
        Ok(record) => {
            let id = match record.get("id") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => fallback_id,
            };
            let envelope = match record.get("envelope") {
                Some(Value::String(text)) => BASE64
                    .decode(text.trim())
                    .map_err(|e| format!("\"envelope\" is not base64: {e}")),
                _ => Err("the line has no \"envelope\" string".into()),
            };
            Line {
                id,
                record: Some(record),
                raw,
                envelope,
            }
        }
    }
}

fn read_batch(
    input: &mut dyn BufRead,
    first_number: usize,
    n: usize,
) -> Result<Vec<Line>, MigrateError> {
    let mut lines = Vec::with_capacity(n);
    let mut buf = String::new();
    while lines.len() < n {
        buf.clear();
        let read = input
            .read_line(&mut buf)
            .map_err(|e| MigrateError::Input(format!("cannot read the input: {e}")))?;
        if read == 0 {
            break;
        }
        let raw = buf.trim_end_matches(['\n', '\r']).to_owned();
        if raw.trim().is_empty() {
            continue;
        }
        lines.push(parse_line(first_number + lines.len(), raw));
    }
    Ok(lines)
}

/// Reads JSON lines from `input`, writes them rewrapped to `output`.
pub async fn rewrap(
    rewrapper: Arc<Rewrapper>,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    progress: &Progress,
) -> Result<Summary, MigrateError> {
    let started = std::time::Instant::now();
    let mut summary = Summary::default();
    let batch = rewrapper.options().batch.max(1);
    let mut number = 1;
    loop {
        let lines = read_batch(input, number, batch)?;
        if lines.is_empty() {
            break;
        }
        number += lines.len();
        let items: Vec<(String, Result<Vec<u8>, String>)> = lines
            .iter()
            .map(|l| (l.id.clone(), l.envelope.clone()))
            .collect();
        let outcomes = rewrap_all(&rewrapper, &items).await;
        let mut batch_summary = Summary::default();
        for (line, outcome) in lines.into_iter().zip(outcomes) {
            let text = match (&outcome, line.record) {
                (Outcome::Rewrapped(new), Some(mut record)) => {
                    record.insert("envelope".into(), Value::String(BASE64.encode(new)));
                    serde_json::to_string(&record).expect("a JSON object serializes")
                }
                _ => line.raw,
            };
            writeln!(output, "{text}").map_err(|source| MigrateError::Output {
                what: "the output".into(),
                source,
            })?;
            batch_summary.record(&line.id, &outcome);
        }
        progress.advance(items.len() as u64, &batch_summary);
        summary.absorb(batch_summary);
    }
    output.flush().map_err(|source| MigrateError::Output {
        what: "the output".into(),
        source,
    })?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Counts the envelopes of JSON lines by provider and key id.
pub fn scan(
    input: &mut dyn BufRead,
    current: Option<(&str, &str)>,
) -> Result<ScanReport, MigrateError> {
    let mut report = ScanReport::new(current);
    let mut number = 1;
    loop {
        let lines = read_batch(input, number, 1024)?;
        if lines.is_empty() {
            break;
        }
        number += lines.len();
        for line in lines {
            report.add(&line.id, line.envelope.as_deref().map_err(|e| e.clone()));
        }
    }
    Ok(report.finish())
}
