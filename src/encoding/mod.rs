//! Shareable encodings of an invitation ticket and of an address: one
//! canonical text form (`invite-2-…`, `address-1-…`: a kind prefix, a
//! version, base32 of the bytes with a CRC-32, any letter case) that the
//! URI (`SCHEME://invite/TEXT`), the https link (`https://HOST/PATH#TEXT`)
//! and the text armor all carry unchanged; the binary ticket (QR byte
//! mode); QR rendering; and one entry point for anything scanned or pasted,
//! [`parse_scanned`].
//!
//! Parsers are strict: every rule has its own [`EncodingError`] variant.

mod address;
mod armor;
mod blob;
mod find;
#[cfg(feature = "qr")]
mod qr;
mod text;
mod uri;

pub use address::Address;
pub use blob::{LOCKED_LEN, LockParams, PLAIN_LEN, Ticket, TicketSecret, VERSION};
pub use find::{Scanned, parse_scanned, parse_scanned_bytes};
pub use uri::{HttpsBase, LinkConfig, UriScheme};

pub use crate::wire::InvitationKind;

/// Largest text any parser here will look at.
pub const MAX_TEXT_LEN: usize = 64 * 1024;

/// Longest piece of input an error message may quote.
pub const MAX_ERROR_TOKEN: usize = 16;

/// What an error may say about a piece of untrusted input (rule
/// EDGE-SECRET-2): the piece itself only if it is short (at most
/// [`MAX_ERROR_TOKEN`] characters of ASCII letters, digits, `.` and `-`:
/// command names, numbers, crypto kinds), else only its length. A
/// mistyped link that shifts its segments must not copy a 43-character
/// secret into a message that ends up in a log.
pub(crate) fn token(s: &str) -> String {
    let short = s.len() <= MAX_ERROR_TOKEN && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if short { s.to_owned() } else { format!("<{} characters>", s.chars().count()) }
}

/// What a UI tells the user about a refused scan or paste: the many
/// [`EncodingError`]s grouped by what the user can do about them (see
/// [`EncodingError::advice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanAdvice {
    /// "This invitation is damaged": a typo, a changed character, a bad
    /// checksum or a malformed field. Ask for it again.
    Damaged,
    /// "This invitation is incomplete": cut short (a partial copy or scan).
    Truncated,
    /// "Update the app": made by a newer version of the format.
    UpdateApp,
    /// "This invitation is from an old version": ask for a new one.
    Outdated,
    /// "This is a VeilidChat invitation": open it in VeilidChat.
    VeilidChat,
    /// A ticket where an address was expected, or the reverse.
    WrongKind,
    /// "This link is not from this app": an https link on another host,
    /// port or path, or with user info or a query.
    ForeignLink,
    /// Nothing of ours: no invitation in the text, another app's scheme,
    /// or far too much text.
    NotAnInvitation,
}

impl ScanAdvice {
    /// A short English sentence for the user (apps usually translate the
    /// variant instead).
    pub fn message(self) -> &'static str {
        match self {
            Self::Damaged => "This invitation is damaged. Ask for it again.",
            Self::Truncated => "This invitation is incomplete. Copy or scan all of it.",
            Self::UpdateApp => "This invitation needs a newer version of the app. Update the app.",
            Self::Outdated => "This invitation was made by an old version. Ask for a new one.",
            Self::VeilidChat => "This is a VeilidChat invitation. Open it in VeilidChat.",
            Self::WrongKind => "This is not the kind of invitation expected here.",
            Self::ForeignLink => "This link is not from this app.",
            Self::NotAnInvitation => "No invitation found.",
        }
    }
}

