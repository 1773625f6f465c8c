//! Serialization without footguns (issue 14, item 6):
//!
//! - `Contact` and `Identity` hold secrets and have no public serde form
//!   (SER-1); their views (`ContactView`, `IdentityView`) serialize with no
//!   secret in them, and the store still round-trips both, in the layout it
//!   always had;
//! - ids (`PublicKey`, `FlowId`, `RequestId`) have a lossless text form
//!   (lowercase hex) used by `Display`, `FromStr` and human-readable serde,
//!   while postcard (the store) keeps their byte encoding.

mod common;

use std::collections::BTreeMap;
use std::marker::PhantomData;

use common::*;
use contact_invite::contact::{Contact, ContactView, Role};
use contact_invite::crypto::{ParseIdError, PublicKey, SecretKey, SigningKey};
use contact_invite::dht::{MemoryNetwork, RecordKey};
use contact_invite::driver;
use contact_invite::flow::{Event, FlowId, Outcome, ReceiveParams, RequestId, SendParams};
use contact_invite::identity::{Identity, IdentityView};
use contact_invite::message::Profile;
use contact_invite::store::{MemoryStore, Store, Table};
use data_encoding::HEXLOWER;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Whether `T` implements `Serialize` / `DeserializeOwned`, found at compile
/// time (an inherent method wins over the blanket trait's when its bound
/// holds).
struct Probe<T>(PhantomData<T>);
trait NotSerialize {
    fn serializes(&self) -> bool {
        false
    }
}
impl<T> NotSerialize for Probe<T> {}
impl<T: Serialize> Probe<T> {
    fn serializes(&self) -> bool {
        true
    }
}
struct DeProbe<T>(PhantomData<T>);
trait NotDeserialize {
    fn deserializes(&self) -> bool {
        false
    }
}
impl<T> NotDeserialize for DeProbe<T> {}
impl<T: serde::de::DeserializeOwned> DeProbe<T> {
    fn deserializes(&self) -> bool {
        true
    }
}

/// Alice invites Bob, Bob accepts; returns both parties once both hold the contact.
async fn befriended(net: &MemoryNetwork) -> (Party, Party) {
    let mut alice = party(net, "alice").await;
    let mut bob = party(net, "bob").await;
    let params = SendParams::new(alice.identity.clone());
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| e.flow == b_flow && matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b_flow).await.unwrap();
    assert!(matches!(finished(&mut bob.events, b_flow).await, Outcome::Contact(_)));
    assert!(matches!(finished(&mut alice.events, a_flow).await, Outcome::Contact(_)));
    (alice, bob)
}

/// The secrets of a stored identity, from its store record.
async fn identity_secrets(identity: &Identity) -> (Vec<u8>, StoredIdentity) {
    let store = MemoryStore::new();
    driver::save_identity(&store, identity).await.unwrap();
    let record = store.get(Table::Identity, identity.public_key().as_bytes()).await.unwrap().unwrap();
    let stored: StoredIdentity = postcard::from_bytes(&record[1..]).unwrap();
    (record, stored)
}

// ---------------------------------------------------------------------------
// Item 6.1: no public serde form for secrets; views without secrets
// ---------------------------------------------------------------------------

/// SER-1: the types that hold secrets cannot be serialized or deserialized
/// by an app at all; their views can.
#[test]
fn ser_1_contact_and_identity_have_no_public_serde_form_their_views_do() {
    assert!(!Probe::<Contact>(PhantomData).serializes(), "Contact is Serialize");
    assert!(!Probe::<Identity>(PhantomData).serializes(), "Identity is Serialize");
    assert!(!DeProbe::<Contact>(PhantomData).deserializes(), "Contact is Deserialize");
    assert!(!DeProbe::<Identity>(PhantomData).deserializes(), "Identity is Deserialize");
    // The probe sees the impls that exist.
    assert!(Probe::<ContactView>(PhantomData).serializes());
    assert!(Probe::<IdentityView>(PhantomData).serializes());
    assert!(DeProbe::<ContactView>(PhantomData).deserializes());
    assert!(DeProbe::<IdentityView>(PhantomData).deserializes());
}

