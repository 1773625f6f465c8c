//! A sans-IO harness for the class "nothing arriving by nudge or from a DHT
//! node ends, cancels or saves a flow unless it verifies under a key the flow
//! already trusts" (INT-NUDGE-1). It runs an inviter and an invitee machine
//! against an in-memory store it controls, up to the point where the invitee
//! waits for the final status and the inviter for the response, then lets a
//! caller feed either machine hostile values by every channel (nudge, watch
//! notification, answer to its own poll) and check what they did.
//!
//! Shared by `tests/attack_integrity.rs` and the fuzz targets
//! (`fuzz/fuzz_targets/common.rs` includes it by path): public API only.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};

use contact_invite::crypto::SecretKey;
use contact_invite::dht::{Nudge, RecordKey, ValueData};
use contact_invite::encoding::Ticket;
use contact_invite::flow::{Event, Outcome, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::machine::{Command, DhtOp, DhtOutput, Effect, Input, Invitee, Inviter, Timer};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// 2026-11-22 00:00 UTC, in ms.
pub const START_MS: u64 = 1_795_305_600_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Inviter,
    Invitee,
}

/// How a hostile value reaches a machine.
#[derive(Clone, Copy, Debug)]
pub enum Channel {
    /// Straight to its reply address.
    Nudge,
    /// A watch notification carrying the value.
    Watch,
    /// A DHT node's answer to the machine's own poll.
    Poll,
}

/// Two machines and the store they share.
#[derive(Clone)]
pub struct Pair {
    pub inviter: Inviter,
    pub invitee: Invitee,
    pub ticket: Ticket,
    store: HashMap<[u8; 32], HashMap<u32, Vec<u8>>>,
    writer: contact_invite::crypto::PublicKey,
    rng: ChaCha20Rng,
    pub now: u64,
    /// When set, the next `Get` of this side answers with this value instead
    /// of the store's (a hostile DHT node).
    forged_get: Option<(Side, Vec<u8>)>,
    /// When set, every write of this side to this inbox subkey is answered
    /// "the network holds a newer value" (a hostile or confused node).
    pub newer_on_set: Option<(Side, u32)>,
    /// Everything each side did since the last `take_effects`.
    inviter_effects: Vec<Effect>,
    invitee_effects: Vec<Effect>,
}

/// Publishes an identity's record into the harness store (instead of a DHT).
fn publish(store: &mut HashMap<[u8; 32], HashMap<u32, Vec<u8>>>, id: &Identity) {
    let key = id.record_key().expect("published identity");
    store.entry(*key.opaque()).or_default().insert(0, id.signed().to_bytes().to_vec());
}

impl Pair {
    /// Runs `alice`'s invitation and `bob`'s accept up to the point where
    /// Bob's response is stored and both wait: Alice for the response (she
    /// has not looked yet), Bob for the final status.
    pub fn awaiting(alice: &Identity, bob: &Identity, seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut store = HashMap::new();
        publish(&mut store, alice);
        publish(&mut store, bob);
        let now = START_MS;
        let (inviter, a_fx) = Inviter::new(SendParams::new(alice.clone()), now, &mut rng).expect("send");
        // A placeholder invitee until the ticket exists.
        let mut pair = Self {
            inviter,
            invitee: dummy_invitee(bob, &mut rng),
            ticket: dummy_ticket(),
            store,
            writer: alice.public_key(),
            rng,
            now,
            forged_get: None,
            newer_on_set: None,
            inviter_effects: Vec::new(),
            invitee_effects: Vec::new(),
        };
        pair.run(Side::Inviter, a_fx);
        pair.ticket = pair.inviter.ticket().expect("published");
        let (invitee, b_fx) =
            Invitee::new(ReceiveParams::new(bob.clone(), pair.ticket.clone()), now, &mut pair.rng).expect("receive");
        pair.invitee = invitee;
        pair.run(Side::Invitee, b_fx);
        pair.feed(Side::Invitee, Input::Command(Command::Accept));
        assert!(
            pair.invitee_effects.iter().any(|e| matches!(e, Effect::Emit(Event::ResponseSent { accepted: true }))),
            "the accept was stored"
        );
        assert!(!pair.inviter.is_finished() && !pair.invitee.is_finished());
        pair.take_effects();
        pair
    }

    /// The inbox record.
    pub fn inbox(&self) -> [u8; 32] {
        self.ticket.record
    }

    /// Everything the store holds in the inbox record (subkey → value).
    pub fn inbox_values(&self) -> HashMap<u32, Vec<u8>> {
        self.store.get(&self.inbox()).cloned().unwrap_or_default()
    }

    /// Writes `values` into the inbox record, as their writers would.
    pub fn put_inbox_values(&mut self, values: HashMap<u32, Vec<u8>>) {
        let record = self.inbox();
        self.store.entry(record).or_default().extend(values);
    }

    /// What the store holds in the inbox's `subkey`.
    pub fn stored(&self, subkey: u32) -> Option<Vec<u8>> {
        self.store.get(&self.inbox()).and_then(|r| r.get(&subkey)).cloned()
    }

