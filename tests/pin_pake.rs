//! PIN invitations run SPAKE2 with the inviter's device (issue 16, rules
//! PIN-1..PIN-9 in docs/protocol.md): each attack staged through the public
//! API (and the crate's own attacker, `bench_internals::pin_attack`),
//! asserting the secure outcome.

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::bench_internals::pin_attack;
use contact_invite::crypto::{Password, PasswordParams, Pin};
use contact_invite::dht::{Dht, MemoryNetwork, OpLog, RecordKey, Recorded, ValueLog};
use contact_invite::driver::{self, DriverConfig};
use contact_invite::encoding::Ticket;
use contact_invite::error::{Error, ProtocolError};
use contact_invite::flow::{Event, FlowId, Lock, Outcome, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use rand_core::{OsRng, RngCore};

/// A party whose driver's DHT keeps every value it writes, reads or nudges
/// in `values` (what an attacker watching the network would hold).
async fn recorded_party(net: &MemoryNetwork, name: &str, values: &ValueLog) -> Party {
    let clock = contact_invite::driver::TokioClock::starting_at(T0_MS);
    let identity = Identity::generate(Profile::new(name).unwrap(), "device", T0_MS / 1000, &mut OsRng).unwrap();
    let identity = driver::publish_identity(&net.join(name), identity).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let dht = Recorded::capturing(net.join(name), OpLog::new(), values.clone());
    let (handle, events) =
        driver::start(dht, store.clone(), DriverConfig::builder().clock(clock).build()).await.unwrap();
    Party { name: name.to_owned(), identity, store, handle, events, clock }
}

fn pin_params(p: &Party, pin: &str, attempts: u32) -> SendParams {
    let mut s = SendParams::new(p.identity.clone());
    s.lock = Lock::Pin(Pin::new(pin).unwrap());
    s.pin_attempts = attempts;
    s
}

async fn password_required(p: &mut Party, flow: FlowId) {
    wait_for(&mut p.events, "password required", |e| {
        e.flow == flow && matches!(e.event, Event::PasswordRequired { pin: true } | Event::Finished(_))
    })
    .await;
}

/// Enters `pin` and waits for the verdict: `WrongPassword`, the
/// invitation, or the end.
async fn try_pin(p: &mut Party, flow: FlowId, pin: &str) -> Event {
    p.handle.password(flow, Password::new(pin).unwrap()).await.unwrap();
    wait_for(&mut p.events, "verdict", |e| {
        e.flow == flow && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await
    .event
}

/// PIN-1, PIN-2, PIN-5: the best offline attacker. It holds the ticket and
/// every value written to the DHT, read from it or nudged during a PIN flow
/// with a wrong and then the right PIN (hellos, replies, the response, the
/// final status and tombstone), and tries all 10^4 PINs of the 4-digit
/// invitation with every derivation it can compute (SPAKE2 on either side
/// against every recorded message under every transcript, keys from the
/// PIN alone): no candidate, the right one included, opens or confirms
/// anything. The same attacker against a password-locked invitation (the
/// offline Argon2id path, kept for passphrases) finds the password among the
/// same 10^4 candidates: the control that shows the harness can tell.
#[tokio::test(start_paused = true)]
async fn pin_1_offline_attacker_with_every_value_cannot_tell_any_pin() {
    let values = ValueLog::new();
    let net = MemoryNetwork::new();
    let mut alice = recorded_party(&net, "alice", &values).await;
    let mut bob = recorded_party(&net, "bob", &values).await;
    let (a, ticket) = {
        let s = pin_params(&alice, "4711", 3);
        publish_invitation(&mut alice, s).await
    };
    assert!(ticket.is_pin() && ticket.to_bytes().len() == 49, "a PIN ticket is as small as an unlocked one");
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    password_required(&mut bob, b).await;
    assert_eq!(try_pin(&mut bob, b, "1234").await, Event::WrongPassword);
    password_required(&mut bob, b).await;
    assert!(matches!(try_pin(&mut bob, b, "4711").await, Event::InvitationReceived(_)));
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut alice.events, a).await, Outcome::Contact(bob.identity.public_key()));

    let snapshot = values.snapshot();
    // Hellos were nudged to alice's device and replies to bob's (PIN-3, PIN-4).
    let nudged = |subkey: u32| snapshot.iter().filter(|v| v.op == "nudge" && v.subkey == subkey).count();
    assert!(nudged(1) >= 2 && nudged(0) >= 2, "hellos nudged {}, replies nudged {}", nudged(1), nudged(0));
    let mut captured: Vec<Vec<u8>> =
        snapshot.into_iter().filter(|v| v.record == ticket.record).map(|v| v.value).collect();
    for subkey in [0, 1] {
        captured.extend(net.stored_value(&ticket.record, subkey).map(|v| v.data));
    }
    let m = pin_attack::material(&ticket, &captured);
    let (hellos, replies, responses, finals) = m.counts();
    assert!(hellos >= 2 && replies >= 2, "the attacker saw both attempts: {:?}", m.counts());
    assert!(responses >= 1 && finals >= 1, "and the response and final status: {:?}", m.counts());
    assert!(m.opaque_to_ticket >= 1, "the response does not open under the ticket's keys");
    let told_apart: Vec<String> = (0..10_000)
        .map(|n| format!("{n:04}"))
        .filter(|pin| pin_attack::candidate_opens_anything(&ticket, pin.as_bytes(), &m))
        .collect();
    assert!(told_apart.is_empty(), "candidate PINs told apart offline: {told_apart:?}");

    // The control: a password-locked invitation (offline Argon2id) falls to
    // the same attacker, which finds exactly the password.
    let values = ValueLog::new();
    let net = MemoryNetwork::new();
    let mut carol = recorded_party(&net, "carol", &values).await;
    let mut s = SendParams::new(carol.identity.clone());
    s.lock = Lock::Password(Password::new("4711").unwrap());
    s.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    let (_, locked) = publish_invitation(&mut carol, s).await;
    let captured: Vec<Vec<u8>> = net.stored_value(&locked.record, 0).map(|v| v.data).into_iter().collect();
    let found: Vec<String> = (0..10_000)
        .map(|n| format!("{n:04}"))
        .filter(|pw| pin_attack::password_candidate_opens(&locked, pw, &captured))
        .collect();
    assert_eq!(found, vec!["4711".to_owned()], "the offline path is guessable, as documented");
}

/// PIN-6: after N wrong PINs (here the default 3), the next attempt (even
/// with the right PIN) revokes the invitation: the inviter's app is told
/// (`PinAttemptsExhausted`), its flow ends failed with
/// `ProtocolError::PinAttemptsExhausted`, the invitee's ends revoked, and
/// anyone who tries the ticket afterwards finds it revoked before any
/// attempt.
#[tokio::test(start_paused = true)]
async fn pin_6_n_wrong_pins_revoke_the_invitation() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut carol = party(&net, "carol").await;
    let params = pin_params(&alice, "4711", contact_invite::limits::DEFAULT_PIN_ATTEMPTS);
    assert_eq!(params.pin_attempts, 3);
    let (a, ticket) = publish_invitation(&mut alice, params).await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    for wrong in ["0000", "1111", "2222"] {
        password_required(&mut bob, b).await;
        assert_eq!(try_pin(&mut bob, b, wrong).await, Event::WrongPassword, "{wrong}");
    }
    password_required(&mut bob, b).await;
    bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
    let told = wait_for(&mut alice.events, "exhausted", |e| {
        e.flow == a && matches!(e.event, Event::PinAttemptsExhausted { .. } | Event::Finished(_))
    })
    .await;
    assert_eq!(told.event, Event::PinAttemptsExhausted { attempts: 3 });
    assert_eq!(
        finished(&mut alice.events, a).await,
        Outcome::Failed(Error::Protocol(ProtocolError::PinAttemptsExhausted { attempts: 3 }))
    );
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(Error::Protocol(ProtocolError::Revoked)));
    assert!(alice.contacts().await.is_empty() && bob.contacts().await.is_empty());
    // Further hellos find the invitation closed: no attempt is answered.
    let c = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    carol.handle.password(c, Password::new("4711").unwrap()).await.unwrap();
    assert_eq!(finished(&mut carol.events, c).await, Outcome::Failed(Error::Protocol(ProtocolError::Revoked)));
}

