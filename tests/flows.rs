//! Every flow end to end on MemoryDht, both sides, with the round-trip counts.

mod common;

use common::*;
use contact_invite::crypto::{Password, PasswordParams};
use contact_invite::dht::{Dht, MemoryNetwork, RecordKey};
use contact_invite::error::{Error, ProtocolError, VerifyError};
use contact_invite::flow::{Event, Lock, Outcome, ReceiveParams, SendParams};

fn send_params(p: &Party) -> SendParams {
    let mut s = SendParams::new(p.identity.clone());
    s.message = "hi, it's me".into();
    s
}

async fn publish(
    alice: &mut Party,
    params: Option<SendParams>,
) -> (contact_invite::flow::FlowId, contact_invite::encoding::Ticket) {
    let params = params.unwrap_or_else(|| send_params(alice));
    publish_invitation(alice, params).await
}

#[tokio::test(start_paused = true)]
async fn full_invitation_both_sides_with_round_trip_counts() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice, None).await;

    net.reset_op_counts();
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    let shown = wait_for(&mut bob.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    // Goal: scan -> profile shown in 1 sequential round trip.
    assert_eq!(shown.round_trips, 1);
    let Event::InvitationReceived(view) = shown.event else { unreachable!() };
    assert_eq!(view.profile.name(), "alice");
    assert_eq!(view.message, "hi, it's me");
    assert_eq!(view.identity, alice.identity.public_key());

    // The user reads the profile (virtual time advances only once every
    // pending operation, including the freshness read of Alice's identity
    // record, has completed).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    bob.handle.accept(b_flow).await.unwrap();
    let sent =
        wait_for(&mut bob.events, "response sent", |e| matches!(e.event, Event::ResponseSent { accepted: true })).await;
    // Goal: accept -> response stored in 1 (an accept given before the
    // freshness read returned waits for it, FRESH-4: then the chain counts
    // from the scan, 3).
    assert_eq!(sent.round_trips, 1);

    let est =
        wait_for(&mut alice.events, "alice contact", |e| matches!(e.event, Event::ContactEstablished { .. })).await;
    // Response seen (delivered with the watch notification) -> contact final
    // in 2: the responder's identity record is read, then the final status
    // written (FRESH-4: it used to be read beside the write, in 1, which let
    // one side end with a contact and the other without).
    assert_eq!(est.round_trips, 2);
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b_flow).await, Outcome::Contact(alice.identity.public_key()));

    let (ac, bc) = (alice.contacts().await, bob.contacts().await);
    assert_eq!((ac.len(), bc.len()), (1, 1));
    let (ac, bc) = (&ac[0], &bc[0]);
    assert_eq!(ac.peer, bob.identity.public_key());
    assert_eq!(bc.peer, alice.identity.public_key());
    assert_eq!(ac.profile.name(), "bob");
    assert_eq!(bc.profile.name(), "alice");
    assert_eq!(ac.conversation_key(), bc.conversation_key(), "both sides derive the same conversation key");
    assert_eq!(ac.local_conversation.opaque(), bc.remote_conversation.opaque());
    assert_eq!(ac.remote_conversation.opaque(), bc.local_conversation.opaque());
    assert_eq!(ac.via_inbox, bc.via_inbox);
    assert_eq!(ac.safety_code(&alice.identity.public_key()), bc.safety_code(&bob.identity.public_key()));

    // The inbox: request erased by the final status, response tombstoned.
    use contact_invite::dht::MemoryDht;
    let _ = std::marker::PhantomData::<MemoryDht>;
    let v0 = net.stored_value(&ticket.record, 0).expect("final status");
    let v1 = net.stored_value(&ticket.record, 1).expect("tombstone");
    // A signed tombstone (INT-TOMB-1), far smaller than the padded response.
    assert!(v1.data.len() < 256, "response subkey tombstoned ({} bytes)", v1.data.len());
    assert!(v0.seq >= 1);
    // Nothing left in flight or in the invitation table (after a command
    // round trip, the drivers have finished processing the final step).
    use contact_invite::store::Table;
    let _ = alice.handle.ticket(a_flow).await;
    let _ = bob.handle.ticket(b_flow).await;
    assert!(alice.store.is_empty(Table::Flows) && bob.store.is_empty(Table::Flows));
    assert!(alice.store.is_empty(Table::Invitations));
}

