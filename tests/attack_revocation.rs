//! Issue 13, item 6 and part of item 11: revoking a device must revoke what
//! it holds (the account secret behind the identity's DH key), and a device
//! must never take an account secret that does not derive the identity's
//! published DH key.
//!
//! The attacker is a revoked device: it keeps the `Identity` it had (its
//! device key and the account secret) and reads the DHT like anyone else.

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::bench_internals::{
    account_secret_opens_request, conversation_key_from_account_secret, handover_round_trip,
};
use contact_invite::crypto::pow::DEFAULT_MAX_MINT_BITS;
use contact_invite::dht::{Dht, MemoryNetwork};
use contact_invite::driver;
use contact_invite::error::Error;
use contact_invite::flow::{Event, FlowId, LinkParams, Outcome, ReceiveParams, RequestInboxParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::{DeviceStatus, Profile, SignedIdentity};
use contact_invite::store::MemoryStore;
use rand_core::OsRng;

const NOW: u64 = T0_MS / 1000;

/// A device with no identity yet: a driver and a store.
struct NewDevice {
    store: Arc<MemoryStore>,
    handle: driver::Handle,
    events: driver::Events,
}

async fn new_device(net: &MemoryNetwork, name: &str) -> NewDevice {
    let store = Arc::new(MemoryStore::new());
    let (handle, events) = start(net, name, &store, driver::TokioClock::starting_at(T0_MS), None).await;
    NewDevice { store, handle, events }
}

/// Shows a device-link ticket on `alice`'s device.
async fn show_link(alice: &mut Party) -> (FlowId, contact_invite::encoding::Ticket) {
    let flow = alice.handle.link_device(SendParams::new(alice.identity.clone())).await.unwrap();
    wait_for(&mut alice.events, "link published", |e| {
        e.flow == flow && matches!(e.event, Event::InvitationPublished { .. })
    })
    .await;
    (flow, alice.handle.ticket(flow).await.unwrap().expect("ticket"))
}

/// Runs a shown link to its end on both devices; returns the new device's
/// identity and refreshes `alice.identity` from her store.
async fn finish_link(
    alice: &mut Party,
    dev: &mut NewDevice,
    a_flow: FlowId,
    ticket: contact_invite::encoding::Ticket,
) -> Identity {
    let d_flow = dev.handle.join_account(LinkParams::new(ticket, "new device")).await.unwrap();
    wait_for(&mut dev.events, "link shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    dev.handle.accept(d_flow).await.unwrap();
    let new_key = match finished(&mut dev.events, d_flow).await {
        Outcome::DeviceLinked(k) => k,
        other => panic!("new device: {other:?}"),
    };
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::DeviceLinked(new_key));
    alice.identity = driver::identities(alice.store.as_ref()).await.unwrap().identities.remove(0);
    let ids = driver::identities(dev.store.as_ref()).await.unwrap().identities;
    assert_eq!(ids.len(), 1);
    ids[0].clone()
}

async fn link(net: &MemoryNetwork, alice: &mut Party, name: &str) -> (NewDevice, Identity) {
    let mut dev = new_device(net, name).await;
    let (a_flow, ticket) = show_link(alice).await;
    let id = finish_link(alice, &mut dev, a_flow, ticket).await;
    (dev, id)
}

/// The signed identity record as the DHT holds it now.
async fn published(net: &MemoryNetwork, of: &Identity) -> SignedIdentity {
    let reader = dht(net, "reader");
    let rk = of.record_key().unwrap().clone();
    reader.open_record(&rk, None).await.unwrap();
    let v = reader.get_value(&rk, 0, true).await.unwrap().unwrap();
    SignedIdentity::verify(&v.data, Some(&of.public_key())).unwrap()
}

/// Makes a contact between `inviter` (with `identity`) and `invitee`.
async fn make_contact(inviter: &mut Party, invitee: &mut Party) {
    let (a_flow, ticket) = publish_invitation(inviter, SendParams::new(inviter.identity.clone())).await;
    let b_flow = invitee.handle.receive(ReceiveParams::new(invitee.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut invitee.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    invitee.handle.accept(b_flow).await.unwrap();
    assert!(matches!(finished(&mut inviter.events, a_flow).await, Outcome::Contact(_)));
    assert!(matches!(finished(&mut invitee.events, b_flow).await, Outcome::Contact(_)));
}

/// Revokes `device` on alice's identity-key device and republishes.
async fn revoke(net: &MemoryNetwork, alice: &mut Party, device: &Identity) {
    alice.identity.revoke_device(&device.device_public(), NOW + 60, &mut OsRng).unwrap();
    alice.identity = driver::publish_identity(&dht(net, "alice"), alice.identity.clone()).await.unwrap();
}

/// Item 6: after a revocation, a request sent to the identity is sealed to a
/// DH key the revoked device's account secret does not derive; the remaining
/// devices (the identity-key device, and a linked one after a refresh) open
/// it.
#[tokio::test(start_paused = true)]
async fn revoked_device_cannot_open_requests_sent_after_its_revocation() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    let (_tablet_dev, tablet) = link(&net, &mut alice, "alice-tablet").await;
    let before = published(&net, &alice.identity).await;
    assert_eq!(laptop.dh_public(), before.record().dh_key, "linked devices share the account secret");

    revoke(&net, &mut alice, &laptop).await;
    let after = published(&net, &alice.identity).await;
    assert_eq!(after.record().device_status(&laptop.device_public()), Some(DeviceStatus::Revoked));
    assert_ne!(after.record().dh_key, before.record().dh_key, "revocation rotates the identity's DH key");
    assert_eq!(alice.identity.dh_public(), after.record().dh_key, "the rotating device holds the new secret");

    // Alice's identity-key device opens a request inbox; Bob sends a request
    // to the address, sealed to the DH key in the record he reads.
    let inbox = alice.handle.open_request_inbox(RequestInboxParams::new(alice.identity.clone())).await.unwrap();
    let e = wait_for(&mut alice.events, "inbox open", |e| {
        e.flow == inbox && matches!(e.event, Event::RequestInboxOpen { .. })
    })
    .await;
    let Event::RequestInboxOpen { address } = e.event else { unreachable!() };
    alice.identity = driver::identities(alice.store.as_ref()).await.unwrap().identities.remove(0);
    let b_flow = bob.handle.send_request(SendParams::new(bob.identity.clone()), address, DEFAULT_MAX_MINT_BITS).await;
    let b_flow = b_flow.unwrap();
    wait_for(&mut bob.events, "delivered", |e| e.flow == b_flow && matches!(e.event, Event::RequestDelivered { .. }))
        .await;
    // The remaining identity-key device opens it.
    let got = wait_for(&mut alice.events, "request", |e| matches!(e.event, Event::RequestReceived(_))).await;
    let Event::RequestReceived(view) = got.event else { unreachable!() };
    assert_eq!(view.requester, bob.identity.public_key());

    // The revoked laptop reads the slot values like anyone can and tries its
    // account secret on each: none opens.
    let info = published(&net, &alice.identity).await.record().request_inbox.clone().expect("inbox listed");
    let reader = dht(&net, "laptop-thief");
    reader.open_record(&info.record, None).await.unwrap();
    let mut slots = Vec::new();
    for s in 1..=info.slots {
        if let Some(v) = reader.get_value(&info.record, s, true).await.unwrap() {
            slots.push(v.data);
        }
    }
    assert_eq!(slots.len(), 1, "Bob's request is on the DHT");
    for slot in &slots {
        assert!(
            !account_secret_opens_request(&laptop, info.record.opaque(), slot),
            "the revoked laptop's account secret opened a request sent after its revocation"
        );
    }

    // The remaining linked tablet picks up the rotation from the record and
    // opens it; its secret now derives the published DH key.
    assert!(!account_secret_opens_request(&tablet, info.record.opaque(), &slots[0]), "not before the refresh");
    let tablet = driver::refresh_identity(&dht(&net, "alice-tablet"), tablet).await.unwrap();
    assert_eq!(tablet.dh_public(), published(&net, &alice.identity).await.record().dh_key);
    assert!(account_secret_opens_request(&tablet, info.record.opaque(), &slots[0]));

    // The revoked laptop cannot pick it up: a typed refusal, its key unchanged.
    let e = driver::refresh_identity(&dht(&net, "alice-laptop"), laptop.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Verify(contact_invite::VerifyError::UntrustedDevice(_))), "{e:?}");
    assert_ne!(laptop.dh_public(), published(&net, &alice.identity).await.record().dh_key);
}

/// Item 6: conversation keys of contacts made after the revocation are out
/// of the revoked device's reach; those made before stay derivable by it (the
/// documented exposure: they were derived from the secret it holds).
#[tokio::test(start_paused = true)]
async fn revoked_device_cannot_derive_conversation_keys_made_after_its_revocation() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut carol = party(&net, "carol").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    make_contact(&mut alice, &mut bob).await;

    revoke(&net, &mut alice, &laptop).await;
    make_contact(&mut alice, &mut carol).await;

    let contacts = alice.contacts().await;
    let with = |peer: &Identity| contacts.iter().find(|c| c.peer == peer.public_key()).unwrap().clone();
    let derive = |c: &contact_invite::contact::Contact| {
        conversation_key_from_account_secret(
            &laptop,
            &c.peer_identity,
            [c.local_conversation.opaque(), c.remote_conversation.opaque()],
            &c.via_inbox,
        )
        .unwrap()
    };
    let (bob_c, carol_c) = (with(&bob.identity), with(&carol.identity));
    // Carol's side derived the same key as Alice's.
    assert_eq!(carol.contacts().await[0].conversation_key(), carol_c.conversation_key());
    assert_ne!(
        &derive(&carol_c),
        carol_c.conversation_key(),
        "the revoked laptop derived the conversation key of a contact made after its revocation"
    );
    // What stays exposed: the key of a contact made before the revocation.
    assert_eq!(&derive(&bob_c), bob_c.conversation_key());
}

