//! Running provider components in wasmtime.
//!
//! One [`Runtime`] holds the engine (pooling allocator, epoch interruption)
//! and the linker with the host capabilities. Loading a provider checks its
//! pinned sha256, compiles it once (or reads the host's own precompiled copy),
//! and links it into an `InstancePre`. Each operation then gets a fresh store
//! and instance by default, under the provider's memory cap and deadline; a
//! trap or a deadline ends that instance only and comes back as a typed error.

pub mod bindings;
mod cache;
pub mod provider;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use cache::ComponentCache;
pub use provider::{CallError, Operation, Provider, ProviderDescription};
pub use state::HostState;

use crate::capabilities::{Audit, Grants};
use crate::config::{ProviderSettings, RuntimeSettings};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read component {} for provider {provider}: {source}", path.display())]
    Read {
        provider: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "component {} for provider {provider} has sha256 {actual}, but the configuration pins {expected}; \
         refusing to load it. If you rebuilt or upgraded the plugin on purpose, put the new digest in \
         providers.{provider}.sha256 (`make plugins` refreshes the pins of the bundled plugins)",
        path.display()
    )]
    DigestMismatch {
        provider: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("component {} for provider {provider} is not a valid component: {message}", path.display())]
    Compile {
        provider: String,
        path: PathBuf,
        message: String,
    },
    #[error(
        "component for provider {provider} needs something keyhost does not provide: {message}. \
         keyhost offers only the keyhost:provider@0.1.0 capabilities and an empty WASI"
    )]
    Link { provider: String, message: String },
    #[error("provider {provider}: {source}")]
    Grant {
        provider: String,
        #[source]
        source: crate::capabilities::http::HttpSetupError,
    },
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

/// The engine, the linker and the compiled-component cache, shared by every
/// provider a profile loads.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache: Option<ComponentCache>,
}

impl Runtime {
    /// `max_memory_bytes` is the largest memory cap of any provider to load.
    pub fn new(settings: &RuntimeSettings, max_memory_bytes: usize) -> Result<Self, LoadError> {
        let engine_err = |e: wasmtime::Error| LoadError::Engine(format!("{e:#}"));
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        if std::env::var_os("KEYHOST_PERFMAP").is_some() {
            // Names guest functions in `perf` profiles (/tmp/perf-PID.map).
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::new();
        // Slots are reserved address space, not memory; this bounds how many
        // instances can be alive at once across all providers.
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(256)
            .total_tables(1024)
            .total_stacks(256)
            // When a slot is reused, its memory is reset with memset up to
            // this much (the rest goes back to the kernel): cheaper than
            // faulting pages in again. With PAGEMAP_SCAN (Linux 6.7+) only
            // the pages the last instance dirtied are reset.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            .max_memory_size(max_memory_bytes.max(1 << 20));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(engine_err)?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_err)?;
        bindings::ProviderPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(engine_err)?;

        let cache = settings.cache_dir.clone().map(ComponentCache::new);
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads one provider: digest check, compile (or cache), link.
    pub fn load(&self, settings: &ProviderSettings, audit: Audit) -> Result<Provider, LoadError> {
        let provider = settings.name.clone();
        let bytes = std::fs::read(&settings.component).map_err(|source| LoadError::Read {
            provider: provider.clone(),
            path: settings.component.clone(),
            source,
        })?;
        let actual = cache::sha256_hex(&bytes);
        if actual != settings.sha256 {
            return Err(LoadError::DigestMismatch {
                provider,
                path: settings.component.clone(),
                expected: settings.sha256.clone(),
                actual,
            });
        }
        let compile_err = |e: wasmtime::Error| LoadError::Compile {
            provider: provider.clone(),
            path: settings.component.clone(),
            message: format!("{e:#}"),
        };
        let component = match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, &bytes, &actual)
                .map_err(compile_err)?,
            None => Component::new(&self.engine, &bytes).map_err(compile_err)?,
        };
        drop(bytes);
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(bindings::ProviderPluginPre::new)
            .map_err(|e| LoadError::Link {
                provider: provider.clone(),
                message: format!("{e:#}"),
            })?;
        let grants = Grants::from_settings(settings).map_err(|source| LoadError::Grant {
            provider: provider.clone(),
            source,
        })?;
        Ok(Provider::new(
            self.engine.clone(),
            pre,
            Arc::new(grants),
            settings,
            actual,
            audit,
        ))
    }
}

/// Advances the engine's epoch until the engine is dropped. Epochs never
/// interrupt host code, so host calls keep their own timeouts.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("keyhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
