//! Attacks at the edges (issue 13, items 4, 9, 10 and the Argon2 policy of
//! item 11), each staged through the public API and asserting the secure
//! outcome. Items 5 (driver RNG) and 8 (request list) are tested inside the
//! crate (`src/driver.rs`, `src/machine/requests_tests.rs`): they need
//! crate internals. Rule ids: `EDGE-*` in docs/protocol.md.

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::*;
use contact_invite::crypto::{Password, PasswordParams, Pin};
use contact_invite::dht::{Dht, MemoryDht, MemoryNetwork};
use contact_invite::encoding::{Ticket, TicketSecret, UriScheme};
use contact_invite::flow::{Event, FlowId, Lock, Outcome, ReceiveParams, SendParams};
use contact_invite::machine::{DhtFailure, DhtOp, DhtOutput, Effect, Flow, Input, Invitee, Inviter, Timer};
use data_encoding::BASE64URL_NOPAD;
use rand_core::OsRng;

// ---------------------------------------------------------------------------
// EDGE-PIN-1 (item 9): on Veilid a wrong PIN must ask again, not end the flow.
// ---------------------------------------------------------------------------

/// Waits for the first of: `WrongPassword`, or the flow finishing.
async fn next_password_verdict(p: &mut Party, flow: FlowId) -> Event {
    wait_for(&mut p.events, "wrong password or finished", |e| {
        e.flow == flow && matches!(e.event, Event::WrongPassword | Event::Finished(_))
    })
    .await
    .event
}

async fn locked_invitation(alice: &mut Party, pin: &str) -> (FlowId, Ticket) {
    let mut params = SendParams::new(alice.identity.clone());
    params.lock = Lock::Pin(Pin::new(pin).unwrap());
    params.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    // Room for every wrong PIN these tests try (PIN-6 is tested in tests/pin_pake.rs).
    params.pin_attempts = contact_invite::limits::MAX_PIN_ATTEMPTS;
    publish_invitation(alice, params).await
}

#[tokio::test(start_paused = true)]
async fn edge_pin_wrong_pin_asks_again_under_unauthenticated_record_encryption() {
    for unauthenticated in [false, true] {
        let net = MemoryNetwork::new();
        net.set_unauthenticated_record_encryption(unauthenticated);
        let mut alice = party(&net, "alice").await;
        let mut bob = party(&net, "bob").await;
        let (a_flow, ticket) = locked_invitation(&mut alice, "4711").await;
        let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        wait_for(&mut bob.events, "password required", |e| {
            e.flow == b && matches!(e.event, Event::PasswordRequired { .. })
        })
        .await;
        // Two wrong PINs in a row: each is WrongPassword then PasswordRequired, never the end.
        for wrong in ["0000", "4712"] {
            bob.handle.password(b, Password::new(wrong).unwrap()).await.unwrap();
            let verdict = next_password_verdict(&mut bob, b).await;
            assert_eq!(
                verdict,
                Event::WrongPassword,
                "unauthenticated={unauthenticated}: a wrong PIN must be reported as WrongPassword, got {verdict:?}"
            );
            let again = wait_for(&mut bob.events, "asked again", |e| {
                e.flow == b && matches!(e.event, Event::PasswordRequired { .. } | Event::Finished(_))
            })
            .await;
            assert!(matches!(again.event, Event::PasswordRequired { .. }), "unauthenticated={unauthenticated}");
        }
        bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
        let shown = wait_for(&mut bob.events, "invitation", |e| {
            e.flow == b && matches!(e.event, Event::InvitationReceived(_) | Event::Finished(_))
        })
        .await;
        assert!(matches!(shown.event, Event::InvitationReceived(_)), "unauthenticated={unauthenticated}: {shown:?}");
        bob.handle.accept(b).await.unwrap();
        assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
        assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    }
}