impl core::fmt::Display for ScanAdvice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Why a ticket encoding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodingError {
    /// Shorter than the format requires.
    #[error("ticket truncated: {got} bytes, need {expected}")]
    Truncated {
        /// Needed.
        expected: usize,
        /// Got.
        got: usize,
    },
    /// Bytes after the end of the ticket.
    #[error("{0} unexpected bytes after the ticket")]
    TrailingGarbage(usize),
    /// The CRC-32 does not match: corrupted or mistyped.
    #[error("checksum mismatch: the ticket is corrupted or mistyped")]
    ChecksumMismatch,
    /// Older format than this library reads.
    #[error("ticket format version {found} is too old (this library reads {supported})")]
    VersionTooOld {
        /// Found.
        found: u32,
        /// Supported.
        supported: u32,
    },
    /// Newer format than this library reads: upgrade needed.
    #[error("ticket format version {found} is too new (this library reads {supported}): upgrade needed")]
    VersionTooNew {
        /// Found.
        found: u32,
        /// Supported.
        supported: u32,
    },
    /// Unknown invitation kind.
    #[error("unknown invitation kind {0}")]
    UnknownKind(u8),
    /// Reserved flag bits are set.
    #[error("reserved flag bits set: {0:#04x}")]
    ReservedFlags(u8),
    /// Lock parameters that cannot be valid.
    #[error("invalid lock parameters: {0}")]
    InvalidLockParams(&'static str),
    /// Not valid base32/base64 (or non-canonical): damaged.
    #[error("bad encoding of {what}: the text is damaged")]
    BadEncoding {
        /// Which field.
        what: &'static str,
    },
    /// A version number that is not canonical decimal.
    #[error("bad number {0:?}")]
    BadNumber(String),
    /// The text is an address (`address-…`), a ticket was expected.
    #[error("this is an address, not an invitation ticket")]
    NotATicket,
    /// The text is a ticket (`invite-…`), an address was expected.
    #[error("this is an invitation ticket, not an address")]
    NotAnAddress,
    /// A VeilidChat invitation (its text armor or its QR code): open it in
    /// VeilidChat.
    #[error("this is a VeilidChat invitation: open it in VeilidChat")]
    VeilidChatInvitation,
    /// Armor: no BEGIN line.
    #[error("armor: missing BEGIN line")]
    ArmorMissingBegin,
    /// Armor: no END line.
    #[error("armor: missing END line")]
    ArmorMissingEnd,
    /// Armor: BEGIN and END labels differ, or the label is unknown.
    #[error("armor: label mismatch or unknown label")]
    ArmorLabelMismatch,
    /// Armor: the label does not match the kind inside.
    #[error("armor: label says one kind, the ticket another")]
    ArmorKindMismatch,
    /// Armor: a body line has the wrong length.
    #[error("armor: body line {line} has the wrong length")]
    ArmorLineLength {
        /// 1-based body line.
        line: usize,
    },
    /// Armor: carriage return found.
    #[error("armor: carriage return not allowed")]
    ArmorCarriageReturn,
    /// Armor: empty body.
    #[error("armor: empty body")]
    ArmorEmpty,
    /// URI: wrong scheme.
    #[error("wrong scheme: expected {expected:?}, found {found:?}")]
    WrongScheme {
        /// Expected.
        expected: String,
        /// Found.
        found: String,
    },
    /// URI scheme argument is not a valid scheme.
    #[error("invalid URI scheme {0:?}")]
    InvalidScheme(String),
    /// URI: the host is not `invite` (tickets) or `request` (addresses).
    #[error("not an invitation URI")]
    NotAnInvitation,
    /// https link: not https, no fragment, or a base with a fragment.
    #[error("not an https invitation link: {0}")]
    BadLink(&'static str),
    /// https link: the host is not one the app configured (or not a DNS name).
    #[error("https link: not a host this app accepts links from")]
    LinkHost,
    /// https link: user info (`user@`) is not allowed.
    #[error("https link: user info is not allowed")]
    LinkUserinfo,
    /// https link: a port the app did not configure.
    #[error("https link: port not allowed")]
    LinkPort,
    /// https link: a query (`?…`) is not allowed.
    #[error("https link: a query is not allowed")]
    LinkQuery,
    /// https link: not the configured path (or not a plain path).
    #[error("https link: not the app's invitation page")]
    LinkPath,
    /// Text longer than any ticket encoding.
    #[error("text of {0} bytes is too large to hold a ticket")]
    TooLarge(usize),
    /// No ticket or address found: nothing of ours in the text.
    #[error("no invitation found in the text")]
    NotFound,
    /// QR rendering failed.
    #[error("QR rendering failed: {0}")]
    Qr(String),
}

impl EncodingError {
    /// What to tell the user (the error grouped by what they can do).
    pub fn advice(&self) -> ScanAdvice {
        match self {
            Self::Truncated { .. } => ScanAdvice::Truncated,
            Self::VersionTooNew { .. } => ScanAdvice::UpdateApp,
            Self::VersionTooOld { .. } => ScanAdvice::Outdated,
            Self::VeilidChatInvitation => ScanAdvice::VeilidChat,
            Self::NotATicket | Self::NotAnAddress => ScanAdvice::WrongKind,
            Self::LinkHost | Self::LinkUserinfo | Self::LinkPort | Self::LinkQuery | Self::LinkPath => {
                ScanAdvice::ForeignLink
            }
            Self::NotFound
            | Self::NotAnInvitation
            | Self::WrongScheme { .. }
            | Self::InvalidScheme(_)
            | Self::TooLarge(_)
            | Self::Qr(_) => ScanAdvice::NotAnInvitation,
            Self::TrailingGarbage(_)
            | Self::ChecksumMismatch
            | Self::UnknownKind(_)
            | Self::ReservedFlags(_)
            | Self::InvalidLockParams(_)
            | Self::BadEncoding { .. }
            | Self::BadNumber(_)
            | Self::ArmorMissingBegin
            | Self::ArmorMissingEnd
            | Self::ArmorLabelMismatch
            | Self::ArmorKindMismatch
            | Self::ArmorLineLength { .. }
            | Self::ArmorCarriageReturn
            | Self::ArmorEmpty
            | Self::BadLink(_) => ScanAdvice::Damaged,
        }
    }
}