/// Item 11: a handover whose account secret does not derive the DH key of
/// the record it carries is refused with a typed error.
#[tokio::test(start_paused = true)]
async fn handover_with_an_account_key_that_does_not_match_the_record_is_refused() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    let record = alice.identity.signed().clone();
    assert_eq!(record.record().device_status(&laptop.device_public()), Some(DeviceStatus::Current));
    // The matching secret is taken.
    handover_round_trip(&alice.identity, &record, &laptop).unwrap();
    // Another account's secret with Alice's record is refused.
    let stranger = Identity::generate(Profile::new("mallory").unwrap(), "x", NOW, &mut OsRng).unwrap();
    let e = handover_round_trip(&stranger, &record, &laptop)
        .expect_err("a handover whose account key does not derive the record's DH key was accepted");
    assert!(matches!(e, Error::Verify(contact_invite::VerifyError::AccountKeyMismatch)), "{e:?}");
}

/// Item 6: the generic record update cannot revoke a device (that would
/// skip the rotation) nor change the DH key or the sealed copies by hand.
#[tokio::test(start_paused = true)]
async fn revoking_or_rekeying_through_update_record_is_refused() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    let before = alice.identity.signed().clone();
    let dev = laptop.device_public();
    let e = alice
        .identity
        .update_record(
            |r| {
                for d in &mut r.devices {
                    if d.device_key == dev {
                        d.status = DeviceStatus::Revoked;
                    }
                }
            },
            NOW + 60,
        )
        .expect_err("a device was revoked without rotating the account secret");
    assert!(matches!(e, Error::ApiMisuse(_)), "{e:?}");
    let other = Identity::generate(Profile::new("x").unwrap(), "x", NOW, &mut OsRng).unwrap();
    let e = alice.identity.update_record(|r| r.dh_key = other.dh_public(), NOW + 60).unwrap_err();
    assert!(matches!(e, Error::ApiMisuse(_)), "{e:?}");
    assert_eq!(alice.identity.signed(), &before, "nothing changed");
    // Other changes still work.
    alice.identity.update_record(|r| r.profile = Some(Profile::new("Alice B").unwrap()), NOW + 60).unwrap();
}