#[tokio::test(start_paused = true)]
async fn edge_pin_memory_dht_mimics_unauthenticated_record_encryption() {
    use contact_invite::dht::{RecordKey, Schema};
    let net = MemoryNetwork::new();
    net.set_unauthenticated_record_encryption(true);
    let owner = random_key();
    let d = net.join("owner");
    let key = d.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    d.set_value(&key, 0, b"hello, world".to_vec(), Some(&owner)).await.unwrap();
    let reader = net.join("reader");
    // A missing secret is still detected...
    let no_secret = key.without_secret();
    assert!(reader.open_record(&no_secret, None).await.is_err());
    // ...a wrong one is not: it opens, and reads garbage of the same length.
    let wrong = RecordKey::new(*key.opaque(), Some(contact_invite::crypto::SecretKey::generate(&mut OsRng)));
    reader.open_record(&wrong, None).await.unwrap();
    let v = reader.get_value(&wrong, 0, true).await.unwrap().unwrap();
    assert_eq!(v.data.len(), 12);
    assert_ne!(v.data, b"hello, world");
    // The right secret still reads the value.
    reader.open_record(&key, None).await.unwrap();
    assert_eq!(reader.get_value(&key, 0, true).await.unwrap().unwrap().data, b"hello, world");
}

// ---------------------------------------------------------------------------
// EDGE-SECRET-1 (item 10): no secret in the Debug/Display of any public value.
// (The search for secrets in every form is `common::Needles`.)
// ---------------------------------------------------------------------------

/// A minimal executor for the public sans-IO machines over MemoryDht, so a
/// test can print every intermediate state of a flow.
struct Runner {
    name: &'static str,
    dht: MemoryDht,
    changes: contact_invite::dht::ChangeReceiver,
    flow: Flow,
    queue: VecDeque<(u64, DhtOp)>,
    timers: BTreeMap<Timer, u64>,
    events: Vec<Event>,
    outcome: Option<Outcome>,
    contacts: Vec<contact_invite::contact::Contact>,
}

impl Runner {
    fn new(name: &'static str, net: &MemoryNetwork, flow: Flow, effects: Vec<Effect>, n: &Needles) -> Self {
        let dht = net.join(name);
        let changes = dht.changes().unwrap();
        let mut r = Self {
            name,
            dht,
            changes,
            flow,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            events: Vec::new(),
            outcome: None,
            contacts: Vec::new(),
        };
        r.apply(effects, n);
        r
    }
    fn apply(&mut self, effects: Vec<Effect>, n: &Needles) {
        n.check(&format!("{} flow", self.name), &format!("{:?}", self.flow));
        for e in effects {
            n.check(&format!("{} effect", self.name), &format!("{e:?}"));
            match e {
                Effect::Dht { op, request } => self.queue.push_back((op, request)),
                Effect::SetTimer { timer, at } => {
                    self.timers.insert(timer, at);
                }
                Effect::CancelTimer(t) => {
                    self.timers.remove(&t);
                }
                Effect::Emit(ev) => {
                    if let Event::Finished(o) = &ev {
                        n.check("outcome", &format!("{o:?}"));
                        if let Outcome::Failed(err) = o {
                            n.check("error", &err.to_string());
                        }
                    }
                    self.events.push(ev)
                }
                Effect::SaveContact(c) => {
                    n.check("contact", &format!("{c:?}"));
                    self.contacts.push(*c)
                }
                Effect::Finished(o) => self.outcome = Some(o),
                // CPU work the driver would run off the runtime: inline here.
                Effect::Compute(job) => {
                    let effects = self.flow.handle(Input::Computed(job.run()), 0, &mut OsRng);
                    self.apply(effects, n);
                }
                _ => {}
            }
        }
    }
    fn handle(&mut self, input: Input, now: u64, n: &Needles) {
        n.check(&format!("{} input", self.name), &format!("{input:?}"));
        let effects = self.flow.handle(input, now, &mut OsRng);
        self.apply(effects, n);
    }
    /// Runs queued DHT operations and delivered notifications until idle.
    async fn pump(&mut self, now: u64, n: &Needles) {
        loop {
            while let Ok(c) = self.changes.try_recv() {
                self.handle(Input::ValueChanged { record: c.record, subkeys: c.subkeys, value: c.value }, now, n);
            }
            let Some((op, request)) = self.queue.pop_front() else { return };
            let result = run_op(&self.dht, request).await;
            if let Err(f) = &result {
                n.check("dht failure", &format!("{f:?}"));
            }
            if op != u64::MAX {
                self.handle(Input::DhtDone { op, result }, now, n);
            }
        }
    }
    fn fire_due(&mut self, now: u64, n: &Needles) {
        let due: Vec<Timer> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
        for t in due {
            self.timers.remove(&t);
            self.handle(Input::TimerFired(t), now, n);
        }
    }
}

