//! XChaCha20-Poly1305 sealing with associated data that binds the record key
//! and the message kind. Sealed layout: `nonce(24) ‖ ciphertext ‖ tag(16)`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::SecretKey;
use super::sign::{PROTOCOL_LABEL, PROTOCOL_VERSION};
use crate::error::VerifyError;

/// Nonce length.
pub(crate) const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a seal adds to the plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// What a ciphertext holds; bound into the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SealedKind {
    /// The inbox request (owner subkey).
    Request,
    /// A response (writer subkey).
    Response,
    /// The final status (owner subkey).
    FinalStatus,
    /// A device-link handover (inside the final status).
    Handover,
    /// A request to a known address (request-inbox slot).
    AddressRequest,
    /// A rotated account secret sealed to one device (identity record).
    AccountKeyCopy,
    /// A PIN invitation's offer (owner subkey, under the ticket's keys).
    PinOffer,
    /// A PIN invitation's PAKE hello (writer subkey, under the ticket's keys).
    PakeHello,
    /// The signed invitation inside a PAKE reply (under the PAKE key).
    PakeInvitation,
    /// A multi-use invitation's claim (a claim slot, sealed to the
    /// inviter's identity X25519 key).
    UseClaim,
}

impl SealedKind {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Request => b"request",
            Self::Response => b"response",
            Self::FinalStatus => b"final-status",
            Self::Handover => b"device-handover",
            Self::AddressRequest => b"address-request",
            Self::AccountKeyCopy => b"account-key-copy",
            Self::PinOffer => b"pin-offer",
            Self::PakeHello => b"pake-hello",
            Self::PakeInvitation => b"pake-invitation",
            Self::UseClaim => b"use-claim",
        }
    }
}

/// `label ‖ version ‖ len(kind) ‖ kind ‖ record ‖ bound`. `bound` is what the
/// value carries in cleartext next to the ciphertext (for a request: its
/// `encryption_key_type`), so that changing it makes the value not open.
fn associated_data(kind: SealedKind, record: &[u8; 32], bound: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(80 + bound.len());
    ad.extend_from_slice(PROTOCOL_LABEL);
    ad.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    ad.push(kind.label().len() as u8);
    ad.extend_from_slice(kind.label());
    ad.extend_from_slice(record);
    ad.extend_from_slice(bound);
    ad
}

/// Seals `plaintext` for `record` and `kind`.
pub(crate) fn seal(
    key: &SecretKey,
    kind: SealedKind,
    record: &[u8; 32],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    seal_bound(key, kind, record, &[], plaintext, rng)
}

/// Seals like [`seal`], also binding `bound` (cleartext that travels beside
/// the ciphertext) into the associated data.
pub(crate) fn seal_bound(
    key: &SecretKey,
    kind: SealedKind,
    record: &[u8; 32],
    bound: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ad = associated_data(kind, record, bound);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&nonce);
    // Encryption with a valid key and in-memory buffers cannot fail.
    let ct = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &ad }).unwrap_or_default();
    out.extend_from_slice(&ct);
    out
}

/// Seals under a key that seals exactly one message (derived from a fresh
/// ephemeral X25519 key for one recipient): the nonce is all zeros and not
/// stored, so the output is `ciphertext ‖ tag`. Never use a key twice here.
pub(crate) fn seal_once(key: &SecretKey, kind: SealedKind, record: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ad = associated_data(kind, record, &[]);
    // Encryption with a valid key and in-memory buffers cannot fail.
    cipher.encrypt(XNonce::from_slice(&[0; NONCE_LEN]), Payload { msg: plaintext, aad: &ad }).unwrap_or_default()
}

/// Opens a ciphertext made by [`seal_once`].
pub(crate) fn open_once(
    key: &SecretKey,
    kind: SealedKind,
    record: &[u8; 32],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ad = associated_data(kind, record, &[]);
    cipher
        .decrypt(XNonce::from_slice(&[0; NONCE_LEN]), Payload { msg: sealed, aad: &ad })
        .map(Zeroizing::new)
        .map_err(|_| VerifyError::DecryptionFailed)
}

/// Opens a ciphertext made by [`seal`] with the same key, kind and record.
pub(crate) fn open(
    key: &SecretKey,
    kind: SealedKind,
    record: &[u8; 32],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    open_bound(key, kind, record, &[], sealed)
}

/// Opens a ciphertext made by [`seal_bound`] with the same key, kind, record
/// and bound cleartext.
pub(crate) fn open_bound(
    key: &SecretKey,
    kind: SealedKind,
    record: &[u8; 32],
    bound: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VerifyError> {
    if sealed.len() < OVERHEAD {
        return Err(VerifyError::DecryptionFailed);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ad = associated_data(kind, record, bound);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &ad })
        .map(Zeroizing::new)
        .map_err(|_| VerifyError::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn seal_open_bound_to_kind_and_record() {
        let k = SecretKey::generate(&mut OsRng);
        let r = [7u8; 32];
        let s = seal(&k, SealedKind::Request, &r, b"hello", &mut OsRng);
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert_eq!(open(&k, SealedKind::Request, &r, &s).unwrap().as_slice(), b"hello");
        assert_eq!(open(&k, SealedKind::Response, &r, &s), Err(VerifyError::DecryptionFailed));
        assert_eq!(open(&k, SealedKind::Request, &[8u8; 32], &s), Err(VerifyError::DecryptionFailed));
        let k2 = SecretKey::generate(&mut OsRng);
        assert_eq!(open(&k2, SealedKind::Request, &r, &s), Err(VerifyError::DecryptionFailed));
        for i in 0..s.len() * 8 {
            let mut t = s.clone();
            t[i / 8] ^= 1 << (i % 8);
            assert!(open(&k, SealedKind::Request, &r, &t).is_err(), "bit {i}");
        }
        assert!(open(&k, SealedKind::Request, &r, &s[..OVERHEAD - 1]).is_err());
    }

    #[test]
    fn bound_cleartext_is_authenticated() {
        let k = SecretKey::generate(&mut OsRng);
        let r = [7u8; 32];
        let s = seal_bound(&k, SealedKind::Request, &r, &1i32.to_be_bytes(), b"hello", &mut OsRng);
        assert!(open_bound(&k, SealedKind::Request, &r, &1i32.to_be_bytes(), &s).is_ok());
        // INT-EKT-1: a flipped cleartext field (NONE -> PASSWORD) does not open.
        assert!(open_bound(&k, SealedKind::Request, &r, &3i32.to_be_bytes(), &s).is_err());
        assert!(open(&k, SealedKind::Request, &r, &s).is_err());
    }
}
