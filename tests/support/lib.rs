//! Shared set-up for keyhost's integration tests: where the built components
//! and binary are, per-test configuration files, and throwaway keys.
//!
//! Components are built by `make plugins` (the test build runs it first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

pub mod localstack;
pub mod postgres;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A bundled plugin (`dist/plugins/NAME.wasm`).
pub fn plugin(name: &str) -> PathBuf {
    built(
        repo_root()
            .join("dist/plugins")
            .join(format!("{name}.wasm")),
    )
}

/// A test fixture component (`dist/fixtures/NAME.wasm`).
pub fn fixture(name: &str) -> PathBuf {
    built(
        repo_root()
            .join("dist/fixtures")
            .join(format!("{name}.wasm")),
    )
}

fn built(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing; run `make plugins` first",
        path.display()
    );
    path
}

pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A random 32-byte key, base64, as Oponn's OPONN_MASTER_KEY holds it.
pub fn random_master_key() -> String {
    let mut key = [0u8; 32];
    getrandom(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("keyhost-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a master key file and returns its path.
    pub fn master_key_file(&self, name: &str) -> PathBuf {
        self.write(name, random_master_key())
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// A `[providers.NAME]` table for a component, pinned to its real digest.
pub fn provider_table(name: &str, component: &Path, extra: &str) -> String {
    format!(
        "[providers.{name}]\ncomponent = {component:?}\nsha256 = \"{}\"\n{extra}\n",
        sha256_file(component)
    )
}

/// The env provider reading its master key from `key_file`.
pub fn env_provider_table(key_file: &Path, extra: &str) -> String {
    provider_table(
        "env",
        &plugin("env"),
        &format!("secrets.master-key = {{ file = {key_file:?} }}\n{extra}"),
    )
}

/// The `keyhost` binary, built once per test process.
pub fn keyhost_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "keyhost", "--bin", "keyhost"])
                .current_dir(repo_root())
                .status()
                .expect("running cargo build for the keyhost binary");
            assert!(status.success(), "building the keyhost binary failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug/keyhost")
        })
        .clone()
}
