//! The inviter machine fed arbitrary inputs (DHT results with hostile values,
//! forged responses, timers, commands), with invariants after each step.
#![no_main]
#[path = "common.rs"]
mod common;

use common::*;
use contact_invite::machine::{Input, Inviter, SendParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|inputs: Vec<FuzzInput>| {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(2);
    let Ok((mut m, effects)) = Inviter::new(SendParams::new(identity().clone()), NOW_MS, &mut rng) else { return };
    check(&effects);
    let mut now = NOW_MS;
    for i in inputs.into_iter().take(64) {
        if let FuzzInput::Advance(ms) = i {
            now += u64::from(ms);
            continue;
        }
        let record = m.inbox().unwrap_or([0; 32]);
        let Some(input): Option<Input> = to_input(i, record) else { continue };
        let effects = m.handle(input, now, &mut rng);
        check(&effects);
    }
    let _ = m.resume(now, &mut rng);
});
