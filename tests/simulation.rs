//! Deterministic multi-party simulation: proptest draws schedules (fault
//! seed and rates, a crash point for each party, each invitee's decision),
//! runs them on MemoryDht with virtual time, and checks the invariants:
//! - never two contacts for one invitation, and a contact on one side only
//!   if the other side has it too;
//! - never a contact without a verified peer (contacts re-verify the peer's
//!   identity record when loaded, and name the party that answered);
//! - never a lost accepted invitation: if an accept reached the DHT and the
//!   inviter did not revoke, someone ends with a contact (unless the
//!   acceptor's identity record could not be confirmed: then neither side
//!   has one, FRESH-3);
//! - never a contact with, or made by, a device revoked in the latest
//!   published identity record (a party may run on with its stale identity
//!   after its device was revoked, like a lost phone: FRESH-2..5);
//! - no secret in any event or log line;
//! - a hostile hop that replaces every nudge with a forged value (unsigned
//!   tombstones, junk) changes nothing of the above (INT-NUDGE-1): no flow
//!   ends, cancels or saves on a value that does not verify;
//! - all of the above for PIN invitations too (SPAKE2 with the inviter's
//!   device, PIN-*): each invitee enters the PIN whenever it is asked;
//! - for multi-use invitations (MU-*, three invitees, a limit of 2 or none):
//!   never more contacts than the limit, each contact mutual with the same
//!   conversation key, every stored accept ends in a contact or a clear
//!   refusal ("no uses left" only once the uses ran out).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use contact_invite::crypto::{Password, Pin};
use contact_invite::dht::{FaultConfig, MemoryNetwork};
use contact_invite::encoding::TicketSecret;
use contact_invite::error::Error;
use contact_invite::flow::{Event, FlowId, Lock, Outcome, ReceiveParams, SendParams, Uses};
use proptest::prelude::*;

/// Everything the library logs during the simulations.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(w.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut v = self.0.lock().unwrap();
        if v.len() < 64 << 20 {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Decision {
    Accept,
    Reject,
    Ignore,
}

/// A device revoked in its identity record right after setup, which keeps
/// running with the identity it had (it is not told).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RevokedDevice {
    None,
    Inviter,
    Bob,
}

#[derive(Clone, Debug)]
struct Schedule {
    seed: u64,
    rate: f64,
    crash_inviter: Option<u64>,
    crash_b: Option<u64>,
    crash_c: Option<u64>,
    b: Decision,
    c: Decision,
    revoke: bool,
    revoked_device: RevokedDevice,
    /// Every nudge replaced by this forged value (see [`forged_nudge`]).
    forged_nudge: Option<u8>,
    /// A PIN invitation (PAKE) rather than an unlocked one.
    pin: bool,
    /// A multi-use invitation: its limit (0: none), with a third invitee
    /// (dave) deciding `d`. `None`: one-time, two invitees.
    uses: Option<u32>,
    d: Decision,
}

/// The PIN of the simulated PIN invitations.
const PIN: &str = "4711";

/// Values a hostile hop puts in every nudge: version 1's unsigned empty
/// tombstone, an empty signed-tombstone entry, junk.
fn forged_nudge(k: u8) -> Vec<u8> {
    match k % 3 {
        0 => vec![0x22, 0x00],
        1 => vec![0x2a, 0x00],
        _ => vec![0x5a; 64],
    }
}

fn schedule() -> impl Strategy<Value = Schedule> {
    let decision = prop_oneof![Just(Decision::Accept), Just(Decision::Reject), Just(Decision::Ignore)];
    let decision2 = decision.clone();
    (
        any::<u64>(),
        0.0f64..0.3,
        proptest::option::of(0u64..40),
        proptest::option::of(0u64..40),
        proptest::option::of(0u64..40),
        decision.clone(),
        decision,
        any::<bool>(),
        proptest::option::of(0u8..3),
        prop_oneof![
            4 => Just(RevokedDevice::None),
            1 => Just(RevokedDevice::Inviter),
            1 => Just(RevokedDevice::Bob)
        ],
        any::<bool>(),
        (prop_oneof![3 => Just(None), 1 => Just(Some(2u32)), 1 => Just(Some(0u32))], decision2),
    )
        .prop_map(|(seed, rate, ci, cb, cc, b, c, revoke, forged_nudge, revoked_device, pin, (uses, d))| {
            Schedule {
                seed,
                rate,
                crash_inviter: ci,
                crash_b: cb,
                crash_c: cc,
                b,
                c,
                revoke: revoke && rate < 0.1,
                forged_nudge,
                revoked_device,
                // PIN invitations are one-time.
                pin: pin && uses.is_none(),
                uses,
                d,
            }
        })
}

