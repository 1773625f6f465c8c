//! Message-level tests: verification cannot be skipped or fooled.

use proptest::prelude::*;
use rand_core::OsRng;

use super::*;
use crate::crypto::SigningKey;
use crate::dht::RecordKey;
use crate::error::{Error, VerifyError};
use crate::identity::Identity;

const NOW: u64 = 1_795_305_600;

fn identity(name: &str) -> Identity {
    let mut id = Identity::generate(Profile::new(name).unwrap(), "phone", NOW - 10, &mut OsRng).unwrap();
    id.bind_location(RecordKey::new([9; 32], Some(crate::crypto::SecretKey::generate(&mut OsRng)))).unwrap();
    id
}

fn content(id: &Identity, inbox: [u8; 32]) -> InvitationContent {
    InvitationContent {
        kind: InvitationKind::Contact,
        inbox_key: inbox,
        writer_key: SigningKey::generate(&mut OsRng).public(),
        identity_key: id.public_key(),
        device_key: id.device_public(),
        identity_record: id.record_key().unwrap().clone(),
        profile: id.profile().unwrap().clone(),
        conversation: Some(RecordKey::new([5; 32], None)),
        created_at: NOW,
        expires_at: NOW + 3600,
        message: "hello".into(),
        encryption_key_type: EncryptionKeyType::None,
        reply_to: None,
        multi_use: None,
    }
}

fn signed_invitation(id: &Identity, inbox: [u8; 32]) -> Vec<u8> {
    content(id, inbox).sign(id.device_key(), id.signed()).unwrap()
}

fn verify_inv(bytes: &[u8], inbox: &[u8; 32], now: u64) -> Result<VerifiedInvitation, Error> {
    UnverifiedInvitation::from_bytes(bytes)?.verify(inbox, InvitationKind::Contact, now)
}

#[test]
fn valid_invitation_verifies() {
    let a = identity("alice");
    let inbox = [1; 32];
    let v = verify_inv(&signed_invitation(&a, inbox), &inbox, NOW + 1).unwrap();
    assert_eq!(v.profile().name(), "alice");
    assert_eq!(v.content().message, "hello");
}

#[test]
fn every_bit_flip_of_a_signed_invitation_is_rejected() {
    let a = identity("alice");
    let inbox = [1; 32];
    let bytes = signed_invitation(&a, inbox);
    for i in 0..bytes.len() * 8 {
        let mut t = bytes.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert!(verify_inv(&t, &inbox, NOW + 1).is_err(), "bit {i} of {} accepted", bytes.len() * 8);
    }
}

#[test]
fn invitation_is_bound_to_inbox_kind_and_time() {
    let a = identity("alice");
    let inbox = [1; 32];
    let bytes = signed_invitation(&a, inbox);
    // Read from another inbox: the signature context differs.
    assert_eq!(verify_inv(&bytes, &[2; 32], NOW + 1).unwrap_err(), Error::Verify(VerifyError::BadSignature));
    // Announced as a device link by the ticket.
    let e = UnverifiedInvitation::from_bytes(&bytes)
        .unwrap()
        .verify(&inbox, InvitationKind::DeviceLink, NOW + 1)
        .unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");
    // Expired, and created in the future.
    assert!(matches!(verify_inv(&bytes, &inbox, NOW + 3600).unwrap_err(), Error::Verify(VerifyError::Expired { .. })));
    assert!(matches!(
        verify_inv(&bytes, &inbox, NOW - 3600).unwrap_err(),
        Error::Verify(VerifyError::BadTimestamps(_))
    ));
    // An expiry beyond the 30-day cap is refused even when signed.
    let mut c = content(&a, inbox);
    c.expires_at = NOW + 31 * 24 * 3600;
    let b = c.sign(a.device_key(), a.signed()).unwrap();
    assert!(matches!(verify_inv(&b, &inbox, NOW + 1).unwrap_err(), Error::Verify(VerifyError::BadTimestamps(_))));
}

#[test]
fn invitation_signed_by_a_device_not_in_the_identity_is_refused() {
    let a = identity("alice");
    let inbox = [1; 32];
    // Mallory signs with her own device key but claims alice's identity snapshot.
    let mallory_device = SigningKey::generate(&mut OsRng);
    let mut c = content(&a, inbox);
    c.device_key = mallory_device.public();
    let b = c.sign(&mallory_device, a.signed()).unwrap();
    assert!(matches!(verify_inv(&b, &inbox, NOW + 1).unwrap_err(), Error::Verify(VerifyError::UntrustedDevice(_))));
}

