//! The request inbox: requests to a known address, with accept / ignore /
//! block (after the relay friend-request design, made strict).
//!
//! ```text
//! Creating ──(record created)──▶ Preparing ──(header written)──▶ Publishing
//! Publishing ──(identity record lists the inbox)──▶ Listening
//! Listening ──Cancel──▶ Closing ──(identity record no longer lists it)──▶ Done
//! ```
//! Preparing writes a header to the owner subkey: on Veilid a record nobody
//! has written is not found by other nodes. Publishing and closing update
//! the identity record by read–merge–write, so a device link or another
//! change made meanwhile is never rolled back.
//!
//! While listening, every slot is watched and re-read on a slow poll. A slot
//! value is checked in this order, each step before the next costs anything:
//! dedup by the hash of the whole value, the proof-of-work stamp, the seal
//! (to our identity DH key), the signature and the requester's key-to-identity
//! binding, the expiry, dedup by the hash of the whole signed request (its
//! [`RequestId`]), the block list, then a read of the requester's identity
//! record at the location its signed snapshot names (FRESH-8: only a record
//! of that identity, at least as new as the snapshot, that still lists the
//! signing device as current and has not moved on, lets the request through;
//! a revoked device's request is dropped, and one that cannot be confirmed
//! within [`super::FRESHNESS_READS`] reads is not shown and read again
//! later), and room in the list (a request that finds it full stays
//! unremembered in its slot, is read again once there is room, and the user
//! gets [`Event::RequestInboxFull`]). Only then is the user told
//! ([`Event::RequestReceived`]); a request that is not shown never replaces
//! one that is.
//!
//! - **Accept** starts an invitee flow ([`Effect::Spawn`]) with the
//!   requester's ticket, which must lead to an invitation signed by the
//!   requester's identity; the contact is made by the usual finalize path.
//! - **Ignore** keeps the request (revisitable; accept still works until it
//!   expires). Nothing is sent: the requester cannot tell ignore from
//!   not-yet-seen.
//! - **Block** drops the request and every later one from that identity,
//!   silently.
//! - **Simultaneous requests** (we have an open outgoing request to the
//!   requester): the invitation of the smaller identity key wins on both
//!   sides. The larger side accepts the peer's request and cancels its own;
//!   the smaller side parks the peer's request and brings it back only if its
//!   own request ends without a contact.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    Command, Completion, DhtOp, DhtOutput, Effect, Flow, Input, Invitee, Ops, Refusal, Rng, RngAdapter, Timer,
    dht_error, secs,
};
use crate::crypto::pow::MAX_POW_BITS;
use crate::crypto::{PublicKey, SigningKey, message_hash};
use crate::dht::{RecordKey, Schema, SchemaMember, Subkey, ValueData};
use crate::encoding::{Address, Ticket};
use crate::error::{Error, ProtocolError};
use crate::flow::{Event, FlowId, Outcome, ReceiveParams, RequestId, RequestInboxParams, RequestStatus, RequestView};
use crate::identity::Identity;
use crate::limits;
use crate::message::address::{open_slot, slot_id};
use crate::message::{RequestInboxInfo, SignedIdentity};

/// How often every slot is re-read besides the watch (watches can be lost).
pub(crate) const POLL_INTERVAL_MS: u64 = 60_000;
/// What the owner subkey holds (the record must hold a value to be found).
const HEADER: &[u8] = b"contact-invite request inbox v1";
/// Request ids remembered to drop duplicates and replays.
const MAX_SEEN: usize = 4096;
/// How long a junk or refused slot value's id is remembered (seconds).
const JUNK_MEMORY_SECS: u64 = 24 * 3600;
/// How long a slot value whose seal did not open is remembered (seconds): it
/// may be sealed to a rotated DH key this inbox learns at its next identity
/// refresh (REV-5), so it is read again from the next poll on.
const SEAL_FAILURE_MEMORY_SECS: u64 = 1;
/// How long a request whose requester could not be confirmed current is left
/// unread (seconds): it is checked again after that (FRESH-8).
const UNCONFIRMED_MEMORY_SECS: u64 = 600;
/// Requests whose requester's identity record is being read at once; more
/// wait unremembered in their slots for a later read.
const MAX_CHECKING: usize = 16;

#[derive(Clone, Serialize, Deserialize)]
struct Kept {
    view: RequestView,
    ticket: Ticket,
}

