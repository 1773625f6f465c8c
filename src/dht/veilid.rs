//! [`Dht`] over a real Veilid node: `veilid_core::RoutingContext` (0.5.8).
//!
//! [`VeilidDht`] maps the crate's narrow record API onto Veilid's DHT with
//! default safety routes (sender privacy), SMPL schemas and VLD0 (Ed25519)
//! keys, and keeps the contract of [`crate::dht`]. Veilid 0.5.8 behaves in a
//! few ways that the contract does not allow; each is handled here and
//! documented where it is handled:
//!
//! - **Silent offline queueing.** `set_dht_value` queues a write and returns
//!   `Ok(None)` when the network write fails, unless
//!   `SetDHTValueOptions::allow_offline` is `AllowOffline(false)`. Even with
//!   that option, 0.5.8 still returns `Ok(None)` when the fanout finishes
//!   *without consensus* (the `TryAgain` from the refused offline queueing is
//!   turned into `Ok(None)` at the end of `StorageManager::set_value`), and
//!   then the value is neither on the network nor stored locally. So every
//!   `Ok(None)` is verified against the local copy, which Veilid only updates
//!   once consensus was reached: see [`VeilidDht::set_value`].
//! - **Record encryption secrets are not stored by Veilid.** A 0.5 record key
//!   is the opaque key plus a random encryption secret made at create time;
//!   the opaque key depends only on owner and schema, so a second create for
//!   the same owner and schema fails (`Internal: record already exists`), and
//!   the local record store keeps no copy of the secret (an opened
//!   `DHTRecordDescriptor` just echoes the key it was opened with). To make
//!   `create_record` idempotent, [`VeilidDht`] keeps the secrets of records it
//!   creates in the node's own encrypted table store (table
//!   [`SECRETS_TABLE`]); see [`VeilidDht::create_record`].
//! - **Unauthenticated value encryption.** Values are encrypted with the
//!   record secret by an *unauthenticated* stream cipher
//!   (`crypt_b2b_no_auth`). A *missing* secret is detected
//!   ([`DhtErrorKind::BadRecordSecret`]), a *wrong* one is not: it yields
//!   garbage bytes. Payloads must carry their own authentication (this
//!   crate's protocol messages are AEAD-sealed and signed).
//! - **Writes with a key lacking the secret would be published in clear.**
//!   Veilid encrypts with the key passed to `set_dht_value`; without a secret
//!   it writes plaintext. [`VeilidDht::set_value`] refuses that.
//! - **Schema errors are coarse.** A wrong writer, an out-of-range subkey and
//!   an oversized value all come back as `Generic: failed schema
//!   validation`; [`VeilidDht`] checks the schema itself first so the error
//!   kind is precise ([`DhtErrorKind::SchemaViolation`] or
//!   [`DhtErrorKind::ValueTooLarge`]).
//! - **Watches are asynchronous.** `watch_dht_values` only records the wish;
//!   a background task sets the watch up, with no way to wait for it, and a
//!   value written in the first seconds after the call may be reported only
//!   ~11 s later. Changes arrive as `VeilidUpdate::ValueChange` through the
//!   callback given to `api_startup`, which exists before any routing
//!   context: route it into [`VeilidDht`] with a [`VeilidUpdateSink`] or
//!   [`VeilidDht::handle_update`]. Callers re-read on a timer as well.
//! - **Error messages can carry the secret.** Some Veilid errors print the
//!   full record key (`VLD0:<opaque>:<secret>`); [`VeilidDhtError`] keeps only
//!   a redacted message.
//! - **Watch notifications are sent on a one-second tick**
//!   (`SEND_VALUE_CHANGES_INTERVAL_SECS`), and in practice arrive one to three
//!   seconds after a write: the slowest step of a flow. So [`VeilidDht`] also
//!   offers nudges ([`Dht::reply_address`], [`Dht::send_nudge`]): the reply
//!   address is a private route made with `new_private_route` (kept until
//!   Veilid reports it dead, then made anew), a nudge is an `app_message`
//!   over the peer's imported route, and arriving `VeilidUpdate::AppMessage`s
//!   on our route feed [`Dht::nudges`].
//! - **Veilid's key types do not zeroize.** The owner/writer seeds handed to
//!   Veilid are copied into its `KeyPair` (plain `Bytes`) for the duration of
//!   the call or the open record.

use core::fmt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, mpsc};
use tracing::Instrument as _;
use veilid_core as vc;

use super::{
    ChangeReceiver, Dht, DhtError, DhtErrorKind, MAX_VALUE_LEN, Nudge, NudgeReceiver, RecordKey, Schema, Subkey,
    ValueChange, ValueData,
};
use crate::crypto::{PublicKey, SecretKey, SigningKey};

/// Name of the table (in the node's encrypted Veilid table store) where
/// [`VeilidDht`] keeps the encryption secrets of the records it created.
pub const SECRETS_TABLE: &str = "contact_invite_record_secrets";

/// Capacity of the watch-notification channel; notifications beyond it are
/// dropped (and logged): watches are best-effort, callers re-read anyway.
pub const CHANGE_CHANNEL_CAPACITY: usize = 1024;

/// Peers' private routes kept imported for nudges; past this many the cache
/// is emptied (routes are imported again on the next nudge).
const MAX_IMPORTED_ROUTES: usize = 256;

/// Veilid's record-wide data limit (1 MiB), which caps each subkey at
/// `MAX_RECORD_DATA_SIZE / subkey_count` when that is below 32 KiB.
const MAX_RECORD_DATA_SIZE: usize = 1_048_576;

/// A [`VeilidDht`] operation failed.
///
/// The message is Veilid's, with any record encryption secret redacted.
#[derive(Clone, Debug, thiserror::Error)]
#[error("veilid {op}: {kind:?}: {message}")]
pub struct VeilidDhtError {
    kind: DhtErrorKind,
    op: &'static str,
    message: String,
}

impl VeilidDhtError {
    fn new(kind: DhtErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self { kind, op, message: message.into() }
    }

