//! Hostile requests against a live request inbox on MemoryDht: floods with
//! and without valid stamps, replays, forged key bindings, tampered seals.
//! (Crate-internal: forging needs the signing and sealing internals.)

use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};

use crate::crypto::DhSecretKey;
use crate::crypto::pow;
use crate::dht::{Dht, MemoryNetwork, RecordKey};
use crate::driver::{self, DriverConfig, Events, TokioClock};
use crate::encoding::Ticket;
use crate::flow::{Event, RequestInboxParams};
use crate::identity::Identity;
use crate::message::address::{AddressRequestContent, seal_request, slot_value, stamp_subject};
use crate::message::{InvitationKind, Profile, RequestInboxInfo, SignedIdentity};
use crate::store::MemoryStore;

const T0_MS: u64 = 1_795_305_600_000;
const BITS: u32 = 10;

struct Target {
    identity: Identity,
    info: RequestInboxInfo,
    events: Events,
    _driver: driver::Handle,
    flow: crate::flow::FlowId,
}

async fn bob(net: &MemoryNetwork) -> Target {
    let id = Identity::generate(Profile::new("bob").unwrap(), "phone", T0_MS / 1000, &mut OsRng).unwrap();
    let id = driver::publish_identity(&net.join("bob"), id).await.unwrap();
    let cfg = DriverConfig::builder().clock(TokioClock::starting_at(T0_MS)).build();
    let store = Arc::new(MemoryStore::new());
    let (h, mut events) = driver::start(net.join("bob"), store.clone(), cfg).await.unwrap();
    let mut params = RequestInboxParams::new(id);
    params.pow_bits = BITS;
    let flow = h.open_request_inbox(params).await.unwrap();
    while let Some(e) = events.recv().await {
        if matches!(e.event, Event::RequestInboxOpen { .. }) {
            break;
        }
    }
    let identity = driver::identities(store.as_ref()).await.unwrap().identities.remove(0);
    let info = identity.signed().record().request_inbox.clone().unwrap();
    Target { identity, info, events, _driver: h, flow }
}

/// An identity bound to a location nobody published (enough for checks
/// that stop before the requester's record is read).
fn stranger(name: &str) -> Identity {
    let id = Identity::generate(Profile::new(name).unwrap(), "d", T0_MS / 1000, &mut OsRng).unwrap();
    let mut id = id;
    id.bind_location(RecordKey::new([3; 32], None)).unwrap();
    id
}

/// An identity published on `net`: its requests pass the read of the
/// requester's record (FRESH-8).
async fn published(net: &MemoryNetwork, name: &str) -> Identity {
    let id = Identity::generate(Profile::new(name).unwrap(), "d", T0_MS / 1000, &mut OsRng).unwrap();
    driver::publish_identity(&net.join(name), id).await.unwrap()
}

fn fake_ticket() -> Ticket {
    let mut r = [0u8; 32];
    OsRng.fill_bytes(&mut r);
    Ticket {
        kind: InvitationKind::Contact,
        record: r,
        secret: crate::encoding::TicketSecret::Plain(crate::crypto::InviteSecret::generate(&mut OsRng)),
    }
}

/// A slot value from `from`, claiming `claimed` identity and embedding
/// `embedded` as its identity record. `stamp`: a valid one or not.
fn forge(t: &Target, from: &Identity, embedded: &SignedIdentity, valid_stamp: bool) -> Vec<u8> {
    forge_with(t, from, embedded, valid_stamp, &DhSecretKey::generate(&mut OsRng))
}

