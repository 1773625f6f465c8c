//! The leaf errors: what one decoding, check or key stretch can fail with.
//! They depend on nothing else in the crate, so the lowest layers (crypto,
//! wire, the DHT types) return them; [`super::Error`](enum@super::Error) wraps them.

use thiserror::Error;

/// Malformed bytes or text: truncated, oversized, wrong length, unknown enum
/// value, missing field, bad encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the cap for this message; nothing was decoded.
    #[error("{what} is {got} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// The cap.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// The protobuf encoding is invalid.
    #[error("{what}: invalid protobuf encoding")]
    Protobuf {
        /// What was being decoded.
        what: &'static str,
    },
    /// A required field is absent.
    #[error("{what}: required field `{field}` is missing")]
    MissingField {
        /// The message.
        what: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field has the wrong length.
    #[error("{what} must be {expected} bytes, got {got}")]
    WrongLength {
        /// The field.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A text field is longer than allowed.
    #[error("{what} is {got} bytes, longer than the {max}-byte limit")]
    FieldTooLong {
        /// The field.
        what: &'static str,
        /// The limit.
        max: usize,
        /// Actual length.
        got: usize,
    },
    /// A list has more entries than allowed.
    #[error("{what} has {got} entries, more than the limit of {max}")]
    TooManyEntries {
        /// The list.
        what: &'static str,
        /// The limit.
        max: usize,
        /// Actual count.
        got: usize,
    },
    /// An enum field holds a value this version does not know.
    #[error("{what}: unknown value {value}")]
    UnknownEnumValue {
        /// The field.
        what: &'static str,
        /// The value found.
        value: i32,
    },
    /// A key is not valid for its algorithm.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// The format version is older than this library can read.
    #[error("format version {found} is too old (this library reads {supported})")]
    VersionTooOld {
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The format version is newer than this library: upgrade needed.
    #[error("format version {found} is too new (this library reads {supported}); upgrade needed")]
    VersionTooNew {
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// A field value is out of its allowed range or inconsistent.
    #[error("{0}")]
    Invalid(&'static str),
}

/// A signature, context or time check failed. Deliberately coarse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The message verifies but was made for another context (another inbox,
    /// another invitation, another message kind, another signer).
    #[error("message is bound to a different context: {0}")]
    WrongContext(&'static str),
    /// The message has expired.
    #[error("expired at {expired_at} (now {now})")]
    Expired {
        /// Expiry (unix seconds).
        expired_at: u64,
        /// The time checked against (unix seconds).
        now: u64,
    },
    /// The message claims a creation time too far in the future, or an
    /// expiry further out than allowed.
    #[error("timestamps out of range: {0}")]
    BadTimestamps(&'static str),
    /// The signing device is not a current device of the identity.
    #[error("signer is not a current device of the identity ({0})")]
    UntrustedDevice(&'static str),
    /// Authenticated decryption failed (wrong key, wrong password, tampered).
    #[error("decryption failed (wrong key or password, or tampered data)")]
    DecryptionFailed,
    /// A request's proof-of-work stamp is missing or below the asked difficulty.
    #[error("proof-of-work stamp below the required {required} bits")]
    InsufficientWork {
        /// Bits the recipient asks for.
        required: u32,
    },
    /// An account secret (handed over at a device link, or opened from a
    /// rotation's sealed copy) does not derive the DH key the identity
    /// record publishes; or the record rotated the secret and holds no copy
    /// this device can open.
    #[error("the account secret does not match the identity record's DH key")]
    AccountKeyMismatch,
}

/// Password/PIN key-stretching errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Parameters read from the wire ask for more work than the cap allows;
    /// refused before any work was done.
    #[error("Argon2 parameters need {required}, above the cap of {max}")]
    ExcessiveWork {
        /// What was asked for.
        required: String,
        /// The cap.
        max: String,
    },
    /// Parameters are below the minimum or otherwise invalid.
    #[error("invalid Argon2 parameters: {0}")]
    InvalidParams(&'static str),
    /// The password is empty.
    #[error("empty password")]
    Empty,
    /// A PIN that is not 4 to 32 ASCII digits (see [`crate::crypto::Pin`]).
    #[error("a PIN is 4 to 32 digits")]
    InvalidPin,
    /// The invitation needs a password and none was supplied.
    #[error("this invitation is protected by a password or PIN")]
    Required,
}
