//! Device linking on MemoryDht: the old device (holding the identity key)
//! shows a device-link ticket; a new device accepts with its consent; the old
//! device adds it to the identity record and hands over the account secret.

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::dht::{Dht, MemoryNetwork};
use contact_invite::driver;
use contact_invite::error::{Error, ProtocolError, VerifyError};
use contact_invite::flow::{Event, FlowId, LinkParams, Outcome, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::{DeviceStatus, SignedIdentity};
use contact_invite::store::MemoryStore;

/// A device with no identity yet: a driver and a store.
struct NewDevice {
    store: Arc<MemoryStore>,
    handle: driver::Handle,
    events: driver::Events,
}

async fn new_device(net: &MemoryNetwork, name: &str) -> NewDevice {
    let store = Arc::new(MemoryStore::new());
    let (handle, events) = start(net, name, &store, contact_invite::driver::TokioClock::starting_at(T0_MS), None).await;
    NewDevice { store, handle, events }
}

async fn show_link(alice: &mut Party) -> (FlowId, contact_invite::encoding::Ticket) {
    let flow = alice.handle.link_device(SendParams::new(alice.identity.clone())).await.unwrap();
    wait_for(&mut alice.events, "link published", |e| {
        e.flow == flow && matches!(e.event, Event::InvitationPublished { .. })
    })
    .await;
    (flow, alice.handle.ticket(flow).await.unwrap().expect("ticket"))
}

/// Links a new device to `alice`; returns the new device's identity.
async fn link(net: &MemoryNetwork, alice: &mut Party, dev: &mut NewDevice) -> Identity {
    let (a_flow, ticket) = show_link(alice).await;
    assert_eq!(ticket.kind, contact_invite::message::InvitationKind::DeviceLink);
    assert!(ticket.to_armor().starts_with("-----BEGIN DEVICE LINK INVITATION-----\n"));
    let d_flow = dev.handle.join_account(LinkParams::new(ticket, "alice's laptop")).await.unwrap();
    let shown = wait_for(&mut dev.events, "link shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    let Event::InvitationReceived(view) = shown.event else { unreachable!() };
    assert_eq!(view.identity, alice.identity.public_key());
    dev.handle.accept(d_flow).await.unwrap();
    let new_key = match finished(&mut dev.events, d_flow).await {
        Outcome::DeviceLinked(k) => k,
        other => panic!("new device: {other:?}"),
    };
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::DeviceLinked(new_key));
    let _ = net;
    // Both devices saved the identity; the old one's record now lists the new device.
    let old_saved = driver::identities(alice.store.as_ref()).await.unwrap().identities;
    assert_eq!(old_saved.len(), 1);
    assert_eq!(old_saved[0].signed().record().device_status(&new_key), Some(DeviceStatus::Current));
    alice.identity = old_saved[0].clone();
    let ids = driver::identities(dev.store.as_ref()).await.unwrap().identities;
    assert_eq!(ids.len(), 1);
    ids[0].clone()
}

#[tokio::test(start_paused = true)]
async fn new_device_joins_gets_account_secret_and_is_trusted_by_contacts() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    // Bob and Alice are contacts first (made with Alice's first device).
    let (a_flow, ticket) = {
        let flow = alice.handle.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap();
        wait_for(&mut alice.events, "pub", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
        (flow, alice.handle.ticket(flow).await.unwrap().unwrap())
    };
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b_flow).await.unwrap();
    assert!(matches!(finished(&mut alice.events, a_flow).await, Outcome::Contact(_)));
    assert!(matches!(finished(&mut bob.events, b_flow).await, Outcome::Contact(_)));

    let mut dev = new_device(&net, "alice-laptop").await;
    let laptop = link(&net, &mut alice, &mut dev).await;
    assert_eq!(laptop.public_key(), alice.identity.public_key(), "same account");
    assert_ne!(laptop.device_public(), alice.identity.device_public(), "its own device key");
    assert!(format!("{laptop:?}").contains("holds_identity_key: false"));
    // The record on the DHT lists the laptop as current, signed by the identity key.
    let reader = dht(&net, "reader");
    let rk = alice.identity.record_key().unwrap().clone();
    reader.open_record(&rk, None).await.unwrap();
    let published = reader.get_value(&rk, 0, true).await.unwrap().unwrap();
    let published = SignedIdentity::verify(&published.data, Some(&alice.identity.public_key())).unwrap();
    assert_eq!(published.record().device_status(&laptop.device_public()), Some(DeviceStatus::Current));
    assert_eq!(published.record().seq, 1);

    // Bob's contact verifies a message from the laptop once it refreshes
    // Alice's identity record; before that the device is unknown to it.
    let mut bob_contact = bob.contacts().await.remove(0);
    let msg = laptop.sign_message(&bob.identity.public_key(), b"hello from my laptop");
    assert!(matches!(
        bob_contact.verify_message(&bob.identity.public_key(), b"hello from my laptop", &msg),
        Err(VerifyError::UntrustedDevice(_))
    ));
    assert!(bob_contact.update_peer_identity(published.to_bytes()).unwrap());
    bob_contact.verify_message(&bob.identity.public_key(), b"hello from my laptop", &msg).unwrap();
    // Bound to the payload and to both identities.
    assert!(bob_contact.verify_message(&bob.identity.public_key(), b"tampered", &msg).is_err());
    assert!(bob_contact.verify_message(&laptop.public_key(), b"hello from my laptop", &msg).is_err());

    // The laptop shares the account's DH key: it can invite, and a contact it
    // makes derives its conversation key from the same identity.
    let mut carol = party(&net, "carol").await;
    let mut laptop_party = Party {
        name: "alice-laptop".into(),
        identity: laptop.clone(),
        store: dev.store.clone(),
        handle: dev.handle.clone(),
        events: dev.events,
        clock: contact_invite::driver::TokioClock::starting_at(T0_MS),
    };
    let l_flow = laptop_party.handle.send_invitation(SendParams::new(laptop.clone())).await.unwrap();
    wait_for(&mut laptop_party.events, "pub", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
    let t = laptop_party.handle.ticket(l_flow).await.unwrap().unwrap();
    let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), t)).await.unwrap();
    wait_for(&mut carol.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    carol.handle.accept(c_flow).await.unwrap();
    assert_eq!(finished(&mut carol.events, c_flow).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut laptop_party.events, l_flow).await, Outcome::Contact(carol.identity.public_key()));

    // Revoking the laptop: after a refresh Bob refuses what it signs.
    alice.identity.revoke_device(&laptop.device_public(), T0_MS / 1000 + 60, &mut rand_core::OsRng).unwrap();
    let alice_id = driver::publish_identity(&dht(&net, "alice"), alice.identity.clone()).await.unwrap();
    reader.open_record(&rk, None).await.unwrap();
    let fresh = reader.get_value(&rk, 0, true).await.unwrap().unwrap();
    assert!(bob_contact.update_peer_identity(&fresh.data).unwrap());
    assert!(matches!(
        bob_contact.verify_message(&bob.identity.public_key(), b"hello from my laptop", &msg),
        Err(VerifyError::UntrustedDevice(_))
    ));
    // An older record cannot roll the revocation back.
    assert!(bob_contact.update_peer_identity(published.to_bytes()).is_err());
    // Messages from the first device still verify.
    let m2 = alice_id.sign_message(&bob.identity.public_key(), b"still me");
    bob_contact.verify_message(&bob.identity.public_key(), b"still me", &m2).unwrap();
}

