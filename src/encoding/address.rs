//! A known address: the identity key plus where its identity record lives.
//! Shared as the text form `address-1-...` (see [`Address`]'s `Display`),
//! alone, in `SCHEME://request/TEXT` or in an https link's fragment.
//! Requests go to the request inbox the identity record names, so the inbox
//! can be moved without changing the address.
//!
//! ```text
//! off len field
//! 0   1   version = 1
//! 1   1   flags: 0x01 the record's encryption secret follows; others reserved (0)
//! 2   32  identity (account) public key
//! 34  32  identity record key (opaque)
//! 66  32  record encryption secret (public like the record itself; flag 0x01 only)
//! ```

use core::fmt;

/// The address format version (its own, independent of the ticket's).
const VERSION: u8 = 1;
use super::text::{self, TextKind};
use super::{EncodingError, MAX_TEXT_LEN};
use crate::crypto::{PublicKey, SecretKey};
use crate::dht::RecordKey;

/// Binary length of an address without the record secret.
pub(crate) const BARE_LEN: usize = 66;
/// Binary length of an address with the record secret.
pub(crate) const FULL_LEN: usize = 98;
const HAS_SECRET: u8 = 0x01;

/// Where to send contact requests to an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The identity (account) key.
    pub identity: PublicKey,
    /// The identity record.
    pub record: RecordKey,
}

/// The stored layout (postcard) of an [`Address`], unchanged.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename = "Address")]
struct Repr {
    identity: PublicKey,
    record: RecordKey,
}

/// The text form in human-readable formats (JSON), the struct elsewhere.
impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.serialize_str(&self.to_string());
        }
        serde::Serialize::serialize(&Repr { identity: self.identity, record: self.record.clone() }, s)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
            return Address::from_text(&s).map_err(serde::de::Error::custom);
        }
        let r = <Repr as serde::Deserialize>::deserialize(d)?;
        Ok(Self { identity: r.identity, record: r.record })
    }
}

/// The canonical text form, `address-1-` and the base32 of the binary form
/// with a CRC-32 (written lowercase, read in any case).
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text::encode(TextKind::Address, VERSION, &self.to_bytes()))
    }
}

impl core::str::FromStr for Address {
    type Err = EncodingError;
    fn from_str(s: &str) -> Result<Self, EncodingError> {
        Self::from_text(s)
    }
}

impl Address {
    /// The binary form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FULL_LEN);
        v.push(VERSION);
        v.push(if self.record.secret().is_some() { HAS_SECRET } else { 0 });
        v.extend_from_slice(self.identity.as_bytes());
        v.extend_from_slice(self.record.opaque());
        if let Some(s) = self.record.secret() {
            v.extend_from_slice(s.expose());
        }
        v
    }

    /// Parses the binary form (strict).
    pub fn from_bytes(b: &[u8]) -> Result<Self, EncodingError> {
        let Some((&version, rest)) = b.split_first() else {
            return Err(EncodingError::Truncated { expected: BARE_LEN, got: 0 });
        };
        let supported = u32::from(VERSION);
        match u32::from(version) {
            v if v > supported => return Err(EncodingError::VersionTooNew { found: v, supported }),
            v if v < supported => return Err(EncodingError::VersionTooOld { found: v, supported }),
            _ => {}
        }
        let Some((&flags, body)) = rest.split_first() else {
            return Err(EncodingError::Truncated { expected: BARE_LEN, got: b.len() });
        };
        if flags & !HAS_SECRET != 0 {
            return Err(EncodingError::ReservedFlags(flags & !HAS_SECRET));
        }
        let expected = if flags & HAS_SECRET != 0 { FULL_LEN } else { BARE_LEN };
        if b.len() < expected {
            return Err(EncodingError::Truncated { expected, got: b.len() });
        }
        if b.len() > expected {
            return Err(EncodingError::TrailingGarbage(b.len() - expected));
        }
        let identity =
            PublicKey::from_bytes(&body[..32]).map_err(|_| EncodingError::BadEncoding { what: "identity key" })?;
        let mut opaque = [0u8; 32];
        opaque.copy_from_slice(&body[32..64]);
        let secret = if expected == FULL_LEN {
            Some(
                SecretKey::from_slice(&body[64..96])
                    .map_err(|_| EncodingError::BadEncoding { what: "record secret" })?,
            )
        } else {
            None
        };
        Ok(Self { identity, record: RecordKey::new(opaque, secret) })
    }

    /// Parses the canonical text form (strict, any letter case).
    pub fn from_text(s: &str) -> Result<Self, EncodingError> {
        if s.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(s.len()));
        }
        let bytes = text::decode(s, TextKind::Address, VERSION, &[BARE_LEN, FULL_LEN])?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::UriScheme;
    use rand_core::OsRng;

    #[test]
    fn round_trip_and_strictness() {
        let scheme = UriScheme::new("chat").unwrap();
        let identity = crate::crypto::SigningKey::generate(&mut OsRng).public();
        let bare = Address { identity, record: RecordKey::new([7; 32], None) };
        assert_eq!(Address::from_uri(&bare.to_uri(&scheme), &scheme).unwrap(), bare);
        let a = Address { identity, record: RecordKey::new([7; 32], Some(SecretKey::from_bytes(&mut [9; 32]))) };
        let uri = a.to_uri(&scheme);
        assert!(uri.starts_with("chat://request/address-1-"), "{uri}");
        assert_eq!(Address::from_uri(&uri, &scheme).unwrap(), a);
        assert_eq!(Address::from_uri(&uri.to_uppercase(), &scheme).unwrap(), a);
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        assert!(matches!(
            Address::from_uri(&uri, &UriScheme::new("other").unwrap()),
            Err(EncodingError::WrongScheme { .. })
        ));
        assert_eq!(Address::from_uri(&format!("{uri}x"), &scheme), Err(EncodingError::TrailingGarbage(1)));
        assert_eq!(
            Address::from_uri(&uri.replace("-1-", "-2-"), &scheme).unwrap_err(),
            EncodingError::VersionTooNew { found: 2, supported: 1 }
        );
        let mut b = a.to_bytes();
        b[1] = 0x03;
        assert_eq!(Address::from_bytes(&b), Err(EncodingError::ReservedFlags(0x02)));
        assert!(matches!(Address::from_bytes(&a.to_bytes()[..70]), Err(EncodingError::Truncated { .. })));
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        let stored = postcard::to_allocvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<Address>(&stored).unwrap(), a);
    }
}
