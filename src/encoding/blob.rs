//! The binary ticket (what a QR code holds).
//!
//! ```text
//! off len field
//! 0   1   version = 1
//! 1   1   kind (low 4 bits: 1 contact, 2 device link) | 0x10 locked | 0xE0 reserved (0)
//! 2   32  inbox record key (opaque)
//! 34  32  invitation secret (masked when locked)
//! locked only:
//! 66  16  Argon2id salt
//! 82  1   m_cost_log2     83  1  t_cost     84  1  p_cost
//! end 4   CRC-32 (IEEE) of everything before, big-endian
//! ```

use core::fmt;

use super::text::{self, TextKind};
use super::{EncodingError, InvitationKind, MAX_TEXT_LEN};
use crate::crypto::SecretKey;

/// The ticket format version this library writes and reads.
pub const VERSION: u8 = 1;
/// Length of an unlocked ticket.
pub const PLAIN_LEN: usize = 70;
/// Length of a password-locked ticket.
pub const LOCKED_LEN: usize = 89;

const LOCKED: u8 = 0x10;
/// With [`LOCKED`]: the lock is a PIN (digits only), so an app can show a
/// keypad before anything is fetched.
const PIN: u8 = 0x20;
const RESERVED: u8 = 0xC0;

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
    /// The lock is a PIN (digits only), not a password: a hint for the UI
    /// (a keypad), carried in the ticket's flags. Not authenticated by the
    /// ticket (nothing in a ticket is; whoever can alter it can replace it);
    /// the invitation's own key type is checked once the inbox opens.
    pub pin: bool,
}

/// The ticket's secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TicketSecret {
    /// The invitation secret itself.
    Plain(SecretKey),
    /// The secret masked by a password; unmask with the password.
    Locked {
        /// Masked secret.
        masked: SecretKey,
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

/// The canonical text form, `invite-1-` and the base32 of the binary form
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
    /// Whether a password is needed.
    pub fn is_locked(&self) -> bool {
        matches!(self.secret, TicketSecret::Locked { .. })
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(LOCKED_LEN);
        v.push(VERSION);
        let lock = match &self.secret {
            TicketSecret::Plain(_) => 0,
            TicketSecret::Locked { params, .. } if params.pin => LOCKED | PIN,
            TicketSecret::Locked { .. } => LOCKED,
        };
        v.push(kind_code(self.kind) | lock);
        v.extend_from_slice(&self.record);
        match &self.secret {
            TicketSecret::Plain(s) => v.extend_from_slice(s.expose()),
            TicketSecret::Locked { masked, params } => {
                v.extend_from_slice(masked.expose());
                v.extend_from_slice(&params.salt);
                v.extend_from_slice(&[params.m_cost_log2, params.t_cost, params.p_cost]);
            }
        }
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&crc.to_be_bytes());
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
        if b.len() < 2 {
            return Err(EncodingError::Truncated { expected: PLAIN_LEN, got: b.len() });
        }
        match b[0] {
            VERSION => {}
            v if v < VERSION => {
                return Err(EncodingError::VersionTooOld { found: v.into(), supported: VERSION.into() });
            }
            v => return Err(EncodingError::VersionTooNew { found: v.into(), supported: VERSION.into() }),
        }
        let flags = b[1];
        if flags & RESERVED != 0 {
            return Err(EncodingError::ReservedFlags(flags & RESERVED));
        }
        let kind = match flags & 0x0f {
            1 => InvitationKind::Contact,
            2 => InvitationKind::DeviceLink,
            k => return Err(EncodingError::UnknownKind(k)),
        };
        let locked = flags & LOCKED != 0;
        if flags & PIN != 0 && !locked {
            return Err(EncodingError::ReservedFlags(PIN));
        }
        let expected = if locked { LOCKED_LEN } else { PLAIN_LEN };
        if b.len() < expected {
            return Err(EncodingError::Truncated { expected, got: b.len() });
        }
        if b.len() > expected {
            return Err(EncodingError::TrailingGarbage(b.len() - expected));
        }
        let (body, crc) = b.split_at(expected - 4);
        if crc32fast::hash(body).to_be_bytes() != crc {
            return Err(EncodingError::ChecksumMismatch);
        }
        let mut record = [0u8; 32];
        record.copy_from_slice(&body[2..34]);
        let secret = SecretKey::from_slice(&body[34..66]).map_err(|_| EncodingError::BadEncoding { what: "secret" })?;
        let secret = if locked {
            let mut salt = [0u8; 16];
            salt.copy_from_slice(&body[66..82]);
            let pin = flags & PIN != 0;
            let params = LockParams { salt, m_cost_log2: body[82], t_cost: body[83], p_cost: body[84], pin };
            check_lock(&params)?;
            TicketSecret::Locked { masked: secret, params }
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
