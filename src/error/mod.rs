//! Error types. Every failure on untrusted input maps to one typed variant;
//! crypto failures stay deliberately coarse (they never say which byte failed).
//! [`DecodeError`], [`VerifyError`] and [`PasswordError`] are leaf errors
//! (defined in their own file, below every other layer); [`Error`](enum@Error) wraps
//! every kind of failure and sits above the types it carries.

use thiserror::Error;

mod leaf;

pub use leaf::{DecodeError, PasswordError, VerifyError};

/// The crate's top-level error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A signature, context, time or decryption check failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// Password / PIN problem.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A shareable encoding (ticket, armor, URI) is malformed.
    #[error(transparent)]
    Encoding(#[from] crate::encoding::EncodingError),
    /// The DHT failed.
    #[error("DHT {kind:?}: {message}")]
    Dht {
        /// Kind of failure.
        kind: crate::dht::DhtErrorKind,
        /// Backend message.
        message: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// A stored record cannot be used by this version (see
    /// [`UnreadableReason`]). A persisted flow whose record is
    /// of another format ends with it at start: made by an older version
    /// ([`UnreadableReason::MadeByOlderVersion`]: "this
    /// invitation was made by an older version; send a new one") or a newer
    /// one.
    #[error("stored record: {0}")]
    Unreadable(UnreadableReason),
    /// A protocol outcome that ends a flow (already used, revoked, expired…).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The caller used the API out of order.
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
    /// A command that does not apply to the flow in its current state (a
    /// second accept, cancel after accept, a password nobody asked for…):
    /// nothing was changed.
    #[error("flow {flow}: `{command}` does not apply while {state}")]
    InvalidState {
        /// The flow.
        flow: crate::ids::FlowId,
        /// Its state (a short static name).
        state: &'static str,
        /// The command (a short static name, see `Command::name`).
        command: &'static str,
    },
    /// No running flow has this id (never started, or already finished).
    #[error("no flow {flow} is running")]
    UnknownFlow {
        /// The id asked for.
        flow: crate::ids::FlowId,
    },
    /// The request inbox keeps no request with that id (answered, expired
    /// or never received).
    #[error("request inbox {flow} keeps no such request")]
    UnknownRequest {
        /// The request inbox.
        flow: crate::ids::FlowId,
    },
    /// A failure that ended a flow before a restart, whose details (a static
    /// context text, timestamps) are not kept in the store: its
    /// [`ErrorCode`] and its message are. Failures without such details come
    /// back as their own variant ([`Error::Protocol`], [`Error::Dht`],
    /// [`VerifyError::BadSignature`], …); [`Error::code`] is the same before
    /// and after a restart either way.
    #[error("{message}")]
    Restored {
        /// What kind of failure it was.
        code: ErrorCode,
        /// Its message as it was shown before the restart.
        message: String,
    },
}

/// A stable, serializable code for every kind of [`Error`](enum@Error): what a UI maps
/// to its text, the same before and after a flow is restored from the
/// store ([`Error::code`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed input ([`Error::Decode`]).
    Malformed,
    /// [`VerifyError::BadSignature`].
    BadSignature,
    /// [`VerifyError::WrongContext`].
    WrongContext,
    /// [`VerifyError::Expired`].
    Expired,
    /// [`VerifyError::BadTimestamps`].
    BadTimestamps,
    /// [`VerifyError::UntrustedDevice`].
    UntrustedDevice,
    /// [`VerifyError::DecryptionFailed`].
    DecryptionFailed,
    /// [`VerifyError::InsufficientWork`].
    InsufficientWork,
    /// [`VerifyError::AccountKeyMismatch`].
    AccountKeyMismatch,
    /// [`PasswordError::ExcessiveWork`].
    PasswordTooCostly,
    /// [`PasswordError::InvalidParams`].
    PasswordParamsInvalid,
    /// [`PasswordError::Empty`].
    PasswordEmpty,
    /// [`PasswordError::Required`].
    PasswordRequired,
    /// [`PasswordError::InvalidPin`].
    PinInvalid,
    /// A malformed ticket, link or armor ([`Error::Encoding`]).
    BadTicket,
    /// [`Error::Dht`], with its kind.
    Dht(crate::dht::DhtErrorKind),
    /// [`Error::Store`].
    Store,
    /// [`Error::Protocol`], with its reason.
    Protocol(ProtocolError),
    /// [`Error::ApiMisuse`].
    ApiMisuse,
    /// [`Error::InvalidState`].
    InvalidState,
    /// [`Error::UnknownFlow`].
    UnknownFlow,
    /// [`Error::UnknownRequest`].
    UnknownRequest,
    /// [`Error::Unreadable`] with
    /// [`UnreadableReason::MadeByOlderVersion`]: "this
    /// invitation was made by an older version; send a new one".
    MadeByOlderVersion,
    /// [`Error::Unreadable`] for any other reason (a record damaged, or made
    /// by a newer version).
    UnreadableRecord,
}

