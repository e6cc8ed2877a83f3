//! One loaded provider and its operations.
//!
//! Every operation takes a permit (the provider's instance limit), gets an
//! instance (fresh by default, or a warm one under the `reuse` policy), runs
//! under the deadline, and is audited. A trap, a deadline or a refused memory
//! growth discards the instance; the next operation starts clean.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore};
use wasmtime::component::Component;
use wasmtime::{Engine, Store, Trap};
use zeroize::Zeroizing;

use super::EPOCH_TICK;
use super::bindings::{self, ProviderError, ProviderPlugin, ProviderPluginPre, WitWrappedKey};
use super::state::HostState;
use crate::capabilities::{Audit, AuditEvent, Grants, Outcome};
use crate::config::{InstancePolicy, ProviderSettings};
use crate::envelope::{DataKey, EncryptionContext};

/// A provider operation, as audited and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Describe,
    GenerateDataKey,
    Wrap,
    Unwrap,
    ReEncrypt,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Describe => "describe",
            Operation::GenerateDataKey => "generate-data-key",
            Operation::Wrap => "wrap",
            Operation::Unwrap => "unwrap",
            Operation::ReEncrypt => "re-encrypt",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The provider's own typed error kinds, as the WIT defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderErrorKind {
    Denied,
    InvalidCiphertext,
    Unavailable,
    Throttled,
    Misconfigured,
    Internal,
}

impl ProviderErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::InvalidCiphertext => "invalid-ciphertext",
            Self::Unavailable => "unavailable",
            Self::Throttled => "throttled",
            Self::Misconfigured => "misconfigured",
            Self::Internal => "internal",
        }
    }

    /// Worth trying again later.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Throttled)
    }
}

/// Why an operation on a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The provider answered with one of its typed errors.
    #[error("{}: {message}", kind.as_str())]
    Provider {
        kind: ProviderErrorKind,
        message: String,
    },
    #[error("the provider did not finish within its {}ms deadline (limits.deadline_ms) and was stopped", deadline.as_millis())]
    DeadlineExceeded { deadline: Duration },
    #[error(
        "the provider asked for {requested} bytes of memory, over its {limit}-byte limit (limits.memory_mib), and was stopped"
    )]
    MemoryLimit { limit: usize, requested: usize },
    #[error("the provider crashed ({message}); the instance was discarded")]
    Trapped { message: String },
    #[error("the provider gave an invalid answer: {0}")]
    BadReply(String),
    #[error("the operation was not audited, so it was refused: {0}")]
    AuditUnavailable(String),
}