impl core::fmt::Debug for Kept {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kept").field("view", &self.view).finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Purpose {
    Create,
    Header,
    IdentityGet,
    IdentitySet,
    Watch,
    ReadSlot(Subkey),
    Forget,
    /// While listening: re-reads the identity record to pick up an
    /// account-secret rotation (REV-5).
    IdentityRefresh,
    /// FRESH-8: opens, then reads, a requester's identity record.
    RequesterOpen(RequestId),
    /// See [`Purpose::RequesterOpen`].
    RequesterGet(RequestId),
}

/// A verified request waiting for the read of its requester's identity
/// record (FRESH-8) before it may be shown.
#[derive(Clone, Serialize, Deserialize)]
struct Checking {
    value_id: [u8; 32],
    kept: Kept,
    /// The requester's identity record as the request carried it.
    snapshot: SignedIdentity,
    location: RecordKey,
    device: PublicKey,
    reads: u32,
}

impl core::fmt::Debug for Checking {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Checking").field("kept", &self.kept).field("reads", &self.reads).finish_non_exhaustive()
    }
}

/// A change to the identity record, applied by read–merge–write.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Change {
    Publish(RecordKey),
    Unpublish(RecordKey),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum State {
    Creating,
    Preparing {
        record: RecordKey,
    },
    Updating {
        change: Change,
        written: Option<Box<SignedIdentity>>,
        tries: u32,
    },
    Listening {
        record: RecordKey,
    },
    /// Closed (`None`) or failed, with why.
    Done(Option<crate::error::StoredError>),
}

/// The request inbox machine (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestInbox {
    #[serde(with = "crate::identity::persist")]
    identity: Identity,
    owner: SigningKey,
    writer: SigningKey,
    slots: u32,
    pow_bits: u32,
    state: State,
    ops: Ops<Purpose>,
    seen: BTreeMap<[u8; 32], u64>,
    kept: BTreeMap<RequestId, Kept>,
    /// FRESH-8: verified requests whose requester is being confirmed.
    #[serde(default)]
    checking: BTreeMap<RequestId, Checking>,
    blocked: BTreeSet<PublicKey>,
    outgoing: BTreeMap<PublicKey, FlowId>,
    /// The user was told the list is full and it has not had room since
    /// (not persisted: after a restart the user is told again).
    #[serde(skip)]
    overflow_told: bool,
}

fn inbox_schema(writer: &PublicKey, slots: u32) -> Schema {
    Schema { owner_subkeys: 1, members: vec![SchemaMember { key: *writer, subkeys: slots as u16 }] }
}

/// The flow id of the invitee flow that accepts request `id` (stable, so an
/// accept replayed after a crash finds the flow it already started).
fn accept_flow_id(id: &RequestId) -> FlowId {
    let h = message_hash(&[b"accept-request".as_slice(), &id.0].concat());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    FlowId(b)
}

impl RequestInbox {
    /// Opens a request inbox: creates it, publishes it in the identity record
    /// and listens. Only the device holding the identity key can do this.
    pub fn new(params: RequestInboxParams, _now: u64, rng: &mut dyn Rng) -> Result<(Self, Vec<Effect>), Error> {
        if params.identity.identity_signing_key().is_none() || params.identity.record_key().is_none() {
            return Err(Error::ApiMisuse("a request inbox needs a published identity and its identity key"));
        }
        if params.slots == 0 || params.slots as usize > limits::MAX_REQUEST_SLOTS {
            return Err(Error::ApiMisuse("request inbox slots must be between 1 and 32"));
        }
        if params.pow_bits > MAX_POW_BITS {
            return Err(Error::ApiMisuse("request inbox proof of work above 28 bits"));
        }
        let mut m = Self {
            identity: params.identity,
            owner: SigningKey::generate(&mut RngAdapter(rng)),
            writer: SigningKey::generate(&mut RngAdapter(rng)),
            slots: params.slots,
            pow_bits: params.pow_bits,
            state: State::Creating,
            ops: Ops::default(),
            seen: BTreeMap::new(),
            kept: BTreeMap::new(),
            checking: BTreeMap::new(),
            blocked: BTreeSet::new(),
            outgoing: BTreeMap::new(),
            overflow_told: false,
        };
        let mut out = vec![Effect::Persist];
        let schema = inbox_schema(&m.writer.public(), m.slots);
        m.ops.start(Purpose::Create, DhtOp::Create { schema, owner: m.owner.clone(), secret: None }, &mut out);
        Ok((m, out))
    }

