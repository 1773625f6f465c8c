//! Attacks on message integrity (issue 13, items 2, 3 and part of 11), staged
//! as an attacker would: the public API, MemoryDht (whose `tamper_*` hooks
//! stand for a hostile DHT node, a hostile hop or a ticket holder writing
//! with the writer key every ticket holder finds in the sealed request), and
//! the documented wire format (docs/protocol.md), re-implemented here by hand.

mod common;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::*;
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::encoding::{Ticket, TicketSecret};
use contact_invite::flow::{Event, Outcome, ReceiveParams, SendParams};

// ---- the documented wire format, by hand --------------------------------

/// One protobuf field: number, wire type, raw value (varint value for type 0).
#[derive(Clone, Debug)]
enum Field {
    Varint(u32, u64),
    Bytes(u32, Vec<u8>),
}

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn fields(b: &[u8]) -> Vec<Field> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let (n, t) = ((key >> 3) as u32, key & 7);
        match t {
            0 => out.push(Field::Varint(n, read_varint(b, &mut i))),
            2 => {
                let len = read_varint(b, &mut i) as usize;
                out.push(Field::Bytes(n, b[i..i + len].to_vec()));
                i += len;
            }
            _ => panic!("unexpected wire type {t}"),
        }
    }
    out
}

fn encode(fs: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fs {
        match f {
            Field::Varint(n, v) => {
                put_varint(&mut out, u64::from(*n) << 3);
                put_varint(&mut out, *v);
            }
            Field::Bytes(n, v) => {
                put_varint(&mut out, (u64::from(*n) << 3) | 2);
                put_varint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
        }
    }
    out
}

fn bytes_field(fs: &[Field], n: u32) -> Vec<u8> {
    fs.iter()
        .find_map(|f| match f {
            Field::Bytes(m, v) if *m == n => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("field {n} missing"))
}

/// `derive(purpose, S, [inbox])` (src/crypto/kdf.rs, documented labels).
fn inbox_key(label: &str, secret: &[u8; 32], inbox: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(label);
    h.update(&32u64.to_le_bytes());
    h.update(secret);
    h.update(&32u64.to_le_bytes());
    h.update(inbox);
    *h.finalize().as_bytes()
}

/// Associated data of a response seal: label ‖ version ‖ kind ‖ inbox.
fn response_ad(inbox: &[u8; 32]) -> Vec<u8> {
    let mut ad = b"contact-invite".to_vec();
    ad.extend_from_slice(&contact_invite::crypto::PROTOCOL_VERSION.to_be_bytes());
    ad.push(b"response".len() as u8);
    ad.extend_from_slice(b"response");
    ad.extend_from_slice(inbox);
    ad
}

/// The inbox secret a ticket holder derives from the ticket's secret.
fn plain_secret(t: &Ticket) -> [u8; 32] {
    match &t.secret {
        TicketSecret::Plain(s) => *s.inbox_secret().expose(),
        TicketSecret::Locked { .. } | TicketSecret::Pin(_) => panic!("plain ticket expected"),
    }
}

/// What a ticket holder does to a response it read from subkey 1: opens it,
/// appends an unknown field to the outer `SignedContactResponse` (payload and
/// signature untouched), pads and seals it again.
fn re_encode_response(value: &[u8], ticket: &Ticket) -> Vec<u8> {
    let secret = plain_secret(ticket);
    let key = inbox_key("contact-invite v1 2026-11 response seal", &secret, &ticket.record);
    let cipher = XChaCha20Poly1305::new((&key).into());
    let sealed = bytes_field(&fields(value), 3);
    let (nonce, ct) = sealed.split_at(24);
    let ad = response_ad(&ticket.record);
    let padded = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &ad }).expect("opens");
    let len = u32::from_be_bytes(padded[..4].try_into().unwrap()) as usize;
    let mut signed = padded[4..4 + len].to_vec();
    // Field 9, varint 1: unknown to SignedContactResponse, ignored on decode.
    signed.extend_from_slice(&[0x48, 0x01]);
    let mut repadded = vec![0u8; padded.len()];
    repadded[..4].copy_from_slice(&(signed.len() as u32).to_be_bytes());
    repadded[4..4 + signed.len()].copy_from_slice(&signed);
    let nonce = [0x42u8; 24];
    let mut out = nonce.to_vec();
    out.extend(cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &repadded, aad: &ad }).unwrap());
    encode(&[Field::Bytes(3, out)])
}

