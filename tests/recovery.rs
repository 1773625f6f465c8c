//! Crash and restart at every effect boundary on both sides (exhaustively),
//! and seeded fault runs. Every run must end with exactly one contact on each
//! side, or a clean, reported failure — never a lost or duplicated contact.

mod common;

use std::time::Duration;

use common::*;
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::machine::{Event, FlowId, Outcome, ReceiveParams, SendParams};

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
    for _step in 0..20_000 {
        if a_out.is_some() && b_out.is_some() {
            break;
        }
        // (Re)start whatever is missing.
        if a_flow.is_none() {
            match alice.handle.send_invitation(SendParams::new(alice.identity.clone())).await {
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
