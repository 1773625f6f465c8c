//! FRESH-1/2 at the unit level: the identity record's location is signed and
//! checked everywhere a location is named, and one read of an identity
//! record counts as fresh only when it verifies under the identity key, at
//! the location read, at least as new as the snapshot.

use rand_core::OsRng;

use super::{FreshRead, judge_freshness};
use crate::contact::{Contact, Role};
use crate::crypto::{SecretKey, SigningKey};
use crate::dht::{RecordKey, ValueData};
use crate::error::{Error, VerifyError};
use crate::identity::Identity;
use crate::message::{
    DeviceStatus, EncryptionKeyType, InvitationContent, InvitationKind, Profile, SignedIdentity, UnverifiedInvitation,
};

const NOW: u64 = 1_795_305_600;

fn location(b: u8) -> RecordKey {
    RecordKey::new([b; 32], Some(SecretKey::generate(&mut OsRng)))
}

fn published(name: &str, at: &RecordKey) -> Identity {
    let mut id = Identity::generate(Profile::new(name).unwrap(), "phone", NOW - 10, &mut OsRng).unwrap();
    id.bind_location(at.clone()).unwrap();
    id
}

fn value(bytes: &[u8]) -> ValueData {
    ValueData { seq: 0, data: bytes.to_vec(), writer: SigningKey::generate(&mut OsRng).public() }
}

fn invitation_naming(id: &Identity, named: &RecordKey) -> Result<(), Error> {
    let inbox = [1; 32];
    let content = InvitationContent {
        kind: InvitationKind::Contact,
        inbox_key: inbox,
        writer_key: SigningKey::generate(&mut OsRng).public(),
        identity_key: id.public_key(),
        device_key: id.device_public(),
        identity_record: named.clone(),
        profile: id.profile().unwrap().clone(),
        conversation: Some(RecordKey::new([5; 32], None)),
        created_at: NOW,
        expires_at: NOW + 3600,
        message: String::new(),
        encryption_key_type: EncryptionKeyType::None,
        reply_to: None,
    };
    let bytes = content.sign(id.device_key(), id.signed()).unwrap();
    UnverifiedInvitation::from_bytes(&bytes)?.verify(&inbox, InvitationKind::Contact, NOW + 1).map(|_| ())
}

#[test]
fn identity_location_is_signed_and_checked() {
    let (here, there) = (location(0x11), location(0x22));
    let alice = published("alice", &here);
    assert_eq!(alice.signed().location(), Some(&here));
    assert_eq!(alice.signed().record().seq, 0, "binding a never-published record keeps its seq");

    // Messages: the named location must be the signed one.
    invitation_naming(&alice, &here).unwrap();
    let e = invitation_naming(&alice, &there).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");
    // Same opaque key, another secret: another location.
    let e = invitation_naming(&alice, &RecordKey::new(*here.opaque(), None)).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");
    // A record that was never published names no location: refused.
    let unpublished = Identity::generate(Profile::new("u").unwrap(), "d", NOW - 10, &mut OsRng).unwrap();
    let e = invitation_naming(&unpublished, &here).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");

    // Reads: verify_at checks identity and location.
    let bytes = alice.signed().to_bytes();
    SignedIdentity::verify_at(bytes, &alice.public_key(), &here).unwrap();
    assert!(SignedIdentity::verify_at(bytes, &alice.public_key(), &there).is_err());
    let bob = published("bob", &there);
    assert!(SignedIdentity::verify_at(bytes, &bob.public_key(), &here).is_err());

    // Moving the record re-signs it with a higher seq; adopting a record
    // published elsewhere is refused.
    let mut moved = alice.clone();
    moved.bind_location(there.clone()).unwrap();
    assert_eq!(moved.signed().record().seq, 1);
    let mut own = alice.clone();
    let e = own.adopt_record(moved.signed().clone()).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");

    // Contacts: a refresh must come from the contact's location.
    let mut contact = Contact::new(
        alice.signed().clone(),
        here.clone(),
        alice.profile().unwrap().clone(),
        RecordKey::new([3; 32], None),
        SigningKey::generate(&mut OsRng),
        RecordKey::new([4; 32], None),
        [1; 32],
        Role::Invitee,
        NOW,
        SecretKey::generate(&mut OsRng),
    );
    let e = contact.update_peer_identity(moved.signed().to_bytes()).unwrap_err();
    assert!(matches!(e, Error::Verify(VerifyError::WrongContext(_))), "{e:?}");
    let mut newer = alice.clone();
    newer.update_record(|r| r.updated_at += 1, NOW).unwrap();
    assert!(contact.update_peer_identity(newer.signed().to_bytes()).unwrap());
}

#[test]
fn freshness_judges_only_verified_records_at_their_location() {
    let (here, there) = (location(0x11), location(0x22));
    let mut alice = published("alice", &here);
    let older = alice.signed().clone();
    alice.update_record(|r| r.updated_at += 1, NOW).unwrap();
    let snapshot = alice.signed().clone();
    let device = alice.device_public();
    let judge = |v: Option<&[u8]>| judge_freshness(v.map(value).as_ref(), &snapshot, &here, &device);

    // The record itself, and a newer one still listing the device: fresh.
    assert_eq!(judge(Some(snapshot.to_bytes())), FreshRead::Current);
    let mut newer = alice.clone();
    newer.update_record(|r| r.updated_at += 5, NOW).unwrap();
    assert_eq!(judge(Some(newer.signed().to_bytes())), FreshRead::Current);

    // A newer record that revokes, deprecates or drops the device.
    for change in [DeviceStatus::Revoked, DeviceStatus::Deprecated] {
        let mut r = alice.clone();
        r.update_record(|rec| rec.devices[0].status = change, NOW).unwrap();
        assert_eq!(judge(Some(r.signed().to_bytes())), FreshRead::Revoked, "{change:?}");
    }

    // Nothing that counts: no value, garbage, another identity, the same
    // identity published elsewhere, an older copy (a stale node), empty.
    let bob = published("bob", &here);
    let mut elsewhere = alice.clone();
    elsewhere.bind_location(there).unwrap();
    assert_eq!(judge(None), FreshRead::Unconfirmed);
    assert_eq!(judge(Some(&[0x5a; 300])), FreshRead::Unconfirmed);
    assert_eq!(judge(Some(&[])), FreshRead::Unconfirmed);
    assert_eq!(judge(Some(bob.signed().to_bytes())), FreshRead::Unconfirmed);
    assert_eq!(judge(Some(elsewhere.signed().to_bytes())), FreshRead::Unconfirmed);
    assert_eq!(judge(Some(older.to_bytes())), FreshRead::Unconfirmed);
    // Every single-bit corruption of a fresh record is not fresh.
    let good = snapshot.to_bytes().to_vec();
    for i in (0..good.len() * 8).step_by(7) {
        let mut t = good.clone();
        t[i / 8] ^= 1 << (i % 8);
        assert_ne!(judge(Some(&t)), FreshRead::Current, "bit {i}");
    }
}
