//! Shared helpers for the flow tests: parties on a MemoryNetwork with virtual time.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use contact_invite::crypto::SigningKey;
use contact_invite::dht::{MemoryDht, MemoryNetwork};
use contact_invite::driver::{self, DriverConfig, DriverEvent, Events, Handle, TokioClock};
use contact_invite::encoding::Ticket;
use contact_invite::flow::{Event, FlowId, Outcome, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use rand_core::OsRng;

mod needles;
mod stored;
#[allow(unused_imports)] // not every test file searches for secrets
pub(crate) use needles::Needles;
#[allow(unused_imports)] // for the tests that read or tamper with stored records
pub(crate) use stored::{StoredContact, StoredIdentity};

/// 2026-11-22 00:00 UTC.
pub(crate) const T0_MS: u64 = 1_795_305_600_000;

pub(crate) struct Party {
    pub name: String,
    pub identity: Identity,
    pub store: Arc<MemoryStore>,
    pub handle: Handle,
    pub events: Events,
    pub clock: TokioClock,
}

pub(crate) async fn party(net: &MemoryNetwork, name: &str) -> Party {
    party_with(net, name, None).await
}

pub(crate) async fn party_with(net: &MemoryNetwork, name: &str, crash_after: Option<u64>) -> Party {
    let clock = TokioClock::starting_at(T0_MS);
    let identity = Identity::generate(Profile::new(name).unwrap(), "device", T0_MS / 1000, &mut OsRng).unwrap();
    let identity = driver::publish_identity(&net.join(name), identity).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let (handle, events) = start(net, name, &store, clock, crash_after).await;
    Party { name: name.to_owned(), identity, store, handle, events, clock }
}

pub(crate) async fn start(
    net: &MemoryNetwork,
    name: &str,
    store: &Arc<MemoryStore>,
    clock: TokioClock,
    crash_after: Option<u64>,
) -> (Handle, Events) {
    let cfg = DriverConfig::builder().clock(clock).crash_after_effects(crash_after).build();
    driver::start(net.join(name), store.clone(), cfg).await.unwrap()
}

impl Party {
    /// Restarts the driver over the same store (after a crash or shutdown).
    pub(crate) async fn restart(&mut self, net: &MemoryNetwork) {
        let (h, e) = start(net, &self.name, &self.store, self.clock, None).await;
        self.handle = h;
        self.events = e;
    }
    pub(crate) async fn contacts(&self) -> Vec<contact_invite::contact::Contact> {
        driver::contacts(self.store.as_ref()).await.unwrap().contacts
    }
}

/// Waits (virtual time, bounded) for an event matching `pred`.
pub(crate) async fn wait_for(events: &mut Events, what: &str, pred: impl Fn(&DriverEvent) -> bool) -> DriverEvent {
    let deadline = Duration::from_secs(3 * 24 * 3600);
    match tokio::time::timeout(deadline, async {
        while let Some(e) = events.recv().await {
            if pred(&e) {
                return Some(e);
            }
        }
        None
    })
    .await
    {
        Ok(Some(e)) => e,
        Ok(None) => panic!("event stream closed while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Sends an invitation and waits until it is published; returns its ticket.
pub(crate) async fn publish_invitation(p: &mut Party, params: SendParams) -> (FlowId, Ticket) {
    let flow = p.handle.send_invitation(params).await.unwrap();
    wait_for(&mut p.events, "published", |e| e.flow == flow && matches!(e.event, Event::InvitationPublished { .. }))
        .await;
    (flow, p.handle.ticket(flow).await.unwrap().expect("ticket after publish"))
}

pub(crate) async fn finished(events: &mut Events, flow: FlowId) -> Outcome {
    match wait_for(events, "Finished", |e| e.flow == flow && matches!(e.event, Event::Finished(_))).await.event {
        Event::Finished(o) => o,
        _ => unreachable!(),
    }
}

pub(crate) fn random_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

pub(crate) fn dht(net: &MemoryNetwork, name: &str) -> MemoryDht {
    net.join(name)
}
