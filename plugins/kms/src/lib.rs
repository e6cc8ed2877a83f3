//! The AWS KMS protocol (JSON 1.1) as the `localstack` and `aws-kms` provider
//! plugins speak it through the host's `http` capability.
//!
//! Every request is `POST /` with `X-Amz-Target: TrentService.<Op>`,
//! `Content-Type: application/x-amz-json-1.1` and a JSON body. The host owns
//! the endpoint and signs the request (SigV4) with its own credentials, so
//! the guest never sets `Host`, `Authorization`, `X-Amz-Date` and the like.
//!
//! The crate is layered so that everything but the calls into the host runs
//! natively under `cargo test`:
//!
//! - [`request`] builds the request bodies and headers,
//! - [`response`] parses the answers,
//! - [`error`] maps KMS errors and host http errors to `provider-error`,
//! - [`client`] is the provider's behaviour over an [`client::Imports`] trait,
//! - [`guest`] implements that trait with the guest imports and exports the
//!   provider for a [`Flavor`] (a plugin's name and version).
//!
//! Every buffer that holds a plaintext data key (its bytes, its base64 and
//! the JSON body around it) is zeroized when dropped.

pub mod client;
pub mod error;
pub mod guest;
pub mod request;
pub mod response;

pub use guest::{Flavor, Provider};

/// Length of a data key: AES-256.
pub const DEK_LEN: usize = 32;

/// The config key naming the KMS key new data keys are wrapped with.
pub const KEY_ID_CONFIG: &str = "key_id";