/// PIN-6: the limit is settable: with one attempt allowed, a wrong PIN and
/// then the right one revokes.
#[tokio::test(start_paused = true)]
async fn pin_6_the_limit_is_settable() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a, ticket) = {
        let s = pin_params(&alice, "271828", 1);
        publish_invitation(&mut alice, s).await
    };
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    password_required(&mut bob, b).await;
    assert_eq!(try_pin(&mut bob, b, "314159").await, Event::WrongPassword);
    password_required(&mut bob, b).await;
    bob.handle.password(b, Password::new("271828").unwrap()).await.unwrap();
    assert_eq!(
        finished(&mut alice.events, a).await,
        Outcome::Failed(Error::Protocol(ProtocolError::PinAttemptsExhausted { attempts: 1 }))
    );
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(Error::Protocol(ProtocolError::Revoked)));
}

/// PIN-5: a wrong PIN and then the right one completes; the app sees
/// `WrongPassword`, then the invitation, and both sides make the contact.
#[tokio::test(start_paused = true)]
async fn pin_5_wrong_then_right_pin_makes_the_contact() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a, ticket) = {
        let s = pin_params(&alice, "123456", 3);
        publish_invitation(&mut alice, s).await
    };
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    password_required(&mut bob, b).await;
    assert_eq!(try_pin(&mut bob, b, "654321").await, Event::WrongPassword);
    password_required(&mut bob, b).await;
    let Event::InvitationReceived(view) = try_pin(&mut bob, b, "123456").await else { panic!("no invitation") };
    assert_eq!(view.identity, alice.identity.public_key());
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut alice.events, a).await, Outcome::Contact(bob.identity.public_key()));
}

