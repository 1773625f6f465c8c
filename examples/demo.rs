//! The full demo on a real private Veilid network on this machine.
//!
//! Run it with `scripts/demo.sh` (it starts the sealed network namespace):
//! six veilid-core nodes come up; Alice invites Bob with a password; the
//! ticket is shown as its text form, text armor, URI and QR code; Bob's app
//! reads what he pasted or scanned with `parse_scanned`; Bob sees
//! Alice's profile and accepts; Alice finalizes; both print their new
//! contact. Then an invitation Bob rejects, one that expires, and a
//! multi-use invitation (two uses: Carol and Dave become contacts, Erin is
//! told there are no uses left) with its accounting. Every step shows its
//! timing and the DHT operations it took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::crypto::{Password, PasswordParams};
use contact_invite::dht::veilid::VeilidDht;
use contact_invite::dht::{OpLog, OpRecord, Recorded, median};
use contact_invite::driver::{self, Clock, DriverConfig, Events, Handle, OffsetClock};
use contact_invite::encoding::{HttpsBase, LinkConfig, Scanned, Ticket, UriScheme, parse_scanned, parse_scanned_bytes};
use contact_invite::flow::{Event, FlowId, Lock, Outcome, ReceiveParams, SendParams, Uses, UsesView};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions};
use rand_core::OsRng;

type Error = Box<dyn std::error::Error>;

struct Party {
    name: &'static str,
    identity: Identity,
    handle: Handle,
    events: Events,
    store: Arc<MemoryStore>,
    clock: OffsetClock,
    log: OpLog,
}

struct Demo {
    start: Instant,
    all_ops: Vec<OpRecord>,
}

impl Demo {
    fn say(&self, who: &str, what: &str) {
        println!("[{:>6.2} s] {who:<6} {what}", self.start.elapsed().as_secs_f64());
    }
    fn ops(&mut self, p: &Party) -> String {
        let ops = p.log.drain();
        let s: Vec<String> = ops
            .iter()
            .filter(|o| matches!(o.op, "create" | "open" | "get" | "set"))
            .map(|o| format!("{} {:.1} ms{}", o.op, o.elapsed.as_secs_f64() * 1e3, if o.ok { "" } else { " (failed)" }))
            .collect();
        self.all_ops.extend(ops);
        if s.is_empty() { String::new() } else { format!("  [{}]", s.join(", ")) }
    }
}

async fn party(net: &LocalNetwork, node: usize, name: &'static str, profile: Profile) -> Result<Party, Error> {
    let clock = OffsetClock::new();
    let id = Identity::generate(profile, &format!("{name}'s device"), clock.now_ms() / 1000, &mut OsRng)?;
    let identity = driver::publish_identity(&net.dht(node)?, id).await?;
    let log = OpLog::new();
    let store = Arc::new(MemoryStore::new());
    let cfg = DriverConfig::builder().clock(clock.clone()).build();
    let (handle, events) =
        driver::start::<Recorded<VeilidDht>, _>(Recorded::new(net.dht(node)?, log.clone()), store.clone(), cfg).await?;
    Ok(Party { name, identity, handle, events, store, clock, log })
}

/// Waits for the next event of `p` matching `pred`, narrating every event.
async fn until(d: &mut Demo, p: &mut Party, flow: FlowId, pred: impl Fn(&Event) -> bool) -> Result<Event, Error> {
    let r = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(e) = p.events.recv().await {
            if e.flow != flow {
                continue;
            }
            let what = match &e.event {
                Event::InvitationPublished { .. } => "inbox created and request published".to_owned(),
                Event::PasswordRequired { .. } => "the ticket is locked: password required".to_owned(),
                Event::WrongPassword => "wrong password".to_owned(),
                Event::InvitationReceived(v) => format!(
                    "inbox read, signature, identity chain and expiry verified: invitation from {}",
                    v.profile.name()
                ),
                Event::ResponseSent { accepted } => {
                    format!("{} signed and stored in the inbox", if *accepted { "accept" } else { "reject" })
                }
                Event::ResponseIgnored { reason } => format!("ignored an invalid response: {reason:?}"),
                Event::ContactEstablished { name, .. } => format!("contact with {name} is final and saved"),
                Event::UsesChanged(v) => accounting(v),
                Event::Finished(Outcome::MultiUseClosed(v)) => format!("flow finished: closed, {}", accounting(v)),
                Event::Finished(o) => format!("flow finished: {o:?}"),
                other => format!("{other:?}"),
            };
            let ops = d.ops(p);
            d.say(p.name, &format!("{what} (round trips: {}){ops}", e.round_trips));
            if pred(&e.event) {
                return Some(e.event);
            }
        }
        None
    })
    .await;
    r.ok().flatten().ok_or_else(|| format!("{} stopped or timed out", p.name).into())
}

