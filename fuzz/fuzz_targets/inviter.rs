//! The inviter machine fed arbitrary inputs (DHT results with hostile values,
//! forged responses, timers, commands), with invariants after each step.
#![no_main]
#[path = "common.rs"]
mod common;

use common::*;
use contact_invite::machine::{Flow, Inviter, SendParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|inputs: Vec<FuzzInput>| {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(2);
    let Ok((m, effects)) = Inviter::new(SendParams::new(identity().clone()), NOW_MS, &mut rng) else { return };
    check(&effects);
    let inbox = |f: &Flow| match f {
        Flow::Inviter(m) => m.inbox().unwrap_or([0; 32]),
        _ => [0; 32],
    };
    drive(&mut Flow::Inviter(Box::new(m)), inputs, inbox, &mut rng);
});
