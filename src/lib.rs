#![doc = include_str!("../README.md")]
//!
//! # Example: a complete invitation on the in-memory DHT
//!
//! ```
//! # use std::sync::Arc;
//! # use contact_invite::{dht::MemoryNetwork, driver, identity::Identity, message::Profile, store::MemoryStore};
//! # use contact_invite::machine::{Event, Outcome, ReceiveParams, SendParams};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MemoryNetwork::new();
//! let now = driver::SystemClock.now_secs();
//! let mut rng = rand_core::OsRng;
//! // Each party publishes an identity record, then runs a driver.
//! let alice = Identity::generate(Profile::new("Alice")?, "phone", now, &mut rng)?;
//! let alice = driver::publish_identity(&net.join("alice"), alice).await?;
//! let bob = Identity::generate(Profile::new("Bob")?, "laptop", now, &mut rng)?;
//! let bob = driver::publish_identity(&net.join("bob"), bob).await?;
//! let (a, mut a_events) = driver::start(net.join("alice"), Arc::new(MemoryStore::new()), Default::default()).await?;
//! let bob_store = Arc::new(MemoryStore::new());
//! let (b, mut b_events) = driver::start(net.join("bob"), bob_store.clone(), Default::default()).await?;
//!
//! // Alice invites; the ticket is what her QR code shows.
//! let invite = a.send_invitation(SendParams::new(alice.clone())).await?;
//! while !matches!(a_events.recv().await.map(|e| e.event), Some(Event::InvitationPublished { .. })) {}
//! let ticket = a.ticket(invite).await?.expect("published");
//!
//! // Bob scans it, sees Alice's verified profile, accepts.
//! let flow = b.receive(ReceiveParams::new(bob.clone(), ticket)).await?;
//! loop {
//!     match b_events.recv().await.map(|e| e.event) {
//!         Some(Event::InvitationReceived(view)) => {
//!             assert_eq!(view.profile.name(), "Alice");
//!             b.accept(flow).await?;
//!         }
//!         Some(Event::Finished(outcome)) => {
//!             assert_eq!(outcome, Outcome::Contact(alice.public_key()));
//!             break;
//!         }
//!         Some(_) => {}
//!         None => panic!("driver stopped"),
//!     }
//! }
//! let contacts = driver::contacts(bob_store.as_ref()).await?;
//! assert_eq!(contacts[0].profile.name(), "Alice");
//! # Ok(()) }
//! ```
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
#[cfg(feature = "veilid")]
pub mod veilid_store;
mod wire;

#[doc(hidden)]
pub mod __bench {
    //! Not API (see `src/bench_api.rs`).
    pub use crate::bench_api::*;
}
mod bench_api;

pub use error::{DecodeError, Error, PasswordError, ProtocolError, VerifyError};
