//! The thin layer over the guest imports, and the exported provider.
//!
//! A plugin names itself with a [`Flavor`] and exports [`Provider`]:
//!
//! ```ignore
//! struct LocalStack;
//! impl keyhost_kms_protocol::Flavor for LocalStack {
//!     const NAME: &'static str = "localstack";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//! }
//! type Plugin = keyhost_kms_protocol::Provider<LocalStack>;
//! keyhost_guest::export!(Plugin with_types_in keyhost_guest::bindings);
//! ```

use std::marker::PhantomData;

use keyhost_guest::http::{self, HttpError};
use keyhost_guest::log;
use keyhost_guest::{ContextEntry, DataKey, Description, Guest, ProviderError, WrappedKey};
use zeroize::{Zeroize, Zeroizing};

use crate::KEY_ID_CONFIG;
use crate::client::{Imports, Kms, Reply};
use crate::request::{self, KmsRequest};

/// What distinguishes one KMS plugin from another inside the guest.
pub trait Flavor: 'static {
    /// The provider name `describe` reports, such as `aws-kms`.
    const NAME: &'static str;
    /// The plugin's version, `env!("CARGO_PKG_VERSION")` of its crate.
    const VERSION: &'static str;
}

/// The `provider` export for a flavor.
pub struct Provider<F>(PhantomData<F>);

/// The host imports.
pub struct GuestImports;

impl Imports for GuestImports {
    fn configured_key_id(&mut self) -> Result<String, ProviderError> {
        keyhost_guest::required_config(KEY_ID_CONFIG)
    }

    fn send(&mut self, kms: &mut KmsRequest) -> Result<Reply, HttpError> {
        let mut outgoing = http::Request {
            method: request::METHOD.into(),
            path: request::PATH.into(),
            headers: kms
                .headers()
                .iter()
                .map(|(name, value)| http::Header {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            // The one body buffer moves here and is zeroized below.
            body: std::mem::take(&mut *kms.body),
        };
        let result = http::send(&outgoing);
        outgoing.body.zeroize();
        result.map(|response| Reply {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: Zeroizing::new(response.body),
        })
    }

    fn debug(&mut self, line: &str) {
        log::write(log::Level::Debug, line);
    }
}

impl<F: Flavor> Provider<F> {
    fn kms() -> Kms<GuestImports> {
        Kms::new(GuestImports, F::NAME, F::VERSION)
    }
}

impl<F: Flavor> Guest for Provider<F> {
    fn describe() -> Result<Description, ProviderError> {
        Self::kms().describe()
    }

    fn generate_data_key(context: Vec<ContextEntry>) -> Result<DataKey, ProviderError> {
        let mut generated = Self::kms().generate_data_key(&context)?;
        Ok(DataKey {
            // Moves the one buffer out; the host takes it from here.
            plaintext: std::mem::take(&mut *generated.plaintext),
            wrapped: generated.wrapped,
        })
    }

    fn wrap(dek: Vec<u8>, context: Vec<ContextEntry>) -> Result<WrappedKey, ProviderError> {
        let dek = Zeroizing::new(dek);
        Self::kms().wrap(&dek, &context)
    }

    fn unwrap(wrapped: WrappedKey, context: Vec<ContextEntry>) -> Result<Vec<u8>, ProviderError> {
        let mut dek = Self::kms().unwrap(&wrapped, &context)?;
        Ok(std::mem::take(&mut *dek))
    }

    fn re_encrypt(
        wrapped: WrappedKey,
        context: Vec<ContextEntry>,
        destination_key_id: Option<String>,
    ) -> Result<WrappedKey, ProviderError> {
        Self::kms().re_encrypt(&wrapped, &context, destination_key_id.as_deref())
    }
}
