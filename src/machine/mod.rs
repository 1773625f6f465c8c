//! Sans-IO protocol state machines, for those who drive machines themselves.
//!
//! An app does not need this module: it runs flows through the
//! [`crate::driver`] and uses the types in [`crate::flow`] (ids, parameters,
//! events, outcomes, views; all in [`crate::prelude`]). What is here is what
//! a driver of its own needs: the machines ([`Flow`], [`Inviter`],
//! [`Invitee`], [`RequestInbox`]), what goes in ([`Command`], [`Input`],
//! [`DhtOutput`], [`JobOutput`], [`Timer`]), what comes out ([`Effect`],
//! [`DhtOp`], [`Job`], [`Refusal`]) and the retry constants.
//!
//! A machine never awaits, never reads a clock, never draws from a global RNG
//! and never calls the DHT. The driver feeds it [`Input`]s with the current
//! time (unix milliseconds) and an RNG, and carries out the [`Effect`]s it
//! returns, **in order**: a [`Effect::Persist`] always precedes the DHT
//! effects that depend on the new state, so a crash at any point resumes from
//! a state whose pending operations are re-issued by [`Flow::resume`].
//!
//! Every DHT operation has an [`OpId`]; results come back as
//! [`Input::DhtDone`]. Retryable failures are retried with backoff through
//! timers; a step that keeps failing ends the flow with
//! [`crate::ProtocolError::RetriesExhausted`].

#[cfg(test)]
mod freshness_tests;
mod invitee;
mod inviter;
pub mod poll;
mod requests;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

pub use invitee::Invitee;
pub use inviter::Inviter;
pub use requests::RequestInbox;

use crate::contact::Contact;
use crate::crypto::{KeySeed, Password, PasswordLimits, PasswordParams, PublicKey, SALT_LEN, SecretKey, SigningKey};
use crate::dht::{DhtErrorKind, Nudge, RecordKey, Schema, Subkey, ValueData};
use crate::error::{Error, PasswordError, ProtocolError};
use crate::flow::{Event, FlowId, FlowKind, FlowView, Outcome, RequestId};

/// A random source usable by machines (object safe).
pub trait Rng: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> Rng for T {}

/// Identifies a DHT operation within a flow.
pub type OpId = u64;

/// A DHT operation requested by a machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DhtOp {
    /// Create a record (idempotent for the same owner and schema).
    Create {
        /// Schema.
        schema: Schema,
        /// Owner key.
        owner: SigningKey,
        /// The record's encryption secret, chosen by the machine (an
        /// invitation inbox's, derived from the ticket's secret); `None`:
        /// the DHT chooses.
        secret: Option<SecretKey>,
    },
    /// Open a record.
    Open {
        /// Record.
        key: RecordKey,
        /// Writer, if writing.
        writer: Option<SigningKey>,
    },
    /// Read a subkey from the network.
    Get {
        /// Record.
        key: RecordKey,
        /// Subkey.
        subkey: Subkey,
    },
    /// Write a subkey (confirmed on the network).
    Set {
        /// Record.
        key: RecordKey,
        /// Subkey.
        subkey: Subkey,
        /// Value.
        data: Vec<u8>,
        /// Writer.
        writer: SigningKey,
    },
    /// Watch subkeys.
    Watch {
        /// Record.
        key: RecordKey,
        /// Subkeys.
        subkeys: Vec<Subkey>,
    },
    /// Close, cancel watches, and delete the local copy.
    Forget {
        /// Record.
        key: RecordKey,
    },
}

impl DhtOp {
    /// Whether this operation is a network round trip (get, set). Create,
    /// open, watch and forget are local on MemoryDht; on Veilid opening a
    /// record not held locally adds one inspect round trip.
    pub fn is_network(&self) -> bool {
        matches!(self, Self::Get { .. } | Self::Set { .. })
    }
}

/// The result of a DHT operation.
#[derive(Clone, Debug)]
pub enum DhtOutput {
    /// Create: the record key.
    Created(RecordKey),
    /// Open, watch, forget: done.
    Done,
    /// Get: the value, if any.
    Value(Option<ValueData>),
    /// Set: `None` written; `Some(newer)` the network holds a newer value.
    Set(Option<ValueData>),
}

/// A failed DHT operation, backend-independent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtFailure {
    /// Kind.
    pub kind: DhtErrorKind,
    /// Message.
    pub message: String,
}

