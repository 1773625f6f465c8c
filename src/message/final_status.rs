//! The inviter's signed final status, written over the request in the inbox
//! owner subkey: it closes the invitation for everyone and tells the invitee
//! whether its accept won.

use serde::{Deserialize, Serialize};

use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{PublicKey, Signature, SigningKey};
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// The outcome of an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinalStatusKind {
    /// The response with `response_hash` was accepted.
    Accepted,
    /// The invitee rejected.
    Rejected,
    /// The inviter revoked the invitation.
    Revoked,
    /// The invitation expired unanswered.
    Expired,
    /// Multi-use: no use was left for this response (or, with no response
    /// named, the invitation is used up).
    NoUsesLeft,
}

/// The content of a final status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalStatus {
    /// Outcome.
    pub status: FinalStatusKind,
    /// Inbox.
    pub inbox_key: [u8; 32],
    /// Invitation answered.
    pub invitation_hash: [u8; 32],
    /// Response this status concerns.
    pub response_hash: Option<[u8; 32]>,
    /// Identity of that response's author.
    pub responder_identity: Option<PublicKey>,
    /// When decided (unix seconds).
    pub decided_at: u64,
    /// Device links: the account secret sealed to the new device.
    pub handover: Vec<u8>,
    /// Multi-use, accepted: the inviter's conversation record for this
    /// contact (a multi-use invitation names none).
    pub conversation: Option<crate::dht::RecordKey>,
}

fn ctx(inbox: &[u8; 32], inv_hash: &[u8; 32]) -> [Vec<u8>; 2] {
    [inbox.to_vec(), inv_hash.to_vec()]
}

impl FinalStatus {
    /// Signs with the inviter's device key.
    pub(crate) fn sign(&self, device: &SigningKey) -> Result<Vec<u8>, DecodeError> {
        let payload = wire::encode(&pb::FinalStatus {
            version: crate::crypto::PROTOCOL_VERSION,
            status: (match self.status {
                FinalStatusKind::Accepted => pb::FinalStatusKind::Accepted,
                FinalStatusKind::Rejected => pb::FinalStatusKind::Rejected,
                FinalStatusKind::Revoked => pb::FinalStatusKind::Revoked,
                FinalStatusKind::Expired => pb::FinalStatusKind::Expired,
                FinalStatusKind::NoUsesLeft => pb::FinalStatusKind::NoUsesLeft,
            }) as i32,
            inbox_key: self.inbox_key.to_vec(),
            invitation_hash: self.invitation_hash.to_vec(),
            response_hash: self.response_hash.map(|h| h.to_vec()).unwrap_or_default(),
            responder_identity: self.responder_identity.map(|k| k.as_bytes().to_vec()).unwrap_or_default(),
            decided_at: self.decided_at,
            handover: self.handover.clone(),
            conversation: self.conversation.as_ref().map(super::identity::record_key_to),
        });
        let c = ctx(&self.inbox_key, &self.invitation_hash);
        let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        let sig = sign(device, SignedKind::FinalStatus, &refs, &payload);
        let out = wire::encode(&pb::SignedFinalStatus { final_status: payload, signature: sig.as_bytes().to_vec() });
        if out.len() > limits::MAX_SIGNED_FINAL_STATUS {
            return Err(DecodeError::TooLarge {
                what: "signed final status",
                max: limits::MAX_SIGNED_FINAL_STATUS,
                got: out.len(),
            });
        }
        Ok(out)
    }

    /// Parses and verifies a signed final status made by `inviter_device` for
    /// this inbox and invitation. (There is no unverified public form: the
    /// bytes are only ever turned into a `FinalStatus` through this check.)
    pub(crate) fn verify(
        bytes: &[u8],
        inviter_device: &PublicKey,
        inbox: &[u8; 32],
        invitation_hash: &[u8; 32],
    ) -> Result<Self, crate::Error> {
        let signed: pb::SignedFinalStatus =
            wire::decode(bytes, limits::MAX_SIGNED_FINAL_STATUS, "signed final status")?;
        let sig = Signature::from_bytes(&signed.signature)?;
        let c = ctx(inbox, invitation_hash);
        let refs: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        // INV-F-1: signed by the inviter device, bound to this inbox and invitation.
        if !verify(inviter_device, SignedKind::FinalStatus, &refs, &signed.final_status, &sig) {
            return Err(VerifyError::BadSignature.into());
        }
        let p: pb::FinalStatus = wire::decode(&signed.final_status, limits::MAX_SIGNED_FINAL_STATUS, "final status")?;
        wire::check_version(p.version)?;
        let status = match pb::FinalStatusKind::try_from(p.status) {
            Ok(pb::FinalStatusKind::Accepted) => FinalStatusKind::Accepted,
            Ok(pb::FinalStatusKind::Rejected) => FinalStatusKind::Rejected,
            Ok(pb::FinalStatusKind::Revoked) => FinalStatusKind::Revoked,
            Ok(pb::FinalStatusKind::Expired) => FinalStatusKind::Expired,
            Ok(pb::FinalStatusKind::NoUsesLeft) => FinalStatusKind::NoUsesLeft,
            _ => return Err(DecodeError::UnknownEnumValue { what: "final status", value: p.status }.into()),
        };
        let out = Self {
            status,
            inbox_key: wire::bytes32(&p.inbox_key, "inbox key")?,
            invitation_hash: wire::bytes32(&p.invitation_hash, "invitation hash")?,
            response_hash: if p.response_hash.is_empty() {
                None
            } else {
                Some(wire::bytes32(&p.response_hash, "response hash")?)
            },
            responder_identity: if p.responder_identity.is_empty() {
                None
            } else {
                Some(PublicKey::from_bytes(&p.responder_identity)?)
            },
            decided_at: p.decided_at,
            handover: p.handover,
            conversation: p
                .conversation
                .map(|c| super::identity::record_key_from(Some(c), "final status conversation"))
                .transpose()?,
        };
        if &out.inbox_key != inbox || &out.invitation_hash != invitation_hash {
            return Err(VerifyError::WrongContext("final status for another invitation").into());
        }
        Ok(out)
    }

    /// Reads the status of a final status **without verifying it**, for the
    /// one case where no verification key is available (the request was
    /// already erased). It can only ever produce an error for the caller.
    pub(crate) fn closed_reason(bytes: &[u8]) -> crate::error::ProtocolError {
        use crate::error::ProtocolError;
        let status =
            wire::decode::<pb::SignedFinalStatus>(bytes, limits::MAX_SIGNED_FINAL_STATUS, "signed final status")
                .and_then(|s| {
                    wire::decode::<pb::FinalStatus>(&s.final_status, limits::MAX_SIGNED_FINAL_STATUS, "final status")
                })
                .map(|f| f.status);
        match status.map(pb::FinalStatusKind::try_from) {
            Ok(Ok(pb::FinalStatusKind::Revoked)) => ProtocolError::Revoked,
            Ok(Ok(pb::FinalStatusKind::Expired)) => ProtocolError::Expired,
            Ok(Ok(pb::FinalStatusKind::Accepted | pb::FinalStatusKind::Rejected)) => ProtocolError::AlreadyUsed,
            Ok(Ok(pb::FinalStatusKind::NoUsesLeft)) => ProtocolError::NoUsesLeft,
            _ => ProtocolError::InboxClosed,
        }
    }
}