#[tokio::test(start_paused = true)]
async fn password_protected_invitation_wrong_then_right() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut params = send_params(&alice);
    params.lock = Lock::Password(Password::new("1234").unwrap());
    params.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    let (a_flow, ticket) = publish(&mut alice, Some(params)).await;
    assert!(matches!(ticket.secret, contact_invite::encoding::TicketSecret::Locked { .. }));

    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "password required", |e| matches!(e.event, Event::PasswordRequired { .. })).await;
    bob.handle.password(b, Password::new("1235").unwrap()).await.unwrap();
    wait_for(&mut bob.events, "wrong password", |e| e.event == Event::WrongPassword).await;
    bob.handle.password(b, Password::new("1234").unwrap()).await.unwrap();
    wait_for(&mut bob.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
}

#[tokio::test(start_paused = true)]
async fn reject_is_signed_same_size_and_makes_no_contact() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    // Keep alice offline while bob answers, to look at the stored response.
    let (a_flow, ticket) = publish(&mut alice, None).await;
    net.set_offline("alice", true);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    wait_for(&mut bob.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.reject(b).await.unwrap();
    wait_for(&mut bob.events, "reject sent", |e| matches!(e.event, Event::ResponseSent { accepted: false })).await;
    let reject_len = net.stored_value(&ticket.record, 1).unwrap().data.len();

    // An accept on another invitation, for size comparison.
    let mut carol = party(&net, "carol").await;
    net.set_offline("alice", false);
    // The inviter is told who rejected (issue 14, item 5).
    let peer = Some(bob.identity.public_key());
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::RejectedByPeer { peer });
    // After a reject the invitee waits for the final status too (FRESH-6).
    assert_eq!(finished(&mut bob.events, b).await, Outcome::RejectedByUs);
    let (_f2, t2) = publish(&mut alice, None).await;
    net.set_offline("alice", true);
    let c = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), t2.clone())).await.unwrap();
    wait_for(&mut carol.events, "invitation", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    carol.handle.accept(c).await.unwrap();
    wait_for(&mut carol.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let accept_len = net.stored_value(&t2.record, 1).unwrap().data.len();
    assert_eq!(reject_len, accept_len, "accept and reject are the same size on the DHT");
    assert!(alice.contacts().await.is_empty() && bob.contacts().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn inviter_expires_unanswered_invitation_and_late_invitee_is_told() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut params = send_params(&alice);
    params.expires_in_secs = 3600;
    let (a_flow, ticket) = publish(&mut alice, Some(params)).await;
    tokio::time::sleep(std::time::Duration::from_secs(3601)).await;
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Failed(ProtocolError::Expired.into()));
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(ProtocolError::Expired.into()));
}

#[tokio::test(start_paused = true)]
async fn invitee_enforces_expiry_even_if_inviter_never_closed_it() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut params = send_params(&alice);
    params.expires_in_secs = 3600;
    let (_a_flow, ticket) = publish(&mut alice, Some(params)).await;
    alice.handle.shutdown().await; // inviter gone: nobody writes "expired"
    tokio::time::sleep(std::time::Duration::from_secs(3601)).await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(ProtocolError::Expired.into()));
}

#[tokio::test(start_paused = true)]
async fn revoked_invitation_is_refused() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice, None).await;
    alice.handle.cancel(a_flow).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Cancelled);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(ProtocolError::Revoked.into()));
}

