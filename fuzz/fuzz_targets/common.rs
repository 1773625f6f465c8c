// Shared by the machine targets: one published identity, and arbitrary
// inputs mapped onto the machines' input type.
use std::sync::OnceLock;

use contact_invite::dht::{DhtErrorKind, Nudge, RecordKey, ValueData};
use contact_invite::identity::Identity;
use contact_invite::machine::{Command, DhtFailure, DhtOutput, Effect, Flow, Input, Rng, Timer};
use contact_invite::message::Profile;
use libfuzzer_sys::arbitrary::{self, Arbitrary};

pub const NOW_MS: u64 = 1_795_305_600_000;

// The sans-IO pair harness of the main crate's tests (public API only).
#[allow(unreachable_pub)]
#[path = "../../tests/common/machines.rs"]
pub mod machines;

pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let net = contact_invite::dht::MemoryNetwork::new();
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
        let id =
            Identity::generate(Profile::new("fuzz").expect("profile"), "d", NOW_MS / 1000, &mut rng).expect("identity");
        rt.block_on(contact_invite::driver::publish_identity(&net.join("x"), id)).expect("publish")
    })
}

#[derive(Arbitrary, Debug)]
pub enum FuzzInput {
    Accept,
    Reject,
    Cancel,
    Password(String),
    Timer(u8, u64),
    Change { subkey: u8, data: Option<Vec<u8>> },
    Nudge { subkey: u8, data: Vec<u8> },
    ReplyAddress(Option<Vec<u8>>),
    Done { op: u8, result: FuzzResult },
    Advance(u32),
}

#[derive(Arbitrary, Debug)]
pub enum FuzzResult {
    Created([u8; 32], Option<[u8; 32]>),
    Done,
    Value(Option<(u32, Vec<u8>)>),
    Set(Option<(u32, Vec<u8>)>),
    Failed(u8),
}

pub fn value(v: Option<(u32, Vec<u8>)>) -> Option<ValueData> {
    v.map(|(seq, data)| ValueData { seq, data, writer: identity().public_key() })
}

pub fn to_input(i: FuzzInput, record: [u8; 32]) -> Option<Input> {
    Some(match i {
        FuzzInput::Accept => Input::Command(Command::Accept),
        FuzzInput::Reject => Input::Command(Command::Reject),
        FuzzInput::Cancel => Input::Command(Command::Cancel),
        FuzzInput::Password(p) => Input::Command(Command::Password(contact_invite::crypto::Password::new(p).ok()?)),
        FuzzInput::Timer(k, op) => Input::TimerFired(match k % 3 {
            0 => Timer::Poll,
            1 => Timer::Expiry,
            _ => Timer::Retry(op % 16),
        }),
        FuzzInput::Change { subkey, data } => Input::ValueChanged {
            record,
            subkeys: vec![u32::from(subkey % 3)],
            value: data.map(|d| ValueData { seq: 1, data: d, writer: identity().public_key() }),
        },
        FuzzInput::Nudge { subkey, data } => Input::Nudge(Nudge { record, subkey: u32::from(subkey % 3), value: data }),
        FuzzInput::ReplyAddress(a) => Input::ReplyAddress(a),
        FuzzInput::Done { op, result } => Input::DhtDone {
            op: u64::from(op % 16),
            result: match result {
                FuzzResult::Created(k, s) => Ok(DhtOutput::Created(RecordKey::new(
                    k,
                    s.map(|s| contact_invite::crypto::SecretKey::from_slice(&s).expect("32 bytes")),
                ))),
                FuzzResult::Done => Ok(DhtOutput::Done),
                FuzzResult::Value(v) => Ok(DhtOutput::Value(value(v))),
                FuzzResult::Set(v) => Ok(DhtOutput::Set(value(v))),
                FuzzResult::Failed(k) => Err(DhtFailure {
                    kind: [
                        DhtErrorKind::Unavailable,
                        DhtErrorKind::NotFound,
                        DhtErrorKind::BadRecordSecret,
                        DhtErrorKind::SchemaViolation,
                    ][usize::from(k % 4)],
                    message: String::new(),
                }),
            },
        },
        FuzzInput::Advance(_) => return None,
    })
}

/// Invariant after every step: nothing the fuzzer can make carries a valid
/// signature from another identity, so no contact may ever be saved.
pub fn check(effects: &[Effect]) {
    for e in effects {
        assert!(!matches!(e, Effect::SaveContact(_)), "a contact without a verified peer");
    }
}