/// The identity's owner revokes this party's device and republishes; the
/// party keeps running with its stale identity.
async fn revoke_device_of(net: &MemoryNetwork, p: &Party) {
    let mut id = p.identity.clone();
    contact_invite::bench_internals::revoke_own_device(&mut id, T0_MS / 1000 + 1, &mut rand_core::OsRng).unwrap();
    contact_invite::driver::publish_identity(&net.join(&p.name), id).await.unwrap();
}

struct Outcomes {
    inviter: Outcome,
    invitees: Vec<(String, Option<Outcome>, bool)>, // name, outcome, accept stored
    secrets: Vec<String>,
    events: String,
}

async fn run(s: &Schedule) -> (Outcomes, Party, Vec<Party>) {
    let faults = FaultConfig {
        drop: s.rate,
        lost_ack: s.rate / 3.0,
        delay: s.rate,
        max_delay: Duration::from_secs(2),
        duplicate: s.rate,
        stale_read: s.rate,
        conflict: s.rate,
        // A hostile hop's forged nudge is worst when it beats the watch.
        lose_notification: if s.forged_nudge.is_some() { 1.0 } else { s.rate },
        lose_nudge: s.rate,
        open_not_found: s.rate,
    };
    // Parties publish their identities before the faults start: setup is
    // not what is under test, and the flows then run under seeded faults.
    let net = MemoryNetwork::with_faults(s.seed, FaultConfig::default());
    let mut alice = party_with(&net, "alice", s.crash_inviter).await;
    let mut invitees = vec![party_with(&net, "bob", s.crash_b).await, party_with(&net, "carol", s.crash_c).await];
    if s.uses.is_some() {
        invitees.push(party_with(&net, "dave", None).await);
    }
    match s.revoked_device {
        RevokedDevice::None => {}
        RevokedDevice::Inviter => revoke_device_of(&net, &alice).await,
        RevokedDevice::Bob => revoke_device_of(&net, &invitees[0]).await,
    }
    net.set_faults(faults);
    net.tamper_nudges(s.forged_nudge.map(forged_nudge));
    let decisions = [s.b, s.c, s.d];
    let n = invitees.len();
    let mut events = String::new();
    let mut a_flow: Option<FlowId> = None;
    let mut a_out = None;
    let mut ticket = None;
    let mut flows: Vec<Option<FlowId>> = vec![None; n];
    let mut outs: Vec<Option<Outcome>> = vec![None; n];
    let mut stored = vec![false; n];
    let mut revoked = false;
    for _ in 0..5_000 {
        let invitees_done = outs.iter().zip(decisions).all(|(o, d)| o.is_some() || matches!(d, Decision::Ignore));
        if a_out.is_some() && invitees_done {
            break;
        }
        if a_flow.is_none() {
            let mut params = SendParams::new(alice.identity.clone());
            if s.pin {
                params.lock = Lock::Pin(Pin::new(PIN).unwrap());
                // Two invitees, crashes and faults: room for every attempt.
                params.pin_attempts = contact_invite::limits::MAX_PIN_ATTEMPTS;
            }
            if let Some(u) = s.uses {
                params.uses = if u == 0 { Uses::Unlimited } else { Uses::AtMost(u) };
                // It closes when used up, revoked or expired: soon enough.
                params.expires_in_secs = 3 * 3600;
            }
            match alice.handle.send_invitation(params).await {
                Ok(f) => a_flow = Some(f),
                Err(_) => {
                    alice.restart(&net).await;
                    continue;
                }
            }
        }
        if let Some(t) = &ticket {
            for i in 0..n {
                if flows[i].is_none() && outs[i].is_none() {
                    let p = &mut invitees[i];
                    match p.handle.receive(ReceiveParams::new(p.identity.clone(), Clone::clone(t))).await {
                        Ok(f) => flows[i] = Some(f),
                        Err(_) => p.restart(&net).await,
                    }
                }
            }
        }
        let (first, rest) = invitees.split_at_mut(1);
        let (pb, rest) = (&mut first[0], rest);
        let (pc, rest) = rest.split_at_mut(1);
        let pc = &mut pc[0];
        let mut pd = rest.first_mut();
        let (out_b, rest) = outs.split_at_mut(1);
        let (out_c, out_d) = rest.split_at_mut(1);
        let (st_b, rest) = stored.split_at_mut(1);
        let (st_c, st_d) = rest.split_at_mut(1);
        tokio::select! {
            e = alice.events.recv() => match e {
                None => alice.restart(&net).await,
                Some(e) => {
                    events.push_str(&format!("{e:?}\n"));
                    match e.event {
                        // Only the flow whose id we were handed: a flow persisted
                        // just before a crash resumes under its own id too.
                        Event::InvitationPublished { .. } if ticket.is_none() && Some(e.flow) == a_flow => {
                            ticket = alice.handle.ticket(e.flow).await.ok().flatten();
                            if s.revoke && !revoked && ticket.is_some() {
                                revoked = alice.handle.cancel(e.flow).await.is_ok();
                            }
                        }
                        Event::Finished(o) if Some(e.flow) == a_flow => a_out = Some(o),
                        _ => {}
                    }
                }
            },
            e = pb.events.recv() => on_invitee(&net, pb, e, decisions[0], flows[0], &mut out_b[0], &mut st_b[0], &mut events).await,
            e = pc.events.recv() => on_invitee(&net, pc, e, decisions[1], flows[1], &mut out_c[0], &mut st_c[0], &mut events).await,
            e = async { match pd.as_mut() { Some(p) => p.events.recv().await, None => std::future::pending().await } } => {
                if let Some(p) = pd.as_mut() {
                    on_invitee(&net, p, e, decisions[2], flows[2], &mut out_d[0], &mut st_d[0], &mut events).await;
                }
            }
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
    let mut secrets = Vec::new();
    if let Some(TicketSecret::Plain(k) | TicketSecret::Pin(k)) = ticket.as_ref().map(|t| &t.secret) {
        // The ticket's secret and the inbox secret derived from it.
        let inbox = k.inbox_secret();
        for bytes in [&k.expose()[..], &inbox.expose()[..]] {
            secrets.push(data_encoding::HEXLOWER.encode(bytes));
            secrets.push(data_encoding::BASE64URL_NOPAD.encode(bytes));
            secrets.push(format!("{:?}", bytes).trim_matches(['[', ']']).to_owned());
        }
    }
    let o = Outcomes {
        inviter: a_out.unwrap_or_else(|| panic!("inviter did not finish: {s:?}")),
        invitees: invitees.iter().zip(outs).zip(stored).map(|((p, o), st)| (p.name.clone(), o, st)).collect(),
        secrets,
        events,
    };
    (o, alice, invitees)
}

#[allow(clippy::too_many_arguments)]
async fn on_invitee(
    net: &MemoryNetwork,
    p: &mut Party,
    e: Option<contact_invite::driver::DriverEvent>,
    d: Decision,
    flow: Option<FlowId>,
    out: &mut Option<Outcome>,
    stored: &mut bool,
    log: &mut String,
) {
    let Some(e) = e else { return p.restart(net).await };
    log.push_str(&format!("{e:?}\n"));
    if Some(e.flow) != flow {
        return;
    }
    match e.event {
        Event::InvitationReceived(_) => {
            let r = match d {
                Decision::Accept => p.handle.accept(e.flow).await,
                Decision::Reject => p.handle.reject(e.flow).await,
                Decision::Ignore => Ok(()),
            };
            if r.is_err() {
                p.restart(net).await;
            }
        }
        Event::PasswordRequired { pin: true } => {
            match p.handle.password(e.flow, Password::new(PIN).unwrap()).await {
                // Asked again while a PIN is in flight: nothing to do.
                Ok(()) | Err(Error::InvalidState { .. }) => {}
                Err(_) => p.restart(net).await,
            }
        }
        Event::ResponseSent { accepted: true } => *stored = true,
        Event::Finished(o) => *out = Some(o),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_on_random_schedules(s in schedule()) {
        let buf = log_buffer().clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let (o, alice, invitees) = rt.block_on(run(&s));
        assert!(!o.secrets.is_empty(), "{s:?}: no ticket; the inviter ended {:?}", o.inviter);
        let a_contacts = rt.block_on(alice.contacts());
        // Never more contacts than uses (one for a one-time invitation).
        let max = match s.uses { None => 1, Some(0) => invitees.len(), Some(l) => l as usize };
        prop_assert!(a_contacts.len() <= max, "{s:?}: {} inviter contacts", a_contacts.len());
        let mut winners = 0;
        for (p, (name, out, stored)) in invitees.iter().zip(&o.invitees) {
            let c = rt.block_on(p.contacts());
            prop_assert!(c.len() <= 1);
            if let Some(c) = c.first() {
                winners += 1;
                // A contact names a verified peer: the inviter, whose record re-verified on load.
                prop_assert_eq!(c.peer, alice.identity.public_key());
                prop_assert_eq!(out, &Some(Outcome::Contact(alice.identity.public_key())));
                // Mutual: the inviter holds this invitee.
                let ours = a_contacts.iter().find(|a| a.peer == p.identity.public_key());
                prop_assert!(ours.is_some(), "{s:?}: {name} has a contact, the inviter not");
                prop_assert_eq!(ours.map(|a| a.conversation_key()), Some(c.conversation_key()));
            }
            let _ = stored;
        }
        prop_assert!(winners <= max, "{s:?}: more invitees won than the invitation admits");
        // No contact with, or made by, a revoked device.
        match s.revoked_device {
            RevokedDevice::Inviter => prop_assert!(winners == 0 && a_contacts.is_empty(), "{s:?}: a revoked inviter device made a contact"),
            RevokedDevice::Bob => {
                prop_assert!(rt.block_on(invitees[0].contacts()).is_empty(), "{s:?}: bob's revoked device made a contact");
                prop_assert!(a_contacts.iter().all(|c| c.peer != invitees[0].identity.public_key()), "{s:?}: the inviter saved bob's revoked device");
            }
            RevokedDevice::None => {}
        }
        prop_assert_eq!(winners, a_contacts.len(), "{:?}: inviter contacts {} vs winners {}", s, a_contacts.len(), winners);
        // Never a lost accepted invitation: every stored accept ends in the
        // contact or a clear refusal, and when no reject or revoke competed,
        // a stored accept always yields the contact — unless the inviter
        // could not confirm the acceptor's device (revoked, or its record
        // unconfirmed under faults: fails closed, FRESH-3/4), and then
        // neither side has a contact (checked above).
        use contact_invite::error::ProtocolError;
        for (name, out, stored) in &o.invitees {
            if *stored {
                let ok = matches!(
                    out,
                    Some(Outcome::Contact(_))
                        | Some(Outcome::Failed(Error::Protocol(ProtocolError::AlreadyUsed | ProtocolError::Revoked | ProtocolError::Expired | ProtocolError::DeviceNotConfirmed)))
                );
                // MU-5: "no uses left" only once every use was taken.
                let used_up = matches!(out, Some(Outcome::Failed(Error::Protocol(ProtocolError::NoUsesLeft)))) && a_contacts.len() == max;
                prop_assert!(ok || used_up, "{s:?}: {name}'s stored accept ended {out:?}");
            }
        }
        let any_accept_stored = o.invitees.iter().any(|(_, _, st)| *st);
        let reject_competed = matches!(s.b, Decision::Reject) || matches!(s.c, Decision::Reject);
        let not_confirmed = matches!(
            o.inviter,
            Outcome::Failed(Error::Protocol(ProtocolError::DeviceRevoked | ProtocolError::FreshnessUnavailable))
        );
        prop_assert!(!not_confirmed || a_contacts.is_empty());
        if s.uses.is_some() {
            // MU-1: a multi-use invitation ends closed, counting exactly the
            // contacts it made; a stored accept not revoked is a contact
            // unless the uses ran out or the device was not confirmed.
            let Outcome::MultiUseClosed(v) = &o.inviter else {
                return Err(TestCaseError::fail(format!("{s:?}: inviter ended {:?}", o.inviter)));
            };
            prop_assert_eq!(v.used() as usize, a_contacts.len());
            for (name, out, stored) in &o.invitees {
                if *stored && !s.revoke && a_contacts.len() < max {
                    let ok = matches!(out, Some(Outcome::Contact(_)) | Some(Outcome::Failed(Error::Protocol(ProtocolError::DeviceNotConfirmed))));
                    prop_assert!(ok, "{s:?}: {name}'s stored accept ended {out:?} with uses left");
                }
            }
        } else if any_accept_stored && !s.revoke && !reject_competed && !not_confirmed {
            prop_assert!(matches!(o.inviter, Outcome::Contact(_)), "{s:?}: an accept was stored but the inviter ended {:?}", o.inviter);
        }
        // No secret in any event or log line.
        let logs = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        prop_assert!(logs.contains("flow event"), "the library's log lines are captured");
        prop_assert!(!o.secrets.is_empty() && !o.events.is_empty(), "{s:?}: no ticket; the inviter ended {:?}", o.inviter);
        for secret in &o.secrets {
            prop_assert!(!o.events.contains(secret.as_str()), "secret in an event");
            prop_assert!(!logs.contains(secret.as_str()), "secret in a log line");
        }
    }
}

/// Schedules the simulator found while it was being written (harness
/// mistakes, kept so they stay covered).
#[test]
fn regression_schedules() {
    let cases = [
        // Inviter crashes right after persisting its new flow: the flow
        // resumes under its own id while the app sends another invitation.
        Schedule {
            seed: 450_014_493_560_105_208,
            rate: 0.0,
            crash_inviter: Some(1),
            crash_b: None,
            crash_c: None,
            b: Decision::Accept,
            c: Decision::Accept,
            revoke: false,
            forged_nudge: None,
            revoked_device: RevokedDevice::None,
            pin: false,
            uses: None,
            d: Decision::Ignore,
        },
        // 28 % faults on every operation, two acceptors.
        Schedule {
            seed: 12_829_567_137_347_357_048,
            rate: 0.281,
            crash_inviter: None,
            crash_b: None,
            crash_c: None,
            b: Decision::Accept,
            c: Decision::Accept,
            revoke: false,
            forged_nudge: None,
            revoked_device: RevokedDevice::None,
            pin: false,
            uses: None,
            d: Decision::Ignore,
        },
        // Issue 13 item 3: every nudge an unsigned empty tombstone. Before
        // signed tombstones the invitee's stored accept ended "inbox closed"
        // while the inviter made the contact.
        Schedule {
            seed: 3,
            rate: 0.0,
            crash_inviter: None,
            crash_b: None,
            crash_c: None,
            b: Decision::Accept,
            c: Decision::Ignore,
            revoke: false,
            forged_nudge: Some(0),
            revoked_device: RevokedDevice::None,
            pin: false,
            uses: None,
            d: Decision::Ignore,
        },
        // PIN-*: a PIN invitation, two acceptors, 10 % faults, a crash on
        // each side: one contact, both attempts answered.
        Schedule {
            seed: 16,
            rate: 0.1,
            crash_inviter: Some(17),
            crash_b: Some(9),
            crash_c: None,
            b: Decision::Accept,
            c: Decision::Accept,
            revoke: false,
            forged_nudge: None,
            revoked_device: RevokedDevice::None,
            pin: true,
            uses: None,
            d: Decision::Ignore,
        },
        // Opens that find no node (OPEN-1) with the inviter crashing after
        // its 4th effect: MemoryDht first failed the inviter's reopening of
        // its own records too, which Veilid does locally.
        Schedule {
            seed: 3_072_717_198_475_655_201,
            rate: 0.145_297_582_889_312,
            crash_inviter: Some(4),
            crash_b: None,
            crash_c: None,
            b: Decision::Accept,
            c: Decision::Accept,
            revoke: false,
            forged_nudge: None,
            revoked_device: RevokedDevice::None,
            pin: false,
            uses: None,
            d: Decision::Ignore,
        },
    ];
    for s in cases {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let (o, alice, invitees) = rt.block_on(run(&s));
        assert!(!o.secrets.is_empty(), "{s:?}: no ticket; the inviter ended {:?}", o.inviter);
        let a = rt.block_on(alice.contacts());
        let winners: usize = invitees.iter().map(|p| rt.block_on(p.contacts()).len()).sum();
        assert!(a.len() <= 1 && winners == a.len(), "{s:?}");
        assert!(matches!(o.inviter, Outcome::Contact(_)), "{s:?}: {:?}", o.inviter);
    }
}

/// PIN-11: found by the simulator at 600 cases (and failing on the release
/// before multi-use invitations too). Under 23 % faults the invitee's hello
/// write kept failing and was retried after the inviter's reply had already
/// been read (from subkey 0); the last retry landed over the invitee's
/// response in subkey 1, so the inviter only ever read an answered hello
/// and the invitation expired with the accept stored. The response now
/// waits for the invitee's own hello write to settle. Timing varies from
/// run to run, so the schedule runs 40 times (the failure showed within the
/// first 5 before the fix).
#[test]
fn pin_11_a_retried_hello_never_lands_over_the_response() {
    let s = Schedule {
        seed: 17_270_584_362_095_473_819,
        rate: 0.225_674_711_535_041_84,
        crash_inviter: Some(15),
        crash_b: None,
        crash_c: None,
        b: Decision::Accept,
        c: Decision::Accept,
        revoke: false,
        forged_nudge: Some(2),
        revoked_device: RevokedDevice::None,
        pin: true,
        uses: None,
        d: Decision::Ignore,
    };
    for round in 0..40 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let (o, alice, invitees) = rt.block_on(run(&s));
        assert!(matches!(o.inviter, Outcome::Contact(_)), "round {round}: the inviter ended {:?}", o.inviter);
        let winners: usize = invitees.iter().map(|p| rt.block_on(p.contacts()).len()).sum();
        assert_eq!((rt.block_on(alice.contacts()).len(), winners), (1, 1), "round {round}");
    }
}