    /// Maps a Veilid API error onto the crate's error kinds, redacting the
    /// encryption secret of `key` from the message.
    fn from_api(op: &'static str, e: &vc::VeilidAPIError, key: Option<&RecordKey>) -> Self {
        let kind = classify(e);
        let mut message = e.to_string();
        if let Some(secret) = key.and_then(RecordKey::secret) {
            let encoded = data_encoding::BASE64URL_NOPAD.encode(secret.expose());
            message = message.replace(&encoded, "<secret>");
        }
        Self { kind, op, message }
    }

    /// The operation that failed (`create_record`, `set_value`, ...).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The (redacted) error message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl DhtError for VeilidDhtError {
    fn kind(&self) -> DhtErrorKind {
        self.kind
    }
}

/// Veilid error → crate error kind. Veilid's variants are coarse (schema,
/// size and secret problems are all `Generic`), so some cases match on the
/// message text of 0.5.8.
fn classify(e: &vc::VeilidAPIError) -> DhtErrorKind {
    use vc::VeilidAPIError as E;
    match e {
        E::TryAgain { .. } | E::Timeout | E::NoConnection { .. } => DhtErrorKind::Unavailable,
        E::KeyNotFound { .. } => DhtErrorKind::NotFound,
        E::InvalidArgument { context, .. } => match context.as_str() {
            "record not open" => DhtErrorKind::NotOpen,
            "wrong writer" | "subkey out of range" => DhtErrorKind::SchemaViolation,
            "value too big" => DhtErrorKind::ValueTooLarge,
            _ => DhtErrorKind::Other,
        },
        E::Generic { message } => {
            if message.contains("missing encryption key") || message.contains("missing nonce") {
                DhtErrorKind::BadRecordSecret
            } else if message.contains("failed schema validation") || message.contains("value is not writable") {
                DhtErrorKind::SchemaViolation
            } else if message.contains("invalid size") {
                DhtErrorKind::ValueTooLarge
            } else if message.contains("record must be open") {
                DhtErrorKind::NotOpen
            } else {
                DhtErrorKind::Other
            }
        }
        _ => DhtErrorKind::Other,
    }
}

// ---------------------------------------------------------------------------
// Conversions

/// Our Ed25519 key as a Veilid VLD0 key pair (public key + 32-byte seed).
fn to_keypair(key: &SigningKey) -> vc::KeyPair {
    let seed = key.expose_seed();
    vc::KeyPair::new(
        vc::CRYPTO_KIND_VLD0,
        vc::BareKeyPair::new(vc::BarePublicKey::new(key.public().as_bytes()), vc::BareSecretKey::new(seed.as_slice())),
    )
}

fn to_veilid_public(key: &PublicKey) -> vc::PublicKey {
    vc::PublicKey::new(vc::CRYPTO_KIND_VLD0, vc::BarePublicKey::new(key.as_bytes()))
}

/// Our record key as a Veilid VLD0 record key (with its secret, if any).
fn to_veilid_key(key: &RecordKey) -> vc::RecordKey {
    vc::RecordKey::new(
        vc::CRYPTO_KIND_VLD0,
        vc::BareRecordKey::new(
            vc::BareOpaqueRecordKey::new(key.opaque()),
            key.secret().map(|s| vc::BareSharedSecret::new(s.expose())),
        ),
    )
}

/// A Veilid record key as ours (VLD0, 32-byte opaque key and secret only).
fn from_veilid_key(op: &'static str, key: &vc::RecordKey) -> Result<RecordKey, VeilidDhtError> {
    if key.kind() != vc::CRYPTO_KIND_VLD0 {
        return Err(VeilidDhtError::new(
            DhtErrorKind::Other,
            op,
            format!("unsupported record key kind {}", key.kind()),
        ));
    }
    let bare = key.ref_value();
    let opaque = RecordKey::opaque_from_slice(bare.ref_key())
        .map_err(|e| VeilidDhtError::new(DhtErrorKind::Other, op, e.to_string()))?;
    let secret = match bare.ref_encryption_key() {
        Some(s) => {
            Some(SecretKey::from_slice(s).map_err(|e| VeilidDhtError::new(DhtErrorKind::Other, op, e.to_string()))?)
        }
        None => None,
    };
    Ok(RecordKey::new(opaque, secret))
}

fn opaque_bytes(key: &vc::RecordKey) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(&key.ref_value().ref_key()[..]).ok()
}

/// Our schema as a Veilid SMPL schema. A member's id is its 32-byte Ed25519
/// public key itself (Veilid hashes writer keys only when they are not 32
/// bytes long).
fn to_veilid_schema(op: &'static str, schema: &Schema) -> Result<vc::DHTSchema, VeilidDhtError> {
    let members = schema
        .members
        .iter()
        .map(|m| vc::DHTSchemaSMPLMember { m_key: vc::BareMemberId::new(m.key.as_bytes()), m_cnt: m.subkeys })
        .collect();
    vc::DHTSchema::smpl(schema.owner_subkeys, members).map_err(|e| {
        let mut err = VeilidDhtError::from_api(op, &e, None);
        err.kind = DhtErrorKind::SchemaViolation;
        err
    })
}

fn from_veilid_value(op: &'static str, v: &vc::ValueData) -> Result<ValueData, VeilidDhtError> {
    let writer = PublicKey::from_bytes(v.ref_writer().ref_value())
        .map_err(|e| VeilidDhtError::new(DhtErrorKind::Other, op, format!("value writer: {e}")))?;
    Ok(ValueData { seq: u32::from(v.seq()), data: v.data().to_vec(), writer })
}

/// The largest value a subkey of this schema takes (Veilid's rule).
fn max_value_len(schema: &vc::DHTSchema) -> usize {
    let count = schema.subkey_count().max(1);
    MAX_VALUE_LEN.min(MAX_RECORD_DATA_SIZE / count)
}

