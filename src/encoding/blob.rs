//! The binary ticket (what a QR code holds).
//!
//! ```text
//! off len field
//! 0   1   version (high 4 bits) = 2 | pin 0x08 | locked 0x04 | kind (low 2 bits: 1 contact, 2 device link)
//! 1   32  inbox record key (opaque)
//! 33  16  invitation secret (128 bits; masked when locked, in clear for a PIN)
//! locked only:
//! 49  16  Argon2id salt
//! 65  1   m_cost_log2     66  1  t_cost     67  1  p_cost
//! ```
//!
//! Flag `pin` (0x08) and `locked` (0x04) never go together: a PIN ticket
//! (0x08) carries the secret in clear and its PIN is checked online by the
//! inviter's device with SPAKE2 (rules PIN-*); a password ticket (0x04) is
//! masked with Argon2id. A reader that predates PIN tickets refuses 0x08
//! alone as a reserved flag, never misreads it.
//!
//! 49 bytes (QR version 3-L) unlocked or PIN, 68 (4-L) password. No checksum: a QR
//! code has its own error correction, and every text form adds a CRC-32
//! (see `text.rs`). The version is the first thing read, so a newer format
//! is refused as such before anything it may have changed.

use core::fmt;

use super::text::{self, TextKind};
use super::{EncodingError, InvitationKind, MAX_TEXT_LEN};
use crate::crypto::{INVITE_SECRET_LEN, InviteSecret};

/// The ticket format version this library writes and reads.
pub const VERSION: u8 = 2;
/// Length of an unlocked ticket.
pub const PLAIN_LEN: usize = 1 + 32 + INVITE_SECRET_LEN;
/// Length of a password-locked ticket.
pub const LOCKED_LEN: usize = PLAIN_LEN + 16 + 3;

const KIND: u8 = 0x03;
const LOCKED: u8 = 0x04;
/// Without [`LOCKED`]: the invitation is PIN-protected online (SPAKE2 with
/// the inviter's device), so an app shows a keypad.
const PIN: u8 = 0x08;

/// Argon2id salt and parameters of a locked ticket (public, not secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockParams {
    /// Salt.
    pub salt: [u8; 16],
    /// Memory: 2^m_cost_log2 KiB.
    pub m_cost_log2: u8,
    /// Passes.
    pub t_cost: u8,
    /// Lanes.
    pub p_cost: u8,
}

/// The ticket's secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TicketSecret {
    /// The invitation secret itself.
    Plain(InviteSecret),
    /// A PIN invitation: the invitation secret in clear (it opens the
    /// inbox's offer, never the invitation), the PIN checked online by the
    /// inviter's device with SPAKE2 (rules PIN-*).
    Pin(InviteSecret),
    /// The secret masked by a password; unmask with the password (offline
    /// Argon2id: for long passphrases, never for PINs).
    Locked {
        /// Masked secret.
        masked: InviteSecret,
        /// How the mask was derived.
        params: LockParams,
    },
}

/// An invitation ticket: which inbox record to read and the secret that
/// opens it. A bearer capability: whoever holds it can read and answer the
/// invitation (unless it is locked and they lack the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// What the invitation is for.
    pub kind: InvitationKind,
    /// The inbox record's opaque key.
    pub record: [u8; 32],
    /// The secret.
    pub secret: TicketSecret,
}

/// Serialized as its text form ([`fmt::Display`]) in human-readable
/// formats (JSON), as its binary form elsewhere (the same bytes postcard
/// wrote for the `Vec<u8>` this replaced), so holders keep the redacting
/// [`Ticket`] instead of raw bytes (rule EDGE-SECRET-1).
impl serde::Serialize for Ticket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            let text = zeroize::Zeroizing::new(self.to_string());
            return s.serialize_str(&text);
        }
        let bytes = zeroize::Zeroizing::new(self.to_bytes());
        s.serialize_bytes(&bytes)
    }
}

impl<'de> serde::Deserialize<'de> for Ticket {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ticket;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ticket (text or binary form)")
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Ticket, E> {
                Ticket::from_text(t).map_err(|_| E::custom("invalid ticket"))
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Ticket, E> {
                Ticket::from_bytes(b).map_err(|_| E::custom("invalid ticket"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Ticket, A::Error> {
                let mut b = zeroize::Zeroizing::new(Vec::with_capacity(LOCKED_LEN));
                while let Some(x) = seq.next_element::<u8>()? {
                    if b.len() >= LOCKED_LEN {
                        return Err(serde::de::Error::custom("ticket too long"));
                    }
                    b.push(x);
                }
                Ticket::from_bytes(&b).map_err(|_| serde::de::Error::custom("invalid ticket"))
            }
        }
        if d.is_human_readable() { d.deserialize_str(V) } else { d.deserialize_bytes(V) }
    }
}

/// The canonical text form, `invite-2-` and the base32 of the binary form
/// with a CRC-32 (written lowercase, read in any case). It is what the URI,
/// the https link and the armor carry. A bearer capability: show it only to
/// the invitee.
impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = zeroize::Zeroizing::new(self.to_bytes());
        let text = zeroize::Zeroizing::new(text::encode(TextKind::Ticket, VERSION, &bytes));
        f.write_str(&text)
    }
}