impl Error {
    /// This error's stable code (kept across restarts, serializable).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Decode(_) => ErrorCode::Malformed,
            Self::Verify(v) => match v {
                VerifyError::BadSignature => ErrorCode::BadSignature,
                VerifyError::WrongContext(_) => ErrorCode::WrongContext,
                VerifyError::Expired { .. } => ErrorCode::Expired,
                VerifyError::BadTimestamps(_) => ErrorCode::BadTimestamps,
                VerifyError::UntrustedDevice(_) => ErrorCode::UntrustedDevice,
                VerifyError::DecryptionFailed => ErrorCode::DecryptionFailed,
                VerifyError::InsufficientWork { .. } => ErrorCode::InsufficientWork,
                VerifyError::AccountKeyMismatch => ErrorCode::AccountKeyMismatch,
            },
            Self::Password(p) => match p {
                PasswordError::ExcessiveWork { .. } => ErrorCode::PasswordTooCostly,
                PasswordError::InvalidParams(_) => ErrorCode::PasswordParamsInvalid,
                PasswordError::Empty => ErrorCode::PasswordEmpty,
                PasswordError::Required => ErrorCode::PasswordRequired,
                PasswordError::InvalidPin => ErrorCode::PinInvalid,
            },
            Self::Encoding(_) => ErrorCode::BadTicket,
            Self::Dht { kind, .. } => ErrorCode::Dht(*kind),
            Self::Store(_) => ErrorCode::Store,
            Self::Protocol(p) => ErrorCode::Protocol(p.clone()),
            Self::ApiMisuse(_) => ErrorCode::ApiMisuse,
            Self::InvalidState { .. } => ErrorCode::InvalidState,
            Self::UnknownFlow { .. } => ErrorCode::UnknownFlow,
            Self::UnknownRequest { .. } => ErrorCode::UnknownRequest,
            Self::Unreadable(UnreadableReason::MadeByOlderVersion { .. }) => ErrorCode::MadeByOlderVersion,
            Self::Unreadable(_) => ErrorCode::UnreadableRecord,
            Self::Restored { code, .. } => code.clone(),
        }
    }
}

/// A failure as a flow persists it: its code and message (never secrets:
/// error messages never carry them), restored by [`StoredError::restore`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredError {
    code: ErrorCode,
    message: String,
}

impl From<&Error> for StoredError {
    fn from(e: &Error) -> Self {
        Self { code: e.code(), message: e.to_string() }
    }
}

impl From<Error> for StoredError {
    fn from(e: Error) -> Self {
        Self::from(&e)
    }
}

impl StoredError {
    /// The error again: its own variant when nothing it carries was lost,
    /// else [`Error::Restored`] with the same code and message.
    pub(crate) fn restore(&self) -> Error {
        let restored = || Error::Restored { code: self.code.clone(), message: self.message.clone() };
        match &self.code {
            ErrorCode::Protocol(p) => Error::Protocol(p.clone()),
            ErrorCode::Dht(kind) => {
                let prefix = format!("DHT {kind:?}: ");
                let message = self.message.strip_prefix(&prefix).unwrap_or(&self.message).to_owned();
                Error::Dht { kind: *kind, message }
            }
            ErrorCode::BadSignature => VerifyError::BadSignature.into(),
            ErrorCode::DecryptionFailed => VerifyError::DecryptionFailed.into(),
            ErrorCode::AccountKeyMismatch => VerifyError::AccountKeyMismatch.into(),
            ErrorCode::PasswordEmpty => PasswordError::Empty.into(),
            ErrorCode::PasswordRequired => PasswordError::Required.into(),
            ErrorCode::PinInvalid => PasswordError::InvalidPin.into(),
            ErrorCode::Store => Error::Store(self.message.strip_prefix("store: ").unwrap_or(&self.message).to_owned()),
            _ => restored(),
        }
    }
}