async fn run_op(dht: &MemoryDht, request: DhtOp) -> Result<DhtOutput, DhtFailure> {
    use contact_invite::dht::{DhtError, DhtErrorKind};
    let f = |e: contact_invite::dht::MemoryDhtError| DhtFailure { kind: e.kind(), message: e.to_string() };
    let reopen = |e: &contact_invite::dht::MemoryDhtError| e.kind() == DhtErrorKind::NotOpen;
    match request {
        DhtOp::Create { schema, owner, secret: None } => {
            dht.create_record(&schema, &owner).await.map(DhtOutput::Created).map_err(f)
        }
        DhtOp::Create { schema, owner, secret: Some(secret) } => {
            dht.create_record_with_secret(&schema, &owner, &secret).await.map(DhtOutput::Created).map_err(f)
        }
        DhtOp::Open { key, writer } => {
            dht.open_record(&key, writer.as_ref()).await.map(|()| DhtOutput::Done).map_err(f)
        }
        DhtOp::Get { key, subkey } => match dht.get_value(&key, subkey, true).await {
            Err(e) if reopen(&e) => {
                dht.open_record(&key, None).await.map_err(f)?;
                dht.get_value(&key, subkey, true).await.map(DhtOutput::Value).map_err(f)
            }
            r => r.map(DhtOutput::Value).map_err(f),
        },
        DhtOp::Set { key, subkey, data, writer } => {
            match dht.set_value(&key, subkey, data.clone(), Some(&writer)).await {
                Err(e) if reopen(&e) => {
                    dht.open_record(&key, Some(&writer)).await.map_err(f)?;
                    dht.set_value(&key, subkey, data, Some(&writer)).await.map(DhtOutput::Set).map_err(f)
                }
                r => r.map(DhtOutput::Set).map_err(f),
            }
        }
        DhtOp::Watch { key, subkeys } => match dht.watch(&key, &subkeys).await {
            Err(e) if reopen(&e) => {
                dht.open_record(&key, None).await.map_err(f)?;
                dht.watch(&key, &subkeys).await.map(|_| DhtOutput::Done).map_err(f)
            }
            r => r.map(|_| DhtOutput::Done).map_err(f),
        },
        DhtOp::Forget { key } => {
            let _ = dht.cancel_watch(&key).await;
            let _ = dht.close_record(&key).await;
            let _ = dht.delete_record(&key).await;
            Ok(DhtOutput::Done)
        }
    }
}

/// Runs both machines (and their timers, on a virtual clock) until both end.
async fn run_both(a: &mut Runner, b: &mut Runner, now: &mut u64, n: &Needles) {
    for _ in 0..10_000 {
        a.pump(*now, n).await;
        b.pump(*now, n).await;
        if a.outcome.is_some() && b.outcome.is_some() {
            return;
        }
        let next = a.timers.values().chain(b.timers.values()).min().copied();
        let Some(next) = next else { break };
        *now = (*now).max(next);
        a.fire_due(*now, n);
        b.fire_due(*now, n);
    }
    panic!("flows did not finish: {:?} / {:?}", a.outcome, b.outcome);
}

fn example_org() -> contact_invite::encoding::HttpsBase {
    contact_invite::encoding::HttpsBase::new("https://example.org/i").unwrap()
}

fn ticket_secret_bytes(t: &Ticket) -> Vec<u8> {
    match &t.secret {
        TicketSecret::Plain(s) | TicketSecret::Pin(s) => s.expose().to_vec(),
        TicketSecret::Locked { masked, .. } => masked.expose().to_vec(),
    }
}