    /// What an app lists about this flow.
    pub(crate) fn facts(&self) -> super::FlowFacts {
        super::FlowFacts {
            kind: super::FlowKind::RequestInbox,
            state: self.state_name(),
            expires_at: None,
            locked: false,
            peer: None,
            uses: None,
        }
    }

    /// The identities this inbox drops requests from (see
    /// [`Command::BlockRequester`], [`Command::Unblock`]).
    pub fn blocked(&self) -> Vec<PublicKey> {
        self.blocked.iter().copied().collect()
    }

    /// Whether the inbox is closed.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The address to share, once the inbox is published.
    pub fn address(&self) -> Option<Address> {
        let State::Listening { .. } = self.state else { return None };
        Some(Address { identity: self.identity.public_key(), record: self.identity.record_key()?.clone() })
    }

    /// Requests kept (pending, ignored, parked by a merge), oldest expiry first.
    pub fn requests(&self) -> Vec<RequestView> {
        let mut v: Vec<RequestView> = self.kept.values().map(|k| k.view.clone()).collect();
        v.sort_by_key(|r| r.expires_at);
        v
    }

    /// Whether `identity` is blocked.
    pub fn is_blocked(&self, identity: &PublicKey) -> bool {
        self.blocked.contains(identity)
    }

    pub(crate) fn watched_records(&self) -> Vec<[u8; 32]> {
        match &self.state {
            State::Listening { record } => vec![*record.opaque()],
            _ => Vec::new(),
        }
    }

    fn inbox(&self) -> Option<&RecordKey> {
        match &self.state {
            State::Listening { record } => Some(record),
            _ => None,
        }
    }

