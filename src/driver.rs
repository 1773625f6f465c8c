//! The async driver: runs flows (sans-IO machines) against a [`Dht`] and a
//! [`Store`], and emits [`DriverEvent`]s a UI can show as progress.
//!
//! It only executes effects, never decides anything. For every machine step it
//! first persists the machine (when asked), then starts DHT operations
//! concurrently, arms timers and forwards events. On start it loads every
//! persisted flow and resumes it, so a crash at any point loses nothing.
//!
//! Each event carries `round_trips`: the number of sequential network round
//! trips (DHT gets and sets) on the causal chain that led to it since the last
//! external trigger (a command, a notification or a timer).
//!
//! When the backend has a direct channel ([`Dht::reply_address`]), the driver
//! keeps this party's reply address current (made in the background at start,
//! re-checked every minute), tells every flow about it, sends the nudges flows
//! ask for (best effort, never awaited by a flow) and routes arriving nudges
//! to the flow watching their record.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::contact::Contact;
use crate::crypto::PublicKey;
use crate::dht::{Dht, DhtError, DhtErrorKind, Nudge, ValueChange};
use crate::encoding::{Address, Ticket};
use crate::error::Error;
use crate::identity::{Identity, SharedIdentity, Snapshots, identity_record_schema};
use crate::machine::{
    Command, DhtFailure, DhtOp, DhtOutput, Effect, Flow, Input, Invitee, Inviter, Job, JobOutput, OpId, Refusal,
    RequestInbox, Rng, Timer,
};

/// The app-facing flow types (defined in [`crate::flow`]), so an app using
/// the driver needs no other import for them.
pub use crate::flow::{
    Event, FlowId, FlowKind, FlowView, InvitationView, LinkParams, Lock, Outcome, ReceiveParams, RequestId,
    RequestInboxParams, RequestStatus, RequestView, SendParams,
};
use crate::store::{Store, Table, UnreadableReason, UnreadableRecord};

/// A source of wall-clock time in unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, in unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Now, in unix seconds.
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock that follows tokio's time from a fixed start: with
/// `tokio::time::pause()` tests run on virtual time.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at `start_ms` (unix ms) now.
    pub fn starting_at(start_ms: u64) -> Self {
        Self { start_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The system clock plus an adjustable offset, to show expiry in demos and
/// tests on a real network without waiting. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct OffsetClock {
    offset_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl OffsetClock {
    /// A clock at the system time.
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves this clock (and its clones) forward.
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Driver settings: [`DriverConfig::default()`] suits an app; change what
/// you need through [`DriverConfig::builder`].
///
/// ```
/// use std::time::Duration;
/// use contact_invite::driver::DriverConfig;
/// let config = DriverConfig::builder().max_in_flight(8).reply_address_wait(Duration::from_millis(500)).build();
/// assert_eq!(config.max_in_flight(), 8);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    clock: Arc<dyn Clock>,
    rng_seed: Option<u64>,
    max_in_flight: usize,
    reply_address_wait: Duration,
    #[cfg(feature = "test-hooks")]
    crash_after_effects: Option<u64>,
    #[cfg(feature = "test-hooks")]
    compute_on_runtime: bool,
}

/// Default of [`DriverConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Default of [`DriverConfig::reply_address_wait`].
pub const DEFAULT_REPLY_ADDRESS_WAIT: Duration = Duration::from_secs(2);

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            rng_seed: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            reply_address_wait: DEFAULT_REPLY_ADDRESS_WAIT,
            #[cfg(feature = "test-hooks")]
            crash_after_effects: None,
            #[cfg(feature = "test-hooks")]
            compute_on_runtime: false,
        }
    }
}

impl DriverConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> DriverConfigBuilder {
        DriverConfigBuilder(Self::default())
    }
    /// The time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    /// Most DHT operations in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
    /// How long a flow started right after [`start`] waits for this party's
    /// first reply address.
    pub fn reply_address_wait(&self) -> Duration {
        self.reply_address_wait
    }
    /// Whether the RNG is seeded deterministically (tests only).
    pub fn is_deterministic(&self) -> bool {
        self.rng_seed.is_some()
    }
}

/// Builds a [`DriverConfig`]; every setting not given keeps its default.
#[derive(Clone, Debug)]
#[must_use]
pub struct DriverConfigBuilder(DriverConfig);

impl DriverConfigBuilder {
    /// Time source (default: [`SystemClock`]). Tests use [`TokioClock`] for
    /// virtual time; demos use [`OffsetClock`] to show expiry.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.0.clock = Arc::new(clock);
        self
    }
    /// Time source, shared.
    pub fn shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.0.clock = clock;
        self
    }
    /// Most DHT operations in flight at once (at least 1; default
    /// [`DEFAULT_MAX_IN_FLIGHT`]), across all flows; the rest wait in order.
    /// After a restart, persisted flows are resumed only as fast as their
    /// operations complete, so resuming 100,000 invitations never starts
    /// 100,000 operations at once.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.0.max_in_flight = n.max(1);
        self
    }
    /// How long a flow started right after [`start`] waits for this party's
    /// first reply address (default [`DEFAULT_REPLY_ADDRESS_WAIT`]), so the
    /// first invitation already carries it (on Veilid a private route takes
    /// about a second). [`start`] itself never waits: only the flows
    /// started during this window do, and they go on without the address
    /// when it passes. Zero: never wait.
    pub fn reply_address_wait(mut self, wait: Duration) -> Self {
        self.0.reply_address_wait = wait;
        self
    }
    /// **Not API** (feature `test-hooks`): seeds the driver's RNG
    /// deterministically, for tests and simulation only: 64 bits, so every
    /// key the driver makes is guessable. Without it (always, in an app's
    /// build) ChaCha20 is seeded with 32 bytes from the OS.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn insecure_rng_seed(mut self, seed: u64) -> Self {
        self.0.rng_seed = Some(seed);
        self
    }
    /// **Not API** (feature `test-hooks`, for this crate's tests): stop
    /// abruptly, as a crash would, after this many effects.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn crash_after_effects(mut self, n: Option<u64>) -> Self {
        self.0.crash_after_effects = n;
        self
    }
    /// **Not API** (feature `test-hooks`, for benchmarks): run CPU-heavy work
    /// (Argon2id, stamp minting) inside the driver task, blocking the async
    /// runtime as releases before 0.1 did, to measure the stall it causes.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn compute_on_runtime(mut self, yes: bool) -> Self {
        self.0.compute_on_runtime = yes;
        self
    }
    /// The configuration.
    pub fn build(self) -> DriverConfig {
        self.0
    }
}

impl core::fmt::Debug for DriverConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DriverConfig")
            .field("deterministic_rng", &self.rng_seed.is_some())
            .field("max_in_flight", &self.max_in_flight)
            .field("reply_address_wait", &self.reply_address_wait)
            .finish_non_exhaustive()
    }
}

/// An event from a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverEvent {
    /// Which flow.
    pub flow: FlowId,
    /// What happened.
    pub event: Event,
    /// Sequential network round trips on the chain that led here.
    pub round_trips: u32,
}

/// Most CPU-heavy jobs (Argon2id, stamps) running at once, across all flows
/// (the rest wait in order): bounded so many PIN attempts at once cannot
/// take every core or many times Argon2's memory.
fn max_computations() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).clamp(1, 4)
}

/// Builds a new flow from the time and the RNG.
type Starter = Box<dyn FnOnce(u64, &mut dyn Rng) -> Result<(Flow, Vec<Effect>), Error> + Send>;

