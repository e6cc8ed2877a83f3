//! The encryption context: non-secret, authenticated key/value pairs such as
//! `ballot_id` and `election_id`, kept sorted so that it has one encoding.

use std::collections::BTreeMap;
use std::fmt;

/// Most entries a context may hold.
pub const MAX_ENTRIES: usize = 32;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    #[error("context key is empty")]
    EmptyKey,
    #[error("context key {key:?} appears twice")]
    DuplicateKey { key: String },
    #[error("context key of {len} bytes is longer than the {MAX_KEY_BYTES}-byte limit")]
    KeyTooLong { len: usize },
    #[error("context value for {key:?} has {len} bytes, over the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLong { key: String, len: usize },
    #[error("context has {count} entries, over the {MAX_ENTRIES}-entry limit")]
    TooManyEntries { count: usize },
    #[error("context entry {entry:?} is not of the form key=value")]
    NotKeyValue { entry: String },
}

/// A validated encryption context. Iteration is in key order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a context from pairs, rejecting duplicates and oversized entries.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, ContextError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut context = Self::new();
        for (key, value) in pairs {
            context.insert(key.into(), value.into())?;
        }
        Ok(context)
    }

    /// Parses `key=value` arguments, as the CLI's `--context` takes them.
    pub fn from_assignments<S: AsRef<str>>(
        entries: impl IntoIterator<Item = S>,
    ) -> Result<Self, ContextError> {
        let mut context = Self::new();
        for entry in entries {
            let entry = entry.as_ref();
            let (key, value) = entry
                .split_once('=')
                .ok_or_else(|| ContextError::NotKeyValue {
                    entry: entry.to_owned(),
                })?;
            context.insert(key.to_owned(), value.to_owned())?;
        }
        Ok(context)
    }

    pub fn insert(&mut self, key: String, value: String) -> Result<(), ContextError> {
        if key.is_empty() {
            return Err(ContextError::EmptyKey);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(ContextError::KeyTooLong { len: key.len() });
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(ContextError::ValueTooLong {
                key,
                len: value.len(),
            });
        }
        if self.0.contains_key(&key) {
            return Err(ContextError::DuplicateKey { key });
        }
        if self.0.len() == MAX_ENTRIES {
            return Err(ContextError::TooManyEntries {
                count: MAX_ENTRIES + 1,
            });
        }
        self.0.insert(key, value);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl fmt::Display for EncryptionContext {
    /// `key=value` pairs separated by commas, in key order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}={value}")?;
        }
        Ok(())
    }
}