#[tokio::test(start_paused = true)]
async fn only_the_identity_key_holder_links_and_contact_tickets_are_refused() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut dev = new_device(&net, "laptop").await;
    let laptop = link(&net, &mut alice, &mut dev).await;
    // The laptop does not hold the identity key: it cannot link devices.
    let e = dev.handle.link_device(SendParams::new(laptop.clone())).await.unwrap_err();
    assert!(matches!(e, Error::ApiMisuse(_)), "{e:?}");
    // A contact ticket is not a device-link ticket, and the other way round.
    let flow = alice.handle.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap();
    wait_for(&mut alice.events, "pub", |e| e.flow == flow && matches!(e.event, Event::InvitationPublished { .. }))
        .await;
    let contact_ticket = alice.handle.ticket(flow).await.unwrap().unwrap();
    let e = dev.handle.join_account(LinkParams::new(contact_ticket, "x")).await.unwrap_err();
    assert!(matches!(e, Error::ApiMisuse(_)), "{e:?}");
    let (_, link_ticket) = show_link(&mut alice).await;
    let e = dev.handle.receive(ReceiveParams::new(laptop, link_ticket)).await.unwrap_err();
    assert!(matches!(e, Error::ApiMisuse(_)), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn revoked_and_expired_links_leave_the_record_unchanged() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let before = alice.identity.signed().record().clone();

    // Revoked before the new device answers.
    let (a_flow, ticket) = show_link(&mut alice).await;
    let mut dev = new_device(&net, "laptop").await;
    alice.handle.cancel(a_flow).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Cancelled);
    let d_flow = dev.handle.join_account(LinkParams::new(ticket, "laptop")).await.unwrap();
    match finished(&mut dev.events, d_flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::Revoked)) => {}
        other => panic!("{other:?}"),
    }

    // Expired: the new device refuses it and the old one closes it.
    let mut params = SendParams::new(alice.identity.clone());
    params.expires_in_secs = 60;
    let a_flow = alice.handle.link_device(params).await.unwrap();
    wait_for(&mut alice.events, "pub", |e| e.flow == a_flow && matches!(e.event, Event::InvitationPublished { .. }))
        .await;
    let ticket = alice.handle.ticket(a_flow).await.unwrap().unwrap();
    match finished(&mut alice.events, a_flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::Expired)) => {}
        other => panic!("{other:?}"),
    }
    let d_flow = dev.handle.join_account(LinkParams::new(ticket, "laptop")).await.unwrap();
    match finished(&mut dev.events, d_flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::Expired)) => {}
        other => panic!("{other:?}"),
    }
    assert!(driver::identities(dev.store.as_ref()).await.unwrap().identities.is_empty());
    assert!(driver::identities(alice.store.as_ref()).await.unwrap().identities.is_empty());
    let reader = dht(&net, "reader");
    let rk = alice.identity.record_key().unwrap().clone();
    reader.open_record(&rk, None).await.unwrap();
    let v = reader.get_value(&rk, 0, true).await.unwrap().unwrap();
    let rec = SignedIdentity::verify(&v.data, None).unwrap();
    assert_eq!(rec.record(), &before, "no device was added");
}

