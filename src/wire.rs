//! The protobuf wire format. Generated types are crate-private; public types
//! are the domain types in [`crate::message`], converted with `TryFrom`.

#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/contact_invite.v1.rs"));
}

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::DecodeError;

/// What an invitation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvitationKind {
    /// Become mutual contacts.
    Contact,
    /// Add a new device to the inviter's own account.
    DeviceLink,
}

impl InvitationKind {
    pub(crate) fn to_pb(self) -> i32 {
        (match self {
            Self::Contact => pb::InvitationKind::Contact,
            Self::DeviceLink => pb::InvitationKind::DeviceLink,
        }) as i32
    }
    pub(crate) fn from_pb(v: i32) -> Result<Self, DecodeError> {
        match pb::InvitationKind::try_from(v) {
            Ok(pb::InvitationKind::Contact) => Ok(Self::Contact),
            Ok(pb::InvitationKind::DeviceLink) => Ok(Self::DeviceLink),
            _ => Err(DecodeError::UnknownEnumValue { what: "invitation kind", value: v }),
        }
    }
}

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

/// Generated messages that hold secrets: what to wipe once encoded or read.
pub(crate) trait ClearSecrets {
    /// Zeroizes every field that holds a secret.
    fn clear_secrets(&mut self);
}

impl ClearSecrets for pb::ContactRequestPrivate {
    fn clear_secrets(&mut self) {
        self.writer_secret.zeroize();
    }
}

impl ClearSecrets for pb::UseClaimPrivate {
    fn clear_secrets(&mut self) {
        self.owner_secret.zeroize();
        self.writer_secret.zeroize();
        if let Some(r) = &mut self.record {
            r.secret.zeroize();
        }
    }
}

impl ClearSecrets for pb::PinOffer {
    fn clear_secrets(&mut self) {
        self.writer_secret.zeroize();
    }
}

impl ClearSecrets for pb::DeviceHandover {
    fn clear_secrets(&mut self) {
        self.account_key.zeroize();
    }
}

impl ClearSecrets for pb::ContactInvitationRecord {
    fn clear_secrets(&mut self) {
        self.inbox_owner_secret.zeroize();
        self.writer_secret.zeroize();
        self.conversation_owner_secret.zeroize();
        // The ticket of an unlocked invitation is the invitation secret.
        self.ticket.zeroize();
        for k in [&mut self.inbox, &mut self.conversation].into_iter().flatten() {
            k.secret.zeroize();
        }
    }
}

/// Encodes a message that holds secrets into a buffer wiped on drop (sized
/// exactly, so no reallocation leaves a copy behind), then wipes the
/// message's own secret fields.
pub(crate) fn encode_secret<M: prost::Message + ClearSecrets>(mut m: M) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(m.encoded_len()));
    // Encoding into a Vec only fails for lack of room, and the Vec grows.
    if m.encode(&mut *out).is_err() {
        out.clear();
    }
    m.clear_secrets();
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_encodings_are_exact_and_wipe_the_message() {
        let m = pb::ContactRequestPrivate { writer_secret: vec![7; 32], signed_invitation: vec![1, 2, 3] };
        let plain = encode(&m);
        let out = encode_secret(m);
        assert_eq!(out.as_slice(), plain.as_slice());
        assert_eq!(out.capacity(), out.len(), "no reallocation left a copy behind");
        let mut m = pb::DeviceHandover { account_key: vec![9; 32], signed_identity: vec![] };
        m.clear_secrets();
        assert!(m.account_key.is_empty());
        let mut r = pb::ContactInvitationRecord {
            inbox: Some(pb::RecordKey { opaque: vec![1; 32], secret: vec![2; 32] }),
            inbox_owner_secret: vec![3; 32],
            writer_secret: vec![4; 32],
            ticket: vec![5; 70],
            ..Default::default()
        };
        r.clear_secrets();
        assert!(r.inbox_owner_secret.is_empty() && r.writer_secret.is_empty() && r.ticket.is_empty());
        assert!(r.inbox.is_some_and(|k| k.secret.is_empty() && k.opaque.len() == 32));
    }
}
