//! Mutual, authenticated, end-to-end-encrypted **contact invitations** over a
//! DHT (Veilid), with no server.
//!
//! Alice shows a ticket (QR code, link or text). Bob scans it, sees Alice's
//! signed profile and accepts or rejects; both sides end with the same
//! [`contact::Contact`]: each other's verified identity, profile, conversation
//! records and a shared conversation key. Invitations are one-time, expire,
//! can be revoked, can be locked with a PIN or password, and survive either
//! app crashing at any point. The protocol, its rules and their tests are in
//! `docs/protocol.md`; what it protects against in `docs/threat-model.md`.
//!
//! # Add it to your app
//!
//! ```toml
//! [dependencies]
//! # Not on crates.io yet: depend on a checkout (or your git mirror of it).
//! contact-invite = { path = "../contact-invite" }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! rand_core = { version = "0.6", features = ["getrandom"] }
//! ```
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `veilid` | yes | `dht::veilid::VeilidDht` over veilid-core 0.5.8 and a store over Veilid's table store |
//! | `veilid-net` | no | `veilid_net`: a private Veilid test network in one process (the demo, the network benches and tests); not part of the default API |
//! | `qr` | yes | QR rendering of tickets (terminal text, SVG, PNG) |
//! | `veilid-network-tests` | no | the integration tests against a real private Veilid network (implies `veilid-net`) |
//! | `test-hooks` | no | **not API**: test hooks on `DriverConfigBuilder` (a crash after N effects, CPU work on the runtime) for this crate's own tests and benches |
//! | `bench-internals` | no | **not API**: `bench_internals`, crate-private primitives for this repository's benches, tests and fuzz targets (its own tests and benches enable it through a dev-dependency on the crate itself); may change in any release |
//!
//! With `default-features = false` the crate builds without veilid-core
//! (minutes faster to compile) and runs on [`dht::MemoryDht`], or on any
//! backend of your own that implements [`dht::Dht`].
//!
//! # The public API on one page
//!
//! Everything below is in [`prelude`] (`use contact_invite::prelude::*;`).
//!
//! | step | what you call | what you get |
//! |---|---|---|
//! | make a user | [`Identity::generate`](identity::Identity::generate), then [`driver::publish_identity`] once | an identity whose signed record others verify |
//! | run the library | [`driver::start`]`(dht, store, `[`DriverConfig`](driver::DriverConfig)`::default())` — never waits on the network | a [`Handle`](driver::Handle) (commands) and [`Events`](driver::Events) (what the UI renders) |
//! | invite | [`Handle::send_invitation`](driver::Handle::send_invitation)`(`[`SendParams`](flow::SendParams)`)` with a [`Lock`](flow::Lock) (none, PIN, password); after [`Event::InvitationPublished`](flow::Event::InvitationPublished), [`Handle::ticket`](driver::Handle::ticket) | a [`Ticket`](encoding::Ticket): `to_string()` (text, link, armor) or `qr_*()` |
//! | scan or paste | [`parse_scanned`](encoding::parse_scanned) / [`parse_scanned_bytes`](encoding::parse_scanned_bytes), then [`Handle::receive`](driver::Handle::receive)`(`[`ReceiveParams`](flow::ReceiveParams)`)` | [`Scanned`](encoding::Scanned), or an [`EncodingError`](encoding::EncodingError) whose [`advice`](encoding::EncodingError::advice) says what to tell the user |
//! | decide | [`Event::PasswordRequired`](flow::Event::PasswordRequired) → [`Handle::password`](driver::Handle::password); [`Event::InvitationReceived`](flow::Event::InvitationReceived) → [`Handle::accept`](driver::Handle::accept) / [`reject`](driver::Handle::reject); the inviter may [`cancel`](driver::Handle::cancel) (revoke) | commands answer once applied, or with [`Error::InvalidState`] |
//! | finish | [`Event::Finished`](flow::Event::Finished)`(`[`Outcome`](flow::Outcome)`)` on both sides | [`Handle::contacts`](driver::Handle::contacts): each [`Contact`](contact::Contact) with its [`safety_number`](contact::Contact::safety_number) |
//! | in progress | [`Handle::flows`](driver::Handle::flows) / [`invitations`](driver::Handle::invitations) — the same after a restart | [`FlowView`](flow::FlowView)s: id, kind, state, expiry, lock, peer |
//! | requests to an address | [`Handle::open_request_inbox`](driver::Handle::open_request_inbox), [`send_request`](driver::Handle::send_request), [`accept_request`](driver::Handle::accept_request) / [`ignore_request`](driver::Handle::ignore_request) / [`block_requester`](driver::Handle::block_requester) | [`Address`](encoding::Address), [`RequestView`](flow::RequestView) |
//! | more devices | [`Handle::link_device`](driver::Handle::link_device) on the old device, [`Handle::join_account`](driver::Handle::join_account)`(`[`LinkParams`](flow::LinkParams)`)` on the new | [`Outcome::DeviceLinked`](flow::Outcome::DeviceLinked) |
//! | errors | every fallible call | [`Error`] with a stable [`ErrorCode`] ([`Error::code`]) |
//!
//! Backends: [`dht::MemoryNetwork`] (tests), `dht::veilid::VeilidDht`
//! (feature `veilid`), or your own [`dht::Dht`]; stores: [`store::MemoryStore`],
//! [`store::FileStore`], `veilid_store::VeilidTableStore`, or your own
//! [`store::Store`]. A [`contact::Contact`] or [`identity::Identity`] holds
//! secrets and has no serde form; show, log or serialize their views
//! ([`contact::Contact::view`], [`identity::Identity::view`]). Ids (public
//! keys, flow and request ids) print and parse as lowercase hex.
//!
//! Everything else ([`machine`]: the sans-IO state machines, their effects
//! and inputs; [`message`], [`crypto`], [`dht`]'s record types) is for those
//! who build a driver of their own, and is not needed by an app.
//! `examples/app.rs` is an app written against the prelude alone.
//!
//! # Quick start: a complete invitation on the in-memory DHT
//!
//! ```
//! # use std::sync::Arc;
//! # use contact_invite::{dht::MemoryNetwork, driver, identity::Identity, message::Profile, store::MemoryStore};
//! # use contact_invite::flow::{Event, Outcome, ReceiveParams, SendParams};
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
//! // Every contact that loads, plus the records that could not be read.
//! let list = driver::contacts(bob_store.as_ref()).await?;
//! assert!(list.unreadable.is_empty());
//! assert_eq!(list.contacts[0].profile.name(), "Alice");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// The repository README's Rust examples are compiled and run as doctests too,
// so what it shows keeps working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod contact;
pub mod crypto;
pub mod dht;
pub mod driver;
pub mod encoding;
pub mod error;
pub mod flow;
pub mod identity;
mod ids;
pub mod limits;
pub mod machine;
pub mod message;
mod record;
pub mod store;
#[cfg(feature = "veilid-net")]
pub mod veilid_net;
#[cfg(feature = "veilid")]
pub mod veilid_store;
mod wire;

