//! Key types. Every secret zeroizes on drop, prints redacted, has no `Display`,
//! compares in constant time and is never a public field.

use core::fmt;

use ed25519_dalek::Signer as _;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::DecodeError;

/// Length of every key, secret and hash in this crate.
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 public key (identity, device, record owner or record writer).
///
/// Always a valid curve point: constructing one from bytes checks the encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Parses a public key, rejecting encodings that are not a valid point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
            what: "public key",
            expected: KEY_LEN,
            got: bytes.len(),
        })?;
        let valid = || ed25519_dalek::VerifyingKey::from_bytes(&arr).is_ok();
        #[cfg(fuzzing)]
        let valid = || super::fuzz_memo::memo("point", &[&arr], valid);
        if !valid() {
            return Err(DecodeError::InvalidKey("public key is not a valid Ed25519 point"));
        }
        Ok(Self(arr))
    }

    /// The 32 encoded bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Verifies an Ed25519 signature over `msg` (strict verification: no malleable
    /// signatures, no small-order keys).
    pub(crate) fn verify_raw(&self, msg: &[u8], sig: &Signature) -> bool {
        #[cfg(fuzzing)]
        return super::fuzz_memo::memo("verify", &[&self.0, msg, &sig.0], || self.verify_now(msg, sig));
        #[cfg(not(fuzzing))]
        self.verify_now(msg, sig)
    }

    fn verify_now(&self, msg: &[u8], sig: &Signature) -> bool {
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        // Strict verification rejects small-order keys and malleable
        // signatures; it accepts a subset of what plain verify accepts.
        vk.verify_strict(msg, &sig).is_ok()
    }

    /// Short form for logs: the first 8 bytes in lowercase hex (16
    /// characters, a prefix of the [`Display`](fmt::Display) form). Not
    /// unique: never parse it or use it as a key.
    pub fn fmt_short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0[..8])
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fmt_short())
    }
}

/// The full key in lowercase hex (64 characters); [`FromStr`](core::str::FromStr)
/// reads it back.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Parses the [`Display`](fmt::Display) form: exactly 64 lowercase hex
/// characters encoding a valid Ed25519 point.
impl core::str::FromStr for PublicKey {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        Self::from_id_bytes(parse_hex::<KEY_LEN>(s, "public key")?)
    }
}

impl PublicKey {
    fn from_id_bytes(b: [u8; KEY_LEN]) -> Result<Self, ParseIdError> {
        Self::from_bytes(&b).map_err(|_| ParseIdError::InvalidKey { what: "public key" })
    }
}

/// Human-readable formats (JSON, TOML…): the [`Display`](fmt::Display)
/// string. Others (postcard, the store's format): a 32-byte byte string.
impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { s.serialize_bytes(&self.0) }
    }
}

/// Reads what [`Serialize`] writes; a human-readable format may also hold the
/// key as an array of 32 numbers (how earlier releases wrote it).
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let b = d.deserialize_any(IdVisitor::<KEY_LEN>("public key"))?;
            return Self::from_id_bytes(b).map_err(serde::de::Error::custom);
        }
        let v: Vec<u8> = serde_bytes_vec(d)?;
        Self::from_bytes(&v).map_err(serde::de::Error::custom)
    }
}

/// Why the text form of an id ([`PublicKey`], [`crate::flow::FlowId`],
/// [`crate::flow::RequestId`]) did not parse. It names the kind of id and
/// a length or position, never the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// Not the expected number of characters.
    #[error("{what}: expected {expected} lowercase hex characters, got {got} bytes of text")]
    Length {
        /// The kind of id.
        what: &'static str,
        /// Characters its text form has.
        expected: usize,
        /// Bytes the input had.
        got: usize,
    },
    /// A character other than `0-9` and `a-f`.
    #[error("{what}: byte {position} is not a lowercase hex digit")]
    Character {
        /// The kind of id.
        what: &'static str,
        /// Offset of the first bad byte.
        position: usize,
    },
    /// Well-formed text, but not a valid key (not an Ed25519 point).
    #[error("{what}: not a valid key")]
    InvalidKey {
        /// The kind of id.
        what: &'static str,
    },
}