#[test]
fn revoked_device_is_refused() {
    let a = identity("alice");
    let dev = a.device_public();
    // A record revoking the signing device (built by hand: `update_record`
    // refuses revocations, `revoke_device` refuses the identity-key device).
    let mut rec = a.signed().record().clone();
    rec.devices[0].status = DeviceStatus::Revoked;
    rec.seq += 1;
    let revoked = rec.sign(a.identity_signing_key().unwrap()).unwrap();
    let inbox = [1; 32];
    let b = content(&a, inbox).sign(a.device_key(), &revoked).unwrap();
    let e = verify_inv(&b, &inbox, NOW + 1).unwrap_err();
    assert_eq!(e, Error::Verify(VerifyError::UntrustedDevice("device is revoked")));
    assert_eq!(revoked.record().device_status(&dev), Some(DeviceStatus::Revoked));
}

#[test]
fn identity_record_with_forged_device_is_refused() {
    let a = identity("alice");
    let mut rec = a.signed().record().clone();
    let other = SigningKey::generate(&mut OsRng);
    // A device whose consent was made for another identity.
    rec.devices.push(DeviceEntry::new(&SigningKey::generate(&mut OsRng).public(), &other, NOW, "x"));
    rec.seq += 1;
    let signed = rec.sign(a.identity_signing_key().unwrap()).unwrap();
    assert_eq!(SignedIdentity::verify(signed.to_bytes(), None).unwrap_err(), Error::Verify(VerifyError::BadSignature));
}

fn response_for(inviter: &Identity, invitee: &Identity, accept: bool) -> (VerifiedInvitation, Vec<u8>) {
    let inbox = [1; 32];
    let inv = verify_inv(&signed_invitation(inviter, inbox), &inbox, NOW + 1).unwrap();
    let rc = ResponseContent {
        kind: InvitationKind::Contact,
        accept,
        inbox_key: inbox,
        invitation_hash: *inv.hash(),
        identity_key: invitee.public_key(),
        device_key: invitee.device_public(),
        identity_record: invitee.record_key().unwrap().clone(),
        profile: invitee.profile().cloned(),
        conversation: accept.then(|| RecordKey::new([7; 32], None)),
        created_at: NOW + 2,
        device_consent: None,
        device_dh_key: None,
        reply_to: None,
    };
    let bytes = rc.sign(invitee.device_key(), invitee.signed(), &inv).unwrap();
    (inv, bytes)
}

fn ctx(inv: &VerifiedInvitation) -> InvitationContext<'_> {
    InvitationContext {
        inbox_key: &inv.content().inbox_key,
        hash: inv.hash(),
        expires_at: inv.content().expires_at,
        kind: inv.content().kind,
        identity_key: &inv.content().identity_key,
    }
}

#[test]
fn every_bit_flip_of_a_signed_response_is_rejected() {
    let (a, b) = (identity("alice"), identity("bob"));
    let (inv, bytes) = response_for(&a, &b, true);
    let ok = UnverifiedResponse::from_bytes(&bytes).unwrap().verify(&ctx(&inv), NOW + 3).unwrap();
    assert!(ok.content().accept);
    for i in 0..bytes.len() * 8 {
        let mut t = bytes.clone();
        t[i / 8] ^= 1 << (i % 8);
        let r = UnverifiedResponse::from_bytes(&t).map_err(Error::from).and_then(|u| u.verify(&ctx(&inv), NOW + 3));
        assert!(r.is_err(), "bit {i} accepted");
    }
}

#[test]
fn response_is_bound_to_its_invitation() {
    let (a, b) = (identity("alice"), identity("bob"));
    let (_inv1, bytes) = response_for(&a, &b, true);
    // Another invitation from the same inviter, same inbox even: different hash.
    let inbox = [1; 32];
    let inv2 = verify_inv(&signed_invitation(&a, inbox), &inbox, NOW + 1).unwrap();
    let e = UnverifiedResponse::from_bytes(&bytes).unwrap().verify(&ctx(&inv2), NOW + 3).unwrap_err();
    assert_eq!(e, Error::Verify(VerifyError::BadSignature));
    // After the invitation expired.
    let (inv, bytes) = response_for(&a, &b, false);
    let e = UnverifiedResponse::from_bytes(&bytes).unwrap().verify(&ctx(&inv), NOW + 3600).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::Expired { .. })));
}