enum Cmd {
    Start(Starter, oneshot::Sender<Result<FlowId, Error>>),
    Command(FlowId, Command, oneshot::Sender<Result<(), Error>>),
    Ticket(FlowId, oneshot::Sender<Option<Ticket>>),
    Requests(FlowId, oneshot::Sender<Option<Vec<RequestView>>>),
    Blocked(FlowId, oneshot::Sender<Option<Vec<PublicKey>>>),
    Flows(oneshot::Sender<Vec<FlowView>>),
    Contacts(oneshot::Sender<Result<ContactList, Error>>),
    HasReplyAddress(oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a running driver.
///
/// Every command (accept, reject, cancel, password, the request-inbox
/// commands) answers once the flow applied it and persisted what it
/// changed. A command that does not apply in the flow's state is refused
/// with [`Error::InvalidState`] and changes nothing; one for a flow that is
/// not running (never started or already finished) with
/// [`Error::UnknownFlow`]; one naming a request the inbox does not keep
/// with [`Error::UnknownRequest`].
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Cmd>,
    watchers: tokio::sync::broadcast::Sender<DriverEvent>,
}

/// Events queued for the app before the driver waits for it to read.
pub const EVENT_BUFFER: usize = 1024;

/// Events from a running driver, in order.
///
/// **Backpressure:** the driver waits for the app once
/// [`EVENT_BUFFER`] events are unread, and every flow waits with it (no event
/// is ever dropped from this channel). Read it continuously, e.g. in its own
/// task; for more readers (a UI and a notifier), use
/// [`Handle::subscribe`], which never holds the driver up.
pub type Events = mpsc::Receiver<DriverEvent>;

fn gone() -> Error {
    Error::ApiMisuse("the driver has stopped")
}

impl Handle {
    async fn call<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(f(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
    async fn start_flow(
        &self,
        f: impl FnOnce(u64, &mut dyn Rng) -> Result<(Flow, Vec<Effect>), Error> + Send + 'static,
    ) -> Result<FlowId, Error> {
        self.call(|tx| Cmd::Start(Box::new(f), tx)).await?
    }
    /// Starts sending an invitation; the ticket is ready after
    /// [`Event::InvitationPublished`] (see [`Self::ticket`]). Answers once
    /// the flow is persisted: with a password, after Argon2id ran (off the
    /// async runtime).
    pub async fn send_invitation(&self, params: SendParams) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| Inviter::new(params, now, rng).map(|(m, e)| (Flow::Inviter(Box::new(m)), e)))
            .await
    }
    /// Starts receiving a ticket.
    pub async fn receive(&self, params: ReceiveParams) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| Invitee::new(params, now, rng).map(|(m, e)| (Flow::Invitee(Box::new(m)), e)))
            .await
    }
    /// On the device holding the identity key: starts a device-link
    /// invitation (show its [`Self::ticket`] to the new device). Ends with
    /// [`Outcome::DeviceLinked`] and the updated identity saved in the store.
    pub async fn link_device(&self, params: SendParams) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| {
            Inviter::link_device(params, now, rng).map(|(m, e)| (Flow::Inviter(Box::new(m)), e))
        })
        .await
    }
    /// On the new device: receives a device-link ticket. After
    /// [`Event::InvitationReceived`], [`Self::accept`] links this device; the
    /// new identity is then in the store ([`identities`]).
    pub async fn join_account(&self, params: LinkParams) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| Invitee::link(params, now, rng).map(|(m, e)| (Flow::Invitee(Box::new(m)), e)))
            .await
    }
    /// Opens a request inbox for the identity (on the device holding the
    /// identity key): anyone with its [`Address`] (see
    /// [`Event::RequestInboxOpen`]) can then send contact requests, shown as
    /// [`Event::RequestReceived`]. [`Self::cancel`] closes it.
    pub async fn open_request_inbox(&self, params: RequestInboxParams) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| RequestInbox::new(params, now, rng).map(|(m, e)| (Flow::Inbox(Box::new(m)), e)))
            .await
    }
    /// Sends a contact request to a known address, spending at most
    /// `max_pow_bits` of proof of work on its stamp
    /// ([`crate::crypto::pow::DEFAULT_MAX_MINT_BITS`] is a sensible cap).
    /// The flow is an ordinary invitation whose ticket is delivered to the
    /// recipient; it ends like one ([`Outcome::Contact`] once accepted).
    pub async fn send_request(&self, params: SendParams, to: Address, max_pow_bits: u32) -> Result<FlowId, Error> {
        self.start_flow(move |now, rng| {
            Inviter::request(params, to, max_pow_bits, now, rng).map(|(m, e)| (Flow::Inviter(Box::new(m)), e))
        })
        .await
    }
    /// The requests a request inbox keeps (pending, ignored, parked).
    pub async fn requests(&self, inbox: FlowId) -> Result<Vec<RequestView>, Error> {
        self.call(|tx| Cmd::Requests(inbox, tx)).await?.ok_or(Error::ApiMisuse("no such request inbox"))
    }
    /// The identities a request inbox blocks.
    pub async fn blocked(&self, inbox: FlowId) -> Result<Vec<PublicKey>, Error> {
        self.call(|tx| Cmd::Blocked(inbox, tx)).await?.ok_or(Error::ApiMisuse("no such request inbox"))
    }
    /// Unblocks an identity in a request inbox (its later requests are
    /// shown again; requests dropped while it was blocked are not).
    pub async fn unblock(&self, inbox: FlowId, identity: PublicKey) -> Result<(), Error> {
        self.command(inbox, Command::Unblock(identity)).await
    }
    /// Every flow in progress (invitations shown, received, device links,
    /// requests, request inboxes), as an app lists them; after a restart it
    /// lists the resumed flows, so the app keeps no table of its own.
    pub async fn flows(&self) -> Result<Vec<FlowView>, Error> {
        self.call(Cmd::Flows).await
    }
    /// Every saved contact, and the stored records that could not be read
    /// (see [`contacts`]): what an app shows as its contact list, from the
    /// store the driver runs on.
    pub async fn contacts(&self) -> Result<ContactList, Error> {
        self.call(Cmd::Contacts).await?
    }
    /// The invitations this device is showing (contact invitations and
    /// device links it sent, and requests it sent, still open).
    pub async fn invitations(&self) -> Result<Vec<FlowView>, Error> {
        let all = self.flows().await?;
        Ok(all
            .into_iter()
            .filter(|f| matches!(f.kind, FlowKind::Invitation | FlowKind::DeviceLink | FlowKind::Request))
            .collect())
    }
    /// Accepts a request: the contact is made through the invitation flow.
    pub async fn accept_request(&self, inbox: FlowId, id: RequestId) -> Result<(), Error> {
        self.command(inbox, Command::AcceptRequest(id)).await
    }
    /// Ignores a request (kept, revisitable; nothing is sent).
    pub async fn ignore_request(&self, inbox: FlowId, id: RequestId) -> Result<(), Error> {
        self.command(inbox, Command::IgnoreRequest(id)).await
    }
    /// Blocks a request's sender (its requests are dropped silently).
    pub async fn block_requester(&self, inbox: FlowId, id: RequestId) -> Result<(), Error> {
        self.command(inbox, Command::BlockRequester(id)).await
    }
    /// Sends a command to a flow (see [`Handle`] for how it answers).
    async fn command(&self, flow: FlowId, command: Command) -> Result<(), Error> {
        self.call(|tx| Cmd::Command(flow, command, tx)).await?
    }
    /// Accepts a received invitation.
    pub async fn accept(&self, flow: FlowId) -> Result<(), Error> {
        self.command(flow, Command::Accept).await
    }
    /// Rejects a received invitation.
    pub async fn reject(&self, flow: FlowId) -> Result<(), Error> {
        self.command(flow, Command::Reject).await
    }
    /// Revokes an outstanding invitation (inviter) or abandons one (invitee).
    pub async fn cancel(&self, flow: FlowId) -> Result<(), Error> {
        self.command(flow, Command::Cancel).await
    }
    /// Supplies the password or PIN of a locked ticket (only while one is
    /// asked for, after [`Event::PasswordRequired`]). Answers once the
    /// attempt has started; the verdict comes as an event
    /// ([`Event::WrongPassword`] or [`Event::InvitationReceived`]). A
    /// password runs Argon2id off the async runtime; a PIN starts a SPAKE2
    /// attempt with the inviter's device (which counts it; while that device
    /// is offline the invitee sees [`Event::WaitingForInviter`]). Another
    /// password or PIN while one is being checked is refused.
    pub async fn password(&self, flow: FlowId, password: crate::crypto::Password) -> Result<(), Error> {
        self.command(flow, Command::Password(password)).await
    }
    /// The ticket of a published invitation.
    pub async fn ticket(&self, flow: FlowId) -> Result<Option<Ticket>, Error> {
        self.call(|tx| Cmd::Ticket(flow, tx)).await
    }
    /// Whether this party currently has a reply address, i.e. peers can
    /// nudge it past watch latency (the backend has a direct channel and it
    /// is up). Flows work either way. Asked right after [`start`], it answers
    /// once the first address is made or [`DriverConfig::reply_address_wait`]
    /// has passed.
    pub async fn has_reply_address(&self) -> Result<bool, Error> {
        self.call(Cmd::HasReplyAddress).await
    }
    /// Another reader of every event from now on (a UI, a notifier, a log),
    /// besides the [`Events`] channel [`start`] returned. A subscriber never
    /// holds the driver up: one that falls [`EVENT_BUFFER`] events behind
    /// loses the oldest and is told how many
    /// (`tokio::sync::broadcast::error::RecvError::Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<DriverEvent> {
        self.watchers.subscribe()
    }
    /// Stops the driver (flows stay persisted and resume on the next start).
    pub async fn shutdown(&self) {
        let _ = self.call(Cmd::Shutdown).await;
    }
}

