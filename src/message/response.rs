//! Signed responses (accept / reject) bound to the invitation they answer.

use serde::{Deserialize, Serialize};

use super::InvitationKind;
use super::identity::{SignedIdentity, record_key_from, record_key_to};
use super::invitation::VerifiedInvitation;
use super::profile::Profile;
use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{DhPublicKey, PublicKey, Signature, SigningKey, signed_message_hash};
use crate::dht::RecordKey;
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// The content of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseContent {
    /// Kind of the invitation answered.
    pub kind: InvitationKind,
    /// Accept or reject.
    pub accept: bool,
    /// Inbox of the invitation answered.
    pub inbox_key: [u8; 32],
    /// Name of the invitation answered (over its canonical content, INT-HASH-1).
    pub invitation_hash: [u8; 32],
    /// Responder identity.
    pub identity_key: PublicKey,
    /// Responder device that signed.
    pub device_key: PublicKey,
    /// Responder identity record location.
    pub identity_record: RecordKey,
    /// Responder profile (absent on a reject, optionally).
    pub profile: Option<Profile>,
    /// Responder conversation record (accepts of contact invitations).
    pub conversation: Option<RecordKey>,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Device links: the new device's consent to join the account.
    pub device_consent: Option<Signature>,
    /// Device links: the new device's X25519 key for the handover.
    pub device_dh_key: Option<DhPublicKey>,
    /// Where to nudge the responder once the final status is stored (an
    /// opaque backend address; Veilid: a private route blob). Optional and
    /// best effort: without it the responder watches the inbox.
    pub reply_to: Option<Vec<u8>>,
}

fn context(c_inbox: &[u8; 32], inv_hash: &[u8; 32], expires_at: u64, responder: &PublicKey) -> [Vec<u8>; 4] {
    [c_inbox.to_vec(), inv_hash.to_vec(), expires_at.to_be_bytes().to_vec(), responder.as_bytes().to_vec()]
}

impl ResponseContent {
    /// Signs with the responder's device key, binding the invitation's inbox,
    /// hash and expiry.
    pub(crate) fn sign(
        &self,
        device: &SigningKey,
        identity: &SignedIdentity,
        invitation: &VerifiedInvitation,
    ) -> Result<Vec<u8>, DecodeError> {
        let payload = wire::encode(&pb::ContactResponse {
            version: crate::crypto::PROTOCOL_VERSION,
            kind: self.kind.to_pb(),
            accept: self.accept,
            inbox_key: self.inbox_key.to_vec(),
            invitation_hash: self.invitation_hash.to_vec(),
            identity_key: self.identity_key.as_bytes().to_vec(),
            device_key: self.device_key.as_bytes().to_vec(),
            identity_record: Some(record_key_to(&self.identity_record)),
            signed_identity: identity.to_bytes().to_vec(),
            profile: self.profile.as_ref().map(pb::Profile::from),
            conversation: self.conversation.as_ref().map(record_key_to),
            created_at: self.created_at,
            device_consent: self.device_consent.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
            device_dh_key: self.device_dh_key.map(|k| k.as_bytes().to_vec()).unwrap_or_default(),
            reply_to: self.reply_to.clone().unwrap_or_default(),
        });
        let ctx = context(&self.inbox_key, &self.invitation_hash, invitation.content().expires_at, &self.identity_key);
        let refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        let sig = sign(device, SignedKind::Response, &refs, &payload);
        let out =
            wire::encode(&pb::SignedContactResponse { contact_response: payload, signature: sig.as_bytes().to_vec() });
        if out.len() > limits::MAX_SIGNED_RESPONSE {
            return Err(DecodeError::TooLarge {
                what: "signed response",
                max: limits::MAX_SIGNED_RESPONSE,
                got: out.len(),
            });
        }
        Ok(out)
    }
}

/// A response parsed from bytes, not yet checked. Exposes only [`Self::verify`].
#[derive(Debug)]
pub struct UnverifiedResponse {
    payload: Vec<u8>,
    signature: Signature,
    content: ResponseContent,
    identity_bytes: Vec<u8>,
}

