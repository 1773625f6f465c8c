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
//!
//! # Unreadable records
//!
//! Every record starts with a format byte ([`RECORD_FORMAT`], and
//! [`FLOW_RECORD_FORMAT`] for flows). A record that cannot be loaded (damaged
//! or torn, failing the checks made on load, of a format this version cannot
//! use) is reported with its key and an [`UnreadableReason`], and left in the
//! store: [`crate::driver::contacts`] and [`crate::driver::identities`]
//! return every readable record plus the list of unreadable ones; the driver
//! reports an unreadable flow as finished with an error and resumes the
//! others.
//!
//! # Migration
//!
//! A record of an older format is migrated when it is met, as far as its
//! content allows:
//!
//! - contacts and identities of format 3 (the previous one) have the current
//!   layout; they are checked exactly as current records, and load (and are
//!   written again as format 4) if their content still verifies. Their
//!   identity records were signed under protocol version 2, which this
//!   version does not verify: such a record is reported as
//!   [`UnreadableReason::MadeByOlderVersion`] (the contact has to be made
//!   again). Formats 1 and 2 are reported the same way.
//! - flows of an older format (1 to 7) have another layout, or hold protocol messages signed under
//!   an older protocol version and cannot be resumed: the driver ends each
//!   one at start with `Outcome::Failed(Error::Unreadable(MadeByOlderVersion
//!   { .. }))` ("this invitation was made by an older version; send a new
//!   one"), then removes its record. Identity snapshots of an older format
//!   are removed once no flow can refer to them.
//! - a record of a newer format is reported as
//!   [`UnreadableReason::NewerFormat`] and left alone.

pub use crate::error::UnreadableReason;
pub use crate::record::{FLOW_RECORD_FORMAT, RECORD_FORMAT};

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
    /// Identities that persisted flows refer to, each stored once, by
    /// snapshot id (a hash of the identity's encoding). A flow record holds
    /// only the id; a snapshot is deleted once no flow refers to it.
    IdentitySnapshots,
}

impl Table {
    /// Every table.
    /// New tables go last: the Veilid store numbers its columns by position.
    /// (A request inbox keeps its requests and block list in its own flow
    /// record, so there are no tables for them.)
    pub const ALL: [Self; 5] =
        [Self::Flows, Self::Contacts, Self::Invitations, Self::Identity, Self::IdentitySnapshots];
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flows => "flows",
            Self::Contacts => "contacts",
            Self::Invitations => "invitations",
            Self::Identity => "identity",
            Self::IdentitySnapshots => "identity-snapshots",
        }
    }
}

/// A record that could not be loaded: its store key and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    /// The record's key in its table (for a contact, the peer's identity
    /// key; for an identity, its identity key: see
    /// [`crate::crypto::PublicKey::as_bytes`]).
    pub key: Vec<u8>,
    /// Why it could not be loaded.
    pub reason: UnreadableReason,
}

/// The oldest [`RECORD_FORMAT`] whose records the migration still tries to
/// load (see the [module docs](crate::store#migration)); older ones are
/// [`UnreadableReason::MadeByOlderVersion`].
pub const OLDEST_MIGRATED_RECORD_FORMAT: u8 = 3;

/// How a contact or identity record was loaded by [`load_record`].
pub(crate) enum Load<T> {
    /// It is of the current format.
    Current(T),
    /// It was of an older format and [`migrate_record`] loaded it: the
    /// caller should write it again in the current format.
    Migrated(T),
}

/// Loads a contact or identity record (`T` checked from its stored form
/// `R`, see [`crate::contact::Contact`] and [`crate::identity::Identity`]):
/// the current format is decoded and checked; an older one goes through
/// [`migrate_record`]; anything else is a typed [`UnreadableReason`].
pub(crate) fn load_record<R, T>(b: &[u8]) -> Result<Load<T>, UnreadableReason>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = crate::VerifyError>,
{
    match b.split_first() {
        Some((&RECORD_FORMAT, rest)) => decode_checked::<R, T>(rest).map(Load::Current),
        // No version of this crate wrote format 0.
        Some((&0, _)) | None => Err(UnreadableReason::Corrupt),
        Some((&f, rest)) if f < RECORD_FORMAT => migrate_record::<R, T>(f, rest).map(Load::Migrated),
        Some((&format, _)) => Err(UnreadableReason::NewerFormat { format }),
    }
}

/// Decodes the stored form `R` (the whole of `body`, nothing after it), then
/// runs `T`'s load checks.
fn decode_checked<R, T>(body: &[u8]) -> Result<T, UnreadableReason>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = crate::VerifyError>,
{
    let raw = match postcard::take_from_bytes::<R>(body) {
        Ok((raw, [])) => raw,
        Ok(_) => return Err(UnreadableReason::Corrupt),
        // A nested value refused itself (a signed record that does not
        // verify, a key that is not one).
        Err(postcard::Error::SerdeDeCustom) => return Err(UnreadableReason::InvalidContent),
        Err(_) => return Err(UnreadableReason::Corrupt),
    };
    T::try_from(raw).map_err(UnreadableReason::Inconsistent)
}

