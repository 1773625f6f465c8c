//! What the inbox record's subkeys hold, and sealing/opening them.
//!
//! Subkey 0 (owner): `InboxEntry{request}` while open, then
//! `InboxEntry{final_status}` (which also erases the request).
//! Subkey 1 (writer): `InboxEntry{response}` (padded to a fixed size so an
//! accept and a reject are indistinguishable), then `InboxEntry{tombstone}`,
//! signed by the inviter device (INT-NUDGE-1: a tombstone anyone could write
//! must never end anyone's flow).
//!
//! All keys are derived from the invitation secret with distinct labels and
//! bound to the inbox key; the secret itself is never used as a key.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::invitation::{EncryptionKeyType, UnverifiedInvitation};
use super::response::UnverifiedResponse;
use crate::crypto::aead::{self, SealedKind};
use crate::crypto::kdf::{KeyPurpose, derive};
use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{PublicKey, SecretKey, Signature, SigningKey};
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// Subkey of the inbox written by the owner (request, then final status).
pub(crate) const OWNER_SUBKEY: u32 = 0;
/// Subkey of the inbox written by the writer key (response).
pub(crate) const WRITER_SUBKEY: u32 = 1;

/// Keys derived from an invitation secret for one inbox.
pub(crate) struct InboxKeys {
    request: SecretKey,
    response: SecretKey,
    final_status: SecretKey,
}

impl InboxKeys {
    pub(crate) fn derive(secret: &SecretKey, inbox: &[u8; 32]) -> Self {
        Self {
            request: derive(KeyPurpose::RequestSeal, secret.expose(), &[inbox]),
            response: derive(KeyPurpose::ResponseSeal, secret.expose(), &[inbox]),
            final_status: derive(KeyPurpose::FinalStatusSeal, secret.expose(), &[inbox]),
        }
    }
}

/// A decoded inbox subkey value (still sealed, or for a tombstone still
/// unverified: none of these is evidence of anything until it opens and
/// verifies).
#[derive(Debug)]
pub(crate) enum InboxValue {
    Request {
        sealed: Vec<u8>,
        ekt: EncryptionKeyType,
    },
    FinalStatus {
        sealed: Vec<u8>,
    },
    Response {
        sealed: Vec<u8>,
    },
    Tombstone(UnverifiedTombstone),
    /// PIN invitation waiting for a hello (sealed [`pb::PinOffer`]).
    PinOffer {
        sealed: Vec<u8>,
    },
    /// PIN invitation: the invitee's hello (sealed [`pb::PakeHello`]).
    PakeHello {
        sealed: Vec<u8>,
    },
    /// PIN invitation: the inviter's answer to one hello.
    PakeReply(PakeReply),
    /// Multi-use invitation: a claim slot's value (sealed [`pb::UseClaimPrivate`]).
    Claim {
        ephemeral: Vec<u8>,
        sealed: Vec<u8>,
    },
}

/// A PAKE reply as read (nothing in it counts before the tag verifies).
#[derive(Debug, Clone)]
pub(crate) struct PakeReply {
    pub(crate) offer: Vec<u8>,
    pub(crate) nonce: Vec<u8>,
    pub(crate) message: Vec<u8>,
    pub(crate) confirm: Vec<u8>,
    pub(crate) invitation: Vec<u8>,
}

/// What a PIN offer gives whoever holds the ticket.
pub(crate) struct PinOffer {
    pub(crate) writer: SigningKey,
    pub(crate) reply_to: Option<Vec<u8>>,
    pub(crate) expires_at: u64,
}