impl core::str::FromStr for Ticket {
    type Err = EncodingError;
    fn from_str(s: &str) -> Result<Self, EncodingError> {
        Self::from_text(s)
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("kind", &self.kind)
            .field("record", &data_encoding::HEXLOWER.encode(&self.record[..8]))
            .field("locked", &self.is_locked())
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn kind_code(k: InvitationKind) -> u8 {
    match k {
        InvitationKind::Contact => 1,
        InvitationKind::DeviceLink => 2,
    }
}

impl Ticket {
    /// Whether a password or PIN is needed.
    pub fn is_locked(&self) -> bool {
        !matches!(self.secret, TicketSecret::Plain(_))
    }

    /// Whether the lock is a PIN (checked online, a keypad in the UI).
    pub fn is_pin(&self) -> bool {
        matches!(self.secret, TicketSecret::Pin(_))
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(LOCKED_LEN);
        let lock = match &self.secret {
            TicketSecret::Plain(_) => 0,
            TicketSecret::Pin(_) => PIN,
            TicketSecret::Locked { .. } => LOCKED,
        };
        v.push((VERSION << 4) | lock | kind_code(self.kind));
        v.extend_from_slice(&self.record);
        match &self.secret {
            TicketSecret::Plain(s) | TicketSecret::Pin(s) => v.extend_from_slice(s.expose()),
            TicketSecret::Locked { masked, params } => {
                v.extend_from_slice(masked.expose());
                v.extend_from_slice(&params.salt);
                v.extend_from_slice(&[params.m_cost_log2, params.t_cost, params.p_cost]);
            }
        }
        v
    }

    /// Parses the canonical text form (strict, any letter case; see
    /// [`fmt::Display`]).
    pub fn from_text(s: &str) -> Result<Self, EncodingError> {
        if s.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(s.len()));
        }
        let bytes = text::decode(s, TextKind::Ticket, VERSION, &[PLAIN_LEN, LOCKED_LEN])?;
        Self::from_bytes(&bytes)
    }

    /// Parses the binary form (strict).
    pub fn from_bytes(b: &[u8]) -> Result<Self, EncodingError> {
        let Some(&first) = b.first() else {
            return Err(EncodingError::Truncated { expected: PLAIN_LEN, got: 0 });
        };
        // The version first: a newer format may have changed everything else.
        match first >> 4 {
            VERSION => {}
            v if v < VERSION => {
                return Err(EncodingError::VersionTooOld { found: v.into(), supported: VERSION.into() });
            }
            v => return Err(EncodingError::VersionTooNew { found: v.into(), supported: VERSION.into() }),
        }
        let kind = match first & KIND {
            1 => InvitationKind::Contact,
            2 => InvitationKind::DeviceLink,
            k => return Err(EncodingError::UnknownKind(k)),
        };
        let locked = first & LOCKED != 0;
        let pin = first & PIN != 0;
        // A PIN is never a password lock (PIN-1): no offline path for it.
        if pin && locked {
            return Err(EncodingError::ReservedFlags(PIN | LOCKED));
        }
        let expected = if locked { LOCKED_LEN } else { PLAIN_LEN };
        if b.len() < expected {
            return Err(EncodingError::Truncated { expected, got: b.len() });
        }
        if b.len() > expected {
            return Err(EncodingError::TrailingGarbage(b.len() - expected));
        }
        let mut record = [0u8; 32];
        record.copy_from_slice(&b[1..33]);
        let secret =
            InviteSecret::from_slice(&b[33..PLAIN_LEN]).map_err(|_| EncodingError::BadEncoding { what: "secret" })?;
        let secret = if locked {
            let mut salt = [0u8; 16];
            salt.copy_from_slice(&b[PLAIN_LEN..PLAIN_LEN + 16]);
            let [m_cost_log2, t_cost, p_cost] = [b[PLAIN_LEN + 16], b[PLAIN_LEN + 17], b[PLAIN_LEN + 18]];
            let params = LockParams { salt, m_cost_log2, t_cost, p_cost };
            check_lock(&params)?;
            TicketSecret::Locked { masked: secret, params }
        } else if pin {
            TicketSecret::Pin(secret)
        } else {
            TicketSecret::Plain(secret)
        };
        Ok(Self { kind, record, secret })
    }
}

pub(super) fn check_lock(p: &LockParams) -> Result<(), EncodingError> {
    if p.t_cost == 0 || p.p_cost == 0 {
        return Err(EncodingError::InvalidLockParams("t_cost and p_cost must be at least 1"));
    }
    if p.m_cost_log2 > 63 {
        return Err(EncodingError::InvalidLockParams("memory exponent out of range"));
    }
    Ok(())
}