/// The views of a real contact and identity (made by a full invitation)
/// serialize, in JSON and postcard, with none of their secrets in raw, hex,
/// base32, base64 or byte-list form, and with what an app shows.
#[tokio::test(start_paused = true)]
async fn views_serialize_without_any_secret() {
    let net = MemoryNetwork::new();
    let (alice, bob) = befriended(&net).await;
    let contact = bob.contacts().await.pop().expect("bob's contact");

    // Every secret the contact and Bob's identity hold, as the store has them.
    let contact_record = bob.store.get(Table::Contacts, contact.peer.as_bytes()).await.unwrap().unwrap();
    let stored: StoredContact = postcard::from_bytes(&contact_record[1..]).unwrap();
    assert!(stored.conversation_key == *contact.conversation_key());
    let (identity_record, id) = identity_secrets(&bob.identity).await;
    let mut needles = Needles::new();
    needles.add("conversation key", contact.conversation_key().expose());
    needles.add("conversation owner key", contact.local_conversation_owner().expose_seed().as_slice());
    let mut record_secrets = 0;
    for (what, k) in [
        ("local conversation secret", &contact.local_conversation),
        ("remote conversation secret", &contact.remote_conversation),
        ("peer identity record secret", &contact.peer_identity_record),
    ] {
        if let Some(s) = k.secret() {
            needles.add(what, s.expose());
            record_secrets += 1;
        }
    }
    assert!(record_secrets >= 2, "the conversation records carry encryption secrets on MemoryDht");
    needles.add("identity key", id.identity_key.as_ref().expect("bob holds his identity key").expose_seed().as_slice());
    needles.add("device key", id.device_key.expose_seed().as_slice());
    needles.add("account secret", id.account_key.expose());
    if let Some(s) = id.record_key.as_ref().and_then(RecordKey::secret) {
        needles.add("identity record secret", s.expose());
    }
    // The search is live: the store records (which must hold the secrets) are caught.
    assert_eq!(needles.find(&contact_record), Some("conversation key raw"));
    assert_eq!(needles.find(&identity_record), Some("identity key raw"));

    let cv = contact.view();
    let iv = bob.identity.view();
    for (what, bytes) in [
        ("contact view JSON", serde_json::to_vec(&cv).unwrap()),
        ("contact view pretty JSON", serde_json::to_vec_pretty(&cv).unwrap()),
        ("contact view postcard", postcard::to_allocvec(&cv).unwrap()),
        ("contact view Debug", format!("{cv:?}").into_bytes()),
        ("identity view JSON", serde_json::to_vec(&iv).unwrap()),
        ("identity view pretty JSON", serde_json::to_vec_pretty(&iv).unwrap()),
        ("identity view postcard", postcard::to_allocvec(&iv).unwrap()),
        ("identity view Debug", format!("{iv:?}").into_bytes()),
    ] {
        if let Some(found) = needles.find(&bytes) {
            panic!("{what} shows the {found}: {}", String::from_utf8_lossy(&bytes));
        }
    }

    // What the views carry.
    assert_eq!(cv.peer, alice.identity.public_key());
    assert_eq!(cv.profile.name(), "alice");
    assert_eq!(cv.role, Role::Invitee);
    assert_eq!((cv.established_at, cv.verified_at), (contact.established_at, None));
    assert_eq!(&cv.local_conversation, contact.local_conversation.opaque());
    assert_eq!(&cv.remote_conversation, contact.remote_conversation.opaque());
    assert_eq!(&cv.peer_identity_record, contact.peer_identity_record.opaque());
    let own = bob.identity.public_key();
    assert_eq!(cv.safety_number(&own).digits(), contact.safety_code(&own));
    let json: serde_json::Value = serde_json::to_value(&cv).unwrap();
    assert_eq!(json["peer"], serde_json::json!(alice.identity.public_key().to_string()));
    assert_eq!(json["remote_conversation"], serde_json::json!(HEXLOWER.encode(contact.remote_conversation.opaque())));
    assert_eq!(serde_json::from_value::<ContactView>(json).unwrap(), cv);
    assert_eq!(postcard::from_bytes::<ContactView>(&postcard::to_allocvec(&cv).unwrap()).unwrap(), cv);

    assert_eq!((iv.identity, iv.device), (bob.identity.public_key(), bob.identity.device_public()));
    assert!(iv.holds_identity_key);
    assert_eq!(iv.record.as_ref(), bob.identity.record_key().map(RecordKey::opaque));
    assert!(iv.record.is_some(), "bob's identity is published");
    assert_eq!(iv.profile.as_ref().map(Profile::name), Some("bob"));
    assert_eq!(iv.devices.len(), 1);
    assert_eq!(iv.devices[0].device_key, bob.identity.device_public());
    let json = serde_json::to_string(&iv).unwrap();
    assert_eq!(serde_json::from_str::<IdentityView>(&json).unwrap(), iv);

    // A verified contact says so in its view.
    let mut verified = contact.clone();
    verified.mark_verified(1_795_305_700);
    assert_eq!(verified.view().verified_at, Some(1_795_305_700));
}

