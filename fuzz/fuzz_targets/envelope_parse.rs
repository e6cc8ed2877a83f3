//! `Envelope::parse` on arbitrary bytes: it never panics, never allocates
//! past its limits, and whatever it accepts is canonical, within the limits
//! the writer enforces, and not openable with a key that did not seal it.

#![no_main]

use keyhost::envelope::{DataKey, EncryptionContext, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let envelope = match Envelope::parse(data) {
        Ok(envelope) => envelope,
        Err(err) => {
            // Every error has a message.
            assert!(!err.to_string().is_empty());
            return;
        }
    };

    // One envelope, one encoding: what parses is written back byte for byte.
    assert_eq!(
        envelope.to_bytes(),
        data,
        "parse accepted a non-canonical encoding"
    );

    // What the parser accepts, the writer's own checks accept too.
    envelope
        .key_section()
        .validate()
        .expect("a parsed key section fails validation");
    let rewrapped = envelope
        .clone()
        .with_key_section(envelope.key_section().clone())
        .expect("a parsed key section cannot be put back");
    assert_eq!(rewrapped, envelope);
    let context = envelope.context();
    let rebuilt =
        EncryptionContext::from_pairs(context.iter()).expect("a parsed context is invalid");
    assert_eq!(&rebuilt, context);
    let _ = context.to_string();
    assert_eq!(
        envelope.plaintext_len() + 16,
        envelope.ciphertext_len(),
        "the payload is shorter than a tag"
    );

    // A key that did not seal the envelope fails the commitment, before any
    // decryption is tried.
    let stranger = DataKey::from_vec(vec![0x5a; 32]).unwrap();
    assert!(envelope.open(&stranger).is_err());
    assert!(envelope.check_commitment(&stranger).is_err());
});