async fn publish(alice: &mut Party) -> (contact_invite::flow::FlowId, Ticket) {
    let params = SendParams::new(alice.identity.clone());
    publish_invitation(alice, params).await
}

// ---- item 2: re-encoding a response splits the handshake ----------------

/// INT-HASH-1. Before the fix the final status named the hash of the exact
/// outer bytes the inviter read: the re-encoded response was accepted by
/// Alice (contact saved) while Bob, whose own hash was of the original bytes,
/// ended with `Failed(AlreadyUsed)`.
#[tokio::test(start_paused = true)]
async fn re_encoded_response_does_not_split_the_handshake() {
    let net = MemoryNetwork::with_faults(7, FaultConfig { lose_notification: 1.0, ..Default::default() });
    net.set_nudges_enabled(false);
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice).await;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    // Alice cannot read the genuine response before the attacker rewrites it.
    net.set_offline("alice", true);
    bob.handle.accept(b_flow).await.unwrap();
    wait_for(&mut bob.events, "response sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let genuine = net.stored_value(&ticket.record, 1).expect("bob's response").data;
    net.tamper_value(&ticket.record, 1, re_encode_response(&genuine, &ticket));
    net.set_offline("alice", false);
    let a_out = finished(&mut alice.events, a_flow).await;
    let b_out = finished(&mut bob.events, b_flow).await;
    assert_eq!(
        (a_out, b_out),
        (Outcome::Contact(bob.identity.public_key()), Outcome::Contact(alice.identity.public_key())),
        "both sides end with the contact, or neither does"
    );
}