/// Writes bytes in lowercase hex.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str(&data_encoding::HEXLOWER.encode(bytes))
}

/// Parses exactly `2 * N` lowercase hex characters (the text form of every
/// id in this crate). The length is checked before anything else.
pub(crate) fn parse_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], ParseIdError> {
    if s.len() != 2 * N {
        return Err(ParseIdError::Length { what, expected: 2 * N, got: s.len() });
    }
    let digit = |i: usize| match s.as_bytes()[i] {
        c @ b'0'..=b'9' => Ok(c - b'0'),
        c @ b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(ParseIdError::Character { what, position: i }),
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(2 * i)? << 4) | digit(2 * i + 1)?;
    }
    Ok(out)
}

/// Serializes a fixed-size id: its text form (`Display`) in human-readable
/// formats, else exactly as `#[derive(Serialize)]` on `struct Name([u8; N])`
/// does (postcard: the `N` bytes, no length), so stored records keep their
/// encoding.
pub(crate) fn serialize_id<S, T, const N: usize>(
    id: &T,
    name: &'static str,
    bytes: &[u8; N],
    s: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    T: fmt::Display + ?Sized,
    [u8; N]: Serialize,
{
    if s.is_human_readable() { s.collect_str(id) } else { s.serialize_newtype_struct(name, bytes) }
}

/// Reads what [`serialize_id`] writes (in a human-readable format, also the
/// array of `N` numbers earlier releases wrote).
pub(crate) fn deserialize_id<'de, D, const N: usize>(
    name: &'static str,
    what: &'static str,
    d: D,
) -> Result<[u8; N], D::Error>
where
    D: serde::Deserializer<'de>,
    [u8; N]: Deserialize<'de>,
{
    if d.is_human_readable() {
        return d.deserialize_any(IdVisitor::<N>(what));
    }
    struct Newtype<const N: usize>(&'static str);
    impl<'de, const N: usize> serde::de::Visitor<'de> for Newtype<N>
    where
        [u8; N]: Deserialize<'de>,
    {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a {}", self.0)
        }
        fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<[u8; N], D::Error> {
            <[u8; N]>::deserialize(d)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
            seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))
        }
    }
    d.deserialize_newtype_struct(name, Newtype::<N>(what))
}

/// Reads an id of `N` bytes from a human-readable format: its text form, or
/// (as earlier releases wrote it) an array of `N` numbers.
struct IdVisitor<const N: usize>(&'static str);

impl<'de, const N: usize> serde::de::Visitor<'de> for IdVisitor<N> {
    type Value = [u8; N];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} ({} lowercase hex characters)", self.0, 2 * N)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<[u8; N], E> {
        parse_hex(v, self.0).map_err(E::custom)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; N], E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
        let mut out = [0u8; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(serde::de::Error::invalid_length(N + 1, &self));
        }
        Ok(out)
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(crate) [u8; SIGNATURE_LEN]);

