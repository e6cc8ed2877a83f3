//! The `env` provider: Oponn's legacy master key, read from an environment
//! variable through the host's `secrets` grant (secret `master-key`).
//!
//! The key is 32 bytes, given as base64 or hex. A DEK is wrapped with
//! AES-256-GCM under that key: `nonce (12) || ciphertext || tag (16)`, with the
//! key id and the encryption context as associated data. The key id is a
//! fingerprint of the key, `env:sha256:<first 16 bytes, hex>`, never the key.
//! The plugin builds the associated data and checks the key id and lengths;
//! AES-GCM (with its nonce) and SHA-256 themselves are the host's `crypto`
//! capability (AES-NI and SHA extensions rather than portable software
//! inside WebAssembly).

// Without std the component imports nothing of WASI but randomness: no
// stdio, environment or exit for a panic message to reach, and fewer imports
// to wire up for every fresh instance. A panic traps.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use base64::Engine as _;
use keyhost_guest::crypto::{self, CryptoError};
use keyhost_guest::{
    ContextEntry, DataKey, Description, Features, Guest, ProviderError, WrappedKey,
};
use zeroize::{Zeroize, Zeroizing};

const SECRET_NAME: &str = "master-key";
const AAD_LABEL: &[u8] = b"keyhost/env/v1";
const FINGERPRINT_LABEL: &[u8] = b"keyhost/env/fingerprint/v1";
const KEY_ID_PREFIX: &str = "env:sha256:";
/// `env:sha256:` and 16 bytes in hex.
const KEY_ID_LEN: usize = KEY_ID_PREFIX.len() + 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DEK_LEN: usize = 32;

struct EnvProvider;

/// The master key of this call, with its fingerprint, and where it came from
/// (for messages).
struct MasterKey {
    key_id: String,
    key: Zeroizing<[u8; 32]>,
    origin: String,
}

// `memcmp` comes from wasi-libc's archive, as it does under std; only that
// object is linked, and it imports nothing.
#[cfg(target_arch = "wasm32")]
#[link(name = "c")]
unsafe extern "C" {}

/// Every heap allocation lives for one call and is wiped when the call's
/// results are freed (see `keyhost_guest::arena`), so heap buffers holding
/// keys need no `Zeroizing` of their own here.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: keyhost_guest::arena::linear::CallArena =
    keyhost_guest::arena::linear::CallArena::new();

/// The canonical ABI's allocator export, on the Rust allocator (under std,
/// wasi-libc provides it on libc's `malloc`).
///
/// # Safety
/// Called by the component runtime only, with `old_ptr`, `old_len` and
/// `align` from an earlier allocation of this function (or 0 for a new one).
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the runtime passes a power-of-two alignment and, for a
    // reallocation, the layout it was given before.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(
                old_ptr,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable();
    }
    ptr
}

#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

/// Longest secret text the cache below holds (64 hex digits and a newline,
/// or base64, fit); a longer one is decoded at every call.
const CACHED_TEXT_MAX: usize = 128;

/// The last key decoded, by the secret's text. A warm instance
/// (`instances = "reuse"`) then skips decoding and fingerprinting; a changed
/// secret is decoded afresh. It is a `static`, not a heap value, because the
/// heap is wiped after every call.
static LAST: LastKey = LastKey(RefCell::new(None));

struct Decoded {
    text: [u8; CACHED_TEXT_MAX],
    text_len: usize,
    key: [u8; 32],
    key_id: [u8; KEY_ID_LEN],
}

struct LastKey(RefCell<Option<Decoded>>);

// SAFETY: a component instance runs on one thread (wasm32 without the
// threads proposal), so the cell is never shared between threads.
unsafe impl Sync for LastKey {}

impl LastKey {
    fn get(&self, text: &[u8]) -> Option<(Zeroizing<[u8; 32]>, String)> {
        let last = self.0.borrow();
        let last = last.as_ref()?;
        if !same_bytes(&last.text[..last.text_len], text) {
            return None;
        }
        let key_id = core::str::from_utf8(&last.key_id).ok()?;
        Some((Zeroizing::new(last.key), key_id.into()))
    }

    fn put(&self, text: &[u8], key: &[u8; 32], key_id: &str) {
        let mut last = self.0.borrow_mut();
        if let Some(old) = last.as_mut() {
            old.text.zeroize();
            old.key.zeroize();
        }
        *last = None;
        if text.len() > CACHED_TEXT_MAX || key_id.len() != KEY_ID_LEN {
            return;
        }
        // Filled in place, so no copy of the key is left on the stack.
        let slot = last.insert(Decoded {
            text: [0; CACHED_TEXT_MAX],
            text_len: text.len(),
            key: [0; 32],
            key_id: [0; KEY_ID_LEN],
        });
        slot.text[..text.len()].copy_from_slice(text);
        slot.key.copy_from_slice(key);
        slot.key_id.copy_from_slice(key_id.as_bytes());
    }
}

impl MasterKey {
    fn load() -> Result<Self, ProviderError> {
        let secret = keyhost_guest::secret(SECRET_NAME)?;
        if let Some((key, key_id)) = LAST.get(&secret.value) {
            return Ok(Self {
                key_id,
                key,
                origin: secret.origin,
            });
        }
        let key = Self::decode(&secret.value, secret.origin)?;
        LAST.put(&secret.value, &key.key, &key.key_id);
        Ok(key)
    }

