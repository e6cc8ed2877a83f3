//! keyhost: envelope encryption for ballots, with master-key providers that
//! run as sandboxed WebAssembly components.
//!
//! The layers, bottom up:
//! - [`envelope`]: the envelope format and its cryptography; no I/O.
//! - [`runtime`]: loading provider components into wasmtime and calling them
//!   under limits.
//! - [`capabilities`]: the host functions a provider may be granted.
//! - [`config`]: `keyhost.toml`, its profiles and grants.
//! - [`keyhost`]: encrypt, decrypt and inspect on top of a profile's providers.

pub mod capabilities;
pub mod config;
pub mod envelope;
mod error;
pub mod infra;
mod keyhost;
pub mod migrate;
pub mod runtime;

pub use error::Error;
pub use keyhost::Keyhost;
pub use runtime::{CallError, Operation};