/// The ticket holder's writer key and the inviter's reply address (from the offer).
fn offer(net: &MemoryNetwork, ticket: &Ticket) -> (contact_invite::crypto::SigningKey, Option<Vec<u8>>) {
    let v = net.stored_value(&ticket.record, 0).expect("offer").data;
    pin_attack::open_offer(ticket, &v).expect("the ticket opens the offer")
}

/// A ticket holder's write over whatever the network holds (read first, so
/// its copy is current), checked to have landed.
async fn overwrite(
    net: &MemoryNetwork,
    who: &contact_invite::dht::MemoryDht,
    ticket: &Ticket,
    subkey: u32,
    value: Vec<u8>,
    writer: Option<&contact_invite::crypto::SigningKey>,
) {
    let key = record_key(ticket);
    let _ = who.get_value(&key, subkey, true).await.unwrap();
    who.set_value(&key, subkey, value.clone(), writer).await.unwrap();
    assert!(net.stored_value(&ticket.record, subkey).map(|v| v.data) == Some(value), "the write landed");
}

fn record_key(ticket: &Ticket) -> RecordKey {
    let secret = match &ticket.secret {
        contact_invite::encoding::TicketSecret::Pin(s) => s.inbox_secret(),
        _ => unreachable!(),
    };
    RecordKey::new(ticket.record, Some(secret))
}

