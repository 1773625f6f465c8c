//! Stores that apps can trust: an unreadable contact or identity record is
//! reported and skipped (never deleted), and records of the previous format
//! are migrated as far as their content allows.
//!
//! `tests/fixtures/store_previous_format.txt` holds records written by the
//! release before the current formats (`RECORD_FORMAT` 3,
//! `FLOW_RECORD_FORMAT` 5, protocol version 2): commit 7683bff of this
//! repository. It was made by running, in a checkout of that commit, a test
//! that completes an invitation between Alice and Bob on a `MemoryNetwork`
//! (the flow of `tests/flows.rs`), saves Bob's identity with
//! `driver::save_identity`, publishes a second invitation of Alice's that is
//! still waiting, and writes one line per store entry: table name, hex key,
//! hex value (Bob's contact and identity; Alice's waiting flow, its
//! outstanding-invitation entry and its identity snapshot).

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, DriverConfig};
use contact_invite::error::{Error, ErrorCode, VerifyError};
use contact_invite::flow::{Event, FlowId, Outcome, ReceiveParams, SendParams};
use contact_invite::store::{
    FLOW_RECORD_FORMAT, MemoryStore, RECORD_FORMAT, Store, Table, UnreadableReason, UnreadableRecord,
};

const FIXTURE: &str = include_str!("fixtures/store_previous_format.txt");
/// Flow records of the format before the current one.
const FLOW_FIXTURE: &str = include_str!("fixtures/flow_format_6.txt");

const FLOW_FIXTURE_7: &str = include_str!("fixtures/flow_format_7.txt");

const FLOW_FIXTURE_8: &str = include_str!("fixtures/flow_format_8.txt");

/// The fixture's entries of one table.
fn fixture(table: Table) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries(FIXTURE, table)
}

fn entries(text: &str, table: Table) -> Vec<(Vec<u8>, Vec<u8>)> {
    let hex = |s: &str| data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let mut it = l.split(' ');
            let (t, k, v) = (it.next()?, it.next()?, it.next()?);
            (t == table.name()).then(|| (hex(k), hex(v)))
        })
        .collect()
}

/// Alice and Bob with a contact made (each store holds the other).
async fn pair() -> (Party, Party) {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = {
        let p = SendParams::new(alice.identity.clone());
        publish_invitation(&mut alice, p)
    }
    .await;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b_flow).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b_flow).await, Outcome::Contact(alice.identity.public_key()));
    (alice, bob)
}

fn unreadable(key: &[u8], reason: UnreadableReason) -> UnreadableRecord {
    UnreadableRecord { key: key.to_vec(), reason }
}

#[test]
fn the_fixture_is_of_the_previous_formats() {
    assert_eq!(RECORD_FORMAT, 4, "a new record format: add a fixture of format 4 and a migration step");
    assert_eq!(FLOW_RECORD_FORMAT, 9, "a new flow format: add a fixture of format 9 and a migration step");
    assert!(FLOW_FIXTURE_8.starts_with("# FLOW_RECORD_FORMAT 8\n"));
    assert_eq!(entries(FLOW_FIXTURE_8, Table::Flows)[0].1[0], 8);
    assert!(FLOW_FIXTURE_7.starts_with("# FLOW_RECORD_FORMAT 7\n"));
    assert_eq!(entries(FLOW_FIXTURE_7, Table::Flows)[0].1[0], 7);
    assert_eq!(entries(FLOW_FIXTURE_7, Table::IdentitySnapshots)[0].1[0], RECORD_FORMAT);
    assert!(FIXTURE.starts_with("# RECORD_FORMAT 3, FLOW_RECORD_FORMAT 5\n"));
    assert!(FLOW_FIXTURE.starts_with("# FLOW_RECORD_FORMAT 6\n"));
    assert_eq!(entries(FLOW_FIXTURE, Table::Flows)[0].1[0], 6);
    assert_eq!(entries(FLOW_FIXTURE, Table::IdentitySnapshots)[0].1[0], RECORD_FORMAT);
    for t in [Table::Contacts, Table::Identity, Table::IdentitySnapshots] {
        let entries = fixture(t);
        assert_eq!(entries.len(), 1, "{t:?}");
        assert_eq!(entries[0].1[0], 3, "{t:?}");
    }
    let flows = fixture(Table::Flows);
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].1[0], 5);
    assert_eq!(fixture(Table::Invitations).len(), 1);
}

