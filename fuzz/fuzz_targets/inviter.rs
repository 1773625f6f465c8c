//! The inviter machine fed arbitrary inputs (DHT results with hostile values,
//! forged responses, timers, commands), with invariants after each step;
//! or an inviter waiting for a genuine response, fed hostile values first.
//! A third of the runs from creation are multi-use invitations (claims in
//! 8 slots, MU-*).
#![no_main]
#[path = "common.rs"]
mod common;

use common::*;
use contact_invite::machine::{Flow, Inviter};
use contact_invite::flow::{SendParams, Uses};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|inputs: Vec<FuzzInput>| {
    // Half the runs: an inviter waiting for a genuine response, fed hostile
    // values first (INT-NUDGE-1).
    if matches!(inputs.first(), Some(FuzzInput::Advance(ms)) if ms % 2 == 0) {
        return drive_awaiting(inputs, machines::Side::Inviter);
    }
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(2);
    let mut params = SendParams::new(identity().clone());
    if matches!(inputs.first(), Some(FuzzInput::Advance(ms)) if ms % 3 == 1) {
        params.uses = Uses::AtMost(2);
    }
    let Ok((m, effects)) = Inviter::new(params, NOW_MS, &mut rng) else { return };
    check(&effects);
    let inbox = |f: &Flow| match f {
        Flow::Inviter(m) => m.inbox().unwrap_or([0; 32]),
        _ => [0; 32],
    };
    drive(&mut Flow::Inviter(Box::new(m)), inputs, inbox, &mut rng);
});