/// Every URI and https-link mutation a mistyped or truncated link could
/// produce: each error must not show the secret.
fn check_link_errors(t: &Ticket, n: &Needles) -> usize {
    let scheme = UriScheme::new("chat").unwrap();
    let uri = t.to_uri(&scheme);
    // The text form's pieces (kind, version, body), shuffled as a mistyped
    // link would.
    let path = uri.strip_prefix("chat://invite/").unwrap();
    let segs: Vec<&str> = path.split('-').collect();
    let mut variants = Vec::new();
    for i in 0..segs.len() {
        let mut v = segs.clone();
        v.remove(i);
        variants.push(v.join("-"));
        let mut v = segs.clone();
        v.insert(i, segs[i]);
        variants.push(v.join("-"));
        if i + 1 < segs.len() {
            let mut v = segs.clone();
            v.swap(i, i + 1);
            variants.push(v.join("-"));
        }
        for j in 0..segs.len() {
            let mut v = segs.clone();
            v[j] = segs[i];
            variants.push(v.join("-"));
        }
    }
    // And every cut and a changed character at every place.
    for k in 0..path.len() {
        variants.push(path[..k].to_owned());
        let c = if &path[k..=k] == "a" { "b" } else { "a" };
        variants.push(format!("{}{c}{}", &path[..k], &path[k + 1..]));
    }
    let mut errors = 0;
    for v in variants {
        for r in [
            Ticket::from_uri(&format!("chat://invite/{v}"), &scheme),
            Ticket::from_https(&format!("https://example.org/i#{v}"), &[example_org()]),
            Ticket::from_uri(&format!("{v}://invite/v/1"), &scheme),
        ] {
            if let Err(e) = r {
                errors += 1;
                n.check("link error (Display)", &e.to_string());
                n.check("link error (Debug)", &format!("{e:?}"));
                let e: contact_invite::Error = e.into();
                n.check("link error as crate error", &format!("{e} {e:?}"));
            }
        }
    }
    errors
}

async fn flow_prints_no_secret(locked: bool) {
    let net = MemoryNetwork::new();
    let alice = party(&net, "alice").await;
    let bob = party(&net, "bob").await;
    let password = "correct-horse-battery-staple-9x";
    let mut n = Needles::new();
    n.add_text("password", password);
    let now0 = T0_MS;
    let mut params = SendParams::new(alice.identity.clone());
    if locked {
        params.lock = Lock::Password(Password::new(password).unwrap());
        params.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    }
    n.check("send params", &format!("{params:?}"));
    let (m, effects) = Inviter::new(params, now0, &mut OsRng).unwrap();
    let mut a = Runner::new("alice", &net, Flow::Inviter(Box::new(m)), effects, &n);
    let mut now = now0;
    a.pump(now, &n).await;
    assert!(a.events.iter().any(|e| matches!(e, Event::InvitationPublished { .. })), "{:?}", a.events);
    let Flow::Inviter(m) = &a.flow else { unreachable!() };
    let ticket = m.ticket().unwrap();
    // From here on the ticket's secret and its whole blob are needles.
    n.add("ticket secret", &ticket_secret_bytes(&ticket));
    n.add_text("ticket text", &ticket.to_string()["invite-2-".len()..]);
    if let TicketSecret::Plain(s) = &ticket.secret {
        // The inbox secret derived from it is as secret.
        n.add("inbox secret", s.inbox_secret().expose());
    }
    n.check("alice flow", &format!("{:?}", a.flow));
    n.check("ticket", &format!("{ticket:?}"));
    let rp = ReceiveParams::new(bob.identity.clone(), ticket.clone());
    n.check("receive params", &format!("{rp:?}"));
    let (m, effects) = Invitee::new(rp, now, &mut OsRng).unwrap();
    let mut b = Runner::new("bob", &net, Flow::Invitee(Box::new(m)), effects, &n);
    if locked {
        b.pump(now, &n).await;
        for pw in ["wrong-password-entirely-000", password] {
            let cmd = contact_invite::machine::Command::Password(Password::new(pw).unwrap());
            n.check("command", &format!("{cmd:?}"));
            b.handle(Input::Command(cmd), now, &n);
            b.pump(now, &n).await;
        }
    }
    b.pump(now, &n).await;
    assert!(b.events.iter().any(|e| matches!(e, Event::InvitationReceived(_))), "{:?}", b.events);
    b.handle(Input::Command(contact_invite::machine::Command::Accept), now, &n);
    run_both(&mut a, &mut b, &mut now, &n).await;
    assert_eq!(a.outcome, Some(Outcome::Contact(bob.identity.public_key())));
    assert_eq!(b.outcome, Some(Outcome::Contact(alice.identity.public_key())));
    let key = b.contacts[0].conversation_key().expose().to_vec();
    n.add("conversation key", &key);
    for c in a.contacts.iter().chain(&b.contacts) {
        n.check("contact", &format!("{c:?}"));
    }
    for e in a.events.iter().chain(&b.events) {
        n.check("event", &format!("{e:?}"));
    }
    n.check("final flows", &format!("{:?} {:?}", a.flow, b.flow));
    assert!(check_link_errors(&ticket, &n) > 50);
}