#[tokio::test(start_paused = true)]
async fn second_acceptor_gets_already_used() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut carol = party(&net, "carol").await;
    let (a_flow, ticket) = publish(&mut alice, None).await;
    net.set_offline("alice", true);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    let c = carol.handle.receive(ReceiveParams::new(carol.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    wait_for(&mut carol.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    wait_for(&mut bob.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    carol.handle.accept(c).await.unwrap();
    wait_for(&mut carol.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    net.set_offline("alice", false);
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
    assert_eq!(finished(&mut carol.events, c).await, Outcome::Failed(ProtocolError::AlreadyUsed.into()));
    assert_eq!(alice.contacts().await.len(), 1);
    assert!(carol.contacts().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn forged_response_without_writer_key_is_refused_by_the_dht() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice, None).await;
    let mallory = dht(&net, "mallory");
    let key = RecordKey::new(
        ticket.record,
        match &ticket.secret {
            contact_invite::encoding::TicketSecret::Plain(s) => Some(s.inbox_secret()),
            _ => None,
        },
    );
    mallory.open_record(&key, None).await.unwrap();
    let forged = mallory.set_value(&key, 1, vec![1, 2, 3], Some(&random_key())).await;
    assert!(forged.is_err(), "a key outside the schema cannot write the response subkey");
    let forged = mallory.set_value(&key, 0, vec![1, 2, 3], Some(&random_key())).await;
    assert!(forged.is_err(), "nor the owner subkey");
    // The invitation still works for the real invitee.
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
}

#[tokio::test(start_paused = true)]
async fn response_replayed_from_another_invitation_is_ignored() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_f1, t1) = publish(&mut alice, None).await;
    let (f2, t2) = publish(&mut alice, None).await;
    net.set_offline("alice", true);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), t1.clone())).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    wait_for(&mut bob.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    let captured = net.stored_value(&t1.record, 1).unwrap().data;
    // A hostile node copies bob's response for invitation 1 into invitation 2.
    net.tamper_value(&t2.record, 1, captured);
    net.set_offline("alice", false);
    let ignored =
        wait_for(&mut alice.events, "ignored", |e| e.flow == f2 && matches!(e.event, Event::ResponseIgnored { .. }))
            .await;
    let Event::ResponseIgnored { reason } = ignored.event else { unreachable!() };
    assert_eq!(reason, contact_invite::error::ErrorCode::DecryptionFailed, "{reason:?}");
    // Invitation 2 is still open: no contact was made from the replay.
    assert!(alice.handle.ticket(f2).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn tampered_inbox_value_gives_a_typed_error() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (_a, ticket) = publish(&mut alice, None).await;
    let mut v = net.stored_value(&ticket.record, 0).unwrap().data;
    let n = v.len();
    v[n - 5] ^= 0x40;
    net.tamper_value(&ticket.record, 0, v);
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    match finished(&mut bob.events, b).await {
        Outcome::Failed(Error::Verify(VerifyError::DecryptionFailed)) => {}
        other => panic!("expected a decryption failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn inviter_keeps_retrying_the_final_status_while_offline() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let (a_flow, ticket) = publish(&mut alice, None).await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    // Alice's device loses the network; the watch still hands her the response,
    // but her final status cannot be written.
    net.set_offline("alice", true);
    bob.handle.accept(b).await.unwrap();
    wait_for(&mut bob.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;
    tokio::time::sleep(std::time::Duration::from_secs(300)).await; // well past the quick retries
    assert!(alice.contacts().await.is_empty(), "no contact before the final status is written");
    net.set_offline("alice", false);
    assert_eq!(finished(&mut alice.events, a_flow).await, Outcome::Contact(bob.identity.public_key()));
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.identity.public_key()));
}

#[tokio::test(start_paused = true)]
async fn accepting_after_expiry_fails_fast_and_writes_nothing() {
    let net = MemoryNetwork::new();
    let mut alice = party(&net, "alice").await;
    let mut bob = party(&net, "bob").await;
    let mut params = SendParams::new(alice.identity.clone());
    params.expires_in_secs = 600;
    let (_a_flow, ticket) = publish(&mut alice, Some(params)).await;
    alice.handle.shutdown().await;
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket.clone())).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    tokio::time::sleep(std::time::Duration::from_secs(601)).await; // the user waited too long
    bob.handle.accept(b).await.unwrap();
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Failed(ProtocolError::Expired.into()));
    assert!(net.stored_value(&ticket.record, 1).is_none(), "no response was written");
}
