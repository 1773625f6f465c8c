//! Requests to a known address: a requester leaves a signed, sealed contact
//! request in a slot of the recipient's published request inbox.
//!
//! Slot value: `RequestSlot { ephemeral_key, stamp, sealed }`. The recipient
//! checks, in this order and before anything is shown to the user:
//! 1. size caps, then the proof-of-work stamp over (recipient, inbox,
//!    ephemeral key): one hash, before any decryption;
//! 2. the seal: XChaCha20-Poly1305 under a key from X25519(ephemeral,
//!    recipient identity DH key), bound to both public keys, the recipient
//!    identity and the inbox;
//! 3. the signature by the requester's device over the exact bytes, bound to
//!    the recipient, the inbox, the ephemeral key and the requester identity;
//! 4. the key-to-identity binding: the embedded identity record is signed by
//!    the claimed identity key and lists the signing device as current;
//! 5. times, and that the ticket inside is a contact ticket.

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use super::InvitationKind;
use super::identity::{SignedIdentity, record_key_from, record_key_to};
use super::invitation::check_times;
use super::profile::Profile;
use crate::crypto::aead::{self, SealedKind};
use crate::crypto::kdf::KeyPurpose;
use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{DhPublicKey, DhSecretKey, PublicKey, Signature, SigningKey, message_hash, pow, seal_key};
use crate::dht::RecordKey;
use crate::encoding::Ticket;
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// Largest request-slot value accepted.
pub(crate) const MAX_SLOT_VALUE: usize = limits::MAX_SIGNED_ADDRESS_REQUEST + 128;

/// The content of a request to a known address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRequestContent {
    /// The recipient identity.
    pub recipient_identity: PublicKey,
    /// The recipient's request inbox (opaque key).
    pub request_inbox: [u8; 32],
    /// The seal's ephemeral X25519 key (also what the stamp is bound to).
    pub ephemeral_key: DhPublicKey,
    /// The requester identity.
    pub identity_key: PublicKey,
    /// The requester device that signed.
    pub device_key: PublicKey,
    /// Where the requester's identity record lives.
    pub identity_record: RecordKey,
    /// The requester's profile.
    pub profile: Profile,
    /// The requester's contact invitation (a bearer secret: redacted in `Debug`).
    pub ticket: Ticket,
    /// Greeting, covered by the signature.
    pub message: String,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Expires (unix seconds): the invitation's expiry.
    pub expires_at: u64,
}

fn context(c: &AddressRequestContent) -> [Vec<u8>; 4] {
    [
        c.recipient_identity.as_bytes().to_vec(),
        c.request_inbox.to_vec(),
        c.ephemeral_key.as_bytes().to_vec(),
        c.identity_key.as_bytes().to_vec(),
    ]
}

fn seal_context<'a>(recipient: &'a PublicKey, inbox: &'a [u8; 32]) -> [&'a [u8]; 2] {
    [recipient.as_bytes(), inbox]
}

impl AddressRequestContent {
    /// Signs with the requester's device key, embedding its identity record.
    pub(crate) fn sign(&self, device: &SigningKey, identity: &SignedIdentity) -> Result<Vec<u8>, DecodeError> {
        if device.public() != self.device_key {
            return Err(DecodeError::Invalid("request signed by a key other than its device key"));
        }
        if self.message.len() > limits::MAX_MESSAGE {
            return Err(DecodeError::FieldTooLong {
                what: "request message",
                max: limits::MAX_MESSAGE,
                got: self.message.len(),
            });
        }
        let payload = wire::encode(&pb::AddressRequest {
            version: crate::crypto::PROTOCOL_VERSION,
            recipient_identity: self.recipient_identity.as_bytes().to_vec(),
            request_inbox: self.request_inbox.to_vec(),
            ephemeral_key: self.ephemeral_key.as_bytes().to_vec(),
            identity_key: self.identity_key.as_bytes().to_vec(),
            device_key: self.device_key.as_bytes().to_vec(),
            identity_record: Some(record_key_to(&self.identity_record)),
            signed_identity: identity.to_bytes().to_vec(),
            profile: Some(pb::Profile::from(&self.profile)),
            ticket: self.ticket.to_bytes(),
            message: self.message.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
        });
        let ctx = context(self);
        let refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        let sig = sign(device, SignedKind::AddressRequest, &refs, &payload);
        let out =
            wire::encode(&pb::SignedAddressRequest { address_request: payload, signature: sig.as_bytes().to_vec() });
        if out.len() > limits::MAX_SIGNED_ADDRESS_REQUEST {
            return Err(DecodeError::TooLarge {
                what: "signed address request",
                max: limits::MAX_SIGNED_ADDRESS_REQUEST,
                got: out.len(),
            });
        }
        Ok(out)
    }
}

