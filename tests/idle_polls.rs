//! The poll schedule of a waiting invitation (docs/protocol.md, "Poll
//! schedule"): polls back off with the invitation's age, yet a response
//! whose watch notification and nudge are both lost is still read within
//! the stated bound, on a young and on an old invitation.

mod common;

use std::time::Duration;

use common::*;
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::flow::{Event, Outcome, ReceiveParams, SendParams};
use contact_invite::machine::poll::{POLL_BOUND_MS, POLL_FLOOR_MS, base_interval};

/// Alice publishes, waits `age` (virtual time), then Bob accepts with every
/// watch notification and every nudge lost. Returns the time from Bob's
/// response being confirmed on the DHT until Alice's flow finished, and
/// Alice's DHT reads while she waited.
async fn lost_watch_and_nudge(age: Duration) -> (Duration, u64) {
    let silent = FaultConfig { lose_notification: 1.0, lose_nudge: 1.0, ..Default::default() };
    let net = MemoryNetwork::with_faults(1, silent);
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let params = SendParams::new(alice.identity.clone());
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    net.reset_op_counts();
    tokio::time::sleep(age).await;
    let reads_while_waiting = net.op_counts("alice").get;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "shown", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b_flow).await.unwrap();
    wait_for(&mut bob.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let sent = tokio::time::Instant::now();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    let took = sent.elapsed();
    assert_eq!(finished(&mut bob.events, b_flow).await, Outcome::Contact(alice.identity.public_key()));
    assert!(net.op_counts("bob").nudge >= 1, "bob nudged (and the nudge was lost)");
    (took, reads_while_waiting)
}

#[tokio::test(start_paused = true)]
async fn a_young_invitation_catches_a_lost_watch_and_nudge_within_seconds() {
    let (took, _) = lost_watch_and_nudge(Duration::from_secs(1)).await;
    // Read by a poll (no notification, no nudge), on the short interval of
    // a fresh invitation: its base interval plus jitter.
    assert!(took <= Duration::from_millis(base_interval(10_000) * 11 / 10), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_old_invitation_catches_a_lost_watch_and_nudge_within_the_bound() {
    let three_days = Duration::from_secs(3 * 24 * 3600);
    let (took, reads) = lost_watch_and_nudge(three_days).await;
    assert!(took <= Duration::from_millis(POLL_BOUND_MS), "{took:?}");
    // It did back off: a fixed 5 s poll would have read 51 840 times.
    let fixed = three_days.as_millis() as u64 / POLL_FLOOR_MS;
    assert!(reads < 60, "{reads} reads in three days ({fixed} at a fixed 5 s)");
    assert!(reads >= 30, "still polled at most every 2 h (+jitter): {reads}");
}