#[cfg(feature = "bench-internals")]
pub mod bench_internals;

pub use error::{DecodeError, Error, ErrorCode, PasswordError, ProtocolError, VerifyError};

/// The `rand_core` this crate's API takes RNGs from (e.g.
/// `Identity::generate(…, &mut rand_core::OsRng)`), so an app needs no
/// matching dependency of its own.
pub use rand_core;

/// What an app uses, in one import: `use contact_invite::prelude::*;`.
///
/// The driver (start it, its handle and events), the parameters of each
/// flow, what flows report (events, outcomes, views), identities, contacts,
/// tickets and errors. Machine internals (effects, inputs, DHT operations)
/// stay in [`machine`] for those who drive machines themselves.
pub mod prelude {
    pub use crate::contact::{Contact, ContactView, SafetyNumber};
    pub use crate::crypto::{Password, Pin, PublicKey};
    pub use crate::dht::MemoryNetwork;
    pub use crate::driver::{self, DriverConfig, DriverEvent, Events, Handle};
    pub use crate::encoding::{
        Address, EncodingError, HttpsBase, LinkConfig, ScanAdvice, Scanned, Ticket, UriScheme, parse_scanned,
        parse_scanned_bytes,
    };
    pub use crate::error::{Error, ErrorCode, ProtocolError};
    pub use crate::flow::{
        Event, FlowId, FlowKind, FlowView, InvitationView, LinkParams, Lock, Outcome, ReceiveParams, RequestId,
        RequestInboxParams, RequestView, SendParams, UseView, Uses, UsesClosed, UsesView,
    };
    pub use crate::identity::{Identity, IdentityView};
    pub use crate::message::{InvitationKind, Profile};
    pub use crate::store::{FileStore, MemoryStore, Store};
    pub use rand_core::OsRng;
}
