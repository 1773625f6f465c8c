//! A complete invitation between two parties on the in-memory DHT, printing
//! each step and both new contacts.
//!
//! `cargo run --no-default-features --example quickstart` (no veilid-core to
//! build; plain `cargo run --example quickstart` works too but compiles it)

use std::sync::Arc;

// One import: what an app uses.
use contact_invite::prelude::*;

async fn until(
    events: &mut Events,
    who: &str,
    pred: impl Fn(&Event) -> bool,
) -> Result<Event, Box<dyn std::error::Error>> {
    while let Some(e) = events.recv().await {
        println!(
            "  [{who}] {:<60} (round trips: {})",
            format!("{:?}", e.event).chars().take(60).collect::<String>(),
            e.round_trips
        );
        if pred(&e.event) {
            return Ok(e.event);
        }
    }
    Err("driver stopped".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = MemoryNetwork::new();
    let now = driver::SystemClock.now_secs();

    println!("1. Alice and Bob create and publish their identities");
    let alice = Identity::generate(Profile::new("Alice")?.with_pronouns("she/her")?, "alice-phone", now, &mut OsRng)?;
    let alice = driver::publish_identity(&net.join("alice"), alice).await?;
    let bob = Identity::generate(Profile::new("Bob")?, "bob-laptop", now, &mut OsRng)?;
    let bob = driver::publish_identity(&net.join("bob"), bob).await?;

    let alice_store = Arc::new(MemoryStore::new());
    let (a, mut a_events) = driver::start(net.join("alice"), alice_store.clone(), DriverConfig::default()).await?;
    let bob_store = Arc::new(MemoryStore::new());
    let (b, mut b_events) = driver::start(net.join("bob"), bob_store.clone(), DriverConfig::default()).await?;

    println!("2. Alice sends an invitation");
    let mut params = SendParams::new(alice.clone());
    params.message = "Hi Bob, it's Alice from the meetup".into();
    let a_flow = a.send_invitation(params).await?;
    until(&mut a_events, "alice", |e| matches!(e, Event::InvitationPublished { .. })).await?;
    let ticket = a.ticket(a_flow).await?.ok_or("no ticket")?;
    println!("   ticket: {} bytes; as text: {ticket}", ticket.to_bytes().len());
    let message = format!("Hi Bob, add me: {}", ticket.to_uri(&UriScheme::new("chat")?));

    println!("3. Bob pastes Alice's message and sees who is inviting him");
    let Scanned::Ticket(ticket) = parse_scanned(&message, &LinkConfig::new(UriScheme::new("chat")?))? else {
        return Err("not an invitation".into());
    };
    let b_flow = b.receive(ReceiveParams::new(bob.clone(), ticket)).await?;
    if let Event::InvitationReceived(view) =
        until(&mut b_events, "bob", |e| matches!(e, Event::InvitationReceived(_))).await?
    {
        println!("   from {} ({}): {:?}", view.profile.name(), view.profile.pronouns(), view.message);
    }

    println!("4. Bob accepts");
    b.accept(b_flow).await?;
    until(&mut b_events, "bob", |e| matches!(e, Event::ResponseSent { .. })).await?;

    println!("5. Alice finalizes; Bob reads her final status");
    until(&mut a_events, "alice", |e| matches!(e, Event::Finished(_))).await?;
    until(&mut b_events, "bob", |e| matches!(e, Event::Finished(_))).await?;

    let ac = driver::contacts(alice_store.as_ref()).await?.contacts;
    let bc = driver::contacts(bob_store.as_ref()).await?.contacts;
    for (who, own, c) in ac.iter().map(|c| ("Alice", &alice, c)).chain(bc.iter().map(|c| ("Bob", &bob, c))) {
        println!(
            "{who}'s new contact: {} (identity {}), conversation record {}",
            c.profile.name(),
            c.peer.fmt_short(),
            c.remote_conversation.fmt_short()
        );
        println!("  safety number: {}", c.safety_code(&own.public_key()));
    }
    if let (Some(x), Some(y)) = (ac.first(), bc.first()) {
        println!("Same conversation key on both sides: {}", x.conversation_key() == y.conversation_key());
    }
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