/// Item 11 at flow level: a link shown before a revocation finishes after
/// it; the old device hands over the rotated secret (it adopts the newer
/// record from the DHT), so the new device's secret derives the published
/// DH key.
#[tokio::test(start_paused = true)]
async fn a_link_shown_before_a_revocation_hands_over_the_rotated_secret() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    let (a_flow, ticket) = show_link(&mut alice).await;
    revoke(&net, &mut alice, &laptop).await;
    let rotated = alice.identity.dh_public();
    let mut tablet_dev = new_device(&net, "alice-tablet").await;
    let tablet = finish_link(&mut alice, &mut tablet_dev, a_flow, ticket).await;
    let now = published(&net, &alice.identity).await;
    assert_eq!(now.record().dh_key, rotated);
    assert_eq!(tablet.dh_public(), rotated, "the new device got the rotated secret");
    assert_eq!(now.record().device_status(&laptop.device_public()), Some(DeviceStatus::Revoked));
    assert_eq!(now.record().device_status(&tablet.device_public()), Some(DeviceStatus::Current));
}

/// Item 6, remaining devices: a request inbox opened before the revocation
/// keeps working: it re-reads the identity record on its poll, opens its
/// copy of the rotated secret, and opens requests sealed to the new DH key
/// (which the revoked laptop cannot).
#[tokio::test(start_paused = true)]
async fn a_request_inbox_opened_before_a_revocation_follows_the_rotation() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;
    let inbox = alice.handle.open_request_inbox(RequestInboxParams::new(alice.identity.clone())).await.unwrap();
    let e = wait_for(&mut alice.events, "inbox open", |e| {
        e.flow == inbox && matches!(e.event, Event::RequestInboxOpen { .. })
    })
    .await;
    let Event::RequestInboxOpen { address } = e.event else { unreachable!() };
    alice.identity = driver::identities(alice.store.as_ref()).await.unwrap().identities.remove(0);
    revoke(&net, &mut alice, &laptop).await;
    assert_ne!(published(&net, &alice.identity).await.record().dh_key, laptop.dh_public());

    let sent = tokio::time::Instant::now();
    let b_flow = bob.handle.send_request(SendParams::new(bob.identity.clone()), address, DEFAULT_MAX_MINT_BITS).await;
    let b_flow = b_flow.unwrap();
    wait_for(&mut bob.events, "delivered", |e| e.flow == b_flow && matches!(e.event, Event::RequestDelivered { .. }))
        .await;
    let got = wait_for(&mut alice.events, "request", |e| matches!(e.event, Event::RequestReceived(_))).await;
    assert!(
        sent.elapsed() <= std::time::Duration::from_secs(3 * 60),
        "the request was picked up within a few polls, not a day later: {:?}",
        sent.elapsed()
    );
    let Event::RequestReceived(view) = got.event else { unreachable!() };
    assert_eq!(view.requester, bob.identity.public_key());
    // The contact completes, keyed with the rotated secret.
    alice.handle.accept_request(inbox, view.id).await.unwrap();
    assert_eq!(finished(&mut bob.events, b_flow).await, Outcome::Contact(alice.identity.public_key()));
}