impl UnverifiedResponse {
    /// Parses an encoded `SignedContactResponse`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let signed: pb::SignedContactResponse = wire::decode(bytes, limits::MAX_SIGNED_RESPONSE, "signed response")?;
        let signature = Signature::from_bytes(&signed.signature)?;
        let p: pb::ContactResponse = wire::decode(&signed.contact_response, limits::MAX_SIGNED_RESPONSE, "response")?;
        wire::check_version(p.version)?;
        let kind = InvitationKind::from_pb(p.kind)?;
        let reply_to = super::reply_address_from(p.reply_to)?;
        let conversation = p.conversation.map(|c| record_key_from(Some(c), "conversation")).transpose()?;
        if p.accept && kind == InvitationKind::Contact && conversation.is_none() {
            return Err(DecodeError::MissingField { what: "accept", field: "conversation" });
        }
        let device_consent =
            if p.device_consent.is_empty() { None } else { Some(Signature::from_bytes(&p.device_consent)?) };
        let device_dh_key =
            if p.device_dh_key.is_empty() { None } else { Some(DhPublicKey::from_bytes(&p.device_dh_key)?) };
        if p.accept && kind == InvitationKind::DeviceLink && (device_consent.is_none() || device_dh_key.is_none()) {
            return Err(DecodeError::MissingField { what: "device link accept", field: "device_consent" });
        }
        let content = ResponseContent {
            kind,
            accept: p.accept,
            inbox_key: wire::bytes32(&p.inbox_key, "inbox key")?,
            invitation_hash: wire::bytes32(&p.invitation_hash, "invitation hash")?,
            identity_key: PublicKey::from_bytes(&p.identity_key)?,
            device_key: PublicKey::from_bytes(&p.device_key)?,
            identity_record: record_key_from(p.identity_record, "identity record")?,
            profile: p.profile.map(Profile::try_from).transpose()?,
            conversation,
            created_at: p.created_at,
            device_consent,
            device_dh_key,
            reply_to,
        };
        Ok(Self { payload: signed.contact_response, signature, content, identity_bytes: p.signed_identity })
    }

    /// The one way to a [`VerifiedResponse`]: the signature (bound to this
    /// invitation's inbox, hash and expiry), the signer chain, the kind, and
    /// the invitation's expiry at `now`.
    ///
    /// For device links the responder's device is new and not yet in any
    /// identity record: its key must sign, and its consent must be valid for
    /// the inviter's identity.
    pub fn verify(self, invitation: &InvitationContext<'_>, now: u64) -> Result<VerifiedResponse, crate::Error> {
        let c = &self.content;
        let ctx = context(invitation.inbox_key, invitation.hash, invitation.expires_at, &c.identity_key);
        let refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        // INV-R-1: signature over exact bytes bound to this invitation.
        if !verify(&c.device_key, SignedKind::Response, &refs, &self.payload, &self.signature) {
            return Err(VerifyError::BadSignature.into());
        }
        // INV-R-2: payload names this invitation.
        if &c.inbox_key != invitation.inbox_key || &c.invitation_hash != invitation.hash {
            return Err(VerifyError::WrongContext("response answers another invitation").into());
        }
        if c.kind != invitation.kind {
            return Err(VerifyError::WrongContext("response kind differs from the invitation's").into());
        }
        // INV-R-3: answered before the invitation expired.
        if now >= invitation.expires_at {
            return Err(VerifyError::Expired { expired_at: invitation.expires_at, now }.into());
        }
        if c.created_at > now.saturating_add(limits::MAX_CLOCK_SKEW_SECS) {
            return Err(VerifyError::BadTimestamps("response created in the future").into());
        }
        let identity = if c.kind == InvitationKind::DeviceLink {
            // INV-R-4 (device link): the new device consents to join the inviter's identity.
            if &c.identity_key != invitation.identity_key {
                return Err(VerifyError::WrongContext("device link answered for another identity").into());
            }
            if c.accept {
                let consent = c.device_consent.ok_or(VerifyError::WrongContext("no consent"))?;
                if !super::identity::verify_device_consent(&c.identity_key, &c.device_key, &consent) {
                    return Err(VerifyError::BadSignature.into());
                }
            }
            None
        } else {
            // INV-R-4: the responder device chains to the responder identity.
            let identity = SignedIdentity::verify(&self.identity_bytes, Some(&c.identity_key))?;
            identity.require_current(&c.device_key)?;
            // FRESH-1: the location the inviter re-reads is the signed one.
            identity.require_location(&c.identity_record)?;
            if &c.identity_key == invitation.identity_key {
                return Err(crate::error::ProtocolError::OwnInvitation.into());
            }
            Some(identity)
        };
        // INT-HASH-1: the final status names the response by its canonical
        // content, so a re-encoding (e.g. an appended unknown field) names the
        // same response and cannot split the handshake.
        let hash = signed_message_hash(HASH_LABEL, &self.payload, self.signature.as_bytes());
        Ok(VerifiedResponse { content: self.content, identity, hash })
    }
}

/// What a response's hash is labelled with ([`signed_message_hash`]).
const HASH_LABEL: &[u8] = b"response";

/// The hash naming a signed response (INT-HASH-1): over its payload and
/// signature. Used by the responder on its own bytes; the inviter gets the
/// same value from [`VerifiedResponse::hash`] for any encoding of them.
pub(crate) fn hash_of_signed(bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    let signed: pb::SignedContactResponse = wire::decode(bytes, limits::MAX_SIGNED_RESPONSE, "signed response")?;
    Ok(signed_message_hash(HASH_LABEL, &signed.contact_response, &signed.signature))
}

/// What a response is checked against.
#[derive(Clone, Copy, Debug)]
pub struct InvitationContext<'a> {
    /// Inbox key.
    pub inbox_key: &'a [u8; 32],
    /// Invitation hash.
    pub hash: &'a [u8; 32],
    /// Invitation expiry.
    pub expires_at: u64,
    /// Invitation kind.
    pub kind: InvitationKind,
    /// Inviter identity.
    pub identity_key: &'a PublicKey,
}

/// A response whose signature, binding, signer chain and timing were checked.
/// (Not serializable: flows persist the contact derived from it.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedResponse {
    content: ResponseContent,
    identity: Option<SignedIdentity>,
    hash: [u8; 32],
}

impl VerifiedResponse {
    /// The verified content.
    pub fn content(&self) -> &ResponseContent {
        &self.content
    }
    /// The responder's verified identity snapshot (contact invitations).
    pub fn identity(&self) -> Option<&SignedIdentity> {
        self.identity.as_ref()
    }
    /// The response's name, which the final status carries: a hash over its
    /// payload and signature (not over one encoding of them).
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}
