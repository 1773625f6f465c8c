//! Not API: thin wrappers over crate-private primitives so the benchmarks
//! (a separate crate) can time exactly what a flow performs. May change at
//! any time.
#![allow(missing_docs)]

use rand_core::OsRng;

use crate::crypto::aead::{self, SealedKind};
use crate::crypto::sign::{self, SignedKind};
use crate::crypto::{
    DhPublicKey, DhSecretKey, Password, PasswordLimits, PasswordParams, SecretKey, Signature, SigningKey,
};

pub fn sign(key: &SigningKey, payload: &[u8]) -> Signature {
    sign::sign(key, SignedKind::Invitation, &[&[1; 32], &[2; 8]], payload)
}
pub fn verify(key: &SigningKey, payload: &[u8], sig: &Signature) -> bool {
    sign::verify(&key.public(), SignedKind::Invitation, &[&[1; 32], &[2; 8]], payload, sig)
}
pub fn seal(key: &SecretKey, plaintext: &[u8]) -> Vec<u8> {
    aead::seal(key, SealedKind::Response, &[3; 32], plaintext, &mut OsRng)
}
pub fn open(key: &SecretKey, sealed: &[u8]) -> bool {
    aead::open(key, SealedKind::Response, &[3; 32], sealed).is_ok()
}
pub fn derive(secret: &SecretKey) -> SecretKey {
    crate::crypto::kdf::derive(crate::crypto::kdf::KeyPurpose::RequestSeal, secret.expose(), &[&[4; 32]])
}
pub fn conversation_key(own: &DhSecretKey, peer: &DhPublicKey) -> bool {
    crate::crypto::conversation_key(own, peer, [&[1; 32], &[2; 32]], [&[3; 32], &[4; 32]], &[5; 32]).is_ok()
}
pub fn stretch(password: &Password, params: &PasswordParams) -> bool {
    crate::crypto::password::stretch(password, &[7; 16], params, &PasswordLimits::default()).is_ok()
}
