//! Persistent storage for flows (in-flight invitations on either side),
//! contacts and the outstanding-invitation table.
//!
//! A store is a small table/key/value interface so any app database can back
//! it; this crate ships [`MemoryStore`], [`FileStore`] (one file per entry,
//! written atomically: temp file, fsync, rename, fsync of the directory) and,
//! with the `veilid` feature, a store over Veilid's `TableStore`.
//!
//! Entries hold secrets (invitation secrets, record owner keys, conversation
//! keys). [`FileStore`] creates its files readable by the owner only; apps that
//! need encryption at rest should use the Veilid store or their own.

use core::future::Future;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Tables a store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// In-flight flows, by flow id.
    Flows,
    /// Contacts, by peer identity key.
    Contacts,
    /// Outstanding invitations (the inviter's table), by flow id.
    Invitations,
    /// Local identity.
    Identity,
    /// Requests to our published address, by requester identity.
    Requests,
    /// Blocked identities.
    Blocked,
    /// Identities that persisted flows refer to, each stored once, by
    /// snapshot id (a hash of the identity's encoding). A flow record holds
    /// only the id; a snapshot is deleted once no flow refers to it.
    IdentitySnapshots,
}

impl Table {
    /// Every table.
    /// New tables go last: the Veilid store numbers its columns by position.
    pub const ALL: [Self; 7] = [
        Self::Flows,
        Self::Contacts,
        Self::Invitations,
        Self::Identity,
        Self::Requests,
        Self::Blocked,
        Self::IdentitySnapshots,
    ];
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flows => "flows",
            Self::Contacts => "contacts",
            Self::Invitations => "invitations",
            Self::Identity => "identity",
            Self::Requests => "requests",
            Self::Blocked => "blocked",
            Self::IdentitySnapshots => "identity-snapshots",
        }
    }
}

/// Version byte in front of every record this crate writes into a store, so
/// a later release can recognise and migrate older records. Flow records
/// have their own, [`FLOW_RECORD_FORMAT`]. 3: contacts record their
/// safety-number verification; stored identities and contacts hold identity
/// records of protocol version 2 (device DH keys, account-secret rotations,
/// their signed location). 4: identity records of protocol version 3.
pub const RECORD_FORMAT: u8 = 4;

/// Version byte of flow records (table [`Table::Flows`]). 3: the inviter's
/// identity is a reference to a snapshot in [`Table::IdentitySnapshots`],
/// its record keys are seeds, pending operations and timers are lists. 4: an
/// inviter cleaning up counts its tombstone rewrites (bounded); identity
/// records carry device DH keys and account-secret rotations (protocol
/// version 2). 5: a request being delivered keeps the recipient's identity
/// record while its stamp is minted off the runtime. A
/// flow record of another format is reported as unreadable (and left in the
/// store), never decoded as this layout. 4 also: freshness state (re-read
/// counters, the response awaiting its freshness check, a reject awaiting
/// its final status). 5: the stamp being minted is kept (CPU work runs off
/// the runtime and is asked for again on resume). 6: a request being
/// delivered is sealed before its stamp is minted (the stamp covers the
/// sealed bytes) and keeps them while minting; a request inbox keeps the
/// requests whose requester's record it is reading (FRESH-8); protocol
/// version 3.
pub const FLOW_RECORD_FORMAT: u8 = 6;

/// Encodes a value for the store: version byte, then postcard.
pub(crate) fn encode_record<T: serde::Serialize>(v: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    encode_versioned(RECORD_FORMAT, v)
}

/// Decodes a value written by [`encode_record`].
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T, crate::Error> {
    decode_versioned(RECORD_FORMAT, b, what)
}

/// Encodes a flow record ([`FLOW_RECORD_FORMAT`]).
pub(crate) fn encode_flow(flow: &crate::machine::Flow) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    encode_versioned(FLOW_RECORD_FORMAT, flow)
}

