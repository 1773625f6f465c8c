//! The invitation flows on a real private Veilid network (6 nodes in this
//! process, inside the sealed namespace of `scripts/netns.sh`):
//!
//! ```text
//! scripts/netns-cargo.sh test --features veilid-network-tests --test veilid_flows
//! ```
//!
//! One network serves every flow; each wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::crypto::pow::DEFAULT_MAX_MINT_BITS;
use contact_invite::crypto::{Password, PasswordParams, Pin};
use contact_invite::dht::Dht;
use contact_invite::dht::veilid::VeilidDht;
use contact_invite::dht::{OpLog, Recorded, median};
use contact_invite::driver::{self, Clock, DriverConfig, DriverEvent, Events, Handle, OffsetClock};
use contact_invite::error::ProtocolError;
use contact_invite::flow::{
    Event, FlowId, LinkParams, Lock, Outcome, ReceiveParams, RequestInboxParams, SendParams, Uses, UsesClosed,
};
use contact_invite::identity::Identity;
use contact_invite::message::{DeviceStatus, Profile};
use contact_invite::store::{MemoryStore, Store, Table};
use contact_invite::veilid_net::{DEFAULT_NODES, LocalNetwork, LocalNetworkOptions};
use contact_invite::veilid_store::VeilidTableStore;
use rand_core::OsRng;

const WAIT: Duration = Duration::from_secs(90);

struct Party {
    identity: Identity,
    handle: Handle,
    events: Events,
    store: Arc<MemoryStore>,
    clock: OffsetClock,
    log: OpLog,
}

async fn party(net: &LocalNetwork, node: usize, name: &str) -> Party {
    let clock = OffsetClock::new();
    let id = Identity::generate(Profile::new(name).unwrap(), "node", clock.now_ms() / 1000, &mut OsRng).unwrap();
    let identity = driver::publish_identity(&net.dht(node).unwrap(), id).await.unwrap();
    let log = OpLog::new();
    let dht = Recorded::new(net.dht(node).unwrap(), log.clone());
    let store = Arc::new(MemoryStore::new());
    let cfg = DriverConfig::builder().clock(clock.clone()).build();
    let (handle, events) = driver::start::<Recorded<VeilidDht>, _>(dht, store.clone(), cfg).await.unwrap();
    Party { identity, handle, events, store, clock, log }
}

async fn wait(p: &mut Party, what: &str, pred: impl Fn(&DriverEvent) -> bool) -> DriverEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = p.events.recv().await.unwrap_or_else(|| panic!("driver stopped waiting for {what}"));
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn finished(p: &mut Party, flow: FlowId) -> Outcome {
    match wait(p, "finished", |e| e.flow == flow && matches!(e.event, Event::Finished(_))).await.event {
        Event::Finished(o) => o,
        _ => unreachable!(),
    }
}

