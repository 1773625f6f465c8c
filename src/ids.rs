//! The ids of flows and requests and their text and serde forms. Below the
//! error types (which name a flow), re-exported by [`crate::flow`].

use serde::{Deserialize, Serialize};

/// Identifies a flow (one invitation, on one side).
///
/// Text form ([`Display`](core::fmt::Display), [`FromStr`](core::str::FromStr)):
/// the 16 bytes in lowercase hex, 32 characters, lossless. Serde: that string
/// in human-readable formats (JSON…), the 16 bytes in others (postcard, the
/// store). [`FlowId::fmt_short`] is a prefix for logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub [u8; 16]);

impl FlowId {
    /// A random flow id.
    pub fn random<R: rand_core::RngCore + rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self(b)
    }
    /// Short form for logs: the first 6 bytes in lowercase hex (12
    /// characters, a prefix of the [`Display`](core::fmt::Display) form).
    /// Not unique: never parse it or use it as a key.
    pub fn fmt_short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0[..6])
    }
}

impl core::fmt::Display for FlowId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::crypto::write_hex(f, &self.0)
    }
}

impl core::fmt::Debug for FlowId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FlowId({self})")
    }
}

/// Parses the [`Display`](core::fmt::Display) form (exactly 32 lowercase hex
/// characters).
impl core::str::FromStr for FlowId {
    type Err = crate::crypto::ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::crypto::parse_hex(s, "flow id").map(Self)
    }
}

impl Serialize for FlowId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::crypto::serialize_id(self, "FlowId", &self.0, s)
    }
}

impl<'de> Deserialize<'de> for FlowId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::crypto::deserialize_id("FlowId", "flow id", d).map(Self)
    }
}

/// Identifies a received request (hash of its whole signed content).
///
/// Text form ([`Display`](core::fmt::Display), [`FromStr`](core::str::FromStr)):
/// the 32 bytes in lowercase hex, 64 characters, lossless. Serde: that string
/// in human-readable formats (JSON…), the 32 bytes in others (postcard, the
/// store). [`RequestId::fmt_short`] is a prefix for logs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub [u8; 32]);

impl RequestId {
    /// Short form for logs: the first 6 bytes in lowercase hex (12
    /// characters, a prefix of the [`Display`](core::fmt::Display) form).
    /// Not unique: never parse it or use it as a key.
    pub fn fmt_short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0[..6])
    }
}

impl core::fmt::Display for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        crate::crypto::write_hex(f, &self.0)
    }
}

impl core::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// Parses the [`Display`](core::fmt::Display) form (exactly 64 lowercase hex
/// characters).
impl core::str::FromStr for RequestId {
    type Err = crate::crypto::ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::crypto::parse_hex(s, "request id").map(Self)
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::crypto::serialize_id(self, "RequestId", &self.0, s)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::crypto::deserialize_id("RequestId", "request id", d).map(Self)
    }
}