/// A user command.
#[derive(Clone, Debug)]
pub enum Command {
    /// Supply the password or PIN of a locked invitation (a PIN starts a
    /// SPAKE2 attempt with the inviter's device).
    Password(Password),
    /// Accept the received invitation.
    Accept,
    /// Reject the received invitation.
    Reject,
    /// Revoke an outstanding invitation (inviter), abandon it (invitee), or
    /// close a request inbox (unpublished from the identity record).
    Cancel,
    /// Request inbox: accept a request (runs the invitation flow with the
    /// requester's ticket; the contact is made through the usual finalize).
    AcceptRequest(RequestId),
    /// Request inbox: ignore a request (kept and revisitable; nothing is sent).
    IgnoreRequest(RequestId),
    /// Request inbox: block the requester (its requests are dropped silently
    /// from now on; nothing is sent).
    BlockRequester(RequestId),
    /// Request inbox: unblock an identity.
    Unblock(PublicKey),
}

impl Command {
    /// A short name for errors and logs (never the command's data).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Password(_) => "password",
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::Cancel => "cancel",
            Self::AcceptRequest(_) => "accept_request",
            Self::IgnoreRequest(_) => "ignore_request",
            Self::BlockRequester(_) => "block_requester",
            Self::Unblock(_) => "unblock",
        }
    }
}

/// Why a flow did not apply a command ([`Flow::command`]); the driver turns
/// it into [`Error::InvalidState`] or [`Error::UnknownRequest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The command does not apply in this state (a short static name).
    State(&'static str),
    /// A request inbox keeps no request with that id.
    UnknownRequest,
}

/// CPU-heavy work a machine asks the driver to run off the async runtime
/// ([`Effect::Compute`]); the result comes back as [`Input::Computed`].
/// Machines never run it themselves, so driving them never blocks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Job {
    /// Argon2id over a password (locking an invitation, or each unlock
    /// attempt). PINs run SPAKE2 instead, in the machines (a few scalar
    /// multiplications).
    Stretch {
        /// The password (redacted in `Debug`; never persisted).
        password: Password,
        /// Salt.
        salt: [u8; SALT_LEN],
        /// Argon2id parameters.
        params: PasswordParams,
        /// Caps checked before any work.
        limits: PasswordLimits,
    },
    /// A proof-of-work stamp for a contact request.
    Mint {
        /// Difficulty.
        bits: u32,
        /// The recipient identity.
        recipient: [u8; 32],
        /// The recipient's request inbox (opaque key).
        inbox: [u8; 32],
        /// What the stamp is bound to besides: a hash of the request's
        /// ephemeral key and its sealed bytes (EDGE-RQ-3).
        subject: [u8; 32],
    },
}

impl Job {
    /// Runs the work (blocking: call it off the async runtime, e.g. in
    /// `tokio::task::spawn_blocking`).
    #[must_use]
    pub fn run(self) -> JobOutput {
        match self {
            Self::Stretch { password, salt, params, limits } => {
                JobOutput::Stretched(crate::crypto::password::stretch(&password, &salt, &params, &limits))
            }
            Self::Mint { bits, recipient, inbox, subject } => {
                JobOutput::Minted { bits, subject, nonce: crate::crypto::pow::mint(bits, &recipient, &inbox, &subject) }
            }
        }
    }
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stretch { .. } => "argon2id",
            Self::Mint { .. } => "mint stamp",
        }
    }
}

/// The result of a [`Job`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum JobOutput {
    /// The stretched password (redacted in `Debug`), or why the parameters
    /// were refused.
    Stretched(Result<SecretKey, PasswordError>),
    /// A stamp (`None`: `bits` above the cap), for the request with this
    /// subject.
    Minted {
        /// Difficulty asked.
        bits: u32,
        /// The stamp's subject (matches the job).
        subject: [u8; 32],
        /// The nonce found.
        nonce: Option<u64>,
    },
}

/// Timers a machine can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Timer {
    /// Re-read the watched subkey (watches can lag or be lost).
    Poll,
    /// The invitation expires.
    Expiry,
    /// Retry the operation.
    Retry(OpId),
}