/// Checks a write against the schema the way Veilid does, but with precise
/// error kinds (Veilid reports every failure as `failed schema validation`).
fn check_write(
    op: &'static str,
    schema: &vc::DHTSchema,
    owner: &PublicKey,
    subkey: Subkey,
    writer: &PublicKey,
    len: usize,
) -> Result<(), VeilidDhtError> {
    let violation = |msg: String| Err(VeilidDhtError::new(DhtErrorKind::SchemaViolation, op, msg));
    let allowed = match schema {
        vc::DHTSchema::DFLT(d) => {
            if subkey >= u32::from(d.o_cnt()) {
                return violation(format!("subkey {subkey} out of range"));
            }
            writer == owner
        }
        vc::DHTSchema::SMPL(s) => {
            let mut base = u32::from(s.o_cnt());
            if subkey < base {
                writer == owner
            } else {
                let mut found = None;
                for m in s.members() {
                    let end = base + u32::from(m.m_cnt);
                    if subkey < end {
                        found = Some(&m.m_key[..] == writer.as_bytes());
                        break;
                    }
                    base = end;
                }
                match found {
                    Some(ok) => ok,
                    None => return violation(format!("subkey {subkey} out of range")),
                }
            }
        }
    };
    if !allowed {
        return violation(format!("writer {} may not write subkey {subkey}", writer.fmt_short()));
    }
    let max = max_value_len(schema);
    if len > max {
        return Err(VeilidDhtError::new(DhtErrorKind::ValueTooLarge, op, format!("value is {len} bytes, limit {max}")));
    }
    Ok(())
}

fn subkey_range_set(subkeys: &[Subkey]) -> vc::ValueSubkeyRangeSet {
    subkeys.iter().fold(vc::ValueSubkeyRangeSet::new(), |acc, s| acc.union(&vc::ValueSubkeyRangeSet::single(*s)))
}

// ---------------------------------------------------------------------------
// Update routing

/// Routes a node's `VeilidUpdate`s (the callback given to
/// `veilid_core::api_startup`) into the [`VeilidDht`] handles of that node.
///
/// The callback exists before any routing context, so create the sink
/// first, pass [`VeilidUpdateSink::callback`] (or call
/// [`VeilidUpdateSink::handle`] from your own callback) to `api_startup`,
/// then build handles with [`VeilidDht::with_updates`]. Only
/// `VeilidUpdate::ValueChange`, `AppMessage` (nudges) and `RouteChange` are
/// used; other updates are ignored. Cheap to clone; holds the handles weakly.
#[derive(Clone, Default)]
pub struct VeilidUpdateSink {
    targets: Arc<Mutex<Vec<Weak<Shared>>>>,
}

impl fmt::Debug for VeilidUpdateSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VeilidUpdateSink").field("targets", &lock(&self.targets).len()).finish()
    }
}

impl VeilidUpdateSink {
    /// A sink with no handles yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delivers one update to every live handle attached to this sink.
    /// Never blocks (safe to call from Veilid's callback).
    pub fn handle(&self, update: &vc::VeilidUpdate) {
        if !matches!(
            update,
            vc::VeilidUpdate::ValueChange(_) | vc::VeilidUpdate::AppMessage(_) | vc::VeilidUpdate::RouteChange(_)
        ) {
            return;
        }
        let targets: Vec<Arc<Shared>> = {
            let mut t = lock(&self.targets);
            t.retain(|w| w.strong_count() > 0);
            t.iter().filter_map(Weak::upgrade).collect()
        };
        for shared in targets {
            shared.handle_update(update);
        }
    }

    /// An `UpdateCallback` for `api_startup` that feeds this sink.
    pub fn callback(&self) -> vc::UpdateCallback {
        let sink = self.clone();
        Arc::new(move |update: vc::VeilidUpdate| sink.handle(&update))
    }

    fn attach(&self, shared: &Arc<Shared>) {
        lock(&self.targets).push(Arc::downgrade(shared));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps in a
    // state worse than stale; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The backend

/// What this handle knows about a record it opened.
struct OpenRecord {
    owner: PublicKey,
    schema: vc::DHTSchema,
    /// The writer this handle opened the record with. Always passed to
    /// Veilid explicitly: Veilid keeps one default writer per record per
    /// node, which another handle's open would replace.
    writer: Option<SigningKey>,
}

/// A watch this handle asked for.
struct WatchEntry {
    subkeys: Vec<Subkey>,
}

struct Shared {
    rc: vc::RoutingContext,
    open: Mutex<HashMap<[u8; 32], OpenRecord>>,
    watches: Mutex<HashMap<[u8; 32], WatchEntry>>,
    tx: mpsc::Sender<ValueChange>,
    rx: Mutex<Option<ChangeReceiver>>,
    secrets: OnceCell<vc::TableDB>,
    /// Our private route (the reply address), made on first use; the async
    /// lock makes concurrent callers share one allocation.
    route: tokio::sync::Mutex<Option<vc::RouteBlob>>,
    /// Its id, for the (synchronous) update callback.
    route_id: Mutex<Option<vc::RouteId>>,
    /// Peers' routes we imported, by blob.
    remote: Mutex<HashMap<Vec<u8>, vc::RouteId>>,
    nudge_tx: mpsc::Sender<Nudge>,
    nudge_rx: Mutex<Option<NudgeReceiver>>,
    /// Lifetime asked for each watch (ms); 0: the longest the nodes grant.
    watch_lifetime_ms: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Free our route and the imported ones (local calls, no network).
        let api = self.rc.api();
        let ours = lock(&self.route_id).take();
        let imported: Vec<vc::RouteId> = lock(&self.remote).drain().map(|(_, id)| id).collect();
        for id in ours.into_iter().chain(imported) {
            let _ = api.release_private_route(id);
        }
    }
}

impl Shared {
    fn handle_update(&self, update: &vc::VeilidUpdate) {
        match update {
            vc::VeilidUpdate::ValueChange(change) => self.handle_value_change(change),
            vc::VeilidUpdate::AppMessage(msg) => self.handle_app_message(msg),
            vc::VeilidUpdate::RouteChange(change) => self.handle_route_change(change),
            _ => {}
        }
    }

