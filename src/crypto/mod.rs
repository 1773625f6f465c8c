//! Cryptography: Ed25519 over domain-separated bytes, X25519, XChaCha20-Poly1305
//! with associated data, Argon2id with capped parameters, labelled key derivation.
//! This is the only module that names the RustCrypto / dalek crates.

mod keys;

pub use keys::{KEY_LEN, PublicKey, SIGNATURE_LEN, SecretKey, Signature, SigningKey};
pub(crate) use keys::serde_bytes_vec;