/// The store still round-trips contacts and identities (STORE-1 and STORE-2
/// checks included), in the layout it always had: a record written with the
/// old derived layout loads, and what the crate writes decodes as it.
#[tokio::test(start_paused = true)]
async fn store_round_trips_keep_their_layout_and_checks() {
    let net = MemoryNetwork::new();
    let (alice, bob) = befriended(&net).await;
    let contact = bob.contacts().await.pop().expect("bob's contact");

    // Round trips through the public store API.
    let store = MemoryStore::new();
    driver::save_contact(&store, &contact).await.unwrap();
    driver::save_identity(&store, &bob.identity).await.unwrap();
    let back = driver::contacts(&store).await.unwrap().contacts;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].view(), contact.view());
    assert!(back[0].conversation_key() == contact.conversation_key());
    assert!(back[0].local_conversation_owner() == contact.local_conversation_owner());
    assert_eq!(back[0].local_conversation, contact.local_conversation);
    let ids = driver::identities(&store).await.unwrap().identities;
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].view(), bob.identity.view());

    // What the crate writes is exactly the old derived layout, byte for byte.
    let record = store.get(Table::Contacts, contact.peer.as_bytes()).await.unwrap().unwrap();
    let stored: StoredContact = postcard::from_bytes(&record[1..]).unwrap();
    assert_eq!(postcard::to_allocvec(&stored).unwrap(), record[1..]);
    assert_eq!(stored.peer, contact.peer);
    assert!(stored.local_conversation_owner == *contact.local_conversation_owner());
    let (id_record, stored_id) = identity_secrets(&bob.identity).await;
    assert_eq!(postcard::to_allocvec(&stored_id).unwrap(), id_record[1..]);
    assert_eq!(stored_id.identity_public, bob.identity.public_key());

    // A record written in that layout (as by an earlier release) loads.
    let other = MemoryStore::new();
    let mut rec = record[..1].to_vec();
    rec.extend(postcard::to_allocvec(&stored).unwrap());
    other.put(Table::Contacts, contact.peer.as_bytes(), &rec).await.unwrap();
    assert_eq!(driver::contacts(&other).await.unwrap().contacts[0].view(), contact.view());

    // STORE-1 still applies: a contact naming another identity's record is refused.
    let mut swapped = stored;
    swapped.peer_identity = bob.identity.signed().clone();
    let mut rec = record[..1].to_vec();
    rec.extend(postcard::to_allocvec(&swapped).unwrap());
    other.put(Table::Contacts, contact.peer.as_bytes(), &rec).await.unwrap();
    let loaded = driver::contacts(&other).await.unwrap();
    assert!(
        loaded.contacts.is_empty() && loaded.unreadable.len() == 1,
        "a contact holding another identity's record was loaded"
    );

    // STORE-2 still applies: an identity with another account secret is refused.
    let mut tampered = stored_id;
    tampered.account_key = SecretKey::generate(&mut OsRng);
    let mut rec = id_record[..1].to_vec();
    rec.extend(postcard::to_allocvec(&tampered).unwrap());
    other.put(Table::Identity, bob.identity.public_key().as_bytes(), &rec).await.unwrap();
    let loaded = driver::identities(&other).await.unwrap();
    assert!(
        loaded.identities.is_empty() && loaded.unreadable.len() == 1,
        "an identity with a foreign account secret was loaded"
    );
    drop(alice);
}

// ---------------------------------------------------------------------------
// Item 6.2: ids with a lossless text form
// ---------------------------------------------------------------------------

fn random_flow() -> FlowId {
    FlowId::random(&mut OsRng)
}

fn random_request() -> RequestId {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    RequestId(b)
}

/// Display is the full lowercase hex, FromStr reads it back, fmt_short is
/// its prefix, Debug shows the full id.
#[test]
fn ids_round_trip_through_display_and_from_str() {
    for _ in 0..32 {
        let k = SigningKey::generate(&mut OsRng).public();
        let text = k.to_string();
        assert_eq!(text, HEXLOWER.encode(k.as_bytes()));
        assert_eq!(text.parse::<PublicKey>().unwrap(), k);
        assert!(text.starts_with(&k.fmt_short()) && k.fmt_short().len() == 16);

        let f = random_flow();
        let text = f.to_string();
        assert_eq!(text, HEXLOWER.encode(&f.0));
        assert_eq!(text.parse::<FlowId>().unwrap(), f);
        assert!(text.starts_with(&f.fmt_short()) && f.fmt_short().len() == 12);
        assert_eq!(format!("{f:?}"), format!("FlowId({text})"));

        let r = random_request();
        let text = r.to_string();
        assert_eq!(text, HEXLOWER.encode(&r.0));
        assert_eq!(text.parse::<RequestId>().unwrap(), r);
        assert!(text.starts_with(&r.fmt_short()) && r.fmt_short().len() == 12);
        assert_eq!(format!("{r:?}"), format!("RequestId({text})"));
    }
}

