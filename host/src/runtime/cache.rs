//! Precompiled components, written and read only by this host.
//!
//! Deserializing native code is `unsafe`: bytes that wasmtime did not write
//! can run arbitrary code. So the cache holds only files this host wrote, in
//! a directory it created with mode 0700, named by the component's sha256 and
//! the engine's compatibility hash; anything else there is ignored.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Clone, Debug)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into sha256, so the engine's compatibility hash is
/// stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl ComponentCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path_for(&self, engine: &Engine, component_sha256: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hex::encode(&hasher.0.finalize()[..12]);
        self.dir
            .join(format!("{component_sha256}-{engine_hash}.cwasm"))
    }

    /// The compiled component, from the cache when this host wrote it there,
    /// otherwise compiled now and stored. Cache trouble never fails a load.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component_sha256: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.path_for(engine, component_sha256);
        // Read into memory rather than map the file: a mapped file that is
        // truncated underneath the process would crash it.
        if self.is_ours(&path)
            && let Ok(serialized) = std::fs::read(&path)
        {
            // SAFETY: the file was written by `store` below, in a directory
            // only this user can write, for this engine's exact configuration.
            if let Ok(component) = unsafe { Component::deserialize(engine, &serialized) } {
                return Ok(component);
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Ok(serialized) = component.serialize() {
            let _ = self.store(&path, &serialized);
        }
        Ok(component)
    }

    #[cfg(unix)]
    fn is_ours(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let private = |p: &Path| {
            std::fs::symlink_metadata(p).is_ok_and(|m| {
                m.uid() == uid && m.mode() & 0o022 == 0 && !m.file_type().is_symlink()
            })
        };
        private(&self.dir) && private(path)
    }

    #[cfg(not(unix))]
    fn is_ours(&self, _path: &Path) -> bool {
        false
    }

    fn store(&self, path: &Path, serialized: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, serialized)?;
        std::fs::rename(&tmp, path)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