    /// A message on our route is a nudge (anything else there is dropped).
    fn handle_app_message(&self, msg: &vc::VeilidAppMessage) {
        let ours = lock(&self.route_id).clone();
        if ours.is_none() || msg.route_id() != ours.as_ref() {
            return;
        }
        match Nudge::from_bytes(msg.message()) {
            Ok(n) => {
                if let Err(e) = self.nudge_tx.try_send(n) {
                    tracing::warn!("dropping nudge: {e}");
                }
            }
            Err(e) => tracing::debug!(error = %e, "app message on our route is not a nudge"),
        }
    }

    /// Forgets dead routes: ours is made anew on the next `reply_address`.
    fn handle_route_change(&self, change: &vc::VeilidRouteChange) {
        {
            let mut ours = lock(&self.route_id);
            if ours.as_ref().is_some_and(|id| change.dead_routes.contains(id)) {
                tracing::debug!("our private route died");
                *ours = None;
                if let Ok(mut r) = self.route.try_lock() {
                    *r = None;
                }
            }
        }
        lock(&self.remote).retain(|_, id| !change.dead_remote_routes.contains(id));
    }

    fn handle_value_change(&self, change: &vc::VeilidValueChange) {
        let Some(record) = opaque_bytes(&change.key) else {
            return;
        };
        let subkeys = {
            let mut watches = lock(&self.watches);
            let Some(entry) = watches.get(&record) else {
                tracing::trace!(record = %short(&record), "value change for a record not watched here");
                return;
            };
            if change.subkeys.is_empty() || change.count == 0 {
                // Veilid reports a watch that died (expired, cancelled
                // remotely, count exhausted) as an empty change with count 0.
                // Report every watched subkey as possibly changed so the
                // caller re-reads, and forget the watch: the caller watches
                // again if it still wants to.
                tracing::warn!(record = %short(&record), "veilid watch died; reporting watched subkeys for re-read");
                let subkeys = entry.subkeys.clone();
                watches.remove(&record);
                subkeys
            } else if entry.subkeys.is_empty() {
                // Watching everything: list the changed subkeys (bounded by
                // Veilid's 1024-subkey maximum).
                change.subkeys.data().iter().take(1024).collect()
            } else {
                entry.subkeys.iter().copied().filter(|s| change.subkeys.data().contains(*s)).collect()
            }
        };
        if subkeys.is_empty() && !change.subkeys.is_empty() {
            return;
        }
        // Veilid delivers the value of the first changed subkey: pass it on
        // when that is also the first subkey we report (callers verify it).
        let first_changed = change.subkeys.data().iter().next();
        let value = match (&change.value, first_changed, subkeys.first()) {
            (Some(v), Some(f), Some(ours)) if f == *ours => from_veilid_value("value change", v).ok(),
            _ => None,
        };
        tracing::debug!(record = %short(&record), ?subkeys, with_value = value.is_some(), "value change");
        if let Err(e) = self.tx.try_send(ValueChange { record, subkeys, value }) {
            tracing::warn!(record = %short(&record), "dropping value change: {e}");
        }
    }
}

fn short(opaque: &[u8; 32]) -> String {
    data_encoding::HEXLOWER.encode(&opaque[..8])
}

/// [`Dht`] over one Veilid node's `RoutingContext` (default safety routes).
///
/// Cheap to clone: clones share the open-record table, the watches and the
/// change stream. Open records and watches are per handle (a record opened
/// through another handle on the same node is `NotOpen` for writes here).
/// See the [module docs](self) for the Veilid quirks handled.
#[derive(Clone)]
pub struct VeilidDht {
    shared: Arc<Shared>,
}

impl fmt::Debug for VeilidDht {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VeilidDht")
            .field("open_records", &lock(&self.shared.open).len())
            .field("watches", &lock(&self.shared.watches).len())
            .finish()
    }
}

impl VeilidDht {
    /// Wraps a routing context, switching it to default safety routes
    /// (`with_default_safety`). Watch notifications reach this handle only
    /// through [`VeilidDht::handle_update`] or a [`VeilidUpdateSink`] (see
    /// [`VeilidDht::with_updates`]).
    pub fn new(rc: vc::RoutingContext) -> Result<Self, VeilidDhtError> {
        let rc = rc.with_default_safety().map_err(|e| VeilidDhtError::from_api("new", &e, None))?;
        let (tx, rx) = mpsc::channel(CHANGE_CHANNEL_CAPACITY);
        let (nudge_tx, nudge_rx) = mpsc::channel(CHANGE_CHANNEL_CAPACITY);
        Ok(Self {
            shared: Arc::new(Shared {
                rc,
                open: Mutex::new(HashMap::new()),
                watches: Mutex::new(HashMap::new()),
                tx,
                rx: Mutex::new(Some(rx)),
                secrets: OnceCell::new(),
                route: tokio::sync::Mutex::new(None),
                route_id: Mutex::new(None),
                remote: Mutex::new(HashMap::new()),
                nudge_tx,
                nudge_rx: Mutex::new(Some(nudge_rx)),
                watch_lifetime_ms: AtomicU64::new(0),
            }),
        })
    }

    /// How long each watch set from now on should last: `None` (the
    /// default) asks for the longest the nodes grant (10 min on Veilid
    /// 0.5.8). When a watch runs out Veilid reports it dead and the driver
    /// re-reads and watches again (POLL-3). Shared by clones of this handle.
    pub fn set_watch_lifetime(&self, lifetime: Option<Duration>) {
        let ms = lifetime.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.shared.watch_lifetime_ms.store(ms, Ordering::Relaxed);
    }

    /// [`VeilidDht::new`], and attaches the handle to `updates` so the
    /// node's `ValueChange` updates feed [`Dht::changes`].
    pub fn with_updates(rc: vc::RoutingContext, updates: &VeilidUpdateSink) -> Result<Self, VeilidDhtError> {
        let dht = Self::new(rc)?;
        updates.attach(&dht.shared);
        Ok(dht)
    }

