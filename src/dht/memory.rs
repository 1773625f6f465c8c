//! `MemoryDht`: a shared in-process network that enforces what Veilid
//! enforces (schema writers, sequence numbers, the 32 KiB limit, writer
//! signatures, record encryption secrets), delivers watch notifications, counts
//! operations per party, and injects seeded, reproducible faults.
//!
//! By default a wrong record secret is refused (`BadRecordSecret`), as if the
//! record encryption were authenticated. Veilid's is not: a *wrong* secret is
//! accepted and yields garbage. [`MemoryNetwork::set_unauthenticated_record_encryption`]
//! switches to that behaviour, so code that must survive it can be tested here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand_core::{RngCore, SeedableRng};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::{
    ChangeReceiver, Dht, DhtError, DhtErrorKind, MAX_VALUE_LEN, Nudge, NudgeReceiver, RecordKey, Schema, Subkey,
    ValueChange, ValueData,
};
use crate::crypto::{PublicKey, SecretKey, Signature, SigningKey};

/// Fault rates (each 0.0..=1.0), drawn from the network's seeded RNG.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// An operation fails `Unavailable` without effect.
    pub drop: f64,
    /// A create or set lands on the network but the caller gets `Unavailable`.
    pub lost_ack: f64,
    /// An operation (or notification) is delayed by up to `max_delay`.
    pub delay: f64,
    /// Longest injected delay.
    pub max_delay: Duration,
    /// A watch notification is delivered twice.
    pub duplicate: f64,
    /// A get returns the party's older local copy instead of the network's.
    pub stale_read: f64,
    /// Before a set, another writer bumps the subkey (same bytes, seq + 1),
    /// so the set returns the newer value.
    pub conflict: f64,
    /// A watch notification is lost.
    pub lose_notification: f64,
    /// A nudge is lost (`delay` and `duplicate` apply to nudges too).
    pub lose_nudge: f64,
    /// An open fails `NotFound` though the record exists: Veilid's answer
    /// when no node holding the record replied in time (e.g. while nodes
    /// that left the network still time out).
    pub open_not_found: f64,
}

/// Operations a party attempted, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// create_record
    pub create: u64,
    /// open_record
    pub open: u64,
    /// get_value
    pub get: u64,
    /// set_value
    pub set: u64,
    /// watch
    pub watch: u64,
    /// cancel_watch
    pub cancel_watch: u64,
    /// close_record
    pub close: u64,
    /// delete_record
    pub delete: u64,
    /// flush
    pub flush: u64,
    /// nudges sent (not network round trips: one-way, best effort)
    pub nudge: u64,
}

impl OpCounts {
    /// All operations.
    pub fn total(&self) -> u64 {
        self.create
            + self.open
            + self.get
            + self.set
            + self.watch
            + self.cancel_watch
            + self.close
            + self.delete
            + self.flush
            + self.nudge
    }
    /// Network round trips (gets and sets).
    pub fn network(&self) -> u64 {
        self.get + self.set
    }
}

