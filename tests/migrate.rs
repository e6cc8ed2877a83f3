//! Phase 3 and 4 against a real Postgres and a real LocalStack: rewrap every
//! env-key envelope to KMS without touching ballots and without losing one.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use keyhost::Keyhost;
use keyhost::config::{self, ProcessEnv};
use keyhost::envelope::{EncryptionContext, Envelope};
use keyhost::migrate::postgres::{Table, TableSpec};
use keyhost::migrate::{Options, Progress, Rewrapper, Selection};
use keyhost_tests::localstack::LocalStack;
use keyhost_tests::postgres::{TestSchema, database_url};
use keyhost_tests::*;

struct Migration {
    localstack: LocalStack,
    scratch: Scratch,
    config: PathBuf,
}

impl Migration {
    async fn start() -> Self {
        Self::start_with_grant_timeouts(3000, 1).await
    }

    async fn start_with_grant_timeouts(request_timeout_ms: u64, retries: u32) -> Self {
        let localstack = LocalStack::start();
        let key = keyhost::infra::ensure_key(&localstack.target(), "alias/oponn-ballot-kek")
            .await
            .unwrap();
        let scratch = Scratch::new();
        let master_key = scratch.master_key_file("master.key");
        let grant = localstack
            .http_grant(&[
                "GenerateDataKey",
                "Encrypt",
                "Decrypt",
                "ReEncrypt",
                "DescribeKey",
            ])
            .replace(
                "request_timeout_ms = 3000",
                &format!("request_timeout_ms = {request_timeout_ms}"),
            )
            .replace("max_retries = 1", &format!("max_retries = {retries}"));
        let toml = format!(
            "[runtime]\ncache_dir = {:?}\n{}\n{}\n\
             [profiles.legacy]\nencrypt = \"env\"\n\
             [profiles.dev]\nencrypt = \"localstack\"\ndecrypt_only = [\"env\"]\n\
             [profiles.kms-only]\nencrypt = \"localstack\"\n",
            scratch.path("cache"),
            env_provider_table(&master_key, ""),
            provider_table(
                "localstack",
                &plugin("localstack"),
                &format!(
                    "config = {{ key_id = \"{}\" }}\nlimits = {{ deadline_ms = 20000 }}\n{grant}",
                    key.arn
                )
            ),
        );
        let config = scratch.write("keyhost.toml", toml);
        Self {
            localstack,
            scratch,
            config,
        }
    }

    fn keyhost(&self, profile: &str) -> Keyhost {
        let text = std::fs::read_to_string(&self.config).unwrap();
        Keyhost::open(&config::parse(&self.config, &text, Some(profile), &ProcessEnv).unwrap())
            .unwrap()
    }

    /// A `ballots` table of `n` env-key envelopes; returns each id's plaintext.
    async fn seed(&self, schema: &TestSchema, n: usize, column_type: &str) -> Vec<(i64, Vec<u8>)> {
        schema
            .client
            .batch_execute(&format!(
                "CREATE TABLE {} (id bigint PRIMARY KEY, envelope {column_type} NOT NULL)",
                schema.table("ballots")
            ))
            .await
            .unwrap();
        let legacy = self.keyhost("legacy");
        let insert = format!(
            "INSERT INTO {} (id, envelope) VALUES ($1, $2)",
            schema.table("ballots")
        );
        let mut ballots = Vec::with_capacity(n);
        for id in 1..=n as i64 {
            let plaintext =
                format!("{{\"ballot\": {id}, \"choice\": \"measure-{}\"}}", id % 7).into_bytes();
            let envelope = legacy
                .encrypt(context(id), &plaintext)
                .await
                .unwrap()
                .to_bytes();
            if column_type == "bytea" {
                schema
                    .client
                    .execute(&insert, &[&id, &envelope])
                    .await
                    .unwrap();
            } else {
                let text = base64_encode(&envelope);
                schema.client.execute(&insert, &[&id, &text]).await.unwrap();
            }
            ballots.push((id, plaintext));
        }
        ballots
    }