async fn publish(p: &mut Party, params: SendParams) -> (FlowId, contact_invite::encoding::Ticket) {
    let flow = p.handle.send_invitation(params).await.unwrap();
    wait(p, "published", |e| e.flow == flow && matches!(e.event, Event::InvitationPublished { .. })).await;
    (flow, p.handle.ticket(flow).await.unwrap().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invitation_flows_on_a_private_veilid_network() {
    LocalNetwork::check_namespace(DEFAULT_NODES).unwrap_or_else(|e| panic!("{e}"));
    let net = LocalNetwork::start(LocalNetworkOptions::default()).await.expect("network attaches");
    eprint!("{}", net.report());
    let r = tokio::time::timeout(Duration::from_secs(600), flows(&net)).await;
    net.shutdown().await;
    r.expect("flows finish within 10 minutes");
}

async fn flows(net: &LocalNetwork) {
    let mut alice = party(net, 1, "alice").await;
    let mut bob = party(net, 2, "bob").await;
    let mut carol = party(net, 3, "carol").await;

    // Each party has its private route (the reply address peers nudge).
    for p in [&alice, &bob, &carol] {
        let ready = tokio::time::timeout(WAIT, async {
            while !p.handle.has_reply_address().await.unwrap() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        ready.await.expect("a private route within the wait");
    }

    // 1. A full invitation with a password (the offline Argon2id lock; a
    // PIN runs SPAKE2 with the inviter's device and has its own round trips).
    let t0 = Instant::now();
    alice.log.drain();
    bob.log.drain();
    let mut params = SendParams::new(alice.identity.clone());
    params.lock = Lock::Password(Password::new("4711").unwrap());
    params.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    let (a_flow, ticket) = publish(&mut alice, params).await;
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait(&mut bob, "password", |e| matches!(e.event, Event::PasswordRequired { .. })).await;
    bob.handle.password(b_flow, Password::new("4711").unwrap()).await.unwrap();
    let shown = wait(&mut bob, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    assert_eq!(shown.round_trips, 1);
    bob.handle.accept(b_flow).await.unwrap();
    let sent = wait(&mut bob, "sent", |e| matches!(e.event, Event::ResponseSent { accepted: true })).await;
    // 1 once the freshness check of the inviter's record (run while the user
    // decides) is done; accepting at once, the response waits for it and the
    // chain counts from the scan: inbox get, record get, response set (FRESH-4).
    assert!(matches!(sent.round_trips, 1 | 3), "accept -> response stored in {}", sent.round_trips);
    assert_eq!(finished(&mut alice, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob, b_flow).await, Outcome::Contact(alice.identity.public_key()));
    let end_to_end = t0.elapsed();
    let (ac, bc) = (
        driver::contacts(alice.store.as_ref()).await.unwrap().contacts,
        driver::contacts(bob.store.as_ref()).await.unwrap().contacts,
    );
    assert_eq!((ac.len(), bc.len()), (1, 1));
    assert_eq!(ac[0].conversation_key(), bc[0].conversation_key());
    assert_eq!(ac[0].remote_conversation.opaque(), bc[0].local_conversation.opaque());
    let (a_ops, b_ops) = (alice.log.drain(), bob.log.drain());
    // One nudge each way went out over the peer's private route: the
    // response to Alice, the final status to Bob.
    let nudges = |ops: &[contact_invite::dht::OpRecord]| ops.iter().filter(|r| r.op == "nudge" && r.ok).count();
    assert_eq!((nudges(&a_ops), nudges(&b_ops)), (1, 1));
    let mut ops = a_ops;
    ops.extend(b_ops);
    let (mg, ms) = (median(&ops, "get").unwrap_or_default(), median(&ops, "set").unwrap_or_default());
    eprintln!(
        "full invitation (password): send -> both contacts final in {:.2} s; ops {}; median get {:.1} ms, set {:.1} ms",
        end_to_end.as_secs_f64(),
        ops.len(),
        mg.as_secs_f64() * 1e3,
        ms.as_secs_f64() * 1e3
    );

    // 1b. A PIN invitation (SPAKE2 with Alice's device, issue 16): Bob types
    // a wrong PIN, then the right one; next to it, in the same run, the same
    // invitation with no lock.
    let mut measured = Vec::new();
    // (PIN, a wrong PIN first)
    for (pin, wrong_first) in [(true, true), (true, false), (false, false)] {
        alice.log.drain();
        bob.log.drain();
        let t0 = Instant::now();
        let mut params = SendParams::new(alice.identity.clone());
        if pin {
            params.lock = Lock::Pin(Pin::new("4711").unwrap());
        }
        let (a_flow, ticket) = publish(&mut alice, params).await;
        assert_eq!(ticket.to_bytes().len(), 49, "a PIN ticket is as small as a plain one");
        let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        if pin {
            wait(&mut bob, "PIN", |e| e.flow == b_flow && matches!(e.event, Event::PasswordRequired { pin: true }))
                .await;
            if wrong_first {
                bob.handle.password(b_flow, Password::new("4712").unwrap()).await.unwrap();
                wait(&mut bob, "wrong PIN", |e| e.flow == b_flow && matches!(e.event, Event::WrongPassword)).await;
            }
            bob.handle.password(b_flow, Password::new("4711").unwrap()).await.unwrap();
        }
        let shown =
            wait(&mut bob, "invitation", |e| e.flow == b_flow && matches!(e.event, Event::InvitationReceived(_))).await;
        bob.handle.accept(b_flow).await.unwrap();
        assert_eq!(finished(&mut alice, a_flow).await, Outcome::Contact(bob.identity.public_key()));
        assert_eq!(finished(&mut bob, b_flow).await, Outcome::Contact(alice.identity.public_key()));
        measured.push((
            pin,
            wrong_first,
            shown.round_trips,
            t0.elapsed(),
            alice.log.drain().len() + bob.log.drain().len(),
        ));
    }
    for (pin, wrong_first, rt, took, ops) in &measured {
        eprintln!(
            "{} invitation: profile shown {rt} round trips after the last input (scan or PIN); \
             send -> both contacts final {:.2} s; {ops} DHT operations",
            match (pin, wrong_first) {
                (true, true) => "PIN (SPAKE2), a wrong PIN first,",
                (true, false) => "PIN (SPAKE2)",
                _ => "plain",
            },
            took.as_secs_f64()
        );
    }
    // Bob and Alice now hold each other once per flow above; the PIN and
    // plain contacts replaced the first (one contact per peer identity).
    assert_eq!(driver::contacts(bob.store.as_ref()).await.unwrap().contacts.len(), 1);

    // 1c. A multi-use invitation (issue 18): two uses. Bob accepts, then
    // Carol; both become contacts, the invitation is used up, and a third
    // scan is told "no uses left". Next to it, in the same run, a one-time
    // invitation: accept -> both contacts final, measured side by side
    // (each accept given once the profile has shown and its freshness read
    // is done, as a person deciding gives it).
    let mut side_by_side = Vec::new();
    for uses in [Uses::Once, Uses::AtMost(2), Uses::Once, Uses::AtMost(2)] {
        let mut params = SendParams::new(alice.identity.clone());
        params.uses = uses;
        let (a_flow, ticket) = publish(&mut alice, params).await;
        let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
        wait(&mut bob, "invitation", |e| e.flow == b_flow && matches!(e.event, Event::InvitationReceived(_))).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        alice.log.drain();
        bob.log.drain();
        let t0 = Instant::now();
        bob.handle.accept(b_flow).await.unwrap();
        let sent = wait(&mut bob, "sent", |e| e.flow == b_flow && matches!(e.event, Event::ResponseSent { .. })).await;
        let est =
            wait(&mut alice, "contact", |e| e.flow == a_flow && matches!(e.event, Event::ContactEstablished { .. }))
                .await;
        assert_eq!(finished(&mut bob, b_flow).await, Outcome::Contact(alice.identity.public_key()));
        let took = t0.elapsed();
        let show = |ops: &[contact_invite::dht::OpRecord]| {
            ops.iter().map(|r| format!("{} {:.0}", r.op, r.elapsed.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ")
        };
        let (a_ops, b_ops) = (alice.log.drain(), bob.log.drain());
        let ops =
            format!("{} DHT operations (ms: Bob {}; Alice {})", a_ops.len() + b_ops.len(), show(&b_ops), show(&a_ops));
        side_by_side.push((uses, sent.round_trips, est.round_trips, took, ops));
        if uses == Uses::Once {
            assert_eq!(finished(&mut alice, a_flow).await, Outcome::Contact(bob.identity.public_key()));
            continue;
        }
        let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket.clone())).await.unwrap();
        wait(&mut carol, "invitation", |e| e.flow == c_flow && matches!(e.event, Event::InvitationReceived(_))).await;
        carol.handle.accept(c_flow).await.unwrap();
        assert_eq!(finished(&mut carol, c_flow).await, Outcome::Contact(alice.identity.public_key()));
        let Outcome::MultiUseClosed(v) = finished(&mut alice, a_flow).await else { panic!("not closed") };
        assert_eq!((v.used(), v.closed), (2, Some(UsesClosed::UsedUp)));
        let names: Vec<_> = v.accepted.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["bob", "carol"]);
        let again = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        assert_eq!(finished(&mut bob, again).await, Outcome::Failed(ProtocolError::NoUsesLeft.into()));
    }
    for (uses, sent_rt, est_rt, took, ops) in &side_by_side {
        eprintln!(
            "{} invitation: accept -> both contacts final {:.2} s; round trips: accept -> stored {sent_rt}, \
             seen -> contact {est_rt}; {ops}",
            if *uses == Uses::Once { "one-time" } else { "multi-use (2 uses)" },
            took.as_secs_f64()
        );
    }

    // 2. Carol rejects.
    let params = SendParams::new(alice.identity.clone());
    let (a_flow, ticket) = publish(&mut alice, params).await;
    let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    wait(&mut carol, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    carol.handle.reject(c_flow).await.unwrap();
    assert_eq!(finished(&mut carol, c_flow).await, Outcome::RejectedByUs);
    let peer = Some(carol.identity.public_key());
    assert_eq!(finished(&mut alice, a_flow).await, Outcome::RejectedByPeer { peer });

    // 3. An invitation that expires: Alice's clock moves past the expiry.
    let mut params = SendParams::new(alice.identity.clone());
    params.expires_in_secs = 60;
    let (a_flow, ticket) = publish(&mut alice, params).await;
    alice.clock.advance(Duration::from_secs(120));
    assert_eq!(finished(&mut alice, a_flow).await, Outcome::Failed(ProtocolError::Expired.into()));
    let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    assert_eq!(finished(&mut carol, c_flow).await, Outcome::Failed(ProtocolError::Expired.into()));

    // 4. A revoked invitation.
    let params = SendParams::new(alice.identity.clone());
    let (a_flow, ticket) = publish(&mut alice, params).await;
    alice.handle.cancel(a_flow).await.unwrap();
    assert_eq!(finished(&mut alice, a_flow).await, Outcome::Cancelled);
    let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    assert_eq!(finished(&mut carol, c_flow).await, Outcome::Failed(ProtocolError::Revoked.into()));

    // 5. Alice keeps her flows in Veilid's table store, stops mid-flow, and
    //    resumes from it after Bob answered.
    let tstore = Arc::new(VeilidTableStore::open(net.api(1).unwrap(), "contact_invite_test").await.unwrap());
    let cfg = || DriverConfig::builder().clock(alice.clock.clone()).build();
    let (h, mut ev) = driver::start(net.dht(1).unwrap(), tstore.clone(), cfg()).await.unwrap();
    let flow = h.send_invitation(SendParams::new(alice.identity.clone())).await.unwrap();
    tokio::time::timeout(WAIT, async {
        while let Some(e) = ev.recv().await {
            if matches!(e.event, Event::InvitationPublished { .. }) {
                break;
            }
        }
    })
    .await
    .unwrap();
    let ticket = h.ticket(flow).await.unwrap().unwrap();
    h.shutdown().await;
    assert_eq!(tstore.list(Table::Flows).await.unwrap().len(), 1);
    let c_flow = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    wait(&mut carol, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    carol.handle.accept(c_flow).await.unwrap();
    wait(&mut carol, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let (_h, mut ev) = driver::start(net.dht(1).unwrap(), tstore.clone(), cfg()).await.unwrap();
    let outcome = tokio::time::timeout(WAIT, async {
        while let Some(e) = ev.recv().await {
            if let Event::Finished(o) = e.event {
                return o;
            }
        }
        panic!("driver stopped")
    })
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Contact(carol.identity.public_key()));
    assert_eq!(finished(&mut carol, c_flow).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(driver::contacts(tstore.as_ref()).await.unwrap().contacts.len(), 1);
    assert!(tstore.list(Table::Flows).await.unwrap().is_empty());

    // 6. A request to a known address: Bob opens a request inbox, Carol
    //    sends a stamped request to his address, Bob accepts it.
    let t0 = Instant::now();
    let mut params = RequestInboxParams::new(bob.identity.clone());
    params.pow_bits = 12;
    let inbox = bob.handle.open_request_inbox(params).await.unwrap();
    let address = match wait(&mut bob, "inbox open", |e| matches!(e.event, Event::RequestInboxOpen { .. })).await.event
    {
        Event::RequestInboxOpen { address } => address,
        _ => unreachable!(),
    };
    let opened = t0.elapsed();
    let mut s = SendParams::new(carol.identity.clone());
    s.message = "found you by your address".into();
    let r_flow = carol.handle.send_request(s, address, DEFAULT_MAX_MINT_BITS).await.unwrap();
    let delivered = wait(&mut carol, "delivered", |e| {
        e.flow == r_flow && matches!(e.event, Event::RequestDelivered { .. } | Event::Finished(_))
    })
    .await;
    assert!(matches!(delivered.event, Event::RequestDelivered { .. }), "{:?}", delivered.event);
    let req = match wait(&mut bob, "request", |e| matches!(e.event, Event::RequestReceived(_))).await.event {
        Event::RequestReceived(v) => v,
        _ => unreachable!(),
    };
    assert_eq!(req.requester, carol.identity.public_key());
    assert_eq!(req.message, "found you by your address");
    let shown = t0.elapsed();
    bob.handle.accept_request(inbox, req.id).await.unwrap();
    assert_eq!(finished(&mut carol, r_flow).await, Outcome::Contact(bob.identity.public_key()));
    wait(&mut bob, "bob's contact", |e| matches!(e.event, Event::ContactEstablished { .. })).await;
    eprintln!(
        "request to an address: inbox published in {:.2} s, request shown at {:.2} s, both contacts final at {:.2} s",
        opened.as_secs_f64(),
        shown.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    // 7. Alice links a new device (a driver on node 4 with no identity yet).
    let t0 = Instant::now();
    let l_flow = alice.handle.link_device(SendParams::new(alice.identity.clone())).await.unwrap();
    wait(&mut alice, "link published", |e| e.flow == l_flow && matches!(e.event, Event::InvitationPublished { .. }))
        .await;
    let ticket = alice.handle.ticket(l_flow).await.unwrap().unwrap();
    let dev_store = Arc::new(MemoryStore::new());
    let cfg = DriverConfig::builder().clock(alice.clock.clone()).build();
    let (dh, mut dev_events) = driver::start(net.dht(4).unwrap(), dev_store.clone(), cfg).await.unwrap();
    let d_flow = dh.join_account(LinkParams::new(ticket, "alice's tablet")).await.unwrap();
    let dev_outcome = tokio::time::timeout(WAIT, async {
        while let Some(e) = dev_events.recv().await {
            match e.event {
                Event::InvitationReceived(_) => dh.accept(d_flow).await.unwrap(),
                Event::Finished(o) if e.flow == d_flow => return o,
                _ => {}
            }
        }
        panic!("new device's driver stopped")
    })
    .await
    .unwrap();
    let Outcome::DeviceLinked(tablet) = dev_outcome else { panic!("{dev_outcome:?}") };
    assert_eq!(finished(&mut alice, l_flow).await, Outcome::DeviceLinked(tablet));
    let ids = driver::identities(dev_store.as_ref()).await.unwrap().identities;
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].public_key(), alice.identity.public_key());
    assert_eq!(ids[0].signed().record().device_status(&tablet), Some(DeviceStatus::Current));
    // Bob refreshes Alice's record from the network and trusts the tablet.
    let mut bob_contact = driver::contacts(bob.store.as_ref())
        .await
        .unwrap()
        .contacts
        .into_iter()
        .find(|c| c.peer == alice.identity.public_key())
        .unwrap();
    let rk = alice.identity.record_key().unwrap().clone();
    let bob_dht = net.dht(2).unwrap();
    let _ = bob_dht.open_record(&rk, None).await;
    let fresh = bob_dht.get_value(&rk, 0, true).await.unwrap().unwrap();
    bob_contact.update_peer_identity(&fresh.data).unwrap();
    let sig = ids[0].sign_message(&bob.identity.public_key(), b"from the tablet");
    bob_contact.verify_message(&bob.identity.public_key(), b"from the tablet", &sig).unwrap();
    eprintln!("device link: ticket to both devices final in {:.2} s", t0.elapsed().as_secs_f64());
    dh.shutdown().await;

    for p in [&alice, &bob, &carol] {
        p.handle.shutdown().await;
    }
}