/// Protocol-level reasons a flow ends without a contact.
#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Someone else's accept was taken first (one-time invitation).
    #[error("this invitation has already been used")]
    AlreadyUsed,
    /// A multi-use invitation had no use left for us: every use was taken
    /// (or it was closed) before our accept was answered. Nothing is pending.
    #[error("this invitation has no uses left")]
    NoUsesLeft,
    /// The inviter revoked the invitation.
    #[error("the inviter revoked this invitation")]
    Revoked,
    /// The invitation expired.
    #[error("this invitation has expired")]
    Expired,
    /// The invitation was rejected.
    #[error("the invitation was rejected")]
    Rejected,
    /// The inbox holds something that is not an open invitation.
    #[error("the inbox is closed or erased")]
    InboxClosed,
    /// The inbox record has no value (never published, or wrong record).
    #[error("no invitation found at this address")]
    NotFound,
    /// The identity publishes no request inbox.
    #[error("this identity accepts no contact requests")]
    NoRequestInbox,
    /// The recipient asks for more proof of work than we agreed to spend.
    #[error("the recipient asks for a {required}-bit stamp, above our cap of {max} bits")]
    StampTooCostly {
        /// Asked for.
        required: u32,
        /// Our cap.
        max: u32,
    },
    /// A freshly fetched identity record revokes the peer's device.
    #[error("the peer's device was revoked in its identity record")]
    DeviceRevoked,
    /// The peer's identity record could not be confirmed: no read returned a
    /// record signed by the peer's identity key, naming the location it was
    /// read from and at least as new as the one the peer presented, within
    /// the bounded re-reads. The check fails closed: no contact is made.
    #[error("the peer's identity record could not be read to confirm its device is still current")]
    FreshnessUnavailable,
    /// The peer's identity changed after the invitation (or response) was
    /// made: its account secret was rotated or a device it listed was
    /// revoked (FRESH-7). Nothing was saved; ask for a new invitation.
    #[error("the peer's identity changed since this invitation was made (a device was revoked): ask for a new one")]
    IdentityChanged,
    /// The inviter closed the invitation naming our response because it
    /// could not confirm our device is current in our identity record (it is
    /// revoked there, or the inviter could not read the record).
    #[error("the inviter could not confirm this device is current in our identity record")]
    DeviceNotConfirmed,
    /// A device link would exceed the number of devices an identity record
    /// may list; nothing was changed.
    #[error("the identity already lists the most devices allowed")]
    TooManyDevices,
    /// The invitation (or response) is our own identity's: a device cannot
    /// make a contact with its own identity (scanning our own QR code, or
    /// another device of ours answering it).
    #[error("this is our own invitation: an identity cannot add itself as a contact")]
    OwnInvitation,
    /// A PIN invitation was answered with a wrong PIN as many times as its
    /// limit allows (PIN-6): the inviter revoked it. Ask for a new one.
    #[error("too many wrong PIN attempts ({attempts}): the invitation was revoked")]
    PinAttemptsExhausted {
        /// Attempts answered.
        attempts: u32,
    },
    /// A step failed more times than the retry budget allows.
    #[error("gave up after {attempts} attempts: {what}")]
    RetriesExhausted {
        /// What was being tried.
        what: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// Why a stored record could not be loaded. Reported (with the record's key)
/// by [`crate::driver::contacts`] and [`crate::driver::identities`], and as
/// [`crate::Error::Unreadable`] when a persisted flow of another format
/// cannot be resumed (a damaged flow of the current format ends with
/// [`crate::Error::Store`]). The
/// record itself is left in the store, except for a flow of an older format,
/// which the driver ends (see the [module docs](crate::store#migration)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnreadableReason {
    /// The bytes do not decode as a record: empty, cut short (a torn write),
    /// trailing bytes, or damaged.
    #[error("the record is damaged (it does not decode)")]
    Corrupt,
    /// It decodes, but a key or a signed record inside it is not valid (a
    /// signature that does not verify, a malformed key).
    #[error("the record holds an invalid key or signed record")]
    InvalidContent,
    /// Its parts are each valid but do not belong together (the checks made
    /// when a contact or identity is loaded, STORE-1 and STORE-2).
    #[error("the record is inconsistent: {0}")]
    Inconsistent(VerifyError),
    /// It is stored under a key other than its own (a contact not under its
    /// peer's identity key, an identity not under its identity key).
    #[error("the record is stored under another key than its own")]
    WrongKey,
    /// Written by an older version of this crate, and its content can no
    /// longer be used: the protocol messages in it were signed under an
    /// older protocol version (their signatures do not verify under this
    /// one), or its layout is older than any migration covers. A contact has
    /// to be made again, an invitation sent again.
    #[error("made by an older version (record format {format}); it has to be made again")]
    MadeByOlderVersion {
        /// The record's format byte.
        format: u8,
    },
    /// Written by a newer version of this crate (left for it to read).
    #[error("made by a newer version (record format {format})")]
    NewerFormat {
        /// The record's format byte.
        format: u8,
    },
}
