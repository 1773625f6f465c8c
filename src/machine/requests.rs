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
//! [`RequestId`]), the block list, and room in the list (a request that finds
//! it full stays unremembered in its slot, is read again once there is room,
//! and the user gets [`Event::RequestInboxFull`]). Only then is the user told
//! ([`Event::RequestReceived`]).
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

use super::inviter::RngAdapter;
use super::{
    Command, Completion, DhtOp, DhtOutput, Effect, Event, Flow, FlowId, Input, Invitee, Ops, Outcome, ReceiveParams,
    Refusal, Rng, Timer, dht_error, secs,
};
use crate::crypto::pow::{DEFAULT_POW_BITS, MAX_POW_BITS};
use crate::crypto::{PublicKey, SigningKey, message_hash};
use crate::dht::{RecordKey, Schema, SchemaMember, Subkey, ValueData};
use crate::encoding::{Address, Ticket};
use crate::error::{Error, ProtocolError};
use crate::identity::Identity;
use crate::limits;
use crate::message::address::{open_slot, slot_id};
use crate::message::{Profile, RequestInboxInfo, SignedIdentity};

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

/// How to open a request inbox.
#[derive(Clone, Debug)]
pub struct RequestInboxParams {
    /// The identity (published; this device must hold the identity key).
    pub identity: Identity,
    /// Request slots (1..=32). More slots make it harder for one writer to
    /// overwrite everyone else's request, at one watch subkey each.
    pub slots: u32,
    /// Proof-of-work difficulty asked of requesters (0..=28 bits).
    pub pow_bits: u32,
}

impl RequestInboxParams {
    /// Defaults: 8 slots, 16-bit stamps.
    pub fn new(identity: Identity) -> Self {
        Self { identity, slots: 8, pow_bits: DEFAULT_POW_BITS }
    }
}

/// Identifies a received request (hash of its whole signed content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub [u8; 32]);

impl core::fmt::Display for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0[..6]))
    }
}

/// Where a kept request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestStatus {
    /// Waiting for the user.
    Pending,
    /// Ignored by the user (kept, revisitable).
    Ignored,
    /// Parked: our own request to the same identity will make the contact.
    Merged,
}

/// A verified request, as shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestView {
    /// Its id (for accept / ignore / block).
    pub id: RequestId,
    /// The requester identity (its device and key binding were verified).
    pub requester: PublicKey,
    /// The requester's profile.
    pub profile: Profile,
    /// The greeting (signed).
    pub message: String,
    /// When the request (its invitation) expires (unix seconds).
    pub expires_at: u64,
    /// Where it stands.
    pub status: RequestStatus,
}

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
    Preparing { record: RecordKey },
    Updating { change: Change, written: Option<Box<SignedIdentity>>, tries: u32 },
    Listening { record: RecordKey },
    Done(bool),
}

/// The request inbox machine (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestInbox {
    identity: Identity,
    owner: SigningKey,
    writer: SigningKey,
    slots: u32,
    pow_bits: u32,
    state: State,
    ops: Ops<Purpose>,
    seen: BTreeMap<[u8; 32], u64>,
    kept: BTreeMap<RequestId, Kept>,
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
            blocked: BTreeSet::new(),
            outgoing: BTreeMap::new(),
            overflow_told: false,
        };
        let mut out = vec![Effect::Persist];
        let schema = inbox_schema(&m.writer.public(), m.slots);
        m.ops.start(Purpose::Create, DhtOp::Create { schema, owner: m.owner.clone() }, &mut out);
        Ok((m, out))
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
        if let State::Done(closed) = self.state {
            let o =
                if closed { Outcome::Cancelled } else { Outcome::Failed(Error::Store("request inbox failed".into())) };
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
                    ([_], Some(v)) => self.on_slot_value(Some(v), now, rng, &mut out),
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
            (Purpose::ReadSlot(_), DhtOutput::Value(v)) => self.on_slot_value(v, now, rng, out),
            (Purpose::IdentityRefresh, DhtOutput::Value(v)) => self.on_identity_refresh(v, now, out),
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
                self.state = State::Done(true);
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
    fn on_slot_value(&mut self, v: Option<ValueData>, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
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
        self.remember(value_id, c.expires_at);
        self.remember(id, c.expires_at);
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
        let view = RequestView {
            id: RequestId(id),
            requester,
            profile: c.profile.clone(),
            message: c.message.clone(),
            expires_at: c.expires_at,
            status,
        };
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
        self.kept.insert(RequestId(id), Kept { view: view.clone(), ticket: c.ticket.clone() });
        if self.outgoing.contains_key(&requester) {
            self.merge(RequestId(id), now, rng, out);
            out.insert(0, Effect::Persist);
            return;
        }
        out.push(Effect::Persist);
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
                out.push(Effect::Persist);
            }
            Command::Unblock(peer) if self.blocked.remove(&peer) => out.push(Effect::Persist),
            Command::Cancel => {
                let record = match &self.state {
                    State::Listening { record } => record.clone(),
                    _ => return Ok(()),
                };
                self.ops.clear(out);
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
        let (k, s) = (self.kept.len(), self.seen.len());
        self.kept.retain(|_, k| k.view.expires_at > t);
        self.seen.retain(|_, until| *until > t);
        if k != self.kept.len() || s != self.seen.len() {
            out.push(Effect::Persist);
        }
    }

    fn fail(&mut self, e: Error, out: &mut Vec<Effect>) {
        self.ops.clear(out);
        self.state = State::Done(false);
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::Finished(Outcome::Failed(e.clone()))));
        out.push(Effect::Finished(Outcome::Failed(e)));
    }
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
