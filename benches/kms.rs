//! KMS wrap (Encrypt) and unwrap (Decrypt) of a 32-byte DEK through the
//! sandboxed `localstack` plugin, beside the same calls made natively with
//! `aws-sdk-kms`, against the same LocalStack in the same process and run.
//!
//! Not criterion: what matters besides latency is the client's CPU per call,
//! taken with `getrusage(RUSAGE_SELF)` (user + sys, every thread of this
//! process; LocalStack runs in another process and is not counted). The
//! process holds keyhost's wasmtime engine, whose epoch thread ticks every
//! 5 ms whatever runs; the native figures leave that thread's share out
//! (measured from /proc/self/task/*/schedstat), the plugin figures keep it.
//!
//! Paths, each at concurrency 1 and 16, interleaved in rounds so that a noisy
//! machine or a LocalStack slowing down over time hits every path alike:
//! - `native`: `aws-sdk-kms` Encrypt / Decrypt (one shared client);
//! - `plugin-fresh`: `Provider::wrap` / `Provider::unwrap` under the default
//!   instance policy (a fresh instance per operation);
//! - `plugin-reuse`: the same under `instances = "reuse"` (warm instances);
//! - `keyhost-envelope`: `Keyhost::encrypt` / `Keyhost::decrypt` of a 1 KiB
//!   ballot (fresh instances; GenerateDataKey + AES-256-GCM seal, Decrypt +
//!   commitment check + open), one KMS call each, like the seed's boto3 path;
//! - `plugin-fresh-audit` (only with `KMS_BENCH_AUDIT=1`): `plugin-fresh`
//!   with the hash-chained audit log on, as keyhost.toml ships. It brings a
//!   second engine (and epoch thread) into the process.
//!
//! Every call uses the encryption context `{"ballot_id": "ballot-NNNNNNNN"}`,
//! as `benches/kms_envelope.py` does.
//!
//! Environment:
//! - `KMS_BENCH_ENDPOINT` (default `http://127.0.0.1:4566`)
//! - `KMS_BENCH_ACCESS_KEY_ID` (default `000000000042`): LocalStack's account
//! - `KMS_BENCH_ALIAS` (default a fresh `alias/keyhost-bench-...`): the key,
//!   made by `keyhost::infra::ensure_key` if it does not exist
//! - `KMS_BENCH_CALLS` (default 400): calls per path, op and concurrency
//! - `KMS_BENCH_ROUNDS` (default 8): rounds the calls are split into
//! - `KMS_BENCH_AUDIT=1`: add `plugin-fresh-audit`
//! - `KMS_BENCH_PATHS` (default all): a comma-separated subset of the paths,
//!   for profiling one of them
//!
//! Prints one JSON line per variant and a final `keyhost-kms-summary` line
//! with plugin/native ratios. `cargo bench -p keyhost --bench kms`;
//! `scripts/bench-kms.sh` adds the boto3 baseline and prints a table.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kms::primitives::Blob;
use keyhost::Keyhost;
use keyhost::config::{self, ProcessEnv};
use keyhost::envelope::{DataKey, EncryptionContext, Envelope};
use keyhost::infra::{self, KmsTarget};
use keyhost::runtime::provider::WrappedKey;
use rand::RngCore;
use serde_json::{Value, json};

const BALLOT_BYTES: usize = 1024;
const CONCURRENCIES: [usize; 2] = [1, 16];
const OPERATIONS: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "DescribeKey",
    "ReEncrypt",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Native,
    PluginFresh,
    PluginReuse,
    Envelope,
    PluginFreshAudit,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Native => "native",
            Path::PluginFresh => "plugin-fresh",
            Path::PluginReuse => "plugin-reuse",
            Path::Envelope => "keyhost-envelope",
            Path::PluginFreshAudit => "plugin-fresh-audit",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    /// A DEK into KMS: Encrypt (GenerateDataKey for the envelope path).
    Wrap,
    /// A wrapped DEK out of KMS: Decrypt.
    Unwrap,
}

