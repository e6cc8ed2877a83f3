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
use alloc::rc::Rc;
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
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DEK_LEN: usize = 32;

struct EnvProvider;

/// The master key, decoded, with its fingerprint, and where it came from
/// (for messages).
struct MasterKey {
    key_id: String,
    key: Zeroizing<[u8; 32]>,
    origin: String,
}

// `memcmp` and `malloc` come from wasi-libc's archive, as they do under std;
// only those objects are linked, and they import nothing.
#[cfg(target_arch = "wasm32")]
#[link(name = "c")]
unsafe extern "C" {}

/// wasi-libc's `malloc`, as under std: it first uses the free space of the
/// initial memory, so a fresh instance need not grow its memory.
#[cfg(target_arch = "wasm32")]
struct LibcAllocator;

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    fn aligned_alloc(align: usize, size: usize) -> *mut u8;
    fn free(ptr: *mut u8);
}

// SAFETY: wasi-libc's allocator returns memory aligned as asked (or null),
// and `free` takes what it returned.
#[cfg(target_arch = "wasm32")]
unsafe impl core::alloc::GlobalAlloc for LibcAllocator {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // `aligned_alloc` wants a size that is a multiple of the alignment.
        let size = layout.size().next_multiple_of(layout.align());
        unsafe { aligned_alloc(layout.align(), size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: core::alloc::Layout) {
        unsafe { free(ptr) }
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: LibcAllocator = LibcAllocator;

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

/// The last key decoded, by the secret's raw bytes. A warm instance
/// (`instances = "reuse"`) then skips decoding and fingerprinting; a changed
/// secret is decoded afresh.
static LAST: LastKey = LastKey(RefCell::new(None));

/// The secret's raw bytes and the key decoded from them.
type Decoded = (Zeroizing<Vec<u8>>, Rc<MasterKey>);

struct LastKey(RefCell<Option<Decoded>>);

// SAFETY: a component instance runs on one thread (wasm32 without the
// threads proposal), so the cell is never shared between threads.
unsafe impl Sync for LastKey {}

impl MasterKey {
    fn load() -> Result<Rc<Self>, ProviderError> {
        let secret = keyhost_guest::secret(SECRET_NAME)?;
        let raw = Zeroizing::new(secret.value);
        let cached = LAST
            .0
            .borrow()
            .as_ref()
            .filter(|(cached, _)| same_bytes(cached, &raw))
            .map(|(_, key)| key.clone());
        if let Some(key) = cached {
            return Ok(key);
        }
        let key = Rc::new(Self::decode(&raw, secret.origin)?);
        *LAST.0.borrow_mut() = Some((raw, key.clone()));
        Ok(key)
    }

    fn decode(raw: &[u8], origin: String) -> Result<Self, ProviderError> {
        let text = core::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| malformed(&origin, "it is not text"))?;
        let mut decoded = Zeroizing::new(
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(text).map_err(|_| malformed(&origin, "it is not valid hex"))?
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| malformed(&origin, "it is neither 64 hex digits nor base64"))?
            },
        );
        let key: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            malformed(
                &origin,
                &format!("it decodes to {} bytes, not 32", decoded.len()),
            )
        })?;
        decoded.zeroize();
        let key = Zeroizing::new(key);
        let mut input = Zeroizing::new(Vec::with_capacity(FINGERPRINT_LABEL.len() + key.len()));
        input.extend_from_slice(FINGERPRINT_LABEL);
        input.extend_from_slice(key.as_slice());
        let digest = crypto::sha256(&input)
            .map_err(|e| ProviderError::Internal(format!("SHA-256 refused the key: {e:?}")))?;
        Ok(Self {
            key_id: format!(
                "env:sha256:{}",
                hex::encode(digest.get(..16).unwrap_or_default())
            ),
            key,
            origin,
        })
    }

    fn key_id(&self) -> String {
        self.key_id.clone()
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
            key_id: key.key_id(),
            features: Features::empty(),
        })
    }

    fn generate_data_key(context: Vec<ContextEntry>) -> Result<DataKey, ProviderError> {
        let mut dek = Zeroizing::new(vec![0u8; DEK_LEN]);
        getrandom::fill(&mut dek)
            .map_err(|e| ProviderError::Internal(format!("no randomness: {e}")))?;
        let wrapped = Self::wrap(dek.to_vec(), context)?;
        Ok(DataKey {
            plaintext: dek.to_vec(),
            wrapped,
        })
    }

    fn wrap(dek: Vec<u8>, context: Vec<ContextEntry>) -> Result<WrappedKey, ProviderError> {
        let dek = Zeroizing::new(dek);
        if dek.len() != DEK_LEN {
            return Err(ProviderError::Internal(format!(
                "data key is {} bytes, not 32",
                dek.len()
            )));
        }
        let key = MasterKey::load()?;
        let key_id = key.key_id();
        let aad = keyhost_guest::context_aad(AAD_LABEL, &key_id, &context);
        let ciphertext = key.seal(&aad, &dek)?;
        Ok(WrappedKey { key_id, ciphertext })
    }

    fn unwrap(wrapped: WrappedKey, context: Vec<ContextEntry>) -> Result<Vec<u8>, ProviderError> {
        let key = MasterKey::load()?;
        let key_id = key.key_id();
        if wrapped.key_id != key_id {
            return Err(ProviderError::InvalidCiphertext(format!(
                "the data key was wrapped with master key {}, but {} holds {key_id}",
                wrapped.key_id, key.origin
            )));
        }
        if wrapped.ciphertext.len() != NONCE_LEN + DEK_LEN + TAG_LEN {
            return Err(ProviderError::InvalidCiphertext(format!(
                "a wrapped key is {} bytes, this one is {}",
                NONCE_LEN + DEK_LEN + TAG_LEN,
                wrapped.ciphertext.len()
            )));
        }
        let aad = keyhost_guest::context_aad(AAD_LABEL, &key_id, &context);
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