/// Feeds up to 64 inputs to a machine (advancing the clock on `Advance`),
/// checking the invariant after every step, then resumes it.
pub fn drive(m: &mut Flow, inputs: Vec<FuzzInput>, record: impl Fn(&Flow) -> [u8; 32], rng: &mut dyn Rng) {
    let mut now = NOW_MS;
    for i in inputs.into_iter().take(64) {
        if let FuzzInput::Advance(ms) = i {
            now += u64::from(ms);
            continue;
        }
        let Some(input) = to_input(i, record(m)) else { continue };
        let mut fx = m.handle(input, now, rng);
        check(&fx);
        // CPU work the flow asks for (Argon2id, stamps) comes back as an
        // input, as the driver does it off the runtime.
        for _ in 0..4 {
            let Some(job) = fx.iter().find_map(|e| match e {
                Effect::Compute(j) => Some(j.clone()),
                _ => None,
            }) else {
                break;
            };
            fx = m.handle(Input::Computed(job.run()), now, rng);
            check(&fx);
        }
    }
    let _ = m.resume(now, rng);
}

/// A genuine invitation waiting at both ends (the inviter for the response
/// it has not read yet, the invitee for the final status), built once.
pub fn awaiting_pair() -> machines::Pair {
    static PAIR: OnceLock<machines::Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let other = {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            let net = contact_invite::dht::MemoryNetwork::new();
            let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(8);
            let id = Identity::generate(Profile::new("peer").expect("profile"), "d", NOW_MS / 1000, &mut rng)
                .expect("identity");
            rt.block_on(contact_invite::driver::publish_identity(&net.join("y"), id)).expect("publish")
        };
        machines::Pair::awaiting(identity(), &other, 3)
    })
    .clone()
}

/// What the inbox holds once the genuine inviter of [`awaiting_pair`] has
/// read the response and written its final status (computed once).
fn genuine_final_values() -> std::collections::HashMap<u32, Vec<u8>> {
    static VALUES: OnceLock<std::collections::HashMap<u32, Vec<u8>>> = OnceLock::new();
    VALUES
        .get_or_init(|| {
            let mut p = awaiting_pair();
            p.poll(machines::Side::Inviter);
            let (fa, _) = p.take_effects();
            assert!(matches!(machines::Pair::outcome(&fa), Some(contact_invite::flow::Outcome::Contact(_))));
            p.inbox_values()
        })
        .clone()
}

/// INT-NUDGE-1 for fuzzers: the waiting pair fed the fuzzer's values by
/// nudge, watch and as a DHT node's answer to a poll, on either side. Nothing
/// the fuzzer makes verifies under the keys these flows trust, so neither
/// machine may end, cancel or save anything; afterwards the genuine values
/// must still make the contact on both sides.
pub fn drive_awaiting(inputs: Vec<FuzzInput>, side: machines::Side) {
    use machines::{Channel, Pair, Side};
    let mut p = awaiting_pair();
    for i in inputs.into_iter().take(32) {
        let (channel, subkey, value) = match i {
            FuzzInput::Nudge { subkey, data } => (Channel::Nudge, subkey, data),
            FuzzInput::Change { subkey, data: Some(data) } => (Channel::Watch, subkey, data),
            FuzzInput::Done { op, result: FuzzResult::Value(Some((_, data))) } => (Channel::Poll, op, data),
            _ => continue,
        };
        p.hostile(side, channel, u32::from(subkey % 2), value);
        let (fa, fb) = p.take_effects();
        machines::assert_unmoved(Side::Inviter, &fa, "fuzzed value");
        machines::assert_unmoved(Side::Invitee, &fb, "fuzzed value");
        assert!(!p.inviter.is_finished() && !p.invitee.is_finished());
    }
    match side {
        Side::Inviter => {
            p.poll(Side::Inviter);
            let (fa, _) = p.take_effects();
            assert!(
                matches!(Pair::outcome(&fa), Some(contact_invite::flow::Outcome::Contact(_))),
                "inviter: {fa:?}"
            );
        }
        // The inviter saw nothing hostile: what it writes is what it wrote
        // once (checked when computed), so the invitee is handed that.
        Side::Invitee => p.put_inbox_values(genuine_final_values()),
    }
    p.poll(Side::Invitee);
    let (_, fb) = p.take_effects();
    assert!(matches!(Pair::outcome(&fb), Some(contact_invite::flow::Outcome::Contact(_))), "invitee: {fb:?}");
}