/// INT-HASH-1, device links. Before the fix the same re-encoding made the old
/// device add the new one and seal the handover to the re-encoded response's
/// hash, while the new device did not recognise the final status and ended
/// without the account key.
#[tokio::test(start_paused = true)]
async fn re_encoded_link_response_still_hands_over_the_account() {
    let net = MemoryNetwork::with_faults(9, FaultConfig { lose_notification: 1.0, ..Default::default() });
    net.set_nudges_enabled(false);
    let mut alice = party(&net, "alice").await;
    let a_flow = alice.handle.link_device(SendParams::new(alice.identity.clone())).await.unwrap();
    wait_for(&mut alice.events, "link published", |e| {
        e.flow == a_flow && matches!(e.event, Event::InvitationPublished { .. })
    })
    .await;
    let ticket = alice.handle.ticket(a_flow).await.unwrap().expect("ticket");
    let store = std::sync::Arc::new(contact_invite::store::MemoryStore::new());
    let (dev, mut dev_events) =
        start(&net, "laptop", &store, contact_invite::driver::TokioClock::starting_at(T0_MS), None).await;
    let d_flow = dev.join_account(contact_invite::flow::LinkParams::new(ticket.clone(), "laptop")).await.unwrap();
    wait_for(&mut dev_events, "link shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    net.set_offline("alice", true);
    dev.accept(d_flow).await.unwrap();
    wait_for(&mut dev_events, "response sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let genuine = net.stored_value(&ticket.record, 1).expect("the new device's response").data;
    net.tamper_value(&ticket.record, 1, re_encode_response(&genuine, &ticket));
    net.set_offline("alice", false);
    let a_out = finished(&mut alice.events, a_flow).await;
    let d_out = finished(&mut dev_events, d_flow).await;
    let Outcome::DeviceLinked(new_key) = d_out else { panic!("the new device ended {d_out:?}, the old one {a_out:?}") };
    assert_eq!(a_out, Outcome::DeviceLinked(new_key));
    let ids = contact_invite::driver::identities(store.as_ref()).await.unwrap().identities;
    assert_eq!(ids.len(), 1, "the new device saved its identity with the account key");
}

// ---- item 3: an unauthenticated nudge ends the invitee's flow -----------

/// INT-NUDGE-1. Before the fix the 2-byte empty tombstone nudged to Bob's
/// reply address (here: every nudge replaced on the way) ended Bob's flow
/// with `Failed(InboxClosed)` while Alice saved the contact.
#[tokio::test(start_paused = true)]
async fn unauthenticated_tombstone_nudge_does_not_end_the_invitee_flow() {
    // Old-format empty tombstone (InboxEntry field 4), the new field 5 empty,
    // and field 5 holding a tombstone with a junk signature.
    let junk_signed = encode(&[Field::Bytes(
        5,
        encode(&[Field::Bytes(1, encode(&[Field::Varint(1, 2), Field::Varint(4, 1)])), Field::Bytes(2, vec![7; 64])]),
    )]);
    for forged in [vec![0x22, 0x00], vec![0x2a, 0x00], junk_signed] {
        let net = MemoryNetwork::with_faults(3, FaultConfig { lose_notification: 1.0, ..Default::default() });
        let mut alice = party(&net, "alice").await;
        let mut bob = party(&net, "bob").await;
        let (a_flow, ticket) = publish(&mut alice).await;
        let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
        net.tamper_nudges(Some(forged.clone()));
        bob.handle.accept(b_flow).await.unwrap();
        let a_out = finished(&mut alice.events, a_flow).await;
        let b_out = finished(&mut bob.events, b_flow).await;
        assert_eq!(
            (a_out, b_out),
            (Outcome::Contact(bob.identity.public_key()), Outcome::Contact(alice.identity.public_key())),
            "forged tombstone {forged:02x?}: only a verified final status ends the invitee's wait"
        );
    }
}

/// INT-NUDGE-1 (DHT side). A hostile node serving a tombstone in the owner
/// subkey to a fresh invitee does not make it report "closed" (nor "already
/// used", "revoked", "expired"): an unverifiable value is no evidence about the
/// inbox. Version 1's empty tombstone is now malformed (a decode error); an
/// unsigned version 2 tombstone is treated like no value ("not found"). Before
/// the fix the empty tombstone ended the flow with `InboxClosed`.
#[tokio::test(start_paused = true)]
async fn unsigned_tombstone_in_the_owner_subkey_is_not_a_closed_inbox() {
    use contact_invite::error::ProtocolError;
    for forged in [vec![0x22, 0x00], vec![0x2a, 0x00]] {
        let net = MemoryNetwork::new();
        let mut alice = party(&net, "alice").await;
        let mut bob = party(&net, "bob").await;
        let (_a_flow, ticket) = publish(&mut alice).await;
        net.tamper_value(&ticket.record, 0, forged.clone());
        let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        let out = finished(&mut bob.events, b_flow).await;
        assert!(
            matches!(
                &out,
                Outcome::Failed(
                    contact_invite::Error::Protocol(ProtocolError::NotFound) | contact_invite::Error::Decode(_)
                )
            ),
            "{forged:02x?}: an unverifiable value is no evidence the inbox was closed: {out:?}"
        );
    }
}

// ---- item 11: the cleartext encryption_key_type is authenticated ---------

/// INT-EKT-1. Before the fix a DHT node could flip the request's cleartext
/// `encryption_key_type` (NONE -> PASSWORD) and Bob still opened and showed
/// the invitation.
#[tokio::test(start_paused = true)]
async fn flipped_encryption_key_type_is_refused() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_a_flow, ticket) = publish(&mut alice).await;
    let value = net.stored_value(&ticket.record, 0).expect("request").data;
    let request = fields(&bytes_field(&fields(&value), 1));
    let flipped: Vec<Field> = request
        .into_iter()
        .map(|f| match f {
            Field::Varint(2, 1) => Field::Varint(2, 3), // NONE -> PASSWORD
            f => f,
        })
        .collect();
    net.tamper_value(&ticket.record, 0, encode(&[Field::Bytes(1, encode(&flipped))]));
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    let e = wait_for(&mut bob.events, "shown or finished", |e| {
        e.flow == b_flow && matches!(e.event, Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    assert!(
        matches!(e.event, Event::Finished(Outcome::Failed(_))),
        "a flipped encryption_key_type must not open: {:?}",
        e.event
    );
}

// ---- the class: hostile values by every channel, at machine level -------

#[path = "common/machines.rs"]
mod machines;

use std::sync::OnceLock;

use contact_invite::identity::Identity;
use machines::{Channel, Pair, Side, assert_unmoved};
use proptest::prelude::*;

/// Alice and Bob, published once (their records go into each harness store).
fn parties() -> &'static (Identity, Identity) {
    static P: OnceLock<(Identity, Identity)> = OnceLock::new();
    P.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let net = MemoryNetwork::new();
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(13);
        let mut make = |name: &str| {
            let id = Identity::generate(
                contact_invite::message::Profile::new(name).unwrap(),
                "device",
                machines::START_MS / 1000,
                &mut rng,
            )
            .unwrap();
            rt.block_on(contact_invite::driver::publish_identity(&net.join(name), id)).unwrap()
        };
        (make("alice"), make("bob"))
    })
}

