//! The inviter's machine: send, wait, finalize, clean up.
//!
//! ```text
//! Creating ──(conversation + inbox created)──▶ Publishing ──(request confirmed)──▶ Waiting
//! Waiting ──(valid accept | valid reject | expiry timer | Cancel)──▶ Finalizing
//! Finalizing ──(final status confirmed)──▶ Cleaning ──▶ Done
//! Waiting ──(PIN hello: counted, answered with a PakeReply; past the limit)──▶ Finalizing(revoked)
//! ```
//! Finalizing a response (accept or reject alike, FRESH-6) first re-reads the
//! responder's identity record at the location its identity key signed
//! (FRESH-2, re-read at most [`super::FRESHNESS_READS`] times, FRESH-3), and
//! only then writes the signed final status over the request (which erases
//! it): `accepted`/`rejected` if the responder's device is confirmed current,
//! otherwise `revoked` naming the response, so the invitee never holds an
//! "accepted" this side then voids (FRESH-4). The contact becomes final when
//! the final status is confirmed. Cleaning tombstones the response subkey
//! (retrying until confirmed) and deletes the local copies.
//!
//! Device links ([`Inviter::link_device`], on the device holding the identity
//! key) differ in Finalizing: a verified accept (the new device's consent)
//! first adds the device to the identity record by read–merge–write (re-read
//! and merged again if another writer got there first), then writes the final
//! status carrying the handover sealed to the new device.

use serde::{Deserialize, Serialize};

mod link;
mod multi;
mod request;

use request::{mint_job, recipient_inbox};

use super::{
    Command, Completion, DhtOp, DhtOutput, Effect, FINAL_GRACE_MS, Input, Job, JobOutput, Ops, Refusal, Rng,
    RngAdapter, Timer, dht_error, poll, secs,
};
use crate::contact::{Contact, Role};
use crate::crypto::password::{self, SALT_LEN};
use crate::crypto::{
    DhPublicKey, DhSecretKey, KeySeed, PasswordLimits, PasswordParams, PublicKey, SecretKey, Signature, SigningKey,
    conversation_key,
};
use crate::dht::{Nudge, RecordKey, Schema, SchemaMember, ValueData};
use crate::encoding::Address;
use crate::encoding::{LockParams, Ticket, TicketSecret};
use crate::error::{DecodeError, Error, ProtocolError};
use crate::flow::{Event, Outcome, SendParams};
use crate::identity::{Identity, SharedIdentity};
use crate::message::address::{self, AddressRequestContent};
use crate::message::handover::{self, HandoverContext};
use crate::message::inbox::{self, InboxKeys, InboxValue, OWNER_SUBKEY, WRITER_SUBKEY};
use crate::message::{
    EncryptionKeyType, FinalStatus, FinalStatusKind, InvitationContent, InvitationContext, InvitationKind, Profile,
    SignedIdentity, VerifiedResponse,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LockMaterial {
    stretched: SecretKey,
    salt: [u8; SALT_LEN],
    m_cost_log2: u8,
    t_cost: u8,
    p_cost: u8,
}

/// A PIN invitation's PIN, kept by the inviter's device (its local store)
/// to answer PAKE hellos (PIN-4). Zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct PinSecret(Vec<u8>);

impl core::fmt::Debug for PinSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PinSecret(<redacted>)")
    }
}

/// A PIN invitation's PAKE bookkeeping while it waits (persisted: a crash
/// resets neither the attempt count nor the nonces seen, PIN-6, PIN-8).
/// `Debug` shows the counts only (the signed invitation is what the PIN
/// protects).
#[derive(Clone, Serialize, Deserialize)]
struct PinState {
    /// The sealed offer (subkey 0 while no hello was answered; repeated in
    /// every reply).
    offer: Vec<u8>,
    /// The signed invitation, sealed anew under each attempt's PAKE key.
    signed_invitation: Vec<u8>,
    /// Hellos answered (attempts counted).
    attempts: u32,
    /// Nonces of the hellos answered (a replay is not answered twice).
    seen: Vec<[u8; crate::crypto::pake::NONCE_LEN]>,
    /// Session secrets of the attempts answered: a response opens under one
    /// of them or not at all (the invitee's key confirmation).
    sessions: Vec<SecretKey>,
    /// The latest reply written (written again over an older one).
    last_reply: Vec<u8>,
    /// Rewrites of the latest reply over an older one (bounded).
    rewrites: u32,
    /// The reply address of the latest hello answered: nudged with the
    /// reply once it is confirmed (untrusted, best effort).
    #[serde(default)]
    peer_reply_to: Option<Vec<u8>>,
}

impl core::fmt::Debug for PinState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PinState")
            .field("attempts", &self.attempts)
            .field("seen", &self.seen.len())
            .field("rewrites", &self.rewrites)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Purpose {
    WriteReply,
    CreateConversation,
    CreateInbox,
    PublishRequest,
    Watch,
    ReadResponse,
    WriteFinal,
    FreshnessOpen,
    FreshnessGet,
    LinkGetIdentity,
    LinkSetIdentity,
    DeliverGetIdentity,
    DeliverSet,
    Tombstone,
    Forget,
    /// Multi-use: opening an acceptor's answer record to write its final status.
    OpenUse,
    /// Multi-use: reading claim slot `n` (a poll).
    ReadSlot(u32),
    /// Multi-use: writing a tombstone over a claim slot whose claim is
    /// queued or answered (the slot is free again, MU-9).
    FreeSlot,
}

/// A request to a known address: after the invitation is published, its
/// ticket is delivered (signed, sealed, stamped) to the recipient's inbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Delivery {
    to: Address,
    max_pow_bits: u32,
    ephemeral: DhSecretKey,
    delivered: bool,
    /// The slot write, kept to write again over a newer value.
    write: Option<DhtOp>,
    overwrites: u32,
    /// The sealed request while its stamp is minted ([`Job::Mint`], off
    /// the runtime): persisted, so a crash while minting resumes by minting
    /// again for the same bytes.
    minting: Option<Minting>,
}

/// A request sealed and waiting for its stamp (EDGE-RQ-3: the stamp covers
/// the sealed bytes, so they are made first).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Minting {
    /// The recipient's identity record as read (re-verified when used).
    record: Vec<u8>,
    /// The sealed request.
    sealed: Vec<u8>,
}

/// A password lock waiting for its Argon2id run ([`Job::Stretch`]). Never
/// persisted: the flow is persisted only once the lock is made.
#[derive(Clone, Debug)]
struct PendingLock {
    salt: [u8; SALT_LEN],
    params: PasswordParams,
}

/// A device link being finalized: the new device, and the identity record
/// that adds it once built.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct LinkState {
    device: PublicKey,
    consent: Signature,
    dh: DhPublicKey,
    label: String,
    response_hash: [u8; 32],
    updated: Option<SignedIdentity>,
    merges: u32,
}

/// What the invitation is, fixed at creation. Kept small for the days an
/// invitation waits: the identity is shared with the driver's other flows
/// (and persisted once, see [`SharedIdentity`]), the profile is kept only
/// when it differs from the identity's, and record keys are 32-byte seeds
/// expanded when an operation needs them.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Core {
    identity: SharedIdentity,
    kind: InvitationKind,
    /// `None`: the identity record's profile.
    profile: Option<Box<Profile>>,
    message: String,
    created_at: u64,
    expires_at: u64,
    inbox_owner: KeySeed,
    writer: KeySeed,
    conversation_owner: KeySeed,
    /// The ticket's 128-bit secret; the inbox's secret and keys derive from it.
    invite_secret: crate::crypto::InviteSecret,
    encryption_key_type: EncryptionKeyType,
    lock: Option<Box<LockMaterial>>,
    /// PIN invitations: the PIN (answers hellos) and the attempts allowed.
    #[serde(default)]
    pin: Option<(PinSecret, u32)>,
    /// Our reply address, as last told by the driver; only until the
    /// invitation is built (it then travels in it).
    #[serde(default)]
    reply_to: Option<Vec<u8>>,
    /// Multi-use invitations: their terms (`None`: one-time).
    #[serde(default)]
    multi_use: Option<crate::message::MultiUse>,
    /// The three keys expanded, from their generation until the invitation
    /// waits (never persisted): setting up uses each several times, and
    /// expanding a seed costs a scalar multiplication. A waiting invitation
    /// keeps only the seeds and expands each once more when it is answered.
    #[serde(skip)]
    expanded: Option<Box<ExpandedKeys>>,
}

#[derive(Clone, Debug)]
struct ExpandedKeys {
    inbox_owner: SigningKey,
    writer: SigningKey,
    conversation_owner: SigningKey,
}