/// Errors of the in-memory DHT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryDhtError {
    /// Offline, dropped or timed out (retryable).
    #[error("network unavailable: {0}")]
    Unavailable(&'static str),
    /// No such record.
    #[error("record not found")]
    NotFound,
    /// Missing or wrong record encryption secret.
    #[error("missing or wrong record encryption secret")]
    BadRecordSecret,
    /// Writer not allowed, subkey out of range, or invalid schema.
    #[error("schema violation: {0}")]
    SchemaViolation(&'static str),
    /// Value over 32 KiB.
    #[error("value of {0} bytes exceeds the 32 KiB limit")]
    ValueTooLarge(usize),
    /// Record not open on this handle.
    #[error("record not open")]
    NotOpen,
    /// No party listens at that reply address (it restarted, or never was).
    #[error("no party at that reply address")]
    NoSuchAddress,
}

impl DhtError for MemoryDhtError {
    fn kind(&self) -> DhtErrorKind {
        match self {
            Self::Unavailable(_) => DhtErrorKind::Unavailable,
            Self::NotFound => DhtErrorKind::NotFound,
            Self::BadRecordSecret => DhtErrorKind::BadRecordSecret,
            Self::SchemaViolation(_) => DhtErrorKind::SchemaViolation,
            Self::ValueTooLarge(_) => DhtErrorKind::ValueTooLarge,
            Self::NotOpen => DhtErrorKind::NotOpen,
            Self::NoSuchAddress => DhtErrorKind::NotFound,
        }
    }
}

#[derive(Clone)]
struct Stored {
    seq: u32,
    data: Vec<u8>,
    writer: PublicKey,
    signature: Signature,
}

struct Record {
    owner: PublicKey,
    schema: Schema,
    secret: SecretKey,
    values: BTreeMap<Subkey, Stored>,
}

#[derive(Default)]
struct PartyState {
    /// Local copies, surviving restarts (like Veilid's record store).
    local: HashMap<([u8; 32], Subkey), ValueData>,
    /// Records this party created or opened: opening them again is local
    /// (`FaultConfig::open_not_found` never applies), as on Veilid.
    held: std::collections::HashSet<[u8; 32]>,
    counts: OpCounts,
    offline: bool,
}

struct Watch {
    handle: u64,
    subkeys: Vec<Subkey>,
    tx: mpsc::Sender<ValueChange>,
    /// The secret the watcher opened the record with (values it is told of
    /// are decrypted with it under unauthenticated record encryption).
    secret: Option<SecretKey>,
}

struct Net {
    rng: rand_chacha::ChaCha20Rng,
    faults: FaultConfig,
    records: HashMap<[u8; 32], Record>,
    parties: HashMap<String, PartyState>,
    /// Watches by record (a handle has at most one per record).
    watches: HashMap<[u8; 32], Vec<Watch>>,
    next_handle: u64,
    /// Reply addresses in use, and where their nudges go.
    mailboxes: HashMap<Vec<u8>, mpsc::Sender<Nudge>>,
    nudges_enabled: bool,
    /// How long a handle's first reply address takes to make.
    reply_address_delay: Duration,
    tamper_nudges: Option<Vec<u8>>,
    /// Veilid-like record encryption: a wrong secret is not detected.
    unauthenticated: bool,
}

impl Net {
    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }
    fn party(&mut self, name: &str) -> &mut PartyState {
        self.parties.entry(name.to_owned()).or_default()
    }
}

/// The shared network. Cloning shares it.
#[derive(Clone)]
pub struct MemoryNetwork {
    net: Arc<Mutex<Net>>,
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MemoryNetwork({} records)", self.record_count())
    }
}

fn signing_digest(record: &[u8; 32], subkey: Subkey, seq: u32, data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("contact-invite memory-dht value v1");
    h.update(record);
    h.update(&subkey.to_be_bytes());
    h.update(&seq.to_be_bytes());
    h.update(data);
    *h.finalize().as_bytes()
}

fn schema_bytes(s: &Schema) -> Vec<u8> {
    let mut b = s.owner_subkeys.to_be_bytes().to_vec();
    for m in &s.members {
        b.extend_from_slice(m.key.as_bytes());
        b.extend_from_slice(&m.subkeys.to_be_bytes());
    }
    b
}

