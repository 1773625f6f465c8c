//! APP-START-1 (issue 14, item 7): `driver::start` never waits on the
//! network. On Veilid a private route (this party's reply address) takes a
//! second or more to make; an app's start-up must not wait for it. Flows
//! started before it is known wait for it, at most
//! `DriverConfig::reply_address_wait`, so the first invitation carries it.
//!
//! Virtual time (`start_paused`): the figures are exact, not timings.

use std::sync::Arc;
use std::time::Duration;

use contact_invite::driver::TokioClock;
use contact_invite::prelude::*;
use tokio::time::Instant;

const T0_MS: u64 = 1_700_000_000_000;

async fn alice(net: &MemoryNetwork, wait: Option<Duration>) -> (Handle, Events, Identity) {
    let id = Identity::generate(Profile::new("Alice").unwrap(), "phone", T0_MS / 1000, &mut OsRng).unwrap();
    let id = driver::publish_identity(&net.join("alice"), id).await.unwrap();
    let mut config = DriverConfig::builder().clock(TokioClock::starting_at(T0_MS));
    if let Some(w) = wait {
        config = config.reply_address_wait(w);
    }
    let started = Instant::now();
    let (h, events) = driver::start(net.join("alice"), Arc::new(MemoryStore::new()), config.build()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO, "start waited on the network");
    (h, events, id)
}

#[tokio::test(start_paused = true)]
async fn start_returns_at_once_and_the_first_invitation_waits_for_the_reply_address() {
    let net = MemoryNetwork::new();
    net.set_reply_address_delay(Duration::from_millis(1500));
    let (h, _events, id) = alice(&net, None).await;
    let t = Instant::now();
    h.send_invitation(SendParams::new(id)).await.unwrap();
    // Held until the address was made (1.5 s), not the whole 2 s window.
    assert_eq!(t.elapsed(), Duration::from_millis(1500));
    assert!(h.has_reply_address().await.unwrap(), "the invitation was started with the address");
    // Later flows do not wait.
    let t = Instant::now();
    h.flows().await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_slow_route_holds_new_flows_only_for_the_configured_wait() {
    let net = MemoryNetwork::new();
    net.set_reply_address_delay(Duration::from_secs(10));
    let (h, _events, id) = alice(&net, Some(Duration::from_millis(300))).await;
    // Commands that do not need the address answer at once.
    let t = Instant::now();
    assert!(h.flows().await.unwrap().is_empty());
    assert_eq!(t.elapsed(), Duration::ZERO);
    h.send_invitation(SendParams::new(id.clone())).await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_millis(300), "went on without the address after the wait");
    assert!(!h.has_reply_address().await.unwrap());
    // The address still arrives in the background.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(h.has_reply_address().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_zero_wait_never_holds_a_flow() {
    let net = MemoryNetwork::new();
    net.set_reply_address_delay(Duration::from_secs(10));
    let (h, _events, id) = alice(&net, Some(Duration::ZERO)).await;
    let t = Instant::now();
    h.send_invitation(SendParams::new(id)).await.unwrap();
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert!(!h.has_reply_address().await.unwrap());
}

/// `Duration::MAX` ("always wait") must not overflow the deadline.
#[tokio::test(start_paused = true)]
async fn a_huge_wait_does_not_overflow() {
    let net = MemoryNetwork::new();
    net.set_reply_address_delay(Duration::from_secs(1));
    let (h, _events, id) = alice(&net, Some(Duration::MAX)).await;
    let t = Instant::now();
    h.send_invitation(SendParams::new(id)).await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(1), "held until the address, however long the wait");
}

/// The held commands are bounded like the command channel: past 64, the
/// driver stops waiting for the address and runs them all.
#[tokio::test(start_paused = true)]
async fn held_commands_are_bounded() {
    let net = MemoryNetwork::new();
    net.set_reply_address_delay(Duration::from_secs(3600));
    let (h, _events, id) = alice(&net, Some(Duration::from_secs(3600))).await;
    let t = Instant::now();
    let sends: Vec<_> = (0..65)
        .map(|_| {
            let (h, id) = (h.clone(), id.clone());
            tokio::spawn(async move { h.send_invitation(SendParams::new(id)).await })
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert_eq!(t.elapsed(), Duration::ZERO, "released at the 64th, not after the hour");
}
