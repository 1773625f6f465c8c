//! Signed invitations. Parsed from bytes they are [`UnverifiedInvitation`];
//! the only way to a [`VerifiedInvitation`] is [`UnverifiedInvitation::verify`],
//! which checks the signature, the context (inbox, kind, signer chain) and the
//! expiry against a given time.

use serde::{Deserialize, Serialize};

use super::InvitationKind;
use super::identity::{SignedIdentity, record_key_from, record_key_to};
use super::profile::Profile;
use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{PublicKey, Signature, SigningKey, signed_message_hash};
use crate::dht::RecordKey;
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// How the ticket's secret was protected (informative; VeilidChat's enum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncryptionKeyType {
    /// No password.
    None,
    /// A numeric PIN.
    Pin,
    /// A password.
    Password,
}

impl EncryptionKeyType {
    pub(crate) fn to_pb(self) -> i32 {
        (match self {
            Self::None => pb::EncryptionKeyType::None,
            Self::Pin => pb::EncryptionKeyType::Pin,
            Self::Password => pb::EncryptionKeyType::Password,
        }) as i32
    }
    pub(crate) fn from_pb(v: i32) -> Result<Self, DecodeError> {
        match pb::EncryptionKeyType::try_from(v) {
            Ok(pb::EncryptionKeyType::None) => Ok(Self::None),
            Ok(pb::EncryptionKeyType::Pin) => Ok(Self::Pin),
            Ok(pb::EncryptionKeyType::Password) => Ok(Self::Password),
            _ => Err(DecodeError::UnknownEnumValue { what: "encryption key type", value: v }),
        }
    }
}

/// The content of an invitation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationContent {
    /// Contact or device link.
    pub kind: InvitationKind,
    /// Opaque key of the inbox record the invitation lives in.
    pub inbox_key: [u8; 32],
    /// Key allowed to write the response subkey.
    pub writer_key: PublicKey,
    /// The inviter's identity key.
    pub identity_key: PublicKey,
    /// The inviter device that signed.
    pub device_key: PublicKey,
    /// Where the inviter's identity record lives.
    pub identity_record: RecordKey,
    /// The inviter's profile.
    pub profile: Profile,
    /// The inviter's conversation record (contact invitations).
    pub conversation: Option<RecordKey>,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Expires (unix seconds).
    pub expires_at: u64,
    /// Greeting, covered by the signature.
    pub message: String,
    /// How the ticket was protected.
    pub encryption_key_type: EncryptionKeyType,
    /// Where to nudge the inviter once the response is stored (an opaque
    /// address of the DHT backend; Veilid: a private route blob). Optional
    /// and best effort: without it the inviter learns of the response by
    /// watching the inbox.
    pub reply_to: Option<Vec<u8>>,
    /// `Some`: a multi-use invitation (contact invitations only): how many
    /// acceptors may become contacts and how many claim slots its inbox has.
    /// `None`: one-time.
    pub multi_use: Option<MultiUse>,
}

/// A multi-use invitation's terms, signed into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiUse {
    /// How many acceptors may become contacts (at least 2); `None`: no
    /// limit until it expires or is revoked.
    pub limit: Option<u32>,
    /// Claim slots: the inbox's writer subkeys `1..=slots`
    /// (1..=[`limits::MAX_USE_SLOTS`]).
    pub slots: u16,
}

impl MultiUse {
    fn to_pb(self) -> pb::MultiUse {
        pb::MultiUse { limit: self.limit.unwrap_or(0), slots: u32::from(self.slots) }
    }

    fn from_pb(p: pb::MultiUse) -> Result<Self, DecodeError> {
        if p.limit == 1 {
            return Err(DecodeError::Invalid("a multi-use invitation's limit is at least 2"));
        }
        let slots = u16::try_from(p.slots)
            .ok()
            .filter(|s| (1..=limits::MAX_USE_SLOTS).contains(s))
            .ok_or(DecodeError::Invalid("multi-use slots out of range"))?;
        Ok(Self { limit: (p.limit != 0).then_some(p.limit), slots })
    }
}

fn signing_context(
    kind: InvitationKind,
    inbox: &[u8; 32],
    expires_at: u64,
    identity: &PublicKey,
    device: &PublicKey,
) -> (SignedKind, [Vec<u8>; 4]) {
    let k = match kind {
        InvitationKind::Contact => SignedKind::Invitation,
        InvitationKind::DeviceLink => SignedKind::DeviceLinkInvitation,
    };
    (k, [inbox.to_vec(), expires_at.to_be_bytes().to_vec(), identity.as_bytes().to_vec(), device.as_bytes().to_vec()])
}