#[test]
fn final_status_bound_to_inviter_inbox_and_invitation() {
    let a = identity("alice");
    let fs = FinalStatus {
        status: FinalStatusKind::Accepted,
        inbox_key: [1; 32],
        invitation_hash: [2; 32],
        response_hash: Some([3; 32]),
        responder_identity: None,
        decided_at: NOW,
        handover: Vec::new(),
        conversation: None,
    };
    let b = fs.sign(a.device_key()).unwrap();
    assert_eq!(FinalStatus::verify(&b, &a.device_public(), &[1; 32], &[2; 32]).unwrap(), fs);
    assert!(FinalStatus::verify(&b, &a.device_public(), &[1; 32], &[4; 32]).is_err());
    assert!(FinalStatus::verify(&b, &SigningKey::generate(&mut OsRng).public(), &[1; 32], &[2; 32]).is_err());
    for i in 0..b.len() * 8 {
        let mut t = b.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert!(FinalStatus::verify(&t, &a.device_public(), &[1; 32], &[2; 32]).is_err(), "bit {i}");
    }
}

#[test]
fn persisted_verified_types_are_reverified_on_load() {
    let a = identity("alice");
    let inbox = [1; 32];
    let inv = verify_inv(&signed_invitation(&a, inbox), &inbox, NOW + 1).unwrap();
    let json = serde_json::to_string(&inv).unwrap();
    let back: VerifiedInvitation = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inv);
    // A stored copy with a flipped byte does not deserialize into a verified invitation.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let arr = v["bytes"].as_array_mut().unwrap();
    let x = arr[40].as_u64().unwrap();
    arr[40] = serde_json::json!(x ^ 1);
    assert!(serde_json::from_value::<VerifiedInvitation>(v).is_err());
    // Nor does a tampered identity record.
    let mut sj: serde_json::Value = serde_json::to_value(a.signed()).unwrap();
    let arr = sj.as_array_mut().unwrap();
    let x = arr[10].as_u64().unwrap();
    arr[10] = serde_json::json!(x ^ 1);
    assert!(serde_json::from_value::<SignedIdentity>(sj).is_err());
}