impl Core {
    fn inbox_owner(&self) -> SigningKey {
        self.expanded.as_ref().map_or_else(|| self.inbox_owner.expand(), |k| k.inbox_owner.clone())
    }
    fn writer(&self) -> SigningKey {
        self.expanded.as_ref().map_or_else(|| self.writer.expand(), |k| k.writer.clone())
    }
    fn conversation_owner(&self) -> SigningKey {
        self.expanded.as_ref().map_or_else(|| self.conversation_owner.expand(), |k| k.conversation_owner.clone())
    }
    fn writer_public(&self) -> PublicKey {
        self.expanded.as_ref().map_or_else(|| self.writer.public(), |k| k.writer.public())
    }
    fn profile(&self) -> Result<&Profile, Error> {
        self.profile.as_deref().or_else(|| self.identity.profile()).ok_or(Error::ApiMisuse("no profile to send"))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Published {
    inbox: RecordKey,
    conversation: RecordKey,
    ticket: Ticket,
    invitation_hash: [u8; 32],
    /// The sealed request, compared with what the network holds while
    /// Publishing; emptied once it is confirmed (Waiting and later).
    request_value: Vec<u8>,
    /// PIN invitations: the PAKE bookkeeping.
    #[serde(default)]
    pin: Option<Box<PinState>>,
    /// Multi-use invitations, while one acceptor is answered: `inbox` is
    /// that acceptor's answer record, and signed contexts name this inbox
    /// (the invitation's) instead (MU-3).
    #[serde(default)]
    bound: Option<[u8; 32]>,
}

impl Published {
    /// The inbox signed contexts name: the invitation's own.
    fn bound_inbox(&self) -> &[u8; 32] {
        self.bound.as_ref().unwrap_or(self.inbox.opaque())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Freshness {
    NotNeeded,
    Pending,
    Done,
}

/// The response being finalized (contact invitations): what the final status
/// will name, and the responder's identity record to confirm first.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Answered {
    response_hash: [u8; 32],
    /// The responder's verified snapshot (from its response).
    snapshot: SignedIdentity,
    /// Where that snapshot says it is published (checked equal to what the
    /// response names, FRESH-1).
    location: RecordKey,
    /// Reads that did not confirm the record.
    reads: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Finalizing {
    status: FinalStatusKind,
    final_value: Vec<u8>,
    written: bool,
    #[serde(with = "crate::identity::persist")]
    contact: Option<Box<Contact>>,
    responder_device: Option<PublicKey>,
    freshness: Freshness,
    link: Option<Box<LinkState>>,
    /// The responder's reply address: nudged with the final status once it
    /// is confirmed.
    #[serde(default)]
    peer_reply_to: Option<Vec<u8>>,
    /// Contact invitations: the response answered, until the responder's
    /// identity record is confirmed and the final status written.
    #[serde(default)]
    answered: Option<Box<Answered>>,
    /// Immediate rewrites of the final status over a "newer" value the DHT
    /// reported (INT-TOMB-2): bounded, then the slow retry schedule.
    #[serde(default)]
    rewrites: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum State {
    Creating {
        conversation: Option<RecordKey>,
        inbox: Option<RecordKey>,
    },
    Publishing(Published),
    Waiting(Published),
    Finalizing(Published, Box<Finalizing>),
    /// The `u32` counts tombstone writes a newer value made us repeat (bounded).
    Cleaning(Published, FinishedWith, u32),
    Done(FinishedWith),
}

/// Serializable form of an [`Outcome`].
#[derive(Clone, Debug, Serialize, Deserialize)]
enum FinishedWith {
    Contact(PublicKey),
    DeviceLinked(PublicKey),
    /// By this identity, when the reject was signed by one (a contact
    /// invitation's responder; a device link's new device has none).
    Rejected(Option<PublicKey>),
    Revoked,
    Expired,
    Failed(Failure),
    /// A multi-use invitation closed.
    MultiUseClosed(Box<crate::flow::UsesView>),
}

/// Why a flow failed, as persisted (its code and message, see
/// [`crate::error::ErrorCode`]).
type Failure = crate::error::StoredError;

impl FinishedWith {
    fn outcome(&self) -> Outcome {
        match self {
            Self::Contact(p) => Outcome::Contact(*p),
            Self::DeviceLinked(d) => Outcome::DeviceLinked(*d),
            Self::Rejected(peer) => Outcome::RejectedByPeer { peer: *peer },
            Self::Revoked => Outcome::Cancelled,
            Self::Expired => Outcome::Failed(ProtocolError::Expired.into()),
            Self::Failed(f) => Outcome::Failed(f.restore()),
            Self::MultiUseClosed(v) => Outcome::MultiUseClosed((**v).clone()),
        }
    }
}

/// The inviter's state machine (see the module docs for the states).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inviter {
    core: Core,
    state: State,
    ops: Ops<Purpose>,
    pending_failure: Option<Failure>,
    delivery: Option<Box<Delivery>>,
    #[serde(skip)]
    locking: Option<Box<PendingLock>>,
    /// Re-watches on changes reported without their value, backed off (not
    /// persisted: a restart watches again anyway).
    #[serde(skip)]
    rewatch: Rewatch,
    /// Multi-use invitations: uses, the queue of claims and the one being
    /// answered (see `multi.rs`).
    #[serde(default)]
    multi: Option<Box<multi::Multi>>,
}

/// When a change without its value (a dead watch, on Veilid) may next make
/// the inviter watch and read again, and the gap after that: doubling from
/// the poll floor to the poll cap, so a node that keeps reporting its watch
/// dead costs a handful of reads, not one a second.
#[derive(Clone, Debug, Default)]
struct Rewatch {
    next_at: u64,
    gap_ms: u64,
}

fn inbox_schema(writer: &PublicKey, writer_subkeys: u16) -> Schema {
    Schema { owner_subkeys: 1, members: vec![SchemaMember { key: *writer, subkeys: writer_subkeys }] }
}

fn conversation_schema() -> Schema {
    Schema { owner_subkeys: 1, members: Vec::new() }
}

impl Inviter {
    /// Starts sending an invitation. With a password, the first effect asks
    /// for Argon2id ([`Effect::Compute`]) and the flow is persisted only
    /// once the result is back (the password itself is never persisted).
    pub fn new(params: SendParams, now: u64, rng: &mut dyn Rng) -> Result<(Self, Vec<Effect>), Error> {
        Self::with_kind(params, InvitationKind::Contact, now, rng)
    }

    pub(crate) fn with_kind(
        params: SendParams,
        kind: InvitationKind,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Result<(Self, Vec<Effect>), Error> {
        if params.identity.record_key().is_none() {
            return Err(Error::ApiMisuse("publish the identity record before sending invitations"));
        }
        let expires_in = params.expires_in_secs.clamp(60, crate::limits::MAX_EXPIRY_SECS);
        let profile = match params.profile {
            Some(p) if Some(&p) == params.identity.profile() => None,
            Some(p) => Some(Box::new(p)),
            None if params.identity.profile().is_some() => None,
            None => return Err(Error::ApiMisuse("no profile to send")),
        };
        if params.message.len() > crate::limits::MAX_MESSAGE {
            return Err(DecodeError::FieldTooLong {
                what: "invitation message",
                max: crate::limits::MAX_MESSAGE,
                got: params.message.len(),
            }
            .into());
        }
        let multi_use = multi::terms(params.uses, kind, &params.lock)?;
        let mut pin = None;
        let (lock, ekt) = match params.lock {
            crate::flow::Lock::None => (None, EncryptionKeyType::None),
            // PIN-1: a PIN is never stretched into an offline lock; it is
            // kept to answer PAKE hellos.
            crate::flow::Lock::Pin(p) => {
                let attempts = params.pin_attempts.clamp(1, crate::limits::MAX_PIN_ATTEMPTS);
                pin = Some((PinSecret(p.as_password().bytes().to_vec()), attempts));
                (None, EncryptionKeyType::Pin)
            }
            crate::flow::Lock::Password(pw) => {
                let ekt = EncryptionKeyType::Password;
                // Parameters are refused at once; Argon2id itself runs off
                // the runtime (the first effect asks for it).
                let p = params.password_params;
                PasswordLimits::default().check(&p)?;
                let salt = password::new_salt(rng);
                (Some((pw, PendingLock { salt, params: p })), ekt)
            }
        };
        let keys = ExpandedKeys {
            inbox_owner: SigningKey::generate(&mut RngAdapter(rng)),
            writer: SigningKey::generate(&mut RngAdapter(rng)),
            conversation_owner: SigningKey::generate(&mut RngAdapter(rng)),
        };
        let core = Core {
            identity: SharedIdentity::new(params.identity)?,
            kind,
            profile,
            message: params.message,
            created_at: secs(now),
            expires_at: secs(now) + expires_in,
            inbox_owner: KeySeed::from(&keys.inbox_owner),
            writer: KeySeed::from(&keys.writer),
            conversation_owner: KeySeed::from(&keys.conversation_owner),
            invite_secret: crate::crypto::InviteSecret::generate(&mut RngAdapter(rng)),
            encryption_key_type: ekt,
            lock: None,
            pin,
            reply_to: None,
            multi_use,
            expanded: Some(Box::new(keys)),
        };
        let mut m = Self {
            core,
            state: State::Creating { conversation: None, inbox: None },
            ops: Ops::default(),
            pending_failure: None,
            delivery: None,
            locking: None,
            rewatch: Rewatch::default(),
            multi: multi_use.map(multi::Multi::new),
        };
        let mut out = Vec::new();
        match lock {
            Some((password, l)) => {
                let job = Job::Stretch { password, salt: l.salt, params: l.params, limits: PasswordLimits::default() };
                m.locking = Some(Box::new(l));
                out.push(Effect::Compute(job));
            }
            None => m.start_creating(&mut out),
        }
        Ok((m, out))
    }

    /// Persists the flow and creates its records.
    fn start_creating(&mut self, out: &mut Vec<Effect>) {
        out.push(Effect::Persist);
        let writer_pub = self.core.writer_public();
        if self.core.kind == InvitationKind::Contact && self.multi.is_none() {
            self.ops.start(
                Purpose::CreateConversation,
                DhtOp::Create { schema: conversation_schema(), owner: self.core.conversation_owner(), secret: None },
                out,
            );
        }
        self.ops.start(
            Purpose::CreateInbox,
            DhtOp::Create {
                schema: inbox_schema(&writer_pub, self.core.multi_use.map_or(1, |m| m.slots)),
                owner: self.core.inbox_owner(),
                secret: Some(self.core.invite_secret.inbox_secret()),
            },
            out,
        );
    }

    /// Argon2id is back: keep the lock (never the password) and start.
    fn on_stretched(&mut self, r: Result<SecretKey, crate::error::PasswordError>, out: &mut Vec<Effect>) {
        if !matches!(self.state, State::Creating { .. }) {
            return;
        }
        let Some(l) = self.locking.take() else { return };
        match r {
            Ok(stretched) => {
                let p = l.params;
                self.core.lock = Some(Box::new(LockMaterial {
                    stretched,
                    salt: l.salt,
                    m_cost_log2: p.m_cost_log2,
                    t_cost: p.t_cost,
                    p_cost: p.p_cost,
                }));
                self.start_creating(out);
            }
            Err(e) => {
                // Nothing was persisted or created: end here.
                let done = FinishedWith::Failed(Failure::from(Error::from(e)));
                out.push(Effect::Emit(Event::Finished(done.outcome())));
                out.push(Effect::Finished(done.outcome()));
                self.state = State::Done(done);
            }
        }
    }

    /// Applies a user command, or says why it does not apply now. An inviter
    /// takes only `Cancel`, until its final status is being written.
    pub fn command(&mut self, c: Command, now: u64, rng: &mut dyn Rng) -> Result<Vec<Effect>, Refusal> {
        let mut out = Vec::new();
        match (&c, &self.state) {
            (Command::Cancel, _) if self.hub().is_some() => {
                self.close_multi(FinalStatusKind::Revoked, now, rng, &mut out);
            }
            (Command::Cancel, State::Waiting(p)) => {
                let p = p.clone();
                self.finalize(p, FinalStatusKind::Revoked, None, now, rng, &mut out);
            }
            (Command::Cancel, State::Creating { .. } | State::Publishing(_)) => {
                // Not yet visible to anyone: drop what exists.
                self.locking = None;
                self.cleanup_unpublished(&mut out);
            }
            _ => return Err(Refusal::State(self.state_name())),
        }
        Ok(out)
    }

    /// The state's short name (for [`Refusal::State`]).
    fn state_name(&self) -> &'static str {
        match &self.state {
            State::Creating { .. } if self.locking.is_some() => "locking",
            State::Creating { .. } => "creating",
            State::Publishing(_) => "publishing",
            State::Waiting(_) => "waiting",
            State::Finalizing(..) => "finalizing",
            State::Cleaning(..) => "cleaning",
            State::Done(_) => "done",
        }
    }

    /// [`Event::InvitationPublished`] for this invitation.
    fn published_event(&self) -> Event {
        Event::InvitationPublished {
            expires_at: self.core.expires_at,
            kind: self.core.kind,
            locked: self.core.encryption_key_type != EncryptionKeyType::None,
        }
    }

    /// What an app lists about this flow.
    pub(crate) fn facts(&self) -> super::FlowFacts {
        let kind = match (self.core.kind, &self.delivery) {
            (_, Some(_)) => super::FlowKind::Request,
            (InvitationKind::DeviceLink, None) => super::FlowKind::DeviceLink,
            _ => super::FlowKind::Invitation,
        };
        let peer = match (&self.state, &self.delivery) {
            (_, Some(d)) => Some(d.to.identity),
            (State::Finalizing(_, f), None) => f
                .contact
                .as_ref()
                .map(|c| c.peer)
                .or_else(|| f.answered.as_ref().map(|a| a.snapshot.record().identity_key)),
            _ => None,
        };
        super::FlowFacts {
            kind,
            state: self.state_name(),
            expires_at: Some(self.core.expires_at),
            locked: self.core.encryption_key_type != EncryptionKeyType::None,
            peer: if self.multi.is_some() { None } else { peer },
            uses: self.multi.as_ref().map(|m| m.view(self.core.expires_at)),
        }
    }

    /// The shareable ticket, once published.
    pub fn ticket(&self) -> Option<Ticket> {
        match &self.state {
            State::Waiting(p) | State::Finalizing(p, _) => Some(p.ticket.clone()),
            _ => None,
        }
    }

    /// The local-table record of this invitation (`ContactInvitationRecord`),
    /// once published.
    /// It holds the inbox and writer secrets: the buffer is wiped on drop.
    pub(crate) fn invitation_record(&self) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        use crate::message::record_key_to_pb;
        use crate::wire::pb;
        let (State::Waiting(p) | State::Finalizing(p, _)) = &self.state else { return None };
        let p = self.hub().unwrap_or(p);
        let c = &self.core;
        Some(crate::wire::encode_secret(pb::ContactInvitationRecord {
            inbox: Some(record_key_to_pb(&p.inbox)),
            inbox_owner_secret: c.inbox_owner.expose().to_vec(),
            writer_secret: c.writer.expose().to_vec(),
            conversation: Some(record_key_to_pb(&p.conversation)),
            conversation_owner_secret: c.conversation_owner.expose().to_vec(),
            created_at: c.created_at,
            expires_at: c.expires_at,
            ticket: p.ticket.to_bytes(),
            message: c.message.clone(),
            kind: c.kind.to_pb(),
            encryption_key_type: c.encryption_key_type.to_pb(),
        }))
    }

    /// The inbox record (opaque key), once created.
    pub fn inbox(&self) -> Option<[u8; 32]> {
        match &self.state {
            State::Creating { inbox, .. } => inbox.as_ref().map(|k| *k.opaque()),
            State::Publishing(p) | State::Waiting(p) | State::Finalizing(p, _) | State::Cleaning(p, ..) => {
                Some(*p.bound_inbox())
            }
            State::Done(_) => None,
        }
    }

    /// The identity this flow shares with others (the driver persists and
    /// interns it).
    pub(crate) fn shared_identity_mut(&mut self) -> &mut SharedIdentity {
        &mut self.core.identity
    }

    /// When the invitation expires (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.core.expires_at
    }

    /// Whether the flow waits for its password lock (Argon2id, asked for
    /// with [`Effect::Compute`]); it is persisted once that is back.
    pub fn is_locking(&self) -> bool {
        self.locking.is_some()
    }

    /// Whether the flow has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// The invitation's age, which sets its poll interval ([`poll`]).
    fn age_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.core.created_at.saturating_mul(1000))
    }