    /// Feeds `value` to `side` as if it arrived on the inbox's `subkey` by
    /// `channel`.
    pub fn hostile(&mut self, side: Side, channel: Channel, subkey: u32, value: Vec<u8>) {
        let record = self.inbox();
        match channel {
            Channel::Nudge => self.feed(side, Input::Nudge(Nudge { record, subkey, value })),
            Channel::Watch => {
                let value = Some(ValueData { seq: 99, data: value, writer: self.writer });
                self.feed(side, Input::ValueChanged { record, subkeys: vec![subkey], value });
            }
            Channel::Poll => {
                self.forged_get = Some((side, value));
                self.feed(side, Input::TimerFired(Timer::Poll));
                self.forged_get = None;
            }
        }
    }

    /// Lets `side` poll the store (genuine values).
    pub fn poll(&mut self, side: Side) {
        self.feed(side, Input::TimerFired(Timer::Poll));
    }

    /// Feeds an input and runs every effect it causes (DHT operations are
    /// answered at once from the store; timers and nudges are not delivered).
    pub fn feed(&mut self, side: Side, input: Input) {
        let fx = match side {
            Side::Inviter => self.inviter.handle(input, self.now, &mut self.rng),
            Side::Invitee => self.invitee.handle(input, self.now, &mut self.rng),
        };
        self.run(side, fx);
    }

    fn run(&mut self, side: Side, fx: Vec<Effect>) {
        let mut queue: VecDeque<(Side, Vec<Effect>)> = VecDeque::from([(side, fx)]);
        let mut steps = 0;
        while let Some((side, fx)) = queue.pop_front() {
            steps += 1;
            assert!(steps < 10_000, "runaway: a machine keeps issuing operations");
            for e in fx {
                if let Effect::Dht { op, request } = &e
                    && *op != u64::MAX
                {
                    let result = self.execute(side, request.clone());
                    let input = Input::DhtDone { op: *op, result: Ok(result) };
                    let more = match side {
                        Side::Inviter => self.inviter.handle(input, self.now, &mut self.rng),
                        Side::Invitee => self.invitee.handle(input, self.now, &mut self.rng),
                    };
                    queue.push_back((side, more));
                }
                match side {
                    Side::Inviter => self.inviter_effects.push(e),
                    Side::Invitee => self.invitee_effects.push(e),
                }
            }
        }
    }

    fn execute(&mut self, side: Side, op: DhtOp) -> DhtOutput {
        match op {
            DhtOp::Create { .. } => {
                let mut opaque = [0u8; 32];
                self.rng.fill_bytes(&mut opaque);
                let key = RecordKey::new(opaque, Some(SecretKey::generate(&mut self.rng)));
                self.store.entry(opaque).or_default();
                DhtOutput::Created(key)
            }
            DhtOp::Get { key, subkey } => {
                if let Some((s, v)) = &self.forged_get
                    && *s == side
                {
                    return DhtOutput::Value(Some(ValueData { seq: 99, data: v.clone(), writer: self.writer }));
                }
                let data = self.store.get(key.opaque()).and_then(|r| r.get(&subkey)).cloned();
                DhtOutput::Value(data.map(|data| ValueData { seq: 1, data, writer: self.writer }))
            }
            DhtOp::Set { key, subkey, data, .. } => {
                if self.newer_on_set == Some((side, subkey)) && key.opaque() == &self.ticket.record {
                    let newer = ValueData { seq: 1000, data: b"newer".to_vec(), writer: self.writer };
                    return DhtOutput::Set(Some(newer));
                }
                self.store.entry(*key.opaque()).or_default().insert(subkey, data);
                DhtOutput::Set(None)
            }
            DhtOp::Open { .. } | DhtOp::Watch { .. } | DhtOp::Forget { .. } => DhtOutput::Done,
        }
    }

    /// Takes what each side did since the last call: (inviter, invitee).
    pub fn take_effects(&mut self) -> (Vec<Effect>, Vec<Effect>) {
        (std::mem::take(&mut self.inviter_effects), std::mem::take(&mut self.invitee_effects))
    }

    /// The outcome `side` finished with, if it did.
    pub fn outcome(effects: &[Effect]) -> Option<Outcome> {
        effects.iter().find_map(|e| match e {
            Effect::Finished(o) => Some(o.clone()),
            _ => None,
        })
    }
}

/// The invariant: nothing in `effects` ends, cancels or saves anything.
pub fn assert_unmoved(side: Side, effects: &[Effect], what: &str) {
    for e in effects {
        let moved = matches!(
            e,
            Effect::Finished(_)
                | Effect::SaveContact(_)
                | Effect::SaveIdentity(_)
                | Effect::Emit(Event::Finished(_) | Event::ContactEstablished { .. })
        );
        assert!(!moved, "{side:?} moved on an unverified value ({what}): {e:?}");
    }
}

fn dummy_ticket() -> Ticket {
    Ticket {
        kind: contact_invite::message::InvitationKind::Contact,
        record: [0; 32],
        secret: contact_invite::encoding::TicketSecret::Plain(
            contact_invite::crypto::InviteSecret::from_slice(&[1; 16]).unwrap(),
        ),
    }
}

fn dummy_invitee(bob: &Identity, rng: &mut ChaCha20Rng) -> Invitee {
    Invitee::new(ReceiveParams::new(bob.clone(), dummy_ticket()), START_MS, rng).expect("placeholder").0
}