/// JSON holds ids as their text form (also as map keys, impossible before),
/// and still reads the arrays of numbers earlier releases wrote.
#[test]
fn ids_are_strings_in_json_and_old_arrays_still_read() {
    let k = SigningKey::generate(&mut OsRng).public();
    let (f, r) = (random_flow(), random_request());
    assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
    assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{f}\""));
    assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
    assert_eq!(serde_json::from_str::<PublicKey>(&format!("\"{k}\"")).unwrap(), k);
    assert_eq!(serde_json::from_str::<FlowId>(&format!("\"{f}\"")).unwrap(), f);
    assert_eq!(serde_json::from_str::<RequestId>(&format!("\"{r}\"")).unwrap(), r);

    let map: BTreeMap<PublicKey, FlowId> = [(k, f)].into_iter().collect();
    let json = serde_json::to_string(&map).unwrap();
    assert_eq!(json, format!("{{\"{k}\":\"{f}\"}}"));
    assert_eq!(serde_json::from_str::<BTreeMap<PublicKey, FlowId>>(&json).unwrap(), map);

    // The earlier form: arrays of numbers.
    assert_eq!(serde_json::from_str::<PublicKey>(&serde_json::to_string(k.as_bytes()).unwrap()).unwrap(), k);
    assert_eq!(serde_json::from_str::<FlowId>(&serde_json::to_string(&f.0).unwrap()).unwrap(), f);
    assert_eq!(serde_json::from_str::<RequestId>(&serde_json::to_string(&r.0).unwrap()).unwrap(), r);
    // … of the right length only.
    assert!(serde_json::from_str::<FlowId>(&serde_json::to_string(&[1u8; 15]).unwrap()).is_err());
    assert!(serde_json::from_str::<FlowId>(&serde_json::to_string(&[1u8; 17]).unwrap()).is_err());
    assert!(serde_json::from_str::<RequestId>(&serde_json::to_string(&[1u8; 31]).unwrap()).is_err());
    assert!(serde_json::from_str::<FlowId>("17").is_err());
}

/// Postcard (the store's format) is unchanged: a flow id is its 16 bytes, a
/// request id its 32 bytes, a public key a 32-byte byte string, exactly as
/// the derived impls wrote them.
#[test]
fn ids_keep_their_postcard_encoding() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct OldFlowId([u8; 16]);
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct OldRequestId([u8; 32]);
    let (f, r) = (random_flow(), random_request());
    let k = SigningKey::generate(&mut OsRng).public();
    assert_eq!(postcard::to_allocvec(&f).unwrap(), f.0.to_vec());
    assert_eq!(postcard::to_allocvec(&f).unwrap(), postcard::to_allocvec(&OldFlowId(f.0)).unwrap());
    assert_eq!(postcard::to_allocvec(&r).unwrap(), r.0.to_vec());
    assert_eq!(postcard::to_allocvec(&r).unwrap(), postcard::to_allocvec(&OldRequestId(r.0)).unwrap());
    let mut key = vec![32u8];
    key.extend_from_slice(k.as_bytes());
    assert_eq!(postcard::to_allocvec(&k).unwrap(), key);
    assert_eq!(postcard::from_bytes::<FlowId>(&f.0).unwrap(), f);
    assert_eq!(postcard::from_bytes::<RequestId>(&r.0).unwrap(), r);
    assert_eq!(postcard::from_bytes::<PublicKey>(&key).unwrap(), k);
    // Inside a structure too (a request inbox's persisted maps hold both).
    let m: BTreeMap<RequestId, (PublicKey, FlowId)> = [(r, (k, f))].into_iter().collect();
    let old: BTreeMap<[u8; 32], (PublicKey, OldFlowId)> = [(r.0, (k, OldFlowId(f.0)))].into_iter().collect();
    let bytes = postcard::to_allocvec(&m).unwrap();
    assert_eq!(bytes, postcard::to_allocvec(&old).unwrap());
    assert_eq!(postcard::from_bytes::<BTreeMap<RequestId, (PublicKey, FlowId)>>(&bytes).unwrap(), m);
    assert!(postcard::from_bytes::<FlowId>(&f.0[..15]).is_err());
}

