//! Nudges on MemoryDht: each side sends the value it just wrote straight to
//! the peer's reply address, so a flow does not wait for watch notifications;
//! a lost, tampered or misdirected nudge changes nothing but the time it takes.

mod common;

use std::time::Duration;

use common::*;
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::flow::{Event, FlowId, Outcome, ReceiveParams, SendParams};

/// The shortest poll interval (5 s): the invitee's, and a fresh invitation's
/// first (the inviter's then grows with the invitation's age: `machine::poll`).
const POLL: Duration = Duration::from_secs(5);

async fn publish(alice: &mut Party) -> (FlowId, contact_invite::encoding::Ticket) {
    let params = SendParams::new(alice.identity.clone());
    publish_invitation(alice, params).await
}

/// Bob accepts Alice's invitation; returns the virtual time from the accept
/// until both contacts are final, and the inviter's events on the way.
async fn accept_and_finish(alice: &mut Party, bob: &mut Party) -> (Duration, Vec<Event>) {
    let (a_flow, ticket) = publish(alice).await;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    let t0 = tokio::time::Instant::now();
    bob.handle.accept(b_flow).await.unwrap();
    let mut seen = Vec::new();
    let a_out = loop {
        let e = wait_for(&mut alice.events, "alice", |e| e.flow == a_flow).await;
        seen.push(e.event.clone());
        if let Event::Finished(o) = e.event {
            break o;
        }
    };
    let b_out = finished(&mut bob.events, b_flow).await;
    assert_eq!(a_out, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(b_out, Outcome::Contact(alice.identity.public_key()));
    (t0.elapsed(), seen)
}

#[tokio::test(start_paused = true)]
async fn nudges_finish_a_flow_whose_watches_are_silent() {
    // Every watch notification is lost: only nudges (or the 5 s polls) can
    // tell each side the other wrote.
    let silent = FaultConfig { lose_notification: 1.0, ..Default::default() };
    let net = MemoryNetwork::with_faults(1, silent.clone());
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    assert!(alice.handle.has_reply_address().await.unwrap());
    net.reset_op_counts();
    let (with_nudges, _) = accept_and_finish(&mut alice, &mut bob).await;
    assert!(with_nudges < POLL, "finished by nudges, without a poll: {with_nudges:?}");
    // One nudge each way: the response, then the final status.
    assert_eq!((net.op_counts("alice").nudge, net.op_counts("bob").nudge), (1, 1));

    // The same flow without a direct channel waits for the polls.
    let net = MemoryNetwork::with_faults(1, silent);
    net.set_nudges_enabled(false);
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    assert!(!alice.handle.has_reply_address().await.unwrap());
    let (without, _) = accept_and_finish(&mut alice, &mut bob).await;
    assert!(without >= POLL, "without nudges the polls decide: {without:?}");
    assert_eq!((net.op_counts("alice").nudge, net.op_counts("bob").nudge), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn tampered_and_replayed_nudges_are_ignored_and_the_dht_decides() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    // A first invitation, to have a genuine signed final status to replay.
    accept_and_finish(&mut alice, &mut bob).await;
    let inbox = alice.contacts().await.remove(0).via_inbox;
    let replay = net.stored_value(&inbox, 0).expect("the first invitation's final status").data;
    // Watches are silent, so the (forged) nudges arrive before the polls.
    net.set_faults(FaultConfig { lose_notification: 1.0, ..Default::default() });
    for forged in [vec![0x5a; 300], replay] {
        // A hostile hop replaces every nudge's value from now on.
        net.tamper_nudges(Some(forged));
        let (_, alice_events) = accept_and_finish(&mut alice, &mut bob).await;
        assert!(
            alice_events.iter().any(|e| matches!(e, Event::ResponseIgnored { .. })),
            "the forged response was looked at and refused: {alice_events:?}"
        );
        net.tamper_nudges(None);
    }
    // Still one contact each (upserted by identity), with the same key.
    let (ac, bc) = (alice.contacts().await, bob.contacts().await);
    assert_eq!((ac.len(), bc.len()), (1, 1));
    assert_eq!(ac[0].conversation_key(), bc[0].conversation_key());
}

#[tokio::test(start_paused = true)]
async fn a_nudge_to_a_dead_reply_address_costs_only_time() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice).await;
    // Alice restarts: the address in her invitation is gone, a new one is made.
    alice.handle.shutdown().await;
    alice.restart(&net).await;
    assert!(alice.handle.has_reply_address().await.unwrap());
    net.reset_op_counts();
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b_flow).await.unwrap();
    // Bob's nudge went nowhere; Alice's resumed watch saw the response.
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b_flow).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(net.op_counts("bob").nudge, 1, "bob tried");
    assert_eq!(net.op_counts("alice").nudge, 1, "alice nudged bob's fresh address");
}