/// Genuine values of another invitation between the same two parties (its
/// signed final status and signed tombstone): replays must not count here.
fn foreign() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static F: OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let (a, b) = parties();
        let mut p = Pair::awaiting(a, b, 99);
        let response = p.stored(1).unwrap();
        p.poll(Side::Inviter);
        let (fx, _) = p.take_effects();
        assert_eq!(Pair::outcome(&fx), Some(Outcome::Contact(b.public_key())));
        (p.stored(0).unwrap(), p.stored(1).unwrap(), response)
    })
}

#[derive(Clone, Debug)]
enum Hostile {
    Junk(Vec<u8>),
    /// Version 1's unsigned empty tombstone.
    LegacyTombstone,
    /// A signed-tombstone entry with arbitrary content and signature.
    ForgedTombstone(Vec<u8>, Vec<u8>),
    /// A genuine value of this invitation (0 request, 1 response) with one bit flipped.
    Flipped(u32, usize),
    /// Another invitation's final status, tombstone or response.
    Foreign(usize),
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Hostile::Junk),
        Just(Hostile::LegacyTombstone),
        (proptest::collection::vec(any::<u8>(), 0..80), proptest::collection::vec(any::<u8>(), 64..=64))
            .prop_map(|(p, s)| Hostile::ForgedTombstone(p, s)),
        (0u32..2, any::<usize>()).prop_map(|(k, b)| Hostile::Flipped(k, b)),
        (0usize..3).prop_map(Hostile::Foreign),
    ]
}

fn materialize(h: &Hostile, p: &Pair) -> Vec<u8> {
    match h {
        Hostile::Junk(v) => v.clone(),
        Hostile::LegacyTombstone => vec![0x22, 0x00],
        Hostile::ForgedTombstone(payload, sig) => {
            encode(&[Field::Bytes(5, encode(&[Field::Bytes(1, payload.clone()), Field::Bytes(2, sig.clone())]))])
        }
        Hostile::Flipped(k, bit) => {
            let mut v = p.stored(*k).unwrap();
            let bit = bit % (v.len() * 8);
            v[bit / 8] ^= 1 << (bit % 8);
            v
        }
        Hostile::Foreign(i) => {
            let (f, t, r) = foreign();
            [f, t, r][*i].clone()
        }
    }
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::Nudge), Just(Channel::Watch), Just(Channel::Poll)]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Inviter), Just(Side::Invitee)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// INT-NUDGE-1, the class: while the inviter waits for the response and
    /// the invitee for the final status, no value that does not verify under
    /// a key the flow already trusts — whatever it is, by nudge, watch or a
    /// DHT node's answer — ends, cancels or saves anything; afterwards the
    /// genuine values still make the contact on both sides.
    #[test]
    fn no_flow_moves_on_a_value_that_does_not_verify(
        seed in any::<u64>(),
        attacks in proptest::collection::vec((side(), channel(), 0u32..2, hostile()), 1..8),
    ) {
        let (a, b) = parties();
        let mut p = Pair::awaiting(a, b, seed);
        for (side, channel, subkey, h) in &attacks {
            let v = materialize(h, &p);
            p.hostile(*side, *channel, *subkey, v);
            let (fa, fb) = p.take_effects();
            let what = format!("{h:?} by {channel:?} on subkey {subkey} to {side:?}");
            assert_unmoved(Side::Inviter, &fa, &what);
            assert_unmoved(Side::Invitee, &fb, &what);
            prop_assert!(!p.inviter.is_finished() && !p.invitee.is_finished(), "{}", what);
        }
        // The genuine values still finish both sides with the contact.
        p.poll(Side::Inviter);
        let (fa, _) = p.take_effects();
        prop_assert_eq!(Pair::outcome(&fa), Some(Outcome::Contact(b.public_key())));
        p.poll(Side::Invitee);
        let (_, fb) = p.take_effects();
        prop_assert_eq!(Pair::outcome(&fb), Some(Outcome::Contact(a.public_key())));
    }
}

