//! The invitee's machine: receive, decide, respond, await the final status.
//!
//! ```text
//! [NeedPassword] ──▶ Fetching ──(request opened and verified)──▶ Deciding
//! Fetching ──(PIN offer opened)──▶ Pin ──(PAKE attempt succeeds, invitation verified)──▶ Deciding
//! Deciding ──Accept──▶ Responding ──(response confirmed)──▶ AwaitingFinal ──(final status)──▶ Done
//! Deciding ──Reject──▶ Responding ──(response confirmed)──▶ Done
//! ```
//! Device links run the same states on the new device ([`Invitee::link`]):
//! no conversation is created; the response carries the new device's consent
//! and an X25519 key, and the accepted final status carries the account
//! secret and the updated identity record sealed to that key.
//!
//! The profile is shown after one round trip (the inbox read). The inviter's
//! identity record is re-read concurrently with the user's decision, and the
//! response (accept or reject) is written only once that check confirmed the
//! inviter's device is current (FRESH-2..4): a revoked device, or a record
//! that cannot be confirmed within [`super::FRESHNESS_READS`] reads, ends the
//! flow before anything is sent, so the inviter never holds a response it
//! could make a contact from. After a reject the invitee waits for the final
//! status exactly as after an accept (FRESH-6), so the two cost DHT nodes
//! the same operations to serve.
//!
//! ```text
//! Deciding ──(inviter's record not confirmed | device revoked)──▶ Done(failed)
//! Responding ──(waits for the freshness check before writing)
//! Reject: Responding ──(response confirmed)──▶ AwaitingFinal ──(final status)──▶ Done(rejected by us)
//! ```

use serde::{Deserialize, Serialize};

use super::{
    Command, Completion, DhtOp, DhtOutput, Effect, FINAL_GRACE_MS, Input, Job, JobOutput, Ops, Refusal, Rng,
    RngAdapter, Timer, dht_error, secs,
};
use crate::contact::{Contact, Role};
use crate::crypto::password;
use crate::crypto::{
    DhSecretKey, Password, PasswordLimits, PasswordParams, PublicKey, SecretKey, SigningKey, conversation_key,
};
use crate::dht::{DhtErrorKind, Nudge, RecordKey, Schema, ValueData};
use crate::encoding::{Ticket, TicketSecret};
use crate::error::{Error, ProtocolError, StoredError, VerifyError};
use crate::flow::{Event, InvitationView, LinkParams, Outcome, ReceiveParams};
use crate::identity::Identity;
use crate::message::handover::{self, HandoverContext};
use crate::message::inbox::{self, InboxKeys, InboxValue, OWNER_SUBKEY, WRITER_SUBKEY};
use crate::message::{FinalStatus, FinalStatusKind, InvitationKind, Profile, ResponseContent, VerifiedInvitation};

/// How often the invitee re-reads the owner subkey for the final status.
pub(crate) const POLL_INTERVAL_MS: u64 = 5_000;

/// Multi-use (MU-5): reads of our answer record, each started after the
/// invitation's closing status was seen, that must all find no answer for
/// us before we conclude none will come. One read may lag the inviter's
/// write (the answer is written before the invitation closes, but the two
/// records live on different nodes).
const CLOSED_READS: u32 = 3;

/// Delay between those reads (ms).
const CLOSED_RECHECK_MS: u64 = 2_000;