#[test]
fn edge_secret_link_errors_never_quote_a_secret() {
    use contact_invite::encoding::{InvitationKind, LockParams};
    let secret = contact_invite::crypto::InviteSecret::generate(&mut OsRng);
    let plain = Ticket { kind: InvitationKind::Contact, record: [5; 32], secret: TicketSecret::Plain(secret.clone()) };
    let locked = Ticket {
        kind: InvitationKind::DeviceLink,
        record: [6; 32],
        secret: TicketSecret::Locked {
            masked: secret,
            params: LockParams { salt: [7; 16], m_cost_log2: 16, t_cost: 3, p_cost: 1 },
        },
    };
    for t in [plain, locked] {
        let mut n = Needles::new();
        n.add("ticket secret", &ticket_secret_bytes(&t));
        assert!(check_link_errors(&t, &n) > 50);
    }
}

#[tokio::test(start_paused = true)]
async fn edge_secret_no_public_value_or_error_shows_a_plain_ticket_secret() {
    flow_prints_no_secret(false).await;
}

#[tokio::test(start_paused = true)]
async fn edge_secret_no_public_value_or_error_shows_a_locked_ticket_or_password() {
    flow_prints_no_secret(true).await;
}

// ---------------------------------------------------------------------------
// EDGE-SAFETY-1 (item 4): safety numbers a man in the middle cannot match.
// ---------------------------------------------------------------------------

async fn contact_pair(net: &MemoryNetwork) -> (Party, Party) {
    let mut alice = party(net, "alice").await;
    let mut bob = party(net, "bob").await;
    let params = SendParams::new(alice.identity.clone());
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    assert!(matches!(finished(&mut bob.events, b).await, Outcome::Contact(_)));
    assert!(matches!(finished(&mut alice.events, a_flow).await, Outcome::Contact(_)));
    (alice, bob)
}

/// The old code's construction (BLAKE3 over both sorted keys, 12 digits)
/// truncated to `bits`: a birthday search finds two key pairs with the same
/// code after about 2^(bits/2) tries, so the 40-bit code falls after ~2^20
/// keys per side (seconds on one core).
#[test]
fn edge_safety_old_short_code_collides_at_the_birthday_bound() {
    use std::collections::HashMap;
    let fixed = [7u8; 32];
    for bits in [16u32, 20, 24] {
        let mut seen: HashMap<u64, [u8; 32]> = HashMap::new();
        let mut tries = 0u64;
        loop {
            tries += 1;
            let mut k = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut OsRng, &mut k);
            let mut ids = [fixed, k];
            ids.sort();
            let h = blake3::hash(&[ids[0], ids[1]].concat());
            let code = u64::from_be_bytes(h.as_bytes()[..8].try_into().unwrap()) >> (64 - bits);
            if let Some(other) = seen.insert(code, k)
                && other != k
            {
                break;
            }
        }
        // Within 16x of the birthday bound 2^(bits/2).
        assert!(tries < 16 << (bits / 2), "{bits} bits: {tries} tries");
    }
}

