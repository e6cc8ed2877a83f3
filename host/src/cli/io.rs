//! Reading input and writing output for the commands: stdin/stdout by
//! default, files written whole or not at all, envelopes binary or armored.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use keyhost::envelope::Envelope;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Everything from `path`, or from stdin when none.
pub fn read_input(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match path {
        Some(path) => {
            bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read standard input")?;
        }
    }
    Ok(bytes)
}

/// A binary envelope, or one armored as base64 text.
pub fn parse_envelope(input: &[u8]) -> anyhow::Result<Envelope> {
    if input.starts_with(b"KHEV") {
        return Ok(Envelope::parse(input)?);
    }
    let text: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    match BASE64.decode(&text) {
        Ok(bytes) => Ok(Envelope::parse(&bytes)?),
        Err(_) => bail!("input is neither a binary envelope nor base64 envelope text (--armor)"),
    }
}

pub fn armor(bytes: &[u8]) -> Vec<u8> {
    let mut text = BASE64.encode(bytes).into_bytes();
    text.push(b'\n');
    text
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a
/// failure never leaves half a file; or to stdout when there is no path.
pub fn write_output(path: Option<&PathBuf>, bytes: &[u8], binary: bool) -> anyhow::Result<()> {
    match path {
        Some(path) => {
            let tmp = path.with_file_name(format!(
                ".{}.keyhost-tmp",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("out")
            ));
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, path))
                .with_context(|| format!("cannot write {}", path.display()))
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if binary && stdout.is_terminal() {
                bail!(
                    "refusing to write a binary envelope to a terminal; pass --armor or --out FILE"
                );
            }
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .context("cannot write standard output")
        }
    }
}
