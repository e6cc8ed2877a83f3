//! `keyhost:provider/log`: diagnostics into the host's stderr, tagged with
//! the provider, cleaned of control characters, shortened, and rate-limited
//! per operation so that a guest cannot flood the host.

use std::sync::OnceLock;

use crate::runtime::HostState;
use crate::runtime::bindings::log::{Host, Level};

/// Longest message kept, in bytes.
const MAX_MESSAGE_BYTES: usize = 512;

/// The lowest level shown, from `KEYHOST_LOG` (debug, info, warn, error).
fn threshold() -> u8 {
    static LEVEL: OnceLock<u8> = OnceLock::new();
    *LEVEL.get_or_init(|| match std::env::var("KEYHOST_LOG").as_deref() {
        Ok("debug") => 0,
        Ok("info") => 1,
        Ok("error") => 3,
        _ => 2,
    })
}

fn rank(level: Level) -> (u8, &'static str) {
    match level {
        Level::Debug => (0, "debug"),
        Level::Info => (1, "info"),
        Level::Warn => (2, "warn"),
        Level::Error => (3, "error"),
    }
}

/// Printable text only, cut at a character boundary.
pub(crate) fn clean(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES));
    for c in message.chars() {
        if out.len() + c.len_utf8() > MAX_MESSAGE_BYTES {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

impl Host for HostState {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        if self.log_budget == 0 {
            self.log_dropped = self.log_dropped.saturating_add(1);
            return Ok(());
        }
        self.log_budget -= 1;
        let (rank, name) = rank(level);
        if rank >= threshold() {
            eprintln!(
                "keyhost: provider {}: {name}: {}",
                self.grants.provider,
                clean(&message)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn control_characters_cannot_forge_log_lines() {
        assert_eq!(clean("ok\nkeyhost: fake\x1b[31m"), "ok keyhost: fake [31m");
    }

    #[test]
    fn long_messages_are_cut() {
        let cleaned = clean(&"é".repeat(1000));
        assert!(cleaned.len() <= super::MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(cleaned.ends_with('…'));
    }
}