/// Decodes a flow record. Its identity snapshots must be available (see
/// [`crate::identity::Snapshots::decode_with`]); a missing one is an error.
pub(crate) fn decode_flow(b: &[u8], what: &str) -> Result<crate::machine::Flow, crate::Error> {
    decode_versioned(FLOW_RECORD_FORMAT, b, what)
}

/// Counts the bytes written to it (sizes an encoding before making it).
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records hold secrets (flow keys, account keys, conversation keys): the
/// encoding is sized first and made in one allocation, so no reallocation
/// leaves a copy behind, and it is wiped on drop.
fn encode_versioned<T: serde::Serialize>(format: u8, v: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    let err = |e: postcard::Error| crate::Error::Store(format!("encode: {e}"));
    let mut size = Counter(0);
    postcard::to_io(v, &mut size).map_err(err)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(1 + size.0));
    out.push(format);
    postcard::to_io(v, &mut *out).map_err(err)?;
    Ok(out)
}

fn decode_versioned<T: serde::de::DeserializeOwned>(format: u8, b: &[u8], what: &str) -> Result<T, crate::Error> {
    match b.split_first() {
        Some((&f, rest)) if f == format => {
            postcard::from_bytes(rest).map_err(|e| crate::Error::Store(format!("corrupt {what}: {e}")))
        }
        Some((v, _)) => Err(crate::Error::Store(format!("{what}: unknown record format {v}"))),
        None => Err(crate::Error::Store(format!("{what}: empty record"))),
    }
}

/// Every entry of a table: `(key, value)` pairs.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A table/key/value store. Writes are durable when their future completes.
pub trait Store: Send + Sync + 'static {
    /// Backend error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Inserts or replaces.
    fn put(&self, table: Table, key: &[u8], value: &[u8]) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Reads (`None` if absent).
    fn get(&self, table: Table, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;
    /// Removes (absent is fine).
    fn delete(&self, table: Table, key: &[u8]) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Every entry of a table, sorted by key.
    fn list(&self, table: Table) -> impl Future<Output = Result<Entries, Self::Error>> + Send;
}

type Tables = BTreeMap<(Table, Vec<u8>), Vec<u8>>;

/// Memory store error (never produced; kept for the trait).
#[derive(Debug, thiserror::Error)]
#[error("memory store error")]
pub struct MemoryStoreError;

/// An in-memory store. Cloning shares the contents (so a test can "restart"
/// a driver over the same store).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<Mutex<Tables>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of entries in a table.
    pub fn len(&self, table: Table) -> usize {
        self.lock().keys().filter(|(t, _)| *t == table).count()
    }
    /// Whether a table is empty.
    pub fn is_empty(&self, table: Table) -> bool {
        self.len(table) == 0
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    type Error = MemoryStoreError;
    async fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Self::Error> {
        self.lock().insert((table, key.to_vec()), value.to_vec());
        Ok(())
    }
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.lock().get(&(table, key.to_vec())).cloned())
    }
    async fn delete(&self, table: Table, key: &[u8]) -> Result<(), Self::Error> {
        self.lock().remove(&(table, key.to_vec()));
        Ok(())
    }
    async fn list(&self, table: Table) -> Result<Entries, Self::Error> {
        Ok(self.lock().iter().filter(|((t, _), _)| *t == table).map(|((_, k), v)| (k.clone(), v.clone())).collect())
    }
}

/// A store of files: `DIR/TABLE/HEXKEY`, each written atomically.
///
/// A write goes to a temporary file of its own (`.HEXKEY.UNIQUE.tmp`, a name
/// no other write uses, so concurrent writes of one key never share a
/// file), which is synced and then renamed over `HEXKEY`: a reader sees the
/// old value or the new one, never a mix, and the last rename wins. A write
/// that is killed leaves its temporary file behind; [`FileStore::open`]
/// removes such leftovers, and [`Store::list`] never returns them.
///
/// A store directory belongs to one process at a time (opening it removes
/// the temporary files of writes that are not this process's own).
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

