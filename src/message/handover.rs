//! Device links: the account secret and the updated identity record, sealed
//! by the old device to the new device's X25519 key (PZP's unimplemented
//! `promise.account-internal-encryption-key`).
//!
//! The final status that carries the handover is itself sealed with inbox
//! keys that anyone holding the ticket can derive, so the handover is sealed
//! once more, to a key only the responding device holds. Layout:
//! `ephemeral X25519 public key (32) ‖ nonce ‖ AEAD(DeviceHandover)`, with the
//! AEAD key derived from X25519(ephemeral, device key) bound to the inbox,
//! the invitation hash, the response hash and the new device's signing key.

use rand_core::CryptoRngCore;

use super::identity::SignedIdentity;
use crate::crypto::aead::{self, SealedKind};
use crate::crypto::kdf::KeyPurpose;
use crate::crypto::{DhPublicKey, DhSecretKey, PublicKey, SecretKey, seal_key};
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// What binds a handover to one link.
pub(crate) struct HandoverContext<'a> {
    pub(crate) inbox: &'a [u8; 32],
    pub(crate) invitation_hash: &'a [u8; 32],
    pub(crate) response_hash: &'a [u8; 32],
    pub(crate) device: &'a PublicKey,
}

impl HandoverContext<'_> {
    fn parts(&self) -> [&[u8]; 4] {
        [self.inbox, self.invitation_hash, self.response_hash, self.device.as_bytes()]
    }
}

/// Seals the account key and the signed identity record to `device_dh`.
pub(crate) fn seal(
    ctx: &HandoverContext<'_>,
    device_dh: &DhPublicKey,
    account_key: &SecretKey,
    identity: &SignedIdentity,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, VerifyError> {
    let eph = DhSecretKey::generate(rng);
    let eph_pub = eph.public();
    let key = seal_key(&eph, device_dh, &eph_pub, device_dh, KeyPurpose::DeviceHandover, &ctx.parts())?;
    // The temporary protobuf struct holds the account key too: wiped.
    let plain = wire::encode_secret(pb::DeviceHandover {
        account_key: account_key.expose().to_vec(),
        signed_identity: identity.to_bytes().to_vec(),
    });
    let mut out = eph_pub.as_bytes().to_vec();
    out.extend(aead::seal(&key, SealedKind::Handover, ctx.inbox, &plain, rng));
    Ok(out)
}

/// Opens a handover with the new device's DH secret and verifies the identity
/// record it carries: signed by `identity`, listing `ctx.device` as current
/// with `own`'s public key as its DH key (so later rotations reach it), and
/// the account secret derives the record's DH key (REV-3).
pub(crate) fn open(
    ctx: &HandoverContext<'_>,
    own: &DhSecretKey,
    identity: &PublicKey,
    bytes: &[u8],
) -> Result<(SecretKey, SignedIdentity), crate::Error> {
    if bytes.len() > limits::MAX_SIGNED_FINAL_STATUS {
        return Err(
            DecodeError::TooLarge { what: "handover", max: limits::MAX_SIGNED_FINAL_STATUS, got: bytes.len() }.into()
        );
    }
    let (eph, sealed) = bytes.split_at_checked(32).ok_or(VerifyError::DecryptionFailed)?;
    let eph = DhPublicKey::from_bytes(eph)?;
    let own_pub = own.public();
    let key = seal_key(own, &eph, &eph, &own_pub, KeyPurpose::DeviceHandover, &ctx.parts())?;
    let plain = aead::open(&key, SealedKind::Handover, ctx.inbox, sealed)?;
    let mut h: pb::DeviceHandover = wire::decode(&plain, limits::MAX_SIGNED_FINAL_STATUS, "device handover")?;
    let account_key = SecretKey::from_slice(&h.account_key);
    wire::ClearSecrets::clear_secrets(&mut h);
    let account_key = account_key?;
    let signed = SignedIdentity::verify(&h.signed_identity, Some(identity))?;
    signed.require_current(ctx.device)?;
    // REV-3: the handed-over secret must be the one behind the published DH key.
    if DhSecretKey::from_account_key(&account_key).public() != signed.record().dh_key {
        return Err(VerifyError::AccountKeyMismatch.into());
    }
    if signed.record().devices.iter().find(|d| &d.device_key == ctx.device).map(|d| d.dh_key) != Some(own_pub) {
        return Err(VerifyError::WrongContext("the handed-over record lists this device with another DH key").into());
    }
    Ok((account_key, signed))
}