impl Op {
    fn name(self, path: Path) -> &'static str {
        match (path, self) {
            (Path::Envelope, Op::Wrap) => "seal",
            (Path::Envelope, Op::Unwrap) => "open",
            (_, Op::Wrap) => "wrap",
            (_, Op::Unwrap) => "unwrap",
        }
    }

    fn kms_operation(self, path: Path) -> &'static str {
        match (path, self) {
            (Path::Envelope, Op::Wrap) => "GenerateDataKey",
            (_, Op::Wrap) => "Encrypt",
            (_, Op::Unwrap) => "Decrypt",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Variant {
    path: Path,
    op: Op,
    concurrency: usize,
}

impl Variant {
    fn label(&self) -> String {
        format!(
            "{} {} c{}",
            self.path.name(),
            self.op.name(self.path),
            self.concurrency
        )
    }
}

/// Everything the calls share; inputs are made before any timing.
struct Bench {
    keyhost: Keyhost,
    audited: Option<Keyhost>,
    kms: aws_sdk_kms::Client,
    arn: String,
    contexts: Vec<EncryptionContext>,
    sdk_contexts: Vec<HashMap<String, String>>,
    /// DEKs and their ciphertexts (native Encrypt), for the unwrap variants.
    wrapped: Vec<(DataKey, Vec<u8>)>,
    ballots: Vec<Vec<u8>>,
    /// Envelopes sealed by keyhost, for `keyhost-envelope open`.
    envelopes: Vec<Envelope>,
}

/// What one batch of calls of one variant measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    wall: Duration,
    cpu: Duration,
    /// Of `cpu`, what the wasmtime epoch thread used (where Linux tells).
    epoch: Duration,
}

fn main() {
    // `cargo bench` passes --bench; anything else (a test run of all
    // targets) must not go looking for LocalStack.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kms bench: run with `cargo bench -p keyhost --bench kms` (needs LocalStack)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = runtime.block_on(run());
    std::process::exit(code);
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        _ => default,
    }
}