    /// Re-issues pending work after a restart.
    pub fn resume(&mut self, now: u64, rng: &mut dyn Rng) -> Vec<Effect> {
        let mut out = Vec::new();
        if let State::Done(failure) = &self.state {
            let o = match failure {
                None => Outcome::Cancelled,
                Some(f) => Outcome::Failed(f.restore()),
            };
            out.push(Effect::Emit(Event::Finished(o.clone())));
            out.push(Effect::Finished(o));
            return out;
        }
        self.ops.resume(&mut out);
        if let State::Updating { written: None, .. } = &self.state
            && !self.ops.has_pending(|p| matches!(p, Purpose::IdentityGet | Purpose::IdentitySet))
        {
            self.start_identity_read(&mut out);
        }
        if let Some(address) = self.address() {
            out.push(Effect::Emit(Event::RequestInboxOpen { address }));
            self.listen(now, &mut out);
            for k in self.kept.values().filter(|k| k.view.status == RequestStatus::Pending) {
                out.push(Effect::Emit(Event::RequestReceived(k.view.clone())));
            }
        }
        let _ = rng;
        out
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: u64, rng: &mut dyn Rng) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        match input {
            Input::Command(c) => {
                let _ = self.on_command(c, now, rng, &mut out);
            }
            Input::Computed(_) => {}
            Input::Outgoing { to, flow, open, contact } => {
                if contact {
                    // Our request made the contact: their parked request is moot.
                    self.kept.retain(|_, k| !(k.view.requester == to && k.view.status == RequestStatus::Merged));
                }
                self.on_outgoing(to, flow, open, now, rng, &mut out);
            }
            // Requests arrive by watch and poll; nudges are for invitation flows.
            Input::Nudge(_) | Input::ReplyAddress(_) => {}
            Input::OutgoingSync(list) => {
                self.outgoing = list.into_iter().collect();
                self.release_parked(&mut out);
                out.insert(0, Effect::Persist);
            }
            Input::TimerFired(t) => {
                if !self.ops.fired(t) {
                    return out;
                }
                match t {
                    Timer::Retry(op) => self.ops.retry(op, &mut out),
                    Timer::Poll => {
                        self.prune(now, &mut out);
                        self.refresh_identity(&mut out);
                        self.read_all(&mut out);
                        self.ops.set_timer(Timer::Poll, now + POLL_INTERVAL_MS, &mut out);
                    }
                    Timer::Expiry => {}
                }
            }
            Input::ValueChanged { record, subkeys, value } => {
                if self.inbox().map(RecordKey::opaque) != Some(&record) {
                    return out;
                }
                match (subkeys.as_slice(), value) {
                    ([_], Some(v)) => self.on_slot_value(Some(v), now, &mut out),
                    _ => {
                        let slots = self.slots;
                        for s in subkeys.into_iter().filter(|s| (1..=slots).contains(s)) {
                            self.read_slot(s, &mut out);
                        }
                    }
                }
            }
            Input::DhtDone { op, result } => match self.ops.complete(op, result, now, &mut out) {
                Completion::Done(p, o) => self.on_done(p, o, now, rng, &mut out),
                Completion::Retrying | Completion::Unknown => {}
                Completion::Failed(p, f, exhausted) => {
                    let err = dht_error(f, exhausted);
                    match p {
                        Purpose::Create | Purpose::Header | Purpose::IdentityGet | Purpose::IdentitySet => {
                            self.fail(err, &mut out)
                        }
                        // FRESH-8: a failed read confirms nothing (fails closed).
                        Purpose::RequesterOpen(id) | Purpose::RequesterGet(id) => {
                            self.on_requester_read(id, None, now, rng, &mut out)
                        }
                        Purpose::Watch | Purpose::ReadSlot(_) | Purpose::Forget | Purpose::IdentityRefresh => {}
                    }
                }
            },
        }
        out
    }

    fn on_done(&mut self, p: Purpose, o: DhtOutput, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        match (p, o) {
            (Purpose::Create, DhtOutput::Created(record)) => {
                let data = HEADER.to_vec();
                let writer = self.owner.clone();
                self.ops.start(Purpose::Header, DhtOp::Set { key: record.clone(), subkey: 0, data, writer }, out);
                self.state = State::Preparing { record };
                out.insert(0, Effect::Persist);
            }
            (Purpose::Header, DhtOutput::Set(_)) => {
                let State::Preparing { record } = &self.state else { return };
                self.state = State::Updating { change: Change::Publish(record.clone()), written: None, tries: 0 };
                self.start_identity_read(out);
                out.insert(0, Effect::Persist);
            }
            (Purpose::IdentityGet, DhtOutput::Value(v)) => self.on_identity(v, now, out),
            (Purpose::IdentitySet, DhtOutput::Set(newer)) => self.on_identity_written(newer, now, out),
            (Purpose::ReadSlot(_), DhtOutput::Value(v)) => self.on_slot_value(v, now, out),
            (Purpose::IdentityRefresh, DhtOutput::Value(v)) => self.on_identity_refresh(v, now, out),
            (Purpose::RequesterOpen(id), _) => {
                if let Some(c) = self.checking.get(&id) {
                    let key = c.location.clone();
                    self.ops.start(Purpose::RequesterGet(id), DhtOp::Get { key, subkey: 0 }, out);
                }
            }
            (Purpose::RequesterGet(id), DhtOutput::Value(v)) => self.on_requester_read(id, v.as_ref(), now, rng, out),
            _ => {}
        }
    }

    fn start_identity_read(&mut self, out: &mut Vec<Effect>) {
        let Some(key) = self.identity.record_key().cloned() else { return };
        self.ops.start(Purpose::IdentityGet, DhtOp::Get { key, subkey: 0 }, out);
    }

    /// Read–merge–write of the identity record: adopt a newer one if the DHT
    /// has it, apply our change, sign and write.
    fn on_identity(&mut self, v: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let State::Updating { change, .. } = &self.state else { return };
        let change = change.clone();
        if let Some(v) = v
            && let Some(at) = self.identity.record_key()
            && let Ok(fetched) = SignedIdentity::verify_at(&v.data, &self.identity.public_key(), at)
            && fetched.record().seq > self.identity.signed().record().seq
        {
            // A rotation is picked up here (REV-4); one this device cannot
            // follow stops the update rather than writing over it.
            if let Err(e) = self.identity.adopt_record(fetched) {
                return self.fail(e, out);
            }
        }
        let info = match &change {
            Change::Publish(record) => Some(RequestInboxInfo {
                record: record.clone(),
                writer: self.writer.clone(),
                slots: self.slots,
                pow_bits: self.pow_bits,
            }),
            Change::Unpublish(_) => None,
        };
        if let Err(e) = self.identity.update_record(|r| r.request_inbox = info, secs(now)) {
            return self.fail(e, out);
        }
        let (Some(key), Some(writer)) =
            (self.identity.record_key().cloned(), self.identity.identity_signing_key().cloned())
        else {
            return self.fail(Error::ApiMisuse("identity key missing"), out);
        };
        let signed = self.identity.signed().clone();
        let data = signed.to_bytes().to_vec();
        if let State::Updating { written, .. } = &mut self.state {
            *written = Some(Box::new(signed));
        }
        self.ops.start(Purpose::IdentitySet, DhtOp::Set { key, subkey: 0, data, writer }, out);
        out.insert(0, Effect::Persist);
    }

    fn on_identity_written(&mut self, newer: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let State::Updating { change, written: Some(w), tries } = &mut self.state else { return };
        if let Some(v) = newer
            && v.data != w.to_bytes()
        {
            // Someone else wrote a newer record first: merge into it.
            *tries += 1;
            let attempts = *tries;
            if attempts >= super::MAX_ATTEMPTS {
                let e = ProtocolError::RetriesExhausted { what: "update identity record".into(), attempts };
                return self.fail(e.into(), out);
            }
            if let State::Updating { written, .. } = &mut self.state {
                *written = None;
            }
            self.start_identity_read(out);
            out.insert(0, Effect::Persist);
            return;
        }
        let change = change.clone();
        out.push(Effect::SaveIdentity(Box::new(self.identity.clone())));
        match change {
            Change::Publish(record) => {
                self.state = State::Listening { record };
                out.push(Effect::Persist);
                if let Some(address) = self.address() {
                    out.push(Effect::Emit(Event::RequestInboxOpen { address }));
                }
                self.listen(now, out);
            }
            Change::Unpublish(record) => {
                self.ops.clear(out);
                self.state = State::Done(None);
                out.push(Effect::Persist);
                out.push(Effect::Dht { op: u64::MAX, request: DhtOp::Forget { key: record } });
                out.push(Effect::Emit(Event::Finished(Outcome::Cancelled)));
                out.push(Effect::Finished(Outcome::Cancelled));
            }
        }
    }

    fn listen(&mut self, now: u64, out: &mut Vec<Effect>) {
        let Some(record) = self.inbox().cloned() else { return };
        let subkeys: Vec<Subkey> = (1..=self.slots).collect();
        self.ops.start(Purpose::Watch, DhtOp::Watch { key: record, subkeys }, out);
        self.read_all(out);
        self.ops.set_timer(Timer::Poll, now + POLL_INTERVAL_MS, out);
    }

    /// REV-5: while listening, the identity record is re-read on every poll:
    /// after another copy of this identity revoked a device (and rotated the
    /// account secret), requests come sealed to the new DH key, which this
    /// inbox learns here (opening its sealed copy).
    fn refresh_identity(&mut self, out: &mut Vec<Effect>) {
        let (State::Listening { .. }, Some(key)) = (&self.state, self.identity.record_key().cloned()) else { return };
        if !self.ops.has_pending(|p| *p == Purpose::IdentityRefresh) {
            self.ops.start(Purpose::IdentityRefresh, DhtOp::Get { key, subkey: 0 }, out);
        }
    }

    fn on_identity_refresh(&mut self, v: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let State::Listening { .. } = &self.state else { return };
        let Some(v) = v else { return };
        let Ok(fetched) = SignedIdentity::verify(&v.data, Some(&self.identity.public_key())) else { return };
        if fetched.record().seq <= self.identity.signed().record().seq {
            return;
        }
        let rotated = fetched.record().dh_key != self.identity.signed().record().dh_key;
        match self.identity.adopt_record(fetched) {
            Ok(()) => {
                out.push(Effect::Persist);
                if rotated {
                    // Slots that did not open under the old key (remembered
                    // for a moment only) are read again now.
                    let t = secs(now) + SEAL_FAILURE_MEMORY_SECS;
                    self.seen.retain(|_, until| *until > t);
                    self.read_all(out);
                }
            }
            Err(e) => tracing::warn!(error = %e, "request inbox cannot follow its identity record"),
        }
    }

    fn read_slot(&mut self, s: Subkey, out: &mut Vec<Effect>) {
        let Some(key) = self.inbox().cloned() else { return };
        if !self.ops.has_pending(|p| *p == Purpose::ReadSlot(s)) {
            self.ops.start(Purpose::ReadSlot(s), DhtOp::Get { key, subkey: s }, out);
        }
    }

    fn read_all(&mut self, out: &mut Vec<Effect>) {
        for s in 1..=self.slots {
            self.read_slot(s, out);
        }
    }

    fn remember(&mut self, id: [u8; 32], until: u64) {
        if self.seen.len() >= MAX_SEEN
            && let Some(oldest) = self.seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k)
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(id, until);
    }

    /// One slot value, checked in the order of the module docs.
    fn on_slot_value(&mut self, v: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let (Some(v), Some(inbox)) = (v, self.inbox().map(|r| *r.opaque())) else { return };
        // EDGE-RQ-2: dedup by the whole value, then by the whole verified
        // request; never by a part an attacker can copy into junk.
        let Ok(value_id) = slot_id(&v.data) else { return };
        if self.seen.contains_key(&value_id) {
            return;
        }
        let me = self.identity.public_key();
        let dh = self.identity.dh_secret();
        let verified = open_slot(&v.data, &dh, &me, &inbox, self.pow_bits)
            .and_then(|request| request.verify(&me, &inbox, secs(now)));
        let req = match verified {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "request slot refused");
                // A seal that does not open may be sealed to a rotated DH key
                // this inbox has not read yet (REV-5): retried from the next
                // poll on, after the identity refresh, instead of a day later.
                let memory = if matches!(e, Error::Verify(crate::error::VerifyError::DecryptionFailed)) {
                    SEAL_FAILURE_MEMORY_SECS
                } else {
                    JUNK_MEMORY_SECS
                };
                self.remember(value_id, secs(now) + memory);
                out.push(Effect::Persist);
                return;
            }
        };
        let c = req.content();
        let id = req.id();
        if self.seen.contains_key(&id) || self.kept.contains_key(&RequestId(id)) {
            // The same request again, in another encoding.
            self.remember(value_id, c.expires_at);
            out.push(Effect::Persist);
            return;
        }
        let requester = c.identity_key;
        if self.blocked.contains(&requester) {
            // INV-RQ-2: blocked identities are dropped silently.
            self.remember(value_id, c.expires_at);
            self.remember(id, c.expires_at);
            out.push(Effect::Persist);
            return;
        }
        // FRESH-8: nothing is shown (or replaces what is shown) before the
        // requester's identity record confirms the signing device.
        if self.checking.contains_key(&RequestId(id)) {
            return;
        }
        if self.checking.len() >= MAX_CHECKING {
            // Left unremembered in its slot: read again at the next poll.
            return;
        }
        let location = c.identity_record.clone();
        self.checking.insert(
            RequestId(id),
            Checking {
                value_id,
                kept: Kept {
                    view: RequestView {
                        id: RequestId(id),
                        requester,
                        profile: c.profile.clone(),
                        message: c.message.clone(),
                        expires_at: c.expires_at,
                        status: RequestStatus::Pending,
                    },
                    ticket: c.ticket.clone(),
                },
                snapshot: req.identity().clone(),
                location: location.clone(),
                device: c.device_key,
                reads: 0,
            },
        );
        self.ops.start(Purpose::RequesterOpen(RequestId(id)), DhtOp::Open { key: location, writer: None }, out);
        out.insert(0, Effect::Persist);
    }

    /// FRESH-8: one read of a requester's identity record (`None`: the read
    /// failed). Only a verified record of the requester, at the location the
    /// snapshot names, at least as new, listing the signing device as
    /// current and not moved on, lets the request be shown. A revoked device
    /// or an identity that moved on drops it; anything else is read again
    /// after a delay, at most [`super::FRESHNESS_READS`] times, and then the
    /// request is left in its slot for a later check.
    fn on_requester_read(
        &mut self,
        id: RequestId,
        v: Option<&ValueData>,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let Some(c) = self.checking.get_mut(&id) else { return };
        let verdict = super::judge_freshness(v, &c.snapshot, &c.location, &c.device);
        out.push(Effect::Persist);
        let memory = match verdict {
            super::FreshRead::Current => {
                let Some(c) = self.checking.remove(&id) else { return };
                self.admit(c, now, rng, out);
                return;
            }
            super::FreshRead::Unconfirmed if c.reads + 1 < super::FRESHNESS_READS => {
                c.reads += 1;
                let read = DhtOp::Open { key: c.location.clone(), writer: None };
                let at = now + super::freshness_retry_ms(c.reads);
                self.ops.start_later(Purpose::RequesterOpen(id), read, at, out);
                return;
            }
            super::FreshRead::Unconfirmed => {
                tracing::debug!("request not shown: its requester could not be confirmed");
                UNCONFIRMED_MEMORY_SECS
            }
            super::FreshRead::Revoked | super::FreshRead::Changed => {
                tracing::debug!("request dropped: signed by a device its identity no longer trusts");
                JUNK_MEMORY_SECS
            }
        };
        if let Some(c) = self.checking.remove(&id) {
            self.remember(c.value_id, secs(now) + memory);
            if memory == JUNK_MEMORY_SECS {
                self.remember(id.0, secs(now) + memory);
            }
        }
    }

    /// A request whose requester was confirmed: room in the list, then kept
    /// and shown (or merged with our own request to them).
    fn admit(&mut self, c: Checking, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Checking { value_id, kept, .. } = c;
        let (id, requester, expires_at) = (kept.view.id, kept.view.requester, kept.view.expires_at);
        if self.blocked.contains(&requester) {
            // Blocked while it was being checked.
            self.remember(value_id, expires_at);
            self.remember(id.0, expires_at);
            return;
        }
        if self.kept.len() >= limits::MAX_KEPT_REQUESTS
            && !self.kept.values().any(|k| k.view.status == RequestStatus::Ignored || k.view.requester == requester)
        {
            // EDGE-RQ-1: no room. Nothing is remembered, so the value is
            // read again (next poll) once the user has made room; the user
            // is told, once per overflow.
            tracing::warn!("request inbox full: request left in its slot");
            if !self.overflow_told {
                self.overflow_told = true;
                out.push(Effect::Emit(Event::RequestInboxFull { kept: self.kept.len() }));
            }
            return;
        }
        self.overflow_told = false;
        self.remember(value_id, expires_at);
        self.remember(id.0, expires_at);
        // One request per requester: a newer one replaces it (an ignored
        // requester stays ignored).
        let previous: Vec<RequestId> =
            self.kept.iter().filter(|(_, k)| k.view.requester == requester).map(|(i, _)| *i).collect();
        let mut status = RequestStatus::Pending;
        for p in previous {
            if let Some(k) = self.kept.remove(&p)
                && k.view.status == RequestStatus::Ignored
            {
                status = RequestStatus::Ignored;
            }
        }
        let mut kept = kept;
        kept.view.status = status;
        let view = kept.view.clone();
        if self.kept.len() >= limits::MAX_KEPT_REQUESTS
            && let Some(i) = self
                .kept
                .iter()
                .filter(|(_, k)| k.view.status == RequestStatus::Ignored)
                .min_by_key(|(_, k)| k.view.expires_at)
                .map(|(i, _)| *i)
        {
            self.kept.remove(&i);
        }
        self.kept.insert(id, kept);
        if self.outgoing.contains_key(&requester) {
            self.merge(id, now, rng, out);
            return;
        }
        if status == RequestStatus::Pending {
            out.push(Effect::Emit(Event::RequestReceived(view)));
        }
    }

    /// Both sides requested each other: the smaller identity key's
    /// invitation makes the contact.
    fn merge(&mut self, id: RequestId, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(k) = self.kept.get_mut(&id) else { return };
        let peer = k.view.requester;
        let Some(ours) = self.outgoing.get(&peer).copied() else { return };
        if self.identity.public_key().as_bytes() < peer.as_bytes() {
            // INV-RQ-3: ours wins; theirs is parked until ours ends.
            k.view.status = RequestStatus::Merged;
        } else {
            // Theirs wins: accept it and withdraw ours.
            self.accept(id, now, rng, out);
            out.push(Effect::Signal { flow: ours, command: Command::Cancel });
        }
        out.push(Effect::Emit(Event::RequestsMerged { peer }));
    }

    /// Our outgoing request to `peer` ended without a contact: its parked
    /// request comes back.
    fn release_parked(&mut self, out: &mut Vec<Effect>) {
        for k in self.kept.values_mut() {
            if k.view.status == RequestStatus::Merged && !self.outgoing.contains_key(&k.view.requester) {
                k.view.status = RequestStatus::Pending;
                out.push(Effect::Emit(Event::RequestReceived(k.view.clone())));
            }
        }
    }

    fn on_outgoing(
        &mut self,
        to: PublicKey,
        flow: FlowId,
        open: bool,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        if open {
            self.outgoing.insert(to, flow);
            let theirs: Vec<RequestId> = self
                .kept
                .iter()
                .filter(|(_, k)| k.view.requester == to && k.view.status != RequestStatus::Merged)
                .map(|(i, _)| *i)
                .collect();
            for id in theirs {
                self.merge(id, now, rng, out);
            }
        } else if self.outgoing.get(&to) == Some(&flow) {
            self.outgoing.remove(&to);
            self.release_parked(out);
        }
        out.insert(0, Effect::Persist);
    }

    /// Applies a user command, or says why it does not apply now (a request
    /// id it does not keep, a command for invitation flows, closing an
    /// inbox that is not open). Unblocking an identity that is not blocked
    /// changes nothing and is not an error.
    pub fn command(&mut self, c: Command, now: u64, rng: &mut dyn Rng) -> Result<Vec<Effect>, Refusal> {
        let mut out = Vec::new();
        self.on_command(c, now, rng, &mut out)?;
        Ok(out)
    }

    /// The state's short name (for [`Refusal::State`]).
    fn state_name(&self) -> &'static str {
        match &self.state {
            State::Creating => "creating",
            State::Preparing { .. } => "preparing",
            State::Updating { .. } => "updating",
            State::Listening { .. } => "listening",
            State::Done(_) => "done",
        }
    }

    fn on_command(&mut self, c: Command, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) -> Result<(), Refusal> {
        match &c {
            Command::AcceptRequest(id) | Command::IgnoreRequest(id) | Command::BlockRequester(id) => {
                if self.is_finished() {
                    return Err(Refusal::State(self.state_name()));
                }
                if !self.kept.contains_key(id) {
                    return Err(Refusal::UnknownRequest);
                }
            }
            Command::Unblock(_) if !self.is_finished() => {}
            Command::Cancel if matches!(self.state, State::Listening { .. }) => {}
            _ => return Err(Refusal::State(self.state_name())),
        }
        // EDGE-RQ-1: the user acting on the list may have made room for a
        // request left waiting in its slot: read the slots now, not at the
        // next poll.
        if self.overflow_told
            && matches!(c, Command::AcceptRequest(_) | Command::IgnoreRequest(_) | Command::BlockRequester(_))
        {
            self.read_all(out);
        }
        match c {
            Command::AcceptRequest(id) => {
                self.accept(id, now, rng, out);
                out.push(Effect::Persist);
            }
            Command::IgnoreRequest(id) => {
                if let Some(k) = self.kept.get_mut(&id) {
                    k.view.status = RequestStatus::Ignored;
                    out.push(Effect::Persist);
                }
            }
            Command::BlockRequester(id) => {
                let Some(peer) = self.kept.get(&id).map(|k| k.view.requester) else { return Ok(()) };
                if self.blocked.len() >= limits::MAX_BLOCKED {
                    tracing::warn!("block list full");
                } else {
                    self.blocked.insert(peer);
                }
                self.kept.retain(|_, k| k.view.requester != peer);
                self.checking.retain(|_, c| c.kept.view.requester != peer);
                out.push(Effect::Persist);
            }
            Command::Unblock(peer) if self.blocked.remove(&peer) => out.push(Effect::Persist),
            Command::Cancel => {
                let record = match &self.state {
                    State::Listening { record } => record.clone(),
                    _ => return Ok(()),
                };
                self.ops.clear(out);
                self.checking.clear();
                self.state = State::Updating { change: Change::Unpublish(record), written: None, tries: 0 };
                self.start_identity_read(out);
                out.insert(0, Effect::Persist);
            }
            _ => {}
        }
        Ok(())
    }

    /// Starts the invitee flow for a kept request (effects: spawn first, so
    /// a crash before this inbox is persisted replays into the same flow).
    fn accept(&mut self, id: RequestId, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(k) = self.kept.get(&id) else { return };
        let ticket = k.ticket.clone();
        let mut params = ReceiveParams::new(self.identity.clone(), ticket);
        params.expect_identity = Some(k.view.requester);
        params.auto_accept = true;
        match Invitee::new(params, now, rng) {
            Ok((m, effects)) => {
                out.push(Effect::Spawn {
                    id: accept_flow_id(&id),
                    flow: Box::new(Flow::Invitee(Box::new(m))),
                    effects,
                });
                self.kept.remove(&id);
            }
            Err(e) => tracing::warn!(error = %e, "could not start accepting a request"),
        }
    }

    /// Drops expired requests and forgets old ids.
    fn prune(&mut self, now: u64, out: &mut Vec<Effect>) {
        let t = secs(now);
        let (k, s) = (self.kept.len() + self.checking.len(), self.seen.len());
        self.kept.retain(|_, k| k.view.expires_at > t);
        self.checking.retain(|_, c| c.kept.view.expires_at > t);
        self.seen.retain(|_, until| *until > t);
        if k != self.kept.len() + self.checking.len() || s != self.seen.len() {
            out.push(Effect::Persist);
        }
    }

    fn fail(&mut self, e: Error, out: &mut Vec<Effect>) {
        self.ops.clear(out);
        self.state = State::Done(Some((&e).into()));
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::Finished(Outcome::Failed(e.clone()))));
        out.push(Effect::Finished(Outcome::Failed(e)));
    }
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
