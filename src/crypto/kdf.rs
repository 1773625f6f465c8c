//! Labelled key derivation (BLAKE3 `derive_key`). Every derived key has its own
//! label, so no secret ever serves two purposes: the invitation secret is never
//! used directly as a key, only as input to these derivations.

use super::SecretKey;

/// Purposes a key can be derived for. Each maps to a distinct, versioned label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyPurpose {
    /// AEAD key sealing the request (invitation + writer secret) in the inbox.
    RequestSeal,
    /// AEAD key sealing responses in the inbox writer subkey.
    ResponseSeal,
    /// AEAD key sealing the inviter's final status.
    FinalStatusSeal,
    /// Mask applied to the invitation secret by a password/PIN.
    PasswordMask,
    /// Conversation key shared by two contacts.
    Conversation,
    /// Identity DH secret derived from an account's internal key.
    IdentityDh,
    /// Content hash of a signed message (invitation, response).
    MessageHash,
    /// AEAD key sealing a device-link handover to the new device's X25519 key.
    DeviceHandover,
    /// AEAD key sealing a request to a known address to the recipient's X25519 key.
    AddressRequestSeal,
    /// Name of a signed message: over its canonical content (kind, payload,
    /// signature), never over an encoding of it.
    SignedMessageHash,
    /// A device's X25519 secret, derived from its signing key's seed.
    DeviceDh,
    /// AEAD key sealing a rotated account secret to one device's X25519 key.
    AccountKeyCopy,
    /// An inbox's 32-byte secret, from the ticket's 128-bit invitation secret.
    InboxSecret,
    /// PIN invitations: the key sealing the PAKE hello, from the inbox secret.
    PakeHelloSeal,
    /// PIN invitations: the key sealing the invitation in a PAKE reply, from the PAKE key.
    PakeInvitationSeal,
    /// PIN invitations: the inviter's key-confirmation tag, from the PAKE key.
    PakeConfirm,
    /// PIN invitations: the session secret (root of the response and final
    /// status keys), from the PAKE key.
    PakeSession,
    /// Multi-use invitations: the one-time key sealing a claim to the
    /// inviter's identity X25519 key.
    UseClaimSeal,
}

impl KeyPurpose {
    fn label(self) -> &'static str {
        match self {
            Self::RequestSeal => "contact-invite v1 2026-11 request seal",
            Self::ResponseSeal => "contact-invite v1 2026-11 response seal",
            Self::FinalStatusSeal => "contact-invite v1 2026-11 final status seal",
            Self::PasswordMask => "contact-invite v1 2026-11 password mask",
            Self::Conversation => "contact-invite v1 2026-11 conversation key",
            Self::IdentityDh => "contact-invite v1 2026-11 identity dh",
            Self::MessageHash => "contact-invite v1 2026-11 message hash",
            Self::DeviceHandover => "contact-invite v1 2026-11 device handover",
            Self::AddressRequestSeal => "contact-invite v1 2026-11 address request seal",
            Self::SignedMessageHash => "contact-invite v2 2026-12 signed message hash",
            Self::DeviceDh => "contact-invite v2 2026-12 device dh",
            Self::AccountKeyCopy => "contact-invite v2 2026-12 account key copy",
            Self::InboxSecret => "contact-invite v3 2026-12 inbox secret",
            Self::PakeHelloSeal => "contact-invite v4 2026-12 pake hello seal",
            Self::PakeInvitationSeal => "contact-invite v4 2026-12 pake invitation seal",
            Self::PakeConfirm => "contact-invite v4 2026-12 pake confirm",
            Self::PakeSession => "contact-invite v4 2026-12 pake session",
            Self::UseClaimSeal => "contact-invite v5 2026-12 use claim seal",
        }
    }
}

/// Derives a 32-byte key for `purpose` from `ikm`, binding `context` (length-prefixed).
pub(crate) fn derive(purpose: KeyPurpose, ikm: &[u8], context: &[&[u8]]) -> SecretKey {
    let mut h = blake3::Hasher::new_derive_key(purpose.label());
    h.update(&(ikm.len() as u64).to_le_bytes());
    h.update(ikm);
    for c in context {
        h.update(&(c.len() as u64).to_le_bytes());
        h.update(c);
    }
    let mut out = *h.finalize().as_bytes();
    SecretKey::from_bytes(&mut out)
}

impl super::InviteSecret {
    /// The inbox's 32-byte secret: the DHT record's encryption key, and the
    /// root of the inbox's sealing keys (`InboxKeys`).
    pub fn inbox_secret(&self) -> SecretKey {
        derive(KeyPurpose::InboxSecret, self.expose(), &[])
    }
}

/// Content hash of some exact bytes. Signed protocol messages are named by
/// [`signed_message_hash`] instead (INT-HASH-1).
pub fn message_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(KeyPurpose::MessageHash.label());
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// The name of a signed message (invitation, response): a hash over its
/// canonical content `frame(what) ‖ frame(payload) ‖ frame(signature)`, so
/// any two encodings of the same signed message have the same name (INT-HASH-1).
/// The payload bytes are covered by the signature and strict Ed25519 admits
/// one signature encoding, so only the signer can make a different name.
pub fn signed_message_hash(what: &[u8], payload: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(KeyPurpose::SignedMessageHash.label());
    for part in [what, payload, signature] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_message_hash_is_framed_and_labelled() {
        let h = signed_message_hash(b"response", b"payload", b"sig");
        assert_eq!(h, signed_message_hash(b"response", b"payload", b"sig"));
        assert_ne!(h, signed_message_hash(b"invitation", b"payload", b"sig"));
        assert_ne!(h, signed_message_hash(b"response", b"payloa", b"dsig"));
        assert_ne!(h, message_hash(b"payloadsig"));
    }

    #[test]
    fn purposes_and_contexts_give_independent_keys() {
        let a = derive(KeyPurpose::RequestSeal, b"secret", &[b"rec"]);
        let b = derive(KeyPurpose::ResponseSeal, b"secret", &[b"rec"]);
        let c = derive(KeyPurpose::RequestSeal, b"secret", &[b"rec2"]);
        let d = derive(KeyPurpose::RequestSeal, b"secret", &[b"re", b"c"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, derive(KeyPurpose::RequestSeal, b"secret", &[b"rec"]));
        assert_ne!(a.expose(), b"secret\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    }
}