fn show_ticket(t: &Ticket) -> Result<(), Error> {
    println!(
        "\n  Ticket: {} bytes, QR version {} (VeilidChat: 208 bytes, version 9)",
        t.to_bytes().len(),
        t.qr_version()?
    );
    println!("\n    {t}");
    println!("\n{}", t.to_armor().lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n"));
    println!("\n    {}", t.to_uri(&UriScheme::new("chat")?));
    // For a device without the app: the landing page (web/) at this base
    // reads the ticket from the fragment, which never reaches a server.
    println!("    {}\n", t.to_https(&HttpsBase::new("https://chat.example/invite")?));
    println!("{}", t.qr_terminal()?);
    Ok(())
}

fn links() -> Result<LinkConfig, Error> {
    Ok(LinkConfig::new(UriScheme::new("chat")?))
}

/// A multi-use invitation's accounting, as an inviter's app shows it.
fn accounting(v: &UsesView) -> String {
    let names: Vec<&str> = v.accepted.iter().map(|u| u.name.as_str()).collect();
    let limit = v.limit.map_or("unlimited".to_owned(), |l| l.to_string());
    let left = v.time_left(driver::SystemClock.now_secs());
    format!(
        "accepted {} of {limit} ({}), rejected {}, turned away {}, {}",
        v.used(),
        if names.is_empty() { "nobody yet".to_owned() } else { names.join(", ") },
        v.rejected,
        v.turned_away,
        match v.closed {
            Some(why) => format!("closed: {why:?}"),
            None => format!("open for {} h {} min more", left / 3600, left % 3600 / 60),
        }
    )
}

/// What Bob's app does with anything he pastes: one entry point, which
/// finds the ticket in the message and says why when it cannot.
fn pasted(text: &str) -> Result<Ticket, Error> {
    match parse_scanned(text, &links()?)? {
        Scanned::Ticket(t) => Ok(t),
        _ => Err("that is an address, not an invitation".into()),
    }
}

/// The same for what his camera read from the QR code (the binary ticket).
fn scanned(qr: &[u8]) -> Result<Ticket, Error> {
    match parse_scanned_bytes(qr, &links()?)? {
        Scanned::Ticket(t) => Ok(t),
        _ => Err("that is an address, not an invitation".into()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Error> {
    let mut d = Demo { start: Instant::now(), all_ops: Vec::new() };
    println!("contact-invite demo: a private Veilid network on this machine, no traffic leaves it\n");
    if let Err(e) = LocalNetwork::check_namespace(6) {
        eprintln!("{e}\nRun this demo with scripts/demo.sh, which creates the sealed network namespace.");
        std::process::exit(2);
    }
    d.say("net", "starting 6 veilid-core nodes");
    let net = LocalNetwork::start(LocalNetworkOptions::default()).await?;
    let attach: Vec<String> = net.attach_times().iter().map(|t| format!("{:.1}", t.as_secs_f64())).collect();
    let rss = net.report().rss_per_node_kib().map_or("?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    d.say("net", &format!("all nodes attached (attach times {} s; memory {rss} per node)", attach.join(", ")));

    let mut alice =
        party(&net, 1, "Alice", Profile::new("Alice")?.with_pronouns("she/her")?.with_status("at the meetup")?).await?;
    let mut bob = party(&net, 2, "Bob", Profile::new("Bob")?.with_about("plays the oboe")?).await?;
    d.say("both", "identities published (each a signed record listing its device)");

    // 1. Alice invites Bob with a password.
    println!("\n== 1. Alice invites Bob, protected with a password");
    let t_send = Instant::now();
    let mut params = SendParams::new(alice.identity.clone());
    params.message = "Hi Bob, it's Alice from the meetup!".into();
    params.lock = Lock::Password(Password::new("oboe-7291")?);
    params.password_params = PasswordParams::DEFAULT;
    let a_flow = alice.handle.send_invitation(params).await?;
    d.say("Alice", "Argon2id-locked the invitation secret (64 MiB, 3 passes)");
    until(&mut d, &mut alice, a_flow, |e| matches!(e, Event::InvitationPublished { .. })).await?;
    let ticket = alice.handle.ticket(a_flow).await?.ok_or("no ticket")?;
    show_ticket(&ticket)?;

    let message = format!("Alice: here is my invitation {} see you!", ticket.to_uri(&UriScheme::new("chat")?));
    let ticket = pasted(&message)?;
    d.say("Bob", "pasted Alice's message; parse_scanned found the ticket in it");
    let b_flow = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await?;
    until(&mut d, &mut bob, b_flow, |e| matches!(e, Event::PasswordRequired { .. })).await?;
    bob.handle.password(b_flow, Password::new("oboe-7291")?).await?;
    if let Event::InvitationReceived(v) =
        until(&mut d, &mut bob, b_flow, |e| matches!(e, Event::InvitationReceived(_))).await?
    {
        println!("\n           {} ({}) says: {:?}", v.profile.name(), v.profile.pronouns(), v.message);
        println!(
            "           status: {:?}; identity {}; expires at {}\n",
            v.profile.status(),
            v.identity.fmt_short(),
            v.expires_at
        );
    }
    d.say("Bob", "accepts");
    bob.handle.accept(b_flow).await?;
    until(&mut d, &mut bob, b_flow, |e| matches!(e, Event::ResponseSent { .. })).await?;
    until(&mut d, &mut alice, a_flow, |e| matches!(e, Event::Finished(_))).await?;
    until(&mut d, &mut bob, b_flow, |e| matches!(e, Event::Finished(_))).await?;
    let end_to_end = t_send.elapsed();

    let ac = driver::contacts(alice.store.as_ref()).await?.contacts;
    let bc = driver::contacts(bob.store.as_ref()).await?.contacts;
    println!();
    for (who, own, c) in ac.iter().map(|c| ("Alice", &alice, c)).chain(bc.iter().map(|c| ("Bob", &bob, c))) {
        println!(
            "  {who}'s new contact: {:<6} identity {}  conversation record {}",
            c.profile.name(),
            c.peer.fmt_short(),
            c.remote_conversation.fmt_short(),
        );
        println!("    safety number: {}", c.safety_code(&own.identity.public_key()));
    }
    if let (Some(x), Some(y)) = (ac.first(), bc.first()) {
        println!("  Same conversation key on both sides: {}", x.conversation_key() == y.conversation_key());
        // Bob scans the safety-number QR code on Alice's screen: one step.
        let shown = x.safety_number(&alice.identity.public_key()).qr_payload();
        let mut y = y.clone();
        let now = driver::SystemClock.now_secs();
        y.verify_scanned_safety_number(&bob.identity.public_key(), &shown, now)?;
        driver::save_contact(bob.store.as_ref(), &y).await?;
        println!("  Bob scanned Alice's safety-number QR code ({} bytes): verified = {}", shown.len(), y.is_verified());
    }
    println!("  End to end (send -> both contacts final, incl. Argon2id twice): {:.2} s", end_to_end.as_secs_f64());

    // 2. Bob rejects.
    println!("\n== 2. Alice invites Bob again; Bob rejects");
    let params = SendParams::new(alice.identity.clone());
    let a2 = alice.handle.send_invitation(params).await?;
    until(&mut d, &mut alice, a2, |e| matches!(e, Event::InvitationPublished { .. })).await?;
    let t2 = alice.handle.ticket(a2).await?.ok_or("no ticket")?;
    let b2 = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), scanned(&t2.to_bytes())?)).await?;
    until(&mut d, &mut bob, b2, |e| matches!(e, Event::InvitationReceived(_))).await?;
    d.say("Bob", "rejects (the reject is signed and padded to the size of an accept)");
    bob.handle.reject(b2).await?;
    until(&mut d, &mut bob, b2, |e| matches!(e, Event::Finished(_))).await?;
    until(&mut d, &mut alice, a2, |e| matches!(e, Event::Finished(_))).await?;

    // 3. An invitation that expires.
    println!(
        "\n== 3. An invitation that expires (Alice's and Bob's clocks are moved 2 minutes ahead rather than waiting)"
    );
    let mut params = SendParams::new(alice.identity.clone());
    params.expires_in_secs = 60;
    let a3 = alice.handle.send_invitation(params).await?;
    until(&mut d, &mut alice, a3, |e| matches!(e, Event::InvitationPublished { .. })).await?;
    let t3 = alice.handle.ticket(a3).await?.ok_or("no ticket")?;
    alice.clock.advance(Duration::from_secs(120));
    bob.clock.advance(Duration::from_secs(120));
    until(&mut d, &mut alice, a3, |e| matches!(e, Event::Finished(_))).await?;
    let b3 = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), pasted(&t3.to_string())?)).await?;
    let o = until(&mut d, &mut bob, b3, |e| matches!(e, Event::Finished(_))).await?;
    if !matches!(o, Event::Finished(Outcome::Failed(_))) {
        return Err("the expired invitation was not refused".into());
    }

    // 4. A multi-use invitation: two uses, three people.
    println!("\n== 4. A multi-use invitation for the meetup: 2 uses; Carol and Dave accept, Erin comes too late");
    let mut carol = party(&net, 3, "Carol", Profile::new("Carol")?).await?;
    let mut dave = party(&net, 4, "Dave", Profile::new("Dave")?).await?;
    let mut erin = party(&net, 5, "Erin", Profile::new("Erin")?).await?;
    let mut params = SendParams::new(alice.identity.clone());
    params.message = "Meetup group: scan to add me".into();
    params.uses = Uses::AtMost(2);
    let a4 = alice.handle.send_invitation(params).await?;
    until(&mut d, &mut alice, a4, |e| matches!(e, Event::InvitationPublished { .. })).await?;
    let t4 = alice.handle.ticket(a4).await?.ok_or("no ticket")?;
    println!("\n    {}\n", t4.to_https(&HttpsBase::new("https://chat.example/invite")?));
    let mut accepted = Vec::new();
    for p in [&mut carol, &mut dave] {
        let f = p.handle.receive(ReceiveParams::new(p.identity.clone(), t4.clone())).await?;
        until(&mut d, p, f, |e| matches!(e, Event::InvitationReceived(_))).await?;
        d.say(p.name, "accepts");
        p.handle.accept(f).await?;
        accepted.push(f);
    }
    for (p, f) in [&mut carol, &mut dave].into_iter().zip(accepted) {
        until(&mut d, p, f, |e| matches!(e, Event::Finished(_))).await?;
    }
    let closed = until(&mut d, &mut alice, a4, |e| matches!(e, Event::Finished(_))).await?;
    if !matches!(&closed, Event::Finished(Outcome::MultiUseClosed(v)) if v.used() == 2) {
        return Err("the multi-use invitation did not close with two contacts".into());
    }
    let e4 = erin.handle.receive(ReceiveParams::new(erin.identity.clone(), t4)).await?;
    let o = until(&mut d, &mut erin, e4, |e| matches!(e, Event::Finished(_))).await?;
    if !matches!(o, Event::Finished(Outcome::Failed(_))) {
        return Err("a used-up invitation was not refused".into());
    }
    let contacts = driver::contacts(alice.store.as_ref()).await?.contacts;
    let names: Vec<&str> = contacts.iter().map(|c| c.profile.name()).collect();
    println!("  Alice's contacts now: {}", names.join(", "));

    // Per-operation latency over the whole run.
    println!("\n== DHT operation latency in this run (median / max over {} operations)", d.all_ops.len());
    for op in ["create", "open", "get", "set", "watch"] {
        let v: Vec<Duration> = d.all_ops.iter().filter(|o| o.op == op && o.ok).map(|o| o.elapsed).collect();
        if let (Some(m), Some(max)) = (median(&d.all_ops, op), v.iter().max()) {
            println!(
                "  {op:<7} {:>7.1} ms / {:>7.1} ms  ({} ops)",
                m.as_secs_f64() * 1e3,
                max.as_secs_f64() * 1e3,
                v.len()
            );
        }
    }
    for p in [&alice, &bob, &carol, &dave, &erin] {
        p.handle.shutdown().await;
    }
    net.shutdown().await;
    d.say("net", "all nodes shut down");
    Ok(())
}