/// The migration of a contact or identity record of an older
/// [`RECORD_FORMAT`] (`format`, with `body` the bytes after the format
/// byte). What changed, and what can be carried over:
///
/// - **3 → 4**: the layout is the same; only the protocol version of the
///   identity records inside changed (2 → 3), and the protocol version is
///   part of what every signature covers. So a format-3 record is decoded
///   with the current layout and checked exactly as a current one (a
///   record whose content still verifies loads, and the caller writes it
///   again as format 4); one whose signed identity record no longer
///   verifies cannot be used by this version and is
///   [`UnreadableReason::MadeByOlderVersion`] (the contact has to be made
///   again); any other failure keeps its own reason (damaged, inconsistent).
/// - **1, 2**: an older layout (before the safety-number verification and
///   the signed location): [`UnreadableReason::MadeByOlderVersion`].
///
/// Nothing is deleted: the caller reports the record and leaves it.
pub(crate) fn migrate_record<R, T>(format: u8, body: &[u8]) -> Result<T, UnreadableReason>
where
    R: serde::de::DeserializeOwned,
    T: TryFrom<R, Error = crate::VerifyError>,
{
    if !(OLDEST_MIGRATED_RECORD_FORMAT..RECORD_FORMAT).contains(&format) {
        return Err(UnreadableReason::MadeByOlderVersion { format });
    }
    decode_checked::<R, T>(body).map_err(|e| match e {
        UnreadableReason::InvalidContent => UnreadableReason::MadeByOlderVersion { format },
        other => other,
    })
}

/// What the store layer does with a flow record ([`Table::Flows`]) of
/// format `format`, when it is not [`FLOW_RECORD_FORMAT`]:
///
/// - an **older** format (1 to 7; none was ever 0) cannot be resumed by this version: its
///   layout differs, and the protocol messages it holds (the invitation, a
///   response, identity records) were signed under protocol version 2 or
///   older, which this version no longer verifies. The driver ends such a
///   flow at start with [`crate::Error::Unreadable`]`(`[`UnreadableReason::MadeByOlderVersion`]`)`
///   (an app shows "this invitation was made by an older version; send a
///   new one"), then removes its record and its outstanding-invitation
///   entry. Its DHT records are not cleaned up (their keys are in the
///   record this version cannot read); they expire on the network.
/// - a **newer** format is [`UnreadableReason::NewerFormat`]: the flow is
///   reported as failed and its record left in the store for the newer
///   version.
///
/// Returns `None` for the current format (decode it as usual), otherwise
/// the reason; the flow is ended for good exactly when it is
/// [`UnreadableReason::MadeByOlderVersion`].
pub(crate) fn migrate_flow(format: u8) -> Option<UnreadableReason> {
    match format.cmp(&FLOW_RECORD_FORMAT) {
        // No version of this crate wrote format 0.
        _ if format == 0 => Some(UnreadableReason::Corrupt),
        core::cmp::Ordering::Less => Some(UnreadableReason::MadeByOlderVersion { format }),
        core::cmp::Ordering::Equal => None,
        core::cmp::Ordering::Greater => Some(UnreadableReason::NewerFormat { format }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::{Contact, StoredContact};

    /// STORE-5: the flow migration ends every older format for good and
    /// leaves a newer one (and the current one is decoded as usual).
    #[test]
    fn store_5_migrate_flow_ends_older_formats_and_leaves_newer_ones() {
        for format in 1..FLOW_RECORD_FORMAT {
            assert_eq!(migrate_flow(format), Some(UnreadableReason::MadeByOlderVersion { format }));
        }
        assert_eq!(migrate_flow(FLOW_RECORD_FORMAT), None);
        assert_eq!(
            migrate_flow(FLOW_RECORD_FORMAT + 1),
            Some(UnreadableReason::NewerFormat { format: FLOW_RECORD_FORMAT + 1 })
        );
        assert_eq!(migrate_flow(0), Some(UnreadableReason::Corrupt));
    }

    /// STORE-4: formats older than any migration covers are reported as made
    /// by an older version without being decoded; format 0 (never written)
    /// and an empty record are damaged; a newer one is left for that version.
    #[test]
    fn store_4_record_formats_outside_the_migration() {
        let load = |b: &[u8]| load_record::<StoredContact, Contact>(b).err();
        for format in 1..OLDEST_MIGRATED_RECORD_FORMAT {
            assert_eq!(load(&[format, 1, 2, 3]), Some(UnreadableReason::MadeByOlderVersion { format }));
        }
        assert_eq!(load(&[0, 1, 2, 3]), Some(UnreadableReason::Corrupt));
        assert_eq!(load(&[]), Some(UnreadableReason::Corrupt));
        // Cut short inside its first field (a 32-byte key).
        assert_eq!(load(&[RECORD_FORMAT, 32, 1, 2]), Some(UnreadableReason::Corrupt));
        assert_eq!(load(&[RECORD_FORMAT + 1]), Some(UnreadableReason::NewerFormat { format: RECORD_FORMAT + 1 }));
        // The previous format with a damaged body is damaged, not "older".
        assert_eq!(load(&[OLDEST_MIGRATED_RECORD_FORMAT, 32, 1, 2]), Some(UnreadableReason::Corrupt));
    }
}
