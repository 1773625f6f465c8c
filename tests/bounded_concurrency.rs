//! The driver keeps at most `DriverConfig::max_in_flight` DHT operations in
//! flight, for new work and for flows resumed after a restart, and every
//! flow still completes. Flows share one persisted identity snapshot; a flow
//! whose snapshot is missing is reported, not fatal.

mod common;
#[path = "common/gauge.rs"]
mod gauge;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, DriverConfig, Events, Handle, TokioClock};
use contact_invite::flow::{Event, FlowId, Outcome, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::{MemoryStore, Store, Table};
use gauge::{Gauge, GaugeStats};
use rand_core::OsRng;

const BOUND: usize = 4;
/// Each DHT operation takes this long (virtual time), so they overlap.
const HOLD: Duration = Duration::from_millis(20);

struct Alice {
    net: MemoryNetwork,
    identity: Identity,
    store: Arc<MemoryStore>,
    stats: Arc<GaugeStats>,
    clock: TokioClock,
}

impl Alice {
    async fn new(net: &MemoryNetwork) -> Self {
        let identity = Identity::generate(Profile::new("alice").unwrap(), "d", T0_MS / 1000, &mut OsRng).unwrap();
        let identity = driver::publish_identity(&net.join("alice"), identity).await.unwrap();
        Self {
            net: net.clone(),
            identity,
            store: Arc::new(MemoryStore::new()),
            stats: GaugeStats::new(),
            clock: TokioClock::starting_at(T0_MS),
        }
    }
    async fn start(&self, max_in_flight: usize, crash_after_effects: Option<u64>) -> (Handle, Events) {
        let cfg = DriverConfig::builder()
            .clock(self.clock)
            .max_in_flight(max_in_flight)
            .crash_after_effects(crash_after_effects)
            .build();
        let dht = Gauge::new(self.net.join("alice"), self.stats.clone(), HOLD);
        driver::start(dht, self.store.clone(), cfg).await.unwrap()
    }
}

/// Waits until every flow of `flows` has published its invitation.
async fn all_published(events: &mut Events, flows: &HashSet<FlowId>) {
    let mut seen = HashSet::new();
    while seen.len() < flows.len() {
        let e = wait_for(events, "published", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
        assert!(flows.contains(&e.flow), "only known flows publish");
        seen.insert(e.flow);
    }
}

/// Waits until every flow of `flows` has finished; returns the outcomes.
async fn all_finished(events: &mut Events, flows: &HashSet<FlowId>) -> HashMap<FlowId, Outcome> {
    let mut out = HashMap::new();
    while out.len() < flows.len() {
        let e = wait_for(events, "finished", |e| matches!(e.event, Event::Finished(_))).await;
        if let Event::Finished(o) = e.event {
            assert!(flows.contains(&e.flow));
            out.insert(e.flow, o);
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn new_and_resumed_work_stays_within_the_bound_and_every_flow_completes() {
    const N: usize = 40;
    let net = MemoryNetwork::new();
    let alice = Alice::new(&net).await;
    let mut bob = party(&net, "bob").await;

    // First run: N invitations sent at once (new work).
    let (a, mut events) = alice.start(BOUND, None).await;
    let mut flows = Vec::new();
    for _ in 0..N {
        flows.push(a.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap());
    }
    let all: HashSet<FlowId> = flows.iter().copied().collect();
    all_published(&mut events, &all).await;
    assert_eq!(alice.stats.max(), BOUND, "new work: the bound was reached and never exceeded");
    a.shutdown().await;
    assert_eq!(alice.store.len(Table::Flows), N);
    assert_eq!(alice.store.len(Table::IdentitySnapshots), 1, "one identity, stored once for {N} flows");

    // Restart: every flow resumes (re-watches its inbox) within the bound.
    alice.stats.reset();
    let (a, mut events) = alice.start(BOUND, None).await;
    all_published(&mut events, &all).await;
    // Bob accepts three; the rest are revoked. Each ends through several
    // more DHT operations (final status, tombstone, forget).
    let accepted: HashSet<FlowId> = flows[..3].iter().copied().collect();
    let mut bob_flows = Vec::new();
    for f in &flows[..3] {
        let ticket = a.ticket(*f).await.unwrap().unwrap();
        let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        wait_for(&mut bob.events, "received", |e| e.flow == b && matches!(e.event, Event::InvitationReceived(_))).await;
        bob.handle.accept(b).await.unwrap();
        bob_flows.push(b);
    }
    for f in &flows[3..] {
        a.cancel(*f).await.unwrap();
    }
    let outcomes = all_finished(&mut events, &all).await;
    for (f, o) in &outcomes {
        if accepted.contains(f) {
            assert_eq!(*o, Outcome::Contact(bob.identity.public_key()));
        } else {
            assert_eq!(*o, Outcome::Cancelled);
        }
    }
    let bob_flows: HashSet<FlowId> = bob_flows.into_iter().collect();
    for o in all_finished(&mut bob.events, &bob_flows).await.values() {
        assert_eq!(*o, Outcome::Contact(alice.identity.public_key()));
    }
    assert_eq!(alice.stats.max(), BOUND, "resumed work: the bound was reached and never exceeded");
    assert!(alice.stats.watches() >= N as u64, "every resumed flow watched its inbox again");
    assert_eq!(a.ticket(flows[0]).await.unwrap(), None, "the driver has processed every step");
    assert!(alice.store.is_empty(Table::Flows));
    assert!(alice.store.is_empty(Table::IdentitySnapshots), "the snapshot goes with the last flow using it");
    assert_eq!(driver::contacts(alice.store.as_ref()).await.unwrap().contacts.len(), 1, "one peer, one contact");
}

#[tokio::test(start_paused = true)]
async fn the_gauge_sees_more_than_the_bound_when_there_is_none() {
    let net = MemoryNetwork::new();
    let alice = Alice::new(&net).await;
    let (a, mut events) = alice.start(1_000, None).await;
    let mut flows = HashSet::new();
    for _ in 0..20 {
        flows.insert(a.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap());
    }
    all_published(&mut events, &flows).await;
    assert!(alice.stats.max() > BOUND, "operations overlap: {}", alice.stats.max());
}

#[tokio::test(start_paused = true)]
async fn flows_persisted_in_every_state_by_a_crash_resume_within_the_bound() {
    let net = MemoryNetwork::new();
    let alice = Alice::new(&net).await;
    // The driver stops abruptly partway through sending: flows are left in
    // every state (creating, publishing, waiting).
    let (a, mut events) = alice.start(BOUND, Some(150)).await;
    for _ in 0..60 {
        if a.send_invitation(SendParams::new(alice.identity.clone())).await.is_err() {
            break;
        }
    }
    while events.recv().await.is_some() {}
    let persisted: HashSet<FlowId> =
        alice.store.list(Table::Flows).await.unwrap().into_iter().map(|(k, _)| FlowId(k.try_into().unwrap())).collect();
    assert!(persisted.len() > 10, "{} flows persisted", persisted.len());

    alice.stats.reset();
    let (a, mut events) = alice.start(BOUND, None).await;
    all_published(&mut events, &persisted).await;
    for f in &persisted {
        a.cancel(*f).await.unwrap();
    }
    let outcomes = all_finished(&mut events, &persisted).await;
    assert!(outcomes.values().all(|o| *o == Outcome::Cancelled), "{outcomes:?}");
    assert!(alice.stats.max() <= BOUND, "at most {BOUND} in flight, saw {}", alice.stats.max());
    assert!(alice.store.is_empty(Table::Flows));
    assert!(alice.store.is_empty(Table::IdentitySnapshots));
}

#[tokio::test(start_paused = true)]
async fn a_flow_whose_identity_snapshot_is_missing_is_reported_and_the_rest_runs() {
    let net = MemoryNetwork::new();
    let alice = Alice::new(&net).await;
    let (a, mut events) = alice.start(BOUND, None).await;
    let flow = a.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap();
    wait_for(&mut events, "published", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
    a.shutdown().await;
    let snapshots = alice.store.list(Table::IdentitySnapshots).await.unwrap();
    assert_eq!(snapshots.len(), 1);
    alice.store.delete(Table::IdentitySnapshots, &snapshots[0].0).await.unwrap();
    let record = alice.store.get(Table::Flows, &flow.0).await.unwrap().unwrap();

    let (a, mut events) = alice.start(BOUND, None).await;
    match finished(&mut events, flow).await {
        Outcome::Failed(contact_invite::Error::Store(m)) => assert!(m.contains("identity snapshot"), "{m}"),
        o => panic!("unexpected {o:?}"),
    }
    assert_eq!(alice.store.get(Table::Flows, &flow.0).await.unwrap(), Some(record), "left in the store");
    // The driver runs on: a new invitation is sent (and its identity stored again).
    let f2 = a.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap();
    let e = wait_for(&mut events, "published", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
    assert_eq!(e.flow, f2);
    assert_eq!(alice.store.len(Table::IdentitySnapshots), 1);
}