/// INT-NUDGE-1 / INT-TOMB-1: the inviter's own tombstone verifies for its
/// invitation only; the waiting invitee treats a verified one as "read the
/// final status", never as an outcome by itself.
#[test]
fn signed_tombstone_prompts_a_read_and_the_final_status_decides() {
    let (a, b) = parties();
    let (_, foreign_tombstone, _) = foreign();
    let mut p = Pair::awaiting(a, b, 5);
    // Another invitation's genuine tombstone, by every channel: nothing.
    for ch in [Channel::Nudge, Channel::Watch, Channel::Poll] {
        p.hostile(Side::Invitee, ch, 0, foreign_tombstone.clone());
        let (_, fb) = p.take_effects();
        assert_unmoved(Side::Invitee, &fb, "foreign tombstone");
    }
    // Alice finishes (final status, then her tombstone over the response).
    p.poll(Side::Inviter);
    let (fa, _) = p.take_effects();
    assert_eq!(Pair::outcome(&fa), Some(Outcome::Contact(b.public_key())));
    let own_tombstone = p.stored(1).unwrap();
    assert_ne!(&own_tombstone, foreign_tombstone);
    // Her genuine tombstone, nudged: Bob reads subkey 0 and the final status makes the contact.
    p.hostile(Side::Invitee, Channel::Nudge, 0, own_tombstone);
    let (_, fb) = p.take_effects();
    assert_eq!(Pair::outcome(&fb), Some(Outcome::Contact(a.public_key())));
}

/// How many writes of the inbox's `subkey` the effects ask for.
fn sets_of_subkey(effects: &[contact_invite::machine::Effect], subkey: u32) -> usize {
    use contact_invite::machine::{DhtOp, Effect};
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Dht { request: DhtOp::Set { subkey: s, .. }, .. } if *s == subkey))
        .count()
}

/// INT-TOMB-2. Before the fix the tombstone rewrite loop had no bound (its
/// try counter was never used): a node that always claimed a newer value in
/// the response subkey kept the finished inviter writing forever (here the
/// harness stopped it as a runaway).
#[test]
fn tombstone_rewrites_over_a_newer_value_are_bounded() {
    let (a, b) = parties();
    let mut p = Pair::awaiting(a, b, 11);
    p.newer_on_set = Some((Side::Inviter, 1));
    p.poll(Side::Inviter);
    let (fa, _) = p.take_effects();
    let writes = sets_of_subkey(&fa, 1);
    assert_eq!(Pair::outcome(&fa), Some(Outcome::Contact(b.public_key())), "the decision stands");
    assert!(p.inviter.is_finished());
    assert!((2..=9).contains(&writes), "one write and at most 8 rewrites, got {writes}");
}

/// The same class for the final status (INT-TOMB-2 extended): a node that
/// answers every write of subkey 0 with "a newer value exists" must not
/// keep the inviter rewriting forever. At most 8 immediate rewrites, then
/// the slow retry schedule (bounded by the invitation's lifetime).
#[test]
fn final_status_rewrites_over_a_newer_value_are_bounded() {
    let (a, b) = parties();
    let mut p = Pair::awaiting(a, b, 12);
    p.newer_on_set = Some((Side::Inviter, 0));
    p.poll(Side::Inviter);
    let (fa, _) = p.take_effects();
    let writes = sets_of_subkey(&fa, 0);
    assert!((2..=9).contains(&writes), "one write and at most 8 immediate rewrites, got {writes}");
    assert!(!p.inviter.is_finished(), "the decision stands and is retried later, not dropped");
    assert_eq!(Pair::outcome(&fa), None);
}
