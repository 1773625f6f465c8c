//! INT-HASH-1 and INT-TOMB-1 at message level: a signed message has one name
//! whatever its encoding, and tombstones verify only for their signer,
//! inbox and invitation.

use rand_core::OsRng;

use super::inbox::{self, InboxValue};
use super::*;
use crate::crypto::SigningKey;
use crate::dht::RecordKey;
use crate::identity::Identity;

const NOW: u64 = 1_795_305_600;

fn identity(name: &str) -> Identity {
    let mut id = Identity::generate(Profile::new(name).unwrap(), "phone", NOW - 10, &mut OsRng).unwrap();
    id.bind_location(RecordKey::new([9; 32], Some(crate::crypto::SecretKey::generate(&mut OsRng)))).unwrap();
    id
}

fn invitation(id: &Identity, inbox: [u8; 32]) -> Vec<u8> {
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
    .sign(id.device_key(), id.signed())
    .unwrap()
}

/// Re-encodings a relay can make without any key: an unknown field appended,
/// or the two fields in the other order.
fn re_encodings(signed: &[u8]) -> Vec<Vec<u8>> {
    let mut appended = signed.to_vec();
    appended.extend_from_slice(&[0x48, 0x01]);
    // Field 1 (payload) is first; swap it with field 2 (signature, 64 bytes + 2 header bytes).
    let sig_len = 66;
    let swapped = [&signed[signed.len() - sig_len..], &signed[..signed.len() - sig_len]].concat();
    vec![appended, swapped]
}

#[test]
fn re_encodings_of_a_signed_message_have_its_name() {
    let (a, b) = (identity("alice"), identity("bob"));
    let inbox = [1; 32];
    let inv_bytes = invitation(&a, inbox);
    let inv =
        UnverifiedInvitation::from_bytes(&inv_bytes).unwrap().verify(&inbox, InvitationKind::Contact, NOW).unwrap();
    assert_eq!(inv.hash(), &invitation_hash_of_signed(&inv_bytes).unwrap());
    for other in re_encodings(&inv_bytes) {
        assert_ne!(other, inv_bytes);
        let v = UnverifiedInvitation::from_bytes(&other).unwrap().verify(&inbox, InvitationKind::Contact, NOW).unwrap();
        assert_eq!(v.hash(), inv.hash(), "an invitation's name does not depend on its encoding");
        assert_eq!(v.content(), inv.content());
    }
    let rc = ResponseContent {
        kind: InvitationKind::Contact,
        accept: true,
        inbox_key: inbox,
        invitation_hash: *inv.hash(),
        identity_key: b.public_key(),
        device_key: b.device_public(),
        identity_record: b.record_key().unwrap().clone(),
        profile: b.profile().cloned(),
        conversation: Some(RecordKey::new([7; 32], None)),
        created_at: NOW,
        device_consent: None,
        device_dh_key: None,
        reply_to: None,
    };
    let resp_bytes = rc.sign(b.device_key(), b.signed(), &inv).unwrap();
    let ctx = InvitationContext {
        inbox_key: &inbox,
        hash: inv.hash(),
        expires_at: inv.content().expires_at,
        kind: InvitationKind::Contact,
        identity_key: &inv.content().identity_key,
    };
    let own = response_hash_of_signed(&resp_bytes).unwrap();
    for other in std::iter::once(resp_bytes.clone()).chain(re_encodings(&resp_bytes)) {
        let v = UnverifiedResponse::from_bytes(&other).unwrap().verify(&ctx, NOW + 1).unwrap();
        assert_eq!(v.hash(), &own, "the inviter names the response the responder knows");
    }
    // A final status is named by nothing; a re-encoding verifies to the same content.
    let fs = FinalStatus {
        status: FinalStatusKind::Accepted,
        inbox_key: inbox,
        invitation_hash: *inv.hash(),
        response_hash: Some(own),
        responder_identity: Some(b.public_key()),
        decided_at: NOW,
        handover: Vec::new(),
        conversation: None,
    };
    let fs_bytes = fs.sign(a.device_key()).unwrap();
    for other in re_encodings(&fs_bytes) {
        assert_eq!(FinalStatus::verify(&other, &a.device_public(), &inbox, inv.hash()).unwrap(), fs);
    }
}

#[test]
fn tombstones_verify_only_for_their_signer_inbox_and_invitation() {
    let (a, b) = (identity("alice"), identity("bob"));
    let (inbox, hash) = ([1; 32], [2; 32]);
    let bytes = inbox::tombstone(a.device_key(), &inbox, &hash, NOW);
    let open =
        |bytes: &[u8], dev: &crate::crypto::PublicKey, inbox: &[u8; 32], hash: &[u8; 32]| match inbox::decode_value(
            bytes,
        ) {
            Ok(InboxValue::Tombstone(t)) => t.verify(dev, inbox, hash).map_err(|_| ()),
            _ => Err(()),
        };
    assert_eq!(open(&bytes, &a.device_public(), &inbox, &hash), Ok(NOW));
    assert!(open(&bytes, &b.device_public(), &inbox, &hash).is_err(), "another device");
    assert!(open(&bytes, &a.device_public(), &[3; 32], &hash).is_err(), "another inbox");
    assert!(open(&bytes, &a.device_public(), &inbox, &[3; 32]).is_err(), "another invitation");
    // Signed by Alice for the other context: the payload names another inbox.
    let other = inbox::tombstone(a.device_key(), &[3; 32], &hash, NOW);
    assert!(open(&other, &a.device_public(), &inbox, &hash).is_err());
    for i in 0..bytes.len() * 8 {
        let mut t = bytes.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert!(open(&t, &a.device_public(), &inbox, &hash).is_err(), "bit {i}");
    }
    // Version 1's unsigned empty tombstone is not a tombstone at all.
    assert!(inbox::decode_value(&[0x22, 0x00]).is_err());
    assert!(open(&[0x2a, 0x00], &a.device_public(), &inbox, &hash).is_err());
}