/// Seals a signed request to the recipient's DH key (the `sealed` field of
/// a slot value; its stamp is minted afterwards over [`stamp_subject`]).
pub(crate) fn seal_request(
    signed: &[u8],
    ephemeral: &DhSecretKey,
    recipient: &PublicKey,
    recipient_dh: &DhPublicKey,
    inbox: &[u8; 32],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, VerifyError> {
    let eph_pub = ephemeral.public();
    let key = seal_key(
        ephemeral,
        recipient_dh,
        &eph_pub,
        recipient_dh,
        KeyPurpose::AddressRequestSeal,
        &seal_context(recipient, inbox),
    )?;
    Ok(aead::seal(&key, SealedKind::AddressRequest, inbox, signed, rng))
}

/// What a slot's stamp is bound to besides the recipient and its inbox
/// (EDGE-RQ-3): the ephemeral key **and the sealed bytes**, so a stamp
/// copied beside other bytes is worthless and every distinct value the
/// recipient opens cost its sender a stamp.
#[must_use]
pub(crate) fn stamp_subject(ephemeral: &[u8; 32], sealed: &[u8]) -> [u8; 32] {
    message_hash(&[b"request stamp subject".as_slice(), ephemeral, sealed].concat())
}

/// A slot value: the ephemeral key, the stamp (minted by [`pow::mint`] over
/// [`stamp_subject`]) and the sealed request.
#[must_use]
pub(crate) fn slot_value(ephemeral: &DhPublicKey, stamp: u64, sealed: Vec<u8>) -> Vec<u8> {
    wire::encode(&pb::RequestSlot { ephemeral_key: ephemeral.as_bytes().to_vec(), stamp, sealed })
}

/// The id of a slot value: the hash of the **whole** value, so an exact
/// replay is dropped before the stamp check or any decryption, while junk
/// that copies a genuine request's ephemeral key (and stamp) has an id of
/// its own and cannot suppress the genuine request (rule EDGE-RQ-2).
pub(crate) fn slot_id(bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
    let _: pb::RequestSlot = wire::decode(bytes, MAX_SLOT_VALUE, "request slot")?;
    Ok(message_hash(&[b"request slot value".as_slice(), bytes].concat()))
}

/// Checks a slot's stamp, then opens its seal with the recipient's DH secret.
pub(crate) fn open_slot(
    bytes: &[u8],
    own_dh: &DhSecretKey,
    recipient: &PublicKey,
    inbox: &[u8; 32],
    pow_bits: u32,
) -> Result<UnverifiedAddressRequest, crate::Error> {
    let slot: pb::RequestSlot = wire::decode(bytes, MAX_SLOT_VALUE, "request slot")?;
    let eph_bytes = wire::bytes32(&slot.ephemeral_key, "ephemeral key")?;
    // INV-AR-1: the stamp is checked first; nothing else is spent on a
    // request without one. EDGE-RQ-3: it covers the sealed bytes too.
    let subject = stamp_subject(&eph_bytes, &slot.sealed);
    if !pow::check(pow_bits, recipient.as_bytes(), inbox, &subject, slot.stamp) {
        return Err(VerifyError::InsufficientWork { required: pow_bits }.into());
    }
    let eph = DhPublicKey::from_bytes(&eph_bytes)?;
    let own_pub = own_dh.public();
    let key = seal_key(own_dh, &eph, &eph, &own_pub, KeyPurpose::AddressRequestSeal, &seal_context(recipient, inbox))?;
    let plain = aead::open(&key, SealedKind::AddressRequest, inbox, &slot.sealed)?;
    let request = UnverifiedAddressRequest::from_bytes(&plain)?;
    if request.content.ephemeral_key != eph {
        return Err(VerifyError::WrongContext("request sealed with another ephemeral key").into());
    }
    Ok(request)
}

/// A request parsed from bytes, not yet checked. Exposes only [`Self::verify`].
#[derive(Debug)]
pub struct UnverifiedAddressRequest {
    payload: Vec<u8>,
    signature: Signature,
    content: AddressRequestContent,
    identity_bytes: Vec<u8>,
}

impl UnverifiedAddressRequest {
    /// Parses an encoded `SignedAddressRequest`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let signed: pb::SignedAddressRequest =
            wire::decode(bytes, limits::MAX_SIGNED_ADDRESS_REQUEST, "signed address request")?;
        let signature = Signature::from_bytes(&signed.signature)?;
        let p: pb::AddressRequest =
            wire::decode(&signed.address_request, limits::MAX_SIGNED_ADDRESS_REQUEST, "address request")?;
        wire::check_version(p.version)?;
        if p.message.len() > limits::MAX_MESSAGE {
            return Err(DecodeError::FieldTooLong {
                what: "request message",
                max: limits::MAX_MESSAGE,
                got: p.message.len(),
            });
        }
        let content = AddressRequestContent {
            recipient_identity: PublicKey::from_bytes(&p.recipient_identity)?,
            request_inbox: wire::bytes32(&p.request_inbox, "request inbox")?,
            ephemeral_key: DhPublicKey::from_bytes(&p.ephemeral_key)?,
            identity_key: PublicKey::from_bytes(&p.identity_key)?,
            device_key: PublicKey::from_bytes(&p.device_key)?,
            identity_record: record_key_from(p.identity_record, "identity record")?,
            profile: Profile::try_from(
                p.profile.ok_or(DecodeError::MissingField { what: "request", field: "profile" })?,
            )?,
            ticket: Ticket::from_bytes(&zeroize::Zeroizing::new(p.ticket))
                .map_err(|_| DecodeError::Invalid("request: invalid ticket"))?,
            message: p.message,
            created_at: p.created_at,
            expires_at: p.expires_at,
        };
        Ok(Self { payload: signed.address_request, signature, content, identity_bytes: p.signed_identity })
    }

    /// The one way to a [`VerifiedAddressRequest`]: signature over the exact
    /// bytes bound to this recipient, inbox and ephemeral key; the
    /// requester's key-to-identity binding; times; and a contact ticket.
    pub fn verify(
        self,
        recipient: &PublicKey,
        inbox: &[u8; 32],
        now: u64,
    ) -> Result<VerifiedAddressRequest, crate::Error> {
        let c = &self.content;
        let ctx = context(c);
        let refs: Vec<&[u8]> = ctx.iter().map(Vec::as_slice).collect();
        // INV-AR-2: signature over exact bytes, bound to recipient, inbox, ephemeral key, requester.
        if !verify(&c.device_key, SignedKind::AddressRequest, &refs, &self.payload, &self.signature) {
            return Err(VerifyError::BadSignature.into());
        }
        if &c.recipient_identity != recipient || &c.request_inbox != inbox {
            return Err(VerifyError::WrongContext("request addressed to another identity or inbox").into());
        }
        // INV-AR-3: the signing device chains to the claimed identity (key-to-ID binding).
        let identity = SignedIdentity::verify(&self.identity_bytes, Some(&c.identity_key))?;
        identity.require_current(&c.device_key)?;
        // FRESH-1: the requester's location is the one its identity key signed.
        identity.require_location(&c.identity_record)?;
        if &c.identity_key == recipient {
            return Err(VerifyError::WrongContext("a request from ourselves").into());
        }
        check_times(c.created_at, c.expires_at, now)?;
        // INV-AR-4: it carries a contact ticket.
        let ticket = &c.ticket;
        if ticket.kind != InvitationKind::Contact || ticket.is_locked() {
            return Err(VerifyError::WrongContext("a request must carry an unlocked contact ticket").into());
        }
        // The id of the request itself: its whole signed content, however
        // the slot around it was encoded.
        let id = message_hash(&[b"address request".as_slice(), &self.payload, self.signature.as_bytes()].concat());
        Ok(VerifiedAddressRequest { content: self.content, identity, id })
    }
}

/// A request whose signature, binding, context and times were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAddressRequest {
    content: AddressRequestContent,
    identity: SignedIdentity,
    id: [u8; 32],
}

impl VerifiedAddressRequest {
    /// The verified content.
    pub fn content(&self) -> &AddressRequestContent {
        &self.content
    }
    /// The requester's verified identity record snapshot.
    pub fn identity(&self) -> &SignedIdentity {
        &self.identity
    }
    /// The request's id: a hash of its whole signed content (payload and
    /// signature), the same for every encoding of the slot that carried it.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
}