/// A tombstone as read: only [`UnverifiedTombstone::verify`] makes it count.
#[derive(Debug)]
pub(crate) struct UnverifiedTombstone {
    payload: Vec<u8>,
    signature: Vec<u8>,
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<InboxValue, DecodeError> {
    let e: pb::InboxEntry = wire::decode(bytes, limits::MAX_INBOX_VALUE, "inbox value")?;
    match e.entry {
        Some(pb::inbox_entry::Entry::Request(r)) => {
            wire::check_version(r.version)?;
            let ekt = EncryptionKeyType::from_pb(r.encryption_key_type)?;
            Ok(InboxValue::Request { sealed: r.private, ekt })
        }
        Some(pb::inbox_entry::Entry::FinalStatus(s)) => Ok(InboxValue::FinalStatus { sealed: s }),
        Some(pb::inbox_entry::Entry::Response(s)) => Ok(InboxValue::Response { sealed: s }),
        Some(pb::inbox_entry::Entry::Tombstone(t)) => {
            Ok(InboxValue::Tombstone(UnverifiedTombstone { payload: t.tombstone, signature: t.signature }))
        }
        Some(pb::inbox_entry::Entry::PinOffer(s)) => Ok(InboxValue::PinOffer { sealed: s }),
        Some(pb::inbox_entry::Entry::PakeHello(s)) => Ok(InboxValue::PakeHello { sealed: s }),
        Some(pb::inbox_entry::Entry::PakeReply(r)) => Ok(InboxValue::PakeReply(PakeReply {
            offer: r.offer,
            nonce: r.nonce,
            message: r.message,
            confirm: r.confirm,
            invitation: r.invitation,
        })),
        Some(pb::inbox_entry::Entry::Claim(c)) => {
            Ok(InboxValue::Claim { ephemeral: c.ephemeral_key, sealed: c.sealed })
        }
        None => Err(DecodeError::MissingField { what: "inbox value", field: "entry" }),
    }
}

/// What a multi-use claim carries, opened: the acceptor's answer record, the
/// keys to write it, and its sealed response (MU-2).
pub(crate) struct Claim {
    pub(crate) record: crate::dht::RecordKey,
    pub(crate) owner: SigningKey,
    pub(crate) writer: SigningKey,
    pub(crate) response: Vec<u8>,
}

impl core::fmt::Debug for Claim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Claim").field("record", &self.record).finish_non_exhaustive()
    }
}

/// The claim's one-time key: X25519 of a fresh ephemeral key and the
/// inviter's identity DH key, bound to both and to the invitation's inbox.
fn claim_key(
    own: &crate::crypto::DhSecretKey,
    peer: &crate::crypto::DhPublicKey,
    ephemeral: &crate::crypto::DhPublicKey,
    inviter: &crate::crypto::DhPublicKey,
    inbox: &[u8; 32],
) -> Result<SecretKey, VerifyError> {
    crate::crypto::seal_key(own, peer, ephemeral, inviter, KeyPurpose::UseClaimSeal, &[inbox])
}

