//! `contact-invite` on the command line: each party is its own OS process
//! with its own veilid-core node and its own state directory, as chat apps
//! run. Written against the public API (the prelude, `dht::veilid` and the
//! `veilid_net` harness that starts this process's node).
//!
//! It runs inside the sealed network namespace of `scripts/netns.sh`; the
//! helper `scripts/cli.sh` builds it, starts the namespace with `network`,
//! and runs every other command inside that same namespace:
//!
//! ```text
//! scripts/cli.sh network &                                  # 6 nodes: bootstrap + relays
//! scripts/cli.sh --state /tmp/alice identity new --name Alice
//! scripts/cli.sh --state /tmp/alice invite --pin 4711       # prints the ticket and a QR code, waits
//! scripts/cli.sh --state /tmp/bob identity new --name Bob   # (second terminal)
//! scripts/cli.sh --state /tmp/bob accept invite-2-… --pin 4711
//! scripts/cli.sh --state /tmp/bob contacts
//! ```
//!
//! Every command that waits can be killed at any moment (Ctrl-C, SIGKILL,
//! a power cut): run it again, or `pending --wait`, and the flow resumes
//! from the state directory. `accept TICKET` run again resumes the flow of
//! that ticket instead of starting a second one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use contact_invite::dht::veilid::VeilidDht;
use contact_invite::dht::{OpLog, Recorded};
use contact_invite::prelude::*;
use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions};
use serde::{Deserialize, Serialize};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `println!` that ends the process quietly when stdout is closed (`| head`)
/// instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// Nodes the `network` command runs (node 0 is the bootstrap node).
const NETWORK_NODES: usize = 6;
/// Cap on proof of work spent on a request's stamp.
const MAX_POW_BITS: u32 = 22;