/// An input to a machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A user command.
    Command(Command),
    /// A DHT operation finished.
    DhtDone {
        /// Which.
        op: OpId,
        /// How.
        result: Result<DhtOutput, DhtFailure>,
    },
    /// A watched record changed.
    ValueChanged {
        /// Record (opaque key).
        record: [u8; 32],
        /// Subkeys.
        subkeys: Vec<Subkey>,
        /// New value of the first subkey, if the backend delivered it.
        value: Option<ValueData>,
    },
    /// A peer sent the value it just wrote straight to our reply address
    /// (routed by record, like a watch notification). Untrusted.
    Nudge(Nudge),
    /// From the driver: this party's current reply address (`None`: the
    /// backend has none, or it is not ready). New invitations and responses
    /// carry it so the peer can nudge us.
    ReplyAddress(Option<Vec<u8>>),
    /// A timer fired.
    TimerFired(Timer),
    /// From the driver to request inboxes: this device has (`open`) or no
    /// longer has an outgoing request to `to` in `flow`, so that
    /// simultaneous requests between two identities merge into one contact.
    Outgoing {
        /// The recipient of our request.
        to: PublicKey,
        /// Our requesting flow.
        flow: FlowId,
        /// Started (true) or ended (false).
        open: bool,
        /// Ended with a contact.
        contact: bool,
    },
    /// From the driver after a restart: every outgoing request now open.
    OutgoingSync(Vec<(PublicKey, FlowId)>),
    /// A [`Job`] the flow asked for ([`Effect::Compute`]) is done.
    Computed(JobOutput),
}

/// What a machine asks the driver to do.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Persist the machine's state now (before the effects that follow).
    Persist,
    /// Run a DHT operation and report back with [`Input::DhtDone`].
    Dht {
        /// Its id.
        op: OpId,
        /// What.
        request: DhtOp,
    },
    /// Fire `timer` at `at` (unix ms); replaces a pending timer of that kind.
    SetTimer {
        /// Which.
        timer: Timer,
        /// When (unix ms).
        at: u64,
    },
    /// Cancel a timer.
    CancelTimer(Timer),
    /// Send `nudge` to a peer's reply address, best effort: the driver does
    /// not report back, and nothing depends on it arriving (emitted only
    /// after the value it carries was confirmed on the DHT).
    Nudge {
        /// The peer's reply address.
        to: Vec<u8>,
        /// The value just written.
        nudge: Nudge,
    },
    /// Save a final contact (idempotent upsert keyed by peer identity).
    SaveContact(Box<Contact>),
    /// Save this device's identity (idempotent upsert keyed by identity
    /// key): after a device link, on both devices (the old one's record
    /// gained a device; the new one's identity is new).
    SaveIdentity(Box<crate::identity::Identity>),
    /// Start another flow under `id` (request inboxes start an invitee flow
    /// for an accepted request). Idempotent: nothing happens if a flow with
    /// that id exists.
    Spawn {
        /// Its id (derived from the request, so a replay finds it).
        id: FlowId,
        /// The flow.
        flow: Box<Flow>,
        /// Its first effects.
        effects: Vec<Effect>,
    },
    /// Send a command to another flow of this driver (a merge cancels our
    /// own outgoing request).
    Signal {
        /// The flow.
        flow: FlowId,
        /// The command.
        command: Command,
    },
    /// Run CPU-heavy work off the async runtime and report back with
    /// [`Input::Computed`]. The flow persists what it needs to ask again, so
    /// a crash while the work runs resumes by asking again (a stamp is minted
    /// again; a password, which is never persisted, is asked for again).
    Compute(Job),
    /// Tell the app.
    Emit(Event),
    /// The flow is over; remove its persisted state. It follows the
    /// [`Event::Finished`], so a crash in between re-emits the event on resume
    /// (the final state is persisted before either).
    Finished(Outcome),
}

/// Bookkeeping for in-flight operations, shared by both machines.
///
/// Kept small, because a waiting invitation holds it for days: pending ops
/// and timers are short vectors sized to their contents (a flow has at most
/// a handful of each; linear search is faster than a map at that size), and
/// a pending request holds its keys as 32-byte seeds ([`StoredOp`]),
/// expanded again only when the request is re-issued.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Ops<P> {
    next: OpId,
    pending: Vec<(OpId, PendingOp<P>)>,
    timers: Vec<(Timer, u64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingOp<P> {
    pub(crate) purpose: P,
    request: Box<StoredOp>,
    pub(crate) attempts: u32,
}

/// A [`DhtOp`] as kept while pending: the same request with every signing
/// key held as its seed (32 bytes instead of an expanded ~224-byte key).
/// Seeds zeroize on drop like the keys they stand for.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredOp {
    Create { schema: Schema, owner: KeySeed, secret: Option<SecretKey> },
    Open { key: RecordKey, writer: Option<KeySeed> },
    Get { key: RecordKey, subkey: Subkey },
    Set { key: RecordKey, subkey: Subkey, data: Vec<u8>, writer: KeySeed },
    Watch { key: RecordKey, subkeys: Vec<Subkey> },
    Forget { key: RecordKey },
}

