//! A known address: the identity key plus where its identity record lives,
//! shared as `SCHEME://request/v/1/id/ID/dht/vld0/KEY[/SECRET]` (fixed order,
//! strict, base64url without padding; SECRET is the record's encryption
//! secret, public like the record itself). Requests go to the request inbox the identity
//! record names, so the inbox can be moved without changing the address.

use data_encoding::BASE64URL_NOPAD;

use super::blob::VERSION;
use super::{EncodingError, MAX_TEXT_LEN, UriScheme};
use crate::crypto::{PublicKey, SecretKey};
use crate::dht::RecordKey;

/// Where to send contact requests to an identity.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The identity (account) key.
    pub identity: PublicKey,
    /// The identity record.
    pub record: RecordKey,
}

impl Address {
    /// `SCHEME://request/v/1/id/ID/dht/vld0/KEY`.
    pub fn to_uri(&self, scheme: &UriScheme) -> String {
        let e = |b: &[u8]| BASE64URL_NOPAD.encode(b);
        let secret = self.record.secret().map(|s| format!("/{}", e(s.expose()))).unwrap_or_default();
        format!(
            "{}://request/v/{VERSION}/id/{}/dht/vld0/{}{secret}",
            scheme.as_str(),
            e(self.identity.as_bytes()),
            e(self.record.opaque())
        )
    }

    /// Parses an address URI (strict: every segment in its place).
    pub fn from_uri(uri: &str, scheme: &UriScheme) -> Result<Self, EncodingError> {
        if uri.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(uri.len()));
        }
        let (found, rest) = uri
            .split_once("://")
            .ok_or_else(|| EncodingError::WrongScheme { expected: scheme.as_str().to_owned(), found: String::new() })?;
        if found != scheme.as_str() {
            return Err(EncodingError::WrongScheme {
                expected: scheme.as_str().to_owned(),
                found: super::token(found),
            });
        }
        if let Some(c) = rest.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c))) {
            return Err(EncodingError::UnexpectedCharacter(c));
        }
        let segs: Vec<&str> = rest.split('/').collect();
        if segs.iter().any(|s| s.is_empty()) {
            return Err(EncodingError::EmptySegment);
        }
        let (v, id, kind, key, secret) = match segs.as_slice() {
            ["request", "v", v, "id", id, "dht", kind, key] => (v, id, kind, key, None),
            ["request", "v", v, "id", id, "dht", kind, key, secret] => (v, id, kind, key, Some(secret)),
            _ => return Err(EncodingError::NotAnInvitation),
        };
        let version: u32 = v.parse().map_err(|_| EncodingError::BadNumber(super::token(v)))?;
        if version.to_string() != *v {
            return Err(EncodingError::BadNumber(super::token(v)));
        }
        let supported = u32::from(VERSION);
        if version < supported {
            return Err(EncodingError::VersionTooOld { found: version, supported });
        }
        if version > supported {
            return Err(EncodingError::VersionTooNew { found: version, supported });
        }
        if *kind != "vld0" {
            return Err(EncodingError::UnsupportedCryptoKind(super::token(kind)));
        }
        let b = |what: &'static str, s: &str| -> Result<[u8; 32], EncodingError> {
            let v = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| EncodingError::BadEncoding { what })?;
            <[u8; 32]>::try_from(v.as_slice()).map_err(|_| EncodingError::WrongLength {
                what,
                expected: 32,
                got: v.len(),
            })
        };
        let identity = PublicKey::from_bytes(&b("identity key", id)?)
            .map_err(|_| EncodingError::BadEncoding { what: "identity key" })?;
        let secret = match secret {
            Some(s) => Some(SecretKey::from_bytes(&mut b("record secret", s)?)),
            None => None,
        };
        Ok(Self { identity, record: RecordKey::new(b("identity record", key)?, secret) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn round_trip_and_strictness() {
        let scheme = UriScheme::new("chat").unwrap();
        let identity = crate::crypto::SigningKey::generate(&mut OsRng).public();
        let bare = Address { identity, record: RecordKey::new([7; 32], None) };
        assert_eq!(Address::from_uri(&bare.to_uri(&scheme), &scheme).unwrap(), bare);
        let a = Address { identity, record: RecordKey::new([7; 32], Some(SecretKey::from_bytes(&mut [9; 32]))) };
        let uri = a.to_uri(&scheme);
        assert!(uri.starts_with("chat://request/v/1/id/"), "{uri}");
        assert_eq!(Address::from_uri(&uri, &scheme).unwrap(), a);
        assert!(matches!(
            Address::from_uri(&uri, &UriScheme::new("other").unwrap()),
            Err(EncodingError::WrongScheme { .. })
        ));
        assert_eq!(Address::from_uri(&format!("{uri}/x"), &scheme), Err(EncodingError::NotAnInvitation));
        assert_eq!(Address::from_uri(&format!("{uri}/"), &scheme), Err(EncodingError::EmptySegment));
        assert_eq!(
            Address::from_uri(&uri.replace("/v/1/", "/v/2/"), &scheme).unwrap_err(),
            EncodingError::VersionTooNew { found: 2, supported: 1 }
        );
        assert_eq!(
            Address::from_uri(&uri.replace("/v/1/", "/v/01/"), &scheme),
            Err(EncodingError::BadNumber("01".into()))
        );
        assert!(matches!(
            Address::from_uri(&uri.replace("vld0", "vld1"), &scheme),
            Err(EncodingError::UnsupportedCryptoKind(_))
        ));
        assert_eq!(Address::from_uri(&format!("{uri}?q"), &scheme), Err(EncodingError::UnexpectedCharacter('?')));
        let short = uri.rsplit_once('/').unwrap().0.to_owned() + "/AAAA";
        assert!(matches!(Address::from_uri(&short, &scheme), Err(EncodingError::WrongLength { .. })));
    }
}
