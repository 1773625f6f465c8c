//! What an app exchanges with flows: their ids, the parameters that start
//! them, the events they report, how they end and how they are listed.
//!
//! These are the types an app touches (the [`crate::prelude`] and
//! [`crate::driver`] re-export them). They sit below the machines: the
//! machines in [`crate::machine`] take these parameters and emit these
//! events, and nothing here depends on how a flow is driven.

use serde::{Deserialize, Serialize};

use crate::crypto::pow::DEFAULT_POW_BITS;
use crate::crypto::{Password, PasswordLimits, PasswordParams, Pin, PublicKey};
use crate::encoding::Ticket;
use crate::error::Error;
use crate::identity::Identity;
pub use crate::ids::{FlowId, RequestId};
use crate::message::{InvitationKind, Profile};

/// What a flow is for (see [`FlowView`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FlowKind {
    /// We sent a contact invitation (a ticket to show).
    Invitation,
    /// We received a contact invitation (a scanned ticket).
    Received,
    /// We show a device-link ticket (this device holds the identity key).
    DeviceLink,
    /// This new device joins an account with a device-link ticket.
    JoinAccount,
    /// We sent a request to a known address.
    Request,
    /// Our request inbox (requests to our address).
    RequestInbox,
}

/// A flow as an app lists it ([`crate::driver::Handle::flows`]): enough to
/// render "in progress" after a restart without keeping a table of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FlowView {
    /// The flow.
    pub id: FlowId,
    /// What it is for.
    pub kind: FlowKind,
    /// Where it stands (a short static name, as in [`Error::InvalidState`]).
    pub state: &'static str,
    /// When its invitation expires (unix seconds), once known.
    pub expires_at: Option<u64>,
    /// Whether its ticket is locked with a PIN or password.
    pub locked: bool,
    /// The peer's identity key, once known (the inviter of a received
    /// invitation once fetched, the responder once answered, a request's
    /// recipient).
    pub peer: Option<PublicKey>,
    /// A multi-use invitation's accounting (`None` for every other flow).
    pub uses: Option<UsesView>,
}

/// How many acceptors an invitation admits ([`SendParams::uses`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Uses {
    /// One contact, then the invitation is used up (the default).
    #[default]
    Once,
    /// Up to this many contacts (at least 2; `AtMost(1)` is [`Uses::Once`]).
    AtMost(u32),
    /// Any number of contacts until it expires or is revoked.
    Unlimited,
}

/// A multi-use invitation's accounting, as the inviter's app shows it: in
/// [`FlowView::uses`], in every [`Event::UsesChanged`], and in
/// [`Outcome::MultiUseClosed`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsesView {
    /// How many contacts it admits (`None`: no limit).
    pub limit: Option<u32>,
    /// Each acceptor that became a contact, in order.
    pub accepted: Vec<UseView>,
    /// Rejections received (each answered; none is a contact).
    pub rejected: u32,
    /// Acceptors told "no uses left" (every use was taken, or the
    /// invitation closed, before their accept was answered).
    pub turned_away: u32,
    /// When it expires (unix seconds).
    pub expires_at: u64,
    /// Why it takes no more acceptances, once it does not.
    pub closed: Option<UsesClosed>,
}

impl UsesView {
    /// Contacts made so far.
    #[must_use]
    pub fn used(&self) -> u32 {
        u32::try_from(self.accepted.len()).unwrap_or(u32::MAX)
    }
    /// Uses left (`None`: no limit). Zero once closed.
    #[must_use]
    pub fn remaining(&self) -> Option<u32> {
        if self.closed.is_some() {
            return Some(0);
        }
        self.limit.map(|l| l.saturating_sub(self.used()))
    }
    /// Seconds until it expires, at `now` (unix seconds).
    #[must_use]
    pub fn time_left(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// One acceptor of a multi-use invitation that became a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseView {
    /// The contact's identity key.
    pub peer: PublicKey,
    /// Its display name, as its response gave it.
    pub name: String,
    /// When the contact was made (unix seconds).
    pub at: u64,
}

/// Why a multi-use invitation takes no more acceptances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsesClosed {
    /// Every use was taken.
    UsedUp,
    /// The inviter revoked it.
    Revoked,
    /// It expired.
    Expired,
}