fn forge_with(t: &Target, from: &Identity, embedded: &SignedIdentity, valid_stamp: bool, eph: &DhSecretKey) -> Vec<u8> {
    let inbox = *t.info.record.opaque();
    let me = t.identity.public_key();
    let content = AddressRequestContent {
        recipient_identity: me,
        request_inbox: inbox,
        ephemeral_key: eph.public(),
        identity_key: embedded.record().identity_key,
        device_key: from.device_public(),
        identity_record: embedded.location().cloned().unwrap_or_else(|| RecordKey::new([3; 32], None)),
        profile: Profile::new("someone").unwrap(),
        ticket: fake_ticket(),
        message: String::new(),
        created_at: T0_MS / 1000,
        expires_at: T0_MS / 1000 + 3600,
    };
    let signed = content.sign(from.device_key(), embedded).unwrap();
    let dh = t.identity.signed().record().dh_key;
    let sealed = seal_request(&signed, eph, &me, &dh, &inbox, &mut OsRng).unwrap();
    let subject = stamp_subject(eph.public().as_bytes(), &sealed);
    let nonce = if valid_stamp {
        pow::mint(BITS, me.as_bytes(), &inbox, &subject).unwrap()
    } else {
        (0..).find(|n| !pow::check(BITS, me.as_bytes(), &inbox, &subject, *n)).unwrap()
    };
    slot_value(&eph.public(), nonce, sealed)
}