impl MemoryNetwork {
    /// A network with no faults (seed 0).
    pub fn new() -> Self {
        Self::with_faults(0, FaultConfig::default())
    }
    /// A network with seeded faults.
    pub fn with_faults(seed: u64, faults: FaultConfig) -> Self {
        Self {
            net: Arc::new(Mutex::new(Net {
                rng: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
                faults,
                records: HashMap::new(),
                parties: HashMap::new(),
                watches: HashMap::new(),
                next_handle: 0,
                mailboxes: HashMap::new(),
                nudges_enabled: true,
                reply_address_delay: Duration::ZERO,
                tamper_nudges: None,
                unauthenticated: false,
            })),
        }
    }
    fn lock(&self) -> MutexGuard<'_, Net> {
        self.net.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// A party's handle. Joining again under the same name models an app
    /// restart: local copies survive, open records and watches do not.
    pub fn join(&self, party: &str) -> MemoryDht {
        let (tx, rx) = mpsc::channel(1024);
        let (nudge_tx, nudge_rx) = mpsc::channel(1024);
        let mut n = self.lock();
        n.party(party);
        let handle = n.next_handle;
        n.next_handle += 1;
        MemoryDht {
            net: self.clone(),
            party: party.to_owned(),
            handle,
            open: Arc::new(Mutex::new(HashMap::new())),
            tx,
            rx: Mutex::new(Some(rx)),
            nudge_tx,
            nudge_rx: Mutex::new(Some(nudge_rx)),
            address: Mutex::new(None),
        }
    }
    /// Turns the direct channel on (the default) or off: off, parties have
    /// no reply address and learn of writes only by watching and polling, as
    /// on a backend without one.
    pub fn set_nudges_enabled(&self, enabled: bool) {
        self.lock().nudges_enabled = enabled;
    }
    /// How long each handle's first reply address takes to make (zero by
    /// default), as a Veilid private route takes a second or more.
    pub fn set_reply_address_delay(&self, delay: Duration) {
        self.lock().reply_address_delay = delay;
    }
    /// A hostile relay: every nudge delivered from now on carries `value`
    /// instead of what was sent (`None` stops it).
    pub fn tamper_nudges(&self, value: Option<Vec<u8>>) {
        self.lock().tamper_nudges = value;
    }
    /// Mimics Veilid's *unauthenticated* record encryption (on) or refuses
    /// wrong secrets (off, the default). On: a missing secret is still
    /// refused, but a wrong one is not detected. Opening and watching
    /// succeed; a value read (or notified) through a wrong secret comes back
    /// as same-length garbage (the stored value decrypted with the wrong
    /// key stream), and a value written through one is stored as garbage for
    /// holders of the right secret, as Veilid's stream cipher would.
    pub fn set_unauthenticated_record_encryption(&self, on: bool) {
        self.lock().unauthenticated = on;
    }
    /// Takes a party offline (every operation fails `Unavailable`) or back.
    pub fn set_offline(&self, party: &str, offline: bool) {
        self.lock().party(party).offline = offline;
    }
    /// Changes the fault rates.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.lock().faults = faults;
    }
    /// A party's operation counts.
    pub fn op_counts(&self, party: &str) -> OpCounts {
        self.lock().parties.get(party).map(|p| p.counts.clone()).unwrap_or_default()
    }
    /// Resets every party's counts.
    pub fn reset_op_counts(&self) {
        for p in self.lock().parties.values_mut() {
            p.counts = OpCounts::default();
        }
    }
    /// What the network holds at a subkey.
    pub fn stored_value(&self, record: &[u8; 32], subkey: Subkey) -> Option<ValueData> {
        self.lock().records.get(record).and_then(|r| r.values.get(&subkey)).map(|s| ValueData {
            seq: s.seq,
            data: s.data.clone(),
            writer: s.writer,
        })
    }
    /// Whether a record exists.
    pub fn record_exists(&self, record: &[u8; 32]) -> bool {
        self.lock().records.contains_key(record)
    }
    /// Number of records.
    pub fn record_count(&self) -> usize {
        self.lock().records.len()
    }
    /// A hostile node replaces a value (seq + 1, same writer field, no
    /// signature check) and notifies watchers.
    pub fn tamper_value(&self, record: &[u8; 32], subkey: Subkey, data: Vec<u8>) {
        let mut n = self.lock();
        let Some(r) = n.records.get_mut(record) else { return };
        let (seq, writer) = match r.values.get(&subkey) {
            Some(s) => (s.seq + 1, s.writer),
            None => (0, r.owner),
        };
        r.values.insert(subkey, Stored { seq, data: data.clone(), writer, signature: Signature([0; 64]) });
        let v = ValueData { seq, data, writer };
        notify(&mut n, u64::MAX, record, subkey, v);
    }
}

fn notify(n: &mut Net, from_handle: u64, record: &[u8; 32], subkey: Subkey, value: ValueData) {
    let real = n.records.get(record).map(|r| r.secret.clone());
    let unauthenticated = n.unauthenticated;
    let targets: Vec<(mpsc::Sender<ValueChange>, Option<SecretKey>)> = n
        .watches
        .get(record)
        .into_iter()
        .flatten()
        .filter(|w| w.handle != from_handle && (w.subkeys.is_empty() || w.subkeys.contains(&subkey)))
        .map(|w| (w.tx.clone(), w.secret.clone()))
        .collect();
    for (tx, used) in targets {
        let mut value = value.clone();
        if let (true, Some(real), Some(used)) = (unauthenticated, &real, &used) {
            value.data = garble(real, used, record, subkey, value.seq, &value.data);
        }
        let change = ValueChange { record: *record, subkeys: vec![subkey], value: Some(value) };
        if n.roll(n.faults.lose_notification) {
            continue;
        }
        let copies = if n.roll(n.faults.duplicate) { 2 } else { 1 };
        let delay = if n.roll(n.faults.delay) { Some(jitter(n)) } else { None };
        for _ in 0..copies {
            let (tx, change) = (tx.clone(), change.clone());
            match delay {
                Some(d) if tokio::runtime::Handle::try_current().is_ok() => {
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tx.try_send(change);
                    });
                }
                _ => {
                    let _ = tx.try_send(change);
                }
            }
        }
    }
}