/// Temporary files of writes in flight in this process (so opening a second
/// `FileStore` over the same directory does not remove them).
static IN_FLIGHT: Mutex<Option<std::collections::HashSet<PathBuf>>> = Mutex::new(None);

fn in_flight() -> std::sync::MutexGuard<'static, Option<std::collections::HashSet<PathBuf>>> {
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Suffix of every temporary file a [`FileStore`] writes.
const TMP_SUFFIX: &str = ".tmp";

/// Whether a file name in a table directory is a temporary file: ours
/// (`.HEXKEY.UNIQUE.tmp`) or the fixed `HEXKEY.tmp` of earlier versions.
fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.starts_with(b".") || b.ends_with(TMP_SUFFIX.as_bytes())
}

/// A temporary name no other write uses: process id, a per-process
/// counter and 64 random bits.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    use rand_core::RngCore;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut random = [0u8; 8];
    rand_core::OsRng.try_fill_bytes(&mut random).map_err(|_| std::io::Error::other("no randomness from the OS"))?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| std::io::Error::other("bad store path"))?;
    Ok(path.with_file_name(format!(
        ".{name}.{}-{n}-{}{TMP_SUFFIX}",
        std::process::id(),
        data_encoding::HEXLOWER.encode(&random)
    )))
}

impl FileStore {
    /// Opens (creating) a store in `dir`, and removes the temporary files
    /// that interrupted writes left behind (other than those of writes this
    /// process has in flight).
    pub fn open(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        for t in Table::ALL {
            std::fs::create_dir_all(dir.join(t.name()))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let store = Self { dir };
        store.remove_stale_temp_files()?;
        Ok(store)
    }

    fn remove_stale_temp_files(&self) -> std::io::Result<()> {
        for t in Table::ALL {
            let table = self.dir.join(t.name());
            for e in std::fs::read_dir(&table)? {
                let e = e?;
                if !is_temp_name(&e.file_name()) {
                    continue;
                }
                let path = e.path();
                if in_flight().as_ref().is_some_and(|s| s.contains(&path)) {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => tracing::info!(table = t.name(), "removed the temporary file of an interrupted write"),
                }
            }
        }
        Ok(())
    }

    fn path(&self, table: Table, key: &[u8]) -> PathBuf {
        self.dir.join(table.name()).join(data_encoding::HEXLOWER.encode(key))
    }
}

/// Removes its temporary file from [`IN_FLIGHT`] (and from disk if the
/// write did not complete).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(s) = in_flight().as_mut() {
            s.remove(&self.0);
        }
    }
}

fn write_atomic(path: &Path, value: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = TempFile(temp_path(path)?);
    in_flight().get_or_insert_with(Default::default).insert(tmp.0.clone());
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp.0)?;
        f.write_all(value)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp.0, path)?;
    drop(tmp);
    std::fs::File::open(dir)?.sync_all()
}
impl Store for FileStore {
    type Error = std::io::Error;
    async fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Self::Error> {
        let path = self.path(table, key);
        let value = value.to_vec();
        tokio::task::spawn_blocking(move || write_atomic(&path, &value)).await.map_err(std::io::Error::other)?
    }
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error> {
        match tokio::fs::read(self.path(table, key)).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    async fn delete(&self, table: Table, key: &[u8]) -> Result<(), Self::Error> {
        match tokio::fs::remove_file(self.path(table, key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    async fn list(&self, table: Table) -> Result<Entries, Self::Error> {
        let dir = self.dir.join(table.name());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let name = e.file_name();
                // Temporary files (writes in flight, leftovers of interrupted
                // ones) are never entries.
                if is_temp_name(&name) {
                    continue;
                }
                let Some(name) = name.to_str() else { continue };
                let Ok(key) = data_encoding::HEXLOWER.decode(name.as_bytes()) else { continue };
                match std::fs::read(e.path()) {
                    Ok(v) => out.push((key, v)),
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
