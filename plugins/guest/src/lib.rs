//! What every keyhost provider plugin shares: the guest bindings of the
//! `keyhost:provider` WIT world, the encoding of the encryption context as
//! associated data, small helpers for errors and secrets, and the call arena
//! allocator.
//!
//! A provider implements [`bindings::exports::keyhost::provider::provider::Guest`]
//! and registers it with `keyhost_guest::export!(MyProvider with_types_in keyhost_guest::bindings);`.

#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub mod arena;

pub mod bindings {
    wit_bindgen::generate!({
        world: "provider-plugin",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "keyhost_guest::bindings",
    });
}

pub use bindings::export;
pub use bindings::exports::keyhost::provider::provider::Guest;
pub use bindings::keyhost::provider::types::{
    ContextEntry, DataKey, Description, Features, ProviderError, WrappedKey,
};
pub use bindings::keyhost::provider::{config, crypto, http, log, secrets};

/// Canonical bytes of a context for use as associated data: a label, then
/// each entry's key and value with 32-bit big-endian length prefixes, in the
/// order the host gives them (sorted by key).
pub fn context_aad(label: &[u8], key_id: &str, context: &[ContextEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        label.len()
            + 4
            + key_id.len()
            + context
                .iter()
                .map(|e| 8 + e.key.len() + e.value.len())
                .sum::<usize>(),
    );
    out.extend_from_slice(label);
    push_field(&mut out, key_id.as_bytes());
    for entry in context {
        push_field(&mut out, entry.key.as_bytes());
        push_field(&mut out, entry.value.as_bytes());
    }
    out
}

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A required non-secret setting from the provider's config table.
pub fn required_config(key: &str) -> Result<String, ProviderError> {
    config::get(key).ok_or_else(|| {
        ProviderError::Misconfigured(format!(
            "the provider's config table has no {key:?}; set it in keyhost.toml"
        ))
    })
}

/// A granted secret; the error says which grant or variable is missing.
pub fn secret(name: &str) -> Result<secrets::Secret, ProviderError> {
    secrets::get(name).map_err(|e| match e {
        secrets::SecretError::NotGranted(m) | secrets::SecretError::NotFound(m) => {
            ProviderError::Misconfigured(m)
        }
    })
}
