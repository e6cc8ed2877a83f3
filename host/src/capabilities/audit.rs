//! The audit log: one JSON line per provider operation and per refused
//! capability call, each line carrying the sha256 of the line before it, so
//! that an edited, removed, reordered or truncated line is detected.
//!
//! Lines never hold plaintext, keys or context values: the context appears
//! only as a digest.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::EncryptionContext;

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("cannot write the audit log {}: {source}; keyhost refuses operations it cannot audit", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the audit log {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit log {} line {line}: {problem}", path.display())]
    Broken {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Error,
    Denied,
}

/// What happened, before it is given a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub operation: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_sha256: Option<String>,
    pub outcome: Outcome,
    /// The error kind or the refusal, never a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_sha256: Option<String>,
}

impl AuditEvent {
    pub fn new(operation: &str, provider: &str, outcome: Outcome, duration: Duration) -> Self {
        Self {
            operation: operation.to_owned(),
            provider: provider.to_owned(),
            key_id: None,
            context_sha256: None,
            outcome,
            detail: None,
            duration_us: duration.as_micros().min(u64::MAX as u128) as u64,
            component_sha256: None,
        }
    }

    pub fn context(mut self, context: &EncryptionContext) -> Self {
        self.context_sha256 = Some(context_digest(context));
        self
    }
}

/// A line as written: the event with its sequence number, time and link.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    time: String,
    #[serde(flatten)]
    event: AuditEvent,
    prev: String,
}

/// sha256 over the context's entries, each length-prefixed.
pub fn context_digest(context: &EncryptionContext) -> String {
    let mut hash = Sha256::new();
    for (key, value) in context.iter() {
        hash.update((key.len() as u64).to_be_bytes());
        hash.update(key.as_bytes());
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// What to do when an event cannot be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse the operation, as Vault does when no audit device can record it.
    #[default]
    FailClosed,
    /// Warn on stderr and let the operation stand.
    Continue,
}

/// A handle to the audit log. Cheap to clone; with no file configured,
/// events go nowhere.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Mutex<Writer>>>,
    policy: FailurePolicy,
}

struct Writer {
    path: PathBuf,
    file: File,
    seq: u64,
    prev: String,
}

impl Audit {
    /// An audit handle that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Opens (or creates) the log at `path` and continues its chain.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(path, FailurePolicy::FailClosed)
    }

    pub fn open_with(path: &Path, policy: FailurePolicy) -> Result<Self, AuditError> {
        let read_err = |source| AuditError::Read {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(read_err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(read_err)?;
        let (seq, prev) = match last_line(&mut file).map_err(read_err)? {
            None => (0, GENESIS.to_owned()),
            Some(line) => {
                let parsed: Line = serde_json::from_str(&line).map_err(|e| AuditError::Broken {
                    path: path.to_owned(),
                    line: 0,
                    problem: format!(
                        "the last line is not an audit record ({e}); run `keyhost audit verify`"
                    ),
                })?;
                (parsed.seq + 1, line_hash(&line))
            }
        };
        Ok(Self {
            inner: Some(Arc::new(Mutex::new(Writer {
                path: path.to_owned(),
                file,
                seq,
                prev,
            }))),
            policy,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Appends `event`. An error means the event was not recorded.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut writer = inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = Line {
            seq: writer.seq,
            time: rfc3339(SystemTime::now()),
            event,
            prev: writer.prev.clone(),
        };
        let mut text = serde_json::to_string(&line).expect("audit lines serialize");
        let hash = line_hash(&text);
        text.push('\n');
        let Writer { file, path, .. } = &mut *writer;
        if let Err(source) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            let error = AuditError::Write {
                path: path.clone(),
                source,
            };
            return match self.policy {
                FailurePolicy::FailClosed => Err(error),
                FailurePolicy::Continue => {
                    eprintln!("keyhost: warning: {error}");
                    Ok(())
                }
            };
        }
        writer.seq += 1;
        writer.prev = hash;
        Ok(())
    }
}

fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The last complete line of `file`, reading at most its last 64 KiB.
fn last_line(file: &mut File) -> std::io::Result<Option<String>> {
    // A device or pipe has no last line to continue from.
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    Ok(tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::to_owned))
}

/// What `verify` found in a whole log.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub lines: u64,
    pub last_hash: String,
}

