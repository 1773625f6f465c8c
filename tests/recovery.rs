//! Crash and restart at every effect boundary on both sides (exhaustively),
//! and seeded fault runs. Every run must end with exactly one contact on each
//! side, or a clean, reported failure — never a lost or duplicated contact.

mod common;

use std::time::Duration;

use common::*;
use contact_invite::crypto::{Password, Pin};
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::error::Error;
use contact_invite::flow::{Event, FlowId, Lock, Outcome, ReceiveParams, SendParams};

#[derive(Debug)]
struct Run {
    inviter: Outcome,
    invitee: Outcome,
    crashes: u32,
    inviter_contacts: usize,
    invitee_contacts: usize,
}

/// Drives a full invitation, restarting any party whose driver stopped.
async fn scenario(
    net: MemoryNetwork,
    crash_inviter: Option<u64>,
    crash_invitee: Option<u64>,
    faults: Option<FaultConfig>,
) -> Run {
    scenario_with(net, crash_inviter, crash_invitee, faults, None).await
}

/// [`scenario`], for a PIN invitation when `pin` is set (PIN-7): the
/// invitee first enters a wrong PIN once, then the right one each time it
/// is asked (a restarted invitee is asked again: the PIN is never stored).
async fn scenario_with(
    net: MemoryNetwork,
    crash_inviter: Option<u64>,
    crash_invitee: Option<u64>,
    faults: Option<FaultConfig>,
    pin: Option<&'static str>,
) -> Run {
    let mut alice = party_with(&net, "alice", crash_inviter).await;
    let mut bob = party_with(&net, "bob", crash_invitee).await;
    // Identities are published first; the flow itself runs under the faults.
    if let Some(f) = faults {
        net.set_faults(f);
    }
    let mut crashes = 0;
    let mut a_flow: Option<FlowId> = None;
    let mut b_flow: Option<FlowId> = None;
    let mut a_out: Option<Outcome> = None;
    let mut b_out: Option<Outcome> = None;
    let mut ticket = None;
    let mut wrong_sent = false;
    for _step in 0..20_000 {
        if a_out.is_some() && b_out.is_some() {
            break;
        }
        // (Re)start whatever is missing.
        if a_flow.is_none() {
            let mut params = SendParams::new(alice.identity.clone());
            if let Some(p) = pin {
                params.lock = Lock::Pin(Pin::new(p).unwrap());
            }
            match alice.handle.send_invitation(params).await {
                Ok(f) => a_flow = Some(f),
                Err(_) => {
                    crashes += 1;
                    alice.restart(&net).await;
                    continue;
                }
            }
        }
        if let (Some(t), None, None) = (&ticket, b_flow, &b_out) {
            match bob.handle.receive(ReceiveParams::new(bob.identity.clone(), Clone::clone(t))).await {
                Ok(f) => b_flow = Some(f),
                Err(_) => {
                    crashes += 1;
                    bob.restart(&net).await;
                    continue;
                }
            }
        }
        tokio::select! {
            e = alice.events.recv() => match e {
                None => {
                    // The flow id was only handed out once persisted, so the
                    // restarted driver resumes it.
                    crashes += 1;
                    alice.restart(&net).await;
                }
                Some(e) => match e.event {
                    Event::InvitationPublished { .. } if Some(e.flow) == a_flow
                        && ticket.is_none() => {
                            ticket = alice.handle.ticket(e.flow).await.ok().flatten();
                        }
                    Event::Finished(o) if Some(e.flow) == a_flow => a_out = Some(o),
                    _ => {}
                },
            },
            e = bob.events.recv() => match e {
                None => {
                    crashes += 1;
                    bob.restart(&net).await;
                }
                Some(e) => match e.event {
                    Event::InvitationReceived(_) if Some(e.flow) == b_flow
                        && bob.handle.accept(e.flow).await.is_err() => {
                            crashes += 1;
                            bob.restart(&net).await;
                        }
                    Event::PasswordRequired { pin: true } if Some(e.flow) == b_flow => {
                        let entered = if wrong_sent { pin.unwrap_or_default() } else { "0000" };
                        wrong_sent = true;
                        match bob.handle.password(e.flow, Password::new(entered).unwrap()).await {
                            // A PIN already in flight (asked again while one is checked).
                            Ok(()) | Err(Error::InvalidState { .. }) => {}
                            Err(_) => {
                                crashes += 1;
                                bob.restart(&net).await;
                            }
                        }
                    }
                    Event::Finished(o) if Some(e.flow) == b_flow => b_out = Some(o),
                    _ => {}
                },
            },
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
    Run {
        inviter: a_out.expect("inviter finished within the step bound"),
        invitee: b_out.expect("invitee finished within the step bound"),
        crashes,
        inviter_contacts: alice.contacts().await.len(),
        invitee_contacts: bob.contacts().await.len(),
    }
}

fn assert_one_contact_each(r: &Run, label: &str) {
    assert!(matches!(r.inviter, Outcome::Contact(_)), "{label}: inviter {:?}", r.inviter);
    assert!(matches!(r.invitee, Outcome::Contact(_)), "{label}: invitee {:?}", r.invitee);
    assert_eq!((r.inviter_contacts, r.invitee_contacts), (1, 1), "{label}: exactly one contact each side");
}

#[tokio::test(start_paused = true)]
async fn crash_at_every_effect_boundary_of_the_inviter() {
    let mut k = 0;
    loop {
        let r = scenario(MemoryNetwork::new(), Some(k), None, None).await;
        assert_one_contact_each(&r, &format!("inviter crash after {k} effects"));
        if r.crashes == 0 {
            break; // the budget outlasted the whole flow: every boundary covered
        }
        k += 1;
    }
    eprintln!("inviter: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 10, "the inviter's flow has more than 10 effects ({k})");
}

/// PIN-7: a PIN flow (a wrong PIN, then the right one) survives a crash of
/// the inviter after every effect: attempts counted and replies written are
/// persisted first, so a resumed inviter neither loses nor double-counts an
/// attempt, and the contact is made once on each side.
#[tokio::test(start_paused = true)]
async fn pin_7_crash_at_every_effect_boundary_of_the_inviter() {
    let mut k = 0;
    loop {
        let r = scenario_with(MemoryNetwork::new(), Some(k), None, None, Some("4711")).await;
        assert_one_contact_each(&r, &format!("PIN inviter crash after {k} effects"));
        if r.crashes == 0 {
            break;
        }
        k += 1;
    }
    eprintln!("PIN inviter: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 10, "the PIN inviter's flow has more than 10 effects ({k})");
}

/// PIN-7: the same for the invitee: the PIN is never stored, so a resumed
/// invitee asks for it again, and given the same PIN continues the attempt
/// in flight (its SPAKE2 message is recomputed from a persisted seed).
#[tokio::test(start_paused = true)]
async fn pin_7_crash_at_every_effect_boundary_of_the_invitee() {
    let mut k = 0;
    loop {
        let r = scenario_with(MemoryNetwork::new(), None, Some(k), None, Some("4711")).await;
        assert_one_contact_each(&r, &format!("PIN invitee crash after {k} effects"));
        if r.crashes == 0 {
            break;
        }
        k += 1;
    }
    eprintln!("PIN invitee: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 10, "the PIN invitee's flow has more than 10 effects ({k})");
}

#[tokio::test(start_paused = true)]
async fn crash_at_every_effect_boundary_of_the_invitee() {
    let mut k = 0;
    loop {
        let r = scenario(MemoryNetwork::new(), None, Some(k), None).await;
        assert_one_contact_each(&r, &format!("invitee crash after {k} effects"));
        if r.crashes == 0 {
            break;
        }
        k += 1;
    }
    eprintln!("invitee: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 10, "the invitee's flow has more than 10 effects ({k})");
}

#[tokio::test(start_paused = true)]
async fn seeded_fault_runs_complete_or_fail_cleanly() {
    let mut completed = 0;
    for seed in 0..24u64 {
        let rate = [0.1, 0.2, 0.3][seed as usize % 3];
        let faults = FaultConfig {
            drop: rate,
            lost_ack: rate / 3.0,
            delay: rate,
            max_delay: Duration::from_secs(3),
            duplicate: rate,
            stale_read: rate,
            conflict: rate,
            lose_notification: rate,
            lose_nudge: rate,
            open_not_found: rate,
        };
        let net = MemoryNetwork::with_faults(seed, FaultConfig::default());
        let r = scenario(net, None, None, Some(faults)).await;
        // Never a contact on one side only, never more than one.
        assert!(r.inviter_contacts <= 1 && r.invitee_contacts <= 1, "seed {seed}: {r:?}");
        match (&r.inviter, &r.invitee) {
            (Outcome::Contact(_), Outcome::Contact(_)) => {
                assert_eq!((r.inviter_contacts, r.invitee_contacts), (1, 1), "seed {seed}");
                completed += 1;
            }
            (Outcome::Failed(_), _) | (_, Outcome::Failed(_)) => {}
            other => panic!("seed {seed}: unexpected outcomes {other:?}"),
        }
    }
    eprintln!("faulty runs completed with a contact on both sides: {completed}/24");
    assert!(completed >= 20, "most faulty runs still complete ({completed}/24)");
}

/// A device link with crashes: the old device after `crash_old` effects, the
/// new one after `crash_new`. Returns both outcomes, the crash count and how
/// many identities each store holds (the new device's must be exactly one,
/// listing it; the old one's record must list it once).
async fn link_scenario(crash_old: Option<u64>, crash_new: Option<u64>) -> (Outcome, Outcome, u32) {
    use contact_invite::driver;
    use contact_invite::flow::LinkParams;
    use contact_invite::store::MemoryStore;
    use std::sync::Arc;
    let net = MemoryNetwork::new();
    let mut alice = party_with(&net, "alice", crash_old).await;
    let store = Arc::new(MemoryStore::new());
    let (mut dh, mut de) = start(&net, "laptop", &store, alice.clock, crash_new).await;
    let mut crashes = 0;
    let (mut a_flow, mut d_flow, mut a_out, mut d_out, mut ticket) = (None, None, None, None, None);
    for _ in 0..20_000 {
        if a_out.is_some() && d_out.is_some() {
            break;
        }
        if a_flow.is_none() {
            match alice.handle.link_device(SendParams::new(alice.identity.clone())).await {
                Ok(f) => a_flow = Some(f),
                Err(_) => {
                    crashes += 1;
                    alice.restart(&net).await;
                    continue;
                }
            }
        }
        if let (Some(t), None, None) = (&ticket, d_flow, &d_out) {
            match dh.join_account(LinkParams::new(Clone::clone(t), "laptop")).await {
                Ok(f) => d_flow = Some(f),
                Err(_) => {
                    crashes += 1;
                    (dh, de) = start(&net, "laptop", &store, alice.clock, None).await;
                    continue;
                }
            }
        }
        tokio::select! {
            e = alice.events.recv() => match e {
                None => { crashes += 1; alice.restart(&net).await; }
                Some(e) => match e.event {
                    Event::InvitationPublished { .. } if Some(e.flow) == a_flow && ticket.is_none() => {
                        ticket = alice.handle.ticket(e.flow).await.ok().flatten();
                    }
                    Event::Finished(o) if Some(e.flow) == a_flow => a_out = Some(o),
                    _ => {}
                },
            },
            e = de.recv() => match e {
                None => { crashes += 1; (dh, de) = start(&net, "laptop", &store, alice.clock, None).await; }
                Some(e) => match e.event {
                    Event::InvitationReceived(_) if Some(e.flow) == d_flow && dh.accept(e.flow).await.is_err() => {
                        crashes += 1;
                        (dh, de) = start(&net, "laptop", &store, alice.clock, None).await;
                    }
                    Event::Finished(o) if Some(e.flow) == d_flow => d_out = Some(o),
                    _ => {}
                },
            },
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
    let (a_out, d_out) = (a_out.expect("old device finished"), d_out.expect("new device finished"));
    if let Outcome::DeviceLinked(dev) = d_out {
        let ids = driver::identities(store.as_ref()).await.unwrap().identities;
        assert_eq!(ids.len(), 1, "the new device saved its identity exactly once");
        assert_eq!(ids[0].device_public(), dev);
        let old = driver::identities(alice.store.as_ref()).await.unwrap().identities;
        assert_eq!(old.len(), 1);
        let listed = old[0].signed().record().devices.iter().filter(|d| d.device_key == dev).count();
        assert_eq!(listed, 1, "the old device's record lists the new device once");
    }
    (a_out, d_out, crashes)
}

#[tokio::test(start_paused = true)]
async fn device_link_survives_a_crash_at_every_effect_boundary_on_both_devices() {
    for side in ["old", "new"] {
        let mut k = 0;
        loop {
            let (crash_old, crash_new) = if side == "old" { (Some(k), None) } else { (None, Some(k)) };
            let (a, d, crashes) = link_scenario(crash_old, crash_new).await;
            assert!(matches!(a, Outcome::DeviceLinked(_)), "{side} crash after {k}: old device {a:?}");
            assert!(matches!(d, Outcome::DeviceLinked(_)), "{side} crash after {k}: new device {d:?}");
            assert_eq!(a, d, "both sides name the same new device");
            if crashes == 0 {
                break;
            }
            k += 1;
        }
        eprintln!("device link, {side} device: crashed and resumed at each of {k} effect boundaries");
        assert!(k > 8, "{side}: more than 8 effects ({k})");
    }
}

/// A request to a known address, accepted, with the recipient (who runs the
/// request inbox and the spawned invitee flow) or the requester crashing
/// after `crash_*` effects. Returns the requester's outcome, the contact
/// counts and the crash count.
async fn request_scenario(crash_requester: Option<u64>, crash_recipient: Option<u64>) -> (Outcome, usize, usize, u32) {
    use contact_invite::crypto::pow::DEFAULT_MAX_MINT_BITS;
    use contact_invite::flow::RequestInboxParams;
    let net = MemoryNetwork::new();
    let mut alice = party_with(&net, "alice", crash_requester).await;
    let mut bob = party_with(&net, "bob", crash_recipient).await;
    let mut crashes = 0;
    let (mut inbox, mut address, mut a_flow, mut a_out) = (None, None, None, None);
    for _ in 0..20_000 {
        if a_out.is_some() && bob.contacts().await.len() == 1 {
            break;
        }
        if inbox.is_none() {
            let mut p = RequestInboxParams::new(bob.identity.clone());
            p.pow_bits = 8;
            match bob.handle.open_request_inbox(p).await {
                Ok(f) => inbox = Some(f),
                Err(_) => {
                    crashes += 1;
                    bob.restart(&net).await;
                    continue;
                }
            }
        }
        if let (Some(to), None) = (&address, a_flow) {
            match alice
                .handle
                .send_request(SendParams::new(alice.identity.clone()), Clone::clone(to), DEFAULT_MAX_MINT_BITS)
                .await
            {
                Ok(f) => a_flow = Some(f),
                Err(_) => {
                    crashes += 1;
                    alice.restart(&net).await;
                    continue;
                }
            }
        }
        tokio::select! {
            e = alice.events.recv() => match e {
                None => { crashes += 1; alice.restart(&net).await; }
                Some(e) => if let Event::Finished(o) = e.event && Some(e.flow) == a_flow { a_out = Some(o) },
            },
            e = bob.events.recv() => match e {
                None => { crashes += 1; bob.restart(&net).await; }
                Some(e) => match e.event {
                    Event::RequestInboxOpen { address: a } if address.is_none() => address = Some(a),
                    Event::RequestReceived(v) if bob.handle.accept_request(e.flow, v.id).await.is_err() => {
                        crashes += 1;
                        bob.restart(&net).await;
                    }
                    _ => {}
                },
            },
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
    (a_out.expect("requester finished"), alice.contacts().await.len(), bob.contacts().await.len(), crashes)
}

#[tokio::test(start_paused = true)]
async fn request_to_an_address_survives_a_crash_at_every_effect_boundary() {
    for side in ["requester", "recipient"] {
        let mut k = 0;
        loop {
            let (cr, cb) = if side == "requester" { (Some(k), None) } else { (None, Some(k)) };
            let (out, ac, bc, crashes) = request_scenario(cr, cb).await;
            assert!(matches!(out, Outcome::Contact(_)), "{side} crash after {k}: {out:?}");
            assert_eq!((ac, bc), (1, 1), "{side} crash after {k}: exactly one contact each side");
            if crashes == 0 {
                break;
            }
            k += 1;
        }
        eprintln!("request, {side}: crashed and resumed at each of {k} effect boundaries");
        assert!(k > 8, "{side}: more than 8 effects ({k})");
    }
}

/// MU-7: a multi-use invitation (2 uses) accepted by 3 parties at once,
/// with party `crash.0` (0: the inviter) crashing after `crash.1` effects of
/// its driver and restarting. Returns every flow's outcome (inviter first),
/// every party's contact count, and the crashes.
async fn multi_use_scenario(crash: Option<(usize, u64)>) -> (Vec<Outcome>, Vec<usize>, u32) {
    use contact_invite::flow::Uses;
    use tokio::sync::mpsc::error::TryRecvError;
    let net = MemoryNetwork::new();
    let names = ["alice", "bob", "carol", "dave"];
    let mut parties = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = crash.and_then(|(who, k)| (who == i).then_some(k));
        parties.push(party_with(&net, n, c).await);
    }
    let mut flows: Vec<Option<FlowId>> = vec![None; names.len()];
    let mut outcomes: Vec<Option<Outcome>> = vec![None; names.len()];
    let mut ticket = None;
    let mut crashes = 0;
    for _step in 0..20_000 {
        if outcomes.iter().all(Option::is_some) {
            break;
        }
        for i in 0..parties.len() {
            let p = &mut parties[i];
            if flows[i].is_none() && outcomes[i].is_none() {
                let started = if i == 0 {
                    let mut params = SendParams::new(p.identity.clone());
                    params.uses = Uses::AtMost(2);
                    Some(p.handle.send_invitation(params).await)
                } else {
                    match &ticket {
                        Some(t) => {
                            Some(p.handle.receive(ReceiveParams::new(p.identity.clone(), Clone::clone(t))).await)
                        }
                        None => None,
                    }
                };
                match started {
                    Some(Ok(f)) => flows[i] = Some(f),
                    Some(Err(_)) => {
                        crashes += 1;
                        p.restart(&net).await;
                        continue;
                    }
                    None => {}
                }
            }
            loop {
                match p.events.try_recv() {
                    Ok(e) if Some(e.flow) == flows[i] => match e.event {
                        Event::InvitationPublished { .. } if ticket.is_none() => {
                            ticket = p.handle.ticket(e.flow).await.ok().flatten();
                        }
                        Event::InvitationReceived(_) if p.handle.accept(e.flow).await.is_err() => {
                            crashes += 1;
                            p.restart(&net).await;
                            break;
                        }
                        Event::Finished(o) => outcomes[i] = Some(o),
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        crashes += 1;
                        p.restart(&net).await;
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut contacts = Vec::new();
    for p in &parties {
        contacts.push(p.contacts().await.len());
    }
    let outcomes = outcomes.into_iter().map(|o| o.expect("every flow finished within the step bound")).collect();
    (outcomes, contacts, crashes)
}

fn assert_two_uses(outcomes: &[Outcome], contacts: &[usize], label: &str) {
    let Outcome::MultiUseClosed(v) = &outcomes[0] else { panic!("{label}: inviter {:?}", outcomes[0]) };
    assert_eq!(v.used(), 2, "{label}: two uses taken");
    assert_eq!(contacts[0], 2, "{label}: the inviter has exactly two contacts");
    let made = outcomes[1..].iter().filter(|o| o.is_contact()).count();
    let turned_away = outcomes[1..]
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(Error::Protocol(contact_invite::error::ProtocolError::NoUsesLeft))))
        .count();
    assert_eq!((made, turned_away), (2, 1), "{label}: {:?}", &outcomes[1..]);
    for (o, c) in outcomes[1..].iter().zip(&contacts[1..]) {
        assert_eq!(*c, usize::from(o.is_contact()), "{label}: an acceptor holds a contact exactly when it made one");
    }
}

#[tokio::test(start_paused = true)]
async fn mu_7_multi_use_survives_a_crash_of_the_inviter_at_every_effect_boundary() {
    let mut k = 0;
    loop {
        let (o, c, crashes) = multi_use_scenario(Some((0, k))).await;
        assert_two_uses(&o, &c, &format!("inviter crash after {k} effects"));
        if crashes == 0 {
            break;
        }
        k += 1;
    }
    eprintln!("multi-use inviter: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 20, "the multi-use inviter has more than 20 effects ({k})");
}

#[tokio::test(start_paused = true)]
async fn mu_7_multi_use_survives_a_crash_of_an_acceptor_at_every_effect_boundary() {
    let mut k = 0;
    loop {
        let (o, c, crashes) = multi_use_scenario(Some((1, k))).await;
        assert_two_uses(&o, &c, &format!("acceptor crash after {k} effects"));
        if crashes == 0 {
            break;
        }
        k += 1;
    }
    eprintln!("multi-use acceptor: crashed and resumed at each of {k} effect boundaries");
    assert!(k > 10, "the acceptor has more than 10 effects ({k})");
}