impl Signature {
    /// Parses a signature of exactly 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
            what: "signature",
            expected: SIGNATURE_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }
    /// The 64 bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", data_encoding::HEXLOWER.encode(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_bytes_vec(d)?;
        Self::from_bytes(&v).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signing key pair (a plain 32-byte seed, usable as a Veilid VLD0
/// record owner or writer key).
///
/// Zeroized on drop; `Debug` shows only the public key; no `Display`.
#[derive(Clone, ZeroizeOnDrop)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Generates a fresh key from a cryptographic RNG.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut seed = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(seed.as_mut());
        Self::expand_seed(&seed)
    }

    /// The key of a seed (one scalar multiplication; memoized in fuzzing
    /// builds, see `fuzz_memo`).
    fn expand_seed(seed: &[u8; KEY_LEN]) -> Self {
        #[cfg(fuzzing)]
        return Self(super::fuzz_memo::memo("expand", &[seed], || ed25519_dalek::SigningKey::from_bytes(seed)));
        #[cfg(not(fuzzing))]
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Builds a key from its 32-byte seed. The caller's buffer is zeroized.
    pub fn from_seed(seed: &mut [u8; KEY_LEN]) -> Self {
        let k = Self::expand_seed(seed);
        seed.zeroize();
        k
    }

    /// Builds a key from a seed slice (wrong length is an error). Used when
    /// decoding secrets received inside an authenticated ciphertext.
    pub(crate) fn from_seed_slice(seed: &[u8]) -> Result<Self, DecodeError> {
        let mut arr: Zeroizing<[u8; KEY_LEN]> =
            Zeroizing::new(seed.try_into().map_err(|_| DecodeError::WrongLength {
                what: "signing key seed",
                expected: KEY_LEN,
                got: seed.len(),
            })?);
        Ok(Self::from_seed(&mut arr))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Exposes the 32-byte seed, for handing the key to a DHT backend or a store.
    /// The returned buffer zeroizes itself on drop.
    pub fn expose_seed(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Raw Ed25519 signature. Crate-private: protocol messages are signed only
    /// through [`crate::crypto::sign`], which adds the domain separation.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> Signature {
        #[cfg(fuzzing)]
        return Signature(super::fuzz_memo::memo("sign", &[self.0.as_bytes(), msg], || self.0.sign(msg).to_bytes()));
        #[cfg(not(fuzzing))]
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for SigningKey {}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public={}, secret=<redacted>)", self.public().fmt_short())
    }
}

impl Serialize for SigningKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.expose_seed().as_slice())
    }
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Zeroizing::new(serde_bytes_vec(d)?);
        Self::from_seed_slice(&v).map_err(serde::de::Error::custom)
    }
}

/// The 32-byte seed of a [`SigningKey`], kept instead of the expanded key
/// where many keys wait unused (a waiting invitation holds three): 32 bytes
/// instead of ~224, expanded with [`KeySeed::expand`] only when the key is
/// used. Serialized exactly like a [`SigningKey`] (its seed bytes).
///
/// A [`SecretKey`] underneath: zeroized on drop, constant-time equality, no
/// `Display`; `Debug` is redacted (it cannot show the public key without
/// expanding).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeySeed(SecretKey);

impl KeySeed {
    /// The signing key of this seed (one scalar multiplication).
    pub(crate) fn expand(&self) -> SigningKey {
        SigningKey::expand_seed(self.0.expose())
    }
    /// The public key of this seed (expands it; the expanded key is zeroized).
    pub(crate) fn public(&self) -> PublicKey {
        self.expand().public()
    }
    /// The seed bytes, for handing the key to a store. Keep the borrow short.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        self.0.expose()
    }
}

impl From<&SigningKey> for KeySeed {
    fn from(k: &SigningKey) -> Self {
        Self(SecretKey::from_bytes(&mut k.expose_seed()))
    }
}

impl fmt::Debug for KeySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySeed(<redacted>)")
    }
}

/// A 32-byte symmetric secret (invitation secret, record encryption secret,
/// derived AEAD keys, account internal key).
///
/// Zeroized on drop, redacted `Debug`, no `Display`, constant-time equality.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// A fresh random secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut b = [0u8; KEY_LEN];
        rng.fill_bytes(&mut b);
        Self(b)
    }
    /// Wraps 32 bytes; the caller's buffer is zeroized.
    pub fn from_bytes(bytes: &mut [u8; KEY_LEN]) -> Self {
        let k = Self(*bytes);
        bytes.zeroize();
        k
    }
    /// Parses a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
            what: "secret",
            expected: KEY_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }
    /// Exposes the secret bytes. Keep the borrow short.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Length of an [`InviteSecret`].
pub const INVITE_SECRET_LEN: usize = 16;

/// The 128-bit secret a ticket carries: whoever holds it can open the
/// invitation's inbox. Every key of the inbox (its record encryption key,
/// the sealing keys) is derived from it ([`InviteSecret::inbox_secret`]), so
/// a ticket needs 16 secret bytes, not 32. 128 bits keep guessing out of
/// reach (2^127 tries on average per invitation).
///
/// Zeroized on drop, redacted `Debug`, constant-time equality.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct InviteSecret([u8; INVITE_SECRET_LEN]);