/// STORE-3: one damaged contact record does not hide the others. Every
/// contact that loads comes back; each record that does not is listed with
/// its key and a typed reason, and stays in the store byte for byte.
#[tokio::test(start_paused = true)]
async fn store_3_contacts_skip_and_report_unreadable_records() {
    let (alice, bob) = pair().await;
    let store = bob.store.as_ref();
    let good = store.list(Table::Contacts).await.unwrap();
    assert_eq!(good.len(), 1);
    let (good_key, good_bytes) = good[0].clone();

    // A torn write (the record cut short), an empty one, a record of a newer
    // format, a valid record under another peer's key, a record whose peer
    // key is not the one its identity record names (STORE-1), and a record
    // whose signed identity record does not verify.
    let torn_key = [1u8; 32];
    store.put(Table::Contacts, &torn_key, &good_bytes[..good_bytes.len() / 2]).await.unwrap();
    let empty_key = [2u8; 32];
    store.put(Table::Contacts, &empty_key, &[]).await.unwrap();
    let newer_key = [3u8; 32];
    let mut newer = good_bytes.clone();
    newer[0] = RECORD_FORMAT + 1;
    store.put(Table::Contacts, &newer_key, &newer).await.unwrap();
    let moved_key = [4u8; 32];
    store.put(Table::Contacts, &moved_key, &good_bytes).await.unwrap();
    let mut swapped = bob.contacts().await.remove(0);
    swapped.peer = bob.identity.public_key();
    driver::save_contact(store, &swapped).await.unwrap();
    let swapped_key = bob.identity.public_key().as_bytes().to_vec();
    // The previous format's contact relabelled as current: its identity
    // record was signed under protocol version 2 and does not verify.
    let bad_sig_key = [5u8; 32];
    let mut bad_sig = fixture(Table::Contacts).remove(0).1;
    bad_sig[0] = RECORD_FORMAT;
    store.put(Table::Contacts, &bad_sig_key, &bad_sig).await.unwrap();
    let before = store.list(Table::Contacts).await.unwrap();

    let list = driver::contacts(store).await.unwrap();
    assert_eq!(list.contacts.len(), 1, "the good contact still comes back");
    assert_eq!(list.contacts[0].peer, alice.identity.public_key());
    assert_eq!(list.contacts[0].peer.as_bytes().as_slice(), good_key.as_slice());
    let mut expected = vec![
        unreadable(&torn_key, UnreadableReason::Corrupt),
        unreadable(&empty_key, UnreadableReason::Corrupt),
        unreadable(&newer_key, UnreadableReason::NewerFormat { format: RECORD_FORMAT + 1 }),
        unreadable(&moved_key, UnreadableReason::WrongKey),
        unreadable(&bad_sig_key, UnreadableReason::InvalidContent),
        unreadable(
            &swapped_key,
            UnreadableReason::Inconsistent(VerifyError::WrongContext(
                "contact's identity record belongs to another identity",
            )),
        ),
    ];
    expected.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(list.unreadable, expected);
    assert_eq!(store.list(Table::Contacts).await.unwrap(), before, "nothing deleted or rewritten");
}