impl CallError {
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Provider { kind, .. } => kind.as_str(),
            CallError::DeadlineExceeded { .. } => "deadline",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Trapped { .. } => "trap",
            CallError::BadReply(_) => "bad-reply",
            CallError::AuditUnavailable(_) => "audit-unavailable",
        }
    }

    pub fn provider_kind(&self) -> Option<ProviderErrorKind> {
        match self {
            CallError::Provider { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<ProviderError> for CallError {
    fn from(error: ProviderError) -> Self {
        let (kind, message) = match error {
            ProviderError::Denied(m) => (ProviderErrorKind::Denied, m),
            ProviderError::InvalidCiphertext(m) => (ProviderErrorKind::InvalidCiphertext, m),
            ProviderError::Unavailable(m) => (ProviderErrorKind::Unavailable, m),
            ProviderError::Throttled(m) => (ProviderErrorKind::Throttled, m),
            ProviderError::Misconfigured(m) => (ProviderErrorKind::Misconfigured, m),
            ProviderError::Internal(m) => (ProviderErrorKind::Internal, m),
        };
        let message = crate::capabilities::clean_guest_text(&message);
        CallError::Provider { kind, message }
    }
}

/// What `describe` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderDescription {
    pub name: String,
    pub version: String,
    pub key_id: String,
    pub generate_data_key: bool,
    pub re_encrypt: bool,
}

/// A data key wrapped by a provider, as the host keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

enum Request<'a> {
    Describe,
    GenerateDataKey(&'a Vec<bindings::types::ContextEntry>),
    Wrap(&'a DataKey, &'a Vec<bindings::types::ContextEntry>),
    Unwrap(&'a WrappedKey, &'a Vec<bindings::types::ContextEntry>),
    ReEncrypt(
        &'a WrappedKey,
        &'a Vec<bindings::types::ContextEntry>,
        Option<&'a str>,
    ),
}

enum Reply {
    Description(bindings::WitDescription),
    /// The plaintext DEK, wiped on drop, and its wrapped form.
    DataKey(Zeroizing<Vec<u8>>, WitWrappedKey),
    Wrapped(WitWrappedKey),
    Plaintext(Zeroizing<Vec<u8>>),
}

struct Warm {
    store: Store<HostState>,
    plugin: ProviderPlugin,
}

/// A provider loaded from its component, ready to serve operations.
pub struct Provider {
    name: String,
    engine: Engine,
    pre: ProviderPluginPre<HostState>,
    grants: Arc<Grants>,
    policy: InstancePolicy,
    deadline: Duration,
    permits: Semaphore,
    warm: Mutex<Vec<Warm>>,
    component_sha256: String,
    audit: Audit,
    description: OnceCell<ProviderDescription>,
}

impl Provider {
    pub(super) fn new(
        engine: Engine,
        pre: ProviderPluginPre<HostState>,
        grants: Arc<Grants>,
        settings: &ProviderSettings,
        component_sha256: String,
        audit: Audit,
    ) -> Self {
        Self {
            name: settings.name.clone(),
            engine,
            pre,
            deadline: settings.limits.deadline,
            permits: Semaphore::new(settings.limits.max_instances),
            policy: settings.instances,
            grants,
            warm: Mutex::new(Vec::new()),
            component_sha256,
            audit,
            description: OnceCell::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn component_sha256(&self) -> &str {
        &self.component_sha256
    }

    pub fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }

    /// Whether the provider may reach the network (its calls count against
    /// KMS request quotas).
    pub fn has_http_grant(&self) -> bool {
        self.grants.http.is_some()
    }

    pub fn instance_policy(&self) -> InstancePolicy {
        self.policy
    }

    /// The provider's description, asked once and then remembered.
    pub async fn description(&self) -> Result<&ProviderDescription, CallError> {
        self.description.get_or_try_init(|| self.describe()).await
    }

    /// Asks the provider to describe itself now.
    pub async fn describe(&self) -> Result<ProviderDescription, CallError> {
        match self.call(Request::Describe, None, None).await? {
            Reply::Description(d) => Ok(ProviderDescription {
                name: d.name,
                version: d.version,
                key_id: d.key_id,
                generate_data_key: d.features.contains(bindings::Features::GENERATE_DATA_KEY),
                re_encrypt: d.features.contains(bindings::Features::RE_ENCRYPT),
            }),
            _ => unreachable!("describe answers with a description"),
        }
    }

    pub async fn generate_data_key(
        &self,
        context: &EncryptionContext,
    ) -> Result<(DataKey, WrappedKey), CallError> {
        let entries = wit_context(context);
        match self
            .call(Request::GenerateDataKey(&entries), Some(context), None)
            .await?
        {
            Reply::DataKey(mut plaintext, wrapped) => {
                let dek = DataKey::from_vec(std::mem::take(&mut *plaintext))
                    .map_err(|e| CallError::BadReply(e.to_string()))?;
                Ok((dek, checked_wrapped(wrapped)?))
            }
            _ => unreachable!("generate-data-key answers with a data key"),
        }
    }

    pub async fn wrap(
        &self,
        dek: &DataKey,
        context: &EncryptionContext,
    ) -> Result<WrappedKey, CallError> {
        let entries = wit_context(context);
        match self
            .call(Request::Wrap(dek, &entries), Some(context), None)
            .await?
        {
            Reply::Wrapped(wrapped) => checked_wrapped(wrapped),
            _ => unreachable!("wrap answers with a wrapped key"),
        }
    }

    pub async fn unwrap(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
    ) -> Result<DataKey, CallError> {
        let entries = wit_context(context);
        match self
            .call(
                Request::Unwrap(wrapped, &entries),
                Some(context),
                Some(&wrapped.key_id),
            )
            .await?
        {
            Reply::Plaintext(mut bytes) => DataKey::from_vec(std::mem::take(&mut *bytes))
                .map_err(|e| CallError::BadReply(e.to_string())),
            _ => unreachable!("unwrap answers with plaintext"),
        }
    }

    pub async fn re_encrypt(
        &self,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        destination_key_id: Option<&str>,
    ) -> Result<WrappedKey, CallError> {
        let entries = wit_context(context);
        match self
            .call(
                Request::ReEncrypt(wrapped, &entries, destination_key_id),
                Some(context),
                Some(&wrapped.key_id),
            )
            .await?
        {
            Reply::Wrapped(wrapped) => checked_wrapped(wrapped),
            _ => unreachable!("re-encrypt answers with a wrapped key"),
        }
    }

    async fn call(
        &self,
        request: Request<'_>,
        context: Option<&EncryptionContext>,
        key_id: Option<&str>,
    ) -> Result<Reply, CallError> {
        let operation = request.operation();
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        let result = self.run(request).await;

        if self.audit.is_enabled() {
            self.audit_call(operation, &result, context, key_id, started)?;
        }
        result
    }

    fn audit_call(
        &self,
        operation: Operation,
        result: &Result<Reply, CallError>,
        context: Option<&EncryptionContext>,
        key_id: Option<&str>,
        started: Instant,
    ) -> Result<(), CallError> {
        let mut event = AuditEvent::new(
            operation.as_str(),
            &self.name,
            if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Error
            },
            started.elapsed(),
        );
        if let Some(context) = context {
            event = event.context(context);
        }
        event.key_id = match result {
            Ok(Reply::Wrapped(w)) => Some(w.key_id.clone()),
            Ok(Reply::DataKey(_, wrapped)) => Some(wrapped.key_id.clone()),
            Ok(Reply::Description(d)) => Some(d.key_id.clone()),
            _ => key_id.map(str::to_owned),
        };
        event.detail = result.as_ref().err().map(|e| e.kind().to_owned());
        event.component_sha256 = Some(self.component_sha256.clone());
        self.audit
            .record(event)
            .map_err(|e| CallError::AuditUnavailable(e.to_string()))
    }

    /// Runs one request on an instance and decides the instance's fate.
    async fn run(&self, request: Request<'_>) -> Result<Reply, CallError> {
        let operation = request.operation();
        let warm = match self.policy {
            InstancePolicy::Reuse => self.warm.lock().unwrap_or_else(|p| p.into_inner()).pop(),
            InstancePolicy::Fresh => None,
        };
        let deadline_ticks = (self.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1;
        let wall = self.deadline + EPOCH_TICK * 4;

        // One timeout covers instantiation and the call: the epoch deadline
        // stops guest code, and this also covers time spent inside host
        // calls, with a little slack for the epoch tick.
        let attempt = async {
            let mut instance = match warm {
                Some(mut warm) => {
                    warm.store.data_mut().reset_for_call();
                    warm.store.set_epoch_deadline(deadline_ticks);
                    warm
                }
                None => self.instantiate(deadline_ticks).await?,
            };
            let result = match invoke(&mut instance, request).await {
                Err(trap) => Err(self.classify_trap(trap, &instance.store)),
                Ok(Err(provider_error)) => Err(CallError::from(provider_error)),
                Ok(Ok(reply)) => Ok(reply),
            };
            Ok((instance, result))
        };
        let (instance, result) = match tokio::time::timeout(wall, attempt).await {
            Ok(Ok(done)) => done,
            Ok(Err(instantiation)) => return Err(instantiation),
            Err(_) => {
                return Err(CallError::DeadlineExceeded {
                    deadline: self.deadline,
                });
            }
        };
        let dropped = instance.store.data().log_dropped;
        if dropped > 0 {
            eprintln!(
                "keyhost: provider {}: {dropped} log lines of one {} were dropped (limits.log_lines_per_call)",
                self.name, operation
            );
        }
        if instance.store.data().audit_failed {
            return Err(CallError::AuditUnavailable(
                "an http call of this operation could not be written to the audit log".into(),
            ));
        }
        // A typed error leaves the instance sound; a trap or timeout does not.
        let reusable = matches!(result, Ok(_) | Err(CallError::Provider { .. }));
        if reusable && self.policy == InstancePolicy::Reuse {
            self.warm
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(instance);
        }
        result
    }

    /// A fresh store and instance, under the memory cap and the deadline.
    async fn instantiate(&self, deadline_ticks: u64) -> Result<Warm, CallError> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(self.grants.clone(), self.audit.clone()),
        );
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks);
        match self.pre.instantiate_async(&mut store).await {
            Ok(plugin) => Ok(Warm { store, plugin }),
            Err(err) => Err(self.classify_trap(err, &store)),
        }
    }

    fn classify_trap(&self, err: wasmtime::Error, store: &Store<HostState>) -> CallError {
        if let Some(requested) = store.data().limiter.refused {
            return CallError::MemoryLimit {
                limit: self.grants.limits.memory_bytes,
                requested,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::DeadlineExceeded {
                deadline: self.deadline,
            },
            Some(Trap::StackOverflow) => CallError::Trapped {
                message: "call stack exhausted".into(),
            },
            Some(Trap::UnreachableCodeReached) => CallError::Trapped {
                message: "the guest panicked or aborted".into(),
            },
            Some(trap) => CallError::Trapped {
                message: trap.to_string(),
            },
            None => CallError::Trapped {
                message: crate::capabilities::clean_guest_text(&format!("{err:#}")),
            },
        }
    }
}

impl Request<'_> {
    fn operation(&self) -> Operation {
        match self {
            Request::Describe => Operation::Describe,
            Request::GenerateDataKey(_) => Operation::GenerateDataKey,
            Request::Wrap(..) => Operation::Wrap,
            Request::Unwrap(..) => Operation::Unwrap,
            Request::ReEncrypt(..) => Operation::ReEncrypt,
        }
    }
}