async fn run() -> i32 {
    let endpoint = env_or("KMS_BENCH_ENDPOINT", "http://127.0.0.1:4566");
    let access_key_id = env_or("KMS_BENCH_ACCESS_KEY_ID", "000000000042");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let alias = env_or(
        "KMS_BENCH_ALIAS",
        &format!("alias/keyhost-bench-{}-{nanos}", std::process::id()),
    );
    let calls = env_usize("KMS_BENCH_CALLS", 400).max(1);
    let rounds = env_usize("KMS_BENCH_ROUNDS", 8).clamp(1, calls);
    let with_audit = env_or("KMS_BENCH_AUDIT", "0") == "1";

    let target = KmsTarget::local(&endpoint, &access_key_id);
    let key = match infra::ensure_key(&target, &alias).await {
        Ok(key) => key,
        Err(err) => {
            eprintln!(
                "kms bench: {err}\n(start LocalStack with `scripts/services.sh up`, or point KMS_BENCH_ENDPOINT at it)"
            );
            return 1;
        }
    };
    eprintln!(
        "kms bench: key {} ({}) at {endpoint}, account {access_key_id}; {calls} calls per variant in {rounds} rounds",
        key.arn,
        if key.created { "created" } else { "existing" },
    );

    let dir = std::env::temp_dir().join(format!("keyhost-kms-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keyhost = open_keyhost(&dir, &endpoint, &access_key_id, &key.arn, false);
    let audited = with_audit.then(|| open_keyhost(&dir, &endpoint, &access_key_id, &key.arn, true));

    let contexts: Vec<EncryptionContext> = (0..calls)
        .map(|i| EncryptionContext::from_pairs([("ballot_id", format!("ballot-{i:08}"))]).unwrap())
        .collect();
    let sdk_contexts = contexts
        .iter()
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect();
    let ballots = (0..calls)
        .map(|_| {
            let mut b = vec![0u8; BALLOT_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut b);
            b
        })
        .collect();
    let mut bench = Bench {
        keyhost,
        audited,
        kms: target.client().await,
        arn: key.arn.clone(),
        contexts,
        sdk_contexts,
        wrapped: Vec::new(),
        ballots,
        envelopes: Vec::new(),
    };
    if let Err(err) = prepare(&mut bench).await {
        eprintln!("kms bench: preparing the unwrap inputs failed: {err}");
        return 1;
    }
    let bench = Arc::new(bench);

    let mut paths = vec![
        Path::Native,
        Path::PluginFresh,
        Path::PluginReuse,
        Path::Envelope,
    ];
    if with_audit {
        paths.push(Path::PluginFreshAudit);
    }
    // For profiling one path: KMS_BENCH_PATHS=plugin-fresh,native
    if let Ok(only) = std::env::var("KMS_BENCH_PATHS")
        && !only.is_empty()
    {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        paths.retain(|p| wanted.contains(&p.name()));
    }
    let mut variants = Vec::new();
    for &concurrency in &CONCURRENCIES {
        for &op in &[Op::Wrap, Op::Unwrap] {
            for &path in &paths {
                variants.push(Variant {
                    path,
                    op,
                    concurrency,
                });
            }
        }
    }

    // Warm-up, not measured: connection pools on both sides, the provider's
    // cached description, warm instances for `reuse`, LocalStack's caches.
    for v in &variants {
        let warm = batch(&bench, *v, 0..(2 * v.concurrency).min(calls)).await;
        if let Some(err) = warm.errors.first() {
            eprintln!("kms bench: warm-up of {} failed: {err}", v.label());
            return 1;
        }
    }

    // What the process burns doing nothing (epoch thread, idle runtime).
    let idle_window = Duration::from_secs(1);
    let (idle_cpu0, epoch0) = (cpu_now(), epoch_thread_cpu());
    tokio::time::sleep(idle_window).await;
    let idle_cpu_us_per_s = (cpu_now() - idle_cpu0).as_secs_f64() * 1e6 / idle_window.as_secs_f64();
    let idle_epoch_us_per_s = match (epoch0, epoch_thread_cpu()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / idle_window.as_secs_f64()),
        _ => None,
    };

    let mut tallies: Vec<Tally> = variants.iter().map(|_| Tally::default()).collect();
    let started = Instant::now();
    let epoch_start = epoch_thread_cpu();
    for round in 0..rounds {
        let range = (round * calls / rounds)..((round + 1) * calls / rounds);
        // Rotate the order each round so no variant always goes first.
        let n = variants.len();
        for k in 0..n {
            let idx = (k + round * 3) % n;
            let t = batch(&bench, variants[idx], range.clone()).await;
            let tally = &mut tallies[idx];
            tally.latencies.extend(t.latencies);
            tally.errors.extend(t.errors);
            tally.wall += t.wall;
            tally.cpu += t.cpu;
            tally.epoch += t.epoch;
        }
        eprintln!("kms bench: round {}/{rounds} done", round + 1);
    }
    let elapsed = started.elapsed();
    let epoch_us_per_s = match (epoch_start, epoch_thread_cpu()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / elapsed.as_secs_f64()),
        _ => None,
    };

    let mut results = Vec::new();
    let mut failed = false;
    for (v, t) in variants.iter().zip(&tallies) {
        let line = report(v, t);
        println!("{line}");
        if !t.errors.is_empty() {
            failed = true;
            eprintln!(
                "kms bench: {} had {} errors, first: {}",
                v.label(),
                t.errors.len(),
                t.errors[0]
            );
        }
        results.push((*v, line));
    }

    let summary = summary(
        &results,
        &paths,
        json!({
            "bench": "keyhost-kms-summary",
            "endpoint": endpoint,
            "access_key_id": access_key_id,
            "key_alias": alias,
            "key_arn": key.arn,
            "calls_per_variant": calls,
            "rounds": rounds,
            "measured_s": round3(elapsed.as_secs_f64()),
            "idle_process_cpu_us_per_s": round1(idle_cpu_us_per_s),
            "idle_epoch_thread_cpu_us_per_s": idle_epoch_us_per_s.map(round1),
            "epoch_thread_cpu_us_per_s": epoch_us_per_s.map(round1),
            "worker_threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }),
    );
    println!("{summary}");
    print_human(&summary);
    let _ = std::fs::remove_dir_all(&dir);
    if failed { 1 } else { 0 }
}

/// One Keyhost with the localstack plugin twice: `fresh` (the default
/// policy, encrypting) and `reuse`. The audited one has only `fresh`.
fn open_keyhost(
    dir: &std::path::Path,
    endpoint: &str,
    access_key_id: &str,
    arn: &str,
    audited: bool,
) -> Keyhost {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("dist/plugins/localstack.wasm");
    let bytes = std::fs::read(&component)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make plugins`", component.display()));
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let targets = OPERATIONS
        .iter()
        .map(|t| format!("\"TrentService.{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // As tests/support/localstack.rs grants it; max_retries = 2 matches the
    // SDK's standard retry mode (3 attempts). No retry happens in a clean run.
    let http = format!(
        "http = {{ endpoint = \"{endpoint}\", allow_plain_http = true, auth = \"aws-sigv4\", service = \"kms\", \
         region = \"us-east-1\", static_credentials = {{ access_key_id = \"{access_key_id}\", secret_access_key = \"test\" }}, \
         allowed_targets = [{targets}], connect_timeout_ms = 1000, request_timeout_ms = 10000, max_retries = 2 }}"
    );
    let provider = |name: &str, policy: &str| {
        format!(
            "[providers.{name}]\ncomponent = {component:?}\nsha256 = \"{digest}\"\ninstances = \"{policy}\"\n\
             config = {{ key_id = \"{arn}\" }}\n{http}\n"
        )
    };
    let toml = if audited {
        let log = dir.join("audit.jsonl");
        format!(
            "[runtime]\naudit_log = {log:?}\n{}[profiles.bench]\nencrypt = \"fresh\"\n",
            provider("fresh", "fresh")
        )
    } else {
        format!(
            "{}{}[profiles.bench]\nencrypt = \"fresh\"\ndecrypt_only = [\"reuse\"]\n",
            provider("fresh", "fresh"),
            provider("reuse", "reuse")
        )
    };
    let file = dir.join(if audited {
        "keyhost-audit.toml"
    } else {
        "keyhost.toml"
    });
    std::fs::write(&file, &toml).unwrap();
    let profile = config::parse(&file, &toml, Some("bench"), &ProcessEnv).unwrap();
    Keyhost::open(&profile).unwrap()
}

/// The unwrap inputs: DEKs wrapped natively, envelopes sealed by keyhost.
async fn prepare(bench: &mut Bench) -> Result<(), String> {
    let n = bench.contexts.len();
    let mut set = tokio::task::JoinSet::new();
    for chunk in 0..16 {
        let kms = bench.kms.clone();
        let arn = bench.arn.clone();
        let contexts: Vec<(usize, HashMap<String, String>)> = (chunk..n)
            .step_by(16)
            .map(|i| (i, bench.sdk_contexts[i].clone()))
            .collect();
        set.spawn(async move {
            let mut out = Vec::new();
            for (i, context) in contexts {
                let dek = DataKey::generate();
                let reply = kms
                    .encrypt()
                    .key_id(&arn)
                    .plaintext(Blob::new(dek.expose().to_vec()))
                    .set_encryption_context(Some(context))
                    .send()
                    .await
                    .map_err(|e| format!("Encrypt: {}", error_text(&e)))?;
                let ciphertext = reply
                    .ciphertext_blob()
                    .ok_or("Encrypt without CiphertextBlob")?
                    .as_ref()
                    .to_vec();
                out.push((i, dek, ciphertext));
            }
            Ok::<_, String>(out)
        });
    }
    let mut wrapped: Vec<Option<(DataKey, Vec<u8>)>> = (0..n).map(|_| None).collect();
    while let Some(done) = set.join_next().await {
        for (i, dek, ct) in done.map_err(|e| e.to_string())?? {
            wrapped[i] = Some((dek, ct));
        }
    }
    bench.wrapped = wrapped.into_iter().map(Option::unwrap).collect();

    // Envelopes: sequential through keyhost is fine, n calls.
    let mut envelopes = Vec::with_capacity(n);
    for i in 0..n {
        let envelope = bench
            .keyhost
            .encrypt(bench.contexts[i].clone(), &bench.ballots[i])
            .await
            .map_err(|e| format!("keyhost encrypt: {e}"))?;
        envelopes.push(envelope);
    }
    bench.envelopes = envelopes;
    Ok(())
}

/// Runs calls `range` of variant `v` on `v.concurrency` tasks.
async fn batch(bench: &Arc<Bench>, v: Variant, range: std::ops::Range<usize>) -> Tally {
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let epoch0 = epoch_thread_cpu();
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..v.concurrency {
        let bench = bench.clone();
        let next = next.clone();
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                match call(&bench, v, i).await {
                    Ok(d) => latencies.push(d),
                    Err(e) => errors.push(e),
                }
            }
            (latencies, errors)
        });
    }
    let mut tally = Tally::default();
    while let Some(done) = set.join_next().await {
        let (latencies, errors) = done.expect("a bench task panicked");
        tally.latencies.extend(latencies);
        tally.errors.extend(errors);
    }
    tally.wall = t0.elapsed();
    tally.cpu = cpu_now() - cpu0;
    if let (Some(a), Some(b)) = (epoch0, epoch_thread_cpu()) {
        tally.epoch = b.saturating_sub(a);
    }
    tally
}

/// One call of `v` on input `i`; the latency covers the call only, not the
/// preparation of its inputs nor the check of its answer.
async fn call(b: &Bench, v: Variant, i: usize) -> Result<Duration, String> {
    let context = &b.contexts[i];
    match (v.path, v.op) {
        (Path::Native, Op::Wrap) => {
            let dek = DataKey::generate();
            let plaintext = Blob::new(dek.expose().to_vec());
            let sdk_context = b.sdk_contexts[i].clone();
            let t = Instant::now();
            let reply = b
                .kms
                .encrypt()
                .key_id(&b.arn)
                .plaintext(plaintext)
                .set_encryption_context(Some(sdk_context))
                .send()
                .await;
            let d = t.elapsed();
            let reply = reply.map_err(|e| format!("Encrypt: {}", error_text(&e)))?;
            reply
                .ciphertext_blob()
                .filter(|c| !c.as_ref().is_empty())
                .ok_or("Encrypt without CiphertextBlob")?;
            Ok(d)
        }
        (Path::Native, Op::Unwrap) => {
            let (dek, ciphertext) = &b.wrapped[i];
            let blob = Blob::new(ciphertext.clone());
            let sdk_context = b.sdk_contexts[i].clone();
            let t = Instant::now();
            let reply = b
                .kms
                .decrypt()
                .key_id(&b.arn)
                .ciphertext_blob(blob)
                .set_encryption_context(Some(sdk_context))
                .send()
                .await;
            let d = t.elapsed();
            let reply = reply.map_err(|e| format!("Decrypt: {}", error_text(&e)))?;
            if reply.plaintext().map(|p| p.as_ref()) != Some(dek.expose().as_slice()) {
                return Err("Decrypt returned another key".into());
            }
            Ok(d)
        }
        (Path::PluginFresh | Path::PluginReuse | Path::PluginFreshAudit, op) => {
            let provider = match v.path {
                Path::PluginFresh => b.keyhost.provider("fresh"),
                Path::PluginReuse => b.keyhost.provider("reuse"),
                _ => b.audited.as_ref().expect("audit keyhost").provider("fresh"),
            }
            .map_err(|e| e.to_string())?;
            match op {
                Op::Wrap => {
                    let dek = DataKey::generate();
                    let t = Instant::now();
                    let wrapped = provider.wrap(&dek, context).await;
                    let d = t.elapsed();
                    let wrapped = wrapped.map_err(|e| format!("wrap: {e}"))?;
                    if wrapped.ciphertext.is_empty() {
                        return Err("wrap gave an empty ciphertext".into());
                    }
                    Ok(d)
                }
                Op::Unwrap => {
                    let (dek, ciphertext) = &b.wrapped[i];
                    let wrapped = WrappedKey {
                        key_id: b.arn.clone(),
                        ciphertext: ciphertext.clone(),
                    };
                    let t = Instant::now();
                    let unwrapped = provider.unwrap(&wrapped, context).await;
                    let d = t.elapsed();
                    let unwrapped = unwrapped.map_err(|e| format!("unwrap: {e}"))?;
                    if unwrapped.expose() != dek.expose() {
                        return Err("unwrap returned another key".into());
                    }
                    Ok(d)
                }
            }
        }
        (Path::Envelope, Op::Wrap) => {
            let context = context.clone();
            let t = Instant::now();
            let envelope = b.keyhost.encrypt(context, &b.ballots[i]).await;
            let d = t.elapsed();
            envelope.map_err(|e| format!("encrypt: {e}"))?;
            Ok(d)
        }
        (Path::Envelope, Op::Unwrap) => {
            let t = Instant::now();
            let opened = b.keyhost.decrypt(&b.envelopes[i], context).await;
            let d = t.elapsed();
            let opened = opened.map_err(|e| format!("decrypt: {e}"))?;
            if opened.as_slice() != b.ballots[i].as_slice() {
                return Err("decrypt returned another ballot".into());
            }
            Ok(d)
        }
    }
}

fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

/// User + system CPU of every thread of this process so far.
fn cpu_now() -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time of the wasmtime epoch thread(s) (`keyhost-epoch`), from
/// /proc/self/task/*/schedstat, where Linux has it.
fn epoch_thread_cpu() -> Option<Duration> {
    let mut total = 0u64;
    let mut found = false;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != "keyhost-epoch" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        found = true;
    }
    found.then(|| Duration::from_nanos(total))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

/// Mean, p50 and p99, picked as benches/kms_envelope.py picks them.
fn stats(latencies: &[Duration]) -> (Duration, Duration, Duration) {
    if latencies.is_empty() {
        return Default::default();
    }
    let mut s = latencies.to_vec();
    s.sort();
    let pick = |q: f64| s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)];
    let mean = s.iter().sum::<Duration>() / s.len() as u32;
    (mean, pick(0.50), pick(0.99))
}

/// The CPU a path is charged with. Every path runs in this one process,
/// which holds the wasmtime engine and its epoch thread; the native path does
/// not need that thread, so its share is taken out of the native figures.
fn charged_cpu(v: &Variant, t: &Tally) -> Duration {
    match v.path {
        Path::Native => t.cpu.saturating_sub(t.epoch),
        _ => t.cpu,
    }
}

fn report(v: &Variant, t: &Tally) -> Value {
    let (mean, p50, p99) = stats(&t.latencies);
    let calls = t.latencies.len() + t.errors.len();
    let per_call = |d: Duration| round1(d.as_secs_f64() * 1e6 / calls.max(1) as f64);
    let charged = charged_cpu(v, t);
    json!({
        "bench": "keyhost-kms",
        "path": v.path.name(),
        "op": v.op.name(v.path),
        "kms_op": v.op.kms_operation(v.path),
        "concurrency": v.concurrency,
        "calls": calls,
        "errors": t.errors.len(),
        "wall_s": round3(t.wall.as_secs_f64()),
        "calls_per_sec": round1(calls as f64 / t.wall.as_secs_f64()),
        "mean_ms": ms(mean),
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        // What the path is charged with: the whole process for the plugin
        // paths, the process less the epoch thread for native.
        "client_cpu_s": round3(charged.as_secs_f64()),
        "client_cpu_us_per_call": per_call(charged),
        "process_cpu_us_per_call": per_call(t.cpu),
        "epoch_thread_cpu_us_per_call": per_call(t.epoch),
    })
}

fn summary(results: &[(Variant, Value)], paths: &[Path], mut head: Value) -> Value {
    let get = |path: Path, op: Op, c: usize| {
        results
            .iter()
            .find(|(v, _)| v.path == path && v.op == op && v.concurrency == c)
            .map(|(_, r)| r)
    };
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let ratio = |a: f64, b: f64| (a / b * 1000.0).round() / 1000.0;
    let mut ratios = Vec::new();
    for &path in paths.iter().filter(|p| **p != Path::Native) {
        for &c in &CONCURRENCIES {
            let mut both = [0.0f64; 4]; // mean sums and cpu sums: this, native
            let mut found = 0;
            for &op in &[Op::Wrap, Op::Unwrap] {
                let (Some(this), Some(native)) = (get(path, op, c), get(Path::Native, op, c))
                else {
                    continue;
                };
                found += 1;
                both[0] += f(this, "mean_ms");
                both[1] += f(native, "mean_ms");
                both[2] += f(this, "client_cpu_us_per_call");
                both[3] += f(native, "client_cpu_us_per_call");
                ratios.push(json!({
                    "path": path.name(),
                    "op": op.name(path),
                    "concurrency": c,
                    "latency_mean_ratio": ratio(f(this, "mean_ms"), f(native, "mean_ms")),
                    "latency_p50_ratio": ratio(f(this, "p50_ms"), f(native, "p50_ms")),
                    "latency_p99_ratio": ratio(f(this, "p99_ms"), f(native, "p99_ms")),
                    "cpu_ratio": ratio(f(this, "client_cpu_us_per_call"), f(native, "client_cpu_us_per_call")),
                    "cpu_us_per_call": f(this, "client_cpu_us_per_call"),
                    "native_cpu_us_per_call": f(native, "client_cpu_us_per_call"),
                }));
            }
            if found < 2 {
                continue;
            }
            ratios.push(json!({
                "path": path.name(),
                "op": "both",
                "concurrency": c,
                "latency_mean_ratio": ratio(both[0], both[1]),
                "cpu_ratio": ratio(both[2], both[3]),
                "cpu_us_per_call": round1(both[2] / 2.0),
                "native_cpu_us_per_call": round1(both[3] / 2.0),
            }));
        }
    }
    head["ratios"] = Value::Array(ratios);
    head
}

fn print_human(summary: &Value) {
    eprintln!("\nplugin / native (mean latency, client CPU per call):");
    for r in summary["ratios"].as_array().into_iter().flatten() {
        eprintln!(
            "  {:<20} {:<7} c{:<3} latency {:>6.3}x  cpu {:>6.3}x  ({} vs {} us/call)",
            r["path"].as_str().unwrap_or(""),
            r["op"].as_str().unwrap_or(""),
            r["concurrency"],
            r["latency_mean_ratio"].as_f64().unwrap_or(f64::NAN),
            r["cpu_ratio"].as_f64().unwrap_or(f64::NAN),
            r["cpu_us_per_call"],
            r["native_cpu_us_per_call"],
        );
    }
}