/// PIN-8: replayed hellos are not answered twice and do not count twice.
/// With two attempts allowed, bob's wrong attempt's hello is replayed five
/// times by a ticket holder, over the DHT and as nudges to the inviter's
/// device: no new reply is written, and bob's second (right) attempt is
/// still answered and makes the contact. An old reply re-delivered to bob
/// is ignored too.
#[tokio::test(start_paused = true)]
async fn pin_8_replayed_pake_messages_are_not_answered_or_counted_twice() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mallory = dht(&net, "mallory");
    let (a, ticket) = {
        let s = pin_params(&alice, "4711", 2);
        publish_invitation(&mut alice, s).await
    };
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    password_required(&mut bob, b).await;
    assert_eq!(try_pin(&mut bob, b, "0000").await, Event::WrongPassword);
    let old_hello = net.stored_value(&ticket.record, 1).expect("hello").data;
    let old_reply = net.stored_value(&ticket.record, 0).expect("reply").data;
    assert!(pin_attack::hello_nonce(&ticket, &old_hello).is_some() && pin_attack::reply_nonce(&old_reply).is_some());
    let (writer, reply_to) = offer(&net, &ticket);
    let key = record_key(&ticket);
    mallory.open_record(&key, Some(&writer)).await.unwrap();
    for _ in 0..5 {
        overwrite(&net, &mallory, &ticket, 1, old_hello.clone(), Some(&writer)).await;
        if let Some(to) = &reply_to {
            let nudge = contact_invite::dht::Nudge { record: ticket.record, subkey: 1, value: old_hello.clone() };
            mallory.send_nudge(to, &nudge).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    assert!(net.stored_value(&ticket.record, 0).unwrap().data == old_reply, "a replayed hello is not answered");
    // The old reply (still in subkey 0) is what bob's next attempt reads
    // while alice's device is away: it answers another nonce and is ignored.
    password_required(&mut bob, b).await;
    alice.handle.shutdown().await;
    bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
    wait_for(&mut bob.events, "waiting", |e| e.flow == b && e.event == Event::WaitingForInviter).await;
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert!(net.stored_value(&ticket.record, 0).unwrap().data == old_reply, "bob read only the old reply");
    alice.restart(&net).await;
    let e = wait_for(&mut bob.events, "verdict", |e| {
        e.flow == b && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    assert!(matches!(e.event, Event::InvitationReceived(_)), "{:?}", e.event);
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut alice.events, a).await, Outcome::Contact(bob.identity.public_key()));
}

/// PIN-9: a man in the middle that holds the ticket and relays the PAKE
/// between the parties, replacing the invitee's message with its own (under
/// the invitee's nonce), gets no key: its guessed PIN does not finish the
/// run, the invitee sees a wrong PIN (not a contact with anyone), the
/// inviter makes no contact, and the invitee's next honest attempt
/// succeeds. Its own fresh attempts are counted like anyone's.
#[tokio::test(start_paused = true)]
async fn pin_9_a_man_in_the_middle_gets_no_contact_and_no_key() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mallory = dht(&net, "mallory");
    let (a, ticket) = {
        let s = pin_params(&alice, "4711", 3);
        publish_invitation(&mut alice, s).await
    };
    let (writer, _) = offer(&net, &ticket);
    let key = record_key(&ticket);
    mallory.open_record(&key, Some(&writer)).await.unwrap();
    // Alice's device is away while bob writes his hello, and mallory holds
    // the path for nudges: it swaps the hello before alice sees it.
    alice.handle.shutdown().await;
    net.set_nudges_enabled(false);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    password_required(&mut bob, b).await;
    bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
    let waiting = wait_for(&mut bob.events, "waiting", |e| e.flow == b && e.event == Event::WaitingForInviter).await;
    assert_eq!(waiting.event, Event::WaitingForInviter, "PIN-7: the invitee is told the inviter is away");
    let hello = net.stored_value(&ticket.record, 1).expect("bob's hello").data;
    let nonce = pin_attack::hello_nonce(&ticket, &hello).expect("nonce");
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    let forged = pin_attack::forge_hello(&ticket, nonce, "1234", seed).unwrap();
    overwrite(&net, &mallory, &ticket, 1, forged, Some(&writer)).await;
    alice.restart(&net).await;
    // Alice answers the forged message under bob's nonce; neither bob nor
    // mallory gets a key from it.
    let verdict = wait_for(&mut bob.events, "verdict", |e| {
        e.flow == b && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    assert_eq!(verdict.event, Event::WrongPassword, "an altered PAKE message fails key confirmation");
    let reply = net.stored_value(&ticket.record, 0).expect("reply").data;
    assert_eq!(pin_attack::reply_nonce(&reply).as_deref(), Some(nonce.as_slice()));
    for guess in ["1234", "4711", "0000"] {
        assert!(pin_attack::finish_forged(&ticket, guess, seed, &reply).is_none(), "mallory's {guess} opens nothing");
    }
    // Mallory's own attempt with a wrong guess is answered and counted; no key.
    let mut seed2 = [0u8; 32];
    OsRng.fill_bytes(&mut seed2);
    let mut n2 = [0u8; 16];
    OsRng.fill_bytes(&mut n2);
    let forged2 = pin_attack::forge_hello(&ticket, n2, "9999", seed2).unwrap();
    overwrite(&net, &mallory, &ticket, 1, forged2, Some(&writer)).await;
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    let reply2 = net.stored_value(&ticket.record, 0).expect("reply").data;
    assert_eq!(pin_attack::reply_nonce(&reply2).as_deref(), Some(n2.as_slice()), "answered");
    assert!(pin_attack::finish_forged(&ticket, "9999", seed2, &reply2).is_none());
    assert!(alice.contacts().await.is_empty());
    net.set_nudges_enabled(true);
    // Bob's honest attempt (the third) still succeeds.
    password_required(&mut bob, b).await;
    assert!(matches!(try_pin(&mut bob, b, "4711").await, Event::InvitationReceived(_)));
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut alice.events, a).await, Outcome::Contact(bob.identity.public_key()));
}

