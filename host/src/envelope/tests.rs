use super::*;
use proptest::prelude::*;

fn key_section() -> KeySection {
    KeySection {
        provider: "env".into(),
        key_id: "env:sha256:00112233445566778899aabbccddeeff".into(),
        wrapped: vec![7; 60],
    }
}

fn ballot_context() -> EncryptionContext {
    EncryptionContext::from_pairs([("ballot_id", "b-17"), ("election_id", "e-2026")]).unwrap()
}

fn sealed(plaintext: &[u8]) -> (DataKey, Envelope) {
    let dek = DataKey::generate();
    let envelope = Envelope::seal(&dek, ballot_context(), key_section(), plaintext).unwrap();
    (dek, envelope)
}

#[test]
fn a_sealed_envelope_opens_to_its_plaintext_after_a_round_trip_through_bytes() {
    let (dek, envelope) = sealed(b"yes on measure 4");
    let parsed = Envelope::parse(&envelope.to_bytes()).unwrap();
    assert_eq!(parsed, envelope);
    assert_eq!(parsed.open(&dek).unwrap().as_slice(), b"yes on measure 4");
    assert_eq!(parsed.context(), &ballot_context());
    assert_eq!(parsed.key_section(), &key_section());
}

#[test]
fn every_single_byte_change_outside_the_key_section_is_rejected() {
    let (dek, envelope) = sealed(&[42u8; 100]);
    let bytes = envelope.to_bytes();
    let aad_len = envelope.associated_data().len();
    let key_section_len = 1 + 3 + 2 + key_section().key_id.len() + 2 + 60;
    for i in 0..bytes.len() {
        if (aad_len..aad_len + key_section_len).contains(&i) {
            continue; // The key section is the provider's to authenticate.
        }
        for flip in [0x01u8, 0x80, 0xff] {
            let mut altered = bytes.clone();
            altered[i] ^= flip;
            let result = Envelope::parse(&altered).and_then(|e| e.open(&dek).map(|_| ()));
            assert!(result.is_err(), "byte {i} xor {flip:#x} went unnoticed");
        }
    }
}

#[test]
fn every_truncation_is_rejected_with_an_error() {
    let (_, envelope) = sealed(b"ballot");
    let bytes = envelope.to_bytes();
    for len in 0..bytes.len() {
        assert!(
            Envelope::parse(&bytes[..len]).is_err(),
            "truncated to {len} bytes parsed"
        );
    }
}

#[test]
fn a_wrong_data_key_fails_the_commitment_before_decryption() {
    let (_, envelope) = sealed(b"ballot");
    let other = DataKey::generate();
    assert_eq!(
        envelope.open(&other),
        Err(EnvelopeError::KeyCommitmentMismatch)
    );
}

#[test]
fn an_altered_context_fails_authentication() {
    let (dek, envelope) = sealed(b"ballot");
    let mut forged = envelope.clone();
    forged.context =
        EncryptionContext::from_pairs([("ballot_id", "b-18"), ("election_id", "e-2026")]).unwrap();
    assert_eq!(forged.open(&dek), Err(EnvelopeError::Tampered));
}

#[test]
fn replacing_the_key_section_keeps_the_ballot_ciphertext_byte_for_byte() {
    let (dek, envelope) = sealed(b"ballot");
    let new_key = KeySection {
        provider: "localstack".into(),
        key_id: "arn:aws:kms:us-east-1:000000000000:key/1234".into(),
        wrapped: vec![9; 180],
    };
    let rewrapped = envelope.clone().with_key_section(new_key.clone()).unwrap();
    assert_eq!(rewrapped.associated_data(), envelope.associated_data());
    assert_eq!(rewrapped.ciphertext, envelope.ciphertext);
    assert_eq!(rewrapped.key_section(), &new_key);
    assert_eq!(rewrapped.open(&dek).unwrap().as_slice(), b"ballot");
}

#[test]
fn unknown_versions_and_foreign_input_are_named_as_such() {
    let (_, envelope) = sealed(b"ballot");
    let mut bytes = envelope.to_bytes();
    bytes[4] = 2;
    assert_eq!(
        Envelope::parse(&bytes),
        Err(EnvelopeError::UnsupportedVersion(2))
    );
    assert_eq!(
        Envelope::parse(b"{\"json\": true}"),
        Err(EnvelopeError::NotAnEnvelope)
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let (_, envelope) = sealed(b"ballot");
    let mut bytes = envelope.to_bytes();
    bytes.push(0);
    assert_eq!(
        Envelope::parse(&bytes),
        Err(EnvelopeError::TrailingBytes(1))
    );
}

#[test]
fn oversized_lengths_are_refused_before_allocation() {
    let (_, envelope) = sealed(b"ballot");
    let mut bytes = envelope.to_bytes();
    let payload_len_at = bytes.len() - envelope.ciphertext.len() - 4;
    bytes[payload_len_at..payload_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Envelope::parse(&bytes),
        Err(EnvelopeError::FieldTooLarge {
            field: "payload",
            ..
        })
    ));
}

#[test]
fn a_key_section_over_the_limits_cannot_be_sealed() {
    let dek = DataKey::generate();
    let mut key = key_section();
    key.wrapped = vec![0; format::MAX_WRAPPED_BYTES + 1];
    assert!(Envelope::seal(&dek, ballot_context(), key, b"x").is_err());
    let mut key = key_section();
    key.provider = "Env Provider".into();
    assert!(Envelope::seal(&dek, ballot_context(), key, b"x").is_err());
}

#[test]
fn a_data_key_of_the_wrong_length_is_refused() {
    assert_eq!(
        DataKey::from_vec(vec![1; 31]).unwrap_err(),
        EnvelopeError::DataKeyLength(31)
    );
    assert!(DataKey::from_vec(vec![1; 32]).is_ok());
}

#[test]
fn data_keys_never_print_their_bytes() {
    let dek = DataKey::from_vec(vec![0xab; 32]).unwrap();
    assert_eq!(format!("{dek:?}"), "DataKey(<redacted>)");
}

fn arb_context() -> impl Strategy<Value = EncryptionContext> {
    proptest::collection::btree_map("[a-z_]{1,16}", "[ -~]{0,40}", 0..6)
        .prop_map(|m| EncryptionContext::from_pairs(m).unwrap())
}

proptest! {
    #[test]
    fn any_plaintext_and_context_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        context in arb_context(),
    ) {
        let dek = DataKey::generate();
        let envelope = Envelope::seal(&dek, context.clone(), key_section(), &plaintext).unwrap();
        let parsed = Envelope::parse(&envelope.to_bytes()).unwrap();
        prop_assert_eq!(parsed.context(), &context);
        let opened = parsed.open(&dek).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&bytes);
    }

    #[test]
    fn parsing_mutated_envelopes_never_panics_and_never_opens(
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let (dek, envelope) = sealed(b"ballot for the property test");
        let mut bytes = envelope.to_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != value);
        bytes[i] = value;
        if let Ok(parsed) = Envelope::parse(&bytes)
            && parsed.key_section() == envelope.key_section()
        {
            prop_assert!(parsed.open(&dek).is_err());
        }
    }
}
