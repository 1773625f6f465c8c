//! Requests to a known address on MemoryDht: accept, ignore, block,
//! simultaneous requests, and a recipient asking too much work.

mod common;

use common::*;
use contact_invite::crypto::pow::DEFAULT_MAX_MINT_BITS;
use contact_invite::dht::MemoryNetwork;
use contact_invite::encoding::{Address, UriScheme};
use contact_invite::error::{Error, ProtocolError};
use contact_invite::flow::{Event, FlowId, Outcome, RequestInboxParams, RequestStatus, RequestView, SendParams};

/// Opens Bob's request inbox; returns its flow and the address Bob shares.
async fn open_inbox(p: &mut Party, pow_bits: u32) -> (FlowId, Address) {
    let mut params = RequestInboxParams::new(p.identity.clone());
    params.pow_bits = pow_bits;
    let flow = p.handle.open_request_inbox(params).await.unwrap();
    let e =
        wait_for(&mut p.events, "inbox open", |e| e.flow == flow && matches!(e.event, Event::RequestInboxOpen { .. }))
            .await;
    let Event::RequestInboxOpen { address } = e.event else { unreachable!() };
    // The identity saved by the inbox now lists it; later flows use that one.
    p.identity = contact_invite::driver::identities(p.store.as_ref()).await.unwrap().identities.remove(0);
    // The address survives its URI form.
    let scheme = UriScheme::new("chat").unwrap();
    assert_eq!(Address::from_uri(&address.to_uri(&scheme), &scheme).unwrap(), address);
    (flow, address)
}

async fn request(p: &mut Party, to: Address, message: &str) -> FlowId {
    let mut s = SendParams::new(p.identity.clone());
    s.message = message.into();
    let flow = p.handle.send_request(s, to, DEFAULT_MAX_MINT_BITS).await.unwrap();
    wait_for(&mut p.events, "delivered", |e| e.flow == flow && matches!(e.event, Event::RequestDelivered { .. })).await;
    flow
}

async fn received(p: &mut Party) -> RequestView {
    match wait_for(&mut p.events, "request", |e| matches!(e.event, Event::RequestReceived(_))).await.event {
        Event::RequestReceived(v) => v,
        _ => unreachable!(),
    }
}

#[tokio::test(start_paused = true)]
async fn accepted_request_makes_a_mutual_contact() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (inbox, address) = open_inbox(&mut bob, 12).await;
    let a_flow = request(&mut alice, address.clone(), "we met at the conference").await;
    let view = received(&mut bob).await;
    assert_eq!(view.requester, alice.identity.public_key());
    assert_eq!(view.profile.name(), "alice");
    assert_eq!(view.message, "we met at the conference");
    assert_eq!(view.status, RequestStatus::Pending);
    assert_eq!(bob.handle.requests(inbox).await.unwrap(), vec![view.clone()]);

    net.reset_op_counts();
    bob.handle.accept_request(inbox, view.id).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    let e = wait_for(&mut bob.events, "bob contact", |e| matches!(e.event, Event::ContactEstablished { .. })).await;
    assert_ne!(e.flow, inbox, "the contact is made by the invitation flow the accept started");
    // The flow the accept started answers with Bob's reply address too: one
    // nudge each way (the response to Alice, the final status to Bob).
    assert_eq!((net.op_counts("alice").nudge, net.op_counts("bob").nudge), (1, 1));
    let (ac, bc) = (alice.contacts().await, bob.contacts().await);
    assert_eq!((ac.len(), bc.len()), (1, 1));
    assert_eq!(ac[0].conversation_key(), bc[0].conversation_key());
    assert_eq!(bc[0].peer, alice.identity.public_key());
    assert!(bob.handle.requests(inbox).await.unwrap().is_empty(), "accepted requests leave the list");
}

#[tokio::test(start_paused = true)]
async fn ignored_request_is_kept_silent_and_can_still_be_accepted() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (inbox, address) = open_inbox(&mut bob, 8).await;
    let a_flow = request(&mut alice, address.clone(), "hello").await;
    let view = received(&mut bob).await;
    bob.handle.ignore_request(inbox, view.id).await.unwrap();
    let kept = bob.handle.requests(inbox).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, RequestStatus::Ignored);
    // Nothing reaches Alice: an hour later her flow is still open and
    // nothing but the delivery happened.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    while let Ok(e) = alice.events.try_recv() {
        assert!(!matches!(e.event, Event::Finished(_) | Event::ContactEstablished { .. }), "{e:?}");
    }
    // Revisited and accepted.
    bob.handle.accept_request(inbox, view.id).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
}

#[tokio::test(start_paused = true)]
async fn blocked_requester_is_dropped_silently_until_unblocked() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut carol = party(&net, "carol").await;
    let (inbox, address) = open_inbox(&mut bob, 8).await;
    let _ = request(&mut alice, address.clone(), "first").await;
    let view = received(&mut bob).await;
    bob.handle.block_requester(inbox, view.id).await.unwrap();
    assert!(bob.handle.requests(inbox).await.unwrap().is_empty());
    // Alice tries again; Carol too. Only Carol's request reaches Bob.
    let mut s = SendParams::new(alice.identity.clone());
    s.expires_in_secs = 3600;
    let second = alice.handle.send_request(s, address.clone(), DEFAULT_MAX_MINT_BITS).await.unwrap();
    let _ = request(&mut carol, address.clone(), "carol here").await;
    let v = received(&mut bob).await;
    assert_eq!(v.requester, carol.identity.public_key());
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    let kept = bob.handle.requests(inbox).await.unwrap();
    assert_eq!(kept.iter().map(|r| r.requester).collect::<Vec<_>>(), vec![carol.identity.public_key()]);
    while let Ok(e) = bob.events.try_recv() {
        assert!(!matches!(&e.event, Event::RequestReceived(v) if v.requester == alice.identity.public_key()));
    }
    // Alice's blocked request simply expires on her side.
    assert!(matches!(
        finished(&mut alice.events, second).await,
        Outcome::Failed(Error::Protocol(ProtocolError::Expired))
    ));
    // Unblocked: her next request gets through.
    bob.handle.unblock(inbox, alice.identity.public_key()).await.unwrap();
    let _ = request(&mut alice, address.clone(), "third").await;
    let v = received(&mut bob).await;
    assert_eq!((v.requester, v.message.as_str()), (alice.identity.public_key(), "third"));
}

