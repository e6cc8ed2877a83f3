//! `keyhost:provider/crypto`: AES-256-GCM and SHA-256 computed by the host
//! for the guest. It needs no grant, since it only computes on what the guest
//! passes; it is checked like every capability (lengths first, fail closed
//! with a typed error) and wipes its copies of keys and plaintexts. The host
//! draws every nonce, so a guest cannot reuse one under its key.

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::runtime::HostState;
use crate::runtime::bindings::crypto::{CryptoError, Host};

/// Largest key, associated data or message accepted, in bytes. The
/// capability is for wrapping keys, not for bulk data.
pub const MAX_INPUT_BYTES: usize = 64 << 10;
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl Host for HostState {
    fn aes256_gcm_seal(
        &mut self,
        key: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, CryptoError>> {
        let (key, plaintext) = (Zeroizing::new(key), Zeroizing::new(plaintext));
        Ok(seal(&key, &aad, &plaintext))
    }

    fn aes256_gcm_open(
        &mut self,
        key: Vec<u8>,
        aad: Vec<u8>,
        sealed: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, CryptoError>> {
        let key = Zeroizing::new(key);
        Ok(open(&key, &aad, &sealed))
    }

    fn sha256(&mut self, data: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, CryptoError>> {
        // The data may hold key material (a fingerprint's input).
        let data = Zeroizing::new(data);
        Ok(sha256(&data))
    }
}

pub(crate) fn sha256(data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.len() > MAX_INPUT_BYTES {
        return Err(CryptoError::InvalidInput);
    }
    Ok(Sha256::digest(data).to_vec())
}

fn cipher(key: &[u8], inputs: [&[u8]; 2]) -> Result<Aes256Gcm, CryptoError> {
    if key.len() != KEY_LEN || inputs.iter().any(|input| input.len() > MAX_INPUT_BYTES) {
        return Err(CryptoError::InvalidInput);
    }
    Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::InvalidInput)
}

/// `nonce || ciphertext || tag`, under a fresh random nonce.
pub(crate) fn seal(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = cipher(key, [aad, plaintext])?;
    // The thread's CSPRNG (ChaCha12, seeded and reseeded from the OS), as
    // WASI randomness is: 96 random bits per nonce.
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    // Sealed where it is returned: one buffer, no second copy.
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let sealed =
        cipher.encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[NONCE_LEN..]).into());
    let Ok(tag) = sealed else {
        // The buffer still holds the plaintext.
        out.zeroize();
        return Err(CryptoError::InvalidInput);
    };
    out.extend_from_slice(&tag);
    Ok(out)
}

pub(crate) fn open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::InvalidInput);
    }
    let cipher = cipher(key, [aad, sealed])?;
    let (nonce, ciphertext) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(CryptoError::InvalidInput)?;
    cipher
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::AuthenticationFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];

    #[test]
    fn sealed_bytes_are_a_nonce_then_standard_aes_256_gcm_and_open_again() {
        let sealed = seal(&KEY, b"context", b"a data key").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 10 + TAG_LEN);
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let reference = Aes256Gcm::new_from_slice(&KEY)
            .unwrap()
            .decrypt(
                &Nonce::try_from(nonce).unwrap(),
                Payload {
                    msg: ciphertext,
                    aad: b"context",
                },
            )
            .unwrap();
        assert_eq!(reference, b"a data key");
        assert_eq!(open(&KEY, b"context", &sealed).unwrap(), b"a data key");
    }

    #[test]
    fn every_seal_draws_a_new_nonce() {
        let first = seal(&KEY, b"context", b"a data key").unwrap();
        let second = seal(&KEY, b"context", b"a data key").unwrap();
        assert_ne!(first[..NONCE_LEN], second[..NONCE_LEN]);
        assert_ne!(first, second);
    }

    #[test]
    fn any_changed_byte_of_the_sealed_bytes_fails_authentication() {
        let sealed = seal(&KEY, b"context", b"a data key").unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert_eq!(
                open(&KEY, b"context", &altered),
                Err(CryptoError::AuthenticationFailed),
                "byte {i}"
            );
        }
    }

    #[test]
    fn another_context_or_key_fails_authentication() {
        let sealed = seal(&KEY, b"context", b"a data key").unwrap();
        assert_eq!(
            open(&KEY, b"other context", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
        assert_eq!(
            open(&[0x43; 32], b"context", &sealed),
            Err(CryptoError::AuthenticationFailed)
        );
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            hex::encode(sha256(b"abc").unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256(&vec![0u8; MAX_INPUT_BYTES + 1]),
            Err(CryptoError::InvalidInput)
        );
    }

    #[test]
    fn wrong_lengths_and_oversized_inputs_are_invalid_input() {
        assert_eq!(seal(&KEY[..31], b"", b"x"), Err(CryptoError::InvalidInput));
        let big = vec![0u8; MAX_INPUT_BYTES + 1];
        assert_eq!(seal(&KEY, &big, b"x"), Err(CryptoError::InvalidInput));
        assert_eq!(seal(&KEY, b"", &big), Err(CryptoError::InvalidInput));
        assert_eq!(open(&KEY, b"", &big), Err(CryptoError::InvalidInput));
        assert_eq!(
            open(&KEY, b"", &[0u8; NONCE_LEN + TAG_LEN - 1]),
            Err(CryptoError::InvalidInput)
        );
    }
}