/// What a stream cipher keyed by `used` makes of a value encrypted under
/// `real`: the value itself when the keys match, else garbage of the same
/// length (value XOR keystream(real) XOR keystream(used)).
fn garble(real: &SecretKey, used: &SecretKey, record: &[u8; 32], subkey: Subkey, seq: u32, data: &[u8]) -> Vec<u8> {
    if bool::from(real.expose().ct_eq(used.expose())) {
        return data.to_vec();
    }
    let stream = |k: &SecretKey| {
        let mut h = blake3::Hasher::new_keyed(k.expose());
        h.update(b"contact-invite memory-dht unauthenticated stream v1");
        h.update(record);
        h.update(&subkey.to_be_bytes());
        h.update(&seq.to_be_bytes());
        let mut ks = vec![0u8; data.len()];
        h.finalize_xof().fill(&mut ks);
        ks
    };
    let (a, b) = (stream(real), stream(used));
    data.iter().zip(a.iter().zip(b.iter())).map(|(d, (x, y))| d ^ x ^ y).collect()
}

fn jitter(n: &mut Net) -> Duration {
    let max = n.faults.max_delay.as_millis() as u64;
    if max == 0 { Duration::ZERO } else { Duration::from_millis(n.rng.next_u64() % max) }
}

/// One party's handle on a [`MemoryNetwork`].
pub struct MemoryDht {
    net: MemoryNetwork,
    party: String,
    handle: u64,
    /// Open records and their default writer.
    open: Arc<Mutex<HashMap<[u8; 32], Option<SigningKey>>>>,
    tx: mpsc::Sender<ValueChange>,
    rx: Mutex<Option<ChangeReceiver>>,
    nudge_tx: mpsc::Sender<Nudge>,
    nudge_rx: Mutex<Option<NudgeReceiver>>,
    /// This handle's reply address, once asked for.
    address: Mutex<Option<Vec<u8>>>,
}

impl core::fmt::Debug for MemoryDht {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MemoryDht({})", self.party)
    }
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Open,
    Get,
    Set,
    Watch,
    CancelWatch,
    Close,
    Delete,
    Flush,
    Nudge,
}

type R<T> = Result<T, MemoryDhtError>;