/// STORE-3, identities: the same report-and-skip.
#[tokio::test(start_paused = true)]
async fn store_3_identities_skip_and_report_unreadable_records() {
    let (_alice, bob) = pair().await;
    let store = bob.store.as_ref();
    driver::save_identity(store, &bob.identity).await.unwrap();
    let (key, bytes) = store.list(Table::Identity).await.unwrap().remove(0);
    let torn_key = [9u8; 32];
    store.put(Table::Identity, &torn_key, &bytes[..bytes.len() - 1]).await.unwrap();
    let list = driver::identities(store).await.unwrap();
    assert_eq!(list.identities.len(), 1);
    assert_eq!(list.identities[0].public_key(), bob.identity.public_key());
    assert_eq!(list.identities[0].public_key().as_bytes().as_slice(), key.as_slice());
    assert_eq!(list.unreadable, vec![unreadable(&torn_key, UnreadableReason::Corrupt)]);
    assert_eq!(store.list(Table::Identity).await.unwrap().len(), 2, "left in the store");
}

/// STORE-4: a contact and an identity written by the previous release
/// (format 3, fixture) hold identity records signed under protocol
/// version 2, which this version does not verify: each is reported as made
/// by an older version, not as damaged, and left in the store.
#[tokio::test]
async fn store_4_previous_format_contact_and_identity_are_reported_made_by_an_older_version() {
    let store = MemoryStore::new();
    for t in [Table::Contacts, Table::Identity] {
        for (k, v) in fixture(t) {
            store.put(t, &k, &v).await.unwrap();
        }
    }
    let contacts = driver::contacts(&store).await.unwrap();
    assert!(contacts.contacts.is_empty());
    let key = fixture(Table::Contacts).remove(0).0;
    assert_eq!(contacts.unreadable, vec![unreadable(&key, UnreadableReason::MadeByOlderVersion { format: 3 })]);
    let identities = driver::identities(&store).await.unwrap();
    assert!(identities.identities.is_empty());
    let key = fixture(Table::Identity).remove(0).0;
    assert_eq!(identities.unreadable, vec![unreadable(&key, UnreadableReason::MadeByOlderVersion { format: 3 })]);
    for t in [Table::Contacts, Table::Identity] {
        assert_eq!(store.list(t).await.unwrap(), fixture(t), "{t:?} left as it was");
    }
}

/// STORE-4: a record of the previous format whose content is still valid
/// loads, and is written again in the current format. Format 3 has the
/// current layout (only the protocol version of the identity records in it
/// changed), so such a record is a current encoding behind the format byte
/// 3; it is built that way here from a contact and an identity made now.
#[tokio::test(start_paused = true)]
async fn store_4_previous_format_records_with_valid_content_load_and_are_rewritten() {
    let (alice, bob) = pair().await;
    let store = bob.store.as_ref();
    driver::save_identity(store, &bob.identity).await.unwrap();
    for t in [Table::Contacts, Table::Identity] {
        let (k, mut v) = store.list(t).await.unwrap().remove(0);
        assert_eq!(v[0], RECORD_FORMAT);
        v[0] = RECORD_FORMAT - 1;
        store.put(t, &k, &v).await.unwrap();
    }
    let contacts = driver::contacts(store).await.unwrap();
    assert!(contacts.unreadable.is_empty(), "{:?}", contacts.unreadable);
    assert_eq!(contacts.contacts.len(), 1);
    assert_eq!(contacts.contacts[0].peer, alice.identity.public_key());
    let identities = driver::identities(store).await.unwrap();
    assert!(identities.unreadable.is_empty(), "{:?}", identities.unreadable);
    assert_eq!(identities.identities[0].public_key(), bob.identity.public_key());
    for t in [Table::Contacts, Table::Identity] {
        let (_, v) = store.list(t).await.unwrap().remove(0);
        assert_eq!(v[0], RECORD_FORMAT, "{t:?} written again in the current format");
    }
}

/// STORE-5: a flow written by the previous release (format 5, fixture: an
/// invitation of Alice's still waiting) cannot be resumed: the driver ends
/// it at start with a typed outcome the app can show, then removes its
/// record, its outstanding-invitation entry and its identity snapshot (of
/// the previous format, referred to by nothing else).
#[tokio::test(start_paused = true)]
async fn store_5_previous_format_flow_ends_with_made_by_an_older_version() {
    older_flow_ends_and_is_removed(FIXTURE, 5).await;
}