/// Progress and results for the app. Events never carry secrets (the ticket
/// is fetched with the driver's `ticket()`; contacts from the store).
/// Non-exhaustive: new flows add events.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The invitation is published; the ticket can be shown.
    InvitationPublished {
        /// When it expires (unix seconds).
        expires_at: u64,
        /// Contact or device link.
        kind: InvitationKind,
        /// Whether the ticket is locked with a PIN or password.
        locked: bool,
    },
    /// The ticket is locked: supply its PIN (`pin`: digits only, show a
    /// keypad) or password. Known from the ticket, before anything is
    /// fetched.
    PasswordRequired {
        /// A PIN rather than a password.
        pin: bool,
    },
    /// The password was wrong (the inbox did not open), or, for a PIN
    /// invitation, the inviter's device answered this attempt and the PIN
    /// did not match (PIN-5): ask again; each attempt counts against the
    /// inviter's limit.
    WrongPassword,
    /// PIN invitations (invitee): the PIN attempt was sent, and the
    /// inviter's device has not answered within
    /// [`crate::limits::PIN_REPLY_WAIT_MS`]; it is probably offline. The flow
    /// keeps waiting (watch and polls) until the invitation expires, and goes
    /// on by itself once it answers (PIN-7).
    WaitingForInviter,
    /// PIN invitations (inviter): the PIN was tried wrong as many times as
    /// [`SendParams::pin_attempts`] allows; the invitation is revoked (its
    /// final status says so) and the flow ends failed with
    /// [`crate::ProtocolError::PinAttemptsExhausted`] (PIN-6).
    PinAttemptsExhausted {
        /// Attempts answered.
        attempts: u32,
    },
    /// A verified invitation: show it and ask the user.
    InvitationReceived(InvitationView),
    /// The response was stored in the inbox.
    ResponseSent {
        /// Accept or reject.
        accepted: bool,
    },
    /// The inviter saw a response it could not verify and ignored it.
    ResponseIgnored {
        /// Why (the check that refused it).
        reason: crate::error::ErrorCode,
    },
    /// A device link is final: `device` is now a current device of `identity`
    /// (on the new device, its identity was saved).
    DeviceLinked {
        /// The account.
        identity: PublicKey,
        /// The new device.
        device: PublicKey,
    },
    /// A request inbox is open: share `address` (its URI) so others can send
    /// contact requests.
    RequestInboxOpen {
        /// The identity's address.
        address: crate::encoding::Address,
    },
    /// A verified contact request (stamp, seal, signature, key binding and
    /// expiry checked): accept, ignore or block it.
    RequestReceived(RequestView),
    /// A request from a peer we were also requesting was merged with ours:
    /// one contact will be made.
    RequestsMerged {
        /// The peer.
        peer: PublicKey,
    },
    /// The request list is full ([`crate::limits::MAX_KEPT_REQUESTS`] kept,
    /// none ignored): a newer request waits in its slot, unseen, and is read
    /// again on the next poll once there is room. Accept, ignore or block
    /// requests to make room. Emitted once each time the list overflows.
    RequestInboxFull {
        /// Requests kept.
        kept: usize,
    },
    /// Our request was written to the recipient's request inbox.
    RequestDelivered {
        /// The recipient.
        to: PublicKey,
    },
    /// A multi-use invitation's accounting changed (a contact made, a
    /// rejection, an acceptor turned away, closed): the new figures.
    UsesChanged(UsesView),
    /// A contact is final and saved.
    ContactEstablished {
        /// Peer identity.
        peer: PublicKey,
        /// Peer display name.
        name: String,
    },
    /// The flow ended.
    Finished(Outcome),
}

/// What an invitee sees before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationView {
    /// Contact or device link.
    pub kind: InvitationKind,
    /// Inviter identity.
    pub identity: PublicKey,
    /// Inviter profile.
    pub profile: Profile,
    /// Greeting (signed).
    pub message: String,
    /// Expiry (unix seconds).
    pub expires_at: u64,
}

/// How a flow ended. New outcomes may be added: match with a wildcard arm,
/// or use the methods ([`Outcome::is_contact`], [`Outcome::error`], …).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A contact was made with this peer.
    Contact(PublicKey),
    /// A device was linked (inviter: the new device key; invitee: our device key).
    DeviceLinked(PublicKey),
    /// The peer rejected (inviter side): `peer` is the identity that signed
    /// the reject (`None` for a device link's new device, which has none).
    RejectedByPeer {
        /// Who rejected.
        peer: Option<PublicKey>,
    },
    /// We rejected (invitee side).
    RejectedByUs,
    /// Revoked by the inviter / abandoned by us.
    Cancelled,
    /// Ended without a contact: the error says why.
    Failed(Error),
    /// A multi-use invitation closed (used up, revoked or expired): the
    /// contacts it made, and why it closed.
    MultiUseClosed(UsesView),
}