#[tokio::test(start_paused = true)]
async fn simultaneous_requests_merge_into_one_contact() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_, a_addr) = open_inbox(&mut alice, 8).await;
    let (_, b_addr) = open_inbox(&mut bob, 8).await;
    // Both send before either sees the other's.
    let mut s = SendParams::new(alice.identity.clone());
    s.message = "from alice".into();
    let a_flow = alice.handle.send_request(s, b_addr, DEFAULT_MAX_MINT_BITS).await.unwrap();
    let mut s = SendParams::new(bob.identity.clone());
    s.message = "from bob".into();
    let b_flow = bob.handle.send_request(s, a_addr, DEFAULT_MAX_MINT_BITS).await.unwrap();
    // Stamps are minted off the runtime: the first request delivered may be
    // merged (withdrawing the other side's, still being stamped) before the
    // second is ever sent. Either way one side at least sees the merge.
    let mut merged = 0;
    let mut ends = Vec::new();
    for (p, flow) in [(&mut alice, a_flow), (&mut bob, b_flow)] {
        loop {
            let e = wait_for(&mut p.events, "merged or finished", |e| {
                matches!(e.event, Event::RequestsMerged { .. })
                    || (e.flow == flow && matches!(e.event, Event::Finished(_)))
            })
            .await;
            match e.event {
                Event::RequestsMerged { .. } => merged += 1,
                Event::Finished(o) => break ends.push(o),
                _ => unreachable!(),
            }
        }
    }
    assert!(merged >= 1, "a merge was seen");
    let (ao, bo) = (ends[0].clone(), ends[1].clone());
    // The smaller identity key's invitation made the contact; the other side withdrew its own.
    let alice_smaller = alice.identity.public_key().as_bytes() < bob.identity.public_key().as_bytes();
    if alice_smaller {
        assert_eq!(ao, Outcome::Contact(bob.identity.public_key()));
        assert_eq!(bo, Outcome::Cancelled);
    } else {
        assert_eq!(ao, Outcome::Cancelled);
        assert_eq!(bo, Outcome::Contact(alice.identity.public_key()));
    }
    // One contact each, same key, and no request left for the user.
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    let (ac, bc) = (alice.contacts().await, bob.contacts().await);
    assert_eq!((ac.len(), bc.len()), (1, 1));
    assert_eq!(ac[0].conversation_key(), bc[0].conversation_key());
    for p in [&mut alice, &mut bob] {
        while let Ok(e) = p.events.try_recv() {
            assert!(!matches!(e.event, Event::RequestReceived(_)), "{}: {e:?}", p.name);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn requester_refuses_costly_stamps_and_identities_without_inbox() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let carol = party(&net, "carol").await;
    let (_, address) = open_inbox(&mut bob, 20).await;
    let flow = alice.handle.send_request(SendParams::new(alice.identity.clone()), address.clone(), 12).await.unwrap();
    match finished(&mut alice.events, flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::StampTooCostly { required: 20, max: 12 })) => {}
        other => panic!("{other:?}"),
    }
    let carol_addr =
        Address { identity: carol.identity.public_key(), record: carol.identity.record_key().unwrap().clone() };
    let flow = alice.handle.send_request(SendParams::new(alice.identity.clone()), carol_addr, 12).await.unwrap();
    match finished(&mut alice.events, flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::NoRequestInbox)) => {}
        other => panic!("{other:?}"),
    }
    // An address whose record belongs to another identity is refused.
    let forged = Address { identity: carol.identity.public_key(), record: address.record.clone() };
    let flow = alice.handle.send_request(SendParams::new(alice.identity.clone()), forged, 12).await.unwrap();
    match finished(&mut alice.events, flow).await {
        Outcome::Failed(e) => assert!(e.to_string().contains("another identity"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn inbox_survives_a_restart_and_closing_unpublishes_it() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (inbox, address) = open_inbox(&mut bob, 8).await;
    bob.handle.shutdown().await;
    // Delivered while Bob is offline; seen when his driver resumes.
    let _ = request(&mut alice, address.clone(), "while you were away").await;
    bob.restart(&net).await;
    let v = received(&mut bob).await;
    assert_eq!(v.message, "while you were away");
    // Restarting again does not show it twice as new (it stays pending and
    // is re-announced once, with the same id).
    bob.handle.shutdown().await;
    bob.restart(&net).await;
    let again = received(&mut bob).await;
    assert_eq!(again.id, v.id);
    assert_eq!(bob.handle.requests(inbox).await.unwrap().len(), 1);
    // Closing: the identity record no longer names an inbox; requests fail.
    bob.handle.cancel(inbox).await.unwrap();
    assert_eq!(finished(&mut bob.events, inbox).await, Outcome::Cancelled);
    let flow = alice.handle.send_request(SendParams::new(alice.identity.clone()), address.clone(), 12).await.unwrap();
    match finished(&mut alice.events, flow).await {
        Outcome::Failed(Error::Protocol(ProtocolError::NoRequestInbox)) => {}
        other => panic!("{other:?}"),
    }
}