#[tokio::test(start_paused = true)]
async fn edge_safety_number_has_at_least_128_bits_per_party() {
    use contact_invite::contact::{SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION};
    let net = MemoryNetwork::new();
    let (alice, bob) = contact_pair(&net).await;
    let (ac, bc) = (alice.contacts().await.remove(0), bob.contacts().await.remove(0));
    let (a_key, b_key) = (alice.identity.public_key(), bob.identity.public_key());
    let a = ac.safety_code(&a_key);
    let b = bc.safety_code(&b_key);
    assert_eq!(a, b, "both sides show the same number");
    let an = ac.safety_number(&a_key);
    // Per party: 40 digits, >= 128 bits.
    for fp in [an.local(), an.remote()] {
        let digits: usize = fp.digit_groups().iter().map(String::len).sum();
        let bits = digits as f64 * 10f64.log2();
        assert!(bits >= 128.0, "a party's fingerprint carries {bits:.1} bits ({digits} digits)");
    }
    assert_eq!(a.chars().filter(char::is_ascii_digit).count(), 80);
    // Labelled and iterated, recomputed independently: 5200 rounds of
    // BLAKE3-derive-key over (previous || identity key).
    const { assert!(SAFETY_NUMBER_ITERATIONS >= 5200) };
    let fingerprint = |key: &[u8; 32], rounds: u32| {
        let mut d = vec![SAFETY_NUMBER_VERSION];
        let mut out = [0u8; 40];
        for i in 0..rounds {
            let mut h = blake3::Hasher::new_derive_key("contact-invite safety number fingerprint v1");
            h.update(&d);
            h.update(key);
            if i + 1 == rounds {
                h.finalize_xof().fill(&mut out);
            } else {
                d = h.finalize().as_bytes().to_vec();
            }
        }
        out
    };
    assert_eq!(an.local().as_bytes(), &fingerprint(a_key.as_bytes(), SAFETY_NUMBER_ITERATIONS));
    assert_eq!(an.remote().as_bytes(), &fingerprint(b_key.as_bytes(), SAFETY_NUMBER_ITERATIONS));
    assert_ne!(an.local().as_bytes(), &fingerprint(a_key.as_bytes(), 1), "one round is not the construction");
}

#[tokio::test(start_paused = true)]
async fn edge_safety_scan_verifies_in_one_step_and_a_mismatch_is_refused() {
    use contact_invite::contact::SafetyNumberError;
    let net = MemoryNetwork::new();
    let (alice, bob) = contact_pair(&net).await;
    let (a_key, b_key) = (alice.identity.public_key(), bob.identity.public_key());
    let ac = alice.contacts().await.remove(0);
    let mut bc = bob.contacts().await.remove(0);
    assert!(!bc.is_verified() && bc.verified_at().is_none(), "a new contact is unverified");
    // A man in the middle: Mallory made a contact with Bob too; Bob scanning
    // Mallory's screen (or any code not made from Alice's and Bob's keys)
    // is a clear, typed refusal that leaves the contact unverified.
    let mallory = random_key().public();
    let mitm = contact_invite::contact::SafetyNumber::new(&mallory, &b_key);
    assert_eq!(bc.verify_scanned_safety_number(&b_key, &mitm.qr_payload(), 1000), Err(SafetyNumberError::Mismatch));
    let bob_to_mallory = contact_invite::contact::SafetyNumber::new(&a_key, &mallory);
    assert_eq!(
        bc.verify_scanned_safety_number(&b_key, &bob_to_mallory.qr_payload(), 1000),
        Err(SafetyNumberError::Mismatch)
    );
    assert_eq!(bc.verify_scanned_safety_number(&b_key, b"junk", 1000), Err(SafetyNumberError::Malformed));
    assert!(!bc.is_verified());
    assert!(!SafetyNumberError::Mismatch.to_string().is_empty());
    // Bob scans Alice's screen: verified in one step, and when is recorded.
    let shown = ac.safety_number(&a_key).qr_payload();
    bc.verify_scanned_safety_number(&b_key, &shown, 1_795_400_000).unwrap();
    assert_eq!(bc.verified_at(), Some(1_795_400_000));
    // The verification is persisted with the contact.
    contact_invite::driver::save_contact(bob.store.as_ref(), &bc).await.unwrap();
    assert_eq!(bob.contacts().await[0].verified_at(), Some(1_795_400_000));
    #[cfg(feature = "qr")]
    assert!(ac.safety_number(&a_key).qr_svg().unwrap().starts_with("<?xml"));
}

