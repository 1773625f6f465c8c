#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod crypto;
pub mod dht;
pub mod encoding;
pub mod error;
#[cfg(feature = "veilid")] pub mod veilid_net;