#[test]
fn oversized_and_malformed_inputs_are_typed_errors() {
    use crate::error::DecodeError;
    assert!(matches!(UnverifiedInvitation::from_bytes(&vec![0u8; 9000]), Err(DecodeError::TooLarge { .. })));
    assert!(matches!(UnverifiedInvitation::from_bytes(&[0xff, 0xff, 0xff]), Err(DecodeError::Protobuf { .. })));
    assert!(matches!(UnverifiedInvitation::from_bytes(&[]), Err(DecodeError::WrongLength { .. })));
    assert!(matches!(UnverifiedResponse::from_bytes(&[0x0a, 0x00]), Err(DecodeError::WrongLength { .. })));
    assert!(matches!(Profile::new("x".repeat(65)), Err(DecodeError::FieldTooLong { .. })));
    assert!(matches!(Profile::new(""), Err(DecodeError::MissingField { .. })));
    assert!(matches!(Profile::new("a\u{0007}b"), Err(DecodeError::Invalid(_))));
    // Unknown enum values and future versions.
    use crate::wire::{self, pb};
    let a = identity("alice");
    let bytes = signed_invitation(&a, [1; 32]);
    let mut s: pb::SignedContactInvitation = wire::decode(&bytes, 1 << 20, "x").unwrap();
    let mut c: pb::ContactInvitation = wire::decode(&s.contact_invitation, 1 << 20, "x").unwrap();
    c.kind = 7;
    s.contact_invitation = wire::encode(&c);
    assert!(matches!(
        UnverifiedInvitation::from_bytes(&wire::encode(&s)),
        Err(DecodeError::UnknownEnumValue { value: 7, .. })
    ));
    c.kind = 1;
    let v = crate::crypto::PROTOCOL_VERSION;
    c.version = v + 1;
    s.contact_invitation = wire::encode(&c);
    assert!(matches!(
        UnverifiedInvitation::from_bytes(&wire::encode(&s)),
        Err(DecodeError::VersionTooNew { found, .. }) if found == v + 1
    ));
    c.version = v;
    c.writer_key = vec![1; 31];
    s.contact_invitation = wire::encode(&c);
    assert!(matches!(
        UnverifiedInvitation::from_bytes(&wire::encode(&s)),
        Err(DecodeError::WrongLength { expected: 32, got: 31, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn invitation_round_trips(msg in "[a-zA-Z0-9 ]{0,200}", name in "[a-z]{1,60}", valid in 61u64..2_000_000) {
        let mut a = identity("x");
        a.update_record(|r| r.profile = Some(Profile::new(name.clone()).unwrap()), NOW - 5).unwrap();
        let inbox = [3; 32];
        let mut c = content(&a, inbox);
        c.message = msg.clone();
        c.expires_at = NOW + valid;
        let b = c.sign(a.device_key(), a.signed()).unwrap();
        let v = verify_inv(&b, &inbox, NOW).unwrap();
        prop_assert_eq!(v.content(), &c);
        prop_assert_eq!(v.hash(), &crate::message::invitation_hash_of_signed(&b).unwrap());
        prop_assert_eq!(v.to_bytes(), &b[..]);
    }

    #[test]
    fn response_round_trips(accept in any::<bool>(), created in 0u64..1000, about in "[a-z ]{0,300}") {
        let (a, mut b) = (identity("alice"), identity("bob"));
        b.update_record(|r| r.profile = Some(Profile::new("bob").unwrap().with_about(about.clone()).unwrap()), NOW - 5).unwrap();
        let inbox = [1; 32];
        let inv = verify_inv(&signed_invitation(&a, inbox), &inbox, NOW + 1).unwrap();
        let rc = ResponseContent {
            kind: InvitationKind::Contact,
            accept,
            inbox_key: inbox,
            invitation_hash: *inv.hash(),
            identity_key: b.public_key(),
            device_key: b.device_public(),
            identity_record: b.record_key().unwrap().clone(),
            profile: b.profile().cloned(),
            conversation: accept.then(|| RecordKey::new([7; 32], Some(crate::crypto::SecretKey::generate(&mut OsRng)))),
            created_at: NOW - 1000 + created,
            device_consent: None,
            device_dh_key: None,
            reply_to: None,
        };
        let bytes = rc.sign(b.device_key(), b.signed(), &inv).unwrap();
        let v = UnverifiedResponse::from_bytes(&bytes).unwrap().verify(&ctx(&inv), NOW + 2).unwrap();
        prop_assert_eq!(v.content(), &rc);
        prop_assert_eq!(v.identity().unwrap(), b.signed());
    }

    #[test]
    fn final_status_round_trips(kind in 0usize..4, with_response in any::<bool>(), at in any::<u64>()) {
        let a = identity("alice");
        let fs = FinalStatus {
            status: [FinalStatusKind::Accepted, FinalStatusKind::Rejected, FinalStatusKind::Revoked, FinalStatusKind::Expired][kind],
            inbox_key: [1; 32],
            invitation_hash: [2; 32],
            response_hash: with_response.then_some([3; 32]),
            responder_identity: with_response.then(|| identity("bob").public_key()),
            decided_at: at,
            handover: Vec::new(),
        conversation: None,
        };
        let b = fs.sign(a.device_key()).unwrap();
        prop_assert_eq!(FinalStatus::verify(&b, &a.device_public(), &[1; 32], &[2; 32]).unwrap(), fs);
    }

    #[test]
    fn identity_record_round_trips(devices in 1usize..=16, seq in any::<u64>(), label in "[a-z]{0,64}") {
        let a = identity("alice");
        let ik = a.identity_signing_key().unwrap();
        let mut rec = a.signed().record().clone();
        rec.seq = seq;
        rec.devices = (0..devices)
            .map(|i| {
                let mut d = DeviceEntry::new(&ik.public(), &SigningKey::generate(&mut OsRng), i as u64, &label);
                d.status = [DeviceStatus::Current, DeviceStatus::Deprecated, DeviceStatus::Revoked][i % 3];
                d
            })
            .collect();
        if seq % 2 == 1 {
            let k = crate::crypto::SecretKey::generate(&mut OsRng);
            rec.rotation =
                Some(AccountKeyRotation::seal(&a.public_key(), &rec.devices, &k, &rec.dh_key, &mut OsRng).unwrap());
        }
        let signed = rec.sign(ik).unwrap();
        let back = SignedIdentity::verify(signed.to_bytes(), Some(&a.public_key())).unwrap();
        prop_assert_eq!(back.record(), &rec);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = UnverifiedInvitation::from_bytes(&bytes).map(|u| u.verify(&[0; 32], InvitationKind::Contact, NOW));
        let _ = UnverifiedResponse::from_bytes(&bytes);
        let _ = SignedIdentity::verify(&bytes, None);
        let _ = inbox::decode_value(&bytes);
    }
}

/// A device-link response from a brand-new device, with its consent made
/// for `consent_for` (the inviter's identity when honest).
fn link_response(
    inviter: &Identity,
    consent_for: &crate::crypto::PublicKey,
) -> (VerifiedInvitation, Vec<u8>, SigningKey) {
    let inbox = [1; 32];
    let mut c = content(inviter, inbox);
    c.kind = InvitationKind::DeviceLink;
    c.conversation = None;
    let bytes = c.sign(inviter.device_key(), inviter.signed()).unwrap();
    let inv =
        UnverifiedInvitation::from_bytes(&bytes).unwrap().verify(&inbox, InvitationKind::DeviceLink, NOW + 1).unwrap();
    let dev = SigningKey::generate(&mut OsRng);
    let rc = ResponseContent {
        kind: InvitationKind::DeviceLink,
        accept: true,
        inbox_key: inbox,
        invitation_hash: *inv.hash(),
        identity_key: inviter.public_key(),
        device_key: dev.public(),
        identity_record: inviter.record_key().unwrap().clone(),
        profile: None,
        conversation: None,
        created_at: NOW + 2,
        device_consent: Some(identity::device_consent(consent_for, &dev)),
        device_dh_key: Some(crate::crypto::DhSecretKey::generate(&mut OsRng).public()),
        reply_to: None,
    };
    let bytes = rc.sign(&dev, inviter.signed(), &inv).unwrap();
    (inv, bytes, dev)
}

#[test]
fn device_link_consent_must_be_for_the_inviters_identity() {
    let a = identity("alice");
    let (inv, ok, _) = link_response(&a, &a.public_key());
    let v = UnverifiedResponse::from_bytes(&ok).unwrap().verify(&ctx(&inv), NOW + 3).unwrap();
    assert!(v.content().device_consent.is_some());
    // Consent made for another account: refused, so the old device ignores
    // the response and adds nothing.
    let other = identity("mallory").public_key();
    let (inv, bad, _) = link_response(&a, &other);
    let e = UnverifiedResponse::from_bytes(&bad).unwrap().verify(&ctx(&inv), NOW + 3).unwrap_err();
    assert_eq!(e, Error::Verify(VerifyError::BadSignature));
    // And a device entry cannot be built from it either.
    let dev = SigningKey::generate(&mut OsRng);
    let consent = identity::device_consent(&other, &dev);
    let dh = crate::crypto::DhSecretKey::from_device_key(&dev).public();
    assert!(DeviceEntry::from_consent(&a.public_key(), dev.public(), consent, dh, NOW, "x").is_err());
}

#[test]
fn handover_opens_only_for_the_new_device_and_its_link() {
    use super::handover::{HandoverContext, open, seal};
    let a = identity("alice");
    let dev = SigningKey::generate(&mut OsRng);
    let dev_dh = crate::crypto::DhSecretKey::from_device_key(&dev);
    // The record must list the new device for the handover to be accepted.
    let mut a2 = a.clone();
    let entry = DeviceEntry::from_consent(
        &a.public_key(),
        dev.public(),
        identity::device_consent(&a.public_key(), &dev),
        dev_dh.public(),
        NOW,
        "laptop",
    )
    .unwrap();
    a2.update_record(|r| r.devices.push(entry.clone()), NOW).unwrap();
    let (inbox, ih, rh, device) = ([1; 32], [2; 32], [3; 32], dev.public());
    let ctx = HandoverContext { inbox: &inbox, invitation_hash: &ih, response_hash: &rh, device: &device };
    let account = a2.account_key().clone();
    // REV-3: an account secret that does not derive the record's DH key is refused.
    let foreign = crate::crypto::SecretKey::generate(&mut OsRng);
    let sealed = seal(&ctx, &dev_dh.public(), &foreign, a2.signed(), &mut OsRng).unwrap();
    assert_eq!(
        open(&ctx, &dev_dh, &a.public_key(), &sealed).unwrap_err(),
        Error::Verify(VerifyError::AccountKeyMismatch)
    );
    // A record listing the device with another DH key is refused (later
    // rotations would be sealed to a key it does not hold).
    let mut a3 = a.clone();
    let mut wrong = entry;
    wrong.dh_key = crate::crypto::DhSecretKey::generate(&mut OsRng).public();
    a3.update_record(|r| r.devices.push(wrong), NOW).unwrap();
    let sealed = seal(&ctx, &dev_dh.public(), &account, a3.signed(), &mut OsRng).unwrap();
    assert!(matches!(open(&ctx, &dev_dh, &a.public_key(), &sealed), Err(Error::Verify(VerifyError::WrongContext(_)))));
    let sealed = seal(&ctx, &dev_dh.public(), &account, a2.signed(), &mut OsRng).unwrap();
    let (k, rec) = open(&ctx, &dev_dh, &a.public_key(), &sealed).unwrap();
    assert_eq!(k, account);
    assert_eq!(rec.record().device_status(&device), Some(DeviceStatus::Current));
    // Another device's key, another response, another identity, a flipped bit, a truncation.
    let other_dh = crate::crypto::DhSecretKey::generate(&mut OsRng);
    assert!(open(&ctx, &other_dh, &a.public_key(), &sealed).is_err());
    let rh2 = [4; 32];
    let ctx2 = HandoverContext { inbox: &inbox, invitation_hash: &ih, response_hash: &rh2, device: &device };
    assert!(open(&ctx2, &dev_dh, &a.public_key(), &sealed).is_err());
    assert!(open(&ctx, &dev_dh, &identity("eve").public_key(), &sealed).is_err());
    for i in [0, 40, sealed.len() - 1] {
        let mut t = sealed.clone();
        t[i] ^= 1;
        assert!(open(&ctx, &dev_dh, &a.public_key(), &t).is_err(), "byte {i}");
    }
    for n in 0..sealed.len() {
        assert!(open(&ctx, &dev_dh, &a.public_key(), &sealed[..n]).is_err());
    }
    // A record that does not list the device is refused.
    let sealed = seal(&ctx, &dev_dh.public(), &account, a.signed(), &mut OsRng).unwrap();
    assert!(matches!(
        open(&ctx, &dev_dh, &a.public_key(), &sealed),
        Err(Error::Verify(VerifyError::UntrustedDevice(_)))
    ));
}

#[test]
fn rotation_fields_are_strictly_decoded() {
    // REV-2: copies without an ephemeral key, a copy of the wrong length, more
    // copies than devices, and a device without its DH key are refused.
    use crate::error::DecodeError;
    use crate::wire::{self, pb};
    let a = identity("alice");
    let tamper = |f: &dyn Fn(&mut pb::IdentityRecord)| {
        let mut s: pb::SignedIdentityRecord = wire::decode(a.signed().to_bytes(), 1 << 20, "x").unwrap();
        let mut r: pb::IdentityRecord = wire::decode(&s.identity_record, 1 << 20, "x").unwrap();
        f(&mut r);
        s.identity_record = wire::encode(&r);
        SignedIdentity::verify(&wire::encode(&s), None).unwrap_err()
    };
    assert!(matches!(tamper(&|r| r.account_key_copies = vec![vec![0; 48]]), Error::Decode(DecodeError::Invalid(_))));
    let e = tamper(&|r| {
        r.rotation_ephemeral = vec![9; 32];
        r.account_key_copies = vec![vec![0; 47]];
    });
    assert!(matches!(e, Error::Decode(DecodeError::WrongLength { .. })), "{e:?}");
    let e = tamper(&|r| {
        r.rotation_ephemeral = vec![9; 32];
        r.account_key_copies = vec![vec![0; 48]; 2];
    });
    assert!(matches!(e, Error::Decode(DecodeError::TooManyEntries { .. })), "{e:?}");
    let e = tamper(&|r| r.devices[0].dh_key.clear());
    assert!(matches!(e, Error::Decode(DecodeError::WrongLength { .. })), "{e:?}");
    // Well-formed but unsigned changes still fail on the signature.
    let e = tamper(&|r| {
        r.rotation_ephemeral = vec![9; 32];
        r.account_key_copies = vec![vec![0; 48]];
    });
    assert_eq!(e, Error::Verify(VerifyError::BadSignature));
}