    /// When to poll next: on the age-based schedule, but never later than
    /// [`Self::last_poll_at`], so a response written in the invitation's
    /// last hours is still read before it expires.
    fn next_poll_at(&self, now: u64, rng: &mut dyn Rng) -> u64 {
        now.saturating_add(poll::next_delay(self.age_ms(now), rng)).min(self.last_poll_at(now))
    }

    /// The floor interval before expiry (and at least one floor from now):
    /// near its end an invitation polls as often as a fresh one.
    fn last_poll_at(&self, now: u64) -> u64 {
        let expiry = self.core.expires_at.saturating_mul(1000);
        expiry.saturating_sub(poll::POLL_FLOOR_MS).max(now.saturating_add(poll::POLL_FLOOR_MS))
    }

    pub(crate) fn watched_records(&self) -> Vec<[u8; 32]> {
        if let Some(hub) = self.hub() {
            return vec![*hub.inbox.opaque()];
        }
        match &self.state {
            State::Waiting(p) => vec![*p.inbox.opaque()],
            _ => Vec::new(),
        }
    }

    /// Re-issues pending operations and timers after a restart.
    pub fn resume(&mut self, _now: u64, _rng: &mut dyn Rng) -> Vec<Effect> {
        let mut out = Vec::new();
        if let State::Done(f) = &self.state {
            out.push(Effect::Emit(Event::Finished(f.outcome())));
            out.push(Effect::Finished(f.outcome()));
            return out;
        }
        self.ops.resume(&mut out);
        // Re-evaluate states whose conditions may already hold.
        match &self.state {
            State::Creating { .. } => self.maybe_publish(_now, _rng, &mut out),
            State::Finalizing(..) => self.try_complete(_now, &mut out),
            State::Cleaning(..) => self.try_finish_cleaning(_now, _rng, &mut out),
            _ => {}
        }
        // Watches do not survive a restart: watch again, and tell the app the
        // ticket is (still) live.
        if let State::Waiting(p) = &self.state {
            // A watch still pending was re-issued above (or will be, by its
            // retry timer): one is enough.
            if !self.ops.has_pending(|x| *x == Purpose::Watch) {
                let key = p.inbox.clone();
                let subkeys = self.response_subkeys();
                self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys }, &mut out);
            }
            // The first poll after a restart: spread over the flow's current
            // interval, so flows resumed together do not read all at once.
            if self.ops.has_timer(Timer::Poll) {
                let at = _now + poll::resume_delay(self.age_ms(_now), _rng);
                self.ops.set_timer(Timer::Poll, at.min(self.last_poll_at(_now)), &mut out);
            }
            out.push(Effect::Emit(self.published_event()));
            self.start_delivery(&mut out);
        }
        // A crash while the stamp was minted: mint it again.
        if let (State::Waiting(p), Some(d)) = (&self.state, &self.delivery)
            && let Some(m) = &d.minting
        {
            // Read back from the store: verified again before it is used.
            match recipient_inbox(d, &m.record).map(|(_, info)| mint_job(d, &info, &m.sealed)) {
                Ok(job) => out.push(Effect::Compute(job)),
                Err(e) => {
                    let p = p.clone();
                    self.delivery_failed(p, e, _now, _rng, &mut out);
                }
            }
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
                if let Ok(e) = self.command(c, now, rng) {
                    out = e;
                }
            }
            Input::Computed(JobOutput::Stretched(r)) => self.on_stretched(r, &mut out),
            Input::Computed(JobOutput::Minted { bits, subject, nonce }) => {
                self.on_minted((bits, subject, nonce), now, rng, &mut out)
            }
            Input::Outgoing { .. } | Input::OutgoingSync(_) => {}
            // Only needed until the invitation is built (it then travels in it).
            Input::ReplyAddress(a) if matches!(self.state, State::Creating { .. }) => self.core.reply_to = a,
            Input::ReplyAddress(_) => {}
            Input::Nudge(n) => {
                // The responder's value, straight from it: as untrusted as a
                // watched one, and handled the same way.
                if self.multi.is_some() {
                    if self.hub().is_some_and(|h| &n.record == h.inbox.opaque())
                        && self.response_subkeys().contains(&n.subkey)
                    {
                        self.on_claim(&n.value, now, rng, &mut out);
                    }
                } else if let State::Waiting(p) = &self.state
                    && &n.record == p.inbox.opaque()
                    && n.subkey == WRITER_SUBKEY
                {
                    self.on_response_bytes(&n.value, now, rng, &mut out);
                }
            }
            Input::TimerFired(t) => {
                if !self.ops.fired(t) {
                    return out;
                }
                match t {
                    Timer::Retry(op) => self.ops.retry(op, &mut out),
                    Timer::Poll => {
                        if let State::Waiting(p) = &self.state {
                            let key = p.inbox.clone();
                            if !self.ops.has_pending(|x| matches!(x, Purpose::ReadResponse | Purpose::ReadSlot(_))) {
                                for subkey in self.response_subkeys() {
                                    let get = DhtOp::Get { key: key.clone(), subkey };
                                    self.ops.start(self.read_purpose(subkey), get, &mut out);
                                }
                            }
                            let at = self.next_poll_at(now, rng);
                            self.ops.set_timer(Timer::Poll, at, &mut out);
                        }
                    }
                    Timer::Expiry if self.multi.is_some() => {
                        self.close_multi(FinalStatusKind::Expired, now, rng, &mut out);
                    }
                    Timer::Expiry => {
                        if let State::Waiting(p) = &self.state {
                            let p = p.clone();
                            self.finalize(p, FinalStatusKind::Expired, None, now, rng, &mut out);
                        }
                    }
                }
            }
            Input::ValueChanged { record, subkeys, value } => {
                let watched = self.response_subkeys();
                if self.multi.is_some()
                    && !matches!(self.state, State::Waiting(_))
                    && self.hub().is_some_and(|h| &record == h.inbox.opaque())
                {
                    // A claim while another acceptor is answered: queued.
                    if let (Some(v), Some(first)) = (value, subkeys.first())
                        && watched.contains(first)
                    {
                        self.on_claim_at(subkeys.first().copied(), &v.data, now, rng, &mut out);
                    }
                    return out;
                }
                if let State::Waiting(p) = &self.state {
                    if &record != p.inbox.opaque() {
                        return out;
                    }
                    if let (Some(first), Some(v), true) = (subkeys.first(), &value, self.multi.is_some())
                        && watched.contains(first)
                    {
                        // A multi-use claim, with the slot it is in.
                        self.on_claim_at(Some(*first), &v.data, now, rng, &mut out);
                    } else if subkeys.first().is_some_and(|s| watched.contains(s)) && value.is_some() {
                        // The notification carries the value: no read needed.
                        self.on_response_value(value, now, rng, &mut out);
                    } else if subkeys.iter().any(|s| watched.contains(s)) && now >= self.rewatch.next_at {
                        let key = p.inbox.clone();
                        let gap = (self.rewatch.gap_ms.saturating_mul(2)).clamp(poll::POLL_FLOOR_MS, poll::POLL_CAP_MS);
                        self.rewatch = Rewatch { next_at: now.saturating_add(gap), gap_ms: gap };
                        // A change without its value is also how a watch
                        // that died is reported (Veilid): watch again, as
                        // the backed-off polls (`poll`) are only the last
                        // resort.
                        if !self.ops.has_pending(|x| *x == Purpose::Watch) {
                            let watch = DhtOp::Watch { key: key.clone(), subkeys: watched.clone() };
                            self.ops.start(Purpose::Watch, watch, &mut out);
                        }
                        if !self.ops.has_pending(|x| matches!(x, Purpose::ReadResponse | Purpose::ReadSlot(_))) {
                            for subkey in watched {
                                let get = DhtOp::Get { key: key.clone(), subkey };
                                self.ops.start(self.read_purpose(subkey), get, &mut out);
                            }
                        }
                    }
                }
            }
            Input::DhtDone { op, result } => match self.ops.complete(op, result, now, &mut out) {
                Completion::Done(purpose, output) => self.on_done(purpose, output, now, rng, &mut out),
                Completion::Retrying | Completion::Unknown => {}
                Completion::Failed(purpose, f, exhausted) => {
                    self.on_failed(purpose, dht_error(f, exhausted), now, rng, &mut out)
                }
            },
        }
        out
    }

    fn on_failed(&mut self, purpose: Purpose, err: Error, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        match purpose {
            // Reading a response, watching, freshness and cleanup failures are
            // not fatal. A reply that could not be written: the invitee's
            // next hello (it keeps waiting, then asks again) is answered.
            Purpose::ReadResponse | Purpose::Watch | Purpose::WriteReply | Purpose::ReadSlot(_) | Purpose::FreeSlot => {
            }
            // FRESH-3: a failed read is not fresh: read again, then fail closed.
            Purpose::FreshnessOpen | Purpose::FreshnessGet => {
                let unreachable = matches!(err, Error::Protocol(ProtocolError::RetriesExhausted { .. }));
                self.on_freshness(None, unreachable, now, rng, out)
            }
            Purpose::Tombstone | Purpose::Forget => self.try_finish_cleaning(now, rng, out),
            Purpose::DeliverGetIdentity | Purpose::DeliverSet => {
                let State::Waiting(p) = &self.state else { return };
                let p = p.clone();
                self.delivery_failed(p, err, now, rng, out);
            }
            Purpose::LinkGetIdentity | Purpose::LinkSetIdentity => {
                // The identity record could not be updated: tell the new
                // device the link is off rather than leave it waiting.
                let State::Finalizing(p, _) = &self.state else { return };
                let p = p.clone();
                self.pending_failure = Some(Failure::from(err.clone()));
                self.finalize(p, FinalStatusKind::Revoked, None, now, rng, out);
            }
            Purpose::OpenUse => self.abandon_use(now, rng, out),
            Purpose::CreateConversation if self.use_in_progress() => self.abandon_use(now, rng, out),
            Purpose::CreateConversation | Purpose::CreateInbox | Purpose::PublishRequest => {
                self.pending_failure = Some(Failure::from(err.clone()));
                self.fail(err, out);
            }
            Purpose::WriteFinal => {
                // The decision is made and persisted; the network is away.
                // Keep trying slowly while the invitee may still be waiting.
                let State::Finalizing(p, f) = &self.state else { return };
                let retryable = matches!(&err, Error::Protocol(ProtocolError::RetriesExhausted { .. }));
                let give_up = self.give_up_at();
                if self.use_in_progress() && !(retryable && now < give_up) {
                    // This acceptor's record cannot be written: its use is
                    // dropped, the invitation goes on (MU-6).
                    return self.abandon_use(now, rng, out);
                }
                if retryable && now < give_up {
                    let (key, data) = (p.inbox.clone(), f.final_value.clone());
                    let writer = self.final_writer();
                    let request = DhtOp::Set { key, subkey: OWNER_SUBKEY, data, writer };
                    self.ops.start_later(Purpose::WriteFinal, request, now + super::SLOW_RETRY_MS, out);
                    out.insert(0, Effect::Persist);
                } else {
                    let _ = rng;
                    self.fail(err, out);
                }
            }
        }
    }

    fn fail(&mut self, err: Error, out: &mut Vec<Effect>) {
        self.ops.clear(out);
        let f = FinishedWith::Failed(Failure::from(err.clone()));
        out.push(Effect::Persist);
        out.push(Effect::Emit(Event::Finished(Outcome::Failed(err.clone()))));
        out.push(Effect::Finished(Outcome::Failed(err)));
        self.state = State::Done(f);
    }

    fn cleanup_unpublished(&mut self, out: &mut Vec<Effect>) {
        let keys: Vec<RecordKey> = match &self.state {
            State::Creating { conversation, inbox } => conversation.iter().chain(inbox.iter()).cloned().collect(),
            State::Publishing(p) => vec![p.inbox.clone(), p.conversation.clone()],
            _ => Vec::new(),
        };
        self.ops.clear(out);
        for key in keys {
            self.ops.start(Purpose::Forget, DhtOp::Forget { key }, out);
        }
        let done = FinishedWith::Revoked;
        out.push(Effect::Emit(Event::Finished(done.outcome())));
        out.push(Effect::Finished(done.outcome()));
        self.state = State::Done(done);
        out.insert(0, Effect::Persist);
    }

    fn on_done(&mut self, purpose: Purpose, output: DhtOutput, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        match (purpose, output) {
            (Purpose::CreateConversation, DhtOutput::Created(k)) if self.use_in_progress() => {
                self.on_use_conversation(k, now, rng, out)
            }
            (Purpose::OpenUse, _) => self.on_use_opened(now, rng, out),
            (Purpose::CreateConversation, DhtOutput::Created(k)) => {
                if let State::Creating { conversation, .. } = &mut self.state {
                    *conversation = Some(k);
                }
                self.maybe_publish(now, rng, out);
            }
            (Purpose::CreateInbox, DhtOutput::Created(k)) => {
                if let State::Creating { inbox, .. } = &mut self.state {
                    *inbox = Some(k);
                }
                self.maybe_publish(now, rng, out);
            }
            (Purpose::PublishRequest, DhtOutput::Set(newer)) => {
                let State::Publishing(p) = &self.state else { return };
                if let Some(v) = newer
                    && v.data != p.request_value
                {
                    self.fail(DecodeError::Invalid("inbox already holds another request").into(), out);
                    return;
                }
                let mut p = p.clone();
                p.request_value = Vec::new();
                let key = p.inbox.clone();
                self.state = State::Waiting(p);
                self.core.expanded = None;
                out.push(Effect::Persist);
                let subkeys = self.response_subkeys();
                self.ops.start(Purpose::Watch, DhtOp::Watch { key: key.clone(), subkeys }, out);
                let at = self.next_poll_at(now, rng);
                self.ops.set_timer(Timer::Poll, at, out);
                self.ops.set_timer(Timer::Expiry, self.core.expires_at * 1000, out);
                out.push(Effect::Emit(self.published_event()));
                out.push(Effect::Persist);
                self.start_delivery(out);
            }
            (Purpose::DeliverGetIdentity, DhtOutput::Value(v)) => self.on_deliver_identity(v, now, rng, out),
            (Purpose::DeliverSet, DhtOutput::Set(Some(newer))) => {
                // Our copy of the slot was stale (another requester wrote
                // it since): the network kept theirs. Write again over it.
                let Some(d) = &mut self.delivery else { return };
                let Some(op) = d.write.clone() else { return };
                let ours = matches!(&op, DhtOp::Set { data, .. } if *data == newer.data);
                d.overwrites += 1;
                if !ours && d.overwrites < super::MAX_ATTEMPTS {
                    self.ops.start(Purpose::DeliverSet, op, out);
                    out.insert(0, Effect::Persist);
                    return;
                }
                if !ours {
                    let attempts = d.overwrites;
                    let State::Waiting(p) = &self.state else { return };
                    let p = p.clone();
                    let e = ProtocolError::RetriesExhausted { what: "write the request slot".into(), attempts };
                    return self.delivery_failed(p, e.into(), now, rng, out);
                }
                d.delivered = true;
                let to = d.to.identity;
                out.push(Effect::Persist);
                out.push(Effect::Emit(Event::RequestDelivered { to }));
            }
            (Purpose::DeliverSet, _) => {
                if let Some(d) = &mut self.delivery {
                    d.delivered = true;
                    let to = d.to.identity;
                    out.push(Effect::Persist);
                    out.push(Effect::Emit(Event::RequestDelivered { to }));
                }
            }
            (Purpose::Watch, _) => {}
            (Purpose::WriteReply, DhtOutput::Set(newer)) => self.on_reply_written(newer, out),
            (Purpose::ReadResponse, DhtOutput::Value(v)) => self.on_response_value(v, now, rng, out),
            (Purpose::ReadSlot(slot), DhtOutput::Value(Some(v))) => {
                self.on_claim_at(Some(slot), &v.data, now, rng, out)
            }
            (Purpose::WriteFinal, DhtOutput::Set(newer)) => {
                let writer = self.final_writer();
                let in_use = self.use_in_progress();
                let State::Finalizing(p, f) = &mut self.state else { return };
                match newer {
                    Some(v) if v.data != f.final_value => {
                        // Our local copy was stale; the network told us the newer
                        // value (our own request). Write again over it, at once a
                        // bounded number of times (a node may keep saying so),
                        // then on the slow schedule until the invitation's grace
                        // period ends (INT-TOMB-2).
                        f.rewrites += 1;
                        let key = p.inbox.clone();
                        let data = f.final_value.clone();
                        let request = DhtOp::Set { key, subkey: OWNER_SUBKEY, data, writer };
                        if f.rewrites > super::MAX_ATTEMPTS && in_use {
                            // An acceptor that keeps its own record's subkey
                            // ahead of us only loses its use (MU-6).
                            return self.abandon_use(now, rng, out);
                        }
                        if f.rewrites <= super::MAX_ATTEMPTS {
                            self.ops.start(Purpose::WriteFinal, request, out);
                        } else if now < self.core.expires_at * 1000 + FINAL_GRACE_MS {
                            self.ops.start_later(Purpose::WriteFinal, request, now + super::SLOW_RETRY_MS, out);
                        } else {
                            let what = "final status keeps being overwritten".to_owned();
                            let attempts = f.rewrites;
                            return self.fail(ProtocolError::RetriesExhausted { what, attempts }.into(), out);
                        }
                        out.insert(0, Effect::Persist);
                    }
                    _ => {
                        f.written = true;
                        out.push(Effect::Persist);
                        // Confirmed on the DHT: tell the responder directly.
                        if let Some(to) = f.peer_reply_to.clone() {
                            let nudge =
                                Nudge { record: *p.inbox.opaque(), subkey: OWNER_SUBKEY, value: f.final_value.clone() };
                            out.push(Effect::Nudge { to, nudge });
                        }
                        self.try_complete(now, out);
                    }
                }
            }
            (Purpose::FreshnessOpen, _) => {
                if let State::Finalizing(_, f) = &self.state
                    && let Some(a) = &f.answered
                {
                    let key = a.location.clone();
                    self.ops.start(Purpose::FreshnessGet, DhtOp::Get { key, subkey: 0 }, out);
                    out.insert(0, Effect::Persist);
                }
            }
            (Purpose::FreshnessGet, DhtOutput::Value(v)) => self.on_freshness(v.as_ref(), false, now, rng, out),
            (Purpose::LinkGetIdentity, DhtOutput::Value(v)) => self.on_link_identity(v, now, rng, out),
            (Purpose::LinkSetIdentity, DhtOutput::Set(newer)) => self.on_link_published(newer, now, rng, out),
            (Purpose::Tombstone, DhtOutput::Set(newer)) => {
                if let (Some(_), State::Cleaning(p, _, tries)) = (newer, &mut self.state)
                    && *tries < super::MAX_ATTEMPTS
                {
                    // Stale local copy: the retry writes over the newer value,
                    // a bounded number of times (a node that always claims a
                    // newer value cannot keep us writing). Then give up: the
                    // tombstone is a courtesy, the final status decided.
                    *tries += 1;
                    let device = self.core.identity.device_key();
                    let data = inbox::tombstone(device, p.bound_inbox(), &p.invitation_hash, secs(now));
                    let key = p.inbox.clone();
                    let writer = self.tombstone_writer();
                    if self.ops.has_pending(|x| *x == Purpose::Tombstone) {
                        return;
                    }
                    self.ops.start(Purpose::Tombstone, DhtOp::Set { key, subkey: WRITER_SUBKEY, data, writer }, out);
                    out.insert(0, Effect::Persist);
                    return;
                }
                self.try_finish_cleaning(now, rng, out);
            }
            (Purpose::Forget, _) => self.try_finish_cleaning(now, rng, out),
            _ => {}
        }
    }

    fn maybe_publish(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Creating { conversation, inbox } = &self.state else { return };
        let need_conv = self.core.kind == InvitationKind::Contact && self.multi.is_none();
        let (Some(inbox), true) = (inbox.clone(), !need_conv || conversation.is_some()) else { return };
        let conversation = conversation.clone().unwrap_or_else(|| inbox.without_secret());
        match self.build(inbox, conversation, now, rng) {
            Ok(p) => {
                self.core.reply_to = None;
                let (key, data) = (p.inbox.clone(), p.request_value.clone());
                self.state = State::Publishing(p);
                let writer = self.core.inbox_owner();
                self.ops.start(Purpose::PublishRequest, DhtOp::Set { key, subkey: OWNER_SUBKEY, data, writer }, out);
                out.insert(0, Effect::Persist);
            }
            Err(e) => self.fail(e, out),
        }
    }

    fn build(
        &self,
        inbox: RecordKey,
        conversation: RecordKey,
        _now: u64,
        rng: &mut dyn Rng,
    ) -> Result<Published, Error> {
        // The inbox's secret derives from the ticket's; the key the backend
        // returned is not trusted to carry it.
        let secret = self.core.invite_secret.inbox_secret();
        let opaque = *inbox.opaque();
        let inbox = RecordKey::new(opaque, Some(secret.clone()));
        let c = &self.core;
        let record_key = c.identity.record_key().cloned().ok_or(Error::ApiMisuse("identity not published"))?;
        let content = InvitationContent {
            kind: c.kind,
            inbox_key: opaque,
            writer_key: c.writer_public(),
            identity_key: c.identity.public_key(),
            device_key: c.identity.device_public(),
            identity_record: record_key,
            profile: c.profile()?.clone(),
            conversation: (c.kind == InvitationKind::Contact && c.multi_use.is_none()).then(|| conversation.clone()),
            created_at: c.created_at,
            expires_at: c.expires_at,
            message: c.message.clone(),
            encryption_key_type: c.encryption_key_type,
            reply_to: c.reply_to.clone(),
            multi_use: c.multi_use,
        };
        let signed = match content.sign(c.identity.device_key(), c.identity.signed()) {
            // A reply address is optional: a maximal profile and greeting
            // leave no room for it, so go without.
            Err(DecodeError::TooLarge { .. }) if content.reply_to.is_some() => {
                InvitationContent { reply_to: None, ..content }.sign(c.identity.device_key(), c.identity.signed())?
            }
            r => r?,
        };
        // INT-HASH-1: the invitation's name is over its canonical content.
        let invitation_hash = crate::message::invitation_hash_of_signed(&signed)?;
        let keys = InboxKeys::derive(&secret, &opaque);
        let mut r = RngAdapter(rng);
        let writer = c.writer();
        if c.pin.is_some() {
            // PIN-2: the ticket opens only the offer; the invitation travels
            // in PAKE replies, sealed under each attempt's key.
            let offer = inbox::seal_offer(&keys, &opaque, &writer, c.reply_to.as_deref(), c.expires_at, &mut r);
            let request_value = inbox::offer_entry(&offer);
            let ticket = Ticket { kind: c.kind, record: opaque, secret: TicketSecret::Pin(c.invite_secret.clone()) };
            let pin = PinState {
                offer,
                signed_invitation: signed,
                attempts: 0,
                seen: Vec::new(),
                sessions: Vec::new(),
                last_reply: Vec::new(),
                rewrites: 0,
                peer_reply_to: None,
            };
            return Ok(Published {
                inbox,
                conversation,
                ticket,
                invitation_hash,
                request_value,
                pin: Some(Box::new(pin)),
                bound: None,
            });
        }
        let request_value = inbox::seal_request(&keys, &opaque, &writer, &signed, c.encryption_key_type, &mut r);
        let ticket_secret = match &c.lock {
            None => TicketSecret::Plain(c.invite_secret.clone()),
            Some(l) => TicketSecret::Locked {
                masked: password::apply_mask(&c.invite_secret, &l.stretched, &l.salt, &opaque),
                params: LockParams { salt: l.salt, m_cost_log2: l.m_cost_log2, t_cost: l.t_cost, p_cost: l.p_cost },
            },
        };
        let ticket = Ticket { kind: c.kind, record: opaque, secret: ticket_secret };
        Ok(Published { inbox, conversation, ticket, invitation_hash, request_value, pin: None, bound: None })
    }

    /// A PAKE hello (PIN-4, PIN-6, PIN-8): a replay (a nonce already
    /// answered) is ignored; past the attempt limit the invitation is
    /// revoked; otherwise the attempt is counted and persisted before the
    /// reply is written, so a crash can neither reset the count nor answer
    /// one hello twice with different keys.
    fn on_hello(&mut self, sealed: &[u8], now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some((pin, max)) = self.core.pin.clone() else { return };
        let State::Waiting(p) = &mut self.state else { return };
        let Some(secret) = p.inbox.secret().cloned() else { return };
        let opaque = *p.inbox.opaque();
        let Ok(inbox::Hello { nonce, message: msg_a, reply_to }) =
            inbox::open_hello(&crate::crypto::pake::hello_key(&secret, &opaque), &opaque, sealed)
        else {
            return out.push(Effect::Emit(Event::ResponseIgnored { reason: crate::error::ErrorCode::Malformed }));
        };
        let Some(st) = p.pin.as_mut() else { return };
        if st.seen.contains(&nonce) {
            return;
        }
        if st.attempts >= max {
            // Every attempt allowed was answered and none made a response:
            // this one is one too many. Revoke (signed final status).
            let attempts = st.attempts;
            let p = p.clone();
            self.pending_failure =
                Some(Failure::from(Error::Protocol(ProtocolError::PinAttemptsExhausted { attempts })));
            out.push(Effect::Emit(Event::PinAttemptsExhausted { attempts }));
            return self.finalize(p, FinalStatusKind::Revoked, None, now, rng, out);
        }
        st.attempts += 1;
        st.seen.push(nonce);
        let Ok((msg_b, keys)) =
            crate::crypto::pake::inviter_answer(&pin.0, &opaque, &nonce, &msg_a, &mut RngAdapter(rng))
        else {
            // Not a valid SPAKE2 message: counted, not answered.
            out.push(Effect::Persist);
            return;
        };
        st.sessions.push(keys.session.clone());
        let reply = inbox::pake_reply(
            &st.offer,
            &nonce,
            &msg_b,
            &keys.confirm,
            &keys.invitation,
            &opaque,
            &st.signed_invitation,
            &mut RngAdapter(rng),
        );
        st.last_reply = reply.clone();
        st.peer_reply_to = reply_to;
        let key = p.inbox.clone();
        let writer = self.core.inbox_owner();
        out.push(Effect::Persist);
        self.ops.start(Purpose::WriteReply, DhtOp::Set { key, subkey: OWNER_SUBKEY, data: reply, writer }, out);
    }

    /// A reply write is confirmed: nudge the invitee with the latest reply.
    /// If the network holds another value (an older reply that landed after
    /// ours), the latest reply is written again, a bounded number of times.
    fn on_reply_written(&mut self, newer: Option<ValueData>, out: &mut Vec<Effect>) {
        let State::Waiting(p) = &mut self.state else { return };
        let Some(st) = p.pin.as_mut() else { return };
        let pending = self.ops.has_pending(|x| *x == Purpose::WriteReply);
        let stale = newer.as_ref().is_some_and(|v| v.data != st.last_reply);
        if !stale && !pending {
            if let Some(to) = st.peer_reply_to.clone() {
                let nudge = Nudge { record: *p.inbox.opaque(), subkey: OWNER_SUBKEY, value: st.last_reply.clone() };
                out.push(Effect::Nudge { to, nudge });
            }
            return;
        }
        if !stale || st.rewrites >= super::MAX_ATTEMPTS || pending {
            return;
        }
        st.rewrites += 1;
        let (key, data) = (p.inbox.clone(), st.last_reply.clone());
        let writer = self.core.inbox_owner();
        out.push(Effect::Persist);
        self.ops.start(Purpose::WriteReply, DhtOp::Set { key, subkey: OWNER_SUBKEY, data, writer }, out);
    }

    fn on_response_value(&mut self, v: Option<ValueData>, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        if let Some(v) = v {
            self.on_response_bytes(&v.data, now, rng, out);
        }
    }

    fn on_response_bytes(&mut self, data: &[u8], now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        if self.multi.is_some() {
            return self.on_claim(data, now, rng, out);
        }
        let State::Waiting(p) = &self.state else { return };
        if p.pin.is_some()
            && let Ok(InboxValue::PakeHello { sealed }) = inbox::decode_value(data)
        {
            return self.on_hello(&sealed, now, rng, out);
        }
        let p = p.clone();
        match self.check_response(&p, data, now) {
            Ok(None) => {}
            Ok(Some(resp)) if resp.content().accept && self.core.kind == InvitationKind::DeviceLink => {
                self.finalize_link(p, &resp, now, out);
            }
            Ok(Some(resp)) => {
                if resp.content().accept {
                    match self.pending_contact(&p, &resp, now) {
                        Ok(contact) => {
                            self.finalize(p, FinalStatusKind::Accepted, Some((resp, contact)), now, rng, out)
                        }
                        Err(e) => out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() })),
                    }
                } else {
                    self.finalize(p, FinalStatusKind::Rejected, Some((resp, Box::new(None))), now, rng, out);
                }
            }
            Err(e) => out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() })),
        }
    }

    fn check_response(&self, p: &Published, data: &[u8], now: u64) -> Result<Option<VerifiedResponse>, Error> {
        let sealed = match inbox::decode_value(data)? {
            InboxValue::Response { sealed } => sealed,
            // Unverified and harmless: a tombstone never changes a waiting invitation.
            InboxValue::Tombstone(_) => return Ok(None),
            _ => return Err(DecodeError::Invalid("response subkey holds something else").into()),
        };
        let unverified = match &p.pin {
            // PIN-5: a PIN invitation's response is sealed under the session
            // secret of an attempt we answered (the invitee's key
            // confirmation); nothing else opens it.
            Some(pin) => pin
                .sessions
                .iter()
                .rev()
                .find_map(|s| {
                    inbox::open_response(&InboxKeys::derive(s, p.inbox.opaque()), p.inbox.opaque(), &sealed).ok()
                })
                .ok_or(Error::Verify(crate::error::VerifyError::DecryptionFailed))?,
            None => {
                let secret = p.inbox.secret().ok_or(Error::ApiMisuse("inbox key lost its secret"))?;
                let keys = InboxKeys::derive(secret, p.inbox.opaque());
                inbox::open_response(&keys, p.inbox.opaque(), &sealed)?
            }
        };
        let identity_key = self.core.identity.public_key();
        let ctx = InvitationContext {
            inbox_key: p.bound_inbox(),
            hash: &p.invitation_hash,
            expires_at: self.core.expires_at,
            kind: self.core.kind,
            identity_key: &identity_key,
        };
        Ok(Some(unverified.verify(&ctx, secs(now))?))
    }

    fn pending_contact(&self, p: &Published, resp: &VerifiedResponse, now: u64) -> Result<Box<Option<Contact>>, Error> {
        let c = resp.content();
        let identity: &SignedIdentity = resp.identity().ok_or(Error::ApiMisuse("contact response without identity"))?;
        let remote_conv =
            c.conversation.clone().ok_or(DecodeError::MissingField { what: "accept", field: "conversation" })?;
        let profile = c
            .profile
            .clone()
            .or_else(|| identity.record().profile.clone())
            .ok_or(DecodeError::MissingField { what: "accept", field: "profile" })?;
        let key = conversation_key(
            &self.core.identity.dh_secret(),
            &identity.record().dh_key,
            [self.core.identity.public_key().as_bytes(), c.identity_key.as_bytes()],
            [p.conversation.opaque(), remote_conv.opaque()],
            p.bound_inbox(),
        )?;
        Ok(Box::new(Some(Contact::new(
            identity.clone(),
            c.identity_record.clone(),
            profile,
            p.conversation.clone(),
            self.conversation_owner(),
            remote_conv,
            *p.bound_inbox(),
            Role::Inviter,
            secs(now),
            key,
        ))))
    }

    fn finalize(
        &mut self,
        p: Published,
        status: FinalStatusKind,
        resp: Option<(VerifiedResponse, Box<Option<Contact>>)>,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        self.ops.cancel_timer(Timer::Poll, out);
        self.ops.cancel_timer(Timer::Expiry, out);
        let (response_hash, responder, contact, device, peer_reply_to) = match &resp {
            Some((r, c)) => (
                Some(*r.hash()),
                Some(r.content().identity_key),
                (**c).clone().map(Box::new),
                Some(r.content().device_key),
                r.content().reply_to.clone(),
            ),
            None => (None, None, None, None, None),
        };
        // FRESH-4/6: a response from an identity (accept or reject) is
        // answered only after its identity record is re-read; the final
        // status is built then. Device links (no record yet) and closings
        // without a response are written at once.
        let answered = resp.as_ref().and_then(|(r, _)| {
            r.identity().map(|id| {
                Box::new(Answered {
                    response_hash: *r.hash(),
                    snapshot: id.clone(),
                    location: r.content().identity_record.clone(),
                    reads: 0,
                })
            })
        });
        let final_value = if answered.is_some() {
            Vec::new()
        } else {
            match self.final_value(&p, status, response_hash, responder, Vec::new(), now, rng) {
                Ok(v) => v,
                Err(e) => return self.fail(e, out),
            }
        };
        let freshness = if answered.is_some() { Freshness::Pending } else { Freshness::NotNeeded };
        let key = p.inbox.clone();
        let fresh_key = answered.as_ref().map(|a| a.location.clone());
        let fin = Finalizing {
            status,
            final_value: final_value.clone(),
            written: false,
            contact,
            responder_device: device,
            freshness,
            link: None,
            peer_reply_to,
            answered,
            rewrites: 0,
        };
        self.state = State::Finalizing(p, Box::new(fin));
        let mut ops_out = Vec::new();
        match fresh_key {
            Some(k) => {
                self.ops.start(Purpose::FreshnessOpen, DhtOp::Open { key: k, writer: None }, &mut ops_out);
            }
            None => {
                let writer = self.final_writer();
                self.ops.start(
                    Purpose::WriteFinal,
                    DhtOp::Set { key, subkey: OWNER_SUBKEY, data: final_value, writer },
                    &mut ops_out,
                );
            }
        }
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    /// Keeps `value` as the final status and starts writing it over the
    /// inbox's owner subkey.
    fn start_final_write(&mut self, inbox: &RecordKey, value: Vec<u8>, out: &mut Vec<Effect>) {
        if let State::Finalizing(_, f) = &mut self.state {
            f.final_value = value.clone();
        }
        let writer = self.final_writer();
        let request = DhtOp::Set { key: inbox.clone(), subkey: OWNER_SUBKEY, data: value, writer };
        self.ops.start(Purpose::WriteFinal, request, out);
    }

    /// The sealed, signed final status for this invitation.
    #[allow(clippy::too_many_arguments)]
    fn final_value(
        &self,
        p: &Published,
        status: FinalStatusKind,
        response_hash: Option<[u8; 32]>,
        responder_identity: Option<PublicKey>,
        handover: Vec<u8>,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Result<Vec<u8>, Error> {
        let fs = FinalStatus {
            status,
            inbox_key: *p.bound_inbox(),
            invitation_hash: p.invitation_hash,
            response_hash,
            responder_identity,
            decided_at: secs(now),
            handover,
            // MU-3: an acceptor of a multi-use invitation learns our
            // conversation record for it here (the invitation names none).
            conversation: (p.bound.is_some() && status == FinalStatusKind::Accepted).then(|| p.conversation.clone()),
        };
        let signed = fs.sign(self.core.identity.device_key())?;
        let secret = p.inbox.secret().ok_or(Error::ApiMisuse("inbox key lost its secret"))?;
        let keys = InboxKeys::derive(secret, p.inbox.opaque());
        Ok(inbox::seal_final(&keys, p.inbox.opaque(), &signed, &mut RngAdapter(rng)))
    }

    /// One read of the responder's identity record (`None`: the read
    /// failed). FRESH-2: only a record signed by the responder's identity
    /// key, naming the location it was read from, at least as new as the
    /// snapshot in the response, counts. FRESH-3: anything else is read again
    /// after a delay, at most [`super::FRESHNESS_READS`] times, then fails
    /// closed. An unreachable network (`unreachable`: the read's quick
    /// retries were exhausted) is no evidence either way: the read is tried
    /// again every [`super::SLOW_RETRY_MS`], as the final status would be,
    /// until the invitee stops waiting, then fails closed. FRESH-4: only then
    /// is the final status written — `revoked` naming the response unless
    /// the device was confirmed current.
    fn on_freshness(
        &mut self,
        v: Option<&ValueData>,
        unreachable: bool,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let give_up = self.give_up_at();
        let State::Finalizing(p, f) = &mut self.state else { return };
        if !matches!(f.freshness, Freshness::Pending) {
            return;
        }
        let (Some(a), Some(device)) = (f.answered.as_mut(), f.responder_device) else { return };
        let verdict =
            if unreachable { None } else { Some(super::judge_freshness(v, &a.snapshot, &a.location, &device)) };
        let void = match verdict {
            None if now.saturating_add(super::SLOW_RETRY_MS) < give_up => {
                let read = DhtOp::Open { key: a.location.clone(), writer: None };
                self.ops.start_later(Purpose::FreshnessOpen, read, now + super::SLOW_RETRY_MS, out);
                out.insert(0, Effect::Persist);
                return;
            }
            None => Some(ProtocolError::FreshnessUnavailable),
            Some(super::FreshRead::Current) => None,
            Some(super::FreshRead::Revoked) => Some(ProtocolError::DeviceRevoked),
            Some(super::FreshRead::Changed) => Some(ProtocolError::IdentityChanged),
            Some(super::FreshRead::Unconfirmed) if a.reads + 1 < super::FRESHNESS_READS => {
                a.reads += 1;
                let read = DhtOp::Open { key: a.location.clone(), writer: None };
                let at = now + super::freshness_retry_ms(a.reads);
                self.ops.start_later(Purpose::FreshnessOpen, read, at, out);
                out.insert(0, Effect::Persist);
                return;
            }
            Some(super::FreshRead::Unconfirmed) => Some(ProtocolError::FreshnessUnavailable),
        };
        f.freshness = Freshness::Done;
        if let Some(reason) = void {
            f.contact = None;
            f.status = FinalStatusKind::Revoked;
            self.pending_failure = Some(Failure::from(Error::Protocol(reason)));
        }
        let (p, status) = (p.clone(), f.status);
        let (hash, responder) = (a.response_hash, a.snapshot.record().identity_key);
        let value = match self.final_value(&p, status, Some(hash), Some(responder), Vec::new(), now, rng) {
            Ok(v) => v,
            Err(e) => return self.fail(e, out),
        };
        let mut ops_out = Vec::new();
        self.start_final_write(&p.inbox, value, &mut ops_out);
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    fn try_complete(&mut self, now: u64, out: &mut Vec<Effect>) {
        let State::Finalizing(p, f) = &self.state else { return };
        if !f.written || matches!(f.freshness, Freshness::Pending) {
            return;
        }
        let p = p.clone();
        let closed_multi = match (&self.multi, p.bound) {
            (Some(m), None) => Some(m.closed_view(f.status, self.core.expires_at)),
            _ => None,
        };
        let finished = if let Some(v) = closed_multi {
            FinishedWith::MultiUseClosed(Box::new(v))
        } else {
            match (&f.status, &f.contact) {
                (FinalStatusKind::Accepted, Some(c)) => {
                    let peer = c.peer;
                    out.push(Effect::SaveContact(c.clone()));
                    out.push(Effect::Emit(Event::ContactEstablished { peer, name: c.profile.name().to_owned() }));
                    FinishedWith::Contact(peer)
                }
                (FinalStatusKind::Accepted, None) if f.link.is_some() => {
                    let device = f.link.as_ref().map_or(self.core.identity.device_public(), |l| l.device);
                    let identity = self.core.identity.public_key();
                    out.push(Effect::Emit(Event::DeviceLinked { identity, device }));
                    FinishedWith::DeviceLinked(device)
                }
                (FinalStatusKind::Rejected, _) => {
                    FinishedWith::Rejected(f.answered.as_ref().map(|a| a.snapshot.record().identity_key))
                }
                (FinalStatusKind::Expired, _) => FinishedWith::Expired,
                (FinalStatusKind::Revoked, _) if self.pending_failure.is_some() => FinishedWith::Failed(
                    self.pending_failure.clone().unwrap_or_else(|| Failure::from(Error::Store(String::new()))),
                ),
                _ => FinishedWith::Revoked,
            }
        };
        // The conversation record stays when it became part of a contact;
        // device links have none (their placeholder is the inbox itself).
        let keep_conversation = matches!(finished, FinishedWith::Contact(_))
            || self.core.kind != InvitationKind::Contact
            || p.conversation.opaque() == p.inbox.opaque();
        let data = self.tombstone_value(&p, now);
        self.state = State::Cleaning(p.clone(), finished, 0);
        let mut ops_out = Vec::new();
        let writer = self.tombstone_writer();
        self.ops.start(
            Purpose::Tombstone,
            DhtOp::Set { key: p.inbox.clone(), subkey: WRITER_SUBKEY, data, writer },
            &mut ops_out,
        );
        if !keep_conversation {
            self.ops.start(Purpose::Forget, DhtOp::Forget { key: p.conversation.clone() }, &mut ops_out);
        }
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    /// The tombstone over the response subkey, signed by our device for this
    /// inbox and invitation (INT-NUDGE-1).
    fn tombstone_value(&self, p: &Published, now: u64) -> Vec<u8> {
        inbox::tombstone(self.core.identity.device_key(), p.bound_inbox(), &p.invitation_hash, secs(now))
    }

    fn try_finish_cleaning(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let State::Cleaning(p, finished, _) = &self.state else { return };
        if self.ops.has_pending(|x| *x == Purpose::Tombstone) {
            return;
        }
        if !self.ops.has_pending(|x| *x == Purpose::Forget) {
            // Tombstone done (or given up): forget the inbox locally, then finish.
            let key = p.inbox.clone();
            let finished = finished.clone();
            if p.bound.is_some() {
                // One acceptor answered: back to the invitation (MU-5).
                let mut ops_out = Vec::new();
                self.ops.start(Purpose::Forget, DhtOp::Forget { key }, &mut ops_out);
                out.extend(ops_out);
                return self.use_done(finished, now, rng, out);
            }
            if !matches!(self.state, State::Done(_)) {
                let mut ops_out = Vec::new();
                self.ops.start(Purpose::Forget, DhtOp::Forget { key }, &mut ops_out);
                self.ops.clear(&mut Vec::new());
                // Forgetting is best effort and local: finish now.
                let outcome = finished.outcome();
                self.state = State::Done(finished);
                out.push(Effect::Persist);
                out.extend(ops_out);
                out.push(Effect::Emit(Event::Finished(outcome.clone())));
                out.push(Effect::Finished(outcome));
            }
        }
    }
}