    fn decode(raw: &[u8], origin: String) -> Result<Self, ProviderError> {
        let text = core::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| malformed(&origin, "it is not text"))?;
        let key = match decode_hex(text.as_bytes()) {
            Some(key) => Zeroizing::new(key),
            None => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| malformed(&origin, "it is neither 64 hex digits nor base64"))?;
                let key: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
                    malformed(
                        &origin,
                        &format!("it decodes to {} bytes, not 32", decoded.len()),
                    )
                })?;
                Zeroizing::new(key)
            }
        };
        let mut input = Vec::with_capacity(FINGERPRINT_LABEL.len() + key.len());
        input.extend_from_slice(FINGERPRINT_LABEL);
        input.extend_from_slice(key.as_slice());
        let digest = crypto::sha256(&input)
            .map_err(|e| ProviderError::Internal(format!("SHA-256 refused the key: {e:?}")))?;
        let mut key_id = String::with_capacity(KEY_ID_LEN);
        key_id.push_str(KEY_ID_PREFIX);
        for byte in digest.iter().take(16) {
            key_id.push(HEX_DIGITS[usize::from(byte >> 4)] as char);
            key_id.push(HEX_DIGITS[usize::from(byte & 0xf)] as char);
        }
        Ok(Self {
            key_id,
            key,
            origin,
        })
    }

    /// `nonce || ciphertext || tag`; the host draws the nonce.
    fn seal(&self, aad: &[u8], dek: &[u8]) -> Result<Vec<u8>, ProviderError> {
        crypto::aes256_gcm_seal(self.key.as_slice(), aad, dek)
            .map_err(|e| ProviderError::Internal(format!("AES-GCM refused to encrypt: {e:?}")))
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ProviderError> {
        crypto::aes256_gcm_open(self.key.as_slice(), aad, sealed).map_err(|e| match e {
            CryptoError::AuthenticationFailed => ProviderError::InvalidCiphertext(
                "the wrapped key failed authentication: it was altered or wrapped under another context".into(),
            ),
            CryptoError::InvalidInput => {
                ProviderError::Internal("AES-GCM refused the wrapped key's lengths".into())
            }
        })
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// 64 hex digits (either case) as 32 bytes; `None` for anything else.
fn decode_hex(text: &[u8]) -> Option<[u8; 32]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

/// Whether two secrets are equal, eight bytes at a time and without an early
/// exit (WebAssembly's `memcmp` goes byte by byte).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or_default());
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
    a_words
        .zip(b_words)
        .fold(tail, |acc, (x, y)| acc | (word(x) ^ word(y)))
        == 0
}

fn malformed(origin: &str, why: &str) -> ProviderError {
    ProviderError::Misconfigured(format!(
        "the master key in {origin} is malformed: {why}; it must be 32 bytes as base64 or 64 hex digits"
    ))
}

impl Guest for EnvProvider {
    fn describe() -> Result<Description, ProviderError> {
        let key = MasterKey::load()?;
        Ok(Description {
            name: "env".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            key_id: key.key_id,
            features: Features::empty(),
        })
    }

    fn generate_data_key(context: Vec<ContextEntry>) -> Result<DataKey, ProviderError> {
        let mut dek = vec![0u8; DEK_LEN];
        getrandom::fill(&mut dek)
            .map_err(|e| ProviderError::Internal(format!("no randomness: {e}")))?;
        let wrapped = Self::wrap(dek.clone(), context)?;
        Ok(DataKey {
            plaintext: dek,
            wrapped,
        })
    }

    fn wrap(dek: Vec<u8>, context: Vec<ContextEntry>) -> Result<WrappedKey, ProviderError> {
        if dek.len() != DEK_LEN {
            return Err(ProviderError::Internal(format!(
                "data key is {} bytes, not 32",
                dek.len()
            )));
        }
        let key = MasterKey::load()?;
        let aad = keyhost_guest::context_aad(AAD_LABEL, &key.key_id, &context);
        let ciphertext = key.seal(&aad, &dek)?;
        Ok(WrappedKey {
            key_id: key.key_id,
            ciphertext,
        })
    }

    fn unwrap(wrapped: WrappedKey, context: Vec<ContextEntry>) -> Result<Vec<u8>, ProviderError> {
        let key = MasterKey::load()?;
        if wrapped.key_id != key.key_id {
            return Err(ProviderError::InvalidCiphertext(format!(
                "the data key was wrapped with master key {}, but {} holds {}",
                wrapped.key_id, key.origin, key.key_id
            )));
        }
        if wrapped.ciphertext.len() != NONCE_LEN + DEK_LEN + TAG_LEN {
            return Err(ProviderError::InvalidCiphertext(format!(
                "a wrapped key is {} bytes, this one is {}",
                NONCE_LEN + DEK_LEN + TAG_LEN,
                wrapped.ciphertext.len()
            )));
        }
        let aad = keyhost_guest::context_aad(AAD_LABEL, &key.key_id, &context);
        key.open(&aad, &wrapped.ciphertext)
    }

    fn re_encrypt(
        _wrapped: WrappedKey,
        _context: Vec<ContextEntry>,
        _destination_key_id: Option<String>,
    ) -> Result<WrappedKey, ProviderError> {
        Err(ProviderError::Denied(
            "the env provider cannot re-encrypt; unwrap and wrap instead".into(),
        ))
    }
}

keyhost_guest::export!(EnvProvider with_types_in keyhost_guest::bindings);
