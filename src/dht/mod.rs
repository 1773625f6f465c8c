//! The abstract DHT: one narrow async trait mirroring Veilid's record API,
//! an in-memory network for tests ([`MemoryDht`]) and, behind the `veilid`
//! feature, a backend over `veilid_core::RoutingContext`.
//!
//! # Semantics every backend must keep
//! - **Records** have a schema: `owner_subkeys` subkeys writable only by the
//!   owner key, then for each member `subkeys` subkeys writable only by that
//!   member's key (Veilid's SMPL schema). Subkeys are numbered from 0.
//! - **Record keys** carry the opaque network key and an optional encryption
//!   secret (Veilid 0.5). A reader without the right secret cannot read values.
//! - **Creating** a record with a given owner key is idempotent: creating a
//!   record the caller already holds for that owner and schema returns the
//!   same [`RecordKey`]. This makes "create" safe to repeat after a crash.
//! - **set_value** returns `Ok(None)` only once the value has **reached the
//!   network** (no silent offline queueing); `Ok(Some(newer))` when the
//!   network already holds a value at a sequence number at least as new, in
//!   which case nothing was written.
//! - **delete_record** is local only: it never removes the record from the
//!   network (overwrite subkeys first to erase contents).
//! - **Watches** deliver [`ValueChange`]s on the stream from
//!   [`Dht::changes`]; they can lag or be lost, so callers also re-read.
//! - Errors say whether retrying can help ([`DhtError::is_retryable`]).
//! - **Nudges** (optional): a backend with a direct channel between parties
//!   hands out a [`Dht::reply_address`] and delivers [`Nudge`]s sent to it on
//!   [`Dht::nudges`]. Best effort, unauthenticated, possibly lost; see
//!   [`nudge`](self::Nudge).

use core::fmt;
use core::future::Future;

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SecretKey, SigningKey};
use crate::error::DecodeError;

mod memory;
mod nudge;
mod recorded;
pub use memory::{FaultConfig, MemoryDht, MemoryDhtError, MemoryNetwork, OpCounts};
pub use nudge::{Nudge, NudgeReceiver};
pub use recorded::{CapturedValue, OpLog, OpRecord, Recorded, ValueLog, median};
#[cfg(feature = "veilid")]
pub mod veilid;

pub use crate::limits::MAX_VALUE_LEN;

/// A subkey index.
pub type Subkey = u32;

/// A DHT record key: the opaque 32-byte network key plus the record's
/// encryption secret, when the holder has it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    opaque: [u8; 32],
    secret: Option<SecretKey>,
}

impl RecordKey {
    /// Builds a key from its parts.
    pub fn new(opaque: [u8; 32], secret: Option<SecretKey>) -> Self {
        Self { opaque, secret }
    }
    /// The opaque network key (what the DHT routes on; not secret).
    pub fn opaque(&self) -> &[u8; 32] {
        &self.opaque
    }
    /// The record encryption secret, if held.
    pub fn secret(&self) -> Option<&SecretKey> {
        self.secret.as_ref()
    }
    /// The same record without its secret (for logs and maps).
    pub fn without_secret(&self) -> Self {
        Self { opaque: self.opaque, secret: None }
    }
    /// Parses the opaque part from bytes.
    pub fn opaque_from_slice(bytes: &[u8]) -> Result<[u8; 32], DecodeError> {
        bytes.try_into().map_err(|_| DecodeError::WrongLength { what: "record key", expected: 32, got: bytes.len() })
    }
    /// Short hex form of the opaque key, for logs.
    pub fn fmt_short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.opaque[..8])
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordKey({}{})", self.fmt_short(), if self.secret.is_some() { ":<secret>" } else { "" })
    }
}

impl core::hash::Hash for RecordKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.opaque.hash(state);
    }
}

/// A schema member: a writer key and how many subkeys it may write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaMember {
    /// The member's writer public key.
    pub key: PublicKey,
    /// Number of subkeys the member owns.
    pub subkeys: u16,
}

/// A record schema (Veilid SMPL): owner subkeys first, then each member's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Subkeys writable by the owner only, numbered from 0.
    pub owner_subkeys: u16,
    /// Members in order; member `i`'s subkeys follow the owner's and earlier members'.
    pub members: Vec<SchemaMember>,
}

impl Schema {
    /// Total subkeys.
    pub fn subkey_count(&self) -> u32 {
        u32::from(self.owner_subkeys) + self.members.iter().map(|m| u32::from(m.subkeys)).sum::<u32>()
    }
    /// The key allowed to write `subkey`, given the owner key; `None` if out of range.
    pub fn writer_of(&self, owner: &PublicKey, subkey: Subkey) -> Option<PublicKey> {
        if subkey < u32::from(self.owner_subkeys) {
            return Some(*owner);
        }
        let mut base = u32::from(self.owner_subkeys);
        for m in &self.members {
            if subkey < base + u32::from(m.subkeys) {
                return Some(m.key);
            }
            base += u32::from(m.subkeys);
        }
        None
    }
}

/// A value read from a subkey.
#[derive(Clone, PartialEq, Eq)]
pub struct ValueData {
    /// Sequence number (starts at 0, increases with each write).
    pub seq: u32,
    /// The bytes.
    pub data: Vec<u8>,
    /// Who wrote it.
    pub writer: PublicKey,
}