    fn rewrap_command(&self, schema: &TestSchema, extra: &[&str]) -> Command {
        let mut command = Command::new(keyhost_bin());
        command
            .arg("--config")
            .arg(&self.config)
            .args([
                "--profile",
                "dev",
                "rewrap",
                "--database-url",
                &database_url(),
                "--table",
            ])
            .arg(schema.table("ballots"))
            .args(["--from", "env", "--json", "--quiet"])
            .args(extra)
            .env_remove("KEYHOST_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn rewrap(&self, schema: &TestSchema, extra: &[&str]) -> (Output, serde_json::Value) {
        let output = self.rewrap_command(schema, extra).output().unwrap();
        let summary = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        (output, summary)
    }

    /// Every row decrypts to its ballot on a profile with no env provider.
    async fn assert_all_on_kms(&self, schema: &TestSchema, ballots: &[(i64, Vec<u8>)]) {
        let kms_only = self.keyhost("kms-only");
        let rows = schema
            .client
            .query(
                &format!(
                    "SELECT id, envelope FROM {} ORDER BY id",
                    schema.table("ballots")
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), ballots.len(), "rows were lost or added");
        for (row, (id, plaintext)) in rows.iter().zip(ballots) {
            assert_eq!(row.get::<_, i64>(0), *id);
            let envelope = Envelope::parse(&row.get::<_, Vec<u8>>(1)).unwrap();
            assert_eq!(
                envelope.key_section().provider,
                "localstack",
                "row {id} is not on KMS"
            );
            let opened = kms_only
                .decrypt(&envelope, &context(*id))
                .await
                .unwrap_or_else(|e| panic!("row {id}: {e}"));
            assert_eq!(opened.as_slice(), plaintext.as_slice(), "row {id} changed");
        }
    }
}

fn context(id: i64) -> EncryptionContext {
    EncryptionContext::from_pairs([
        ("ballot_id", id.to_string()),
        ("election_id", "e-2026".to_string()),
    ])
    .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn scan_require_none_env(m: &Migration, schema: &TestSchema) -> Output {
    Command::new(keyhost_bin())
        .arg("--config")
        .arg(&m.config)
        .args([
            "--profile",
            "kms-only",
            "scan",
            "--json",
            "--require-none",
            "env",
            "--database-url",
            &database_url(),
            "--table",
        ])
        .arg(schema.table("ballots"))
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_thousand_env_envelopes_move_to_kms_and_decrypt_without_the_env_provider() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    let ballots = m.seed(&schema, 1000, "bytea").await;

    let gate = scan_require_none_env(&m, &schema);
    assert!(
        !gate.status.success(),
        "the Phase 4 gate must close while env envelopes remain"
    );

    let (output, summary) = m.rewrap(&schema, &["--concurrency", "16", "--batch", "100"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["rewrapped"], 1000, "{summary}");
    assert_eq!(summary["failed"].as_array().unwrap().len(), 0);

    m.assert_all_on_kms(&schema, &ballots).await;
    let gate = scan_require_none_env(&m, &schema);
    assert!(
        gate.status.success(),
        "{}",
        String::from_utf8_lossy(&gate.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&gate.stdout).unwrap();
    assert_eq!(report["not_current"], 0);
    assert_eq!(report["keys"].as_array().unwrap().len(), 1);

    let (_, again) = m.rewrap(&schema, &[]);
    assert_eq!(
        again["rewrapped"], 0,
        "a rerun has nothing left to do: {again}"
    );
    assert_eq!(again["already_done"], 1000);
}

#[tokio::test]
async fn rewrapping_leaves_the_ballot_ciphertext_byte_for_byte() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    m.seed(&schema, 20, "text").await;
    let read = || async {
        let rows = schema
            .client
            .query(
                &format!(
                    "SELECT envelope FROM {} ORDER BY id",
                    schema.table("ballots")
                ),
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(r.get::<_, String>(0))
                    .unwrap();
                Envelope::parse(&bytes).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let before = read().await;
    let (output, summary) = m.rewrap(&schema, &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["rewrapped"], 20);
    for (old, new) in before.iter().zip(read().await) {
        assert_eq!(new.key_section().provider, "localstack");
        assert_eq!(new.nonce(), old.nonce());
        assert_eq!(new.context(), old.context());
        let tail = |e: &Envelope| e.to_bytes()[e.to_bytes().len() - e.ciphertext_len()..].to_vec();
        assert_eq!(
            tail(&new),
            tail(old),
            "the ballot ciphertext must not change"
        );
    }
}

#[tokio::test]
async fn a_rewrap_killed_at_several_points_resumes_and_loses_nothing() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    let ballots = m.seed(&schema, 300, "bytea").await;
    for delay_ms in [400, 900, 1500] {
        let mut child = m
            .rewrap_command(&schema, &["--batch", "20", "--concurrency", "4"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL: no chance to clean up.
        let _ = child.wait();
    }
    let (output, summary) = m.rewrap(&schema, &["--batch", "20"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done = summary["rewrapped"].as_u64().unwrap() + summary["already_done"].as_u64().unwrap();
    assert_eq!(done, 300, "{summary}");
    m.assert_all_on_kms(&schema, &ballots).await;
}

#[tokio::test]
async fn a_kms_outage_mid_run_fails_rows_cleanly_and_a_rerun_completes() {
    let mut m = Migration::start_with_grant_timeouts(500, 0).await;
    if m.localstack.is_container() {
        return; // Pausing needs the host-mode emulator's process.
    }
    let schema = TestSchema::new().await;
    let ballots = m.seed(&schema, 120, "bytea").await;
    let spec = TableSpec {
        database_url: database_url(),
        table: schema.table("ballots"),
        id_column: "id".into(),
        envelope_column: "envelope".into(),
    };
    let keyhost = Arc::new(m.keyhost("dev"));
    let options = Options {
        selection: Selection::Provider("env".into()),
        batch: 10,
        concurrency: 4,
        ..Options::default()
    };
    let rewrapper = Arc::new(
        Rewrapper::new(keyhost.clone(), "localstack", options.clone())
            .await
            .unwrap(),
    );
    let mut table = Table::open(&spec).await.unwrap();
    let run =
        tokio::spawn(async move { table.rewrap(rewrapper, &Progress::new(None, true)).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    m.localstack.pause();
    let summary = run.await.unwrap().unwrap();
    m.localstack.resume();
    assert!(
        !summary.failed.is_empty(),
        "the outage must show as failures: {summary:?}"
    );
    assert!(
        summary
            .failed
            .iter()
            .all(|f| f.error.contains("unavailable")),
        "{:?}",
        summary.failed
    );

    // Once KMS answers again, reruns finish the job. An operator reruns
    // until nothing fails; requests queued during the outage may still time
    // out on the first try.
    m.localstack.wait_until_ready(Duration::from_secs(60));
    let mut rewrapped = summary.rewrapped;
    let mut failures = summary.failed.len();
    for _ in 0..3 {
        let rewrapper = Arc::new(
            Rewrapper::new(keyhost.clone(), "localstack", options.clone())
                .await
                .unwrap(),
        );
        let mut table = Table::open(&spec).await.unwrap();
        let rerun = table
            .rewrap(rewrapper, &Progress::new(None, true))
            .await
            .unwrap();
        rewrapped += rerun.rewrapped;
        failures = rerun.failed.len();
        if failures == 0 {
            break;
        }
    }
    assert_eq!(failures, 0, "reruns after the outage complete");
    assert_eq!(rewrapped, 120, "every row is rewrapped once over the runs");
    m.assert_all_on_kms(&schema, &ballots).await;
}

#[tokio::test]
async fn two_concurrent_workers_rewrap_each_row_exactly_once() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    let ballots = m.seed(&schema, 400, "bytea").await;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            m.rewrap_command(&schema, &["--batch", "25", "--concurrency", "8"])
                .spawn()
                .unwrap()
        })
        .collect();
    let mut rewrapped = 0;
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["conflicts"], 0, "{summary}");
        rewrapped += summary["rewrapped"].as_u64().unwrap();
    }
    assert_eq!(
        rewrapped, 400,
        "each row is rewrapped by exactly one worker"
    );
    m.assert_all_on_kms(&schema, &ballots).await;
}

#[tokio::test]
async fn a_corrupt_envelope_is_reported_with_its_id_and_the_rest_proceed() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    m.seed(&schema, 30, "bytea").await;
    schema
        .client
        .execute(
            &format!("INSERT INTO {} VALUES (9999, $1)", schema.table("ballots")),
            &[&b"KHEV\x01garbage".to_vec()],
        )
        .await
        .unwrap();
    let (output, summary) = m.rewrap(&schema, &[]);
    assert!(!output.status.success(), "a failed row makes the run fail");
    assert_eq!(summary["rewrapped"], 30, "{summary}");
    let failed = summary["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["id"], "9999");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("not a valid envelope"),
        "{summary}"
    );
    let row = schema
        .client
        .query_one(
            &format!(
                "SELECT envelope FROM {} WHERE id = 9999",
                schema.table("ballots")
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Vec<u8>>(0),
        b"KHEV\x01garbage",
        "the bad row is left as it was"
    );
}

#[tokio::test]
async fn a_wrong_table_or_column_is_a_clear_error_before_any_write() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    m.seed(&schema, 3, "bytea").await;
    let run = |table: String, column: &str| {
        Command::new(keyhost_bin())
            .arg("--config")
            .arg(&m.config)
            .args([
                "--profile",
                "dev",
                "rewrap",
                "--database-url",
                &database_url(),
                "--table",
                &table,
                "--envelope-column",
                column,
            ])
            .output()
            .unwrap()
    };
    let output = run(schema.table("ballotz"), "envelope");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ballotz") && stderr.contains("does not exist"),
        "{stderr}"
    );

    let output = run(schema.table("ballots"), "envelop");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no column \"envelop\"") && stderr.contains("id, envelope"),
        "{stderr}"
    );

    let legacy = schema
        .client
        .query_one(
            &format!("SELECT count(*) FROM {}", schema.table("ballots")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(legacy.get::<_, i64>(0), 3);
    let scan = keyhost_tests::postgres::connect().await;
    let rows = scan
        .query(
            &format!("SELECT envelope FROM {}", schema.table("ballots")),
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        assert_eq!(
            Envelope::parse(&row.get::<_, Vec<u8>>(0))
                .unwrap()
                .key_section()
                .provider,
            "env"
        );
    }
}

#[tokio::test]
async fn a_dry_run_counts_and_writes_nothing() {
    let m = Migration::start().await;
    let schema = TestSchema::new().await;
    m.seed(&schema, 10, "bytea").await;
    let (output, summary) = m.rewrap(&schema, &["--dry-run"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(summary["would_rewrap"], 10);
    assert_eq!(summary["rewrapped"], 0);
    assert!(
        !scan_require_none_env(&m, &schema).status.success(),
        "nothing was rewrapped"
    );
}

#[tokio::test]
async fn json_lines_are_rewrapped_in_order_with_their_other_fields() {
    let m = Migration::start().await;
    let legacy = m.keyhost("legacy");
    let mut input = String::new();
    for id in 1..=5i64 {
        let envelope = legacy
            .encrypt(context(id), format!("ballot {id}").as_bytes())
            .await
            .unwrap()
            .to_bytes();
        input += &format!(
            "{{\"id\": {id}, \"envelope\": \"{}\", \"precinct\": \"p-{id}\"}}\n",
            base64_encode(&envelope)
        );
    }
    let file = m.scratch.write("ballots.jsonl", &input);
    let out = m.scratch.path("rewrapped.jsonl");
    let output = Command::new(keyhost_bin())
        .arg("--config")
        .arg(&m.config)
        .args([
            "--profile",
            "dev",
            "rewrap",
            "--from",
            "env",
            "--quiet",
            "--jsonl",
        ])
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let kms_only = m.keyhost("kms-only");
    let lines = std::fs::read_to_string(&out).unwrap();
    for (i, line) in lines.lines().enumerate() {
        let id = i as i64 + 1;
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["id"], id);
        assert_eq!(record["precinct"], format!("p-{id}"));
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(record["envelope"].as_str().unwrap())
            .unwrap();
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(
            kms_only
                .decrypt(&envelope, &context(id))
                .await
                .unwrap()
                .as_slice(),
            format!("ballot {id}").as_bytes()
        );
    }
    assert_eq!(lines.lines().count(), 5);
    let _ = &m.localstack;
}