/// Checks every line's sequence number and link. The error names the first
/// line that breaks the chain.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Read {
        path: path.to_owned(),
        source,
    })?;
    let broken = |line: usize, problem: String| AuditError::Broken {
        path: path.to_owned(),
        line,
        problem,
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let line = text.lines().count();
        return Err(broken(
            line,
            "the line is cut short (truncated write or edit)".into(),
        ));
    }
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line: Line = serde_json::from_str(raw)
            .map_err(|e| broken(number, format!("not an audit record: {e}")))?;
        if line.seq != count {
            return Err(broken(
                number,
                format!(
                    "sequence number {} where {count} was expected (a line was removed or reordered)",
                    line.seq
                ),
            ));
        }
        if line.prev != prev {
            return Err(broken(
                number,
                "its prev hash does not match the line before it (that line was edited, removed or reordered)".into(),
            ));
        }
        prev = line_hash(raw);
        count += 1;
    }
    Ok(Verified {
        lines: count,
        last_hash: prev,
    })
}

/// `2026-12-03T10:53:25.123Z`, without a date library.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_log(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyhost-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("audit.jsonl")
    }

    fn event(op: &str) -> AuditEvent {
        AuditEvent::new(op, "env", Outcome::Ok, Duration::from_micros(12))
    }

    fn write_three(path: &Path) {
        let audit = Audit::open(path).unwrap();
        for op in ["wrap", "unwrap", "describe"] {
            audit.record(event(op)).unwrap();
        }
    }

    #[test]
    fn an_untouched_log_verifies_and_a_reopened_log_continues_the_chain() {
        let path = temp_log("chain");
        write_three(&path);
        write_three(&path);
        assert_eq!(verify(&path).unwrap().lines, 6);
    }

    #[test]
    fn an_edited_line_is_found_at_the_next_line() {
        let path = temp_log("edit");
        write_three(&path);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"unwrap\"", "\"wrap\"", 1);
        std::fs::write(&path, text).unwrap();
        let err = verify(&path).unwrap_err();
        assert!(matches!(err, AuditError::Broken { line: 3, .. }), "{err}");
    }

    #[test]
    fn a_removed_or_reordered_line_is_found() {
        let path = temp_log("remove");
        write_three(&path);
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(
            verify(&path).unwrap_err(),
            AuditError::Broken { line: 2, .. }
        ));
        std::fs::write(&path, format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2])).unwrap();
        assert!(matches!(
            verify(&path).unwrap_err(),
            AuditError::Broken { line: 1, .. }
        ));
    }

    #[test]
    fn a_truncated_log_is_found() {
        let path = temp_log("truncate");
        write_three(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        assert!(matches!(
            verify(&path).unwrap_err(),
            AuditError::Broken { line: 3, .. }
        ));
    }

    #[test]
    fn lines_hold_a_digest_of_the_context_and_never_its_values() {
        let path = temp_log("context");
        let audit = Audit::open(&path).unwrap();
        let context = EncryptionContext::from_pairs([("ballot_id", "b-secretive-17")]).unwrap();
        audit.record(event("wrap").context(&context)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("b-secretive-17"));
        assert!(text.contains(&context_digest(&context)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unwritable_log_fails_closed_unless_configured_to_continue() {
        // /dev/full accepts the open and refuses every write.
        let closed = Audit::open_with(Path::new("/dev/full"), FailurePolicy::FailClosed).unwrap();
        assert!(matches!(
            closed.record(event("wrap")),
            Err(AuditError::Write { .. })
        ));
        let open = Audit::open_with(Path::new("/dev/full"), FailurePolicy::Continue).unwrap();
        assert!(open.record(event("wrap")).is_ok());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_295_205_123);
        assert_eq!(rfc3339(t), "2026-12-03T10:53:25.123Z");
    }
}