    /// Feeds one update from the node's `api_startup` callback (only
    /// `ValueChange`s for records this handle watches are used). Never blocks.
    pub fn handle_update(&self, update: &vc::VeilidUpdate) {
        self.shared.handle_update(update);
    }

    /// The routing context in use (default safety).
    pub fn routing_context(&self) -> &vc::RoutingContext {
        &self.shared.rc
    }

    fn rc(&self) -> &vc::RoutingContext {
        &self.shared.rc
    }

    async fn secrets_table(&self, op: &'static str) -> Result<&vc::TableDB, VeilidDhtError> {
        self.shared
            .secrets
            .get_or_try_init(|| async {
                self.rc()
                    .api()
                    .open_table_db(SECRETS_TABLE, 1)
                    .await
                    .map_err(|e| VeilidDhtError::from_api(op, &e, None))
            })
            .await
    }

    async fn load_secret(&self, op: &'static str, opaque: &[u8; 32]) -> Result<Option<SecretKey>, VeilidDhtError> {
        let table = self.secrets_table(op).await?;
        let v = table
            .load(0, vc::bytes::Bytes::copy_from_slice(opaque))
            .await
            .map_err(|e| VeilidDhtError::from_api(op, &e, None))?;
        match v {
            None => Ok(None),
            Some(b) => SecretKey::from_slice(&b)
                .map(Some)
                .map_err(|e| VeilidDhtError::new(DhtErrorKind::Other, op, format!("stored record secret: {e}"))),
        }
    }

    async fn store_secret(&self, op: &'static str, key: &RecordKey) -> Result<(), VeilidDhtError> {
        let Some(secret) = key.secret() else {
            return Err(VeilidDhtError::new(
                DhtErrorKind::Other,
                op,
                "veilid created a record without an encryption secret",
            ));
        };
        let table = self.secrets_table(op).await?;
        table
            .store(
                0,
                vc::bytes::Bytes::copy_from_slice(key.opaque()),
                vc::bytes::Bytes::copy_from_slice(secret.expose()),
            )
            .await
            .map_err(|e| VeilidDhtError::from_api(op, &e, None))
    }

    fn remember_open(&self, desc: &vc::DHTRecordDescriptor, writer: Option<SigningKey>) {
        let (Some(opaque), Ok(owner)) =
            (opaque_bytes(desc.ref_key()), PublicKey::from_bytes(desc.ref_owner().ref_value()))
        else {
            return;
        };
        lock(&self.shared.open).insert(opaque, OpenRecord { owner, schema: desc.schema(), writer });
    }

    async fn open_inner(
        &self,
        op: &'static str,
        key: &RecordKey,
        writer: Option<&SigningKey>,
    ) -> Result<vc::DHTRecordDescriptor, VeilidDhtError> {
        let desc = self
            .rc()
            .open_dht_record(to_veilid_key(key), writer.map(to_keypair), None)
            .await
            .map_err(|e| VeilidDhtError::from_api(op, &e, Some(key)))?;
        self.remember_open(&desc, writer.cloned());
        Ok(desc)
    }