/// Who answers: an identity (contact invitations) or a new device joining the
/// inviter's identity (device links).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Responder {
    Identity(#[serde(with = "crate::identity::persist")] Box<Identity>),
    NewDevice(Box<NewDevice>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct NewDevice {
    device: SigningKey,
    dh: DhSecretKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Purpose {
    OpenInbox,
    ReadRequest,
    FreshnessOpen,
    FreshnessGet,
    CreateConversation,
    WriteResponse,
    Watch,
    ReadFinal,
    Forget,
    /// PIN invitations: the hello of the attempt in flight.
    WriteHello,
    /// PIN invitations: reading subkey 0 for the inviter's reply.
    ReadReply,
    /// Multi-use: creating our answer record.
    CreateAnswer,
    /// Multi-use: writing our claim to a slot of the invitation's inbox.
    WriteClaim,
    /// Multi-use: reading the invitation's subkey 0 (closed?) while waiting.
    ReadHub,
    /// Multi-use: reading our claim's slot while waiting (overwritten?).
    ReadSlot,
    /// Multi-use: while the user decides, finding a free claim slot (and
    /// its sequence number, so the claim's write lands at once).
    PeekSlot,
    /// Multi-use: reading our answer record after the invitation's closing
    /// status was seen (MU-5; [`CLOSED_READS`] of them decide).
    ReadClosed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Freshness {
    Pending,
    Ok,
    Revoked,
    /// The inviter's identity moved on from the invitation's snapshot (FRESH-7).
    Changed,
    /// Not confirmed within the bounded re-reads: fails closed.
    Unavailable,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Core {
    responder: Responder,
    expect_identity: Option<PublicKey>,
    auto_accept: bool,
    profile: Option<Profile>,
    ticket: Ticket,
    record: [u8; 32],
    conversation_owner: SigningKey,
    locked: Option<(crate::crypto::InviteSecret, [u8; 16], PasswordParams)>,
    limits: (u8, u8, u8, u64),
    /// Our reply address, as last told by the driver (goes into the response).
    #[serde(default)]
    reply_to: Option<Vec<u8>>,
}

/// A PIN invitation once its offer is open (PIN-3..PIN-7).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PinFlow {
    /// The inbox secret (from the ticket).
    secret: SecretKey,
    /// The inbox's writer key (from the offer): writes hellos, then the response.
    writer: SigningKey,
    /// The inviter's reply address (nudged with each hello).
    reply_to: Option<Vec<u8>>,
    /// When the invitation expires (unix seconds, from the offer).
    expires_at: u64,
    /// The attempt in flight, if any.
    attempt: Option<Attempt>,
}

/// One PIN attempt. The SPAKE2 state is recomputed from the PIN (never
/// persisted) and `seed`, so a restarted flow given the same PIN goes on
/// with the same attempt (no attempt is lost to a crash).
#[derive(Clone, Serialize, Deserialize)]
struct Attempt {
    seed: [u8; 32],
    nonce: [u8; crate::crypto::pake::NONCE_LEN],
    msg_a: Vec<u8>,
    /// The hello value, written to subkey 1 (kept to nudge with).
    hello: Vec<u8>,
    sent_at: u64,
    /// The hello is confirmed on the DHT.
    written: bool,
    /// [`Event::WaitingForInviter`] was emitted for this attempt.
    told_waiting: bool,
    /// The inviter's reply, when it arrived while the PIN was not in memory
    /// (after a restart): finished once the PIN is entered again.
    reply: Option<Vec<u8>>,
    /// Rewrites of the hello over a newer value (bounded).
    #[serde(default)]
    rewrites: u32,
}

impl core::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Attempt")
            .field("sent_at", &self.sent_at)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.seed.zeroize();
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Received {
    secret: SecretKey,
    /// PIN invitations: the session secret of the attempt that succeeded
    /// (the response is sealed under it: the inviter's proof the PAKE
    /// succeeded, PIN-5).
    #[serde(default)]
    session: Option<SecretKey>,
    invitation: VerifiedInvitation,
    writer: SigningKey,
    freshness: Freshness,
    /// Reads of the inviter's identity record that did not confirm it.
    #[serde(default)]
    fresh_reads: u32,
    /// Multi-use invitations: our answer record and claim (MU-2).
    #[serde(default)]
    answer: Option<Box<Answer>>,
    /// Multi-use invitations, while the user decides: the claim slot found
    /// free (empty or freed by the inviter) and how many were looked at.
    #[serde(default)]
    slot: Option<(u32, u32)>,
}

/// Our side of a multi-use invitation: the answer record we create (the
/// inviter writes our final status there) and the claim that points to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Answer {
    owner: SigningKey,
    writer: SigningKey,
    secret: SecretKey,
    /// Once created (with `secret`).
    record: Option<RecordKey>,
    /// The claim slot (0-based; the subkey is `1 + slot`).
    slot: u32,
    slots: u32,
    claim: Option<Vec<u8>>,
    response_done: bool,
    claim_done: bool,
    /// Slots tried after finding another acceptor's claim (bounded).
    moves: u32,
    /// The inviter's conversation record for us, from its final status.
    remote_conversation: Option<RecordKey>,
    /// The invitation's subkey 0 holds a verified closing status: reads of
    /// our answer record started since then decide (MU-5).
    hub_closed: Option<FinalStatusKind>,
    /// Reads of our answer record since `hub_closed` that found no answer
    /// (not persisted, so the format-9 layout is unchanged: a restart only
    /// reads again).
    #[serde(skip)]
    closed_reads: u32,
    /// Our claim is in no slot (every slot held a claim the inviter had not
    /// taken yet, or ours was written over): each poll tries the next slot
    /// until one is free (MU-9). The nudge still carried it.
    #[serde(default)]
    parked: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum State {
    NeedPassword {
        cached: Option<Vec<u8>>,
    },
    Fetching {
        secret: SecretKey,
    },
    /// PIN invitations: the offer is open; PAKE attempts run here.
    Pin(Box<PinFlow>),
    Deciding(Box<Received>),
    Responding {
        r: Box<Received>,
        accept: bool,
        conversation: Option<RecordKey>,
        value: Option<(Vec<u8>, [u8; 32])>,
    },
    AwaitingFinal {
        r: Box<Received>,
        conversation: Option<RecordKey>,
        response_hash: [u8; 32],
        accepted_final: bool,
        /// We rejected: any verified final status (or the deadline) ends
        /// the flow as rejected by us (FRESH-6).
        #[serde(default)]
        rejected: bool,
    },
    Done(FinishedWith),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum FinishedWith {
    Contact(PublicKey),
    DeviceLinked(PublicKey),
    RejectedByUs,
    Cancelled,
    Failed(ProtocolError),
    Error(StoredError),
}

impl FinishedWith {
    fn outcome(&self) -> Outcome {
        match self {
            Self::Contact(p) => Outcome::Contact(*p),
            Self::DeviceLinked(d) => Outcome::DeviceLinked(*d),
            Self::RejectedByUs => Outcome::RejectedByUs,
            Self::Cancelled => Outcome::Cancelled,
            Self::Failed(p) => Outcome::Failed(Error::Protocol(p.clone())),
            Self::Error(e) => Outcome::Failed(e.restore()),
        }
    }
}

/// The invitee's state machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invitee {
    core: Core,
    state: State,
    ops: Ops<Purpose>,
    not_found: u32,
    /// An unlock attempt is running ([`Job::Stretch`]). Never persisted:
    /// the password is not kept, so after a crash the flow asks for it again.
    #[serde(skip)]
    unlocking: bool,
    /// PIN invitations: the PIN as entered (memory only, never persisted).
    #[serde(skip)]
    pin: Option<Password>,
    /// PIN invitations: rewrites of our response over a hello (bounded).
    #[serde(skip)]
    response_rewrites: u32,
}

struct StartParams {
    ticket: Ticket,
    profile: Option<Profile>,
}

/// How many times an empty inbox is re-read before reporting "not found".
const MAX_NOT_FOUND: u32 = 3;

impl Invitee {
    /// Starts receiving a contact ticket.
    pub fn new(params: ReceiveParams, now: u64, rng: &mut dyn Rng) -> Result<(Self, Vec<Effect>), Error> {
        if params.identity.record_key().is_none() {
            return Err(Error::ApiMisuse("publish the identity record before accepting invitations"));
        }
        if params.ticket.kind != InvitationKind::Contact {
            return Err(Error::ApiMisuse(
                "this ticket links a device: receive it with Invitee::link on the new device",
            ));
        }
        let responder = Responder::Identity(Box::new(params.identity));
        Self::start(responder, params.ticket, params.profile, params.password_limits, now, rng, |c| {
            c.expect_identity = params.expect_identity;
            c.auto_accept = params.auto_accept;
        })
    }

    /// Starts linking this (new) device to the identity that showed the
    /// device-link ticket. On success the flow saves the new device's
    /// [`Identity`] (see [`crate::driver::identities`]) and ends with
    /// [`Outcome::DeviceLinked`].
    pub fn link(params: LinkParams, now: u64, rng: &mut dyn Rng) -> Result<(Self, Vec<Effect>), Error> {
        if params.ticket.kind != InvitationKind::DeviceLink {
            return Err(Error::ApiMisuse("this is a contact ticket, not a device-link ticket"));
        }
        if params.device_label.len() > crate::limits::MAX_DEVICE_LABEL {
            return Err(crate::error::DecodeError::FieldTooLong {
                what: "device label",
                max: crate::limits::MAX_DEVICE_LABEL,
                got: params.device_label.len(),
            }
            .into());
        }
        // The label travels as the response's profile name.
        let profile = Profile::new(params.device_label)?;
        // The device's DH key is derived from its signing key: the same key
        // receives the handover and, listed in the record, later rotations.
        let device = SigningKey::generate(&mut RngAdapter(rng));
        let dh = DhSecretKey::from_device_key(&device);
        let responder = Responder::NewDevice(Box::new(NewDevice { device, dh }));
        Self::start(responder, params.ticket, Some(profile), params.password_limits, now, rng, |_| {})
    }

    fn start(
        responder: Responder,
        ticket: Ticket,
        profile: Option<Profile>,
        l: PasswordLimits,
        _now: u64,
        rng: &mut dyn Rng,
        adjust: impl FnOnce(&mut Core),
    ) -> Result<(Self, Vec<Effect>), Error> {
        let params = StartParams { ticket, profile };
        let (state, locked) = match &params.ticket.secret {
            TicketSecret::Plain(s) | TicketSecret::Pin(s) => (State::Fetching { secret: s.inbox_secret() }, None),
            TicketSecret::Locked { masked, params: p } => {
                let pp = PasswordParams { m_cost_log2: p.m_cost_log2, t_cost: p.t_cost, p_cost: p.p_cost };
                // Hostile parameters are refused before anything else happens.
                l.check(&pp)?;
                (State::NeedPassword { cached: None }, Some((masked.clone(), p.salt, pp)))
            }
        };
        let mut core = Core {
            responder,
            expect_identity: None,
            auto_accept: false,
            profile: params.profile,
            record: params.ticket.record,
            ticket: params.ticket,
            conversation_owner: SigningKey::generate(&mut RngAdapter(rng)),
            locked,
            limits: (l.max_m_cost_log2, l.max_t_cost, l.max_p_cost, l.max_work_kib_passes),
            reply_to: None,
        };
        adjust(&mut core);
        let mut m =
            Self { core, state, ops: Ops::default(), not_found: 0, unlocking: false, pin: None, response_rewrites: 0 };
        let mut out = vec![Effect::Persist];
        match &m.state {
            State::Fetching { secret } => {
                let key = RecordKey::new(m.core.record, Some(secret.clone()));
                m.ops.start(Purpose::OpenInbox, DhtOp::Open { key, writer: None }, &mut out);
                // PIN-3: the keypad is shown at once; the PIN goes into a
                // PAKE attempt once the offer is read.
                if m.core.ticket.is_pin() {
                    out.push(Effect::Emit(Event::PasswordRequired { pin: true }));
                }
            }
            _ => out.push(Effect::Emit(Event::PasswordRequired { pin: m.pin_hint() })),
        }
        Ok((m, out))
    }

    /// Whether the flow has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The invitation being received, once verified.
    pub fn invitation(&self) -> Option<&VerifiedInvitation> {
        match &self.state {
            State::Deciding(r) | State::Responding { r, .. } | State::AwaitingFinal { r, .. } => Some(&r.invitation),
            _ => None,
        }
    }

    pub(crate) fn watched_records(&self) -> Vec<[u8; 32]> {
        match &self.state {
            State::AwaitingFinal { r, .. } => match r.answer.as_ref().and_then(|a| a.record.as_ref()) {
                Some(k) => vec![*k.opaque(), self.core.record],
                None => vec![self.core.record],
            },
            State::Pin(f) if f.attempt.is_some() => vec![self.core.record],
            _ => Vec::new(),
        }
    }

    /// Whether the ticket says its lock is a PIN.
    fn pin_hint(&self) -> bool {
        self.core.ticket.is_pin()
    }

    /// What an app lists about this flow.
    pub(crate) fn facts(&self) -> super::FlowFacts {
        let invitation = self.received().map(|r| r.invitation.content());
        super::FlowFacts {
            kind: if self.is_link() { super::FlowKind::JoinAccount } else { super::FlowKind::Received },
            state: self.state_name(),
            expires_at: invitation.map(|c| c.expires_at),
            locked: self.core.ticket.is_locked(),
            peer: invitation.map(|c| c.identity_key).or(self.core.expect_identity),
            uses: None,
        }
    }

    fn is_link(&self) -> bool {
        matches!(self.core.responder, Responder::NewDevice(_))
    }

    fn inbox_key(&self, secret: &SecretKey) -> RecordKey {
        RecordKey::new(self.core.record, Some(secret.clone()))
    }

    /// Re-issues pending operations and timers after a restart.
    pub fn resume(&mut self, _now: u64, _rng: &mut dyn Rng) -> Vec<Effect> {
        let mut out = Vec::new();
        match &self.state {
            State::Done(f) => {
                out.push(Effect::Emit(Event::Finished(f.outcome())));
                out.push(Effect::Finished(f.outcome()));
            }
            State::NeedPassword { .. } => out.push(Effect::Emit(Event::PasswordRequired { pin: self.pin_hint() })),
            State::Fetching { .. } if self.core.ticket.is_pin() => {
                self.ops.resume(&mut out);
                out.push(Effect::Emit(Event::PasswordRequired { pin: true }));
            }
            State::Pin(f) => {
                // The PIN is not kept: ask for it again. Given the same PIN,
                // the attempt in flight goes on (PIN-7).
                self.ops.resume(&mut out);
                if f.attempt.is_some() {
                    let key = self.inbox_key(&f.secret);
                    self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys: vec![OWNER_SUBKEY] }, &mut out);
                }
                out.push(Effect::Emit(Event::PasswordRequired { pin: true }));
            }
            State::Deciding(r) => {
                out.push(Effect::Emit(Event::InvitationReceived(view(&r.invitation))));
                self.ops.resume(&mut out);
            }
            State::AwaitingFinal { r, .. } => {
                self.ops.resume(&mut out);
                let key = self.final_key(r);
                self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys: vec![OWNER_SUBKEY] }, &mut out);
                self.maybe_final(&mut out);
            }
            State::Responding { conversation, accept, value: None, .. }
                if (conversation.is_some() || !*accept || self.is_link())
                    && !self.ops.has_pending(|p| *p == Purpose::WriteResponse) =>
            {
                // Crashed between deciding and sealing the response.
                self.ops.resume(&mut out);
                self.write_response(_now, _rng, &mut out);
            }
            _ => self.ops.resume(&mut out),
        }
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
            Input::Computed(o) => self.on_computed(o, now, rng, &mut out),
            Input::Outgoing { .. } | Input::OutgoingSync(_) => {}
            // Only needed until the response is built (it then travels in it).
            Input::ReplyAddress(a)
                if !matches!(self.state, State::Responding { value: Some(_), .. } | State::AwaitingFinal { .. }) =>
            {
                self.core.reply_to = a
            }
            Input::ReplyAddress(_) => {}
            Input::Nudge(n) => {
                // PIN-10: a nudged reply is only a hint to read subkey 0.
                // Its invitation is self-signed: what ties it to the ticket's
                // inviter is that only the inbox owner can write subkey 0,
                // and a nudge can come from any ticket holder (who would
                // otherwise answer our hello with its own PIN guess).
                if let State::Pin(f) = &self.state
                    && n.record == self.core.record
                    && n.subkey == OWNER_SUBKEY
                {
                    if f.attempt.is_some() && !self.ops.has_pending(|p| *p == Purpose::ReadReply) {
                        let key = self.inbox_key(&f.secret);
                        self.ops.start(Purpose::ReadReply, DhtOp::Get { key, subkey: OWNER_SUBKEY }, &mut out);
                    }
                    return out;
                }
                // The inviter's final status, straight from it: untrusted
                // like a watched value, and handled the same way.
                if let State::AwaitingFinal { r, .. } = &self.state
                    && &n.record == self.final_key(r).opaque()
                    && n.subkey == OWNER_SUBKEY
                {
                    self.on_final_bytes(&n.value, &mut out);
                }
            }
            Input::TimerFired(t) => {
                if !self.ops.fired(t) {
                    return out;
                }
                match t {
                    Timer::Retry(op) => self.ops.retry(op, &mut out),
                    Timer::Poll if matches!(self.state, State::Pin(_)) => self.on_pin_poll(now, rng, &mut out),
                    Timer::Expiry if matches!(self.state, State::Pin(_)) => {
                        self.end(FinishedWith::Failed(ProtocolError::Expired), &mut out)
                    }
                    Timer::Poll => {
                        if let State::AwaitingFinal { r, .. } = &self.state {
                            let key = self.final_key(r);
                            // MU-5: a multi-use invitation's own subkey 0
                            // says when it closed without answering us.
                            if let Some(a) = &r.answer
                                && !self.ops.has_pending(|p| *p == Purpose::ReadHub)
                            {
                                let hub = self.inbox_key(&r.secret);
                                let slot = DhtOp::Get { key: hub.clone(), subkey: 1 + a.slot };
                                self.ops.start(
                                    Purpose::ReadHub,
                                    DhtOp::Get { key: hub, subkey: OWNER_SUBKEY },
                                    &mut out,
                                );
                                if !self.ops.has_pending(|p| matches!(p, Purpose::ReadSlot | Purpose::WriteClaim)) {
                                    self.ops.start(Purpose::ReadSlot, slot, &mut out);
                                }
                            }
                            if !self.ops.has_pending(|p| *p == Purpose::ReadFinal) {
                                self.ops.start(Purpose::ReadFinal, DhtOp::Get { key, subkey: OWNER_SUBKEY }, &mut out);
                            }
                            self.ops.set_timer(Timer::Poll, now + POLL_INTERVAL_MS, &mut out);
                        }
                    }
                    Timer::Expiry => {
                        // The inviter never answered within the grace period.
                        if let State::AwaitingFinal { rejected, .. } = &self.state {
                            let f = if *rejected {
                                FinishedWith::RejectedByUs
                            } else {
                                FinishedWith::Failed(ProtocolError::Expired)
                            };
                            self.end(f, &mut out);
                        }
                    }
                }
            }
            Input::ValueChanged { record, subkeys, value } => {
                if let State::Pin(f) = &self.state
                    && record == self.core.record
                    && subkeys.contains(&OWNER_SUBKEY)
                {
                    match value {
                        Some(v) if subkeys.first() == Some(&OWNER_SUBKEY) => {
                            self.on_pin_owner_bytes(&v.data, now, rng, &mut out)
                        }
                        _ if !self.ops.has_pending(|p| *p == Purpose::ReadReply) => {
                            let key = self.inbox_key(&f.secret);
                            self.ops.start(Purpose::ReadReply, DhtOp::Get { key, subkey: OWNER_SUBKEY }, &mut out);
                        }
                        _ => {}
                    }
                    return out;
                }
                if let State::AwaitingFinal { r, .. } = &self.state {
                    let key = self.final_key(r);
                    if &record != key.opaque() {
                        return out;
                    }
                    if subkeys.first() == Some(&OWNER_SUBKEY) && value.is_some() {
                        self.on_final_value(value, &mut out);
                    } else if subkeys.contains(&OWNER_SUBKEY) && !self.ops.has_pending(|p| *p == Purpose::ReadFinal) {
                        self.ops.start(Purpose::ReadFinal, DhtOp::Get { key, subkey: OWNER_SUBKEY }, &mut out);
                    }
                }
            }
            Input::DhtDone { op, result } => match self.ops.complete(op, result, now, &mut out) {
                Completion::Done(p, o) => self.on_done(p, o, now, rng, &mut out),
                Completion::Retrying | Completion::Unknown => {}
                Completion::Failed(p, f, exhausted) => {
                    self.on_failed(p, f.kind, dht_error(f, exhausted), now, rng, &mut out)
                }
            },
        }
        out
    }

    /// Applies a user command, or says why it does not apply now.
    pub fn command(&mut self, c: Command, now: u64, rng: &mut dyn Rng) -> Result<Vec<Effect>, Refusal> {
        let mut out = Vec::new();
        self.on_command(c, now, rng, &mut out)?;
        Ok(out)
    }

    /// The state's short name (for [`Refusal::State`]).
    fn state_name(&self) -> &'static str {
        match &self.state {
            State::NeedPassword { .. } if self.unlocking => "unlocking",
            State::NeedPassword { .. } => "password_required",
            State::Fetching { .. } if self.core.ticket.is_pin() && self.pin.is_none() => "password_required",
            State::Fetching { .. } => "fetching",
            State::Pin(f) if f.attempt.is_some() && self.pin.is_some() => "pin_attempt",
            State::Pin(_) => "password_required",
            State::Deciding(_) => "deciding",
            State::Responding { .. } => "responding",
            State::AwaitingFinal { .. } => "awaiting_final",
            State::Done(_) => "done",
        }
    }

    fn on_command(&mut self, c: Command, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) -> Result<(), Refusal> {
        match (c, &self.state) {
            // PIN-3: a PIN entered before the offer is read waits in memory.
            (Command::Password(pw), State::Fetching { .. }) if self.core.ticket.is_pin() && self.pin.is_none() => {
                self.pin = Some(pw);
            }
            (Command::Password(pw), State::Pin(f)) if self.pin.is_none() => {
                let f = f.clone();
                self.pin = Some(pw);
                match &f.attempt {
                    // After a restart: the same PIN continues the attempt in
                    // flight (its message is recomputed and compared);
                    // another PIN starts a new attempt.
                    Some(a)
                        if self.pin.as_ref().is_some_and(|p| {
                            crate::crypto::pake::invitee_message(p, &self.core.record, &a.seed) == a.msg_a
                        }) =>
                    {
                        if let Some(reply) = a.reply.clone() {
                            self.on_pin_owner_bytes(&reply, now, rng, out);
                        }
                    }
                    _ => self.start_attempt(now, rng, out),
                }
            }
            (Command::Password(pw), State::NeedPassword { .. }) if !self.unlocking => {
                let Some((_, salt, params)) = &self.core.locked else { return Err(Refusal::State(self.state_name())) };
                let (m, t, p, w) = self.core.limits;
                let limits =
                    PasswordLimits { max_m_cost_log2: m, max_t_cost: t, max_p_cost: p, max_work_kib_passes: w };
                // Argon2id runs off the runtime; nothing is persisted until
                // it is back (the password never is).
                self.unlocking = true;
                out.push(Effect::Compute(Job::Stretch { password: pw, salt: *salt, params: *params, limits }));
            }
            (Command::Accept | Command::Reject, State::Deciding(r)) if r.invitation.is_expired(secs(now)) => {
                self.end(FinishedWith::Failed(ProtocolError::Expired), out);
            }
            (Command::Accept, State::Deciding(r)) if self.is_link() => {
                // A device link needs no conversation record.
                let r = r.clone();
                self.state = State::Responding { r, accept: true, conversation: None, value: None };
                self.respond(now, rng, out);
            }
            (Command::Accept, State::Deciding(r)) => {
                let r = r.clone();
                let r = self.with_answer(&r, rng, out);
                self.state = State::Responding { r, accept: true, conversation: None, value: None };
                let schema = Schema { owner_subkeys: 1, members: Vec::new() };
                self.ops.start(
                    Purpose::CreateConversation,
                    DhtOp::Create { schema, owner: self.core.conversation_owner.clone(), secret: None },
                    out,
                );
                out.insert(0, Effect::Persist);
            }
            (Command::Reject, State::Deciding(r)) => {
                let r = r.clone();
                let r = self.with_answer(&r, rng, out);
                self.state = State::Responding { r, accept: false, conversation: None, value: None };
                self.respond(now, rng, out);
            }
            // Also while a decision waits for the freshness check: nothing was sent yet.
            (
                Command::Cancel,
                State::Deciding(_)
                | State::NeedPassword { .. }
                | State::Fetching { .. }
                | State::Pin(_)
                | State::Responding { value: None, .. },
            ) => {
                self.unlocking = false;
                self.end(FinishedWith::Cancelled, out);
            }
            _ => return Err(Refusal::State(self.state_name())),
        }
        Ok(())
    }

    /// An unlock attempt is back: unmask the ticket secret and open the inbox
    /// (a wrong password shows when the inbox does not open).
    fn on_computed(&mut self, o: JobOutput, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let JobOutput::Stretched(stretched) = o else { return };
        let State::NeedPassword { cached } = &self.state else { return };
        if !core::mem::take(&mut self.unlocking) {
            return;
        }
        let Some((masked, salt, _)) = &self.core.locked else { return };
        let secret = match stretched {
            Ok(st) => password::apply_mask(masked, &st, salt, &self.core.record).inbox_secret(),
            Err(e) => return self.end(FinishedWith::Error(StoredError::from(Error::from(e))), out),
        };
        let cached = cached.clone();
        self.state = State::Fetching { secret: secret.clone() };
        match cached {
            // A previous attempt already fetched the request: no network needed.
            Some(v) => self.on_request_value(Some(v), now, rng, out),
            None => {
                let key = self.inbox_key(&secret);
                self.ops.start(Purpose::OpenInbox, DhtOp::Open { key, writer: None }, out);
                out.insert(0, Effect::Persist);
            }
        }
    }

    fn on_failed(
        &mut self,
        purpose: Purpose,
        kind: DhtErrorKind,
        err: Error,
        _now: u64,
        _rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        match purpose {
            Purpose::OpenInbox | Purpose::ReadRequest => {
                if kind == DhtErrorKind::BadRecordSecret && self.core.locked.is_some() {
                    self.wrong_password(out);
                } else if kind == DhtErrorKind::BadRecordSecret {
                    self.end_err(VerifyError::DecryptionFailed.into(), out);
                } else if kind == DhtErrorKind::NotFound {
                    self.end(FinishedWith::Failed(ProtocolError::NotFound), out);
                } else {
                    self.end_err(err, out);
                }
            }
            // FRESH-3: a failed read is not fresh: read again, then fail closed.
            Purpose::FreshnessOpen | Purpose::FreshnessGet => {
                let unreachable = matches!(err, Error::Protocol(ProtocolError::RetriesExhausted { .. }));
                self.on_freshness_read(None, unreachable, _now, _rng, out)
            }
            Purpose::CreateConversation | Purpose::WriteResponse | Purpose::CreateAnswer | Purpose::WriteClaim => {
                self.end_err(err, out)
            }
            Purpose::ReadHub | Purpose::ReadSlot | Purpose::PeekSlot => {}
            // Not evidence either way: read again.
            Purpose::ReadClosed => self.read_closed_later(_now, out),
            // The hello could not be written: the attempt is dropped (it
            // never reached the inviter) and the PIN asked for again.
            Purpose::WriteHello if matches!(self.state, State::Pin(_)) => {
                if let State::Pin(f) = &mut self.state {
                    f.attempt = None;
                }
                self.pin = None;
                self.ops.cancel_timer(Timer::Poll, out);
                out.push(Effect::Persist);
                out.push(Effect::Emit(Event::PasswordRequired { pin: true }));
            }
            // The attempt was answered meanwhile (its reply read from subkey
            // 0): the hello no longer matters; a response held back for it
            // goes now (PIN-11).
            Purpose::WriteHello => self.respond(_now, _rng, out),
            Purpose::Watch | Purpose::ReadFinal | Purpose::Forget | Purpose::ReadReply => {}
        }
    }

    fn on_done(&mut self, purpose: Purpose, output: DhtOutput, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        match (purpose, output) {
            (Purpose::OpenInbox, _) => {
                if let State::Fetching { secret } = &self.state {
                    let key = self.inbox_key(secret);
                    self.ops.start(Purpose::ReadRequest, DhtOp::Get { key, subkey: OWNER_SUBKEY }, out);
                    out.insert(0, Effect::Persist);
                }
            }
            // INT-NUDGE-1: a tombstone or a response in the owner subkey is no
            // verified value (a legitimate inviter never writes one there):
            // like no value, it is read again and at worst ends as not found.
            (Purpose::ReadRequest, DhtOutput::Value(v))
                if v.as_ref().is_none_or(|v| !owner_value_can_count(&v.data)) && self.not_found < MAX_NOT_FOUND =>
            {
                // A fresh record may not have reached every node yet: read again.
                self.not_found += 1;
                if let State::Fetching { secret } = &self.state {
                    let key = self.inbox_key(secret);
                    self.ops.start(Purpose::ReadRequest, DhtOp::Get { key, subkey: OWNER_SUBKEY }, out);
                    out.insert(0, Effect::Persist);
                }
            }
            (Purpose::ReadRequest, DhtOutput::Value(v)) => self.on_request_value(v.map(|v| v.data), now, rng, out),
            (Purpose::FreshnessOpen, _) => {
                if let Some(r) = self.received() {
                    let key = r.invitation.content().identity_record.clone();
                    self.ops.start(Purpose::FreshnessGet, DhtOp::Get { key, subkey: 0 }, out);
                    out.insert(0, Effect::Persist);
                }
            }
            (Purpose::FreshnessGet, DhtOutput::Value(v)) => self.on_freshness_read(v.as_ref(), false, now, rng, out),
            (Purpose::CreateConversation, DhtOutput::Created(k)) => {
                if let State::Responding { conversation, .. } = &mut self.state {
                    *conversation = Some(k);
                }
                self.respond(now, rng, out);
            }
            (Purpose::CreateAnswer, DhtOutput::Created(k)) => {
                if let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) {
                    a.record = Some(RecordKey::new(*k.opaque(), Some(a.secret.clone())));
                }
                self.respond(now, rng, out);
            }
            (Purpose::WriteResponse, DhtOutput::Set(_)) if self.received().is_some_and(|r| r.answer.is_some()) => {
                if let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) {
                    a.response_done = true;
                }
                self.on_claim_progress(now, out);
            }
            (Purpose::WriteClaim, DhtOutput::Set(newer)) => self.on_claim_written(newer, now, out),
            (Purpose::ReadHub, DhtOutput::Value(Some(v))) => self.on_hub_value(&v.data, out),
            (Purpose::ReadClosed, DhtOutput::Value(v)) => self.on_closed_read(v, now, out),
            (Purpose::ReadSlot, DhtOutput::Value(v)) => self.on_slot_value(v.map(|v| v.data), out),
            (Purpose::PeekSlot, DhtOutput::Value(v)) => self.peek_slot(Some(v.map(|v| v.data)), rng, out),
            (Purpose::WriteResponse, DhtOutput::Set(newer)) => self.on_response_written(newer, now, out),
            (Purpose::WriteHello, DhtOutput::Set(newer)) => {
                self.on_hello_written(newer, out);
                // PIN-11: a response held back for this write goes now.
                if matches!(self.state, State::Responding { value: None, .. }) {
                    self.respond(now, rng, out);
                }
            }
            (Purpose::ReadReply, DhtOutput::Value(Some(v))) => self.on_pin_owner_bytes(&v.data, now, rng, out),
            (Purpose::ReadFinal, DhtOutput::Value(v)) => self.on_final_value(v, out),
            _ => {}
        }
    }

    fn received(&self) -> Option<&Received> {
        match &self.state {
            State::Deciding(r) | State::Responding { r, .. } | State::AwaitingFinal { r, .. } => Some(r),
            _ => None,
        }
    }

    fn received_mut(&mut self) -> Option<&mut Received> {
        match &mut self.state {
            State::Deciding(r) | State::Responding { r, .. } | State::AwaitingFinal { r, .. } => Some(r),
            _ => None,
        }
    }

    fn set_freshness(&mut self, f: Freshness) {
        if let Some(r) = self.received_mut() {
            r.freshness = f;
        }
    }

    /// One read of the inviter's identity record (`None`: the read failed;
    /// `unreachable`: because the network could not be reached at all).
    /// FRESH-2: only a record signed by the inviter's identity key, naming
    /// the location it was read from, at least as new as the snapshot in the
    /// invitation, counts; FRESH-3: anything else is read again after a
    /// delay, at most [`super::FRESHNESS_READS`] times, then fails closed. An
    /// unreachable network is no evidence either way: the read is tried
    /// again every [`super::SLOW_RETRY_MS`] until the invitation expires (no
    /// response could be taken after that), then fails closed.
    fn on_freshness_read(
        &mut self,
        v: Option<&ValueData>,
        unreachable: bool,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let Some(r) = self.received() else { return };
        if r.freshness != Freshness::Pending {
            return;
        }
        let c = r.invitation.content();
        let location = c.identity_record.clone();
        let verdict = if unreachable {
            None
        } else {
            Some(super::judge_freshness(v, r.invitation.identity(), &location, &c.device_key))
        };
        let deadline = c.expires_at.saturating_mul(1000);
        let f = match verdict {
            None if now.saturating_add(super::SLOW_RETRY_MS) < deadline => {
                let read = DhtOp::Open { key: location, writer: None };
                self.ops.start_later(Purpose::FreshnessOpen, read, now + super::SLOW_RETRY_MS, out);
                out.insert(0, Effect::Persist);
                return;
            }
            None => Freshness::Unavailable,
            Some(super::FreshRead::Current) => Freshness::Ok,
            Some(super::FreshRead::Revoked) => Freshness::Revoked,
            // A device link takes the identity from the handover (the old
            // device adopts the rotated record first, and the handed-over
            // secret must derive its DH key), never from the snapshot.
            Some(super::FreshRead::Changed) if self.is_link() => Freshness::Ok,
            Some(super::FreshRead::Changed) => Freshness::Changed,
            Some(super::FreshRead::Unconfirmed) if r.fresh_reads + 1 < super::FRESHNESS_READS => {
                let n = r.fresh_reads + 1;
                if let Some(r) = self.received_mut() {
                    r.fresh_reads = n;
                }
                let read = DhtOp::Open { key: location, writer: None };
                self.ops.start_later(Purpose::FreshnessOpen, read, now + super::freshness_retry_ms(n), out);
                out.insert(0, Effect::Persist);
                return;
            }
            Some(super::FreshRead::Unconfirmed) => Freshness::Unavailable,
        };
        self.set_freshness(f);
        out.push(Effect::Persist);
        self.on_freshness_known(now, rng, out);
    }

    /// FRESH-4: nothing is sent before the inviter's device is confirmed
    /// current; a revoked or unconfirmed one ends the flow with nothing sent.
    fn on_freshness_known(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(r) = self.received() else { return };
        let sent = matches!(self.state, State::Responding { value: Some(_), .. } | State::AwaitingFinal { .. });
        match (&r.freshness, sent) {
            (Freshness::Pending, _) => {}
            (Freshness::Ok, false) => {
                if !self.ops.has_pending(|p| *p == Purpose::WriteResponse) {
                    self.write_response(now, rng, out);
                }
            }
            (Freshness::Revoked, false) => self.end(FinishedWith::Failed(ProtocolError::DeviceRevoked), out),
            (Freshness::Changed, false) => self.end(FinishedWith::Failed(ProtocolError::IdentityChanged), out),
            (Freshness::Unavailable, false) => self.end(FinishedWith::Failed(ProtocolError::FreshnessUnavailable), out),
            (_, true) => self.maybe_final(out),
        }
    }

    fn on_request_value(&mut self, v: Option<Vec<u8>>, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Fetching { secret } = &self.state else { return };
        let secret = secret.clone();
        let Some(data) = v else {
            return self.end(FinishedWith::Failed(ProtocolError::NotFound), out);
        };
        let record = self.core.record;
        let keys = InboxKeys::derive(&secret, &record);
        // EDGE-PIN-1: Veilid's record encryption is unauthenticated, so a
        // wrong PIN (a wrong record secret) reads garbage, not an error. For
        // a locked ticket, whatever does not decode and open under the
        // unlocked secret is a wrong password: ask again, never end.
        let locked = self.core.locked.is_some();
        let (sealed, ekt) = match inbox::decode_value(&data) {
            // PIN-2: a PIN invitation's offer (alone, or repeated in a reply
            // to someone's attempt): it opens under the ticket's keys.
            Ok(InboxValue::PinOffer { sealed }) if self.core.ticket.is_pin() => {
                return self.on_offer(secret, &sealed, now, rng, out);
            }
            Ok(InboxValue::PakeReply(r)) if self.core.ticket.is_pin() => {
                return self.on_offer(secret, &r.offer, now, rng, out);
            }
            // PIN-1: a PIN ticket opens only a PIN offer; a plain request
            // under it (a re-flagged ticket) would open whatever PIN is typed.
            Ok(InboxValue::Request { .. }) if self.core.ticket.is_pin() => {
                return self.end(FinishedWith::Failed(ProtocolError::NotFound), out);
            }
            Ok(InboxValue::Request { sealed, ekt }) => (sealed, ekt),
            Ok(InboxValue::FinalStatus { sealed }) => {
                // Closed already. We cannot verify who closed it without the
                // (erased) invitation, so this only ever yields an error.
                let reason = match inbox::open_final(&keys, &record, &sealed) {
                    Ok(b) => FinalStatus::closed_reason(&b),
                    Err(_) if locked => return self.wrong_password(out),
                    // It does not open under the ticket's key: no evidence of anything.
                    Err(_) => ProtocolError::NotFound,
                };
                return self.end(FinishedWith::Failed(reason), out);
            }
            Ok(_) | Err(_) if locked => return self.wrong_password(out),
            // Unverifiable (INT-NUDGE-1): no evidence the inbox was closed.
            // A PIN offer or reply under a ticket without the PIN flag: not
            // an invitation this ticket opens.
            Ok(
                InboxValue::Response { .. }
                | InboxValue::Tombstone(_)
                | InboxValue::PakeHello { .. }
                | InboxValue::PinOffer { .. }
                | InboxValue::PakeReply(_)
                | InboxValue::Claim { .. },
            ) => {
                return self.end(FinishedWith::Failed(ProtocolError::NotFound), out);
            }
            Err(e) => return self.end_err(e.into(), out),
        };
        let (writer, unverified) = match inbox::open_request(&keys, &record, ekt, &sealed) {
            Ok(x) => x,
            Err(_) if locked => return self.wrong_password(out),
            Err(e) => return self.end_err(e, out),
        };
        self.receive(secret, None, writer, unverified, now, rng, out);
    }

    /// An opened invitation (from a request, or a PIN attempt's reply):
    /// verify it as any other (INV-V-*) and show it.
    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        secret: SecretKey,
        session: Option<SecretKey>,
        writer: SigningKey,
        unverified: crate::message::UnverifiedInvitation,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let record = self.core.record;
        let kind = self.core.ticket.kind;
        let invitation = match unverified.verify(&record, kind, secs(now)) {
            Ok(i) => i,
            Err(Error::Verify(VerifyError::Expired { .. })) => {
                return self.end(FinishedWith::Failed(ProtocolError::Expired), out);
            }
            Err(e) => return self.end_err(e, out),
        };
        if let Responder::Identity(id) = &self.core.responder
            && invitation.content().identity_key == id.public_key()
        {
            return self.end(FinishedWith::Failed(ProtocolError::OwnInvitation), out);
        }
        // A ticket that arrived in a request must lead to the requester's own
        // invitation: a requester cannot make us contact someone else.
        if let Some(expected) = &self.core.expect_identity
            && &invitation.content().identity_key != expected
        {
            return self.end_err(VerifyError::WrongContext("the invitation comes from another identity").into(), out);
        }
        let view = view(&invitation);
        let fresh_key = invitation.content().identity_record.clone();
        // PIN-1: a PIN invitation is only ever opened through a PAKE, and a
        // PAKE only ever opens a PIN invitation.
        let is_pin = invitation.content().encryption_key_type == crate::message::EncryptionKeyType::Pin;
        if is_pin != session.is_some() {
            return self
                .end_err(VerifyError::WrongContext("the invitation's key type does not match its lock").into(), out);
        }
        self.state = State::Deciding(Box::new(Received {
            secret,
            session,
            invitation,
            writer,
            freshness: Freshness::Pending,
            fresh_reads: 0,
            answer: None,
            slot: None,
        }));
        let mut ops_out = Vec::new();
        self.ops.start(Purpose::FreshnessOpen, DhtOp::Open { key: fresh_key, writer: None }, &mut ops_out);
        self.peek_slot(None, rng, &mut ops_out);
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::InvitationReceived(view)));
        out.extend(ops_out);
        if self.core.auto_accept {
            let _ = self.on_command(Command::Accept, now, rng, out);
        }
    }

    /// A wrong password: ask again. The value read is not kept: under a
    /// wrong record secret a Veilid read is garbage, so the next attempt
    /// reads the inbox again with the secret it unlocks.
    fn wrong_password(&mut self, out: &mut Vec<Effect>) {
        self.state = State::NeedPassword { cached: None };
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::WrongPassword));
        out.push(Effect::Emit(Event::PasswordRequired { pin: self.pin_hint() }));
    }

    /// Writes the response if it may be written now (see `write_response`);
    /// otherwise persists the decision, and the freshness result writes it.
    fn respond(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        self.write_response(now, rng, out);
        if !self.ops.has_pending(|p| *p == Purpose::WriteResponse) && !self.is_finished() {
            out.insert(0, Effect::Persist);
        }
    }

    fn write_response(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Responding { r, accept, conversation, value } = &self.state else { return };
        // PIN-11: our own hello still being written (retried after a
        // failure) would land over the response in subkey 1, and the
        // inviter would never see it: the response waits for that write.
        if self.ops.has_pending(|p| *p == Purpose::WriteHello) {
            return;
        }
        // FRESH-4: written once, and only once the inviter's device is
        // confirmed current and (accepting a contact) our conversation exists.
        if value.is_some()
            || r.freshness != Freshness::Ok
            || (*accept && conversation.is_none() && !self.is_link())
            || r.answer.as_ref().is_some_and(|a| a.record.is_none())
        {
            return;
        }
        let c = r.invitation.content();
        let (identity_key, device, identity_record, signed_identity, profile, consent, dh) = match &self.core.responder
        {
            Responder::Identity(id) => {
                let Some(record) = id.record_key().cloned() else {
                    return self.end_err(Error::ApiMisuse("identity not published"), out);
                };
                let profile = self.core.profile.clone().or_else(|| id.profile().cloned());
                (id.public_key(), id.device_key(), record, id.signed(), profile, None, None)
            }
            // A new device answers for the inviter's identity with its consent
            // to join it and the key the handover is sealed to.
            Responder::NewDevice(n) => (
                c.identity_key,
                &n.device,
                c.identity_record.clone(),
                r.invitation.identity(),
                self.core.profile.clone(),
                Some(crate::message::device_consent(&c.identity_key, &n.device)),
                Some(n.dh.public()),
            ),
        };
        let content = ResponseContent {
            kind: c.kind,
            accept: *accept,
            inbox_key: c.inbox_key,
            invitation_hash: *r.invitation.hash(),
            identity_key,
            device_key: device.public(),
            identity_record,
            profile,
            conversation: conversation.clone(),
            created_at: secs(now),
            device_consent: consent,
            device_dh_key: dh,
            reply_to: self.core.reply_to.clone(),
        };
        let signed = match content.sign(device, signed_identity, &r.invitation) {
            // The reply address is optional: drop it if it does not fit.
            Err(crate::error::DecodeError::TooLarge { .. }) if content.reply_to.is_some() => {
                ResponseContent { reply_to: None, ..content }.sign(device, signed_identity, &r.invitation)
            }
            r => r,
        };
        let signed = match signed {
            Ok(s) => s,
            Err(e) => return self.end_err(e.into(), out),
        };
        // PIN-5: a PIN invitation's response is sealed under the session
        // secret: opening it is the inviter's key confirmation. MU-2: a
        // multi-use invitation's, under our answer record's.
        let (seal_secret, seal_record) = match r.answer.as_ref().and_then(|a| a.record.as_ref()) {
            Some(k) => (k.secret().cloned().unwrap_or_else(|| r.secret.clone()), *k.opaque()),
            None => (r.session.clone().unwrap_or_else(|| r.secret.clone()), self.core.record),
        };
        let keys = InboxKeys::derive(&seal_secret, &seal_record);
        let sealed = match inbox::seal_response(&keys, &seal_record, &signed, &mut RngAdapter(rng)) {
            Ok(s) => s,
            Err(e) => return self.end_err(e.into(), out),
        };
        // INT-HASH-1: our response's name, as the inviter will compute it.
        let hash = match crate::message::response_hash_of_signed(&signed) {
            Ok(h) => h,
            Err(e) => return self.end_err(e.into(), out),
        };
        if r.answer.is_some() {
            return self.write_claim(sealed, hash, rng, out);
        }
        let key = self.inbox_key(&r.secret);
        let writer = r.writer.clone();
        let _ = value;
        if let State::Responding { value, .. } = &mut self.state {
            *value = Some((sealed.clone(), hash));
        }
        self.core.reply_to = None;
        self.ops.start(Purpose::WriteResponse, DhtOp::Set { key, subkey: WRITER_SUBKEY, data: sealed, writer }, out);
        out.insert(0, Effect::Persist);
    }

    fn on_response_written(&mut self, newer: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let State::Responding { r, accept, conversation, value: Some((sealed, hash)) } = &self.state else { return };
        // PIN-5: on a PIN invitation another ticket holder's hello may have
        // landed over our copy of subkey 1. A hello is no answer: write our
        // response again over it (bounded).
        if let Some(v) = &newer
            && v.data != *sealed
            && matches!(inbox::decode_value(&v.data), Ok(InboxValue::PakeHello { .. }))
            && self.response_rewrites < super::MAX_ATTEMPTS
        {
            self.response_rewrites += 1;
            let key = self.inbox_key(&r.secret);
            let (data, writer) = (sealed.clone(), r.writer.clone());
            self.ops.start(Purpose::WriteResponse, DhtOp::Set { key, subkey: WRITER_SUBKEY, data, writer }, out);
            return;
        }
        // Some(newer) with other bytes: another acceptor wrote first. We do not
        // overwrite it; the inviter's final status says who won.
        let contested = newer.is_some_and(|v| &v.data != sealed);
        // Ours is confirmed on the DHT: tell the inviter directly.
        if let (false, Some(to)) = (contested, r.invitation.content().reply_to.clone()) {
            let nudge = Nudge { record: self.core.record, subkey: WRITER_SUBKEY, value: sealed.clone() };
            out.push(Effect::Nudge { to, nudge });
        }
        let (r, accept, hash) = (r.clone(), *accept, *hash);
        let conversation = conversation.clone();
        if accept && conversation.is_none() && !self.is_link() {
            out.push(Effect::Emit(Event::ResponseSent { accepted: accept }));
            return self.end_err(Error::ApiMisuse("accept without conversation"), out);
        }
        self.await_final(r, accept, conversation, hash, now, out);
    }

    /// Our response is stored: tell the app, and wait for the final status
    /// where it will be written (the inbox; a multi-use invitation: our
    /// answer record), by watch and poll. FRESH-6: after a reject too, as
    /// after an accept, so DHT nodes see the same operations.
    fn await_final(
        &mut self,
        r: Box<Received>,
        accept: bool,
        conversation: Option<RecordKey>,
        hash: [u8; 32],
        now: u64,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Emit(Event::ResponseSent { accepted: accept }));
        let key = self.final_key(&r);
        let give_up = r.invitation.content().expires_at * 1000 + FINAL_GRACE_MS;
        self.state =
            State::AwaitingFinal { r, conversation, response_hash: hash, accepted_final: false, rejected: !accept };
        let mut ops_out = Vec::new();
        self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys: vec![OWNER_SUBKEY] }, &mut ops_out);
        self.ops.set_timer(Timer::Poll, now + POLL_INTERVAL_MS, &mut ops_out);
        self.ops.set_timer(Timer::Expiry, give_up, &mut ops_out);
        out.insert(0, Effect::Persist);
        out.extend(ops_out);
        // The freshness check may already be done: nothing else to wait for.
        self.maybe_final(out);
    }

    fn on_final_value(&mut self, v: Option<ValueData>, out: &mut Vec<Effect>) {
        if let Some(v) = v {
            self.on_final_bytes(&v.data, out);
        }
    }

    fn on_final_bytes(&mut self, data: &[u8], out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, response_hash, rejected, .. } = &self.state else { return };
        let rejected = *rejected;
        let c = r.invitation.content();
        let final_key = self.final_key(r);
        let final_secret = final_key.secret().cloned().unwrap_or_else(|| r.secret.clone());
        let keys = InboxKeys::derive(&final_secret, final_key.opaque());
        // INT-NUDGE-1: whatever arrives here (by nudge, watch or read) comes
        // from someone we do not trust yet. Only a final status or a tombstone
        // that verifies under the inviter's device key counts; anything else
        // is ignored and the wait (bounded by the expiry timer) goes on.
        let sealed = match inbox::decode_value(data) {
            Ok(InboxValue::FinalStatus { sealed }) => sealed,
            Ok(InboxValue::Tombstone(t)) => {
                // A verified tombstone means the inviter has finished, so its
                // final status is stored: read it (the status decides).
                if t.verify(&c.device_key, &c.inbox_key, r.invitation.hash()).is_ok()
                    && !self.ops.has_pending(|p| *p == Purpose::ReadFinal)
                {
                    let key = final_key.clone();
                    self.ops.start(Purpose::ReadFinal, DhtOp::Get { key, subkey: OWNER_SUBKEY }, out);
                }
                return;
            }
            Ok(_) => return,
            Err(_) => return, // unreadable: keep waiting, re-read later
        };
        let Ok(bytes) = inbox::open_final(&keys, final_key.opaque(), &sealed) else { return };
        // INV-F-1/2: only a final status signed by the inviter device for this invitation counts.
        let Ok(fs) = FinalStatus::verify(&bytes, &c.device_key, &c.inbox_key, r.invitation.hash()) else { return };
        let ours = fs.response_hash.as_ref() == Some(response_hash);
        if rejected {
            // We rejected: the inviter has closed the invitation, whatever it says.
            return self.end(FinishedWith::RejectedByUs, out);
        }
        match fs.status {
            FinalStatusKind::Accepted if ours && self.is_link() => {
                let handover = fs.handover.clone();
                self.finish_link(&handover, out);
            }
            FinalStatusKind::Accepted if ours => {
                // MU-3: a multi-use invitation's accept names the inviter's
                // conversation record for us; without it there is no contact.
                let multi = r.answer.is_some();
                if multi && fs.conversation.is_none() {
                    return;
                }
                if let State::AwaitingFinal { accepted_final, r, .. } = &mut self.state {
                    *accepted_final = true;
                    if let Some(a) = r.answer.as_mut() {
                        a.remote_conversation = fs.conversation.clone();
                    }
                }
                out.push(Effect::Persist);
                self.maybe_final(out);
            }
            FinalStatusKind::Accepted | FinalStatusKind::Rejected => {
                self.end(FinishedWith::Failed(ProtocolError::AlreadyUsed), out)
            }
            FinalStatusKind::Revoked if fs.response_hash.is_some() && ours => {
                // The inviter could not confirm our device is current (FRESH-4).
                self.end(FinishedWith::Failed(ProtocolError::DeviceNotConfirmed), out)
            }
            FinalStatusKind::Revoked => self.end(FinishedWith::Failed(ProtocolError::Revoked), out),
            FinalStatusKind::Expired => self.end(FinishedWith::Failed(ProtocolError::Expired), out),
            FinalStatusKind::NoUsesLeft => self.end(FinishedWith::Failed(ProtocolError::NoUsesLeft), out),
        }
    }

    fn maybe_final(&mut self, out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, conversation, accepted_final: true, .. } = &self.state else { return };
        match r.freshness {
            Freshness::Pending => return,
            Freshness::Revoked => return self.end(FinishedWith::Failed(ProtocolError::DeviceRevoked), out),
            Freshness::Changed => return self.end(FinishedWith::Failed(ProtocolError::IdentityChanged), out),
            Freshness::Unavailable => {
                return self.end(FinishedWith::Failed(ProtocolError::FreshnessUnavailable), out);
            }
            Freshness::Ok => {}
        }
        let inv = &r.invitation;
        let c = inv.content();
        let remote = c.conversation.clone().or_else(|| r.answer.as_ref().and_then(|a| a.remote_conversation.clone()));
        let (Some(remote), Some(conversation)) = (remote, conversation.clone()) else {
            return self.end_err(Error::ApiMisuse("contact invitation without conversation"), out);
        };
        let Responder::Identity(id) = &self.core.responder else { return };
        let key = match conversation_key(
            &id.dh_secret(),
            &inv.identity().record().dh_key,
            [id.public_key().as_bytes(), c.identity_key.as_bytes()],
            [conversation.opaque(), remote.opaque()],
            &c.inbox_key,
        ) {
            Ok(k) => k,
            Err(e) => return self.end_err(e.into(), out),
        };
        let contact = Contact::new(
            inv.identity().clone(),
            c.identity_record.clone(),
            c.profile.clone(),
            conversation.clone(),
            self.core.conversation_owner.clone(),
            remote,
            c.inbox_key,
            Role::Invitee,
            inv.identity().record().updated_at.max(c.created_at),
            key,
        );
        let peer = contact.peer;
        let name = contact.profile.name().to_owned();
        out.push(Effect::SaveContact(Box::new(contact)));
        out.push(Effect::Emit(Event::ContactEstablished { peer, name }));
        self.end(FinishedWith::Contact(peer), out);
    }

    /// Device links: opens the handover (account secret + identity record now
    /// listing this device), saves the new device's identity, and ends.
    fn finish_link(&mut self, sealed: &[u8], out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, response_hash, .. } = &self.state else { return };
        let Responder::NewDevice(n) = &self.core.responder else { return };
        let (device, dh) = (&n.device, &n.dh);
        let c = r.invitation.content();
        let device_pub = device.public();
        let ctx = HandoverContext {
            inbox: &c.inbox_key,
            invitation_hash: r.invitation.hash(),
            response_hash,
            device: &device_pub,
        };
        let (account_key, signed) = match handover::open(&ctx, dh, &c.identity_key, sealed) {
            Ok(x) => x,
            Err(e) => return self.end_err(e, out),
        };
        // FRESH-1: the handed-over record is published where the invitation said.
        if let Err(e) = signed.require_location(&c.identity_record) {
            return self.end_err(e.into(), out);
        }
        let identity = Identity::linked(device.clone(), account_key, c.identity_record.clone(), signed);
        out.push(Effect::SaveIdentity(Box::new(identity)));
        out.push(Effect::Emit(Event::DeviceLinked { identity: c.identity_key, device: device_pub }));
        self.end(FinishedWith::DeviceLinked(device_pub), out);
    }

    /// PIN-2: the offer opened under the ticket's keys. Anything that does
    /// not open ends as not found (it holds nothing a PIN could unlock).
    fn on_offer(&mut self, secret: SecretKey, sealed: &[u8], now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let keys = InboxKeys::derive(&secret, &self.core.record);
        let offer = match inbox::open_offer(&keys, &self.core.record, sealed) {
            Ok(o) => o,
            Err(_) => return self.end(FinishedWith::Failed(ProtocolError::NotFound), out),
        };
        if offer.expires_at <= secs(now) {
            return self.end(FinishedWith::Failed(ProtocolError::Expired), out);
        }
        let expires_at = offer.expires_at;
        self.state = State::Pin(Box::new(PinFlow {
            secret,
            writer: offer.writer,
            reply_to: offer.reply_to,
            expires_at,
            attempt: None,
        }));
        out.push(Effect::Persist);
        self.ops.set_timer(Timer::Expiry, expires_at.saturating_mul(1000), out);
        if self.pin.is_some() {
            self.start_attempt(now, rng, out);
        }
    }

    /// PIN-3: a new attempt: a fresh seed and nonce, SPAKE2 message A,
    /// the hello written to subkey 1 (persisted first, so a crash re-issues
    /// the same write).
    fn start_attempt(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(pin) = &self.pin else { return };
        let State::Pin(f) = &mut self.state else { return };
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut nonce = [0u8; crate::crypto::pake::NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let record = self.core.record;
        let msg_a = crate::crypto::pake::invitee_message(pin, &record, &seed);
        let hello_key = crate::crypto::pake::hello_key(&f.secret, &record);
        let reply_to = self.core.reply_to.as_deref();
        let hello = inbox::hello(&hello_key, &record, &nonce, &msg_a, reply_to, &mut RngAdapter(rng));
        f.attempt = Some(Attempt {
            seed,
            nonce,
            msg_a,
            hello: hello.clone(),
            sent_at: now,
            written: false,
            told_waiting: false,
            reply: None,
            rewrites: 0,
        });
        seed.fill(0);
        let key = RecordKey::new(record, Some(f.secret.clone()));
        let writer = f.writer.clone();
        out.push(Effect::Persist);
        self.ops.start(
            Purpose::WriteHello,
            DhtOp::Set { key: key.clone(), subkey: WRITER_SUBKEY, data: hello, writer },
            out,
        );
        self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys: vec![OWNER_SUBKEY] }, out);
        self.ops.set_timer(Timer::Poll, now.saturating_add(crate::limits::PIN_REPLY_WAIT_MS), out);
    }

    /// The hello is on the DHT: nudge the inviter's device with it. If the
    /// network held a newer value (another ticket holder wrote subkey 1
    /// since our copy), the hello is written again over it, a bounded
    /// number of times.
    fn on_hello_written(&mut self, newer: Option<ValueData>, out: &mut Vec<Effect>) {
        let State::Pin(f) = &mut self.state else { return };
        let Some(a) = f.attempt.as_mut() else { return };
        // Never over a response or a tombstone: only over another hello
        // (or garbage), so a second ticket holder's attempt cannot erase an
        // answer the inviter has yet to read.
        if let Some(v) = newer
            && v.data != a.hello
            && a.rewrites < super::MAX_ATTEMPTS
            && !matches!(inbox::decode_value(&v.data), Ok(InboxValue::Response { .. } | InboxValue::Tombstone(_)))
        {
            a.rewrites += 1;
            let key = RecordKey::new(self.core.record, Some(f.secret.clone()));
            let (data, writer) = (a.hello.clone(), f.writer.clone());
            out.push(Effect::Persist);
            self.ops.start(Purpose::WriteHello, DhtOp::Set { key, subkey: WRITER_SUBKEY, data, writer }, out);
            return;
        }
        a.written = true;
        out.push(Effect::Persist);
        if let Some(to) = f.reply_to.clone() {
            let nudge = Nudge { record: self.core.record, subkey: WRITER_SUBKEY, value: a.hello.clone() };
            out.push(Effect::Nudge { to, nudge });
        }
    }

    /// PIN-7: no reply yet: read subkey 0 again; past
    /// [`crate::limits::PIN_REPLY_WAIT_MS`] tell the app the inviter's
    /// device seems offline (once per attempt), and keep polling on the
    /// usual backed-off schedule until expiry.
    fn on_pin_poll(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Pin(f) = &mut self.state else { return };
        let Some(a) = f.attempt.as_mut() else { return };
        let key = RecordKey::new(self.core.record, Some(f.secret.clone()));
        if !a.told_waiting && now >= a.sent_at.saturating_add(crate::limits::PIN_REPLY_WAIT_MS) {
            a.told_waiting = true;
            out.push(Effect::Persist);
            out.push(Effect::Emit(Event::WaitingForInviter));
        }
        let age = now.saturating_sub(a.sent_at);
        let expiry = f.expires_at.saturating_mul(1000);
        if !self.ops.has_pending(|p| *p == Purpose::ReadReply) {
            self.ops.start(Purpose::ReadReply, DhtOp::Get { key, subkey: OWNER_SUBKEY }, out);
        }
        let at = now.saturating_add(super::poll::next_delay(age, rng)).min(expiry.max(now.saturating_add(1)));
        self.ops.set_timer(Timer::Poll, at, out);
    }

    /// Subkey 0 while a PIN attempt is in flight: the reply to our attempt
    /// (any other value, an old reply, a forged one, is ignored, PIN-8), or
    /// the invitation's final status (closed).
    fn on_pin_owner_bytes(&mut self, data: &[u8], now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Pin(f) = &self.state else { return };
        let record = self.core.record;
        let reply = match inbox::decode_value(data) {
            Ok(InboxValue::PakeReply(r)) => r,
            Ok(InboxValue::FinalStatus { sealed }) => {
                // Closed (revoked, expired, exhausted): it opens under the
                // ticket's keys; unverifiable without the invitation, so it
                // only ever ends the flow with an error.
                let keys = InboxKeys::derive(&f.secret, &record);
                if let Ok(b) = inbox::open_final(&keys, &record, &sealed) {
                    let reason = FinalStatus::closed_reason(&b);
                    self.end(FinishedWith::Failed(reason), out);
                }
                return;
            }
            _ => return,
        };
        let Some(a) = &f.attempt else { return };
        if reply.nonce.as_slice() != a.nonce.as_slice() {
            return;
        }
        let Some(pin) = self.pin.clone() else {
            // After a restart, before the PIN was entered again: keep it.
            if let State::Pin(f) = &mut self.state
                && let Some(a) = f.attempt.as_mut()
                && a.reply.is_none()
            {
                a.reply = Some(data.to_vec());
                out.push(Effect::Persist);
            }
            return;
        };
        let (secret, writer) = (f.secret.clone(), f.writer.clone());
        let keys =
            match crate::crypto::pake::invitee_finish(&pin, &record, &a.seed, &a.nonce, &reply.message, &reply.confirm)
            {
                Ok(k) => k,
                Err(_) => return self.pin_wrong(out),
            };
        let unverified = match inbox::open_pake_invitation(&keys.invitation, &record, &reply.nonce, &reply.invitation) {
            Ok(u) => u,
            // The tag verified but the invitation does not open: only the
            // inviter could have made this. Not a wrong PIN.
            Err(e) => return self.end_err(e, out),
        };
        self.ops.cancel_timer(Timer::Poll, out);
        self.ops.cancel_timer(Timer::Expiry, out);
        self.pin = None;
        self.receive(secret, Some(keys.session), writer, unverified, now, rng, out);
    }

    /// PIN-5: the reply's tag did not verify: a wrong PIN. The attempt is
    /// over (the inviter counted it); ask again.
    fn pin_wrong(&mut self, out: &mut Vec<Effect>) {
        if let State::Pin(f) = &mut self.state {
            f.attempt = None;
        }
        self.pin = None;
        self.ops.cancel_timer(Timer::Poll, out);
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::WrongPassword));
        out.push(Effect::Emit(Event::PasswordRequired { pin: true }));
    }

    /// Where our final status is read: our answer record (multi-use), else
    /// the invitation's inbox.
    fn final_key(&self, r: &Received) -> RecordKey {
        match r.answer.as_ref().and_then(|a| a.record.clone()) {
            Some(k) => k,
            None => self.inbox_key(&r.secret),
        }
    }

    /// Multi-use (MU-2): our answer, before anything is written: fresh keys
    /// for an answer record of the one-time inbox shape, a random claim
    /// slot, and the record's creation (local on Veilid).
    fn with_answer(&mut self, r: &Received, rng: &mut dyn Rng, out: &mut Vec<Effect>) -> Box<Received> {
        let mut r = Box::new(r.clone());
        let Some(terms) = r.invitation.content().multi_use else { return r };
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let secret = SecretKey::from_bytes(&mut bytes);
        let owner = SigningKey::generate(&mut RngAdapter(rng));
        let writer = SigningKey::generate(&mut RngAdapter(rng));
        let slots = u32::from(terms.slots.max(1));
        let slot = r.slot.map_or_else(|| rng.next_u32() % slots, |(s, _)| s % slots);
        let schema =
            Schema { owner_subkeys: 1, members: vec![crate::dht::SchemaMember { key: writer.public(), subkeys: 1 }] };
        let create = DhtOp::Create { schema, owner: owner.clone(), secret: Some(secret.clone()) };
        r.answer = Some(Box::new(Answer {
            owner,
            writer,
            secret,
            record: None,
            slot,
            slots,
            claim: None,
            response_done: false,
            claim_done: false,
            moves: 0,
            parked: false,
            remote_conversation: None,
            hub_closed: None,
            closed_reads: 0,
        }));
        self.ops.start(Purpose::CreateAnswer, create, out);
        out.insert(0, Effect::Persist);
        r
    }

    /// Multi-use: the sealed response goes to our answer record, and a claim
    /// pointing to it (sealed to the inviter's identity DH key) to a slot of
    /// the invitation's inbox, both at once (MU-2).
    fn write_claim(&mut self, sealed: Vec<u8>, hash: [u8; 32], rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Responding { r, .. } = &self.state else { return };
        let Some(a) = r.answer.as_ref() else { return };
        let Some(record) = a.record.clone() else { return };
        let claim = inbox::Claim {
            record: record.clone(),
            owner: a.owner.clone(),
            writer: a.writer.clone(),
            response: sealed.clone(),
        };
        let inviter_dh = r.invitation.identity().record().dh_key;
        let value = match inbox::seal_claim(&inviter_dh, &self.core.record, &claim, &mut RngAdapter(rng)) {
            Ok(v) => v,
            Err(e) => return self.end_err(e.into(), out),
        };
        let hub = self.inbox_key(&r.secret);
        let (hub_writer, answer_writer, subkey) = (r.writer.clone(), a.writer.clone(), 1 + a.slot);
        if let State::Responding { value: v, r, .. } = &mut self.state {
            *v = Some((sealed.clone(), hash));
            if let Some(a) = r.answer.as_mut() {
                a.claim = Some(value.clone());
            }
        }
        self.core.reply_to = None;
        let response = DhtOp::Set { key: record, subkey: WRITER_SUBKEY, data: sealed, writer: answer_writer };
        self.ops.start(Purpose::WriteResponse, response, out);
        self.ops.start(Purpose::WriteClaim, DhtOp::Set { key: hub, subkey, data: value, writer: hub_writer }, out);
        out.insert(0, Effect::Persist);
    }

    /// Our claim's write came back. Another acceptor's claim in that slot
    /// is not written over: the next slot is tried, each once; a slot the
    /// inviter freed is written again at once (the write now knows its
    /// sequence number). With every slot holding a claim not yet taken, the
    /// claim is parked: it went to the inviter with the nudge, and the polls
    /// while we wait write it once a slot is free (MU-2, MU-9).
    fn on_claim_written(&mut self, newer: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        let (r, waiting) = match &self.state {
            State::Responding { r, .. } => (r, false),
            State::AwaitingFinal { r, .. } => (r, true),
            _ => return,
        };
        let Some(a) = r.answer.as_ref() else { return };
        let Some(claim) = a.claim.clone() else { return };
        let hub = self.inbox_key(&r.secret);
        let hub_writer = r.writer.clone();
        let freed = newer.as_ref().is_some_and(|v| self.is_freed_slot(r, &v.data));
        let taken = newer.is_some_and(|v| v.data != claim);
        let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) else { return };
        if waiting {
            // A write from a poll: landed, or parked until the next poll.
            a.parked = taken;
            if taken && !freed {
                a.slot = (a.slot + 1) % a.slots;
            }
            out.insert(0, Effect::Persist);
            return;
        }
        let retry = (freed && a.moves < 2 * a.slots) || (taken && !freed && a.moves + 1 < a.slots);
        if taken && retry {
            a.moves += 1;
            if !freed {
                a.slot = (a.slot + 1) % a.slots;
            }
            let set = DhtOp::Set { key: hub, subkey: 1 + a.slot, data: claim, writer: hub_writer };
            self.ops.start(Purpose::WriteClaim, set, out);
            out.insert(0, Effect::Persist);
            return;
        }
        a.parked = taken;
        a.claim_done = true;
        self.on_claim_progress(now, out);
    }

    /// Both our response and our claim are confirmed: nudge the inviter with
    /// the claim and wait for our final status in our answer record.
    fn on_claim_progress(&mut self, now: u64, out: &mut Vec<Effect>) {
        let State::Responding { r, accept, conversation, value: Some((_, hash)) } = &self.state else { return };
        let Some(a) = r.answer.as_ref() else { return };
        if !(a.response_done && a.claim_done) {
            out.insert(0, Effect::Persist);
            return;
        }
        let Some(claim) = a.claim.clone() else { return };
        if let Some(to) = r.invitation.content().reply_to.clone() {
            let nudge = Nudge { record: self.core.record, subkey: 1 + a.slot, value: claim };
            out.push(Effect::Nudge { to, nudge });
        }
        let (r, accept, hash, conversation) = (r.clone(), *accept, *hash, conversation.clone());
        self.await_final(r, accept, conversation, hash, now, out);
    }

    /// Multi-use, while the user decides (MU-9): read a random claim slot
    /// (`read`: `None`, start; `Some(value)`, what the last read found); an
    /// occupied one (someone's claim not yet taken) moves on to the next,
    /// each slot at most once. The read also tells our copy the slot's
    /// sequence number, so the claim written on accept lands at once.
    fn peek_slot(&mut self, read: Option<Option<Vec<u8>>>, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Deciding(r) = &self.state else { return };
        let Some(terms) = r.invitation.content().multi_use else { return };
        let slots = u32::from(terms.slots.max(1));
        let free = match &read {
            None => false,
            Some(None) => true,
            Some(Some(v)) => self.is_freed_slot(r, v),
        };
        let hub = self.inbox_key(&r.secret);
        let next = match (r.slot, read.is_some()) {
            (None, _) => (rng.next_u32() % slots, 0),
            (Some((s, n)), true) if !free && n + 1 < slots => ((s + 1) % slots, n + 1),
            _ => return,
        };
        if let State::Deciding(r) = &mut self.state {
            r.slot = Some(next);
        }
        self.ops.start(Purpose::PeekSlot, DhtOp::Get { key: hub, subkey: 1 + next.0 }, out);
    }

    /// A claim slot freed by the inviter: a tombstone verifying under its
    /// device key for this invitation (MU-9). Anything else in a slot is a
    /// claim (someone's) or junk.
    fn is_freed_slot(&self, r: &Received, data: &[u8]) -> bool {
        let c = r.invitation.content();
        matches!(inbox::decode_value(data), Ok(InboxValue::Tombstone(t))
            if t.verify(&c.device_key, &c.inbox_key, r.invitation.hash()).is_ok())
    }

    /// Our claim's slot, read on each poll while we wait (multi-use): the
    /// inviter's tombstone there means it took our claim; another claim
    /// there means ours was written over before it was read (or is parked):
    /// then each poll looks at the next slot and writes our claim into the
    /// first free one (MU-2, MU-9). The inviter answers a claim once however
    /// often it reads it (MU-4). One read (and at most one write) per poll.
    fn on_slot_value(&mut self, v: Option<Vec<u8>>, out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, accepted_final: false, .. } = &self.state else { return };
        let Some(a) = &r.answer else { return };
        let Some(claim) = a.claim.clone() else { return };
        if a.hub_closed.is_some() || self.ops.has_pending(|p| *p == Purpose::WriteClaim) {
            return;
        }
        let ours = v.as_ref() == Some(&claim);
        // The inviter's tombstone where our claim was: it took our claim and
        // freed the slot (MU-9).
        let freed = v.as_ref().is_some_and(|v| self.is_freed_slot(r, v));
        let parked = a.parked;
        let hub = self.inbox_key(&r.secret);
        let writer = r.writer.clone();
        let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) else { return };
        match (parked, ours, freed, v.is_none()) {
            (_, true, ..) => a.parked = false,
            (false, _, true, _) => return,
            // A free slot: write our claim there.
            (true, _, true, _) | (_, _, _, true) => {
                a.parked = true;
                let set = DhtOp::Set { key: hub, subkey: 1 + a.slot, data: claim, writer };
                self.ops.start(Purpose::WriteClaim, set, out);
            }
            // Someone's claim: ours was written over (or we are parked):
            // the next poll looks at the next slot.
            _ => {
                a.parked = true;
                a.slot = (a.slot + 1) % a.slots;
            }
        }
        out.insert(0, Effect::Persist);
    }

    /// The invitation's subkey 0 while we wait (multi-use): a closing status
    /// verifying under the inviter's device (no uses left, revoked, expired)
    /// means no answer may come for a claim it did not answer; our answer
    /// record is read once more and decides (MU-5). Anything else: ignored.
    fn on_hub_value(&mut self, data: &[u8], out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, .. } = &self.state else { return };
        if r.answer.as_ref().is_none_or(|a| a.hub_closed.is_some()) {
            return;
        }
        let Ok(InboxValue::FinalStatus { sealed }) = inbox::decode_value(data) else { return };
        let keys = InboxKeys::derive(&r.secret, &self.core.record);
        let Ok(bytes) = inbox::open_final(&keys, &self.core.record, &sealed) else { return };
        let c = r.invitation.content();
        let Ok(fs) = FinalStatus::verify(&bytes, &c.device_key, &c.inbox_key, r.invitation.hash()) else { return };
        if fs.response_hash.is_some()
            || !matches!(fs.status, FinalStatusKind::NoUsesLeft | FinalStatusKind::Revoked | FinalStatusKind::Expired)
        {
            return;
        }
        let key = self.final_key(r);
        if let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) {
            a.hub_closed = Some(fs.status);
            a.closed_reads = 0;
        }
        out.push(Effect::Persist);
        // A read already under way may have been answered before the
        // inviter wrote our answer: only reads started from now count.
        if !self.ops.has_pending(|p| *p == Purpose::ReadClosed) {
            self.ops.start(Purpose::ReadClosed, DhtOp::Get { key, subkey: OWNER_SUBKEY }, out);
        }
    }

    /// A read of our answer record since the invitation closed (MU-5): an
    /// answer for us decides as always; [`CLOSED_READS`] reads in a row
    /// without one, [`CLOSED_RECHECK_MS`] apart, end the flow with the
    /// closing status (our claim was never answered).
    fn on_closed_read(&mut self, v: Option<ValueData>, now: u64, out: &mut Vec<Effect>) {
        self.on_final_value(v, out);
        let State::AwaitingFinal { r, accepted_final: false, .. } = &self.state else { return };
        let Some(kind) = r.answer.as_ref().and_then(|a| a.hub_closed) else { return };
        let Some(a) = self.received_mut().and_then(|r| r.answer.as_mut()) else { return };
        a.closed_reads = a.closed_reads.saturating_add(1);
        if a.closed_reads >= CLOSED_READS {
            return self.end(FinishedWith::Failed(closed_error(kind)), out);
        }
        out.insert(0, Effect::Persist);
        self.read_closed_later(now, out);
    }

    fn read_closed_later(&mut self, now: u64, out: &mut Vec<Effect>) {
        let State::AwaitingFinal { r, .. } = &self.state else { return };
        if self.ops.has_pending(|p| *p == Purpose::ReadClosed) {
            return;
        }
        let key = self.final_key(r);
        let read = DhtOp::Get { key, subkey: OWNER_SUBKEY };
        self.ops.start_later(Purpose::ReadClosed, read, now.saturating_add(CLOSED_RECHECK_MS), out);
    }

    fn end_err(&mut self, e: Error, out: &mut Vec<Effect>) {
        match e {
            Error::Protocol(p) => self.end(FinishedWith::Failed(p), out),
            other => {
                let outcome = Outcome::Failed(other.clone());
                self.finish_with(FinishedWith::Error(StoredError::from(&other)), outcome, out);
            }
        }
    }

    fn end(&mut self, f: FinishedWith, out: &mut Vec<Effect>) {
        let outcome = f.outcome();
        self.finish_with(f, outcome, out);
    }

    fn finish_with(&mut self, f: FinishedWith, outcome: Outcome, out: &mut Vec<Effect>) {
        // Forget what we no longer need: the inbox always, our conversation
        // record unless it became part of a contact.
        let conversation = match (&self.state, &f) {
            (State::Responding { conversation, .. }, _) => conversation.clone(),
            (State::AwaitingFinal { .. }, FinishedWith::Contact(_)) => None,
            (State::AwaitingFinal { conversation, .. }, _) => conversation.clone(),
            _ => None,
        };
        let inbox = match &self.state {
            State::Fetching { secret } => Some(self.inbox_key(secret)),
            State::Pin(f) => Some(self.inbox_key(&f.secret)),
            State::Deciding(r) | State::Responding { r, .. } | State::AwaitingFinal { r, .. } => {
                Some(self.inbox_key(&r.secret))
            }
            _ => None,
        };
        self.ops.clear(out);
        self.pin = None;
        self.state = State::Done(f);
        out.push(Effect::Persist);
        for key in conversation.into_iter().chain(inbox) {
            out.push(Effect::Dht { op: u64::MAX, request: DhtOp::Forget { key } });
        }
        out.push(Effect::Emit(Event::Finished(outcome.clone())));
        out.push(Effect::Finished(outcome));
    }
}

/// Whether an owner-subkey value read while fetching could count at all: a
/// request or a sealed final status (which open only under the ticket's keys).
/// Tombstones and responses never belong there, and a tombstone cannot be
/// verified before the invitation is known (INT-NUDGE-1).
/// Why a multi-use invitation that closed without answering us ends our flow.
fn closed_error(k: FinalStatusKind) -> ProtocolError {
    match k {
        FinalStatusKind::Revoked => ProtocolError::Revoked,
        FinalStatusKind::Expired => ProtocolError::Expired,
        _ => ProtocolError::NoUsesLeft,
    }
}

fn owner_value_can_count(data: &[u8]) -> bool {
    !matches!(
        inbox::decode_value(data),
        Ok(InboxValue::Response { .. } | InboxValue::Tombstone(_) | InboxValue::PakeHello { .. })
    )
}

fn view(inv: &VerifiedInvitation) -> InvitationView {
    let c = inv.content();
    InvitationView {
        kind: c.kind,
        identity: c.identity_key,
        profile: c.profile.clone(),
        message: c.message.clone(),
        expires_at: c.expires_at,
    }
}
