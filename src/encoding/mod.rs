//! Shareable encodings of an invitation ticket: the binary blob (QR byte
//! mode), text armor, a command-style URI (`SCHEME://invite/...`), an https
//! link that keeps every secret in the fragment, QR rendering, and a finder
//! for tickets pasted inside surrounding text.
//!
//! Parsers are strict: every rule has its own [`EncodingError`] variant.

mod address;
mod armor;
mod blob;
mod find;
#[cfg(feature = "qr")]
mod qr;
mod uri;

pub use address::Address;
pub use blob::{LOCKED_LEN, LockParams, PLAIN_LEN, Ticket, TicketSecret, VERSION};
pub use find::find_in_text;
pub use uri::UriScheme;

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
    /// Not valid base64url (or non-canonical).
    #[error("bad encoding of {what}")]
    BadEncoding {
        /// Which field.
        what: &'static str,
    },
    /// Decoded field has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    WrongLength {
        /// Field.
        what: &'static str,
        /// Required.
        expected: usize,
        /// Got.
        got: usize,
    },
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
    /// URI: host is not `invite`.
    #[error("not an invitation URI")]
    NotAnInvitation,
    /// URI: unknown command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// URI: a command has too few arguments.
    #[error("command {command:?} takes {expected} arguments, got {got}")]
    WrongArity {
        /// Command.
        command: String,
        /// Its arity.
        expected: usize,
        /// Present.
        got: usize,
    },
    /// URI: a command appears twice.
    #[error("command {0:?} given twice")]
    DuplicateCommand(String),
    /// URI: a required command is missing.
    #[error("missing command {0:?}")]
    MissingCommand(&'static str),
    /// URI: `v` must come first.
    #[error("the version command must come first")]
    VersionNotFirst,
    /// URI: empty path segment.
    #[error("empty path segment")]
    EmptySegment,
    /// URI: character not allowed (percent-escapes, query, fragment, space…).
    #[error("unexpected character {0:?}")]
    UnexpectedCharacter(char),
    /// URI: bad number.
    #[error("bad number {0:?}")]
    BadNumber(String),
    /// URI: DHT crypto kind not supported.
    #[error("unsupported DHT crypto kind {0:?}")]
    UnsupportedCryptoKind(String),
    /// URI: key derivation not supported.
    #[error("unsupported key derivation {0:?}")]
    UnsupportedKdf(String),
    /// https link: not https, or no fragment.
    #[error("not an https invitation link: {0}")]
    BadLink(&'static str),
    /// Text longer than any ticket encoding.
    #[error("text of {0} bytes is too large to hold a ticket")]
    TooLarge(usize),
    /// No ticket found in the text.
    #[error("no invitation found in the text")]
    NotFound,
    /// QR rendering failed.
    #[error("QR rendering failed: {0}")]
    Qr(String),
}