/// Tests only: the same sealed response, sealed again for another answer
/// record (what a hostile acceptor does when it points its claim at a
/// record nobody can open).
#[cfg(feature = "bench-internals")]
pub(crate) fn reseal_response(
    from: &crate::dht::RecordKey,
    to: &crate::dht::RecordKey,
    value: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Option<Vec<u8>> {
    let InboxValue::Response { sealed } = decode_value(value).ok()? else { return None };
    let old = InboxKeys::derive(from.secret()?, from.opaque());
    let new = InboxKeys::derive(to.secret()?, to.opaque());
    let padded = aead::open(&old.response, SealedKind::Response, from.opaque(), &sealed).ok()?;
    let sealed = aead::seal(&new.response, SealedKind::Response, to.opaque(), &padded, rng);
    Some(entry(pb::inbox_entry::Entry::Response(sealed)))
}

/// Seals a claim to the inviter's identity DH key (`inviter`, from the
/// invitation's snapshot): only the inviter opens it, so other ticket holders
/// cannot read who accepted or write that acceptor's answer record.
pub(crate) fn seal_claim(
    inviter: &crate::crypto::DhPublicKey,
    inbox: &[u8; 32],
    claim: &Claim,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, VerifyError> {
    let eph = crate::crypto::DhSecretKey::generate(rng);
    let eph_pub = eph.public();
    let key = claim_key(&eph, inviter, &eph_pub, inviter, inbox)?;
    let private = wire::encode_secret(pb::UseClaimPrivate {
        record: Some(super::identity::record_key_to(&claim.record)),
        owner_secret: claim.owner.expose_seed().to_vec(),
        writer_secret: claim.writer.expose_seed().to_vec(),
        response: claim.response.clone(),
    });
    let sealed = aead::seal_once(&key, SealedKind::UseClaim, inbox, &private);
    Ok(entry(pb::inbox_entry::Entry::Claim(pb::UseClaim { ephemeral_key: eph_pub.as_bytes().to_vec(), sealed })))
}

/// Opens a claim with the inviter's identity DH secret. Everything in it is
/// still untrusted: the response inside is verified by the usual checks.
pub(crate) fn open_claim(
    own: &crate::crypto::DhSecretKey,
    inbox: &[u8; 32],
    ephemeral: &[u8],
    sealed: &[u8],
) -> Result<Claim, crate::Error> {
    let eph = crate::crypto::DhPublicKey::from_bytes(ephemeral)?;
    let key = claim_key(own, &eph, &eph, &own.public(), inbox)?;
    let plain = aead::open_once(&key, SealedKind::UseClaim, inbox, sealed)?;
    let mut p: pb::UseClaimPrivate = wire::decode(&plain, limits::MAX_INBOX_VALUE, "use claim")?;
    let owner = Zeroizing::new(core::mem::take(&mut p.owner_secret));
    let writer = Zeroizing::new(core::mem::take(&mut p.writer_secret));
    let record = super::identity::record_key_from(p.record, "claim record")?;
    if record.secret().is_none() {
        return Err(DecodeError::MissingField { what: "use claim", field: "record secret" }.into());
    }
    Ok(Claim {
        record,
        owner: SigningKey::from_seed_slice(&owner)?,
        writer: SigningKey::from_seed_slice(&writer)?,
        response: p.response,
    })
}

fn tombstone_context<'a>(inbox: &'a [u8; 32], invitation_hash: &'a [u8; 32]) -> [&'a [u8]; 2] {
    [inbox, invitation_hash]
}

/// The inviter's tombstone over the response subkey, signed by its device
/// for this inbox and invitation.
pub(crate) fn tombstone(device: &SigningKey, inbox: &[u8; 32], invitation_hash: &[u8; 32], at: u64) -> Vec<u8> {
    let payload = wire::encode(&pb::Tombstone {
        version: crate::crypto::PROTOCOL_VERSION,
        inbox_key: inbox.to_vec(),
        invitation_hash: invitation_hash.to_vec(),
        at,
    });
    let sig = sign(device, SignedKind::Tombstone, &tombstone_context(inbox, invitation_hash), &payload);
    entry(pb::inbox_entry::Entry::Tombstone(pb::SignedTombstone {
        tombstone: payload,
        signature: sig.as_bytes().to_vec(),
    }))
}

impl UnverifiedTombstone {
    /// Checks the tombstone was signed by `inviter_device` for this inbox and
    /// invitation; returns when it was written (unix seconds).
    pub(crate) fn verify(
        &self,
        inviter_device: &PublicKey,
        inbox: &[u8; 32],
        invitation_hash: &[u8; 32],
    ) -> Result<u64, crate::Error> {
        let sig = Signature::from_bytes(&self.signature)?;
        if !verify(
            inviter_device,
            SignedKind::Tombstone,
            &tombstone_context(inbox, invitation_hash),
            &self.payload,
            &sig,
        ) {
            return Err(VerifyError::BadSignature.into());
        }
        let t: pb::Tombstone = wire::decode(&self.payload, limits::MAX_INBOX_VALUE, "tombstone")?;
        wire::check_version(t.version)?;
        if t.inbox_key.as_slice() != inbox || t.invitation_hash.as_slice() != invitation_hash {
            return Err(VerifyError::WrongContext("tombstone for another invitation").into());
        }
        Ok(t.at)
    }
}

fn entry(e: pb::inbox_entry::Entry) -> Vec<u8> {
    wire::encode(&pb::InboxEntry { entry: Some(e) })
}

pub(crate) fn seal_request(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    writer: &SigningKey,
    signed_invitation: &[u8],
    ekt: EncryptionKeyType,
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    // The temporary protobuf struct holds the writer seed too: wiped.
    let private = wire::encode_secret(pb::ContactRequestPrivate {
        writer_secret: writer.expose_seed().to_vec(),
        signed_invitation: signed_invitation.to_vec(),
    });
    // INT-EKT-1: the cleartext encryption_key_type is bound into the AD.
    let sealed = aead::seal_bound(&keys.request, SealedKind::Request, inbox, &ekt_bound(ekt), &private, rng);
    entry(pb::inbox_entry::Entry::Request(pb::ContactRequest {
        version: crate::crypto::PROTOCOL_VERSION,
        encryption_key_type: ekt.to_pb(),
        private: sealed,
    }))
}

/// What of a request's cleartext is bound into its associated data.
fn ekt_bound(ekt: EncryptionKeyType) -> [u8; 4] {
    ekt.to_pb().to_be_bytes()
}

/// Opens a request; `ekt` is the `encryption_key_type` the value carried in
/// cleartext, which must be the one it was sealed with (INT-EKT-1).
pub(crate) fn open_request(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    ekt: EncryptionKeyType,
    sealed: &[u8],
) -> Result<(SigningKey, UnverifiedInvitation), crate::Error> {
    let plain = aead::open_bound(&keys.request, SealedKind::Request, inbox, &ekt_bound(ekt), sealed)?;
    parse_request_private(&plain)
}

/// Decodes an opened `ContactRequestPrivate`: the writer seed and the
/// (still unverified) signed invitation.
pub(crate) fn parse_request_private(plain: &[u8]) -> Result<(SigningKey, UnverifiedInvitation), crate::Error> {
    let mut p: pb::ContactRequestPrivate = wire::decode(plain, limits::MAX_INBOX_VALUE, "request")?;
    let writer_secret = Zeroizing::new(core::mem::take(&mut p.writer_secret));
    let writer = SigningKey::from_seed_slice(&writer_secret)?;
    let inv = UnverifiedInvitation::from_bytes(&p.signed_invitation)?;
    Ok((writer, inv))
}

pub(crate) fn seal_response(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    signed_response: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, DecodeError> {
    // Fixed-size padding: u32 length prefix, message, zeros.
    if signed_response.len() + 4 > limits::RESPONSE_PADDED_LEN {
        return Err(DecodeError::TooLarge {
            what: "response",
            max: limits::RESPONSE_PADDED_LEN - 4,
            got: signed_response.len(),
        });
    }
    let mut padded = Zeroizing::new(vec![0u8; limits::RESPONSE_PADDED_LEN]);
    padded[..4].copy_from_slice(&(signed_response.len() as u32).to_be_bytes());
    padded[4..4 + signed_response.len()].copy_from_slice(signed_response);
    let sealed = aead::seal(&keys.response, SealedKind::Response, inbox, &padded, rng);
    Ok(entry(pb::inbox_entry::Entry::Response(sealed)))
}

pub(crate) fn open_response(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    sealed: &[u8],
) -> Result<UnverifiedResponse, crate::Error> {
    let padded = aead::open(&keys.response, SealedKind::Response, inbox, sealed)?;
    if padded.len() != limits::RESPONSE_PADDED_LEN {
        return Err(DecodeError::WrongLength {
            what: "padded response",
            expected: limits::RESPONSE_PADDED_LEN,
            got: padded.len(),
        }
        .into());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&padded[..4]);
    let len = u32::from_be_bytes(len) as usize;
    let body = padded.get(4..4 + len).ok_or(DecodeError::Invalid("response padding length out of range"))?;
    // One OR over the padding (branch-free, vectorizes), then one test.
    if padded[4 + len..].iter().fold(0u8, |acc, b| acc | b) != 0 {
        return Err(DecodeError::Invalid("response padding is not zero").into());
    }
    Ok(UnverifiedResponse::from_bytes(body)?)
}

pub(crate) fn seal_final(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    signed_final: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    entry(pb::inbox_entry::Entry::FinalStatus(aead::seal(
        &keys.final_status,
        SealedKind::FinalStatus,
        inbox,
        signed_final,
        rng,
    )))
}

pub(crate) fn open_final(keys: &InboxKeys, inbox: &[u8; 32], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    aead::open(&keys.final_status, SealedKind::FinalStatus, inbox, sealed)
}

/// The sealed offer of a PIN invitation (PIN-2): under the ticket's request
/// key, nothing derived from the PIN.
pub(crate) fn seal_offer(
    keys: &InboxKeys,
    inbox: &[u8; 32],
    writer: &SigningKey,
    reply_to: Option<&[u8]>,
    expires_at: u64,
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let plain = wire::encode_secret(pb::PinOffer {
        version: crate::crypto::PROTOCOL_VERSION,
        writer_secret: writer.expose_seed().to_vec(),
        reply_to: reply_to.map(<[u8]>::to_vec).unwrap_or_default(),
        expires_at,
    });
    aead::seal(&keys.request, SealedKind::PinOffer, inbox, &plain, rng)
}

/// Subkey 0 of a PIN invitation waiting for a hello.
pub(crate) fn offer_entry(sealed: &[u8]) -> Vec<u8> {
    entry(pb::inbox_entry::Entry::PinOffer(sealed.to_vec()))
}

/// Opens a PIN offer.
pub(crate) fn open_offer(keys: &InboxKeys, inbox: &[u8; 32], sealed: &[u8]) -> Result<PinOffer, crate::Error> {
    let plain = aead::open(&keys.request, SealedKind::PinOffer, inbox, sealed)?;
    let mut p: pb::PinOffer = wire::decode(&plain, limits::MAX_INBOX_VALUE, "pin offer")?;
    wire::check_version(p.version)?;
    let seed = Zeroizing::new(core::mem::take(&mut p.writer_secret));
    let writer = SigningKey::from_seed_slice(&seed)?;
    if p.reply_to.len() > limits::MAX_REPLY_ADDRESS {
        return Err(DecodeError::FieldTooLong {
            what: "offer reply address",
            max: limits::MAX_REPLY_ADDRESS,
            got: p.reply_to.len(),
        }
        .into());
    }
    let reply_to = (!p.reply_to.is_empty()).then(|| core::mem::take(&mut p.reply_to));
    Ok(PinOffer { writer, reply_to, expires_at: p.expires_at })
}

/// The invitee's hello for one attempt (PIN-3), sealed under the hello key.
pub(crate) fn hello(
    key: &SecretKey,
    inbox: &[u8; 32],
    nonce: &[u8; crate::crypto::pake::NONCE_LEN],
    message: &[u8],
    reply_to: Option<&[u8]>,
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let plain = wire::encode(&pb::PakeHello {
        version: crate::crypto::PROTOCOL_VERSION,
        nonce: nonce.to_vec(),
        message: message.to_vec(),
        reply_to: reply_to.filter(|r| r.len() <= limits::MAX_REPLY_ADDRESS).map(<[u8]>::to_vec).unwrap_or_default(),
    });
    entry(pb::inbox_entry::Entry::PakeHello(aead::seal(key, SealedKind::PakeHello, inbox, &plain, rng)))
}

/// An opened hello.
pub(crate) struct Hello {
    pub(crate) nonce: [u8; crate::crypto::pake::NONCE_LEN],
    pub(crate) message: Vec<u8>,
    /// The invitee's reply address (untrusted: only ever nudged).
    pub(crate) reply_to: Option<Vec<u8>>,
}

/// Opens a hello: its nonce, SPAKE2 message and the invitee's reply address.
pub(crate) fn open_hello(key: &SecretKey, inbox: &[u8; 32], sealed: &[u8]) -> Result<Hello, crate::Error> {
    let plain = aead::open(key, SealedKind::PakeHello, inbox, sealed)?;
    let h: pb::PakeHello = wire::decode(&plain, limits::MAX_INBOX_VALUE, "pake hello")?;
    wire::check_version(h.version)?;
    let nonce = <[u8; crate::crypto::pake::NONCE_LEN]>::try_from(h.nonce.as_slice()).map_err(|_| {
        DecodeError::WrongLength { what: "hello nonce", expected: crate::crypto::pake::NONCE_LEN, got: h.nonce.len() }
    })?;
    if h.message.len() != crate::crypto::pake::MESSAGE_LEN {
        return Err(DecodeError::WrongLength {
            what: "hello message",
            expected: crate::crypto::pake::MESSAGE_LEN,
            got: h.message.len(),
        }
        .into());
    }
    if h.reply_to.len() > limits::MAX_REPLY_ADDRESS {
        return Err(DecodeError::FieldTooLong {
            what: "hello reply address",
            max: limits::MAX_REPLY_ADDRESS,
            got: h.reply_to.len(),
        }
        .into());
    }
    let reply_to = (!h.reply_to.is_empty()).then_some(h.reply_to);
    Ok(Hello { nonce, message: h.message, reply_to })
}

/// The inviter's reply to one hello (PIN-4): the offer again, the hello's
/// nonce, SPAKE2 message B, the confirmation tag and the signed invitation
/// sealed under the PAKE key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pake_reply(
    offer: &[u8],
    nonce: &[u8],
    message: &[u8],
    confirm: &[u8],
    invitation_key: &SecretKey,
    inbox: &[u8; 32],
    signed_invitation: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let invitation = aead::seal_bound(invitation_key, SealedKind::PakeInvitation, inbox, nonce, signed_invitation, rng);
    entry(pb::inbox_entry::Entry::PakeReply(pb::PakeReply {
        offer: offer.to_vec(),
        nonce: nonce.to_vec(),
        message: message.to_vec(),
        confirm: confirm.to_vec(),
        invitation,
    }))
}

/// Opens the invitation in a reply whose tag verified.
pub(crate) fn open_pake_invitation(
    invitation_key: &SecretKey,
    inbox: &[u8; 32],
    nonce: &[u8],
    sealed: &[u8],
) -> Result<UnverifiedInvitation, crate::Error> {
    let plain = aead::open_bound(invitation_key, SealedKind::PakeInvitation, inbox, nonce, sealed)?;
    Ok(UnverifiedInvitation::from_bytes(&plain)?)
}