/// PIN-7: the inviter's device is offline when the invitee tries its PIN:
/// the invitee is told (`WaitingForInviter`) and keeps waiting; once the
/// device is back (within the invitation's lifetime) the attempt is
/// answered and the flow completes.
#[tokio::test(start_paused = true)]
async fn pin_7_offline_inviter_is_waited_for() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a, ticket) = {
        let s = pin_params(&alice, "4711", 3);
        publish_invitation(&mut alice, s).await
    };
    alice.handle.shutdown().await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    password_required(&mut bob, b).await;
    bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
    wait_for(&mut bob.events, "waiting", |e| e.flow == b && e.event == Event::WaitingForInviter).await;
    // Hours later the inviter's device comes back.
    tokio::time::sleep(std::time::Duration::from_secs(3 * 3600)).await;
    alice.restart(&net).await;
    let e = wait_for(&mut bob.events, "verdict", |e| {
        e.flow == b && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    assert!(matches!(e.event, Event::InvitationReceived(_)), "{:?}", e.event);
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut alice.events, a).await, Outcome::Contact(bob.identity.public_key()));
}

/// PIN-1 / EDGE-SECRET-1: the inviter keeps its PIN (to answer attempts),
/// but never prints it: the machine's `Debug` redacts it, in any form.
#[tokio::test]
async fn pin_secret_the_inviters_pin_is_redacted_in_debug() {
    let net = MemoryNetwork::new();
    let identity = Identity::generate(Profile::new("alice").unwrap(), "device", T0_MS / 1000, &mut OsRng).unwrap();
    let identity = driver::publish_identity(&net.join("alice"), identity).await.unwrap();
    let pin = "731902645518";
    let mut params = SendParams::new(identity);
    params.lock = Lock::Pin(Pin::new(pin).unwrap());
    let (m, _) = contact_invite::machine::Inviter::new(params, T0_MS, &mut OsRng).unwrap();
    let shown = format!("{m:?}");
    let bytes = format!("{:?}", pin.as_bytes());
    assert!(shown.contains("<redacted>"), "the PIN's slot is shown redacted");
    assert!(!shown.contains(pin) && !shown.contains(bytes.trim_matches(['[', ']'])), "the PIN is printed: {shown}");
}