impl StoredOp {
    fn keep(op: &DhtOp) -> Box<Self> {
        Box::new(match op {
            DhtOp::Create { schema, owner, secret } => {
                Self::Create { schema: schema.clone(), owner: owner.into(), secret: secret.clone() }
            }
            DhtOp::Open { key, writer } => Self::Open { key: key.clone(), writer: writer.as_ref().map(KeySeed::from) },
            DhtOp::Get { key, subkey } => Self::Get { key: key.clone(), subkey: *subkey },
            DhtOp::Set { key, subkey, data, writer } => {
                Self::Set { key: key.clone(), subkey: *subkey, data: data.clone(), writer: writer.into() }
            }
            DhtOp::Watch { key, subkeys } => Self::Watch { key: key.clone(), subkeys: subkeys.clone() },
            DhtOp::Forget { key } => Self::Forget { key: key.clone() },
        })
    }
    fn request(&self) -> DhtOp {
        match self {
            Self::Create { schema, owner, secret } => {
                DhtOp::Create { schema: schema.clone(), owner: owner.expand(), secret: secret.clone() }
            }
            Self::Open { key, writer } => {
                DhtOp::Open { key: key.clone(), writer: writer.as_ref().map(KeySeed::expand) }
            }
            Self::Get { key, subkey } => DhtOp::Get { key: key.clone(), subkey: *subkey },
            Self::Set { key, subkey, data, writer } => {
                DhtOp::Set { key: key.clone(), subkey: *subkey, data: data.clone(), writer: writer.expand() }
            }
            Self::Watch { key, subkeys } => DhtOp::Watch { key: key.clone(), subkeys: subkeys.clone() },
            Self::Forget { key } => DhtOp::Forget { key: key.clone() },
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create record",
            Self::Open { .. } => "open record",
            Self::Get { .. } => "get value",
            Self::Set { .. } => "set value",
            Self::Watch { .. } => "watch",
            Self::Forget { .. } => "forget record",
        }
    }
}

/// Pushes onto a vector that grows by exactly one (these vectors hold a
/// handful of entries for a long time: no spare capacity).
fn push_exact<T>(v: &mut Vec<T>, x: T) {
    v.reserve_exact(1);
    v.push(x);
}

/// Most attempts at one operation before giving up.
pub const MAX_ATTEMPTS: u32 = 8;

/// OPEN-1: attempts at opening a record that is "not found" before that
/// verdict stands. Veilid answers `KeyNotFound` when no node holding the
/// record replied in time, e.g. while nodes that left the network still time
/// out: seen on the private network after two of six nodes stopped (two
/// opens failed, the third worked). A record that really does not exist is
/// refused after the retries' backoff (0.25 + 0.5 + 1 s).
pub const OPEN_NOT_FOUND_ATTEMPTS: u32 = 4;

/// After a step has exhausted its quick retries, how long until it is tried
/// again (for steps that must eventually happen, like the final status).
pub const SLOW_RETRY_MS: u64 = 30_000;

/// How many times a peer's identity record is read, at most, before the
/// freshness check fails closed with
/// [`crate::ProtocolError::FreshnessUnavailable`] (FRESH-3). A read that does
/// not confirm (no value, a value that does not verify, another identity,
/// another location, an older record, or a failed read) is repeated after
/// [`freshness_retry_ms`].
pub const FRESHNESS_READS: u32 = 4;

/// Delay before re-read number `n` of a peer's identity record (ms): 1 s
/// doubling, capped at 8 s (a record just written may not have reached every
/// node yet).
#[must_use]
pub fn freshness_retry_ms(n: u32) -> u64 {
    (1_000u64 << n.min(3)).min(8_000)
}

