//! Envelope encrypt + decrypt of a 1 KiB ballot through the env plugin,
//! beside raw `aes-gcm` seal/open of the same ballot, in one run.
//!
//! `cargo bench -p keyhost --bench envelope`; `scripts/bench-envelope.sh`
//! adds the Python legacy path and prints the ratios for BENCHMARKS.md.

use std::hint::black_box;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keyhost::Keyhost;
use keyhost::config::{self, ProcessEnv};
use keyhost::envelope::EncryptionContext;
use rand::RngCore;

const BALLOT_BYTES: usize = 1024;

fn keyhost_with(policy: &str, dir: &std::path::Path) -> Keyhost {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let component = root.join("dist/plugins/env.wasm");
    let bytes = std::fs::read(&component).expect("dist/plugins/env.wasm: run `make plugins`");
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    // The master key comes from the environment, as in Oponn.
    let toml = format!(
        "[providers.env]\ncomponent = {component:?}\nsha256 = \"{digest}\"\ninstances = \"{policy}\"\n\
         secrets.master-key = {{ env = \"KEYHOST_BENCH_MASTER_KEY\" }}\n[profiles.bench]\nencrypt = \"env\"\n"
    );
    let file = dir.join("keyhost.toml");
    std::fs::write(&file, &toml).unwrap();
    Keyhost::open(&config::parse(&file, &toml, Some("bench"), &ProcessEnv).unwrap()).unwrap()
}

fn envelopes(c: &mut Criterion) {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    // SAFETY: set before any runtime or engine thread of this process starts.
    unsafe { std::env::set_var("KEYHOST_BENCH_MASTER_KEY", hex::encode(key)) };
    let mut ballot = vec![0u8; BALLOT_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut ballot);
    let context =
        EncryptionContext::from_pairs([("ballot_id", "b-000017"), ("election_id", "e-2026")])
            .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("keyhost-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut group = c.benchmark_group("envelope_1kib");
    group.throughput(Throughput::Elements(1));

    group.bench_function("raw_aes_gcm_seal_open", |b| {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let cipher = Aes256Gcm::new((&key).into());
        let aad = b"ballot_id=b-000017,election_id=e-2026";
        b.iter(|| {
            let mut nonce = [0u8; 12];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let sealed = cipher
                .encrypt(&Nonce::from(nonce), Payload { msg: &ballot, aad })
                .unwrap();
            let opened = cipher
                .decrypt(&Nonce::from(nonce), Payload { msg: &sealed, aad })
                .unwrap();
            black_box(opened)
        })
    });

    for policy in ["reuse", "fresh"] {
        let keyhost = keyhost_with(policy, &dir);
        // One runtime entry per batch, as a service's task would run them, so
        // the figure is the envelopes' cost and not `block_on`'s.
        group.bench_function(format!("keyhost_env_{policy}"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = std::time::Instant::now();
                    for _ in 0..iters {
                        let envelope = keyhost.encrypt(context.clone(), &ballot).await.unwrap();
                        black_box(keyhost.decrypt(&envelope, &context).await.unwrap());
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, envelopes);
criterion_main!(benches);