#[tokio::test(start_paused = true)]
async fn new_device_that_declines_is_not_added() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let (a_flow, ticket) = show_link(&mut alice).await;
    let mut dev = new_device(&net, "laptop").await;
    let d_flow = dev.handle.join_account(LinkParams::new(ticket, "laptop")).await.unwrap();
    wait_for(&mut dev.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    dev.handle.reject(d_flow).await.unwrap();
    assert_eq!(finished(&mut dev.events, d_flow).await, Outcome::RejectedByUs);
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::RejectedByPeer { peer: None });
    assert!(driver::identities(alice.store.as_ref()).await.unwrap().identities.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_link_ticket_links_one_device_only() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let (a_flow, ticket) = show_link(&mut alice).await;
    let mut first = new_device(&net, "laptop").await;
    let mut second = new_device(&net, "tablet").await;
    let f1 = first.handle.join_account(LinkParams::new(ticket.clone(), "laptop")).await.unwrap();
    let f2 = second.handle.join_account(LinkParams::new(ticket, "tablet")).await.unwrap();
    wait_for(&mut first.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    wait_for(&mut second.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    first.handle.accept(f1).await.unwrap();
    let linked = match finished(&mut first.events, f1).await {
        Outcome::DeviceLinked(k) => k,
        other => panic!("first device: {other:?}"),
    };
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::DeviceLinked(linked));
    // The second device accepts the spent ticket: refused, nothing saved.
    second.handle.accept(f2).await.unwrap();
    match finished(&mut second.events, f2).await {
        Outcome::Failed(Error::Protocol(ProtocolError::AlreadyUsed | ProtocolError::InboxClosed)) => {}
        other => panic!("second device: {other:?}"),
    }
    assert!(driver::identities(second.store.as_ref()).await.unwrap().identities.is_empty());
    let record = driver::identities(alice.store.as_ref()).await.unwrap().identities.remove(0);
    let devices = &record.signed().record().devices;
    assert_eq!(
        devices.iter().filter(|d| d.status == DeviceStatus::Current).count(),
        2,
        "the old device and the laptop"
    );
    assert_eq!(record.signed().record().device_status(&linked), Some(DeviceStatus::Current));
}
