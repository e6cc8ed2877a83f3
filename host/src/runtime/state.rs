//! What a store holds for one provider instance: an empty WASI context, the
//! resource limiter, and the grants the capabilities consult.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::{Audit, Grants};

pub struct HostState {
    /// Built on the guest's first WASI call: most providers never make one,
    /// and a fresh instance per operation would otherwise build it each time.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) grants: Arc<Grants>,
    pub(crate) audit: Audit,
    /// Log lines this operation may still write.
    pub(crate) log_budget: u32,
    /// Set when the log budget ran out, so the drop is reported once.
    pub(crate) log_dropped: u32,
    /// Set when an audit event of this operation could not be written.
    pub(crate) audit_failed: bool,
}

impl HostState {
    pub(crate) fn new(grants: Arc<Grants>, audit: Audit) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(grants.limits.memory_bytes),
            log_budget: grants.limits.log_lines_per_call,
            log_dropped: 0,
            audit_failed: false,
            grants,
            audit,
        }
    }

    /// Makes a warm instance ready for its next operation.
    pub(crate) fn reset_for_call(&mut self) {
        self.log_budget = self.grants.limits.log_lines_per_call;
        self.log_dropped = 0;
        self.audit_failed = false;
        self.limiter.refused = None;
    }
}

/// The guest's WASI view of the world: no files, no environment, no
/// arguments, no stdio, no network, no name lookups. Clocks and randomness
/// stay, since they reveal nothing and AEAD nonces need randomness.
fn sandboxed_wasi() -> WasiCtx {
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(sandboxed_wasi),
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers a refusal, so that the trap that follows
/// can be reported as the memory limit rather than a generic crash.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) refused: Option<usize>,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}