impl fmt::Debug for ValueData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueData(seq={}, {} bytes, writer={})", self.seq, self.data.len(), self.writer.fmt_short())
    }
}

/// A watch notification: these subkeys of this record changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueChange {
    /// The record (opaque key only).
    pub record: [u8; 32],
    /// Subkeys that changed.
    pub subkeys: Vec<Subkey>,
    /// The new value of the first subkey in `subkeys`, when the backend
    /// delivers it (Veilid does). Untrusted like any DHT value.
    pub value: Option<ValueData>,
}

/// Receives watch notifications.
pub type ChangeReceiver = tokio::sync::mpsc::Receiver<ValueChange>;

/// What kind of failure a DHT operation had.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DhtErrorKind {
    /// Transient: offline, timeout, no node answered, try again. Retrying can help.
    Unavailable,
    /// The record does not exist on the network.
    NotFound,
    /// The record key lacks the encryption secret, or it is wrong.
    BadRecordSecret,
    /// The writer may not write this subkey, or the subkey is out of range.
    SchemaViolation,
    /// The value exceeds the size limit.
    ValueTooLarge,
    /// The record is not open (caller bug).
    NotOpen,
    /// Anything else; not retryable.
    Other,
}

impl DhtErrorKind {
    /// Whether retrying the same operation can help.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Unavailable)
    }
}

/// Backend error contract: a backend's error says what kind of failure it was.
pub trait DhtError: std::error::Error + Send + Sync + 'static {
    /// The kind of failure.
    fn kind(&self) -> DhtErrorKind;
    /// Whether retrying can help.
    fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// The DHT record API the protocol needs (a narrow mirror of Veilid's).
///
/// A value of this type is one party's handle on the network.
pub trait Dht: Send + Sync + 'static {
    /// Backend error.
    type Error: DhtError;

    /// Creates (and opens) a record owned by `owner`. Idempotent for the same
    /// owner and schema (see module docs). Local only on Veilid.
    fn create_record(
        &self,
        schema: &Schema,
        owner: &SigningKey,
    ) -> impl Future<Output = Result<RecordKey, Self::Error>> + Send;

    /// Creates (and opens) a record like [`Self::create_record`], whose
    /// values the DHT encrypts under `secret`, chosen by the caller (an
    /// invitation inbox's secret is derived from the ticket's 128-bit
    /// secret, so the ticket need not carry a 32-byte key). The default
    /// creates the record, then opens it with `secret`: Veilid encrypts
    /// with the key a record is opened with.
    fn create_record_with_secret(
        &self,
        schema: &Schema,
        owner: &SigningKey,
        secret: &SecretKey,
    ) -> impl Future<Output = Result<RecordKey, Self::Error>> + Send {
        async move {
            let created = self.create_record(schema, owner).await?;
            let key = RecordKey::new(*created.opaque(), Some(secret.clone()));
            self.open_record(&key, Some(owner)).await?;
            Ok(key)
        }
    }

    /// Opens a record for reading, and for writing with `writer` if given.
    fn open_record(
        &self,
        key: &RecordKey,
        writer: Option<&SigningKey>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Reads a subkey (`None` if never written). `force_refresh` asks the
    /// network rather than a local copy.
    fn get_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        force_refresh: bool,
    ) -> impl Future<Output = Result<Option<ValueData>, Self::Error>> + Send;

    /// Writes a subkey with `writer` (or the writer the record was opened
    /// with). `Ok(None)`: written and confirmed on the network.
    /// `Ok(Some(newer))`: the network holds a value at least as new; not written.
    fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> impl Future<Output = Result<Option<ValueData>, Self::Error>> + Send;

    /// Watches subkeys; changes arrive on [`Dht::changes`]. Returns whether a
    /// watch is active.
    fn watch(&self, key: &RecordKey, subkeys: &[Subkey]) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Cancels a watch.
    fn cancel_watch(&self, key: &RecordKey) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Closes an open record.
    fn close_record(&self, key: &RecordKey) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes the local copy (never the network's).
    fn delete_record(&self, key: &RecordKey) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Waits until every write to this record has reached the network.
    /// `Ok(true)`: all confirmed; `Ok(false)`: timed out with writes pending.
    fn flush(
        &self,
        key: &RecordKey,
        timeout: std::time::Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Takes the watch-notification stream (once; later calls get `None`).
    fn changes(&self) -> Option<ChangeReceiver>;

    /// This party's current reply address for [`Nudge`]s (Veilid: a private
    /// route blob), made on first use. `Ok(None)`: this backend has no direct
    /// channel (the default), and peers learn of writes by watching.
    fn reply_address(&self) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send {
        async { Ok(None) }
    }

    /// Sends a nudge to a peer's reply address. Best effort: `Ok` means
    /// handed to the network, not delivered. Backends without a direct
    /// channel drop it (the default).
    fn send_nudge(&self, to: &[u8], nudge: &Nudge) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (to, nudge);
        async { Ok(()) }
    }

    /// Takes the stream of nudges arriving at our reply address (once;
    /// `None` without a direct channel, the default).
    fn nudges(&self) -> Option<NudgeReceiver> {
        None
    }
}