impl MemoryDht {
    fn open_map(&self) -> MutexGuard<'_, HashMap<[u8; 32], Option<SigningKey>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the op, applies offline/drop/delay faults. Returns whether the
    /// ack of a write should be lost.
    async fn begin(&self, op: Op) -> R<bool> {
        tokio::task::yield_now().await;
        let delay = {
            let mut n = self.net.lock();
            let p = n.party(&self.party);
            let c = &mut p.counts;
            match op {
                Op::Create => c.create += 1,
                Op::Open => c.open += 1,
                Op::Get => c.get += 1,
                Op::Set => c.set += 1,
                Op::Watch => c.watch += 1,
                Op::CancelWatch => c.cancel_watch += 1,
                Op::Close => c.close += 1,
                Op::Delete => c.delete += 1,
                Op::Flush => c.flush += 1,
                Op::Nudge => c.nudge += 1,
            }
            if p.offline {
                return Err(MemoryDhtError::Unavailable("party offline"));
            }
            let drop = n.faults.drop;
            if matches!(op, Op::Get | Op::Set | Op::Open | Op::Create) && n.roll(drop) {
                return Err(MemoryDhtError::Unavailable("dropped"));
            }
            let d = n.faults.delay;
            if n.roll(d) { Some(jitter(&mut n)) } else { None }
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut n = self.net.lock();
        let lost = n.faults.lost_ack;
        Ok(matches!(op, Op::Set | Op::Create) && n.roll(lost))
    }

    /// Creates (or returns) a record; with `chosen`, encrypted under it.
    async fn create_inner(&self, schema: &Schema, owner: &SigningKey, chosen: Option<&SecretKey>) -> R<RecordKey> {
        let lost = self.begin(Op::Create).await?;
        let total = schema.subkey_count();
        if total == 0 || total > 1024 {
            return Err(MemoryDhtError::SchemaViolation("a record has 1..=1024 subkeys"));
        }
        let mut seen = HashSet::new();
        for m in &schema.members {
            if m.key == owner.public() || !seen.insert(m.key) {
                return Err(MemoryDhtError::SchemaViolation("member keys must be distinct and differ from the owner"));
            }
        }
        let mut id_input = owner.public().as_bytes().to_vec();
        id_input.extend_from_slice(&schema_bytes(schema));
        let opaque = blake3::derive_key("contact-invite memory-dht record key v1", &id_input);
        let key = {
            let mut n = self.net.lock();
            let secret = match n.records.get_mut(&opaque) {
                Some(r) if r.owner == owner.public() => {
                    if let Some(c) = chosen {
                        r.secret = c.clone();
                    }
                    r.secret.clone()
                }
                Some(_) => return Err(MemoryDhtError::SchemaViolation("record exists with another owner")),
                None => {
                    let secret = match chosen {
                        Some(c) => c.clone(),
                        None => SecretKey::generate(&mut n.rng),
                    };
                    let rec = Record {
                        owner: owner.public(),
                        schema: schema.clone(),
                        secret: secret.clone(),
                        values: BTreeMap::new(),
                    };
                    n.records.insert(opaque, rec);
                    secret
                }
            };
            n.party(&self.party).held.insert(opaque);
            RecordKey::new(opaque, Some(secret))
        };
        self.open_map().insert(opaque, Some(owner.clone()));
        if lost {
            return Err(MemoryDhtError::Unavailable("ack lost"));
        }
        Ok(key)
    }

    fn check_secret(r: &Record, key: &RecordKey, unauthenticated: bool) -> R<()> {
        match key.secret() {
            Some(s) if bool::from(s.expose().ct_eq(r.secret.expose())) => Ok(()),
            // Veilid-like: a wrong secret goes unnoticed (a missing one does not).
            Some(_) if unauthenticated => Ok(()),
            _ => Err(MemoryDhtError::BadRecordSecret),
        }
    }

    fn require_open(&self, key: &RecordKey) -> R<Option<SigningKey>> {
        self.open_map().get(key.opaque()).cloned().ok_or(MemoryDhtError::NotOpen)
    }
}

impl Dht for MemoryDht {
    type Error = MemoryDhtError;

    async fn create_record(&self, schema: &Schema, owner: &SigningKey) -> R<RecordKey> {
        self.create_inner(schema, owner, None).await
    }

    /// Like Veilid (which encrypts with whatever key the record is opened
    /// with): a record created before keeps its values, and from now on is
    /// encrypted under `secret`.
    async fn create_record_with_secret(&self, schema: &Schema, owner: &SigningKey, secret: &SecretKey) -> R<RecordKey> {
        self.create_inner(schema, owner, Some(secret)).await
    }

    async fn open_record(&self, key: &RecordKey, writer: Option<&SigningKey>) -> R<()> {
        self.begin(Op::Open).await?;
        {
            let mut n = self.net.lock();
            let held = n.parties.get(&self.party).is_some_and(|p| p.held.contains(key.opaque()));
            let missing = n.faults.open_not_found;
            if !held && n.roll(missing) {
                return Err(MemoryDhtError::NotFound);
            }
            let r = n.records.get(key.opaque()).ok_or(MemoryDhtError::NotFound)?;
            Self::check_secret(r, key, n.unauthenticated)?;
            n.party(&self.party).held.insert(*key.opaque());
        }
        self.open_map().insert(*key.opaque(), writer.cloned());
        Ok(())
    }