    /// Creates the record, or returns it if this node already created it.
    async fn create_inner(&self, schema: &Schema, owner: &SigningKey) -> Result<RecordKey, VeilidDhtError> {
        const OP: &str = "create_record";
        let vschema = to_veilid_schema(OP, schema)?;
        // The opaque key depends only on owner and schema.
        let probe = self
            .rc()
            .api()
            .get_dht_record_key(vschema.clone(), to_veilid_public(&owner.public()), None)
            .await
            .map_err(|e| VeilidDhtError::from_api(OP, &e, None))?;
        let opaque = opaque_bytes(&probe)
            .ok_or_else(|| VeilidDhtError::new(DhtErrorKind::Other, OP, "veilid record key is not 32 bytes"))?;

        // Created before (by this node, through a VeilidDht): reopen it with
        // the stored secret. If the local copy was deleted, the open fetches
        // it from the network; if the network never got it, create afresh.
        if let Some(secret) = self.load_secret(OP, &opaque).await? {
            let key = RecordKey::new(opaque, Some(secret));
            match self.open_inner(OP, &key, Some(owner)).await {
                Ok(_) => return Ok(key),
                Err(e) if e.kind() == DhtErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }

        let created = self.rc().create_dht_record(vc::CRYPTO_KIND_VLD0, vschema.clone(), Some(to_keypair(owner))).await;
        let desc = match created {
            Ok(d) => d,
            Err(vc::VeilidAPIError::Internal { message }) if message.contains("already exists") => {
                // The record is in the local store but its secret is not in
                // ours: a create interrupted before the secret was saved. If
                // nothing was ever written to it, nobody else can hold the
                // lost secret, so the local copy can be replaced.
                self.replace_orphan(&opaque).await?;
                self.rc()
                    .create_dht_record(vc::CRYPTO_KIND_VLD0, vschema, Some(to_keypair(owner)))
                    .await
                    .map_err(|e| VeilidDhtError::from_api(OP, &e, None))?
            }
            Err(e) => return Err(VeilidDhtError::from_api(OP, &e, None)),
        };
        let key = from_veilid_key(OP, desc.ref_key())?;
        self.remember_open(&desc, Some(owner.clone()));
        self.store_secret(OP, &key).await?;
        Ok(key)
    }

    /// Deletes a local record whose secret is lost, if it holds no value.
    async fn replace_orphan(&self, opaque: &[u8; 32]) -> Result<(), VeilidDhtError> {
        const OP: &str = "create_record";
        let bare = RecordKey::new(*opaque, None);
        let vkey = to_veilid_key(&bare);
        let api_err = |e: vc::VeilidAPIError| VeilidDhtError::from_api(OP, &e, None);
        let _ = self.rc().open_dht_record(vkey.clone(), None, None).await.map_err(api_err)?;
        let report =
            self.rc().inspect_dht_record(vkey.clone(), None, vc::DHTReportScope::Local).await.map_err(api_err)?;
        if report.local_seqs().iter().any(|s| !s.is_none()) {
            let _ = self.rc().close_dht_record(vkey).await;
            return Err(VeilidDhtError::new(
                DhtErrorKind::Other,
                OP,
                "the record exists locally with values but its encryption secret is unknown",
            ));
        }
        tracing::warn!(record = %short(opaque), "replacing a local record whose encryption secret was lost before any write");
        self.rc().delete_dht_record(vkey).await.map_err(api_err)?;
        lock(&self.shared.open).remove(opaque);
        Ok(())
    }

    async fn set_inner(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, VeilidDhtError> {
        const OP: &str = "set_value";
        if key.secret().is_none() {
            // Veilid would publish the value unencrypted.
            return Err(VeilidDhtError::new(
                DhtErrorKind::BadRecordSecret,
                OP,
                "refusing to write with a record key that lacks its encryption secret",
            ));
        }
        if data.len() > MAX_VALUE_LEN {
            return Err(VeilidDhtError::new(
                DhtErrorKind::ValueTooLarge,
                OP,
                format!("value is {} bytes, limit {MAX_VALUE_LEN}", data.len()),
            ));
        }
        let (writer_key, writer_pub) = {
            let open = lock(&self.shared.open);
            let Some(rec) = open.get(key.opaque()) else {
                return Err(VeilidDhtError::new(DhtErrorKind::NotOpen, OP, "record not open"));
            };
            let Some(writer_key) = writer.or(rec.writer.as_ref()).cloned() else {
                return Err(VeilidDhtError::new(
                    DhtErrorKind::SchemaViolation,
                    OP,
                    "no writer: pass one or open the record with one",
                ));
            };
            let writer_pub = writer_key.public();
            check_write(OP, &rec.schema, &rec.owner, subkey, &writer_pub, data.len())?;
            (writer_key, writer_pub)
        };

        let vkey = to_veilid_key(key);
        let options = vc::SetDHTValueOptions {
            writer: Some(to_keypair(&writer_key)),
            allow_offline: Some(vc::AllowOffline(false)),
            min_seqnum: None,
        };
        let res = self
            .rc()
            .set_dht_value(vkey.clone(), subkey, data.clone(), Some(options))
            .await
            .map_err(|e| VeilidDhtError::from_api(OP, &e, Some(key)))?;

        let is_ours = |v: &vc::ValueData| {
            v.data() == data.as_slice() && v.ref_writer().ref_value()[..] == writer_pub.as_bytes()[..]
        };
        match res {
            // The network settled on our value, but some node holds a rival at
            // the same sequence number: ours is what readers get.
            Some(v) if is_ours(&v) => Ok(None),
            Some(v) => Ok(Some(from_veilid_value(OP, &v)?)),
            None => {
                // Veilid 0.5.8 also returns Ok(None) when the fanout ended
                // without consensus and AllowOffline(false) refused queueing;
                // then the local copy was *not* updated. The local copy is
                // only written after consensus, so it tells which case this is.
                let local = self
                    .rc()
                    .get_dht_value(vkey, subkey, false)
                    .await
                    .map_err(|e| VeilidDhtError::from_api(OP, &e, Some(key)))?;
                match local {
                    Some(v) if is_ours(&v) => Ok(None),
                    _ => Err(VeilidDhtError::new(
                        DhtErrorKind::Unavailable,
                        OP,
                        "the write did not reach consensus on the network (not queued)",
                    )),
                }
            }
        }
    }
}

/// Runs one operation inside a `debug_span` and logs its duration.
async fn timed<T>(
    op: &'static str,
    record: String,
    subkey: Option<Subkey>,
    fut: impl core::future::Future<Output = Result<T, VeilidDhtError>>,
) -> Result<T, VeilidDhtError> {
    let span = tracing::debug_span!("veilid_dht", op, record = %record, subkey = ?subkey);
    async move {
        let start = Instant::now();
        let res = fut.await;
        let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
        match &res {
            Ok(_) => tracing::debug!(elapsed_ms, "{op} ok"),
            Err(e) => tracing::debug!(elapsed_ms, kind = ?e.kind(), "{op} failed: {}", e.message()),
        }
        res
    }
    .instrument(span)
    .await
}

impl Dht for VeilidDht {
    type Error = VeilidDhtError;

    /// Creates the record (local only; it reaches the network with the first
    /// write) and stores its encryption secret in [`SECRETS_TABLE`] before
    /// returning the key.
    ///
    /// Idempotent on this node: if this node already created the record for
    /// this owner and schema, it is reopened and returned with the stored
    /// secret. A create interrupted before the secret was stored leaves a
    /// local record nobody can use; if it holds no value it is replaced.
    /// Idempotency is per node: a record created on another device (or whose
    /// node store was wiped) is not recognised, since Veilid gives a new
    /// random secret to every create.
    async fn create_record(&self, schema: &Schema, owner: &SigningKey) -> Result<RecordKey, Self::Error> {
        timed("create_record", owner.public().fmt_short(), None, self.create_inner(schema, owner)).await
    }

    /// Opens the record (from the network if it is not held locally:
    /// `Unavailable` when no node answered, `NotFound` when nodes answered
    /// without it). Reopening replaces the writer and keeps watches.
    async fn open_record(&self, key: &RecordKey, writer: Option<&SigningKey>) -> Result<(), Self::Error> {
        timed("open_record", key.fmt_short(), None, async {
            self.open_inner("open_record", key, writer).await.map(|_| ())
        })
        .await
    }

    /// Reads a subkey, decrypting with the secret in `key`: a key without the
    /// secret fails with `BadRecordSecret` for an encrypted value. Without
    /// `force_refresh`, a locally held value is returned without network
    /// access.
    async fn get_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        force_refresh: bool,
    ) -> Result<Option<ValueData>, Self::Error> {
        timed("get_value", key.fmt_short(), Some(subkey), async {
            const OP: &str = "get_value";
            let v = self
                .rc()
                .get_dht_value(to_veilid_key(key), subkey, force_refresh)
                .await
                .map_err(|e| VeilidDhtError::from_api(OP, &e, Some(key)))?;
            v.as_ref().map(|v| from_veilid_value(OP, v)).transpose()
        })
        .await
    }

    /// Writes a subkey and confirms it reached the network.
    ///
    /// Uses `AllowOffline(false)` so Veilid never queues the write, then
    /// checks an `Ok(None)` against the local copy (see the module docs: 0.5.8
    /// returns `Ok(None)` for a write that missed consensus). Refuses a key
    /// without its secret (Veilid would write plaintext) and checks the
    /// schema first for precise error kinds.
    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, Self::Error> {
        timed("set_value", key.fmt_short(), Some(subkey), self.set_inner(key, subkey, data, writer)).await
    }

    /// Asks Veilid to watch `subkeys` (all subkeys if empty). Returns at once:
    /// Veilid sets the watch up in the background and cannot be waited for,
    /// so changes in the next seconds may be reported late (or only seen by
    /// re-reading). The full key (with secret) is what Veilid uses to decrypt
    /// the values it reports.
    ///
    /// Changes are delivered only for records watched through this handle,
    /// listing the changed subkeys among those watched. If Veilid reports the
    /// watch dead, the change lists every watched subkey (empty when all
    /// subkeys were watched) meaning "re-read these", and the watch is
    /// forgotten: call `watch` again to renew it.
    async fn watch(&self, key: &RecordKey, subkeys: &[Subkey]) -> Result<bool, Self::Error> {
        timed("watch", key.fmt_short(), None, async {
            let mut sorted = subkeys.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            let ranges = if sorted.is_empty() { None } else { Some(subkey_range_set(&sorted)) };
            lock(&self.shared.watches).insert(*key.opaque(), WatchEntry { subkeys: sorted });
            let lifetime = self.shared.watch_lifetime_ms.load(Ordering::Relaxed);
            let expiration =
                (lifetime > 0).then(|| vc::Timestamp::now().later(vc::TimestampDuration::new_ms(lifetime)));
            let res = self.rc().watch_dht_values(to_veilid_key(key), ranges, expiration, None).await;
            match res {
                Ok(active) => {
                    if !active {
                        lock(&self.shared.watches).remove(key.opaque());
                    }
                    Ok(active)
                }
                Err(e) => {
                    lock(&self.shared.watches).remove(key.opaque());
                    Err(VeilidDhtError::from_api("watch", &e, Some(key)))
                }
            }
        })
        .await
    }

    /// Cancels the watch (Veilid cancels it on the remote nodes in the
    /// background). No-op when there is none.
    async fn cancel_watch(&self, key: &RecordKey) -> Result<(), Self::Error> {
        timed("cancel_watch", key.fmt_short(), None, async {
            lock(&self.shared.watches).remove(key.opaque());
            self.rc()
                .cancel_dht_watch(to_veilid_key(key), None)
                .await
                .map(|_| ())
                .map_err(|e| VeilidDhtError::from_api("cancel_watch", &e, Some(key)))
        })
        .await
    }

    /// Closes the record (and its watch). `NotOpen` if this node does not
    /// hold it at all; closing a held but closed record is a no-op.
    async fn close_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        timed("close_record", key.fmt_short(), None, async {
            lock(&self.shared.watches).remove(key.opaque());
            lock(&self.shared.open).remove(key.opaque());
            self.rc().close_dht_record(to_veilid_key(key)).await.map_err(|e| {
                let mut err = VeilidDhtError::from_api("close_record", &e, Some(key));
                if err.kind == DhtErrorKind::NotFound {
                    err.kind = DhtErrorKind::NotOpen;
                }
                err
            })
        })
        .await
    }