// ---------------------------------------------------------------------------
// EDGE-ARGON-1 (item 11): the Argon2 caps must not let a ticket kill a phone app.
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn edge_argon_default_policy_refuses_tickets_a_phone_cannot_afford() {
    use contact_invite::crypto::PasswordLimits;
    use contact_invite::encoding::{InvitationKind, LockParams};
    use contact_invite::error::{Error, PasswordError};
    let net = MemoryNetwork::new();
    let bob = party(&net, "bob").await;
    // A ticket asking for 128 MiB (one pass): above what a phone app (or an
    // iOS extension) can allocate safely.
    let hostile = Ticket {
        kind: InvitationKind::Contact,
        record: [9; 32],
        secret: TicketSecret::Locked {
            masked: contact_invite::crypto::InviteSecret::generate(&mut OsRng),
            params: LockParams { salt: [1; 16], m_cost_log2: 17, t_cost: 1, p_cost: 1 },
        },
    };
    let r = Invitee::new(ReceiveParams::new(bob.identity.clone(), hostile), T0_MS, &mut OsRng);
    assert!(
        matches!(r, Err(Error::Password(PasswordError::ExcessiveWork { .. }))),
        "a 128 MiB ticket must be refused by default, got {:?}",
        r.map(|_| ())
    );
    let d = PasswordLimits::default();
    assert!(d.check(&PasswordParams::DEFAULT).is_ok(), "what inviters make by default opens by default");
}

// ---------------------------------------------------------------------------
// The classes, not just the instances: randomized schedules.
// ---------------------------------------------------------------------------

mod classes {
    use super::*;
    use contact_invite::dht::FaultConfig;
    use proptest::prelude::*;
    use std::time::Duration;

    /// EDGE-PIN-1 as an invariant: under either record encryption and
    /// seeded faults, wrong PINs within the inviter's limit (PIN-6) never
    /// end the flow, and the
    /// right PIN after them always makes the contact.
    async fn wrong_pins_then_right(seed: u64, rate: f64, unauthenticated: bool, wrong: usize) -> Result<(), String> {
        let net = MemoryNetwork::with_faults(seed, FaultConfig::default());
        net.set_unauthenticated_record_encryption(unauthenticated);
        let mut alice = party(&net, "alice").await;
        let mut bob = party(&net, "bob").await;
        let (a_flow, ticket) = locked_invitation(&mut alice, "271828").await;
        // Faults the flow recovers from (no lost acks: they only slow it).
        net.set_faults(FaultConfig {
            drop: rate,
            delay: rate,
            max_delay: Duration::from_secs(1),
            duplicate: rate,
            stale_read: rate,
            ..FaultConfig::default()
        });
        let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
        wait_for(&mut bob.events, "password required", |e| {
            e.flow == b && matches!(e.event, Event::PasswordRequired { .. })
        })
        .await;
        for i in 0..wrong {
            bob.handle.password(b, Password::new(format!("{i}{i}9")).unwrap()).await.unwrap();
            let v = next_password_verdict(&mut bob, b).await;
            if v != Event::WrongPassword {
                return Err(format!("wrong PIN {i}: {v:?}"));
            }
            wait_for(&mut bob.events, "asked again", |e| {
                e.flow == b && matches!(e.event, Event::PasswordRequired { .. })
            })
            .await;
        }
        bob.handle.password(b, Password::new("271828").unwrap()).await.unwrap();
        let e = wait_for(&mut bob.events, "invitation", |e| {
            e.flow == b && matches!(e.event, Event::InvitationReceived(_) | Event::Finished(_))
        })
        .await;
        if !matches!(e.event, Event::InvitationReceived(_)) {
            return Err(format!("right PIN: {e:?}"));
        }
        bob.handle.accept(b).await.unwrap();
        let (ob, oa) = (finished(&mut bob.events, b).await, finished(&mut alice.events, a_flow).await);
        if ob != Outcome::Contact(alice.identity.public_key()) || oa != Outcome::Contact(bob.identity.public_key()) {
            return Err(format!("ended {ob:?} / {oa:?}"));
        }
        Ok(())
    }

