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
        multi_use: None,
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
        r.rotate(|rec| rec.devices[0].status = change, NOW, &mut rand_core::OsRng).unwrap();
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

/// What the invitee's read of the inviter's identity record returns.
#[derive(Clone, Debug)]
enum Served {
    Nothing,
    ReadFails,
    Garbage(Vec<u8>),
    AnotherIdentity,
    PublishedElsewhere,
    Older,
    Revoking,
    Current,
}

fn served() -> impl proptest::strategy::Strategy<Value = Served> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Served::Nothing),
        Just(Served::ReadFails),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(Served::Garbage),
        Just(Served::AnotherIdentity),
        Just(Served::PublishedElsewhere),
        Just(Served::Older),
        Just(Served::Revoking),
        Just(Served::Current),
    ]
}

/// Runs the invitee machine on a real invitation from alice, accepting at
/// once, with the reads of alice's identity record answered by `script`
/// (then nothing). Returns whether the response was written, whether a
/// contact was saved, and the outcome if the flow ended.
fn run_invitee(script: &[Served]) -> (bool, bool, Option<super::Outcome>) {
    use super::{Command, DhtOp, DhtOutput, Effect, Input, Invitee, Timer};
    use crate::dht::DhtErrorKind;
    use crate::encoding::{Ticket, TicketSecret};
    use crate::flow::{Event, ReceiveParams};
    use crate::message::inbox::{self, InboxKeys};

    let (here, there) = (location(0x11), location(0x22));
    let mut alice = published("alice", &here);
    let older = alice.signed().clone();
    alice.update_record(|r| r.updated_at += 1, NOW).unwrap();
    let mut revoking = alice.clone();
    revoking.rotate(|r| r.devices[0].status = DeviceStatus::Revoked, NOW, &mut rand_core::OsRng).unwrap();
    let mut elsewhere = alice.clone();
    elsewhere.bind_location(there.clone()).unwrap();
    let bob = published("bob", &there);

    let inbox = [0x44; 32];
    let ticket_secret = crate::crypto::InviteSecret::generate(&mut OsRng);
    let secret = ticket_secret.inbox_secret();
    let writer = SigningKey::generate(&mut OsRng);
    let content = InvitationContent {
        kind: InvitationKind::Contact,
        inbox_key: inbox,
        writer_key: writer.public(),
        identity_key: alice.public_key(),
        device_key: alice.device_public(),
        identity_record: here.clone(),
        profile: alice.profile().unwrap().clone(),
        conversation: Some(RecordKey::new([5; 32], None)),
        created_at: NOW,
        expires_at: NOW + 3600,
        message: String::new(),
        encryption_key_type: EncryptionKeyType::None,
        reply_to: None,
        multi_use: None,
    };
    let signed = content.sign(alice.device_key(), alice.signed()).unwrap();
    let keys = InboxKeys::derive(&secret, &inbox);
    let request = inbox::seal_request(&keys, &inbox, &writer, &signed, EncryptionKeyType::None, &mut OsRng);
    let ticket = Ticket { kind: InvitationKind::Contact, record: inbox, secret: TicketSecret::Plain(ticket_secret) };

    let mut rng = OsRng;
    let mut now = NOW * 1000 + 1000;
    let (mut m, effects) = Invitee::new(ReceiveParams::new(bob, ticket), now, &mut rng).unwrap();
    let mut queue: std::collections::VecDeque<Effect> = effects.into();
    let mut script = script.iter();
    let (mut wrote, mut saved, mut outcome) = (false, false, None);
    let mut steps = 0;
    while let Some(e) = queue.pop_front() {
        steps += 1;
        assert!(steps < 10_000, "the machine does not settle");
        let more = match e {
            Effect::Dht { op, request: req } if op != u64::MAX => {
                let ok = |o| Input::DhtDone { op, result: Ok(o) };
                let input = match req {
                    DhtOp::Open { .. } | DhtOp::Watch { .. } => ok(DhtOutput::Done),
                    DhtOp::Create { .. } => ok(DhtOutput::Created(RecordKey::new([7; 32], None))),
                    DhtOp::Get { key, .. } if key.opaque() == &inbox => ok(DhtOutput::Value(Some(value(&request)))),
                    DhtOp::Get { key, .. } => {
                        assert_eq!(key, here, "freshness reads the location alice's identity key signed");
                        let bytes = match script.next().unwrap_or(&Served::Nothing) {
                            Served::ReadFails => {
                                let failure =
                                    super::DhtFailure { kind: DhtErrorKind::NotFound, message: String::new() };
                                queue.extend(m.handle(Input::DhtDone { op, result: Err(failure) }, now, &mut rng));
                                continue;
                            }
                            Served::Nothing => None,
                            Served::Garbage(g) => Some(g.clone()),
                            Served::AnotherIdentity => Some(published("mallory", &here).signed().to_bytes().to_vec()),
                            Served::PublishedElsewhere => Some(elsewhere.signed().to_bytes().to_vec()),
                            Served::Older => Some(older.to_bytes().to_vec()),
                            Served::Revoking => Some(revoking.signed().to_bytes().to_vec()),
                            Served::Current => Some(alice.signed().to_bytes().to_vec()),
                        };
                        ok(DhtOutput::Value(bytes.as_deref().map(value)))
                    }
                    DhtOp::Set { subkey, .. } => {
                        wrote |= subkey == 1;
                        ok(DhtOutput::Set(None))
                    }
                    DhtOp::Forget { .. } => continue,
                };
                m.handle(input, now, &mut rng)
            }
            Effect::SetTimer { timer: Timer::Retry(op), at } => {
                now = now.max(at);
                m.handle(Input::TimerFired(Timer::Retry(op)), now, &mut rng)
            }
            Effect::Emit(Event::InvitationReceived(_)) => m.handle(Input::Command(Command::Accept), now, &mut rng),
            Effect::SaveContact(_) => {
                saved = true;
                continue;
            }
            Effect::Finished(o) => {
                outcome = Some(o);
                continue;
            }
            _ => continue,
        };
        queue.extend(more);
    }
    (wrote, saved, outcome)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, failure_persistence: None, ..Default::default() })]

    /// FRESH-2..4 as a property of the invitee machine: whatever the reads of
    /// the inviter's identity record return, the response is written iff a
    /// read confirmed the inviter's device current within the read budget; a
    /// verified revocation ends it with `DeviceRevoked`, anything else with
    /// `FreshnessUnavailable`; nothing is ever saved before the final status.
    #[test]
    fn invitee_answers_only_after_a_confirmed_read(script in proptest::collection::vec(served(), 0..6)) {
        let (wrote, saved, outcome) = run_invitee(&script);
        let mut expected = Some(crate::ProtocolError::FreshnessUnavailable);
        for s in script.iter().chain(std::iter::repeat(&Served::Nothing)).take(super::FRESHNESS_READS as usize) {
            match s {
                Served::Current => { expected = None; break; }
                Served::Revoking => { expected = Some(crate::ProtocolError::DeviceRevoked); break; }
                _ => {}
            }
        }
        proptest::prop_assert!(!saved, "a contact before any final status");
        match expected {
            None => {
                proptest::prop_assert!(wrote, "{:?}: confirmed, but no response", script);
                proptest::prop_assert!(outcome.is_none(), "{:?}: {:?}", script, outcome);
            }
            Some(p) => {
                proptest::prop_assert!(!wrote, "{:?}: answered an unconfirmed inviter", script);
                proptest::prop_assert_eq!(outcome, Some(super::Outcome::Failed(Error::Protocol(p))));
            }
        }
    }
}