impl Outcome {
    /// A contact was made.
    #[must_use]
    pub fn is_contact(&self) -> bool {
        matches!(self, Self::Contact(_))
    }
    /// A device was linked.
    #[must_use]
    pub fn is_device_linked(&self) -> bool {
        matches!(self, Self::DeviceLinked(_))
    }
    /// The flow did what it was for (a contact made, a device linked, or a
    /// multi-use invitation that made at least one contact).
    #[must_use]
    pub fn is_success(&self) -> bool {
        self.is_contact()
            || self.is_device_linked()
            || matches!(self, Self::MultiUseClosed(v) if !v.accepted.is_empty())
    }
    /// One side rejected (the peer or us).
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        matches!(self, Self::RejectedByPeer { .. } | Self::RejectedByUs)
    }
    /// The new contact's identity key, if a contact was made.
    #[must_use]
    pub fn contact(&self) -> Option<&PublicKey> {
        match self {
            Self::Contact(p) => Some(p),
            _ => None,
        }
    }
    /// Why the flow failed, if it did (see [`Error::code`] for a stable code).
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        match self {
            Self::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// How a ticket is locked ([`SendParams::lock`]). Each choice gives one
/// ticket flag: [`Lock::None`] an unlocked ticket, [`Lock::Pin`] a ticket
/// that asks for a PIN (`Event::PasswordRequired { pin: true }`),
/// [`Lock::Password`] one that asks for a password (`pin: false`).
///
/// The two protect differently (see `docs/threat-model.md`):
/// - a **PIN** is checked online by the inviter's device with a PAKE
///   (SPAKE2, rules PIN-*): nothing stored or sent lets anyone test a PIN
///   offline, and the inviter revokes the invitation after
///   [`SendParams::pin_attempts`] wrong tries, so a guesser's chance is at
///   most `pin_attempts / 10^digits`. The inviter's device must be online
///   for the invitee to open the invitation. A PIN never falls back to the
///   offline path.
/// - a **password** masks the ticket's secret with Argon2id: it works with
///   the inviter offline, but whoever holds the ticket can test guesses
///   offline at one Argon2id each. Use a long passphrase.
#[derive(Clone, Debug, Default)]
pub enum Lock {
    /// Not locked: whoever holds the ticket can open the invitation.
    #[default]
    None,
    /// Locked with a PIN (digits only, checked by [`Pin::new`]).
    Pin(Pin),
    /// Locked with a password.
    Password(Password),
}

impl Lock {
    /// Whether the ticket is locked (a PIN or a password).
    #[must_use]
    pub fn is_locked(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Whether the lock is a PIN (checked online with a PAKE).
    #[must_use]
    pub fn is_pin(&self) -> bool {
        matches!(self, Self::Pin(_))
    }
}

/// What to send.
#[derive(Clone, Debug)]
pub struct SendParams {
    /// The inviter's identity (published).
    pub identity: Identity,
    /// Profile to show (defaults to the identity record's).
    pub profile: Option<Profile>,
    /// Greeting, covered by the signature.
    pub message: String,
    /// Validity in seconds (capped at 30 days).
    pub expires_in_secs: u64,
    /// How the ticket is locked: not at all (the default), with a PIN or
    /// with a password. The ticket says which, so the invitee's app shows a
    /// keypad or a text field.
    pub lock: Lock,
    /// Argon2id parameters when the ticket is locked with a password
    /// (unused for a PIN).
    pub password_params: PasswordParams,
    /// PIN invitations: how many PIN attempts the inviter's device answers
    /// (default [`crate::limits::DEFAULT_PIN_ATTEMPTS`], clamped to
    /// 1..=[`crate::limits::MAX_PIN_ATTEMPTS`]); one more attempt after
    /// that revokes the invitation (PIN-6).
    pub pin_attempts: u32,
    /// How many acceptors it admits: [`Uses::Once`] (the default), a limit,
    /// or [`Uses::Unlimited`]. Contact invitations only, never with a PIN.
    pub uses: Uses,
}

impl SendParams {
    /// Defaults: 7 days, no password, the identity's profile.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            profile: None,
            message: String::new(),
            expires_in_secs: crate::limits::DEFAULT_EXPIRY_SECS,
            lock: Lock::None,
            password_params: PasswordParams::DEFAULT,
            pin_attempts: crate::limits::DEFAULT_PIN_ATTEMPTS,
            uses: Uses::Once,
        }
    }
}

/// What to receive.
#[derive(Clone, Debug)]
pub struct ReceiveParams {
    /// The invitee's identity (published).
    pub identity: Identity,
    /// The ticket as scanned / pasted.
    pub ticket: Ticket,
    /// Profile to send back (defaults to the identity record's).
    pub profile: Option<Profile>,
    /// Caps on the ticket's Argon2id parameters.
    pub password_limits: PasswordLimits,
    /// If set, the invitation must come from this identity (it is refused
    /// otherwise), e.g. when the ticket arrived inside a contact request.
    pub expect_identity: Option<PublicKey>,
    /// Accept without asking once the invitation is verified (requests the
    /// user already accepted).
    pub(crate) auto_accept: bool,
}

impl ReceiveParams {
    /// Defaults.
    pub fn new(identity: Identity, ticket: Ticket) -> Self {
        Self {
            identity,
            ticket,
            profile: None,
            password_limits: PasswordLimits::default(),
            expect_identity: None,
            auto_accept: false,
        }
    }
}

/// What a new device needs to accept a device-link ticket.
#[derive(Clone, Debug)]
pub struct LinkParams {
    /// The device-link ticket shown by the old device.
    pub ticket: Ticket,
    /// A label for this device in the identity record ("Alice's laptop").
    pub device_label: String,
    /// Caps on the ticket's Argon2id parameters.
    pub password_limits: PasswordLimits,
}

impl LinkParams {
    /// Defaults.
    pub fn new(ticket: Ticket, device_label: impl Into<String>) -> Self {
        Self { ticket, device_label: device_label.into(), password_limits: PasswordLimits::default() }
    }
}

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
