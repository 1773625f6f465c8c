//! X25519 key agreement for conversation keys.

use core::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SecretKey;
use super::kdf::{KeyPurpose, derive};
use crate::error::{DecodeError, VerifyError};

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DhPublicKey([u8; 32]);

impl DhPublicKey {
    /// Parses 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self(bytes.try_into().map_err(|_| DecodeError::WrongLength {
            what: "X25519 public key",
            expected: 32,
            got: bytes.len(),
        })?))
    }
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DhPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhPublicKey({})", data_encoding::HEXLOWER.encode(&self.0[..8]))
    }
}

/// An X25519 static secret. Zeroized on drop, redacted `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct DhSecretKey(SecretKey);

impl DhSecretKey {
    /// A fresh secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(SecretKey::generate(rng))
    }
    /// Derives an identity's DH secret from its account internal key
    /// (so every linked device that holds the account key agrees on it).
    pub fn from_account_key(account_key: &SecretKey) -> Self {
        Self(derive(KeyPurpose::IdentityDh, account_key.expose(), &[]))
    }
    /// Derives a device's own DH secret from its signing key's seed (its own
    /// label), so every device has one without a second secret to store. The
    /// identity record publishes its public half; a rotated account secret
    /// is sealed to it.
    pub fn from_device_key(device: &super::SigningKey) -> Self {
        Self(derive(KeyPurpose::DeviceDh, device.expose_seed().as_ref(), &[]))
    }
    fn x(&self) -> x25519_dalek::StaticSecret {
        x25519_dalek::StaticSecret::from(*self.0.expose())
    }
    /// The public half.
    pub fn public(&self) -> DhPublicKey {
        let public = || DhPublicKey(x25519_dalek::PublicKey::from(&self.x()).to_bytes());
        #[cfg(fuzzing)]
        let public = || super::fuzz_memo::memo("x25519 public", &[self.0.expose()], public);
        public()
    }
    /// Diffie-Hellman, refusing non-contributory results (small-order peer keys).
    pub(crate) fn agree(&self, peer: &DhPublicKey) -> Result<Zeroizing<[u8; 32]>, VerifyError> {
        #[cfg(fuzzing)]
        return super::fuzz_memo::memo("x25519", &[self.0.expose(), &peer.0], || self.agree_now(peer));
        #[cfg(not(fuzzing))]
        self.agree_now(peer)
    }

    fn agree_now(&self, peer: &DhPublicKey) -> Result<Zeroizing<[u8; 32]>, VerifyError> {
        let shared = self.x().diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(VerifyError::WrongContext("peer DH key has small order"));
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }
}

/// The AEAD key of a one-way seal from an ephemeral X25519 key to a static
/// one (`ephemeral` on the sender, the static secret on the receiver): X25519,
/// then labelled derivation bound to both public keys and `context`.
pub(crate) fn seal_key(
    own: &DhSecretKey,
    peer: &DhPublicKey,
    ephemeral: &DhPublicKey,
    recipient: &DhPublicKey,
    purpose: KeyPurpose,
    context: &[&[u8]],
) -> Result<SecretKey, VerifyError> {
    let shared = own.agree(peer)?;
    let mut ctx: Vec<&[u8]> = vec![ephemeral.as_bytes(), recipient.as_bytes()];
    ctx.extend_from_slice(context);
    Ok(derive(purpose, shared.as_ref(), &ctx))
}

impl fmt::Debug for DhSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhSecretKey(public={:?}, secret=<redacted>)", self.public())
    }
}

/// Derives the conversation key two contacts share: X25519 of their identity
/// DH keys, bound to both identities, both conversation records and the inbox
/// the contact was made through. Symmetric: both sides compute the same key.
pub(crate) fn conversation_key(
    own: &DhSecretKey,
    peer: &DhPublicKey,
    identities: [&[u8; 32]; 2],
    conversations: [&[u8; 32]; 2],
    inbox: &[u8; 32],
) -> Result<SecretKey, VerifyError> {
    let shared = own.agree(peer)?;
    let mut ids = identities;
    ids.sort();
    let mut convs = conversations;
    convs.sort();
    Ok(derive(KeyPurpose::Conversation, shared.as_ref(), &[ids[0], ids[1], convs[0], convs[1], inbox]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn conversation_key_is_symmetric_and_bound() {
        let a = DhSecretKey::generate(&mut OsRng);
        let b = DhSecretKey::generate(&mut OsRng);
        let (ia, ib, ca, cb, inbox) = ([1; 32], [2; 32], [3; 32], [4; 32], [5; 32]);
        let ka = conversation_key(&a, &b.public(), [&ia, &ib], [&ca, &cb], &inbox).unwrap();
        let kb = conversation_key(&b, &a.public(), [&ib, &ia], [&cb, &ca], &inbox).unwrap();
        assert_eq!(ka, kb);
        let other = conversation_key(&a, &b.public(), [&ia, &ib], [&ca, &cb], &[6; 32]).unwrap();
        assert_ne!(ka, other);
        // Small-order point (all zeros) refused.
        assert!(a.agree(&DhPublicKey([0; 32])).is_err());
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.0.expose())));
    }
}