impl InvitationContent {
    /// Signs with the inviter's device key, embedding the identity snapshot.
    pub(crate) fn sign(&self, device: &SigningKey, identity: &SignedIdentity) -> Result<Vec<u8>, DecodeError> {
        if device.public() != self.device_key {
            return Err(DecodeError::Invalid("invitation signed by a key other than its device key"));
        }
        if self.message.len() > limits::MAX_MESSAGE {
            return Err(DecodeError::FieldTooLong {
                what: "invitation message",
                max: limits::MAX_MESSAGE,
                got: self.message.len(),
            });
        }
        let payload = wire::encode(&pb::ContactInvitation {
            version: crate::crypto::PROTOCOL_VERSION,
            kind: self.kind.to_pb(),
            inbox_key: self.inbox_key.to_vec(),
            writer_key: self.writer_key.as_bytes().to_vec(),
            identity_key: self.identity_key.as_bytes().to_vec(),
            device_key: self.device_key.as_bytes().to_vec(),
            identity_record: Some(record_key_to(&self.identity_record)),
            signed_identity: identity.to_bytes().to_vec(),
            profile: Some(pb::Profile::from(&self.profile)),
            conversation: self.conversation.as_ref().map(record_key_to),
            created_at: self.created_at,
            expires_at: self.expires_at,
            message: self.message.clone(),
            encryption_key_type: self.encryption_key_type.to_pb(),
            reply_to: self.reply_to.clone().unwrap_or_default(),
            multi_use: self.multi_use.map(MultiUse::to_pb),
        });
        let (k, ctx) =
            signing_context(self.kind, &self.inbox_key, self.expires_at, &self.identity_key, &self.device_key);
        let ctx_refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        let sig = sign(device, k, &ctx_refs, &payload);
        let out = wire::encode(&pb::SignedContactInvitation {
            contact_invitation: payload,
            signature: sig.as_bytes().to_vec(),
        });
        if out.len() > limits::MAX_SIGNED_INVITATION {
            return Err(DecodeError::TooLarge {
                what: "signed invitation",
                max: limits::MAX_SIGNED_INVITATION,
                got: out.len(),
            });
        }
        Ok(out)
    }
}

/// An invitation parsed from bytes whose signature, context and expiry have
/// **not** been checked. It exposes nothing but [`Self::verify`].
#[derive(Debug)]
pub struct UnverifiedInvitation {
    bytes: Vec<u8>,
    payload: Vec<u8>,
    signature: Signature,
    content: InvitationContent,
    identity_bytes: Vec<u8>,
}

impl UnverifiedInvitation {
    /// Parses an encoded `SignedContactInvitation` (size-capped, strict).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let signed: pb::SignedContactInvitation =
            wire::decode(bytes, limits::MAX_SIGNED_INVITATION, "signed invitation")?;
        let signature = Signature::from_bytes(&signed.signature)?;
        let p: pb::ContactInvitation =
            wire::decode(&signed.contact_invitation, limits::MAX_SIGNED_INVITATION, "invitation")?;
        wire::check_version(p.version)?;
        if p.message.len() > limits::MAX_MESSAGE {
            return Err(DecodeError::FieldTooLong {
                what: "invitation message",
                max: limits::MAX_MESSAGE,
                got: p.message.len(),
            });
        }
        let kind = InvitationKind::from_pb(p.kind)?;
        let reply_to = super::reply_address_from(p.reply_to)?;
        let conversation = p.conversation.map(|c| record_key_from(Some(c), "conversation")).transpose()?;
        let multi_use = p.multi_use.map(MultiUse::from_pb).transpose()?;
        // A multi-use invitation names no conversation record: each
        // acceptor's comes in its final status (MU-3).
        match (kind, multi_use.is_some(), conversation.is_some()) {
            (InvitationKind::Contact, false, false) => {
                return Err(DecodeError::MissingField { what: "invitation", field: "conversation" });
            }
            (InvitationKind::Contact, true, true) => {
                return Err(DecodeError::Invalid("a multi-use invitation names no conversation record"));
            }
            (InvitationKind::DeviceLink, true, _) => {
                return Err(DecodeError::Invalid("a device link is never multi-use"));
            }
            _ => {}
        }
        let content = InvitationContent {
            kind,
            inbox_key: wire::bytes32(&p.inbox_key, "inbox key")?,
            writer_key: PublicKey::from_bytes(&p.writer_key)?,
            identity_key: PublicKey::from_bytes(&p.identity_key)?,
            device_key: PublicKey::from_bytes(&p.device_key)?,
            identity_record: record_key_from(p.identity_record, "identity record")?,
            profile: Profile::try_from(
                p.profile.ok_or(DecodeError::MissingField { what: "invitation", field: "profile" })?,
            )?,
            conversation,
            created_at: p.created_at,
            expires_at: p.expires_at,
            message: p.message,
            encryption_key_type: EncryptionKeyType::from_pb(p.encryption_key_type)?,
            reply_to,
            multi_use,
        };
        if p.signed_identity.is_empty() {
            return Err(DecodeError::MissingField { what: "invitation", field: "signed_identity" });
        }
        Ok(Self {
            bytes: bytes.to_vec(),
            payload: signed.contact_invitation,
            signature,
            content,
            identity_bytes: p.signed_identity,
        })
    }

    /// The one way to a [`VerifiedInvitation`]: checks the signer chain
    /// (identity record signature, device consent, device current), the
    /// signature over the exact received bytes bound to `inbox`, the kind, and
    /// the expiry against `now` (unix seconds).
    pub fn verify(
        self,
        inbox: &[u8; 32],
        expected_kind: InvitationKind,
        now: u64,
    ) -> Result<VerifiedInvitation, crate::Error> {
        let c = &self.content;
        // INV-V-1: signature over exact bytes, bound to kind, the inbox we read
        // it from, the expiry and the signer identity/device.
        let (k, ctx) = signing_context(c.kind, inbox, c.expires_at, &c.identity_key, &c.device_key);
        let ctx_refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        if !verify(&c.device_key, k, &ctx_refs, &self.payload, &self.signature) {
            return Err(VerifyError::BadSignature.into());
        }
        // INV-V-2: the payload names the inbox it was read from.
        if &c.inbox_key != inbox {
            return Err(VerifyError::WrongContext("invitation names another inbox").into());
        }
        // INV-V-3: the kind is the one the ticket announced.
        if c.kind != expected_kind {
            return Err(VerifyError::WrongContext("invitation kind differs from the ticket's").into());
        }
        // INV-V-4: the signing device chains to the identity key.
        let identity = SignedIdentity::verify(&self.identity_bytes, Some(&c.identity_key))?;
        identity.require_current(&c.device_key)?;
        // FRESH-1: the location named for freshness checks is the one the
        // identity key signed into the snapshot, not one the device chose.
        identity.require_location(&c.identity_record)?;
        // INV-V-5: time checks.
        check_times(c.created_at, c.expires_at, now)?;
        // INT-HASH-1: the name responses bind to is over canonical content,
        // not over this encoding of it.
        let hash = signed_message_hash(HASH_LABEL, &self.payload, self.signature.as_bytes());
        Ok(VerifiedInvitation { bytes: self.bytes, content: self.content, identity, hash, verified_at: now })
    }
}