/// Starts a driver over `dht` and `store`, resuming every persisted flow.
///
/// Answers once the store is read (identity snapshots and flow records), and
/// never waits on the network: this party's reply address is made in the
/// background, and only flows started before it is known wait for it (at
/// most [`DriverConfig::reply_address_wait`]).
pub async fn start<D: Dht, S: Store>(dht: D, store: Arc<S>, config: DriverConfig) -> Result<(Handle, Events), Error> {
    let changes = dht.changes();
    let nudges = dht.nudges();
    let (tx, rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_BUFFER);
    let (watchers, _) = tokio::sync::broadcast::channel(EVENT_BUFFER);
    let rng: Box<dyn Rng + Send> = match config.rng_seed {
        Some(seed) => Box::new(rand_chacha::ChaCha20Rng::seed_from_u64(seed)),
        None => Box::new(session_rng(&mut OsRng)?),
    };
    let mut actor = Actor {
        dht: Arc::new(dht),
        store,
        clock: config.clock,
        rng,
        flows: HashMap::new(),
        timers: BTreeMap::new(),
        timer_index: HashMap::new(),
        ops: JoinSet::new(),
        queued: VecDeque::new(),
        max_in_flight: config.max_in_flight.max(1),
        unresumed: HashSet::new(),
        resume_order: VecDeque::new(),
        snapshots: Snapshots::default(),
        events: ev_tx,
        watchers: watchers.clone(),
        #[cfg(feature = "test-hooks")]
        budget: config.crash_after_effects,
        #[cfg(not(feature = "test-hooks"))]
        budget: None,
        reply_address: None,
        computes: JoinSet::new(),
        compute_queue: VecDeque::new(),
        max_computations: max_computations(),
        #[cfg(feature = "test-hooks")]
        compute_on_runtime: config.compute_on_runtime,
        #[cfg(not(feature = "test-hooks"))]
        compute_on_runtime: false,
        starting: HashMap::new(),
        address_wait_until: (!config.reply_address_wait.is_zero()).then(|| {
            // A huge wait (`Duration::MAX` for "always") must not overflow.
            let now = tokio::time::Instant::now();
            now.checked_add(config.reply_address_wait).unwrap_or(now + Duration::from_secs(365 * 86_400))
        }),
        held: VecDeque::new(),
    };
    // Invitations made right after start should already carry the reply
    // address: flows started before its first answer (at once on MemoryDht;
    // on Veilid a route takes about a second) wait for it, at most
    // `reply_address_wait`; `start` itself never waits (see `hold_start`).
    let addresses = spawn_reply_address_task(Arc::downgrade(&actor.dht));
    // Identity snapshots first, each decoded (and its record verified) once;
    // then every flow, against them.
    let mut all_read = true;
    // Snapshots of an older format whose content no longer verifies: only
    // flows of an older format can refer to them (a flow this version writes
    // has its snapshot written in the current format first).
    let mut obsolete_snapshots = Vec::new();
    for (key, bytes) in actor.store.list(Table::IdentitySnapshots).await.map_err(store_err)? {
        let decoded = match bytes.first() {
            Some(&f) if f < crate::store::RECORD_FORMAT => {
                match crate::store::load_record::<crate::identity::StoredIdentity, Identity>(&bytes) {
                    Ok(crate::store::Load::Current(i) | crate::store::Load::Migrated(i)) => SharedIdentity::new(i),
                    Err(crate::store::UnreadableReason::MadeByOlderVersion { .. }) => {
                        obsolete_snapshots.push(key);
                        continue;
                    }
                    Err(e) => Err(Error::Unreadable(e)),
                }
            }
            _ => Identity::from_store_record(&bytes, "identity snapshot").and_then(SharedIdentity::new),
        };
        match decoded {
            Ok(s) if s.id().as_slice() == key.as_slice() => actor.snapshots.insert(s),
            Ok(_) => {
                all_read = false;
                tracing::error!("an identity snapshot is stored under another id; left in the store");
            }
            Err(e) => {
                all_read = false;
                tracing::error!(error = %e, "cannot read an identity snapshot; left in the store");
            }
        }
    }
    let persisted = actor.store.list(Table::Flows).await.map_err(store_err)?;
    let mut snapshots = core::mem::take(&mut actor.snapshots);
    // Flows of an older format, ended by the migration and told to the app.
    let mut ended = Vec::new();
    snapshots.decode_with(|| {
        for (key, bytes) in persisted {
            let Ok(id) = <[u8; 16]>::try_from(key.as_slice()) else { continue };
            let id = FlowId(id);
            // Another format: migrated as far as it can be (store docs).
            if let Some(reason) = bytes.first().and_then(|&f| crate::store::migrate_flow(f)) {
                let end = matches!(reason, crate::store::UnreadableReason::MadeByOlderVersion { .. });
                tracing::warn!(flow = %id, reason = %reason, "a persisted flow cannot be resumed by this version");
                let event = Event::Finished(Outcome::Failed(Error::Unreadable(reason)));
                // Removed only once the app has been told (the event is queued).
                if actor.events.try_send(DriverEvent { flow: id, event, round_trips: 0 }).is_ok() && end {
                    ended.push(id);
                } else {
                    all_read = false;
                }
                continue;
            }
            match crate::machine::decode_flow(&bytes, &format!("flow {id}")) {
                Ok(flow) => {
                    actor.flows.insert(id, flow);
                    actor.unresumed.insert(id);
                    actor.resume_order.push_back(id);
                }
                // One unreadable record must not stop every other flow from
                // resuming. It is left in the store untouched and reported.
                Err(e) => {
                    all_read = false;
                    let e = match crate::identity::take_missing_snapshot() {
                        Some(sid) => Error::Store(format!(
                            "flow {id}: its identity snapshot {} is not in the store",
                            data_encoding::HEXLOWER.encode(&sid[..6])
                        )),
                        None => e,
                    };
                    tracing::error!(flow = %id, error = %e, "cannot resume a persisted flow; left in the store");
                    let event = Event::Finished(Outcome::Failed(e));
                    let _ = actor.events.try_send(DriverEvent { flow: id, event, round_trips: 0 });
                }
            }
        }
    });
    actor.snapshots = snapshots;
    for id in ended {
        let r = actor.store.delete(Table::Flows, &id.0).await;
        let r = r.and(actor.store.delete(Table::Invitations, &id.0).await);
        if let Err(e) = r {
            all_read = false;
            tracing::warn!(flow = %id, error = %e, "could not remove a flow of an older format");
        }
    }
    // Snapshots left by a crash between writing one and the flow that uses
    // it. Kept if anything was unreadable: it may be what refers to them.
    if all_read {
        actor.delete_unreferenced_snapshots().await;
        for sid in obsolete_snapshots {
            if let Err(e) = actor.store.delete(Table::IdentitySnapshots, &sid).await {
                tracing::warn!(error = %e, "could not delete an identity snapshot of an older format");
            }
        }
    }
    tokio::spawn(
        async move {
            // Request inboxes learn which outgoing requests are still open
            // (each flow is resumed before its first input, see `feed`).
            let open: Vec<_> =
                actor.flows.iter().filter_map(|(id, f)| f.request_target().map(|to| (to, *id))).collect();
            if actor.feed_inboxes(Input::OutgoingSync(open)).await.is_err() {
                return;
            }
            actor.run(rx, changes, nudges, addresses).await;
        }
        .instrument(tracing::info_span!("contact_invite_driver")),
    );
    Ok((Handle { tx, watchers }, ev_rx))
}

fn store_err<E: std::error::Error>(e: E) -> Error {
    Error::Store(e.to_string())
}

