//! Domain-separated, length-prefixed signatures.
//!
//! A signature never covers bare payload bytes. It covers
//! `frame(PROTOCOL_LABEL) ‖ u32(version) ‖ frame(kind) ‖ frame(ctx₀) ‖ … ‖ frame(payload)`
//! where `frame(x) = u32_be(len(x)) ‖ x`. The context fields carry what the
//! verifier already knows (inbox record key, expiry, signer identity, hash of
//! the invitation being answered), so a signature made for one inbox, one
//! invitation or one message kind never verifies for another. The payload is
//! verified over exactly the bytes received; nothing is re-encoded.

use super::{PublicKey, Signature, SigningKey};

/// Protocol label bound into every signature, AEAD and key derivation.
pub const PROTOCOL_LABEL: &[u8] = b"contact-invite";
/// Wire/protocol version bound into every signature.
///
/// Version 2: message hashes over canonical content, signed tombstones, the
/// request's `encryption_key_type` bound into its associated data, device DH
/// keys and account-secret rotations in identity records, identity records
/// carry their signed location. Version 3: a request's proof-of-work stamp
/// covers its sealed bytes (EDGE-RQ-3).
pub const PROTOCOL_VERSION: u32 = 3;

/// What a signature is for. Each kind is a distinct domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignedKind {
    /// A contact invitation (inviter's device key).
    Invitation,
    /// A device-link invitation (old device's key).
    DeviceLinkInvitation,
    /// A response to an invitation (invitee's device key).
    Response,
    /// The inviter's final status for an invitation.
    FinalStatus,
    /// An identity record (identity key).
    IdentityRecord,
    /// A new device's consent to join an account (new device key).
    DeviceConsent,
    /// A contact request to a known address (requester's device key).
    AddressRequest,
    /// An application message between contacts (sender's device key).
    ContactMessage,
    /// The inviter's tombstone over the response subkey (inviter device key).
    Tombstone,
}

impl SignedKind {
    pub(crate) fn label(self) -> &'static [u8] {
        match self {
            Self::Invitation => b"invitation",
            Self::DeviceLinkInvitation => b"device-link-invitation",
            Self::Response => b"response",
            Self::FinalStatus => b"final-status",
            Self::IdentityRecord => b"identity-record",
            Self::DeviceConsent => b"account-add",
            Self::AddressRequest => b"address-request",
            Self::ContactMessage => b"contact-message",
            Self::Tombstone => b"tombstone",
        }
    }
}

fn frame(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded by the message size caps, far below u32::MAX.
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The exact bytes that are signed.
pub(crate) fn signing_input(kind: SignedKind, context: &[&[u8]], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + payload.len() + context.iter().map(|c| c.len() + 4).sum::<usize>());
    frame(&mut out, PROTOCOL_LABEL);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    frame(&mut out, kind.label());
    out.extend_from_slice(&(context.len() as u32).to_be_bytes());
    for c in context {
        frame(&mut out, c);
    }
    frame(&mut out, payload);
    out
}

/// Signs `payload` for `kind` bound to `context`.
pub(crate) fn sign(key: &SigningKey, kind: SignedKind, context: &[&[u8]], payload: &[u8]) -> Signature {
    key.sign_raw(&signing_input(kind, context, payload))
}

/// Verifies a signature made by [`sign`] with the same kind and context.
#[must_use]
pub(crate) fn verify(key: &PublicKey, kind: SignedKind, context: &[&[u8]], payload: &[u8], sig: &Signature) -> bool {
    key.verify_raw(&signing_input(kind, context, payload), sig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn signatures_are_bound_to_kind_context_and_payload() {
        let k = SigningKey::generate(&mut OsRng);
        let p = k.public();
        let sig = sign(&k, SignedKind::Invitation, &[b"inbox-A", b"exp"], b"payload");
        assert!(verify(&p, SignedKind::Invitation, &[b"inbox-A", b"exp"], b"payload", &sig));
        assert!(!verify(&p, SignedKind::Response, &[b"inbox-A", b"exp"], b"payload", &sig));
        assert!(!verify(&p, SignedKind::Invitation, &[b"inbox-B", b"exp"], b"payload", &sig));
        assert!(!verify(&p, SignedKind::Invitation, &[b"inbox-A"], b"payload", &sig));
        assert!(!verify(&p, SignedKind::Invitation, &[b"inbox-A", b"exp"], b"payloaD", &sig));
        // Moving bytes between context fields changes the framing.
        assert!(!verify(&p, SignedKind::Invitation, &[b"inbox-", b"Aexp"], b"payload", &sig));
        let other = SigningKey::generate(&mut OsRng).public();
        assert!(!verify(&other, SignedKind::Invitation, &[b"inbox-A", b"exp"], b"payload", &sig));
    }
}