/// Attacker review, F2 (PIN-1): a plain invitation whose ticket is
/// re-flagged as a PIN ticket showed the keypad and then opened whatever PIN
/// was typed, with no PAKE. A PIN ticket opens only a PIN offer.
#[tokio::test(start_paused = true)]
async fn pin_1_a_plain_invitation_under_a_pin_flagged_ticket_is_refused() {
    use contact_invite::encoding::TicketSecret;
    let net = MemoryNetwork::new();
    let mut mallory = party(&net, "mallory").await;
    let mut bob = party(&net, "bob").await;
    let params = SendParams::new(mallory.identity.clone());
    let (_m, plain) = publish_invitation(&mut mallory, params).await;
    let TicketSecret::Plain(s) = plain.secret.clone() else { panic!("a plain ticket") };
    let forged = Ticket { kind: plain.kind, record: plain.record, secret: TicketSecret::Pin(s) };
    let forged = Ticket::from_bytes(&forged.to_bytes()).unwrap();
    assert!(forged.is_pin());
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), forged)).await.unwrap();
    // The keypad may be answered before or after the inbox is read.
    let _ = bob.handle.password(b, Password::new("0000").unwrap()).await;
    let e = wait_for(&mut bob.events, "verdict", |e| {
        e.flow == b && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    assert!(
        matches!(e.event, Event::Finished(Outcome::Failed(Error::Protocol(ProtocolError::NotFound)))),
        "a PIN ticket must not open a plain invitation: {:?}",
        e.event
    );
}

/// Attacker review, F1 (PIN-10): a ticket holder reads the invitee's hello
/// and nudges it a reply of its own (its own PIN guess, its own invitation
/// under the inviter's name) while the inviter's device is away. Before the
/// fix the invitee took a nudged reply as it came: a wrong guess showed "wrong
/// PIN" for the right PIN (one uncounted guess per retry), a right guess
/// showed the attacker's invitation. Now a nudge only prompts a read of
/// subkey 0, which only the inbox owner can write.
#[tokio::test(start_paused = true)]
async fn pin_10_a_ticket_holder_answering_as_the_inviter_is_not_heard() {
    use contact_invite::dht::Nudge;
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mallory_dht = dht(&net, "mallory");
    let m_id = Identity::generate(Profile::new("mallory").unwrap(), "device", T0_MS / 1000, &mut OsRng).unwrap();
    let m_id = driver::publish_identity(&net.join("mallory-id"), m_id).await.unwrap();
    let params = pin_params(&alice, "4711", 3);
    let (a_flow, ticket) = publish_invitation(&mut alice, params).await;
    alice.handle.shutdown().await;

    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    password_required(&mut bob, b).await;
    bob.handle.password(b, Password::new("4711").unwrap()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // Mallory's best case: she guesses the right PIN.
    let offer = net.stored_value(&ticket.record, 0).unwrap().data;
    let hello = net.stored_value(&ticket.record, 1).unwrap().data;
    let (reply, to) = pin_attack::forge_reply(&ticket, &offer, &hello, "4711", &m_id, T0_MS / 1000 + 2).unwrap();
    let to = to.expect("the hello carries bob's reply address");
    mallory_dht.send_nudge(&to, &Nudge { record: ticket.record, subkey: 0, value: reply }).await.unwrap();
    let heard = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(e) = bob.events.recv().await {
            if e.flow == b
                && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
            {
                return Some(e.event);
            }
        }
        None
    })
    .await;
    assert!(heard.is_err(), "the invitee took a nudged reply that is not in subkey 0: {heard:?}");

    // Alice's device comes back and answers the same attempt.
    alice.restart(&net).await;
    let e = wait_for(&mut bob.events, "the invitation", |e| {
        e.flow == b && matches!(e.event, Event::WrongPassword | Event::InvitationReceived(_) | Event::Finished(_))
    })
    .await;
    match e.event {
        Event::InvitationReceived(v) => assert_eq!(v.identity, alice.identity.public_key()),
        other => panic!("expected Alice's invitation, got {other:?}"),
    }
    bob.handle.accept(b).await.unwrap();
    assert!(finished(&mut bob.events, b).await.is_contact());
    assert!(finished(&mut alice.events, a_flow).await.is_contact());
}