/// What one read of a peer's identity record says (FRESH-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FreshRead {
    /// A record of this identity, at this location, at least as new as the
    /// snapshot, lists the device as current.
    Current,
    /// Such a record no longer lists the device as current.
    Revoked,
    /// Such a record lists the device as current, but the identity moved on
    /// from the snapshot: another DH key (the account secret was rotated) or
    /// a device current in the snapshot is revoked or gone (FRESH-7). A
    /// contact built from the snapshot would trust what the owner revoked.
    Changed,
    /// Nothing that counts: read again, then fail closed.
    Unconfirmed,
}

/// Judges one read of the identity record at `location` against the
/// `snapshot` the peer presented and the `device` that signed for it. Only a
/// record that verifies under the snapshot's identity key, names `location`
/// and is at least as new as the snapshot counts; anything else (no value,
/// garbage, another identity, another location, an older copy) is
/// [`FreshRead::Unconfirmed`], never fresh.
pub(crate) fn judge_freshness(
    value: Option<&ValueData>,
    snapshot: &crate::message::SignedIdentity,
    location: &RecordKey,
    device: &PublicKey,
) -> FreshRead {
    let Some(v) = value else { return FreshRead::Unconfirmed };
    match crate::message::SignedIdentity::verify_at(&v.data, &snapshot.record().identity_key, location) {
        Ok(f) if f.record().seq < snapshot.record().seq => FreshRead::Unconfirmed,
        Ok(f) if f.require_current(device).is_err() => FreshRead::Revoked,
        Ok(f) if moved_on(snapshot.record(), f.record()) => FreshRead::Changed,
        Ok(_) => FreshRead::Current,
        Err(_) => FreshRead::Unconfirmed,
    }
}

/// Whether `fresh` (a newer record of the same identity) changed what a
/// contact built from `snapshot` would trust: the DH key, or a device that
/// is current in the snapshot and revoked or missing now.
fn moved_on(snapshot: &crate::message::IdentityRecord, fresh: &crate::message::IdentityRecord) -> bool {
    use crate::message::DeviceStatus;
    snapshot.dh_key != fresh.dh_key
        || snapshot.devices.iter().any(|d| {
            d.status == DeviceStatus::Current
                && !matches!(fresh.device_status(&d.device_key), Some(DeviceStatus::Current | DeviceStatus::Deprecated))
        })
}

/// Backoff before retry number `attempt` (ms): 250 ms doubling, capped at 8 s.
#[must_use]
pub fn backoff_ms(attempt: u32) -> u64 {
    (250u64 << attempt.min(5)).min(8_000)
}

impl<P> Default for Ops<P> {
    fn default() -> Self {
        Self { next: 0, pending: Vec::new(), timers: Vec::new() }
    }
}

impl<P: Clone> Ops<P> {
    fn pending_mut(&mut self, op: OpId) -> Option<&mut PendingOp<P>> {
        self.pending.iter_mut().find(|(id, _)| *id == op).map(|(_, p)| p)
    }
    fn remove_pending(&mut self, op: OpId) {
        self.pending.retain(|(id, _)| *id != op);
        self.pending.shrink_to_fit();
    }
    fn insert_timer(&mut self, timer: Timer, at: u64) {
        match self.timers.iter_mut().find(|(t, _)| *t == timer) {
            Some(slot) => slot.1 = at,
            None => push_exact(&mut self.timers, (timer, at)),
        }
    }
    fn remove_timer(&mut self, timer: Timer) -> bool {
        let before = self.timers.len();
        self.timers.retain(|(t, _)| *t != timer);
        self.timers.shrink_to_fit();
        self.timers.len() != before
    }
    pub(crate) fn has_timer(&self, timer: Timer) -> bool {
        self.timers.iter().any(|(t, _)| *t == timer)
    }

    pub(crate) fn start(&mut self, purpose: P, request: DhtOp, out: &mut Vec<Effect>) -> OpId {
        let op = self.next;
        self.next += 1;
        push_exact(&mut self.pending, (op, PendingOp { purpose, request: StoredOp::keep(&request), attempts: 1 }));
        out.push(Effect::Dht { op, request });
        op
    }
    pub(crate) fn set_timer(&mut self, timer: Timer, at: u64, out: &mut Vec<Effect>) {
        self.insert_timer(timer, at);
        out.push(Effect::SetTimer { timer, at });
    }
    pub(crate) fn cancel_timer(&mut self, timer: Timer, out: &mut Vec<Effect>) {
        if self.remove_timer(timer) {
            out.push(Effect::CancelTimer(timer));
        }
    }
    pub(crate) fn fired(&mut self, timer: Timer) -> bool {
        self.remove_timer(timer)
    }
    pub(crate) fn has_pending(&self, pred: impl Fn(&P) -> bool) -> bool {
        self.pending.iter().any(|(_, p)| pred(&p.purpose))
    }