/// FRESH-7: a newer record that still lists the signing device as current
/// but changed what a contact built from the snapshot would trust is
/// `Changed`, never `Current`: a rotated DH key, or another device current
/// in the snapshot that is revoked (even by software that did not rotate)
/// or gone. A device only deprecated, or a device added, changes nothing.
#[test]
fn freshness_sees_an_identity_that_moved_on_from_the_snapshot() {
    use crate::message::DeviceEntry;
    let here = location(0x11);
    let mut alice = published("alice", &here);
    let laptop = SigningKey::generate(&mut OsRng);
    let id = alice.public_key();
    alice.update_record(|r| r.devices.push(DeviceEntry::new(&id, &laptop, NOW, "laptop")), NOW).unwrap();
    let snapshot = alice.signed().clone();
    let device = alice.device_public();
    let judge =
        |s: &crate::message::SignedIdentity| judge_freshness(Some(&value(s.to_bytes())), &snapshot, &here, &device);
    let signer = alice.identity_signing_key().unwrap().clone();
    let resign = |f: &dyn Fn(&mut crate::message::IdentityRecord)| {
        let mut r = snapshot.record().clone();
        r.seq += 1;
        f(&mut r);
        r.sign(&signer).unwrap()
    };

    // Rotated account secret (what `revoke_device` and `rotate_account_key` do).
    let mut rotated = alice.clone();
    rotated.rotate_account_key(NOW, &mut OsRng).unwrap();
    assert_eq!(judge(rotated.signed()), FreshRead::Changed);
    // Another device revoked or removed without a rotation (other software).
    assert_eq!(judge(&resign(&|r| r.devices[1].status = DeviceStatus::Revoked)), FreshRead::Changed);
    assert_eq!(judge(&resign(&|r| r.devices.truncate(1))), FreshRead::Changed);
    // Harmless changes: another device deprecated, a device added.
    assert_eq!(judge(&resign(&|r| r.devices[1].status = DeviceStatus::Deprecated)), FreshRead::Current);
    let tablet = SigningKey::generate(&mut OsRng);
    assert_eq!(judge(&resign(&|r| r.devices.push(DeviceEntry::new(&id, &tablet, NOW, "tablet")))), FreshRead::Current);
}