/// Bad text gets a typed error that names a length or a position, never the
/// input.
#[test]
fn invalid_id_text_is_a_typed_error_that_does_not_echo_the_input() {
    let long = "f".repeat(10_000);
    let e = long.parse::<FlowId>().unwrap_err();
    assert_eq!(e, ParseIdError::Length { what: "flow id", expected: 32, got: 10_000 });
    assert!(!e.to_string().contains("ffff"), "{e}");
    let e = long.parse::<PublicKey>().unwrap_err();
    assert_eq!(e, ParseIdError::Length { what: "public key", expected: 64, got: 10_000 });

    // Right length, one bad character: its position only.
    let k = SigningKey::generate(&mut OsRng).public().to_string();
    let mut upper = k.clone();
    upper.replace_range(10..11, "G");
    let e = upper.parse::<PublicKey>().unwrap_err();
    assert_eq!(e, ParseIdError::Character { what: "public key", position: 10 });
    assert!(!e.to_string().contains(&upper[..16]), "{e}");
    // Uppercase hex is not the text form (one text per id).
    let fixed = SigningKey::from_seed(&mut [7u8; 32]).public().to_string();
    let first_letter = fixed.find(|c: char| c.is_ascii_lowercase()).expect("a hex letter");
    assert_eq!(
        fixed.to_uppercase().parse::<PublicKey>().unwrap_err(),
        ParseIdError::Character { what: "public key", position: first_letter }
    );
    let r = random_request().to_string();
    // A two-byte character in place of two digits: the length is right.
    let bad = format!("{}é{}", &r[..30], &r[32..]);
    assert_eq!(bad.len(), 64);
    assert_eq!(bad.parse::<RequestId>().unwrap_err(), ParseIdError::Character { what: "request id", position: 30 });
    assert!(matches!(r[..63].parse::<RequestId>(), Err(ParseIdError::Length { got: 63, .. })));
    let bad = format!("{}zz{}", &r[..30], &r[32..]);
    assert_eq!(bad.parse::<RequestId>().unwrap_err(), ParseIdError::Character { what: "request id", position: 30 });
    assert!(matches!("".parse::<FlowId>(), Err(ParseIdError::Length { got: 0, .. })));

    // Well-formed hex that is not a curve point.
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    let e = HEXLOWER.encode(&not_a_point).parse::<PublicKey>().unwrap_err();
    assert_eq!(e, ParseIdError::InvalidKey { what: "public key" });

    // Through serde_json: the same errors, no input echoed.
    let secretish = "a".repeat(5_000);
    let e = serde_json::from_str::<RequestId>(&format!("\"{secretish}\"")).unwrap_err().to_string();
    assert!(!e.contains("aaaaaaaa"), "{e}");
    assert!(e.contains("request id") && e.contains("5000"), "{e}");
    let e = serde_json::from_str::<PublicKey>(&format!("\"{}\"", HEXLOWER.encode(&not_a_point))).unwrap_err();
    assert!(!e.to_string().contains(&HEXLOWER.encode(&not_a_point[..8])), "{e}");
}

proptest::proptest! {
    /// Any bytes round-trip through text and JSON; any text parses or is
    /// refused with a typed error, never a panic, and only lowercase hex of
    /// the right length parses.
    #[test]
    fn id_text_round_trips_and_never_panics(bytes in proptest::array::uniform32(proptest::prelude::any::<u8>()), text in ".{0,80}") {
        let r = RequestId(bytes);
        proptest::prop_assert_eq!(r.to_string().parse::<RequestId>().unwrap(), r);
        proptest::prop_assert_eq!(serde_json::from_str::<RequestId>(&serde_json::to_string(&r).unwrap()).unwrap(), r);
        let mut f = [0u8; 16];
        f.copy_from_slice(&bytes[..16]);
        let f = FlowId(f);
        proptest::prop_assert_eq!(f.to_string().parse::<FlowId>().unwrap(), f);
        let canonical = |n: usize| text.len() == n && text.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        proptest::prop_assert_eq!(text.parse::<FlowId>().is_ok(), canonical(32));
        proptest::prop_assert_eq!(text.parse::<RequestId>().is_ok(), canonical(64));
        if let Ok(k) = text.parse::<PublicKey>() {
            proptest::prop_assert!(canonical(64));
            proptest::prop_assert_eq!(k.to_string(), text.clone());
        }
    }
}