/// Most commands held for the first reply address (as many as the command
/// channel holds); one more and the driver goes on without the address.
const MAX_HELD: usize = 64;

/// How often the reply address is re-checked once made (Veilid replaces a
/// private route that died; invitations made after that carry the new one).
const REPLY_ADDRESS_RECHECK: Duration = Duration::from_secs(60);

/// Keeps asking the backend for this party's reply address: at once, again
/// with backoff while it fails (a Veilid node needs a few seconds after attach
/// to build a private route), then every [`REPLY_ADDRESS_RECHECK`]. Sends
/// each new value; stops when the backend has no direct channel or the
/// driver is gone.
fn spawn_reply_address_task<D: Dht>(dht: std::sync::Weak<D>) -> mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(
        async move {
            // What was last sent (`None`: nothing yet, so the first result,
            // success or failure, is always sent).
            let mut last: Option<Option<Vec<u8>>> = None;
            let mut failures = 0u32;
            loop {
                // Held only for the call: a stopped driver's backend is freed.
                let Some(dht) = dht.upgrade() else { return };
                let answer = dht.reply_address().await;
                drop(dht);
                let (now, wait) = match answer {
                    Ok(None) => return,
                    Ok(Some(a)) => {
                        failures = 0;
                        (Some(a), REPLY_ADDRESS_RECHECK)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "no reply address yet");
                        failures += 1;
                        (None, Duration::from_millis(crate::machine::backoff_ms(failures)))
                    }
                };
                if last.as_ref() != Some(&now) {
                    last = Some(now.clone());
                    if tx.send(now).await.is_err() {
                        return;
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        }
        .instrument(tracing::debug_span!("reply_address")),
    );
    rx
}

/// The driver stopped on purpose (shutdown) or by the crash hook.
struct Stopped;

/// An operation's flow, id, round-trip depth and result.
type OpResult = (FlowId, OpId, u32, Result<DhtOutput, DhtFailure>);

struct Actor<D: Dht, S: Store> {
    dht: Arc<D>,
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    rng: Box<dyn Rng + Send>,
    flows: HashMap<FlowId, Flow>,
    timers: BTreeMap<(u64, FlowId, Timer), ()>,
    timer_index: HashMap<(FlowId, Timer), u64>,
    /// Operations in flight (at most `max_in_flight`).
    ops: JoinSet<OpResult>,
    /// Operations waiting for a slot, oldest first.
    queued: VecDeque<(FlowId, OpId, u32, DhtOp)>,
    max_in_flight: usize,
    /// Flows loaded from the store and not resumed yet, and the order to
    /// resume them in: resumed as slots free up, or before their first input.
    unresumed: HashSet<FlowId>,
    resume_order: VecDeque<FlowId>,
    /// The identities flows share, each persisted once.
    snapshots: Snapshots,
    events: mpsc::Sender<DriverEvent>,
    watchers: tokio::sync::broadcast::Sender<DriverEvent>,
    budget: Option<u64>,
    /// This party's reply address, as last made by the backend.
    reply_address: Option<Vec<u8>>,
    /// CPU-heavy jobs running off the runtime (at most `max_computations`),
    /// and those waiting for a slot, oldest first.
    computes: JoinSet<(FlowId, u32, JobOutput)>,
    compute_queue: VecDeque<(FlowId, u32, Job)>,
    max_computations: usize,
    compute_on_runtime: bool,
    /// Starts answered only once the flow is persisted, after a job it needs
    /// first (a password lock).
    starting: HashMap<FlowId, oneshot::Sender<Result<FlowId, Error>>>,
    /// Until the first reply address is known (or this instant passes),
    /// new flows (and questions about the address) wait in `held`, in
    /// order, so the first invitation after start carries the address;
    /// nothing else waits.
    address_wait_until: Option<tokio::time::Instant>,
    held: VecDeque<Cmd>,
}

impl<D: Dht, S: Store> Actor<D, S> {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        mut changes: Option<crate::dht::ChangeReceiver>,
        mut nudges: Option<crate::dht::NudgeReceiver>,
        mut addresses: mpsc::Receiver<Option<Vec<u8>>>,
    ) {
        let mut addresses_open = true;
        loop {
            if self.resume_some().await.is_err() {
                return;
            }
            let next_timer = self.timers.keys().next().map(|(at, _, _)| *at);
            let sleep_for = next_timer.map(|at| Duration::from_millis(at.saturating_sub(self.clock.now_ms())));
            let step = tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Shutdown(reply)) => { let _ = reply.send(()); return; }
                    Some(cmd) => self.on_cmd(cmd).await,
                },
                Some(done) = self.ops.join_next(), if !self.ops.is_empty() => match done {
                    Ok((flow, op, depth, result)) => {
                        self.issue_queued();
                        self.feed(flow, Input::DhtDone { op, result }, depth).await
                    }
                    Err(_) => Ok(()),
                },
                Some(done) = self.computes.join_next(), if !self.computes.is_empty() => match done {
                    Ok((flow, depth, output)) => {
                        self.issue_queued_computes();
                        self.on_computed(flow, depth, output).await
                    }
                    Err(_) => Ok(()),
                },
                Some(change) = async { match changes.as_mut() { Some(c) => c.recv().await, None => None } }, if changes.is_some() => {
                    self.on_change(change).await
                }
                Some(nudge) = async { match nudges.as_mut() { Some(n) => n.recv().await, None => None } }, if nudges.is_some() => {
                    self.on_nudge(nudge).await
                }
                address = addresses.recv(), if addresses_open => match address {
                    // No direct channel: nothing to wait for.
                    None => { addresses_open = false; self.release_starts().await }
                    Some(a) => self.on_reply_address(a).await,
                },
                () = async { match self.address_wait_until { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    self.release_starts().await
                }
                () = async { match sleep_for { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {
                    self.on_timers().await
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn on_cmd(&mut self, cmd: Cmd) -> Result<(), Stopped> {
        match cmd {
            // Wait for the first reply address (see `address_wait_until`).
            cmd @ (Cmd::Start(..) | Cmd::HasReplyAddress(_)) if self.address_wait_until.is_some() => {
                self.held.push_back(cmd);
                // Bounded like the command channel: past it, stop waiting.
                if self.held.len() >= MAX_HELD {
                    self.release_starts().await?;
                }
            }
            Cmd::Start(start, reply) => self.start_flow_now(start, reply).await?,
            Cmd::Command(id, c, reply) => {
                // A flow loaded from the store is resumed before its first input.
                self.resume(id).await?;
                let command = c.name();
                let now = self.clock.now_ms();
                let Some(flow) = self.flows.get_mut(&id) else {
                    let _ = reply.send(Err(Error::UnknownFlow { flow: id }));
                    return Ok(());
                };
                match flow.command(c, now, self.rng.as_mut()) {
                    Ok(effects) => {
                        tracing::debug!(flow = %id, command, "command applied");
                        // Answered once applied: a crash before that
                        // surfaces as an error.
                        self.apply(id, effects, 0).await?;
                        let _ = reply.send(Ok(()));
                    }
                    Err(refusal) => {
                        let e = match refusal {
                            Refusal::UnknownRequest => Error::UnknownRequest { flow: id },
                            Refusal::State(state) => Error::InvalidState { flow: id, state, command },
                        };
                        tracing::debug!(flow = %id, error = %e, "command refused");
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Cmd::Requests(id, reply) => {
                let r = match self.flows.get(&id) {
                    Some(Flow::Inbox(m)) => Some(m.requests()),
                    _ => None,
                };
                let _ = reply.send(r);
            }
            Cmd::Blocked(id, reply) => {
                let r = match self.flows.get(&id) {
                    Some(Flow::Inbox(m)) => Some(m.blocked()),
                    _ => None,
                };
                let _ = reply.send(r);
            }
            Cmd::Contacts(reply) => {
                let _ = reply.send(contacts(self.store.as_ref()).await);
            }
            Cmd::Flows(reply) => {
                let mut v: Vec<FlowView> =
                    self.flows.iter().filter(|(_, f)| !f.is_finished()).map(|(id, f)| f.view(*id)).collect();
                v.sort_by_key(|f| f.id.0);
                let _ = reply.send(v);
            }
            Cmd::Ticket(id, reply) => {
                let t = match self.flows.get(&id) {
                    Some(Flow::Inviter(m)) => m.ticket(),
                    _ => None,
                };
                let _ = reply.send(t);
            }
            Cmd::HasReplyAddress(reply) => {
                let _ = reply.send(self.reply_address.is_some());
            }
            Cmd::Shutdown(reply) => {
                let _ = reply.send(());
                return Err(Stopped);
            }
        }
        Ok(())
    }

    async fn on_change(&mut self, change: ValueChange) -> Result<(), Stopped> {
        let targets: Vec<FlowId> = self
            .flows
            .iter()
            .filter(|(_, f)| f.watched_records().contains(&change.record))
            .map(|(id, _)| *id)
            .collect();
        for id in targets {
            let input = Input::ValueChanged {
                record: change.record,
                subkeys: change.subkeys.clone(),
                value: change.value.clone(),
            };
            self.feed(id, input, 0).await?;
        }
        Ok(())
    }

    /// A nudge goes to the flows watching its record (as a notification would).
    async fn on_nudge(&mut self, nudge: Nudge) -> Result<(), Stopped> {
        let targets: Vec<FlowId> =
            self.flows.iter().filter(|(_, f)| f.watched_records().contains(&nudge.record)).map(|(id, _)| *id).collect();
        tracing::debug!(?nudge, flows = targets.len(), "nudge received");
        for id in targets {
            self.feed(id, Input::Nudge(nudge.clone()), 0).await?;
        }
        Ok(())
    }

    /// Makes, persists and starts a new flow; answers `reply` once it is
    /// persisted (or at once with the error that refused it).
    async fn start_flow_now(
        &mut self,
        start: Starter,
        reply: oneshot::Sender<Result<FlowId, Error>>,
    ) -> Result<(), Stopped> {
        let now = self.clock.now_ms();
        let id = FlowId::random(self.rng.as_mut());
        match start(now, self.rng.as_mut()) {
            Ok((mut flow, mut effects)) => {
                let target = flow.request_target();
                effects.extend(tell_reply_address(&mut flow, &self.reply_address, now, self.rng.as_mut()));
                self.flows.insert(id, flow);
                // Reply once the flow is persisted: a crash before
                // that surfaces as an error, never as a lost flow.
                self.apply(id, effects, 0).await?;
                if let Some(to) = target {
                    let input = Input::Outgoing { to, flow: id, open: true, contact: false };
                    self.feed_inboxes(input).await?;
                }
                if self.flows.get(&id).is_some_and(Flow::awaits_first_persist) {
                    // Answered once the job is back and the flow persisted.
                    self.starting.insert(id, reply);
                } else {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
        Ok(())
    }

    /// Runs the commands held for the first reply address, in order.
    async fn release_starts(&mut self) -> Result<(), Stopped> {
        self.address_wait_until = None;
        while let Some(cmd) = self.held.pop_front() {
            match cmd {
                Cmd::Start(start, reply) => self.start_flow_now(start, reply).await?,
                Cmd::HasReplyAddress(reply) => {
                    let _ = reply.send(self.reply_address.is_some());
                }
                // Only those two are held (see `on_cmd`).
                _ => {}
            }
        }
        Ok(())
    }

    async fn on_reply_address(&mut self, address: Option<Vec<u8>>) -> Result<(), Stopped> {
        tracing::debug!(len = address.as_ref().map(Vec::len), "reply address");
        self.reply_address = address;
        // Flows held for it start now (with it).
        if self.address_wait_until.is_some() {
            self.release_starts().await?;
        }
        // Flows not resumed yet are told when they are (see `take_resume`).
        let ids: Vec<FlowId> = self.flows.keys().filter(|id| !self.unresumed.contains(id)).copied().collect();
        for id in ids {
            self.feed(id, Input::ReplyAddress(self.reply_address.clone()), 0).await?;
        }
        Ok(())
    }

    async fn on_timers(&mut self) -> Result<(), Stopped> {
        let now = self.clock.now_ms();
        let due: Vec<(u64, FlowId, Timer)> = self.timers.keys().take_while(|(at, _, _)| *at <= now).copied().collect();
        for (at, id, t) in due {
            self.timers.remove(&(at, id, t));
            self.timer_index.remove(&(id, t));
            self.feed(id, Input::TimerFired(t), 0).await?;
        }
        Ok(())
    }

    /// A job is back: feed it to its flow, and answer a start that waited
    /// for it.
    async fn on_computed(&mut self, id: FlowId, depth: u32, output: JobOutput) -> Result<(), Stopped> {
        self.feed(id, Input::Computed(output), depth).await?;
        if let Some(reply) = self.starting.remove(&id) {
            if self.flows.get(&id).is_some_and(Flow::awaits_first_persist) {
                self.starting.insert(id, reply);
            } else {
                let _ = reply.send(Ok(id));
            }
        }
        Ok(())
    }

    /// Runs a job off the runtime, or queues it while `max_computations` run.
    fn compute(&mut self, id: FlowId, depth: u32, job: Job) {
        if self.computes.len() < self.max_computations {
            self.spawn_compute(id, depth, job);
        } else {
            self.compute_queue.push_back((id, depth, job));
        }
    }

    fn issue_queued_computes(&mut self) {
        while self.computes.len() < self.max_computations {
            let Some((id, depth, job)) = self.compute_queue.pop_front() else { break };
            self.spawn_compute(id, depth, job);
        }
    }

    fn spawn_compute(&mut self, id: FlowId, depth: u32, job: Job) {
        let span = tracing::debug_span!("compute", flow = %id, job = job.name());
        self.computes.spawn_blocking(move || {
            let _entered = span.enter();
            let start = std::time::Instant::now();
            let out = job.run();
            tracing::debug!(elapsed_ms = start.elapsed().as_millis() as u64, "computed");
            (id, depth, out)
        });
    }

    /// Resumes persisted flows while DHT slots are free (and nothing waits
    /// for one), so a restart with many flows runs at the pace of the DHT.
    async fn resume_some(&mut self) -> Result<(), Stopped> {
        while self.queued.is_empty() && self.ops.len() < self.max_in_flight {
            let Some(id) = self.resume_order.pop_front() else {
                if !self.unresumed.is_empty() || self.unresumed.capacity() > 0 {
                    self.unresumed = HashSet::new();
                    self.resume_order = VecDeque::new();
                }
                break;
            };
            self.resume(id).await?;
        }
        Ok(())
    }

    /// Resumes a flow loaded from the store, once.
    async fn resume(&mut self, id: FlowId) -> Result<(), Stopped> {
        if let Some(effects) = self.take_resume(id) {
            self.apply(id, effects, 0).await?;
        }
        Ok(())
    }

    /// The resume effects of a flow not resumed yet (then it is).
    fn take_resume(&mut self, id: FlowId) -> Option<Vec<Effect>> {
        if !self.unresumed.remove(&id) {
            return None;
        }
        let now = self.clock.now_ms();
        let flow = self.flows.get_mut(&id)?;
        let mut effects = flow.resume(now, self.rng.as_mut());
        // The address persisted before the restart may be dead.
        effects.extend(tell_reply_address(flow, &self.reply_address, now, self.rng.as_mut()));
        Some(effects)
    }

    /// Starts a DHT operation, or queues it while `max_in_flight` run.
    fn issue(&mut self, id: FlowId, op: OpId, depth: u32, request: DhtOp) {
        if self.ops.len() < self.max_in_flight {
            self.spawn_op(id, op, depth, request);
        } else {
            self.queued.push_back((id, op, depth, request));
        }
    }

    /// Starts queued operations into the free slots.
    fn issue_queued(&mut self) {
        while self.ops.len() < self.max_in_flight {
            let Some((id, op, depth, request)) = self.queued.pop_front() else { break };
            self.spawn_op(id, op, depth, request);
        }
        if self.queued.is_empty() && self.queued.capacity() > 4 * self.max_in_flight {
            self.queued.shrink_to(self.max_in_flight);
        }
    }

    fn spawn_op(&mut self, id: FlowId, op: OpId, depth: u32, request: DhtOp) {
        let dht = self.dht.clone();
        let span = tracing::debug_span!("dht_op", flow = %id, op, kind = request_name(&request));
        self.ops.spawn(async move { (id, op, depth, run_op(dht.as_ref(), request).await) }.instrument(span));
    }

    /// Deletes the identity snapshots no flow refers to any more.
    async fn delete_unreferenced_snapshots(&mut self) {
        for sid in self.snapshots.take_unreferenced() {
            if let Err(e) = self.store.delete(Table::IdentitySnapshots, &sid).await {
                tracing::warn!(error = %e, "could not delete an unused identity snapshot");
            }
        }
    }

    async fn feed(&mut self, id: FlowId, input: Input, depth: u32) -> Result<(), Stopped> {
        // A flow loaded from the store is resumed before its first input.
        self.resume(id).await?;
        let now = self.clock.now_ms();
        let Some(flow) = self.flows.get_mut(&id) else { return Ok(()) };
        let effects = flow.handle(input, now, self.rng.as_mut());
        self.apply(id, effects, depth).await
    }

    fn spend(&mut self) -> Result<(), Stopped> {
        match &mut self.budget {
            Some(0) => Err(Stopped),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Feeds `input` to every request inbox flow.
    async fn feed_inboxes(&mut self, input: Input) -> Result<(), Stopped> {
        let inboxes: Vec<FlowId> =
            self.flows.iter().filter(|(_, f)| matches!(f, Flow::Inbox(_))).map(|(id, _)| *id).collect();
        for id in inboxes {
            self.feed(id, input.clone(), 0).await?;
        }
        Ok(())
    }

    /// Carries out a step's effects, then those of flows it spawned or
    /// signalled (a queue, not recursion).
    async fn apply(&mut self, id: FlowId, effects: Vec<Effect>, depth: u32) -> Result<(), Stopped> {
        let mut queue = std::collections::VecDeque::from([(id, effects, depth)]);
        while let Some((id, effects, depth)) = queue.pop_front() {
            self.apply_one(id, effects, depth, &mut queue).await?;
        }
        Ok(())
    }

    async fn persist(&mut self, id: FlowId) -> Result<(), Stopped> {
        // The flow's identity is stored once, before the first flow record
        // that refers to it; flows with the same identity share one copy.
        let Some(flow) = self.flows.get_mut(&id) else { return Ok(()) };
        if let Some(shared) = flow.shared_identity_mut()
            && self.snapshots.intern(shared)
        {
            let sid = *shared.id();
            let bytes = shared.to_store_record();
            let r = match bytes {
                Ok(b) => self.store.put(Table::IdentitySnapshots, &sid, &b).await.map_err(store_err),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                self.snapshots.remove(&sid);
                tracing::error!(flow = %id, error = %e, "could not persist the flow's identity; stopping");
                return Err(Stopped);
            }
        }
        let Some(flow) = self.flows.get(&id) else { return Ok(()) };
        match crate::machine::encode_flow(flow) {
            Ok(bytes) => {
                if let Err(e) = self.store.put(Table::Flows, &id.0, &bytes).await {
                    tracing::error!(flow = %id, error = %e, "could not persist flow; stopping");
                    return Err(Stopped);
                }
            }
            Err(e) => tracing::error!(flow = %id, error = %e, "could not serialize flow"),
        }
        // The outstanding-invitation table follows the inviter's state:
        // present while the ticket is live, gone once final.
        if let Some(Flow::Inviter(m)) = self.flows.get(&id) {
            let r = match m.invitation_record() {
                Some(rec) => self.store.put(Table::Invitations, &id.0, &rec).await,
                None if m.is_finished() => self.store.delete(Table::Invitations, &id.0).await,
                None => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!(flow = %id, error = %e, "could not update the invitation table");
            }
        }
        Ok(())
    }

    async fn apply_one(
        &mut self,
        id: FlowId,
        effects: Vec<Effect>,
        depth: u32,
        queue: &mut std::collections::VecDeque<(FlowId, Vec<Effect>, u32)>,
    ) -> Result<(), Stopped> {
        // A persist stores the machine as it is at the end of this step, which
        // may already be past the state that produced a contact. So contacts
        // (idempotent upserts) are saved before anything else of the step:
        // a crash can then never persist "done" without the contact.
        let (contacts, rest): (Vec<Effect>, Vec<Effect>) =
            effects.into_iter().partition(|e| matches!(e, Effect::SaveContact(_) | Effect::SaveIdentity(_)));
        for e in contacts.into_iter().chain(rest) {
            self.spend()?;
            match e {
                Effect::Persist => self.persist(id).await?,
                Effect::Dht { op, request } => {
                    let d = depth + u32::from(request.is_network());
                    self.issue(id, op, d, request);
                }
                Effect::SetTimer { timer, at } => {
                    if let Some(old) = self.timer_index.insert((id, timer), at) {
                        self.timers.remove(&(old, id, timer));
                    }
                    self.timers.insert((at, id, timer), ());
                }
                Effect::CancelTimer(timer) => {
                    if let Some(old) = self.timer_index.remove(&(id, timer)) {
                        self.timers.remove(&(old, id, timer));
                    }
                }
                Effect::Nudge { to, nudge } => {
                    // Best effort and never awaited: the peer also watches and polls.
                    let dht = self.dht.clone();
                    let span = tracing::debug_span!("nudge", flow = %id, subkey = nudge.subkey);
                    tokio::spawn(
                        async move {
                            if let Err(e) = dht.send_nudge(&to, &nudge).await {
                                tracing::debug!(error = %e, "nudge not sent");
                            }
                        }
                        .instrument(span),
                    );
                }
                Effect::SaveContact(mut c) => {
                    // A contact made again with the same peer keeps its
                    // safety-number verification (same keys, same number).
                    if let Ok(Some(old)) = self.store.get(Table::Contacts, c.peer.as_bytes()).await
                        && let Ok(old) = Contact::from_store_record(&old, "contact")
                    {
                        c.keep_verification_from(&old);
                    }
                    if let Err(e) = save_contact(self.store.as_ref(), &c).await {
                        tracing::error!(flow = %id, error = %e, "could not save contact; stopping");
                        return Err(Stopped);
                    }
                }
                Effect::SaveIdentity(identity) => {
                    if let Err(e) = save_identity(self.store.as_ref(), &identity).await {
                        tracing::error!(flow = %id, error = %e, "could not save identity; stopping");
                        return Err(Stopped);
                    }
                }
                Effect::Spawn { id: new, mut flow, mut effects } => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = self.flows.entry(new) {
                        let now = self.clock.now_ms();
                        effects.extend(tell_reply_address(&mut flow, &self.reply_address, now, self.rng.as_mut()));
                        // Persisted before the spawning flow's own next
                        // persist, so a crash in between never loses it.
                        slot.insert(*flow);
                        self.persist(new).await?;
                        queue.push_back((new, effects, depth));
                    } else {
                        tracing::debug!(flow = %new, "spawn replayed: the flow exists");
                    }
                }
                Effect::Signal { flow, command } => {
                    if let Some(effects) = self.take_resume(flow) {
                        queue.push_back((flow, effects, 0));
                    }
                    let now = self.clock.now_ms();
                    if let Some(f) = self.flows.get_mut(&flow) {
                        let effects = f.handle(Input::Command(command), now, self.rng.as_mut());
                        queue.push_back((flow, effects, 0));
                    }
                }
                Effect::Compute(job) if self.compute_on_runtime => {
                    // Benchmarks only: the old behaviour, blocking the runtime.
                    let output = job.run();
                    let now = self.clock.now_ms();
                    if let Some(f) = self.flows.get_mut(&id) {
                        let effects = f.handle(Input::Computed(output), now, self.rng.as_mut());
                        queue.push_back((id, effects, depth));
                    }
                }
                Effect::Compute(job) => self.compute(id, depth, job),
                Effect::Emit(event) => {
                    // Events carry names, greetings and profiles: only their
                    // kind is logged above TRACE.
                    tracing::debug!(flow = %id, round_trips = depth, event = event_name(&event), "flow event");
                    tracing::trace!(flow = %id, event = ?event, "flow event data");
                    let ev = DriverEvent { flow: id, event, round_trips: depth };
                    // Extra subscribers never hold the driver up (a slow one
                    // loses the oldest events); the main channel does.
                    let _ = self.watchers.send(ev.clone());
                    let _ = self.events.send(ev).await;
                }
                Effect::Finished(outcome) => {
                    tracing::debug!(flow = %id, outcome = outcome_name(&outcome), "flow finished");
                    if let Some(reply) = self.starting.remove(&id) {
                        let e = match &outcome {
                            Outcome::Failed(e) => e.clone(),
                            _ => Error::ApiMisuse("the flow ended before it was persisted"),
                        };
                        let _ = reply.send(Err(e));
                    }
                    // A request flow ended: request inboxes stop merging with it.
                    if let Some(to) = self.flows.get(&id).and_then(Flow::request_target) {
                        let contact = matches!(outcome, Outcome::Contact(_));
                        let input = Input::Outgoing { to, flow: id, open: false, contact };
                        let inboxes: Vec<FlowId> =
                            self.flows.iter().filter(|(_, f)| matches!(f, Flow::Inbox(_))).map(|(i, _)| *i).collect();
                        for fid in inboxes {
                            if let Some(effects) = self.take_resume(fid) {
                                queue.push_back((fid, effects, 0));
                            }
                        }
                        let now = self.clock.now_ms();
                        for (fid, f) in &mut self.flows {
                            if matches!(f, Flow::Inbox(_)) {
                                queue.push_back((*fid, f.handle(input.clone(), now, self.rng.as_mut()), 0));
                            }
                        }
                    }
                    let _ = self.store.delete(Table::Flows, &id.0).await;
                    let _ = self.store.delete(Table::Invitations, &id.0).await;
                    self.flows.remove(&id);
                    self.unresumed.remove(&id);
                    self.delete_unreferenced_snapshots().await;
                    let stale: Vec<_> = self.timer_index.keys().filter(|(f, _)| *f == id).copied().collect();
                    for k in stale {
                        if let Some(at) = self.timer_index.remove(&k) {
                            self.timers.remove(&(at, k.0, k.1));
                        }
                    }
                    let _ = outcome;
                }
            }
        }
        Ok(())
    }
}

/// The RNG of a driver session (every key, salt and nonce it makes): ChaCha20
/// with a full 256-bit seed read from `os` (rule EDGE-RNG-1). A failing OS
/// source fails the start; there is no fallback.
fn session_rng(os: &mut dyn RngCore) -> Result<rand_chacha::ChaCha20Rng, Error> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    os.try_fill_bytes(seed.as_mut()).map_err(|_| Error::ApiMisuse("the operating system's random source failed"))?;
    Ok(rand_chacha::ChaCha20Rng::from_seed(*seed))
}

/// Every flow that enters the driver (started, resumed, spawned) learns the
/// current reply address, so what it builds next carries a live one.
fn tell_reply_address(flow: &mut Flow, address: &Option<Vec<u8>>, now: u64, rng: &mut dyn Rng) -> Vec<Effect> {
    flow.handle(Input::ReplyAddress(address.clone()), now, rng)
}

/// An event's kind, for logs (never its data).
fn event_name(e: &Event) -> &'static str {
    match e {
        Event::InvitationPublished { .. } => "invitation_published",
        Event::PasswordRequired { .. } => "password_required",
        Event::WrongPassword => "wrong_password",
        Event::WaitingForInviter => "waiting_for_inviter",
        Event::PinAttemptsExhausted { .. } => "pin_attempts_exhausted",
        Event::InvitationReceived(_) => "invitation_received",
        Event::ResponseSent { .. } => "response_sent",
        Event::ResponseIgnored { .. } => "response_ignored",
        Event::DeviceLinked { .. } => "device_linked",
        Event::RequestInboxOpen { .. } => "request_inbox_open",
        Event::RequestReceived(_) => "request_received",
        Event::RequestsMerged { .. } => "requests_merged",
        Event::RequestInboxFull { .. } => "request_inbox_full",
        Event::RequestDelivered { .. } => "request_delivered",
        Event::ContactEstablished { .. } => "contact_established",
        Event::UsesChanged(_) => "uses_changed",
        Event::Finished(o) => outcome_name(o),
    }
}

/// An outcome's kind, for logs.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Contact(_) => "finished: contact",
        Outcome::DeviceLinked(_) => "finished: device linked",
        Outcome::RejectedByPeer { .. } => "finished: rejected by peer",
        Outcome::RejectedByUs => "finished: rejected by us",
        Outcome::Cancelled => "finished: cancelled",
        Outcome::Failed(_) => "finished: failed",
        Outcome::MultiUseClosed(_) => "finished: multi-use closed",
    }
}

fn request_name(r: &DhtOp) -> &'static str {
    match r {
        DhtOp::Create { .. } => "create",
        DhtOp::Open { .. } => "open",
        DhtOp::Get { .. } => "get",
        DhtOp::Set { .. } => "set",
        DhtOp::Watch { .. } => "watch",
        DhtOp::Forget { .. } => "forget",
    }
}

fn failure<E: DhtError>(e: E) -> DhtFailure {
    DhtFailure { kind: e.kind(), message: e.to_string() }
}

/// Runs one DHT operation. Records not open on this handle (after a restart)
/// are opened and the operation retried once.
async fn run_op<D: Dht>(dht: &D, request: DhtOp) -> Result<DhtOutput, DhtFailure> {
    let start = std::time::Instant::now();
    let out = match &request {
        DhtOp::Create { schema, owner, secret: None } => {
            dht.create_record(schema, owner).await.map(DhtOutput::Created).map_err(failure)
        }
        DhtOp::Create { schema, owner, secret: Some(secret) } => {
            dht.create_record_with_secret(schema, owner, secret).await.map(DhtOutput::Created).map_err(failure)
        }
        DhtOp::Open { key, writer } => {
            dht.open_record(key, writer.as_ref()).await.map(|()| DhtOutput::Done).map_err(failure)
        }
        DhtOp::Get { key, subkey } => match dht.get_value(key, *subkey, true).await {
            Err(e) if e.kind() == DhtErrorKind::NotOpen => {
                dht.open_record(key, None).await.map_err(failure)?;
                dht.get_value(key, *subkey, true).await.map(DhtOutput::Value).map_err(failure)
            }
            r => r.map(DhtOutput::Value).map_err(failure),
        },
        DhtOp::Set { key, subkey, data, writer } => match dht.set_value(key, *subkey, data.clone(), Some(writer)).await
        {
            Err(e) if e.kind() == DhtErrorKind::NotOpen => {
                dht.open_record(key, Some(writer)).await.map_err(failure)?;
                dht.set_value(key, *subkey, data.clone(), Some(writer)).await.map(DhtOutput::Set).map_err(failure)
            }
            r => r.map(DhtOutput::Set).map_err(failure),
        },
        DhtOp::Watch { key, subkeys } => match dht.watch(key, subkeys).await {
            Err(e) if e.kind() == DhtErrorKind::NotOpen => {
                dht.open_record(key, None).await.map_err(failure)?;
                dht.watch(key, subkeys).await.map(|_| DhtOutput::Done).map_err(failure)
            }
            r => r.map(|_| DhtOutput::Done).map_err(failure),
        },
        DhtOp::Forget { key } => {
            let _ = dht.cancel_watch(key).await;
            let _ = dht.close_record(key).await;
            match dht.delete_record(key).await {
                Err(e) if e.kind() != DhtErrorKind::NotFound && e.kind() != DhtErrorKind::NotOpen => Err(failure(e)),
                _ => Ok(DhtOutput::Done),
            }
        }
    };
    tracing::debug!(elapsed_ms = start.elapsed().as_millis() as u64, ok = out.is_ok(), "dht op done");
    out
}

/// Saves a contact (upsert keyed by peer identity).
pub async fn save_contact<S: Store>(store: &S, contact: &Contact) -> Result<(), Error> {
    let bytes = contact.to_store_record()?;
    store.put(Table::Contacts, contact.peer.as_bytes(), &bytes).await.map_err(store_err)
}

/// What [`contacts`] read from the store.
#[derive(Debug)]
pub struct ContactList {
    /// Every contact that loaded, sorted by peer identity key.
    pub contacts: Vec<Contact>,
    /// Records that did not load (damaged, failing their checks, made by an
    /// older or newer version), each with its key (the peer's identity key
    /// bytes) and a typed reason. They are left in the store; show them to
    /// the user ("some contacts could not be read") rather than hide them.
    pub unreadable: Vec<UnreadableRecord>,
}

/// What [`identities`] read from the store.
#[derive(Debug)]
pub struct IdentityList {
    /// Every identity that loaded, sorted by identity key.
    pub identities: Vec<Identity>,
    /// Records that did not load, with their keys (identity key bytes) and
    /// typed reasons; left in the store.
    pub unreadable: Vec<UnreadableRecord>,
}

/// Loads every record of a contact or identity table: readable ones (those
/// of an older format migrated and written again in the current format,
/// best effort), and the unreadable ones with their reasons.
async fn load_all<S: Store, R, T>(
    store: &S,
    table: Table,
    key_of: impl Fn(&T) -> Vec<u8>,
) -> Result<(Vec<T>, Vec<UnreadableRecord>), Error>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = crate::VerifyError> + crate::identity::persist::Persist,
{
    use crate::store::Load;
    let (mut loaded, mut unreadable) = (Vec::new(), Vec::new());
    for (key, bytes) in store.list(table).await.map_err(store_err)? {
        let (value, migrated) = match crate::store::load_record::<R, T>(&bytes) {
            Ok(Load::Current(v)) => (v, false),
            Ok(Load::Migrated(v)) => (v, true),
            Err(reason) => {
                tracing::warn!(table = table.name(), reason = %reason, "a stored record cannot be read; left in the store");
                unreadable.push(UnreadableRecord { key, reason });
                continue;
            }
        };
        if key_of(&value) != key {
            tracing::warn!(table = table.name(), "a stored record is under another key; left in the store");
            unreadable.push(UnreadableRecord { key, reason: UnreadableReason::WrongKey });
            continue;
        }
        if migrated {
            let r = match crate::identity::persist::encode(&value) {
                Ok(b) => store.put(table, &key, &b).await.map_err(store_err),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                tracing::warn!(table = table.name(), error = %e, "could not write a migrated record back");
            }
        }
        loaded.push(value);
    }
    Ok((loaded, unreadable))
}

/// Every saved contact, and the records that could not be read.
///
/// One damaged record does not hide the others: every contact that loads is
/// returned, and each record that does not is listed in
/// [`ContactList::unreadable`] with its key and a typed
/// [`UnreadableReason`] (and left in the store, never deleted). A contact
/// of the previous record format loads if its content still verifies (and
/// is written again in the current format), see [`crate::store`]. Fails
/// only if the store itself cannot be listed.
pub async fn contacts<S: Store>(store: &S) -> Result<ContactList, Error> {
    let (contacts, unreadable) =
        load_all::<S, crate::contact::StoredContact, Contact>(store, Table::Contacts, |c| c.peer.as_bytes().to_vec())
            .await?;
    Ok(ContactList { contacts, unreadable })
}

/// Saves this device's identity (upsert keyed by identity key). Flows that
/// change it (device links) save it themselves.
pub async fn save_identity<S: Store>(store: &S, identity: &Identity) -> Result<(), Error> {
    let bytes = identity.to_store_record()?;
    store.put(Table::Identity, identity.public_key().as_bytes(), &bytes).await.map_err(store_err)
}

/// Every identity saved on this device (after a device link, the new
/// device's identity is here), and the records that could not be read: as
/// [`contacts`], readable ones are returned and unreadable ones listed with
/// their keys and typed reasons, and left in the store.
pub async fn identities<S: Store>(store: &S) -> Result<IdentityList, Error> {
    let (identities, unreadable) =
        load_all::<S, crate::identity::StoredIdentity, Identity>(store, Table::Identity, |i| {
            i.public_key().as_bytes().to_vec()
        })
        .await?;
    Ok(IdentityList { identities, unreadable })
}

/// Reads this identity's record from the DHT and adopts it if it is newer
/// ([`Identity::adopt_record`]): how a device learns of new and revoked
/// devices and picks up a rotated account secret after another device
/// revoked one (REV-4). Call it on start and now and then; a device that was
/// revoked gets a typed error (`VerifyError::UntrustedDevice`) and keeps what
/// it had. Returns the (possibly unchanged) identity.
pub async fn refresh_identity<D: Dht>(dht: &D, mut identity: Identity) -> Result<Identity, Error> {
    let key = identity.record_key().cloned().ok_or(Error::ApiMisuse("identity not published"))?;
    let dht_err = |e: D::Error| Error::Dht { kind: e.kind(), message: e.to_string() };
    let mut attempt = 0;
    let value = loop {
        let r = match dht.open_record(&key, None).await {
            Ok(()) => dht.get_value(&key, 0, true).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(v) => break v,
            Err(e) if e.is_retryable() && attempt + 1 < crate::machine::MAX_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(crate::machine::backoff_ms(attempt))).await;
            }
            Err(e) => return Err(dht_err(e)),
        }
    };
    let value = value.ok_or(crate::error::ProtocolError::NotFound)?;
    let fetched = crate::message::SignedIdentity::verify(&value.data, Some(&identity.public_key()))?;
    // An older record (a stale node) teaches nothing: keep ours.
    if fetched.record().seq >= identity.signed().record().seq {
        identity.adopt_record(fetched)?;
    }
    Ok(identity)
}

/// Publishes (or republishes) an identity record and returns the identity
/// with its record key set. The record is first made to name that record key
/// as its location, signed by the identity key (FRESH-1). Needs the identity
/// key on this device.
pub async fn publish_identity<D: Dht>(dht: &D, mut identity: Identity) -> Result<Identity, Error> {
    let owner = identity
        .identity_signing_key()
        .cloned()
        .ok_or(Error::ApiMisuse("this device does not hold the identity key"))?;
    let dht_err = |e: D::Error| Error::Dht { kind: e.kind(), message: e.to_string() };
    let key = match identity.record_key() {
        Some(k) => k.clone(),
        None => {
            // Create is idempotent for an owner and schema, so retrying is safe.
            let mut attempt = 0;
            loop {
                match dht.create_record(&identity_record_schema(), &owner).await {
                    Ok(k) => break k,
                    Err(e) if e.is_retryable() && attempt + 1 < crate::machine::MAX_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(crate::machine::backoff_ms(attempt))).await;
                    }
                    Err(e) => return Err(dht_err(e)),
                }
            }
        }
    };
    // FRESH-1: the record names where it is published, signed by the identity key.
    identity.bind_location(key.clone())?;
    let data = identity.signed().to_bytes().to_vec();
    for _ in 0..crate::machine::MAX_ATTEMPTS {
        match dht.set_value(&key, 0, data.clone(), Some(&owner)).await {
            Ok(None) => {
                identity.set_record_key(key);
                return Ok(identity);
            }
            // A stale local copy: the newer value is now local; write again.
            Ok(Some(v)) if v.data == data => {
                identity.set_record_key(key);
                return Ok(identity);
            }
            Ok(Some(_)) => continue,
            Err(e) if e.kind() == DhtErrorKind::NotOpen => {
                dht.open_record(&key, Some(&owner)).await.map_err(dht_err)?
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(e) => return Err(dht_err(e)),
        }
    }
    Err(crate::error::ProtocolError::RetriesExhausted {
        what: "publish identity".into(),
        attempts: crate::machine::MAX_ATTEMPTS,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use rand_core::{RngCore, SeedableRng};

    /// EDGE-RNG-1 (issue 13, item 5): the session RNG takes a full 256-bit
    /// seed from the OS: two OS sources that differ anywhere in their first
    /// 32 bytes give different streams, and the seed is exactly those bytes.
    #[test]
    fn edge_rng_session_rng_is_seeded_with_32_bytes_from_the_os() {
        let source = |tail: u8| {
            let mut b = [0u8; 64];
            b[31] = tail;
            rand_chacha::ChaCha8Rng::from_seed([0; 32]).fill_bytes(&mut b[..24]);
            b
        };
        struct Fixed([u8; 64], usize);
        impl RngCore for Fixed {
            fn next_u32(&mut self) -> u32 {
                rand_core::impls::next_u32_via_fill(self)
            }
            fn next_u64(&mut self) -> u64 {
                rand_core::impls::next_u64_via_fill(self)
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                for d in dest {
                    *d = self.0[self.1 % 64];
                    self.1 += 1;
                }
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
                self.fill_bytes(dest);
                Ok(())
            }
        }
        let (a, b) = (source(1), source(2));
        let mut ra = super::session_rng(&mut Fixed(a, 0)).unwrap();
        let mut rb = super::session_rng(&mut Fixed(b, 0)).unwrap();
        assert_eq!(ra.get_seed()[..], a[..32], "the seed is the OS's 32 bytes");
        assert_ne!(ra.next_u64(), rb.next_u64(), "entropy past the first 8 bytes reaches the stream");
    }
}
