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

/// Sans-IO: the inviter machine alone, answering its DHT operations from
/// nothing (records created, writes taken, reads empty).
mod machine {
    use contact_invite::crypto::SecretKey;
    use contact_invite::dht::{MemoryNetwork, RecordKey};
    use contact_invite::flow::SendParams;
    use contact_invite::identity::Identity;
    use contact_invite::machine::poll::{POLL_CAP_MS, POLL_FLOOR_MS, POLL_JITTER_PERCENT, base_interval};
    use contact_invite::machine::{DhtOp, DhtOutput, Effect, Input, Inviter, Timer};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    const START_MS: u64 = 1_795_305_600_000;
    const DAY_MS: u64 = 24 * 3600 * 1000;

    fn identity() -> Identity {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let net = MemoryNetwork::new();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let profile = contact_invite::message::Profile::new("alice").unwrap();
        let id = Identity::generate(profile, "device", START_MS / 1000, &mut rng).unwrap();
        rt.block_on(contact_invite::driver::publish_identity(&net.join("alice"), id)).unwrap()
    }

    /// Runs `fx` (and what follows) at `now`; returns every effect seen.
    fn run(inviter: &mut Inviter, fx: Vec<Effect>, now: u64, rng: &mut ChaCha20Rng) -> Vec<Effect> {
        let mut seen = Vec::new();
        let mut queue = vec![fx];
        while let Some(fx) = queue.pop() {
            for e in fx {
                if let Effect::Dht { op, request } = &e {
                    let result = match request {
                        DhtOp::Create { .. } => {
                            let mut opaque = [0u8; 32];
                            rng.fill_bytes(&mut opaque);
                            DhtOutput::Created(RecordKey::new(opaque, Some(SecretKey::generate(&mut *rng))))
                        }
                        DhtOp::Get { .. } => DhtOutput::Value(None),
                        DhtOp::Set { .. } => DhtOutput::Set(None),
                        _ => DhtOutput::Done,
                    };
                    queue.push(inviter.handle(Input::DhtDone { op: *op, result: Ok(result) }, now, rng));
                }
                seen.push(e);
            }
        }
        seen
    }

    /// The poll timer as armed last (a later `SetTimer` replaces an earlier).
    fn poll_at(fx: &[Effect]) -> Option<u64> {
        fx.iter().rev().find_map(|e| match e {
            Effect::SetTimer { timer: Timer::Poll, at } => Some(*at),
            _ => None,
        })
    }

    fn reads(fx: &[Effect]) -> usize {
        fx.iter().filter(|e| matches!(e, Effect::Dht { request: DhtOp::Get { .. }, .. })).count()
    }