    /// Takes a completed op. Retryable failures schedule a retry and return
    /// `Completion::Retrying`; exhausted ones return an error.
    pub(crate) fn complete(
        &mut self,
        op: OpId,
        result: Result<DhtOutput, DhtFailure>,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> Completion<P> {
        let Some(p) = self.pending_mut(op) else {
            return Completion::Unknown;
        };
        match result {
            Ok(o) => {
                let purpose = p.purpose.clone();
                self.remove_pending(op);
                Completion::Done(purpose, o)
            }
            Err(f)
                if (f.kind.is_retryable() && p.attempts < MAX_ATTEMPTS)
                    || (f.kind == DhtErrorKind::NotFound
                        && matches!(*p.request, StoredOp::Open { .. })
                        && p.attempts < OPEN_NOT_FOUND_ATTEMPTS) =>
            {
                let at = now + backoff_ms(p.attempts);
                self.insert_timer(Timer::Retry(op), at);
                out.push(Effect::SetTimer { timer: Timer::Retry(op), at });
                Completion::Retrying
            }
            Err(f) => {
                let purpose = p.purpose.clone();
                let attempts = p.attempts;
                let what = p.request.name();
                self.remove_pending(op);
                if f.kind.is_retryable() {
                    Completion::Failed(
                        purpose,
                        f,
                        Some(ProtocolError::RetriesExhausted { what: what.to_owned(), attempts }),
                    )
                } else {
                    Completion::Failed(purpose, f, None)
                }
            }
        }
    }

    /// Registers an op to be issued at `at` (through its retry timer).
    pub(crate) fn start_later(&mut self, purpose: P, request: DhtOp, at: u64, out: &mut Vec<Effect>) -> OpId {
        let op = self.next;
        self.next += 1;
        push_exact(&mut self.pending, (op, PendingOp { purpose, request: StoredOp::keep(&request), attempts: 0 }));
        self.set_timer(Timer::Retry(op), at, out);
        op
    }

    /// Re-issues an op after its retry timer fired.
    pub(crate) fn retry(&mut self, op: OpId, out: &mut Vec<Effect>) {
        if let Some(p) = self.pending_mut(op) {
            p.attempts += 1;
            out.push(Effect::Dht { op, request: p.request.request() });
        }
    }

    /// After a restart: re-issue every pending op and re-arm every timer.
    pub(crate) fn resume(&self, out: &mut Vec<Effect>) {
        for (op, p) in &self.pending {
            if !self.has_timer(Timer::Retry(*op)) {
                out.push(Effect::Dht { op: *op, request: p.request.request() });
            }
        }
        for (t, at) in &self.timers {
            out.push(Effect::SetTimer { timer: *t, at: *at });
        }
    }

    /// Drops all pending ops and timers (flow ending).
    pub(crate) fn clear(&mut self, out: &mut Vec<Effect>) {
        self.pending = Vec::new();
        for (t, _) in core::mem::take(&mut self.timers) {
            out.push(Effect::CancelTimer(t));
        }
    }
}

pub(crate) enum Completion<P> {
    Done(P, DhtOutput),
    Retrying,
    Failed(P, DhtFailure, Option<ProtocolError>),
    Unknown,
}

pub(crate) fn dht_error(f: DhtFailure, exhausted: Option<ProtocolError>) -> Error {
    match exhausted {
        Some(p) => Error::Protocol(p),
        None => Error::Dht { kind: f.kind, message: f.message },
    }
}

/// A flow on either side, as persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Flow {
    /// Inviter side.
    Inviter(Box<Inviter>),
    /// Invitee side.
    Invitee(Box<Invitee>),
    /// A request inbox (requests to a known address).
    Inbox(Box<RequestInbox>),
}

/// A flow's own part of its [`FlowView`].
pub(crate) struct FlowFacts {
    pub(crate) kind: FlowKind,
    pub(crate) state: &'static str,
    pub(crate) expires_at: Option<u64>,
    pub(crate) locked: bool,
    pub(crate) peer: Option<PublicKey>,
    pub(crate) uses: Option<crate::flow::UsesView>,
}