/// Loads the flow, outstanding-invitation and snapshot entries of `text`
/// (written by an older release, flow format `format`), starts a driver
/// and checks that the flow ends with `MadeByOlderVersion { format }` (the
/// stable code a UI maps to its text) and that all of it is removed.
async fn older_flow_ends_and_is_removed(text: &str, format: u8) {
    let store = Arc::new(MemoryStore::new());
    for t in [Table::Flows, Table::Invitations, Table::IdentitySnapshots] {
        for (k, v) in entries(text, t) {
            store.put(t, &k, &v).await.unwrap();
        }
    }
    let id = FlowId(entries(text, Table::Flows).remove(0).0.try_into().unwrap());
    let net = MemoryNetwork::new();
    let (_h, mut events) = driver::start(net.join("alice"), store.clone(), DriverConfig::default()).await.unwrap();
    let e = events.recv().await.unwrap();
    assert_eq!(e.flow, id);
    assert_eq!(
        e.event,
        Event::Finished(Outcome::Failed(Error::Unreadable(UnreadableReason::MadeByOlderVersion { format })))
    );
    let Event::Finished(Outcome::Failed(error)) = &e.event else { unreachable!() };
    assert_eq!(error.code(), ErrorCode::MadeByOlderVersion, "the stable code a UI maps to its text");
    for t in [Table::Flows, Table::Invitations, Table::IdentitySnapshots] {
        assert!(store.is_empty(t), "{t:?} cleaned up");
    }
}

/// STORE-5: the same for a flow of the format just before this one (6:
/// its ticket carried a 32-byte secret, which no version 7 ticket can):
/// ended with the typed outcome and removed, with its outstanding-invitation
/// entry; its identity snapshot, of the current record format, is kept only
/// while something refers to it.
#[tokio::test(start_paused = true)]
async fn store_5_format_6_flow_ends_with_made_by_an_older_version() {
    older_flow_ends_and_is_removed(FLOW_FIXTURE, 6).await;
}

/// STORE-5: the same for a flow of format 7 (before PIN invitations ran
/// SPAKE2: its layout has no PIN state).
#[tokio::test(start_paused = true)]
async fn store_5_format_7_flow_ends_with_made_by_an_older_version() {
    older_flow_ends_and_is_removed(FLOW_FIXTURE_7, 7).await;
}

/// STORE-5: the same for a flow of format 8 (before multi-use invitations:
/// its layout has no use terms, queue or answer record).
#[tokio::test(start_paused = true)]
async fn store_5_format_8_flow_ends_with_made_by_an_older_version() {
    older_flow_ends_and_is_removed(FLOW_FIXTURE_8, 8).await;
}

/// STORE-5: a flow of a newer format is reported and left for that version,
/// with the identity snapshots (one may be its).
#[tokio::test(start_paused = true)]
async fn store_5_newer_format_flow_is_reported_and_left() {
    let store = Arc::new(MemoryStore::new());
    let (k, mut v) = fixture(Table::Flows).remove(0);
    v[0] = FLOW_RECORD_FORMAT + 1;
    store.put(Table::Flows, &k, &v).await.unwrap();
    let (sk, sv) = fixture(Table::IdentitySnapshots).remove(0);
    store.put(Table::IdentitySnapshots, &sk, &sv).await.unwrap();
    let net = MemoryNetwork::new();
    let (_h, mut events) = driver::start(net.join("alice"), store.clone(), DriverConfig::default()).await.unwrap();
    let e = events.recv().await.unwrap();
    assert_eq!(
        e.event,
        Event::Finished(Outcome::Failed(Error::Unreadable(UnreadableReason::NewerFormat {
            format: FLOW_RECORD_FORMAT + 1
        })))
    );
    assert_eq!(store.get(Table::Flows, &k).await.unwrap(), Some(v), "left in the store");
    assert_eq!(store.len(Table::IdentitySnapshots), 1, "kept while a flow is unreadable");
}
