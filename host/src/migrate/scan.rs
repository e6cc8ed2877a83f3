//! `keyhost scan`: envelopes counted by provider and key id.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::envelope::Envelope;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyCount {
    pub provider: String,
    pub key_id: String,
    pub envelopes: u64,
    /// On the encrypting provider's current key.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub total: u64,
    pub keys: Vec<KeyCount>,
    /// Envelopes not on the current key (all, when the current key is unknown).
    pub not_current: u64,
    pub unreadable: Vec<super::Failure>,
    #[serde(skip)]
    counts: BTreeMap<(String, String), u64>,
    #[serde(skip)]
    current: Option<(String, String)>,
}

impl ScanReport {
    pub(crate) fn new(current: Option<(&str, &str)>) -> Self {
        Self {
            total: 0,
            keys: Vec::new(),
            not_current: 0,
            unreadable: Vec::new(),
            counts: BTreeMap::new(),
            current: current.map(|(p, k)| (p.to_owned(), k.to_owned())),
        }
    }

    pub(crate) fn add(&mut self, id: &str, stored: Result<&[u8], String>) {
        self.total += 1;
        match stored.and_then(|bytes| Envelope::parse(bytes).map_err(|e| e.to_string())) {
            Ok(envelope) => {
                let key = envelope.key_section();
                *self
                    .counts
                    .entry((key.provider.clone(), key.key_id.clone()))
                    .or_default() += 1;
            }
            Err(error) => self.unreadable.push(super::Failure {
                id: id.to_owned(),
                error,
            }),
        }
    }

    /// Fixes the totals once every envelope was added.
    pub(crate) fn finish(mut self) -> Self {
        self.keys = self
            .counts
            .iter()
            .map(|((provider, key_id), &envelopes)| KeyCount {
                current: self
                    .current
                    .as_ref()
                    .is_some_and(|(p, k)| p == provider && k == key_id),
                provider: provider.clone(),
                key_id: key_id.clone(),
                envelopes,
            })
            .collect();
        self.not_current = self
            .keys
            .iter()
            .filter(|k| !k.current)
            .map(|k| k.envelopes)
            .sum();
        self
    }

    /// Envelopes still wrapped by `provider`.
    pub fn count_for(&self, provider: &str) -> u64 {
        self.keys
            .iter()
            .filter(|k| k.provider == provider)
            .map(|k| k.envelopes)
            .sum()
    }
}