async fn invoke(
    instance: &mut Warm,
    request: Request<'_>,
) -> wasmtime::Result<Result<Reply, ProviderError>> {
    let api = instance.plugin.keyhost_provider_provider();
    let store = &mut instance.store;
    Ok(match request {
        Request::Describe => api.call_describe(store).await?.map(Reply::Description),
        Request::GenerateDataKey(context) => api
            .call_generate_data_key(store, context)
            .await?
            .map(|key| Reply::DataKey(Zeroizing::new(key.plaintext), key.wrapped)),
        Request::Wrap(dek, context) => api
            .call_wrap(store, dek.expose(), context)
            .await?
            .map(Reply::Wrapped),
        Request::Unwrap(wrapped, context) => {
            let wit = WitWrappedKey {
                key_id: wrapped.key_id.clone(),
                ciphertext: wrapped.ciphertext.clone(),
            };
            api.call_unwrap(store, &wit, context)
                .await?
                .map(|plaintext| Reply::Plaintext(Zeroizing::new(plaintext)))
        }
        Request::ReEncrypt(wrapped, context, destination) => {
            let wit = WitWrappedKey {
                key_id: wrapped.key_id.clone(),
                ciphertext: wrapped.ciphertext.clone(),
            };
            api.call_re_encrypt(store, &wit, context, destination)
                .await?
                .map(Reply::Wrapped)
        }
    })
}

fn wit_context(context: &EncryptionContext) -> Vec<bindings::types::ContextEntry> {
    context
        .iter()
        .map(|(key, value)| bindings::types::ContextEntry {
            key: key.to_owned(),
            value: value.to_owned(),
        })
        .collect()
}

/// The host stores what a provider returns in envelopes: hold it to the
/// envelope's limits here, where the provider can be named.
fn checked_wrapped(wrapped: WitWrappedKey) -> Result<WrappedKey, CallError> {
    let key = crate::envelope::KeySection {
        provider: "checked".into(),
        key_id: wrapped.key_id,
        wrapped: wrapped.ciphertext,
    };
    key.validate()
        .map_err(|e| CallError::BadReply(e.to_string()))?;
    Ok(WrappedKey {
        key_id: key.key_id,
        ciphertext: key.wrapped,
    })
}
