//! The invitee machine fed an arbitrary ticket and arbitrary inputs
//! (hostile DHT values, timers, commands), with invariants after each step;
//! with an empty ticket, a genuinely waiting invitee fed hostile values.
#![no_main]
#[path = "common.rs"]
mod common;

use common::*;
use contact_invite::crypto::PasswordParams;
use contact_invite::encoding::Ticket;
use contact_invite::machine::{Flow, Invitee};
use contact_invite::flow::ReceiveParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (Vec<u8>, Vec<FuzzInput>)| {
    let (ticket, inputs) = data;
    // An empty ticket: the invitee of a genuine invitation, waiting for the
    // final status, fed hostile values (INT-NUDGE-1).
    if ticket.is_empty() {
        return drive_awaiting(inputs, machines::Side::Invitee);
    }
    let Ok(mut ticket) = Ticket::from_bytes(&ticket) else { return };
    // Keep Argon2 cheap so the fuzzer explores the machine, not the KDF.
    if let contact_invite::encoding::TicketSecret::Locked { params, .. } = &mut ticket.secret {
        let p = PasswordParams::INSECURE_FAST_FOR_TESTS;
        (params.m_cost_log2, params.t_cost, params.p_cost) = (p.m_cost_log2, p.t_cost, p.p_cost);
    }
    let record = ticket.record;
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(1);
    let Ok((m, effects)) = Invitee::new(ReceiveParams::new(identity().clone(), ticket), NOW_MS, &mut rng) else {
        return;
    };
    check(&effects);
    drive(&mut Flow::Invitee(Box::new(m)), inputs, |_| record, &mut rng);
});