    fn waiting(seed: u64) -> (Inviter, ChaCha20Rng, u64) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (mut inviter, fx) = Inviter::new(SendParams::new(identity()), START_MS, &mut rng).unwrap();
        let fx = run(&mut inviter, fx, START_MS, &mut rng);
        assert!(inviter.ticket().is_some(), "published");
        let first = poll_at(&fx).expect("a poll is armed once published");
        (inviter, rng, first)
    }

    #[test]
    fn polls_follow_the_invitations_age_with_bounded_jitter() {
        let (mut inviter, mut rng, first) = waiting(1);
        // A fresh invitation: the floor, plus at most 10 % jitter.
        assert!((START_MS + POLL_FLOOR_MS..=START_MS + POLL_FLOOR_MS * 11 / 10).contains(&first), "{first}");
        // Each poll reads once and re-arms at the age-based interval.
        for age in [first - START_MS, 60_000, 3_600_000, DAY_MS, 3 * DAY_MS] {
            let now = START_MS + age;
            let fx = inviter.handle(Input::TimerFired(Timer::Poll), now, &mut rng);
            let fx = run(&mut inviter, fx, now, &mut rng);
            assert_eq!(reads(&fx), 1, "age {age}");
            let delay = poll_at(&fx).expect("re-armed") - now;
            let base = base_interval(age);
            assert!(delay.abs_diff(base) <= base * POLL_JITTER_PERCENT / 100, "age {age}: {delay}");
            assert!(delay >= POLL_FLOOR_MS);
        }
        assert_eq!(base_interval(3 * DAY_MS), POLL_CAP_MS);
    }

    #[test]
    fn flows_resumed_together_spread_their_first_poll() {
        let now = START_MS + 2 * DAY_MS;
        let firsts: Vec<u64> = (0..20)
            .map(|seed| {
                let (mut inviter, mut rng, _) = waiting(seed);
                let fx = inviter.resume(now, &mut rng);
                let at = poll_at(&fx).expect("poll re-armed on resume");
                assert!((now + POLL_FLOOR_MS..=now + POLL_CAP_MS).contains(&at), "{at}");
                at
            })
            .collect();
        let distinct: std::collections::HashSet<_> = firsts.iter().collect();
        assert_eq!(distinct.len(), firsts.len(), "not in lockstep: {firsts:?}");
    }

    /// A node that keeps reporting its watch dead (a change without its
    /// value, once a second for an hour) gets re-watches and reads backed
    /// off from the poll floor, doubling to the cap: a dozen, not 3,600.
    #[test]
    fn a_watch_reported_dead_again_and_again_costs_backed_off_reads() {
        let (mut inviter, mut rng, _) = waiting(11);
        let record = inviter.ticket().unwrap().record;
        let (mut watches, mut gets) = (0, 0);
        for s in 0..3600u64 {
            let now = START_MS + DAY_MS + s * 1000;
            let input = Input::ValueChanged { record, subkeys: vec![1], value: None };
            let fx = inviter.handle(input, now, &mut rng);
            watches += fx.iter().filter(|e| matches!(e, Effect::Dht { request: DhtOp::Watch { .. }, .. })).count();
            gets += reads(&fx);
            // Complete what was asked, so nothing stays pending.
            run(&mut inviter, fx, now, &mut rng);
        }
        // Gaps 5, 10, 20, … s: about log2(3600 / 5) + 1 in an hour.
        assert!((1..=12).contains(&watches), "{watches} re-watches");
        assert!((1..=12).contains(&gets), "{gets} reads");
    }

    /// Near its expiry an invitation polls on the floor interval again: a
    /// response written in its last hours (watch and nudge lost) is read
    /// before it expires, not turned into "expired".
    #[test]
    fn the_last_poll_lands_before_expiry() {
        let (mut inviter, mut rng, _) = waiting(12);
        let expiry = START_MS + contact_invite::limits::DEFAULT_EXPIRY_SECS * 1000;
        // An old invitation, polled 90 min before it expires: its age-based
        // interval (2 h) would pass its expiry.
        let now = expiry - 90 * 60 * 1000;
        let fx = inviter.handle(Input::TimerFired(Timer::Poll), now, &mut rng);
        let fx = run(&mut inviter, fx, now, &mut rng);
        let at = poll_at(&fx).expect("re-armed");
        assert!(at <= expiry - POLL_FLOOR_MS, "next poll at {} s before expiry", (expiry - at) / 1000);
        // And from there every floor interval until expiry.
        let fx = inviter.handle(Input::TimerFired(Timer::Poll), at, &mut rng);
        let fx = run(&mut inviter, fx, at, &mut rng);
        let next = poll_at(&fx).expect("re-armed");
        assert!(next - at <= POLL_FLOOR_MS, "{}", next - at);
    }

    #[test]
    fn a_change_reported_without_its_value_watches_again_and_reads() {
        // How Veilid reports a watch that died: the subkey, no value.
        let (mut inviter, mut rng, _) = waiting(9);
        let record = inviter.ticket().unwrap().record;
        let now = START_MS + DAY_MS;
        let input = Input::ValueChanged { record, subkeys: vec![1], value: None };
        let fx = inviter.handle(input, now, &mut rng);
        assert!(fx.iter().any(|e| matches!(e, Effect::Dht { request: DhtOp::Watch { .. }, .. })), "{fx:?}");
        assert_eq!(reads(&fx), 1);
    }
}
