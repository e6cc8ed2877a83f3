//! Host-side bindings for the `keyhost:provider` WIT package.
//!
//! Imports are trappable so that a host function can end a guest that abuses
//! it; `http` is async because it waits on the network.

wasmtime::component::bindgen!({
    world: "provider-plugin",
    path: "../wit",
    imports: {
        "keyhost:provider/http": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub use keyhost::provider::types::{
    DataKey as WitDataKey, Description as WitDescription, Features, ProviderError,
    WrappedKey as WitWrappedKey,
};
pub use keyhost::provider::{config, crypto, http, log, secrets, types};
