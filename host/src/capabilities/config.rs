//! `keyhost:provider/config`: the guest reads the non-secret values of its
//! own provider table, and nothing else.

use crate::runtime::HostState;
use crate::runtime::bindings::config::Host;

impl Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.grants.config.get(&key).cloned())
    }
}
