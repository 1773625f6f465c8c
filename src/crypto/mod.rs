//! Cryptography: Ed25519 over domain-separated bytes, X25519, XChaCha20-Poly1305
//! with associated data, Argon2id with capped parameters, labelled key derivation.
//! This is the only module that names the RustCrypto / dalek crates.
//!
//! Zeroization: [`SigningKey`], [`SecretKey`], [`DhSecretKey`], [`Password`] and
//! decrypted plaintexts are zeroized on drop. Public keys, signatures, hashes
//! and ciphertexts are not secret and are not zeroized.

pub(crate) mod aead;
mod dh;
#[cfg(fuzzing)]
mod fuzz_memo;
pub(crate) mod kdf;
mod keys;
pub(crate) mod pake;
pub(crate) mod password;
pub mod pow;
pub(crate) mod sign;

pub use dh::{DhPublicKey, DhSecretKey};
pub(crate) use dh::{conversation_key, seal_key};
pub use kdf::{message_hash, signed_message_hash};
pub use keys::{
    INVITE_SECRET_LEN, InviteSecret, KEY_LEN, ParseIdError, PublicKey, SIGNATURE_LEN, SecretKey, Signature, SigningKey,
};
pub(crate) use keys::{KeySeed, deserialize_id, parse_hex, serde_bytes_vec, serialize_id, write_hex};
pub use password::{Password, PasswordLimits, PasswordParams, Pin, SALT_LEN};
pub use sign::{PROTOCOL_LABEL, PROTOCOL_VERSION};
