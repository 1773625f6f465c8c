//! The protobuf wire format. Generated types are crate-private; public types
//! are the domain types in [`crate::message`], converted with `TryFrom`.

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/contact_invite.v1.rs"));
}

use crate::error::DecodeError;

/// Decodes a protobuf message, refusing input above `max` bytes before any work.
pub(crate) fn decode<M: prost::Message + Default>(
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<M, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { what, max, got: bytes.len() });
    }
    M::decode(bytes).map_err(|_| DecodeError::Protobuf { what })
}

/// Encodes a message.
pub(crate) fn encode<M: prost::Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

/// Reads a fixed 32-byte field.
pub(crate) fn bytes32(b: &[u8], what: &'static str) -> Result<[u8; 32], DecodeError> {
    b.try_into().map_err(|_| DecodeError::WrongLength { what, expected: 32, got: b.len() })
}

/// Checks the message version field.
pub(crate) fn check_version(v: u32) -> Result<(), DecodeError> {
    use crate::crypto::PROTOCOL_VERSION as V;
    match v {
        V => Ok(()),
        0 => Err(DecodeError::MissingField { what: "message", field: "version" }),
        v if v < V => Err(DecodeError::VersionTooOld { found: v, supported: V }),
        v => Err(DecodeError::VersionTooNew { found: v, supported: V }),
    }
}

// Redacting Debug for generated messages that carry secrets (skip_debug in build.rs).
impl core::fmt::Debug for pb::RecordKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RecordKey({} bytes, secret: <redacted>)", self.opaque.len())
    }
}
impl core::fmt::Debug for pb::ContactRequestPrivate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContactRequestPrivate(<redacted>)")
    }
}
impl core::fmt::Debug for pb::ContactInvitationRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContactInvitationRecord(<redacted>)")
    }
}
