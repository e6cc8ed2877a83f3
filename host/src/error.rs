//! The library's error type: what failed, why, and how to fix it.

use crate::config::ConfigError;
use crate::envelope::{ContextError, EnvelopeError};
use crate::runtime::{CallError, LoadError, Operation};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("invalid encryption context: {0}")]
    Context(#[from] ContextError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Audit(#[from] crate::capabilities::AuditError),
    #[error("provider {provider} failed to {operation}: {source}")]
    Call {
        provider: String,
        operation: Operation,
        #[source]
        source: CallError,
    },
    #[error(
        "envelope was wrapped by provider {provider:?}, which profile {profile:?} does not load (it loads: {}). \
         If it should, add it to the profile's decrypt_only list; if the provider was retired, rewrap its \
         envelopes first with `keyhost rewrap --from {provider} --to <provider>`",
        loaded.join(", ")
    )]
    ProviderNotLoaded {
        provider: String,
        profile: String,
        loaded: Vec<String>,
    },
    #[error(
        "envelope is bound to context {{{found}}}, not {{{expected}}}; pass the context it was encrypted with"
    )]
    ContextMismatch { expected: String, found: String },
    #[error(
        "provider {provider} returned key id {returned:?} for an envelope wrapped with {recorded:?}"
    )]
    KeyIdChanged {
        provider: String,
        recorded: String,
        returned: String,
    },
}

impl Error {
    pub(crate) fn call(
        provider: &str,
        operation: Operation,
    ) -> impl FnOnce(CallError) -> Error + '_ {
        move |source| Error::Call {
            provider: provider.to_owned(),
            operation,
            source,
        }
    }

    /// The provider's typed error, when the failure came from one.
    pub fn call_error(&self) -> Option<&CallError> {
        match self {
            Error::Call { source, .. } => Some(source),
            _ => None,
        }
    }
}