    /// Deletes the local copy (closing it first); the network keeps the
    /// record. Deleting a record this node does not hold is a no-op. The
    /// stored encryption secret is kept, so a later `create_record` for the
    /// same owner and schema finds the network copy again.
    async fn delete_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        timed("delete_record", key.fmt_short(), None, async {
            lock(&self.shared.watches).remove(key.opaque());
            lock(&self.shared.open).remove(key.opaque());
            match self.rc().delete_dht_record(to_veilid_key(key)).await {
                Ok(()) | Err(vc::VeilidAPIError::KeyNotFound { .. }) => Ok(()),
                Err(e) => Err(VeilidDhtError::from_api("delete_record", &e, Some(key))),
            }
        })
        .await
    }

    /// Waits for Veilid's offline write queue of this record to drain. This
    /// backend never queues its own writes, so this is immediate unless
    /// other code wrote to the record with offline writes allowed.
    async fn flush(&self, key: &RecordKey, timeout: Duration) -> Result<bool, Self::Error> {
        timed("flush", key.fmt_short(), None, async {
            self.rc()
                .flush_dht_record(to_veilid_key(key), Some(timeout))
                .await
                .map_err(|e| VeilidDhtError::from_api("flush", &e, Some(key)))
        })
        .await
    }

    fn changes(&self) -> Option<ChangeReceiver> {
        lock(&self.shared.rx).take()
    }

    /// Our private route's blob, allocated (and tested by Veilid) on first
    /// use and after Veilid reported it dead. `Unavailable` while the node
    /// cannot build one yet (not attached, too few nodes known).
    async fn reply_address(&self) -> Result<Option<Vec<u8>>, Self::Error> {
        timed("reply_address", String::new(), None, async {
            let mut route = self.shared.route.lock().await;
            let alive = lock(&self.shared.route_id).is_some();
            if let (Some(r), true) = (route.as_ref(), alive) {
                return Ok(Some(r.blob.to_vec()));
            }
            let blob = self
                .rc()
                .api()
                .new_private_route()
                .await
                .map_err(|e| VeilidDhtError::from_api("reply_address", &e, None))?;
            *lock(&self.shared.route_id) = Some(blob.route_id.clone());
            let bytes = blob.blob.to_vec();
            *route = Some(blob);
            Ok(Some(bytes))
        })
        .await
    }

    /// An `app_message` over the peer's private route (imported once and
    /// cached until Veilid reports it dead or a send fails).
    async fn send_nudge(&self, to: &[u8], nudge: &Nudge) -> Result<(), Self::Error> {
        timed("nudge", String::new(), Some(nudge.subkey), async {
            if to.is_empty() || to.len() > crate::limits::MAX_REPLY_ADDRESS {
                return Err(VeilidDhtError::new(DhtErrorKind::Other, "nudge", "reply address of a bad size"));
            }
            let cached = lock(&self.shared.remote).get(to).cloned();
            let id = match cached {
                Some(id) => id,
                None => {
                    let api = self.rc().api();
                    let id = api
                        .import_remote_private_route(to.to_vec())
                        .map_err(|e| VeilidDhtError::from_api("nudge", &e, None))?;
                    let mut remote = lock(&self.shared.remote);
                    // Bounded: one entry per peer nudged recently.
                    if remote.len() >= MAX_IMPORTED_ROUTES {
                        for (_, old) in remote.drain() {
                            let _ = api.release_private_route(old);
                        }
                    }
                    remote.insert(to.to_vec(), id.clone());
                    id
                }
            };
            let r = self.rc().app_message(vc::Target::RouteId(id), nudge.to_bytes()).await;
            r.map_err(|e| {
                // Import afresh next time: the route may have died.
                if let Some(id) = lock(&self.shared.remote).remove(to) {
                    let _ = self.rc().api().release_private_route(id);
                }
                VeilidDhtError::from_api("nudge", &e, None)
            })
        })
        .await
    }

    fn nudges(&self) -> Option<NudgeReceiver> {
        lock(&self.shared.nudge_rx).take()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::dht::SchemaMember;
    use rand_core::OsRng;

    #[test]
    fn keys_round_trip_with_and_without_secret() {
        let secret = SecretKey::generate(&mut OsRng);
        let key = RecordKey::new([7u8; 32], Some(secret));
        let back = from_veilid_key("t", &to_veilid_key(&key)).unwrap();
        assert_eq!(back, key);
        assert!(back.secret().is_some());
        let bare = key.without_secret();
        let back = from_veilid_key("t", &to_veilid_key(&bare)).unwrap();
        assert_eq!(back, bare);
        assert!(back.secret().is_none());
    }

    #[test]
    fn keypair_is_the_ed25519_seed_and_public_key() {
        let k = SigningKey::generate(&mut OsRng);
        let kp = to_keypair(&k);
        assert_eq!(kp.kind(), vc::CRYPTO_KIND_VLD0);
        assert_eq!(&kp.ref_value().ref_key()[..], k.public().as_bytes());
        assert_eq!(&kp.ref_value().ref_secret()[..], k.expose_seed().as_slice());
    }

    #[test]
    fn schema_maps_to_smpl_and_checks_writers() {
        let owner = SigningKey::generate(&mut OsRng).public();
        let member = SigningKey::generate(&mut OsRng).public();
        let schema = Schema { owner_subkeys: 1, members: vec![SchemaMember { key: member, subkeys: 1 }] };
        let v = to_veilid_schema("t", &schema).unwrap();
        assert_eq!(v.subkey_count(), 2);
        assert!(check_write("t", &v, &owner, 0, &owner, 10).is_ok());
        assert!(check_write("t", &v, &owner, 1, &member, 10).is_ok());
        let e = check_write("t", &v, &owner, 0, &member, 10).unwrap_err();
        assert_eq!(e.kind(), DhtErrorKind::SchemaViolation);
        let e = check_write("t", &v, &owner, 1, &owner, 10).unwrap_err();
        assert_eq!(e.kind(), DhtErrorKind::SchemaViolation);
        let e = check_write("t", &v, &owner, 2, &owner, 10).unwrap_err();
        assert_eq!(e.kind(), DhtErrorKind::SchemaViolation);
        let e = check_write("t", &v, &owner, 0, &owner, MAX_VALUE_LEN + 1).unwrap_err();
        assert_eq!(e.kind(), DhtErrorKind::ValueTooLarge);
        let empty = Schema { owner_subkeys: 0, members: vec![] };
        assert_eq!(to_veilid_schema("t", &empty).unwrap_err().kind(), DhtErrorKind::SchemaViolation);
    }

    #[test]
    fn errors_map_to_kinds_and_redact_secrets() {
        use vc::VeilidAPIError as E;
        assert_eq!(classify(&E::try_again("offline")), DhtErrorKind::Unavailable);
        assert_eq!(classify(&E::Timeout), DhtErrorKind::Unavailable);
        assert_eq!(classify(&E::no_connection("x")), DhtErrorKind::Unavailable);
        assert_eq!(
            classify(&E::generic("cannot decrypt value data: missing encryption key")),
            DhtErrorKind::BadRecordSecret
        );
        assert_eq!(classify(&E::generic("failed schema validation: k:0")), DhtErrorKind::SchemaViolation);
        assert_eq!(classify(&E::invalid_argument("record not open", "record_key", "k")), DhtErrorKind::NotOpen);
        assert_eq!(classify(&E::invalid_argument("value too big", "data", "1")), DhtErrorKind::ValueTooLarge);
        assert_eq!(classify(&E::Shutdown), DhtErrorKind::Other);

        let secret = SecretKey::generate(&mut OsRng);
        let encoded = data_encoding::BASE64URL_NOPAD.encode(secret.expose());
        let key = RecordKey::new([1u8; 32], Some(secret));
        let e = E::generic(format!("failed schema validation: VLD0:abc:{encoded}:0"));
        let err = VeilidDhtError::from_api("set_value", &e, Some(&key));
        assert!(!err.to_string().contains(&encoded));
        assert!(err.to_string().contains("<secret>"));
    }

    #[test]
    fn range_sets_hold_the_subkeys() {
        let r = subkey_range_set(&[1, 3, 4]);
        assert_eq!(r.data().iter().collect::<Vec<_>>(), vec![1, 3, 4]);
    }
}
