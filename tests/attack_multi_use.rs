//! Attacks on multi-use invitations (MU-*): a lagging node, hostile ticket
//! holders and acceptors, staged on MemoryDht.

mod common;

use std::time::Duration;

use common::*;
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::flow::{Event, FlowId, Outcome, ReceiveParams, SendParams, Uses};

fn multi(p: &Party, uses: Uses) -> SendParams {
    let mut s = SendParams::new(p.identity.clone());
    s.uses = uses;
    s
}

/// Receives `ticket` as `p` and waits until it is shown.
async fn shown(p: &mut Party, ticket: &contact_invite::encoding::Ticket) -> FlowId {
    let flow = p.handle.receive(ReceiveParams::new(p.identity.clone(), ticket.clone())).await.unwrap();
    wait_for(&mut p.events, "invitation", |e| e.flow == flow && matches!(e.event, Event::InvitationReceived(_))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    flow
}

/// The claims in the invitation's slots.
fn slots(net: &MemoryNetwork, record: &[u8; 32]) -> Vec<Vec<u8>> {
    (1..=8).filter_map(|s| net.stored_value(record, s)).map(|v| v.data).collect()
}

/// An honest acceptor answered with the last use, whose poll reads the
/// invitation's closing status while its own answer record still lags (one
/// poll's reads of it come back unreadable, as from a node that has not got
/// the inviter's write yet). It must not conclude "no uses left" from that
/// one read: the inviter has it as a contact.
#[tokio::test(start_paused = true)]
async fn mu_attack_a_lagging_answer_record_read_after_the_close_does_not_split() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let params = multi(&alice, Uses::AtMost(2));
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    let mut g0 = party(&net, "guest0").await;
    let mut g1 = party(&net, "guest1").await;
    let f0 = shown(&mut g0, &ticket).await;
    g0.handle.accept(f0).await.unwrap();
    assert!(finished(&mut g0.events, f0).await.is_contact());

    // guest1 learns of its answer only by polling.
    let f1 = shown(&mut g1, &ticket).await;
    net.set_faults(FaultConfig { lose_notification: 1.0, lose_nudge: 1.0, ..FaultConfig::default() });
    let before = slots(&net, &ticket.record);
    g1.handle.accept(f1).await.unwrap();
    wait_for(&mut g1.events, "claim sent", |e| e.flow == f1 && matches!(e.event, Event::ResponseSent { .. })).await;
    // guest1's answer record: from its claim (the slot value that is new).
    let record = slots(&net, &ticket.record)
        .into_iter()
        .filter(|c| !before.contains(c))
        .find_map(|c| contact_invite::bench_internals::claim_record(&alice.identity, &ticket.record, &c))
        .expect("guest1's claim, opened as the inviter");
    let closed = match finished(&mut alice.events, a_flow).await {
        Outcome::MultiUseClosed(v) => v,
        o => panic!("inviter: {o:?}"),
    };
    assert_eq!(closed.used(), 2);
    assert!(alice.contacts().await.iter().any(|c| c.peer == g1.identity.public_key()));
    assert!(g1.handle.flows().await.unwrap().iter().any(|v| v.id == f1), "guest1 still waits");

    let answer = net.stored_value(record.opaque(), 0).expect("guest1's final status is stored").data;
    // One poll's worth of reads of that record lag (come back unreadable).
    let mut junk = answer.clone();
    let last = junk.len() - 1;
    junk[last] ^= 1;
    net.tamper_value(record.opaque(), 0, junk);
    let gets = net.op_counts("guest1").get;
    while net.op_counts("guest1").get < gets + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.tamper_value(record.opaque(), 0, answer);

    let outcome = finished(&mut g1.events, f1).await;
    assert_eq!(outcome, Outcome::Contact(alice.identity.public_key()), "the inviter holds guest1 as a contact");
    assert_eq!(g1.contacts().await.len(), 1);
}

/// The inviter's write of an accepted final status lands in the acceptor's
/// answer record, but its acknowledgement is lost and the inviter's network
/// then stays away for longer than an acceptor's turn. The acceptor reads
/// "accepted" and makes the contact, so the inviter must not drop that use
/// when the turn runs out: it keeps writing (as a one-time invitation does,
/// until the acceptor stops waiting) and makes the contact too.
#[tokio::test(start_paused = true)]
async fn mu_attack_an_accept_whose_write_landed_is_not_dropped_when_the_turn_runs_out() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let params = multi(&alice, Uses::AtMost(3));
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    let mut g = party(&net, "guest").await;
    let f = shown(&mut g, &ticket).await;

    // The inviter's first read of the guest's identity record does not
    // confirm it (a lagging node): it reads again 2 s later.
    let id_record = g.identity.record_key().expect("published").clone();
    let id_value = net.stored_value(id_record.opaque(), 0).expect("identity record").data;
    net.tamper_value(id_record.opaque(), 0, vec![1, 2, 3]);
    let before = slots(&net, &ticket.record);
    g.handle.accept(f).await.unwrap();
    wait_for(&mut g.events, "claim sent", |e| e.flow == f && matches!(e.event, Event::ResponseSent { .. })).await;
    let record = slots(&net, &ticket.record)
        .into_iter()
        .filter(|c| !before.contains(c))
        .find_map(|c| contact_invite::bench_internals::claim_record(&alice.identity, &ticket.record, &c))
        .expect("the guest's claim, opened as the inviter");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(net.stored_value(record.opaque(), 0).is_none(), "not answered yet");
    // The record reads right again; the final status's write will land with
    // its acknowledgement lost, and the inviter goes offline right then.
    net.set_faults(FaultConfig { lost_ack: 1.0, ..FaultConfig::default() });
    net.tamper_value(id_record.opaque(), 0, id_value);
    while net.stored_value(record.opaque(), 0).is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    net.set_offline("alice", true);
    net.set_faults(FaultConfig::default());
    assert_eq!(finished(&mut g.events, f).await, Outcome::Contact(alice.identity.public_key()));

    // Longer than a turn (120 s), then back.
    tokio::time::sleep(Duration::from_secs(300)).await;
    net.set_offline("alice", false);
    wait_for(&mut alice.events, "the guest counted", |e| {
        e.flow == a_flow && matches!(&e.event, Event::UsesChanged(v) if v.used() == 1)
    })
    .await;
    let ours = alice.contacts().await;
    assert_eq!(ours.len(), 1, "the inviter holds the contact the guest holds");
    assert_eq!(ours[0].conversation_key(), g.contacts().await[0].conversation_key());
}