    async fn get_value(&self, key: &RecordKey, subkey: Subkey, force_refresh: bool) -> R<Option<ValueData>> {
        self.begin(Op::Get).await?;
        self.require_open(key)?;
        let mut n = self.net.lock();
        let stale = n.faults.stale_read;
        let stale = n.roll(stale);
        let unauthenticated = n.unauthenticated;
        let r = n.records.get(key.opaque()).ok_or(MemoryDhtError::NotFound)?;
        Self::check_secret(r, key, unauthenticated)?;
        if subkey >= r.schema.subkey_count() {
            return Err(MemoryDhtError::SchemaViolation("subkey out of range"));
        }
        // What this reader's key makes of the stored value.
        let (real, opaque) = (r.secret.clone(), *key.opaque());
        let as_read = |v: Option<ValueData>| match (v, key.secret()) {
            (Some(mut v), Some(used)) if unauthenticated => {
                v.data = garble(&real, used, &opaque, subkey, v.seq, &v.data);
                Some(v)
            }
            (v, _) => v,
        };
        let network = r.values.get(&subkey).map(|s| ValueData { seq: s.seq, data: s.data.clone(), writer: s.writer });
        let party = n.party(&self.party);
        let local = party.local.get(&(*key.opaque(), subkey)).cloned();
        if stale || (!force_refresh && local.is_some()) {
            return Ok(as_read(local));
        }
        // Keep the newest of local and network.
        let newest = match (&local, &network) {
            (Some(l), Some(v)) if l.seq > v.seq => local,
            _ => network,
        };
        if let Some(v) = &newest {
            party.local.insert((*key.opaque(), subkey), v.clone());
        }
        Ok(as_read(newest))
    }

    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> R<Option<ValueData>> {
        let lost = self.begin(Op::Set).await?;
        let default_writer = self.require_open(key)?;
        let writer = writer
            .cloned()
            .or(default_writer)
            .ok_or(MemoryDhtError::SchemaViolation("record not opened for writing"))?;
        if data.len() > MAX_VALUE_LEN {
            return Err(MemoryDhtError::ValueTooLarge(data.len()));
        }
        let opaque = *key.opaque();
        let mut n = self.net.lock();
        let conflict = n.faults.conflict;
        let conflict = n.roll(conflict);
        let unauthenticated = n.unauthenticated;
        let r = n.records.get_mut(&opaque).ok_or(MemoryDhtError::NotFound)?;
        Self::check_secret(r, key, unauthenticated)?;
        // Written through a wrong secret: holders of the right one read garbage.
        let real = r.secret.clone();
        if r.schema.writer_of(&r.owner, subkey) != Some(writer.public()) {
            return Err(MemoryDhtError::SchemaViolation("this key may not write this subkey"));
        }
        if conflict && let Some(cur) = r.values.get(&subkey).cloned() {
            r.values.insert(subkey, Stored { seq: cur.seq + 1, ..cur });
        }
        let network = r.values.get(&subkey).cloned();
        let local_seq = n.party(&self.party).local.get(&(opaque, subkey)).map(|v| v.seq);
        let seq = local_seq.map_or(0, |s| s + 1);
        if let Some(cur) = network
            && cur.seq >= seq
        {
            let v = ValueData { seq: cur.seq, data: cur.data, writer: cur.writer };
            n.party(&self.party).local.insert((opaque, subkey), v.clone());
            let data = match key.secret() {
                Some(used) if unauthenticated => garble(&real, used, &opaque, subkey, v.seq, &v.data),
                _ => v.data,
            };
            return Ok(Some(ValueData { data, ..v }));
        }
        // The writer signs; the network checks the signature against the schema writer.
        let sig = writer.sign_raw(&signing_digest(&opaque, subkey, seq, &data));
        if !writer.public().verify_raw(&signing_digest(&opaque, subkey, seq, &data), &sig) {
            return Err(MemoryDhtError::SchemaViolation("bad writer signature"));
        }
        let stored_data = match key.secret() {
            Some(used) if unauthenticated => garble(&real, used, &opaque, subkey, seq, &data),
            _ => data.clone(),
        };
        let stored = Stored { seq, data: stored_data.clone(), writer: writer.public(), signature: sig };
        let _ = &stored.signature;
        if let Some(r) = n.records.get_mut(&opaque) {
            r.values.insert(subkey, stored);
        }
        let v = ValueData { seq, data: stored_data, writer: writer.public() };
        if !lost {
            n.party(&self.party).local.insert((opaque, subkey), v.clone());
        }
        notify(&mut n, self.handle, &opaque, subkey, v);
        if lost {
            return Err(MemoryDhtError::Unavailable("ack lost"));
        }
        Ok(None)
    }