impl InviteSecret {
    /// A fresh random secret.
    pub fn generate(rng: &mut (impl CryptoRngCore + ?Sized)) -> Self {
        let mut b = [0u8; INVITE_SECRET_LEN];
        rng.fill_bytes(&mut b);
        Self(b)
    }
    /// Parses a slice of exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        let arr: [u8; INVITE_SECRET_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
            what: "invitation secret",
            expected: INVITE_SECRET_LEN,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }
    /// Wraps 16 bytes; the caller's buffer is zeroized.
    pub fn from_bytes(bytes: &mut [u8; INVITE_SECRET_LEN]) -> Self {
        let k = Self(*bytes);
        bytes.zeroize();
        k
    }
    /// Exposes the secret bytes. Keep the borrow short.
    pub fn expose(&self) -> &[u8; INVITE_SECRET_LEN] {
        &self.0
    }
}

/// The impls a secret byte array shares: constant-time equality, a
/// redacted `Debug`, and serde as bytes (deserialized through `from_slice`,
/// so a wrong length is refused).
macro_rules! secret_bytes_impls {
    ($t:ident) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }
        impl Eq for $t {}

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "(<redacted>)"))
            }
        }

        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Zeroizing::new(serde_bytes_vec(d)?);
                Self::from_slice(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}

secret_bytes_impls!(InviteSecret);
secret_bytes_impls!(SecretKey);

/// Deserializes a byte string from either a serde byte buffer or a sequence
/// (serde_json represents bytes as an array of numbers).
pub(crate) fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                if out.len() >= 1 << 20 {
                    return Err(serde::de::Error::custom("byte string too long"));
                }
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn debug_never_shows_secrets() {
        let k = SigningKey::generate(&mut OsRng);
        let seed = k.expose_seed();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&data_encoding::HEXLOWER.encode(seed.as_slice())));
        assert!(!dbg.contains(&format!("{:?}", seed.as_slice())));
        assert!(dbg.contains("redacted"));
        let s = SecretKey::generate(&mut OsRng);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "SecretKey(<redacted>)");
    }

    #[test]
    fn key_seeds_expand_to_the_same_key_serialize_like_it_and_stay_redacted() {
        let k = SigningKey::generate(&mut OsRng);
        let s = KeySeed::from(&k);
        assert_eq!(s.expand(), k);
        assert_eq!(s.public(), k.public());
        assert_eq!(postcard::to_allocvec(&s).unwrap(), postcard::to_allocvec(&k).unwrap());
        let back: KeySeed = postcard::from_bytes(&postcard::to_allocvec(&k).unwrap()).unwrap();
        assert_eq!(back, s);
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "KeySeed(<redacted>)");
        assert!(postcard::from_bytes::<KeySeed>(&postcard::to_allocvec(&[1u8; 31].as_slice()).unwrap()).is_err());
        let g = KeySeed::from(&SigningKey::generate(&mut OsRng));
        assert_ne!(g, s);
    }

    #[test]
    fn public_key_rejects_bad_lengths_and_points() {
        assert!(matches!(PublicKey::from_bytes(&[0u8; 31]), Err(DecodeError::WrongLength { .. })));
        // y = 2 is not on the curve.
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(PublicKey::from_bytes(&bad).is_err());
    }

    #[test]
    fn seeds_round_trip_and_are_veilid_compatible_ed25519() {
        let k = SigningKey::generate(&mut OsRng);
        let mut seed = *k.expose_seed();
        let k2 = SigningKey::from_seed(&mut seed);
        assert_eq!(seed, [0u8; 32], "caller buffer zeroized");
        assert_eq!(k, k2);
        assert_eq!(k.public(), k2.public());
        let sig = k.sign_raw(b"m");
        assert!(k.public().verify_raw(b"m", &sig));
        assert!(!k.public().verify_raw(b"n", &sig));
    }
}
