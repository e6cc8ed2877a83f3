//! The `keyhost` binary end to end: arguments, files, stdin/stdout, exit
//! codes and one-line errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyhost_tests::*;

/// A scratch directory with a keyhost.toml whose env provider reads
/// `OPONN_MASTER_KEY`, and the key to give it.
struct Cli {
    scratch: Scratch,
    config: PathBuf,
    master_key: String,
}

impl Cli {
    fn new() -> Self {
        let scratch = Scratch::new();
        let toml = format!(
            "default_profile = \"legacy\"\n{}\n[profiles.legacy]\nencrypt = \"env\"\n",
            provider_table(
                "env",
                &plugin("env"),
                "secrets.master-key = { env = \"OPONN_MASTER_KEY\" }"
            )
        );
        let config = scratch.write("keyhost.toml", toml);
        Self {
            scratch,
            config,
            master_key: random_master_key(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(keyhost_bin());
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("OPONN_MASTER_KEY", &self.master_key)
            .env_remove("KEYHOST_PROFILE")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.path(name)
    }
}

fn ok(output: &Output) -> &Output {
    assert!(
        output.status.success(),
        "keyhost failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The failure's stderr, which must be exactly one line.
fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "keyhost succeeded unexpectedly");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one line on stderr: {stderr:?}"
    );
    assert!(stderr.starts_with("keyhost: error: "), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn files_round_trip_through_encrypt_and_decrypt() {
    let cli = Cli::new();
    let ballot = cli.scratch.write("ballot.json", br#"{"mayor":"Ada"}"#);
    let (envelope, out) = (cli.path("ballot.khe"), cli.path("ballot.out"));
    ok(&cli.run(&[
        "encrypt",
        "-c",
        "ballot_id=b-1",
        "--in",
        s(&ballot),
        "--out",
        s(&envelope),
    ]));
    assert!(std::fs::read(&envelope).unwrap().starts_with(b"KHEV"));
    ok(&cli.run(&[
        "decrypt",
        "-c",
        "ballot_id=b-1",
        "--in",
        s(&envelope),
        "--out",
        s(&out),
    ]));
    assert_eq!(std::fs::read(&out).unwrap(), br#"{"mayor":"Ada"}"#);
}

#[test]
fn armored_envelopes_pass_through_stdin_and_stdout() {
    let cli = Cli::new();
    let armored = ok(&cli.run_with_stdin(
        &["encrypt", "--armor", "-c", "ballot_id=b-2"],
        b"ballot two",
    ))
    .stdout
    .clone();
    assert!(armored.iter().all(|b| b.is_ascii()), "armor is text");
    let plaintext = ok(&cli.run_with_stdin(&["decrypt", "-c", "ballot_id=b-2"], &armored))
        .stdout
        .clone();
    assert_eq!(plaintext, b"ballot two");
}

#[test]
fn inspect_shows_the_header_without_the_key() {
    let cli = Cli::new();
    let envelope = ok(&cli.run_with_stdin(
        &[
            "encrypt",
            "--armor",
            "-c",
            "ballot_id=b-3",
            "-c",
            "election_id=e-1",
        ],
        b"x",
    ))
    .stdout
    .clone();
    let report = ok(&Command::new(keyhost_bin())
        .args(["inspect", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map(|mut c| {
            c.stdin.take().unwrap().write_all(&envelope).unwrap();
            c.wait_with_output().unwrap()
        })
        .unwrap())
    .stdout
    .clone();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["provider"], "env");
    assert_eq!(report["context"]["ballot_id"], "b-3");
    assert_eq!(report["context"]["election_id"], "e-1");
    assert_eq!(report["plaintext_bytes"], 1);
    assert!(
        report["key_id"]
            .as_str()
            .unwrap()
            .starts_with("env:sha256:")
    );
    assert_eq!(report["wrapped_key_bytes"], 60);
}

#[test]
fn a_wrong_context_fails_with_one_clear_line() {
    let cli = Cli::new();
    let envelope = ok(&cli.run_with_stdin(&["encrypt", "--armor", "-c", "ballot_id=b-4"], b"x"))
        .stdout
        .clone();
    let stderr = failure(&cli.run_with_stdin(&["decrypt", "-c", "ballot_id=b-5"], &envelope));
    assert!(
        stderr.contains("bound to context {ballot_id=b-4}"),
        "{stderr}"
    );
    let stderr = failure(&cli.run_with_stdin(&["decrypt"], &envelope));
    assert!(
        stderr.contains("pass it with --context") && stderr.contains("ballot_id"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_envelope_fails_with_one_clear_line() {
    let cli = Cli::new();
    let stderr = failure(&cli.run_with_stdin(&["decrypt", "-c", "a=b"], b"not an envelope at all"));
    assert!(
        stderr.contains("neither a binary envelope nor base64"),
        "{stderr}"
    );
    let stderr = failure(&cli.run_with_stdin(&["inspect"], b"KHEV\x01"));
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn a_missing_master_key_names_the_variable() {
    let cli = Cli::new();
    let output = cli
        .command(&["encrypt", "-c", "a=b"])
        .env_remove("OPONN_MASTER_KEY")
        .output()
        .unwrap();
    let stderr = failure(&output);
    assert!(
        stderr.contains("environment variable OPONN_MASTER_KEY is not set"),
        "{stderr}"
    );
}

#[test]
fn a_corrupt_config_names_the_file() {
    let cli = Cli::new();
    std::fs::write(&cli.config, "[providers.env\ncomponent = 1").unwrap();
    let stderr = failure(&cli.run(&["providers"]));
    assert!(stderr.contains("keyhost.toml"), "{stderr}");
}

#[test]
fn an_unknown_profile_lists_the_known_ones() {
    let cli = Cli::new();
    let stderr = failure(&cli.run(&["--profile", "prod", "providers"]));
    assert!(
        stderr.contains("profiles.prod") && stderr.contains("legacy"),
        "{stderr}"
    );
}

#[test]
fn providers_reports_digests_key_ids_and_health() {
    let cli = Cli::new();
    let output = ok(&cli.run(&["providers", "--json"])).stdout.clone();
    let report: serde_json::Value = serde_json::from_slice(&output).unwrap();
    let env = &report["providers"][0];
    assert_eq!(env["name"], "env");
    assert_eq!(env["role"], "encrypt");
    assert_eq!(env["healthy"], true);
    assert_eq!(env["sha256"], sha256_file(&plugin("env")));

    let output = cli
        .command(&["providers", "--json"])
        .env_remove("OPONN_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "an unhealthy provider makes the command fail"
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["providers"][0]["healthy"], false);
}

#[test]
fn a_failed_write_leaves_no_partial_output_file() {
    let cli = Cli::new();
    let out = cli.path("missing-dir/ballot.khe");
    let stderr = failure(&cli.run_with_stdin(&["encrypt", "-c", "a=b", "--out", s(&out)], b"x"));
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(!out.exists());
}