impl Flow {
    /// What an app lists about this flow.
    pub fn view(&self, id: FlowId) -> FlowView {
        let f = match self {
            Self::Inviter(m) => m.facts(),
            Self::Invitee(m) => m.facts(),
            Self::Inbox(m) => m.facts(),
        };
        FlowView {
            id,
            kind: f.kind,
            state: f.state,
            expires_at: f.expires_at,
            locked: f.locked,
            peer: f.peer,
            uses: f.uses,
        }
    }

    /// Feeds an input.
    pub fn handle(&mut self, input: Input, now: u64, rng: &mut dyn Rng) -> Vec<Effect> {
        match self {
            Self::Inviter(m) => m.handle(input, now, rng),
            Self::Invitee(m) => m.handle(input, now, rng),
            Self::Inbox(m) => m.handle(input, now, rng),
        }
    }
    /// Applies a user command, or says why it does not apply in the current
    /// state (then nothing changed and there are no effects).
    pub fn command(&mut self, command: Command, now: u64, rng: &mut dyn Rng) -> Result<Vec<Effect>, Refusal> {
        match self {
            Self::Inviter(m) => m.command(command, now, rng),
            Self::Invitee(m) => m.command(command, now, rng),
            Self::Inbox(m) => m.command(command, now, rng),
        }
    }
    /// Re-issues pending work after a restart.
    pub fn resume(&mut self, now: u64, rng: &mut dyn Rng) -> Vec<Effect> {
        match self {
            Self::Inviter(m) => m.resume(now, rng),
            Self::Invitee(m) => m.resume(now, rng),
            Self::Inbox(m) => m.resume(now, rng),
        }
    }
    /// Whether the flow waits for a job before its first persist (an
    /// inviter's password lock): it exists only in memory until then.
    pub fn awaits_first_persist(&self) -> bool {
        match self {
            Self::Inviter(m) => m.is_locking(),
            _ => false,
        }
    }
    /// Whether the flow has ended.
    pub fn is_finished(&self) -> bool {
        match self {
            Self::Inviter(m) => m.is_finished(),
            Self::Invitee(m) => m.is_finished(),
            Self::Inbox(m) => m.is_finished(),
        }
    }
    /// Records this flow watches (opaque keys), to route notifications.
    pub fn watched_records(&self) -> Vec<[u8; 32]> {
        match self {
            Self::Inviter(m) => m.watched_records(),
            Self::Invitee(m) => m.watched_records(),
            Self::Inbox(m) => m.watched_records(),
        }
    }
    /// The identity an outgoing request of this flow goes to, if any.
    pub fn request_target(&self) -> Option<PublicKey> {
        match self {
            Self::Inviter(m) => m.request_target(),
            _ => None,
        }
    }
    /// The identity this flow shares with the driver's other flows, if it
    /// holds one that way (inviters): persisted once, as a snapshot.
    pub(crate) fn shared_identity_mut(&mut self) -> Option<&mut crate::identity::SharedIdentity> {
        match self {
            Self::Inviter(m) => Some(m.shared_identity_mut()),
            _ => None,
        }
    }
}

/// Encodes a flow record ([`crate::store::FLOW_RECORD_FORMAT`]).
pub(crate) fn encode_flow(flow: &Flow) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    crate::record::encode_versioned(crate::record::FLOW_RECORD_FORMAT, flow)
}

/// Decodes a flow record. Its identity snapshots must be available (see
/// [`crate::identity::Snapshots::decode_with`]); a missing one is an error.
pub(crate) fn decode_flow(b: &[u8], what: &str) -> Result<Flow, crate::Error> {
    crate::record::decode_versioned(crate::record::FLOW_RECORD_FORMAT, b, what)
}

/// How long after expiry the invitee keeps waiting for a final status.
pub(crate) const FINAL_GRACE_MS: u64 = 10 * 60 * 1000;

/// Adapts `&mut dyn Rng` to the `CryptoRngCore` bound of key generation.
pub(crate) struct RngAdapter<'a>(pub(crate) &'a mut dyn Rng);

impl RngCore for RngAdapter<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl rand_core::CryptoRng for RngAdapter<'_> {}

pub(crate) fn secs(now_ms: u64) -> u64 {
    now_ms / 1000
}