#[derive(Parser)]
#[command(name = "cli", about = "Contact invitations over a private Veilid network, one process per party")]
struct Cli {
    /// This party's state directory: its Veilid node and its store.
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// This party's node index in the namespace (`nodeI`); chosen and
    /// remembered in the state directory on first use.
    #[arg(long, global = true)]
    node: Option<usize>,
    /// Give up waiting after this many seconds (exit code 3).
    #[arg(long, global = true)]
    timeout: Option<u64>,
    /// Print every DHT operation as it completes.
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Ask for watches that last this many seconds (default: the longest
    /// the nodes grant, 10 min), e.g. to outlast one in a test.
    #[arg(long, global = true)]
    watch_secs: Option<u64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the private network's bootstrap and relay nodes (nodes 0-5) until stopped.
    Network {
        /// How many nodes (at least 5 when the first is node 0).
        #[arg(long, default_value_t = NETWORK_NODES)]
        nodes: usize,
        /// The first node's index: more than 0 adds nodes to a network whose
        /// node 0 runs in another process (e.g. relays to stop in a test).
        #[arg(long, default_value_t = 0)]
        first: usize,
    },
    /// Makes or shows this party's identity.
    Identity {
        #[command(subcommand)]
        cmd: IdentityCmd,
    },
    /// Publishes an invitation, prints its ticket and QR code, and waits for the answer.
    Invite {
        #[command(flatten)]
        lock: LockArgs,
        /// A greeting shown to the invitee (signed).
        #[arg(long, default_value = "")]
        message: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        expires_in: u64,
        /// Print the ticket and exit (the invitation stays open; `pending --wait` finishes it).
        #[arg(long)]
        no_wait: bool,
        /// How many people may accept: a number (2 or more: a multi-use
        /// invitation) or `unlimited` (until it expires or is revoked).
        #[arg(long, default_value = "1")]
        uses: String,
    },
    /// Receives a ticket, shows the inviter's verified profile and accepts.
    Accept {
        /// The ticket (`invite-2-…`, a link, or any text containing one).
        ticket: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Receives a ticket and declines it.
    Reject {
        /// The ticket.
        ticket: String,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Lists the flows in progress (after a restart: the resumed ones).
    Pending {
        /// Also run them until none is left (request inboxes excepted).
        #[arg(long)]
        wait: bool,
    },
    /// Revokes open invitations (all of them, or the flows named).
    Revoke {
        /// Flow ids (from `pending`).
        flows: Vec<String>,
    },
    /// Lists contacts.
    Contacts,
    /// Shows the safety numbers to compare with each contact.
    Verify {
        /// Only the contact with this name.
        name: Option<String>,
    },
    /// Without a ticket: shows a device-link ticket on this device.
    /// With one: links this new device to the account that showed it.
    LinkDevice {
        /// The device-link ticket (on the new device).
        ticket: Option<String>,
        /// This device's label (new device).
        #[arg(long, default_value = "second device")]
        label: String,
    },
    /// Opens this identity's request inbox, prints its address and shows requests.
    Address {
        /// Accept every request that arrives.
        #[arg(long)]
        accept_all: bool,
        /// Exit once this many contacts were made from requests.
        #[arg(long)]
        contacts: Option<usize>,
    },
    /// Sends a contact request to an address (`address-1-…`).
    Request {
        /// The address.
        address: String,
        /// A greeting (signed).
        #[arg(long, default_value = "")]
        message: String,
    },
}

#[derive(Subcommand)]
enum IdentityCmd {
    /// Makes a new identity and publishes its record.
    New {
        /// The name shown to contacts.
        #[arg(long)]
        name: String,
        /// This device's label.
        #[arg(long, default_value = "cli")]
        device: String,
    },
    /// Shows this party's identity.
    Show,
}

#[derive(clap::Args, Clone, Default)]
struct LockArgs {
    /// A PIN (digits).
    #[arg(long, conflicts_with = "password")]
    pin: Option<String>,
    /// A password.
    #[arg(long)]
    password: Option<String>,
}

/// What the CLI remembers besides the library's store.
#[derive(Default, Serialize, Deserialize)]
struct CliState {
    /// This party's node index.
    node: Option<usize>,
    /// Tickets received: canonical text -> flow (None while being started).
    received: BTreeMap<String, Option<FlowId>>,
    /// This identity's request inbox.
    inbox: Option<FlowId>,
}

impl CliState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("cli.json")
    }
    fn load(dir: &Path) -> Res<Self> {
        match std::fs::read(Self::path(dir)) {
            Ok(b) => Ok(serde_json::from_slice(&b)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }
    /// Written to a temporary file and renamed: a kill never leaves half a file.
    fn save(&self, dir: &Path) -> Res<()> {
        let tmp = dir.join("cli.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }
}

/// Progress lines: elapsed time, then the step.
struct Progress {
    start: Instant,
    ops: OpLog,
    verbose: bool,
}

impl Progress {
    fn say(&self, what: impl AsRef<str>) {
        self.flush_ops();
        out!("[{:>7.2}s] {}", self.start.elapsed().as_secs_f64(), what.as_ref());
    }
    fn flush_ops(&self) {
        let ops = self.ops.drain();
        if self.verbose {
            for o in ops.iter().filter(|o| o.op != "reply_address") {
                out!(
                    "[{:>7.2}s]   dht {} {:.0} ms{}{}",
                    self.start.elapsed().as_secs_f64(),
                    o.op,
                    o.elapsed.as_secs_f64() * 1e3,
                    if o.bytes > 0 { format!(", {} B", o.bytes) } else { String::new() },
                    if o.ok { "" } else { " (failed)" }
                );
            }
        }
    }
}

/// One party: its node, its driver, its store.
struct Party {
    dir: PathBuf,
    state: CliState,
    net: LocalNetwork,
    dht: Recorded<VeilidDht>,
    handle: Handle,
    events: Events,
    identity: Option<Identity>,
    p: Progress,
    deadline: Option<Instant>,
    /// Held while this process runs.
    _lock: std::fs::File,
}

impl Party {
    async fn open(cli: &Cli) -> Res<Self> {
        let start = Instant::now();
        let dir = cli.state.clone().ok_or("--state DIR is required for this command")?;
        std::fs::create_dir_all(&dir)?;
        let dir = dir.canonicalize()?;
        // One process per state directory (as one app instance per profile).
        let lock = std::fs::File::create(dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(format!("{} is in use by another process", dir.display()).into());
        }
        let mut state = CliState::load(&dir)?;
        let node = match (cli.node, state.node) {
            (Some(n), Some(m)) if n != m => return Err(format!("this state directory runs node {m}, not {n}").into()),
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => claim_node(&dir)?,
        };
        if state.node != Some(node) {
            state.node = Some(node);
            state.save(&dir)?;
        }
        let p = Progress { start, ops: OpLog::new(), verbose: cli.verbose };
        p.say(format!("starting this party's veilid-core node (node{node}, state in {})", dir.display()));
        let opts = LocalNetworkOptions {
            nodes: 1,
            first_node: node,
            base_dir: Some(dir.join("veilid")),
            fresh_stores: false,
            ..Default::default()
        };
        let net = LocalNetwork::start(opts).await.map_err(|e| {
            format!("{e}\n(is `scripts/cli.sh network` running? every command runs inside its namespace)")
        })?;
        p.say(format!("node attached to the network in {:.1} s", net.attach_times()[0].as_secs_f64()));
        let veilid = net.dht(node)?;
        veilid.set_watch_lifetime(cli.watch_secs.map(Duration::from_secs));
        let dht = Recorded::new(veilid, p.ops.clone());
        let store = Arc::new(FileStore::open(dir.join("store"))?);
        let identity = driver::identities(store.as_ref()).await?.identities.pop();
        let (handle, events) = driver::start(dht.clone(), store, DriverConfig::default()).await?;
        let deadline = cli.timeout.map(|s| Instant::now() + Duration::from_secs(s));
        Ok(Self { dir, state, net, dht, handle, events, identity, p, deadline, _lock: lock })
    }

    fn identity(&self) -> Res<Identity> {
        self.identity.clone().ok_or_else(|| "no identity yet: run `identity new --name NAME` first".into())
    }

    async fn close(self) {
        self.handle.shutdown().await;
        self.net.shutdown().await;
    }

    /// The next event of the driver, with a progress line; `None` on timeout.
    async fn next(&mut self) -> Res<Option<DriverEvent>> {
        let tick = Duration::from_millis(250);
        loop {
            let left = self.deadline.map_or(tick, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Ok(None);
            }
            match tokio::time::timeout(left.min(tick), self.events.recv()).await {
                Ok(Some(e)) => {
                    self.p.say(format!("{} {}", e.flow.fmt_short(), render(&e.event)));
                    return Ok(Some(e));
                }
                Ok(None) => return Err("the driver stopped".into()),
                Err(_) => self.p.flush_ops(),
            }
        }
    }

    /// Runs `flows` until each finished; `decide` answers invitations
    /// received and PIN prompts. Returns the outcomes.
    async fn follow(&mut self, flows: &[FlowId], lock: &LockArgs, decide: Decide) -> Res<BTreeMap<FlowId, Outcome>> {
        let mut done = BTreeMap::new();
        while done.len() < flows.len() {
            let Some(e) = self.next().await? else {
                return Err(Timeout.into());
            };
            if !flows.contains(&e.flow) {
                continue;
            }
            match e.event {
                Event::PasswordRequired { pin } => {
                    let given = if pin { lock.pin.clone().or(lock.password.clone()) } else { lock.password.clone() };
                    let Some(secret) = given else {
                        return Err(format!(
                            "the ticket is locked: give its {}",
                            if pin { "--pin" } else { "--password" }
                        )
                        .into());
                    };
                    let r = self.handle.password(e.flow, Password::new(secret)?).await;
                    self.applied("password", r)?;
                }
                Event::WrongPassword => return Err("wrong PIN or password".into()),
                Event::InvitationReceived(v) => {
                    self.p.say(format!(
                        "  {} says {:?} (identity {}, expires in {} h)",
                        v.profile.name(),
                        v.message,
                        v.identity.fmt_short(),
                        v.expires_at.saturating_sub(driver::SystemClock.now_secs()).div_ceil(3600)
                    ));
                    match decide {
                        Decide::Accept => {
                            let r = self.handle.accept(e.flow).await;
                            self.applied("accept", r)?;
                        }
                        Decide::Reject => {
                            let r = self.handle.reject(e.flow).await;
                            self.applied("reject", r)?;
                        }
                        Decide::Ask => {
                            self.p.say("  waiting for your decision: run `accept TICKET` or `reject TICKET`");
                            done.insert(e.flow, Outcome::Cancelled);
                        }
                    }
                }
                Event::Finished(o) => {
                    done.insert(e.flow, o);
                }
                _ => {}
            }
        }
        Ok(done)
    }

    /// A command refused because the flow moved on (e.g. it was answered
    /// before a kill) is reported, not fatal.
    fn applied(&self, what: &str, r: Result<(), Error>) -> Res<()> {
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ErrorCode::InvalidState => {
                self.p.say(format!("  {what}: already done before a restart ({e})"));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn in_progress(&self, id: FlowId) -> Res<bool> {
        Ok(self.handle.flows().await?.iter().any(|f| f.id == id))
    }

    async fn show_ticket(&self, flow: FlowId) -> Res<()> {
        let ticket = self.handle.ticket(flow).await?.ok_or("the invitation has no ticket yet")?;
        out!("\n  ticket ({} bytes, QR version {}):\n\n  {ticket}\n", ticket.to_bytes().len(), ticket.qr_version()?);
        if std::env::var_os("CLI_NO_QR").is_none() {
            out!("{}", ticket.qr_terminal()?);
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Decide {
    Accept,
    Reject,
    Ask,
}

#[derive(Debug)]
struct Timeout;
impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timed out (--timeout); the flow goes on when this command runs again")
    }
}
impl std::error::Error for Timeout {}

/// Claims a node index for the state directory `dir` (canonical path):
/// each index past the network's is claimed by a file in a registry
/// directory shared by the namespace's processes (created exclusively, so
/// two parties never race for one). A claim whose directory is gone is
/// stale and taken over.
fn claim_node(dir: &Path) -> Res<usize> {
    let registry = std::env::var_os("CLI_NODE_REGISTRY")
        .map_or_else(|| std::env::temp_dir().join("contact-invite-cli-nodes"), PathBuf::from);
    std::fs::create_dir_all(&registry)?;
    let me = dir.to_string_lossy().into_owned();
    let total: usize = std::env::var("VEILID_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(NETWORK_NODES);
    for i in NETWORK_NODES..total {
        let claim = registry.join(format!("node{i}"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, me.as_bytes())?;
                    return Ok(i);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&claim).unwrap_or_default();
                    if owner == me {
                        return Ok(i);
                    }
                    if owner.is_empty() || Path::new(&owner).exists() {
                        break;
                    }
                    let _ = std::fs::remove_file(&claim);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Err(format!(
        "every node address node{NETWORK_NODES}..node{} is taken (VEILID_NODES={total}); run under scripts/cli.sh",
        total.saturating_sub(1)
    )
    .into())
}

fn links() -> Res<LinkConfig> {
    Ok(LinkConfig::new(UriScheme::new("chat")?))
}

fn read_ticket(text: &str) -> Res<Ticket> {
    match parse_scanned(text, &links()?) {
        Ok(Scanned::Ticket(t)) => Ok(t),
        Ok(_) => Err("that is an address, not an invitation (use `request ADDRESS`)".into()),
        Err(e) => Err(format!("{e}: {}", e.advice().message()).into()),
    }
}

fn read_address(text: &str) -> Res<Address> {
    match parse_scanned(text, &links()?) {
        Ok(Scanned::Address(a)) => Ok(a),
        Ok(_) => Err("that is an invitation, not an address (use `accept TICKET`)".into()),
        Err(e) => Err(format!("{e}: {}", e.advice().message()).into()),
    }
}

fn lock_of(args: &LockArgs) -> Res<Lock> {
    Ok(match (&args.pin, &args.password) {
        (Some(pin), _) => Lock::Pin(Pin::new(pin.as_str())?),
        (None, Some(pw)) => Lock::Password(Password::new(pw.as_str())?),
        (None, None) => Lock::None,
    })
}

/// One line per event; never a secret.
fn render(e: &Event) -> String {
    match e {
        Event::InvitationPublished { locked, .. } => {
            format!("invitation published{}: share the ticket", if *locked { " (locked)" } else { "" })
        }
        Event::PasswordRequired { pin: true } => "the ticket is locked with a PIN".into(),
        Event::PasswordRequired { pin: false } => "the ticket is locked with a password".into(),
        Event::WrongPassword => "wrong PIN or password".into(),
        Event::InvitationReceived(v) => {
            format!("invitation from {}: signature, identity and expiry verified", v.profile.name())
        }
        Event::ResponseSent { accepted } => {
            format!(
                "{} signed and stored in the inbox; waiting for the inviter",
                if *accepted { "accept" } else { "reject" }
            )
        }
        Event::ResponseIgnored { reason } => format!("ignored a response that did not verify ({reason:?})"),
        Event::DeviceLinked { device, .. } => format!("device {} linked", device.fmt_short()),
        Event::RequestInboxOpen { address } => format!("request inbox open; address: {address}"),
        Event::RequestReceived(r) => {
            format!("request from {} ({}): {:?}", r.profile.name(), r.requester.fmt_short(), r.message)
        }
        Event::RequestDelivered { to } => format!("request delivered to {}", to.fmt_short()),
        Event::ContactEstablished { name, peer } => format!("{name} is now a contact ({})", peer.fmt_short()),
        Event::UsesChanged(v) => format!("uses: {}", accounting(v)),
        Event::Finished(o) => match o {
            Outcome::Contact(p) => format!("done: contact {}", p.fmt_short()),
            Outcome::DeviceLinked(p) => format!("done: device {} linked", p.fmt_short()),
            Outcome::RejectedByPeer { .. } => "done: the invitation was declined".into(),
            Outcome::RejectedByUs => "done: declined".into(),
            Outcome::Cancelled => "done: revoked".into(),
            Outcome::MultiUseClosed(v) => format!("done: closed; {}", accounting(v)),
            Outcome::Failed(err) => format!("done: failed [{:?}] {err}", err.code()),
            other => format!("done: {other:?}"),
        },
        other => format!("{other:?}"),
    }
}

/// A multi-use invitation's accounting, one line.
fn accounting(v: &UsesView) -> String {
    let names: Vec<&str> = v.accepted.iter().map(|u| u.name.as_str()).collect();
    let limit = v.limit.map_or("unlimited".to_owned(), |l| l.to_string());
    let state = match v.closed {
        Some(why) => format!("closed ({why:?})"),
        None => format!("{} h left", v.time_left(driver::SystemClock.now_secs()).div_ceil(3600)),
    };
    format!(
        "accepted {} of {limit} [{}], rejected {}, turned away {}, {state}",
        v.used(),
        names.join(", "),
        v.rejected,
        v.turned_away
    )
}

fn conversation_fingerprint(c: &Contact) -> String {
    let h = blake3::hash(c.conversation_key().expose());
    data_encoding::HEXLOWER.encode(&h.as_bytes()[..8])
}

async fn run(cli: Cli) -> Res<()> {
    match &cli.cmd {
        Cmd::Network { nodes, first } => return network(*nodes, *first).await,
        Cmd::Identity { cmd: IdentityCmd::Show } | Cmd::Contacts | Cmd::Verify { .. } => {
            // Reading the store needs no node.
            return offline(&cli).await;
        }
        _ => {}
    }
    let mut party = Party::open(&cli).await?;
    let r = command(&cli, &mut party).await;
    party.p.flush_ops();
    party.close().await;
    r
}

async fn command(cli: &Cli, party: &mut Party) -> Res<()> {
    let none = LockArgs::default();
    match &cli.cmd {
        Cmd::Network { .. } | Cmd::Contacts | Cmd::Verify { .. } | Cmd::Identity { cmd: IdentityCmd::Show } => {
            unreachable!("handled without a node")
        }
        Cmd::Identity { cmd: IdentityCmd::New { name, device } } => {
            if let Some(id) = &party.identity {
                return Err(
                    format!("this state directory already has an identity ({})", id.public_key().fmt_short()).into()
                );
            }
            let now = driver::SystemClock.now_secs();
            let fresh = Identity::generate(Profile::new(name.as_str())?, device, now, &mut OsRng)?;
            party.p.say("publishing the identity record");
            let id = driver::publish_identity(&party.dht, fresh).await?;
            let store = FileStore::open(party.dir.join("store"))?;
            driver::save_identity(&store, &id).await?;
            party.p.say(format!("identity {} ({name}) published and saved", id.public_key().fmt_short()));
        }
        Cmd::Invite { lock, message, expires_in, no_wait, uses } => {
            let mut params = SendParams::new(party.identity()?);
            params.uses = match uses.as_str() {
                "unlimited" => Uses::Unlimited,
                n => Uses::AtMost(n.parse().map_err(|_| "--uses takes a number or `unlimited`")?),
            };
            params.message.clone_from(message);
            params.expires_in_secs = *expires_in;
            params.lock = lock_of(lock)?;
            party.p.say("publishing the invitation");
            let flow = party.handle.send_invitation(params).await?;
            wait_published(party, flow).await?;
            party.show_ticket(flow).await?;
            if !*no_wait {
                party.p.say("waiting for the invitee (kill me any time: `pending --wait` resumes)");
                let out = party.follow(&[flow], &none, Decide::Ask).await?;
                ensure_contact(out.values())?;
            }
        }
        Cmd::Accept { ticket, lock } | Cmd::Reject { ticket, lock } => {
            let decide = if matches!(cli.cmd, Cmd::Accept { .. }) { Decide::Accept } else { Decide::Reject };
            let ticket = read_ticket(ticket)?;
            let flow = receive_once(party, ticket).await?;
            let Some(flow) = flow else {
                party.p.say("this ticket was already answered here; see `contacts`");
                return Ok(());
            };
            let out = party.follow(&[flow], lock, decide).await?;
            if matches!(decide, Decide::Accept) {
                ensure_contact(out.values())?;
            }
        }
        Cmd::Pending { wait } => {
            let flows = party.handle.flows().await?;
            if flows.is_empty() {
                party.p.say("nothing in progress");
            }
            for f in &flows {
                party.p.say(format!(
                    "{} {:?} {}{}{}",
                    f.id,
                    f.kind,
                    f.state,
                    if f.locked { ", locked" } else { "" },
                    f.peer.map(|p| format!(", peer {}", p.fmt_short())).unwrap_or_default()
                ));
                if let Some(v) = &f.uses {
                    party.p.say(format!("  uses: {}", accounting(v)));
                }
                if f.kind == FlowKind::Invitation && party.handle.ticket(f.id).await?.is_some() {
                    party.show_ticket(f.id).await?;
                }
            }
            if *wait {
                let ids: Vec<FlowId> =
                    flows.iter().filter(|f| f.kind != FlowKind::RequestInbox).map(|f| f.id).collect();
                let out = party.follow(&ids, &none, Decide::Ask).await?;
                for (id, o) in &out {
                    party.p.say(format!("{} ended: {}", id.fmt_short(), render(&Event::Finished(o.clone()))));
                }
            }
        }
        Cmd::Revoke { flows } => {
            let ids: Vec<FlowId> = if flows.is_empty() {
                party.handle.invitations().await?.iter().map(|f| f.id).collect()
            } else {
                flows.iter().map(|s| s.parse()).collect::<Result<_, _>>()?
            };
            for id in &ids {
                party.handle.cancel(*id).await?;
                party.p.say(format!("{} revoking (a signed tombstone replaces it)", id.fmt_short()));
            }
            party.follow(&ids, &none, Decide::Ask).await?;
        }
        Cmd::LinkDevice { ticket: None, .. } => {
            let flow = party.handle.link_device(SendParams::new(party.identity()?)).await?;
            wait_published(party, flow).await?;
            party.show_ticket(flow).await?;
            party.p.say("on the new device run: link-device TICKET");
            let out = party.follow(&[flow], &none, Decide::Ask).await?;
            if !out.values().all(Outcome::is_device_linked) {
                return Err("the device was not linked".into());
            }
        }
        Cmd::LinkDevice { ticket: Some(ticket), label } => {
            if party.identity.is_some() {
                return Err("this state directory already has an identity: use a new one for the new device".into());
            }
            let flow = party.handle.join_account(LinkParams::new(read_ticket(ticket)?, label.as_str())).await?;
            let out = party.follow(&[flow], &none, Decide::Accept).await?;
            if !out.values().all(Outcome::is_device_linked) {
                return Err("the device was not linked".into());
            }
        }
        Cmd::Address { accept_all, contacts } => {
            let inbox = match party.state.inbox {
                Some(id) if party.in_progress(id).await? => id,
                _ => {
                    let id = party.handle.open_request_inbox(RequestInboxParams::new(party.identity()?)).await?;
                    party.state.inbox = Some(id);
                    party.state.save(&party.dir)?;
                    id
                }
            };
            let mut made = 0usize;
            loop {
                let Some(e) = party.next().await? else { return Err(Timeout.into()) };
                match e.event {
                    Event::RequestInboxOpen { address } if e.flow == inbox => {
                        out!("\n  address: {address}\n");
                    }
                    Event::RequestReceived(r) if *accept_all => {
                        let res = party.handle.accept_request(inbox, r.id).await;
                        party.applied("accept request", res)?;
                    }
                    Event::ContactEstablished { .. } => {
                        made += 1;
                        if contacts.is_some_and(|n| made >= n) {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        Cmd::Request { address, message } => {
            let to = read_address(address)?;
            let mut params = SendParams::new(party.identity()?);
            params.message.clone_from(message);
            party.p.say("minting the request's stamp and publishing the request");
            let flow = party.handle.send_request(params, to, MAX_POW_BITS).await?;
            let out = party.follow(&[flow], &none, Decide::Ask).await?;
            ensure_contact(out.values())?;
        }
    }
    Ok(())
}

async fn wait_published(party: &mut Party, flow: FlowId) -> Res<()> {
    loop {
        let Some(e) = party.next().await? else { return Err(Timeout.into()) };
        match e.event {
            Event::InvitationPublished { .. } if e.flow == flow => return Ok(()),
            Event::Finished(o) if e.flow == flow => return Err(format!("not published: {o:?}").into()),
            _ => {}
        }
    }
}

/// Starts receiving `ticket`, or resumes the flow already receiving it
/// (the command run again after a kill). `None`: it already ended here.
async fn receive_once(party: &mut Party, ticket: Ticket) -> Res<Option<FlowId>> {
    let key = ticket.to_string();
    let in_progress = party.handle.flows().await?;
    match party.state.received.get(&key) {
        Some(Some(id)) => {
            return Ok(in_progress.iter().any(|f| f.id == *id).then_some(*id));
        }
        Some(None) => {
            // Killed between starting the flow and noting its id: adopt the
            // one received flow no other ticket claims, if there is one.
            let known: Vec<FlowId> = party.state.received.values().flatten().copied().collect();
            let orphans: Vec<FlowId> = in_progress
                .iter()
                .filter(|f| f.kind == FlowKind::Received && !known.contains(&f.id))
                .map(|f| f.id)
                .collect();
            if let [id] = orphans[..] {
                party.state.received.insert(key, Some(id));
                party.state.save(&party.dir)?;
                party.p.say(format!("{} resumed", id.fmt_short()));
                return Ok(Some(id));
            }
        }
        None => {}
    }
    party.state.received.insert(key.clone(), None);
    party.state.save(&party.dir)?;
    party.p.say("reading the invitation");
    let id = party.handle.receive(ReceiveParams::new(party.identity()?, ticket)).await?;
    party.state.received.insert(key, Some(id));
    party.state.save(&party.dir)?;
    Ok(Some(id))
}

fn ensure_contact<'a>(mut outcomes: impl Iterator<Item = &'a Outcome>) -> Res<()> {
    match outcomes.find(|o| !o.is_success()) {
        None => Ok(()),
        Some(o) => Err(format!("no contact was made ({})", render(&Event::Finished(o.clone()))).into()),
    }
}

/// Commands that only read the store.
async fn offline(cli: &Cli) -> Res<()> {
    let dir = cli.state.clone().ok_or("--state DIR is required for this command")?;
    let store = FileStore::open(dir.join("store"))?;
    let own = driver::identities(&store).await?.identities.pop().ok_or("no identity yet: run `identity new`")?;
    let list = driver::contacts(&store).await?;
    match &cli.cmd {
        Cmd::Identity { .. } => {
            let v = own.view();
            let name = v.profile.as_ref().map_or("?", Profile::name);
            out!("identity {} ({name}), {} device(s)", own.public_key(), v.devices.len());
        }
        Cmd::Contacts => {
            out!("{} contact(s)", list.contacts.len());
            for c in &list.contacts {
                out!(
                    "{}  {}  conversation-key-fingerprint {}  {}",
                    c.peer,
                    c.profile.name(),
                    conversation_fingerprint(c),
                    if c.is_verified() { "verified" } else { "not verified" }
                );
            }
            if !list.unreadable.is_empty() {
                out!("{} stored contact(s) could not be read", list.unreadable.len());
            }
        }
        Cmd::Verify { name } => {
            for c in list.contacts.iter().filter(|c| name.as_deref().is_none_or(|n| c.profile.name() == n)) {
                out!(
                    "{}: compare with what {} sees:\n  {}",
                    c.profile.name(),
                    c.profile.name(),
                    c.safety_code(&own.public_key())
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// Runs the network's nodes until SIGINT or SIGTERM. SIGUSR1 stops its two
/// highest nodes (as if they left the network), SIGUSR2 starts them again:
/// how the failing-node test takes relays away mid-flow.
async fn network(nodes: usize, first: usize) -> Res<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let start = Instant::now();
    let say = |what: String| out!("[{:>7.2}s] {what}", start.elapsed().as_secs_f64());
    let opts = LocalNetworkOptions { nodes, first_node: first, ..Default::default() };
    say(format!("starting {nodes} veilid-core nodes (node{first}..node{})", first + nodes.max(1) - 1));
    let mut net = LocalNetwork::start(opts).await?;
    print!("{}", net.report());
    say("network ready".into());
    // scripts/cli.sh waits for this file before running a party.
    let ready = std::env::var_os("CLI_NETWORK_READY_FILE").map(PathBuf::from);
    if let Some(f) = &ready {
        std::fs::write(f, std::process::id().to_string())?;
    }
    let (mut term, mut usr1, mut usr2) =
        (signal(SignalKind::terminate())?, signal(SignalKind::user_defined1())?, signal(SignalKind::user_defined2())?);
    let spare: Vec<usize> = net.indexes().rev().take(2).filter(|i| *i != 0).collect();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = usr1.recv() => {
                for i in &spare {
                    if let Err(e) = net.stop_node(*i).await {
                        say(format!("node{i}: {e}"));
                    }
                }
                say(format!("stopped nodes {spare:?}"));
            }
            _ = usr2.recv() => {
                for i in &spare {
                    match net.restart_node(*i).await {
                        Ok(t) => say(format!("node{i} back, attached in {:.1} s", t.as_secs_f64())),
                        Err(e) => say(format!("node{i}: {e}")),
                    }
                }
                say(format!("restarted nodes {spare:?}"));
            }
        }
    }
    say("stopping the network".into());
    if let Some(f) = &ready {
        let _ = std::fs::remove_file(f);
    }
    net.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    if let Err(e) = run(cli).await {
        eprintln!("error: {e}");
        std::process::exit(if e.is::<Timeout>() { 3 } else { 1 });
    }
}