/// FRESH-8 (review of issue 13, item 1): a stolen device, revoked, sends a
/// request to an address under its owner's name. It must not be shown as
/// the owner's request, and it must not replace the owner's genuine request
/// that is waiting in the list.
#[tokio::test(start_paused = true)]
async fn a_revoked_devices_request_is_not_shown_and_does_not_replace_its_owners() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (mut laptop_dev, laptop) = link(&net, &mut alice, "alice-laptop").await;

    let inbox = bob.handle.open_request_inbox(RequestInboxParams::new(bob.identity.clone())).await.unwrap();
    let e = wait_for(&mut bob.events, "inbox open", |e| {
        e.flow == inbox && matches!(e.event, Event::RequestInboxOpen { .. })
    })
    .await;
    let Event::RequestInboxOpen { address } = e.event else { unreachable!() };

    // Alice's genuine request, from her phone.
    let a_flow = alice.handle.send_request(SendParams::new(alice.identity.clone()), address.clone(), 22).await;
    let a_flow = a_flow.unwrap();
    wait_for(&mut alice.events, "delivered", |e| e.flow == a_flow && matches!(e.event, Event::RequestDelivered { .. }))
        .await;
    let got = wait_for(&mut bob.events, "request", |e| matches!(e.event, Event::RequestReceived(_))).await;
    let Event::RequestReceived(genuine) = got.event else { unreachable!() };
    assert_eq!(genuine.requester, alice.identity.public_key());

    // The laptop is stolen and revoked; the thief still holds its identity.
    revoke(&net, &mut alice, &laptop).await;
    let l_flow = laptop_dev.handle.send_request(SendParams::new(laptop.clone()), address, 22).await.unwrap();
    wait_for(&mut laptop_dev.events, "delivered", |e| {
        e.flow == l_flow && matches!(e.event, Event::RequestDelivered { .. })
    })
    .await;
    // Bob's inbox reads the slot (watch, then polls) and the record, several times over.
    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
    while let Ok(e) = bob.events.try_recv() {
        assert!(!matches!(e.event, Event::RequestReceived(_)), "a revoked device's request was shown: {e:?}");
    }
    let list = bob.handle.requests(inbox).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].id, genuine.id, "the owner's genuine request is still the one in the list");
}