    /// A path segment that looks like a secret (43 base64url characters) or
    /// a piece of one, or a real command.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 32).prop_map(|b| BASE64URL_NOPAD.encode(&b)),
            proptest::collection::vec(any::<u8>(), 13..24).prop_map(|b| BASE64URL_NOPAD.encode(&b)),
            prop::sample::select(vec![
                "v",
                "1",
                "dht",
                "vld0",
                "contact",
                "locked",
                "argon2id",
                "16.3.1",
                "promise.account-add"
            ])
            .prop_map(str::to_owned),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn edge_pin_no_number_of_wrong_pins_ends_a_flow(seed in any::<u64>(), rate in 0.0f64..0.2, unauth in any::<bool>(), wrong in 1usize..4) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            let r = rt.block_on(wrong_pins_then_right(seed, rate, unauth, wrong));
            prop_assert!(r.is_ok(), "seed {seed} rate {rate} unauthenticated {unauth} wrong {wrong}: {r:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The same check as the `text` fuzz target, on arbitrary text
        /// around real link pieces.
        #[test]
        fn edge_secret_no_error_quotes_arbitrary_input(pre in "[a-z:/#]{0,24}", body in "[A-Za-z0-9_./#:-]{0,200}") {
            let text = format!("{pre}{body}");
            let scheme = UriScheme::new("chat").unwrap();
            let long: Vec<&str> = text
                .split(['/', '#', ':'])
                .filter(|s| {
                    s.len() > contact_invite::encoding::MAX_ERROR_TOKEN
                        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
                .collect();
            let quotes_no_long_segment = |e: &contact_invite::encoding::EncodingError| {
                let m = e.to_string();
                assert!(!long.iter().any(|s| m.contains(s)), "an error quotes its input: {m}");
            };
            if let Err(e) = Ticket::from_uri(&text, &scheme) {
                quotes_no_long_segment(&e);
            }
            if let Err(e) = Ticket::from_https(&text, &[example_org()]) {
                quotes_no_long_segment(&e);
            }
        }

        /// EDGE-SECRET-2 as an invariant: whatever segments a link holds, an
        /// error never quotes one longer than the token limit.
        #[test]
        fn edge_secret_no_error_quotes_a_long_segment(segs in proptest::collection::vec(segment(), 1..12), scheme_seg in any::<bool>()) {
            let path = segs.join("/");
            let scheme = UriScheme::new("chat").unwrap();
            let inputs = [
                format!("chat://invite/{path}"),
                format!("https://example.org/#{path}"),
                if scheme_seg { format!("{}://invite/v/1", segs[0]) } else { format!("chat://{path}") },
            ];
            for text in &inputs {
                let errors: Vec<String> = [
                    Ticket::from_uri(text, &scheme).err(),
                    Ticket::from_https(text, &[example_org()]).err(),
                    contact_invite::encoding::Address::from_uri(text, &scheme).err(),
                ]
                .into_iter()
                .flatten()
                .map(|e| format!("{e} {e:?}"))
                .collect();
                for e in &errors {
                    for s in segs.iter().filter(|s| s.len() > contact_invite::encoding::MAX_ERROR_TOKEN) {
                        prop_assert!(!e.contains(s.as_str()), "{e} quotes {s}");
                    }
                }
            }
        }
    }
}