    async fn watch(&self, key: &RecordKey, subkeys: &[Subkey]) -> R<bool> {
        self.begin(Op::Watch).await?;
        self.require_open(key)?;
        let mut n = self.net.lock();
        let r = n.records.get(key.opaque()).ok_or(MemoryDhtError::NotFound)?;
        Self::check_secret(r, key, n.unauthenticated)?;
        let handle = self.handle;
        let secret = key.secret().cloned();
        let on_record = n.watches.entry(*key.opaque()).or_default();
        on_record.retain(|w| w.handle != handle);
        on_record.push(Watch { handle, subkeys: subkeys.to_vec(), tx: self.tx.clone(), secret });
        Ok(true)
    }

    async fn cancel_watch(&self, key: &RecordKey) -> R<()> {
        self.begin(Op::CancelWatch).await?;
        let handle = self.handle;
        let mut n = self.net.lock();
        if let Some(on_record) = n.watches.get_mut(key.opaque()) {
            on_record.retain(|w| w.handle != handle);
            if on_record.is_empty() {
                n.watches.remove(key.opaque());
            }
        }
        Ok(())
    }

    async fn close_record(&self, key: &RecordKey) -> R<()> {
        self.begin(Op::Close).await?;
        self.open_map().remove(key.opaque());
        Ok(())
    }

    async fn delete_record(&self, key: &RecordKey) -> R<()> {
        self.begin(Op::Delete).await?;
        self.open_map().remove(key.opaque());
        let mut n = self.net.lock();
        let opaque = *key.opaque();
        n.party(&self.party).local.retain(|(r, _), _| r != &opaque);
        Ok(())
    }

    async fn flush(&self, _key: &RecordKey, _timeout: Duration) -> R<bool> {
        self.begin(Op::Flush).await?;
        Ok(true)
    }

    fn changes(&self) -> Option<ChangeReceiver> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// A random 16-byte address per handle (a restart gets a new one, like a
    /// Veilid private route); `None` while nudges are disabled.
    async fn reply_address(&self) -> R<Option<Vec<u8>>> {
        let made = self.address.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let delay = self.net.lock().reply_address_delay;
        if !made && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut n = self.net.lock();
        if !n.nudges_enabled {
            return Ok(None);
        }
        let mut mine = self.address.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = mine.as_ref() {
            return Ok(Some(a.clone()));
        }
        let mut a = vec![0u8; 16];
        n.rng.fill_bytes(&mut a);
        n.mailboxes.insert(a.clone(), self.nudge_tx.clone());
        *mine = Some(a.clone());
        Ok(Some(a))
    }

    /// Delivers to the party at `to` (lost, delayed or duplicated like a
    /// watch notification under faults); `NoSuchAddress` if nobody is there.
    async fn send_nudge(&self, to: &[u8], nudge: &Nudge) -> R<()> {
        self.begin(Op::Nudge).await?;
        let mut n = self.net.lock();
        if !n.nudges_enabled {
            return Ok(());
        }
        let tx = n.mailboxes.get(to).cloned().ok_or(MemoryDhtError::NoSuchAddress)?;
        // Through the wire form, as a real backend would carry it.
        let Ok(nudge) = Nudge::from_bytes(&nudge.to_bytes()) else { return Ok(()) };
        let f = n.faults.clone();
        if n.roll(f.lose_nudge) {
            return Ok(());
        }
        let nudge = match &n.tamper_nudges {
            Some(bytes) => Nudge { value: bytes.clone(), ..nudge },
            None => nudge,
        };
        let copies = if n.roll(f.duplicate) { 2 } else { 1 };
        let delay = if n.roll(f.delay) { Some(jitter(&mut n)) } else { None };
        for _ in 0..copies {
            let (tx, nudge) = (tx.clone(), nudge.clone());
            match delay {
                Some(d) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tx.try_send(nudge);
                    });
                }
                None => {
                    let _ = tx.try_send(nudge);
                }
            }
        }
        Ok(())
    }

    fn nudges(&self) -> Option<NudgeReceiver> {
        self.nudge_rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for MemoryDht {
    fn drop(&mut self) {
        let handle = self.handle;
        let address = self.address.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut n = self.net.lock();
        n.watches.retain(|_, on_record| {
            on_record.retain(|w| w.handle != handle);
            !on_record.is_empty()
        });
        if let Some(a) = address {
            n.mailboxes.remove(&a);
        }
    }
}
