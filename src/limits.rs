//! Every bound in one place. Inputs are checked against these before decoding
//! or any expensive work.

/// Profile `name` (bytes of UTF-8).
pub const MAX_NAME: usize = 64;
/// Profile `pronouns`.
pub const MAX_PRONOUNS: usize = 64;
/// Profile `about`.
pub const MAX_ABOUT: usize = 1024;
/// Profile `status`.
pub const MAX_STATUS: usize = 128;
/// Greeting message in an invitation.
pub const MAX_MESSAGE: usize = 512;
/// Device label.
pub const MAX_DEVICE_LABEL: usize = 64;
/// Devices listed in an identity record (current, deprecated and revoked).
pub const MAX_DEVICES: usize = 16;
/// Slots of a request inbox.
pub const MAX_REQUEST_SLOTS: usize = 32;
/// Claim slots of a multi-use invitation's inbox (writer subkeys `1..=`).
pub const USE_SLOTS: u16 = 8;
/// Most claim slots a multi-use invitation may name.
pub const MAX_USE_SLOTS: u16 = 32;
/// Encoded `SignedAddressRequest`.
pub const MAX_SIGNED_ADDRESS_REQUEST: usize = 8192;
/// Requests kept by a request inbox (pending, ignored, or parked by a merge).
pub const MAX_KEPT_REQUESTS: usize = 256;
/// Identities a request inbox remembers as blocked.
pub const MAX_BLOCKED: usize = 4096;
/// Encoded `SignedIdentityRecord`.
pub const MAX_SIGNED_IDENTITY: usize = 4096;
/// Encoded `SignedContactInvitation`.
pub const MAX_SIGNED_INVITATION: usize = 8192;
/// Encoded `SignedContactResponse` (before padding).
pub const MAX_SIGNED_RESPONSE: usize = 8192 - 4;
/// Every response is padded to exactly this many bytes before sealing, so an
/// accept and a reject look the same on the DHT.
pub const RESPONSE_PADDED_LEN: usize = 8192;
/// Encoded `SignedFinalStatus`.
pub const MAX_SIGNED_FINAL_STATUS: usize = 4096;
/// A reply address (Veilid: a private route blob) in an invitation or response.
pub const MAX_REPLY_ADDRESS: usize = 2048;
/// Veilid's per-subkey value limit (32 KiB); `MemoryDht` enforces it too
/// (also `crate::dht::MAX_VALUE_LEN`).
pub const MAX_VALUE_LEN: usize = 32 * 1024;
/// An encoded nudge: a subkey value plus its record and subkey.
pub const MAX_NUDGE: usize = MAX_VALUE_LEN + 64;
/// Any inbox subkey value (Veilid's limit).
pub const MAX_INBOX_VALUE: usize = MAX_VALUE_LEN;
/// Fewest digits in a PIN ([`crate::crypto::Pin`]).
pub const MIN_PIN_DIGITS: usize = 4;
/// Most digits in a PIN ([`crate::crypto::Pin`]).
pub const MAX_PIN_DIGITS: usize = 32;
/// Longest time an invitation may stay valid (seconds).
pub const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
/// Default validity of a new invitation.
pub const DEFAULT_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// Argon2 memory cap of the default (mobile) password policy, as a power of
/// two KiB: 2^16 KiB = 64 MiB. Apps set their own policy per flow
/// (`ReceiveParams::password_limits`, `LinkParams::password_limits`;
/// `PasswordLimits::DESKTOP` for desktop apps).
pub const MOBILE_MAX_ARGON2_M_COST_LOG2: u8 = 16;
/// [`MOBILE_MAX_ARGON2_M_COST_LOG2`] in KiB.
pub const MOBILE_MAX_ARGON2_MEMORY_KIB: u64 = 1 << MOBILE_MAX_ARGON2_M_COST_LOG2;
/// Clock skew tolerated on creation times from peers.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// PIN invitations: attempts the inviter's device answers by default
/// ([`crate::flow::SendParams::pin_attempts`], PIN-6).
pub const DEFAULT_PIN_ATTEMPTS: u32 = 3;

/// PIN invitations: the most attempts an inviter may allow.
pub const MAX_PIN_ATTEMPTS: u32 = 10;

/// PIN invitations: how long the invitee waits for the inviter's answer to
/// a hello before telling its app the inviter's device seems offline
/// ([`crate::flow::Event::WaitingForInviter`], PIN-7).
pub const PIN_REPLY_WAIT_MS: u64 = 10_000;
