//! A chat app's view of the library, written against the public API alone
//! (`contact_invite::prelude`): each party has its own store on disk and a
//! UI that renders every event as a line of its log.
//!
//! The session: Alice invites Bob with a PIN and shares the link in a chat
//! message; Bob's app finds it with `parse_scanned` (a damaged copy is
//! refused with what to tell the user); Bob types a wrong PIN, then the
//! right one, sees Alice's verified profile, and his app is killed before he
//! decides. It restarts from its store, lists what is in progress, and Bob
//! accepts. Then the cases a UI must render: a second scan of the used ticket,
//! Alice scanning her own invitation, a revoked invitation, a rejection, and
//! a command that does not apply.
//!
//! `cargo run --no-default-features --features qr --example app` (in-memory
//! DHT; no veilid-core to build).

use std::path::Path;
use std::sync::Arc;

use contact_invite::prelude::*;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The app's URI scheme (`chat://invite/…`).
fn scheme() -> Res<UriScheme> {
    Ok(UriScheme::new("chat")?)
}

/// How a UI would phrase an event: one line, no secrets, typed fields only.
fn render(e: &Event) -> String {
    match e {
        Event::InvitationPublished { expires_at, kind, locked } => format!(
            "{kind:?} invitation ready to show{} (expires in {} h)",
            if *locked { ", locked" } else { "" },
            expires_at.saturating_sub(driver::SystemClock.now_secs()).div_ceil(3600)
        ),
        Event::PasswordRequired { pin: true } => "locked: show the PIN keypad".into(),
        Event::PasswordRequired { pin: false } => "locked: ask for the password".into(),
        Event::WrongPassword => "wrong PIN or password: try again".into(),
        Event::WaitingForInviter => "waiting for the inviter's device to come online to check the PIN".into(),
        Event::PinAttemptsExhausted { attempts } => format!("{attempts} wrong PINs: the invitation was revoked"),
        Event::InvitationReceived(v) => {
            format!(
                "invitation from {} (identity {}): \"{}\" [accept] [reject]",
                v.profile.name(),
                v.identity.fmt_short(),
                v.message
            )
        }
        Event::ResponseSent { accepted: true } => "accepted; waiting for the inviter to confirm".into(),
        Event::ResponseSent { accepted: false } => "rejected".into(),
        Event::ResponseIgnored { reason } => format!("ignored a response that did not verify ({reason:?})"),
        Event::ContactEstablished { peer, name } => format!("{name} is now a contact ({})", peer.fmt_short()),
        Event::Finished(o) => match o {
            Outcome::Contact(p) => format!("done: contact {}", p.fmt_short()),
            Outcome::RejectedByPeer { .. } => "done: the invitation was declined".into(),
            Outcome::RejectedByUs => "done: you declined".into(),
            Outcome::Cancelled => "done: cancelled".into(),
            Outcome::Failed(err) => format!("done: failed [{:?}] {err}", err.code()),
            other => format!("done: {other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// One party's app: its driver, its event stream, its store directory.
struct App {
    name: &'static str,
    handle: Handle,
    events: Events,
    identity: Identity,
}

impl App {
    /// Starts (or restarts) the app from its store directory. On a first
    /// start it makes and publishes an identity; afterwards it loads it.
    async fn start(net: &MemoryNetwork, name: &'static str, dir: &Path) -> Res<Self> {
        let store = Arc::new(FileStore::open(dir)?);
        let identity = match driver::identities(store.as_ref()).await?.identities.pop() {
            Some(id) => id,
            None => {
                let now = driver::SystemClock.now_secs();
                let fresh = Identity::generate(Profile::new(name)?, "phone", now, &mut OsRng)?;
                let id = driver::publish_identity(&net.join(name), fresh).await?;
                driver::save_identity(store.as_ref(), &id).await?;
                id
            }
        };
        let (handle, events) = driver::start(net.join(name), store, DriverConfig::default()).await?;
        Ok(Self { name, handle, events, identity })
    }

    /// Renders events until one matches `done`, and returns it.
    async fn until(&mut self, flow: FlowId, done: impl Fn(&Event) -> bool) -> Res<Event> {
        while let Some(e) = self.events.recv().await {
            println!("  {:>5} | {:<14} | {}", self.name, e.flow.fmt_short(), render(&e.event));
            if e.flow == flow && done(&e.event) {
                return Ok(e.event);
            }
        }
        Err("the driver stopped".into())
    }

    async fn finished(&mut self, flow: FlowId) -> Res<Outcome> {
        match self.until(flow, |e| matches!(e, Event::Finished(_))).await? {
            Event::Finished(o) => Ok(o),
            _ => Err("unreachable".into()),
        }
    }

    /// Publishes an invitation and returns its flow and the message the user
    /// shares (the ticket's link inside some chat text).
    async fn invite(&mut self, pin: Option<&str>) -> Res<(FlowId, String)> {
        let mut params = SendParams::new(self.identity.clone());
        params.message = format!("Hi, it's {}", self.name);
        if let Some(pin) = pin {
            params.lock = Lock::Pin(Pin::new(pin)?);
        }
        let flow = self.handle.send_invitation(params).await?;
        self.until(flow, |e| matches!(e, Event::InvitationPublished { .. })).await?;
        let ticket = self.handle.ticket(flow).await?.ok_or("published, so it has a ticket")?;
        Ok((flow, format!("Add me: {} (from {})", ticket.to_uri(&scheme()?), self.name)))
    }

    /// What the app does with pasted or scanned text: finds the ticket in
    /// it, or shows why it cannot (`ScanAdvice`), then starts receiving.
    async fn scan(&mut self, pasted: &str) -> Res<FlowId> {
        let ticket = match parse_scanned(pasted, &LinkConfig::new(scheme()?)) {
            Ok(Scanned::Ticket(t)) => t,
            Ok(_) => return Err("an address, not an invitation".into()),
            Err(e) => return Err(e.advice().message().into()),
        };
        Ok(self.handle.receive(ReceiveParams::new(self.identity.clone(), ticket)).await?)
    }

    async fn print_in_progress(&self) -> Res<()> {
        for f in self.handle.flows().await? {
            println!(
                "  {:>5} | {:<14} | in progress: {:?}, {}{}",
                self.name,
                f.id.fmt_short(),
                f.kind,
                f.state,
                if f.locked { ", locked" } else { "" }
            );
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Res<()> {
    let net = MemoryNetwork::new();
    let dirs = tempfile::tempdir()?;
    let (a_dir, b_dir, c_dir) = (dirs.path().join("alice"), dirs.path().join("bob"), dirs.path().join("carol"));
    let mut alice = App::start(&net, "Alice", &a_dir).await?;
    let mut bob = App::start(&net, "Bob", &b_dir).await?;

    println!("1. Alice invites Bob with a PIN");
    let (a_flow, message) = alice.invite(Some("4711")).await?;

    println!("2. Bob pastes her message: a wrong PIN, then the right one");
    let damaged = message.replacen("chat://invite/invite-2-", "chat://invite/invite-2-x", 1);
    match bob.scan(&damaged).await {
        Err(e) => println!("    Bob | pasted a damaged copy first: {e}"),
        Ok(_) => return Err("a damaged ticket must be refused".into()),
    }
    let b_flow = bob.scan(&message).await?;
    bob.until(b_flow, |e| matches!(e, Event::PasswordRequired { pin: true })).await?;
    bob.handle.password(b_flow, Password::new("0000")?).await?;
    bob.until(b_flow, |e| matches!(e, Event::WrongPassword)).await?;
    bob.handle.password(b_flow, Password::new("4711")?).await?;
    bob.until(b_flow, |e| matches!(e, Event::InvitationReceived(_))).await?;

    println!("3. Bob's app is killed before he decides; it restarts from its store");
    bob.handle.shutdown().await;
    let mut bob = App::start(&net, "Bob", &b_dir).await?;
    bob.print_in_progress().await?;
    bob.until(b_flow, |e| matches!(e, Event::InvitationReceived(_))).await?;

    println!("4. Bob accepts; both sides finish");
    bob.handle.accept(b_flow).await?;
    let outcome = bob.finished(b_flow).await?;
    alice.finished(a_flow).await?;
    println!("  Bob's outcome is a contact: {}", outcome.is_contact());
    for app in [&alice, &bob] {
        let list = app.handle.contacts().await?;
        for c in &list.contacts {
            println!(
                "  {:>5} | contact {} | safety number {}",
                app.name,
                c.profile.name(),
                c.safety_code(&app.identity.public_key())
            );
        }
    }

    println!("5. A command on a flow that has ended is refused, with its reason");
    match bob.handle.accept(b_flow).await {
        Err(e) => println!("  Bob accepts again: refused [{:?}] {e}", e.code()),
        Ok(()) => return Err("a second accept must be refused".into()),
    }

    println!("6. Carol scans the used ticket");
    let mut carol = App::start(&net, "Carol", &c_dir).await?;
    let c_flow = carol.scan(&message).await?;
    give_pin(&mut carol, c_flow).await?;
    carol.finished(c_flow).await?;

    println!("7. Alice scans her own invitation");
    let (own_flow, own_ticket) = alice.invite(None).await?;
    let scan = alice.scan(&own_ticket).await?;
    alice.finished(scan).await?;

    println!("8. Alice revokes that invitation; Carol scans it afterwards");
    alice.handle.cancel(own_flow).await?;
    alice.finished(own_flow).await?;
    let c_flow = carol.scan(&own_ticket).await?;
    carol.finished(c_flow).await?;

    println!("9. Alice invites Carol, who declines");
    let (a_flow, message) = alice.invite(None).await?;
    let c_flow = carol.scan(&message).await?;
    carol.until(c_flow, |e| matches!(e, Event::InvitationReceived(_))).await?;
    carol.handle.reject(c_flow).await?;
    carol.finished(c_flow).await?;
    alice.finished(a_flow).await?;

    println!("10. Nothing is left in progress");
    for app in [&alice, &bob, &carol] {
        let n = app.handle.flows().await?.len();
        println!("  {:>5} | {n} flows in progress", app.name);
    }
    for app in [alice, bob, carol] {
        app.handle.shutdown().await;
    }
    Ok(())
}

/// A locked ticket asks for its PIN first: give it.
async fn give_pin(app: &mut App, flow: FlowId) -> Res<()> {
    app.until(flow, |e| matches!(e, Event::PasswordRequired { .. } | Event::Finished(_))).await?;
    app.handle.password(flow, Password::new("4711")?).await.or_else(|e| {
        // The flow may already have ended (e.g. the invitation is gone).
        println!("  {:>5} | PIN not taken: {e}", app.name);
        Ok::<(), Error>(())
    })?;
    Ok(())
}