/// What an invitation's hash is labelled with ([`signed_message_hash`]).
const HASH_LABEL: &[u8] = b"invitation";

/// The hash naming a signed invitation (INT-HASH-1): over its payload and
/// signature, whatever else its encoding carries. Used by the inviter on its
/// own bytes; verifiers get the same value from [`VerifiedInvitation::hash`].
pub(crate) fn hash_of_signed(bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    let signed: pb::SignedContactInvitation = wire::decode(bytes, limits::MAX_SIGNED_INVITATION, "signed invitation")?;
    Ok(signed_message_hash(HASH_LABEL, &signed.contact_invitation, &signed.signature))
}

pub(crate) fn check_times(created_at: u64, expires_at: u64, now: u64) -> Result<(), VerifyError> {
    if expires_at <= created_at {
        return Err(VerifyError::BadTimestamps("expires before it was created"));
    }
    if expires_at - created_at > limits::MAX_EXPIRY_SECS {
        return Err(VerifyError::BadTimestamps("validity longer than allowed"));
    }
    if created_at > now.saturating_add(limits::MAX_CLOCK_SKEW_SECS) {
        return Err(VerifyError::BadTimestamps("created in the future"));
    }
    if now >= expires_at {
        return Err(VerifyError::Expired { expired_at: expires_at, now });
    }
    Ok(())
}

/// An invitation whose signature, signer chain, context and expiry were
/// checked by [`UnverifiedInvitation::verify`].
///
/// Serializes as its signed bytes and the time it was verified at;
/// deserializing runs [`UnverifiedInvitation::verify`] again at that time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedInvitation {
    bytes: Vec<u8>,
    content: InvitationContent,
    identity: SignedIdentity,
    hash: [u8; 32],
    verified_at: u64,
}

#[derive(Serialize, Deserialize)]
struct PersistedInvitation {
    bytes: Vec<u8>,
    verified_at: u64,
}

impl Serialize for VerifiedInvitation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PersistedInvitation { bytes: self.bytes.clone(), verified_at: self.verified_at }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for VerifiedInvitation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PersistedInvitation::deserialize(d)?;
        let u = UnverifiedInvitation::from_bytes(&p.bytes).map_err(serde::de::Error::custom)?;
        let (inbox, kind) = (u.content.inbox_key, u.content.kind);
        u.verify(&inbox, kind, p.verified_at).map_err(serde::de::Error::custom)
    }
}

impl VerifiedInvitation {
    /// The verified content.
    pub fn content(&self) -> &InvitationContent {
        &self.content
    }
    /// The inviter's verified identity snapshot.
    pub fn identity(&self) -> &SignedIdentity {
        &self.identity
    }
    /// The inviter's profile.
    pub fn profile(&self) -> &Profile {
        &self.content.profile
    }
    /// The invitation's name, which responses bind to: a hash over its
    /// payload and signature (not over one encoding of them).
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
    /// The exact signed bytes.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Re-checks expiry at a later time.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.content.expires_at
    }
}