async fn write(net: &MemoryNetwork, t: &Target, slot: u32, data: Vec<u8>) {
    let d = net.join("attacker");
    let _ = d.open_record(&t.info.record, Some(&t.info.writer)).await;
    d.set_value(&t.info.record, slot, data, Some(&t.info.writer)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn received(events: &mut Events) -> Vec<crate::flow::RequestView> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::RequestReceived(v) = e.event {
            out.push(v);
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn floods_without_stamps_never_reach_the_user_with_stamps_each_costs_the_work() {
    let net = MemoryNetwork::new();
    let mut t = bob(&net).await;
    // 64 well-formed, signed, sealed requests from 64 identities, no valid stamp.
    for i in 0..64u32 {
        let s = published(&net, "spammer").await;
        write(&net, &t, 1 + i % t.info.slots, forge(&t, &s, s.signed(), false)).await;
    }
    // Garbage of every shape.
    for (i, junk) in [vec![], vec![0xff; 10], vec![0; 20_000], b"not protobuf at all".to_vec()].into_iter().enumerate()
    {
        write(&net, &t, 1 + i as u32, junk).await;
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(received(&mut t.events).is_empty(), "nothing without a stamp reaches the user");

    // With valid stamps every request is shown: a stamp prices a request, it
    // does not filter it. 16 identities, 16 stamps of 2^BITS hashes each.
    let mut senders = Vec::new();
    for i in 0..16u32 {
        let s = published(&net, "stamped").await;
        senders.push(s.public_key());
        write(&net, &t, 1 + i % t.info.slots, forge(&t, &s, s.signed(), true)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = received(&mut t.events);
    assert_eq!(got.len(), 16);
    assert!(got.iter().all(|v| senders.contains(&v.requester)));
}

#[tokio::test(start_paused = true)]
async fn replays_duplicates_and_forged_bindings_are_dropped() {
    let net = MemoryNetwork::new();
    let mut t = bob(&net).await;
    let alice = published(&net, "alice").await;
    let value = forge(&t, &alice, alice.signed(), true);
    write(&net, &t, 1, value.clone()).await;
    assert_eq!(received(&mut t.events).len(), 1);
    // The same value again, in another slot and in the same one: one request.
    write(&net, &t, 2, value.clone()).await;
    write(&net, &t, 1, value.clone()).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(received(&mut t.events).is_empty(), "duplicates and replays are dropped");

    // Mallory claims to be Alice, embedding Alice's (public) identity record:
    // Mallory's device is not in it, so the key binding fails.
    let mallory = published(&net, "mallory").await;
    write(&net, &t, 3, forge(&t, &mallory, alice.signed(), true)).await;
    // Mallory's own request with one byte of the sealed body flipped: the AEAD refuses it.
    let mut tampered = forge(&t, &mallory, mallory.signed(), true);
    let n = tampered.len();
    tampered[n - 5] ^= 1;
    write(&net, &t, 4, tampered).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(received(&mut t.events).is_empty(), "forged bindings and tampered seals are dropped");
}

#[test]
fn verify_checks_binding_context_and_time() {
    use crate::error::{Error, VerifyError};
    use crate::message::address::open_slot;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let net = MemoryNetwork::new();
    let t = rt.block_on(bob(&net));
    let inbox = *t.info.record.opaque();
    let me = t.identity.public_key();
    let dh = t.identity.dh_secret();
    let alice = stranger("alice");
    let ok = forge(&t, &alice, alice.signed(), true);
    let req = open_slot(&ok, &dh, &me, &inbox, BITS).unwrap();
    let v = req.verify(&me, &inbox, T0_MS / 1000 + 1).unwrap();
    assert_eq!(v.content().identity_key, alice.public_key());
    // Expired.
    let req = open_slot(&ok, &dh, &me, &inbox, BITS).unwrap();
    assert!(matches!(req.verify(&me, &inbox, T0_MS / 1000 + 7200), Err(Error::Verify(VerifyError::Expired { .. }))));
    // For another recipient or inbox.
    let other = stranger("other").public_key();
    let req = open_slot(&ok, &dh, &me, &inbox, BITS).unwrap();
    assert!(matches!(req.verify(&other, &inbox, T0_MS / 1000), Err(Error::Verify(VerifyError::WrongContext(_)))));
    // A harder stamp than the one minted: refused before decryption.
    assert!(matches!(
        open_slot(&ok, &dh, &me, &inbox, BITS + 12),
        Err(Error::Verify(VerifyError::InsufficientWork { required }) ) if required == BITS + 12
    ));
    // Another recipient's key cannot open it.
    let wrong = DhSecretKey::generate(&mut OsRng);
    assert!(matches!(open_slot(&ok, &wrong, &me, &inbox, BITS), Err(Error::Verify(VerifyError::DecryptionFailed))));
    // Forged bindings.
    let mallory = stranger("mallory");
    let forged = forge(&t, &mallory, alice.signed(), true);
    let req = open_slot(&forged, &dh, &me, &inbox, BITS).unwrap();
    assert!(matches!(req.verify(&me, &inbox, T0_MS / 1000), Err(Error::Verify(VerifyError::UntrustedDevice(_)))));
    // Every truncation is a typed error, never a panic.
    for n in 0..ok.len() {
        assert!(open_slot(&ok[..n], &dh, &me, &inbox, BITS).is_err());
    }
}

/// EDGE-RQ-2 (issue 13, item 8): junk that copies a genuine request's
/// ephemeral key (and its stamp) must not suppress the genuine request.
#[tokio::test(start_paused = true)]
async fn edge_rq_junk_with_a_copied_ephemeral_key_does_not_suppress_the_request() {
    use crate::wire::{self, pb};
    let net = MemoryNetwork::new();
    let mut t = bob(&net).await;
    let alice = published(&net, "alice").await;
    let genuine = forge(&t, &alice, alice.signed(), true);
    let slot: pb::RequestSlot = wire::decode(&genuine, 1 << 16, "slot").unwrap();
    // Same ephemeral key and (valid) stamp, garbage seal: refused, but
    // it must not take the genuine request down with it.
    for junk_seal in [vec![0u8; 64], vec![1u8; 200]] {
        let junk = wire::encode(&pb::RequestSlot {
            ephemeral_key: slot.ephemeral_key.clone(),
            stamp: slot.stamp,
            sealed: junk_seal,
        });
        write(&net, &t, 1, junk).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(received(&mut t.events).is_empty());
    write(&net, &t, 2, genuine).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let got = received(&mut t.events);
    assert_eq!(got.len(), 1, "the genuine request is shown despite the junk that copied its ephemeral key");
    assert_eq!(got[0].requester, alice.public_key());
}

/// EDGE-RQ-1 (issue 13, item 8): with the request list full, a later
/// request is not lost for good: the user is told the list is full, and the
/// request is read again once there is room.
#[tokio::test(start_paused = true)]
async fn edge_rq_a_full_request_list_tells_the_user_and_reads_the_request_later() {
    let net = MemoryNetwork::new();
    let mut t = bob(&net).await;
    let slots = t.info.slots;
    // 256 throwaway identities, each with a valid stamp.
    for i in 0..crate::limits::MAX_KEPT_REQUESTS as u32 {
        let s = published(&net, "throwaway").await;
        write(&net, &t, 1 + i % slots, forge(&t, &s, s.signed(), true)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flood = received(&mut t.events);
    assert_eq!(flood.len(), crate::limits::MAX_KEPT_REQUESTS);
    // The genuine request arrives while the list is full.
    let alice = published(&net, "alice").await;
    write(&net, &t, 1, forge(&t, &alice, alice.signed(), true)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut told = false;
    while let Ok(e) = t.events.try_recv() {
        assert!(!matches!(e.event, Event::RequestReceived(_)), "no room yet");
        told |= matches!(e.event, Event::RequestInboxFull { kept } if kept == crate::limits::MAX_KEPT_REQUESTS);
    }
    assert!(told, "the user is told the request list overflowed");
    // The user clears one throwaway request: the genuine one is read again.
    t._driver.ignore_request(t.flow, flood[0].id).await.unwrap();
    // Read again at once (the user made room), not only at the next poll.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = received(&mut t.events);
    assert!(
        got.iter().any(|v| v.requester == alice.public_key()),
        "the request dropped for capacity is read again once there is room: got {got:?}"
    );
}

/// FRESH-8 fails closed: a well-formed, stamped request whose requester's
/// identity record cannot be read (never published where its snapshot says)
/// is not shown.
#[tokio::test(start_paused = true)]
async fn fresh_8_a_request_whose_requester_cannot_be_confirmed_is_not_shown() {
    let net = MemoryNetwork::new();
    let mut t = bob(&net).await;
    let ghost = stranger("ghost");
    write(&net, &t, 1, forge(&t, &ghost, ghost.signed(), true)).await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(received(&mut t.events).is_empty(), "an unconfirmed requester's request was shown");
    // A confirmed one beside it is shown.
    let alice = published(&net, "alice").await;
    write(&net, &t, 2, forge(&t, &alice, alice.signed(), true)).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let got = received(&mut t.events);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].requester, alice.public_key());
}

/// EDGE-RQ-3 (review of issue 13, item 8): a genuine stamp copied beside
/// other sealed bytes buys nothing: the value is refused at the stamp check,
/// before the X25519 and the AEAD open a recipient would spend on it.
#[test]
fn edge_rq_3_a_copied_stamp_beside_other_sealed_bytes_is_refused_before_decryption() {
    use crate::error::{Error, VerifyError};
    use crate::message::address::open_slot;
    use crate::wire::{self, pb};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let net = MemoryNetwork::new();
    let t = rt.block_on(bob(&net));
    let (inbox, me, dh) = (*t.info.record.opaque(), t.identity.public_key(), t.identity.dh_secret());
    let alice = stranger("alice");
    let genuine = forge(&t, &alice, alice.signed(), true);
    assert!(open_slot(&genuine, &dh, &me, &inbox, BITS).is_ok());
    let slot: pb::RequestSlot = wire::decode(&genuine, 1 << 16, "slot").unwrap();
    for junk in [vec![0u8; 64], vec![7u8; 300], [slot.sealed.as_slice(), &[0]].concat(), slot.sealed[1..].to_vec()] {
        let v = wire::encode(&pb::RequestSlot {
            ephemeral_key: slot.ephemeral_key.clone(),
            stamp: slot.stamp,
            sealed: junk,
        });
        assert!(
            matches!(open_slot(&v, &dh, &me, &inbox, BITS), Err(Error::Verify(VerifyError::InsufficientWork { .. }))),
            "a copied stamp was taken for other sealed bytes"
        );
    }
}
