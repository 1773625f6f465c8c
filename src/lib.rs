#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod contact;
pub mod crypto;
pub mod dht;
pub mod driver;
pub mod encoding;
pub mod error;
pub mod identity;
pub mod limits;
pub mod machine;
pub mod message;
pub mod store;
#[cfg(feature = "veilid")]
pub mod veilid_net;
mod wire;

pub use error::{DecodeError, Error, PasswordError, ProtocolError, VerifyError};
