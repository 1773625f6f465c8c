//! A `Dht` wrapper that counts the operations in flight (now and the most
//! ever) and the completed ones, optionally holding each for a while so that
//! operations overlap. Shared by `tests/bounded_concurrency.rs` and
//! `benches/scale.rs` (included with `#[path]`).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use contact_invite::crypto::SigningKey;
use contact_invite::dht::{ChangeReceiver, Dht, RecordKey, Schema, Subkey, ValueData};

/// Counters shared by every handle of a [`Gauge`].
#[derive(Debug, Default)]
pub(crate) struct GaugeStats {
    now: AtomicUsize,
    max: AtomicUsize,
    done: AtomicU64,
    watches: AtomicU64,
}

impl GaugeStats {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Most operations ever in flight at once (since the last reset).
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
    /// Operations in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }
    /// Operations completed.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }
    /// Watches completed.
    pub(crate) fn watches(&self) -> u64 {
        self.watches.load(Ordering::SeqCst)
    }
    pub(crate) fn reset(&self) {
        self.max.store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
        self.done.store(0, Ordering::SeqCst);
        self.watches.store(0, Ordering::SeqCst);
    }
}

/// Counts operations of the wrapped DHT into [`GaugeStats`].
pub(crate) struct Gauge<D> {
    inner: D,
    stats: Arc<GaugeStats>,
    hold: Duration,
}

impl<D> Gauge<D> {
    /// Wraps `inner`; every operation takes at least `hold` (tokio time).
    pub(crate) fn new(inner: D, stats: Arc<GaugeStats>, hold: Duration) -> Self {
        Self { inner, stats, hold }
    }
    async fn counted<T>(&self, watch: bool, f: impl core::future::Future<Output = T>) -> T {
        /// Leaves the in-flight count even when the operation is dropped
        /// unfinished (a driver that stops aborts its operations).
        struct InFlight<'a>(&'a GaugeStats);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.now.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = self.stats.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.stats.max.fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(&self.stats);
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
        }
        let r = f.await;
        drop(guard);
        self.stats.done.fetch_add(1, Ordering::SeqCst);
        if watch {
            self.stats.watches.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

impl<D: Dht> Dht for Gauge<D> {
    type Error = D::Error;

    async fn create_record(&self, schema: &Schema, owner: &SigningKey) -> Result<RecordKey, Self::Error> {
        self.counted(false, self.inner.create_record(schema, owner)).await
    }
    async fn create_record_with_secret(
        &self,
        schema: &Schema,
        owner: &SigningKey,
        secret: &contact_invite::crypto::SecretKey,
    ) -> Result<RecordKey, Self::Error> {
        self.counted(false, self.inner.create_record_with_secret(schema, owner, secret)).await
    }
    async fn open_record(&self, key: &RecordKey, writer: Option<&SigningKey>) -> Result<(), Self::Error> {
        self.counted(false, self.inner.open_record(key, writer)).await
    }
    async fn get_value(&self, key: &RecordKey, subkey: Subkey, force: bool) -> Result<Option<ValueData>, Self::Error> {
        self.counted(false, self.inner.get_value(key, subkey, force)).await
    }
    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, Self::Error> {
        self.counted(false, self.inner.set_value(key, subkey, data, writer)).await
    }
    async fn watch(&self, key: &RecordKey, subkeys: &[Subkey]) -> Result<bool, Self::Error> {
        self.counted(true, self.inner.watch(key, subkeys)).await
    }
    async fn cancel_watch(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.counted(false, self.inner.cancel_watch(key)).await
    }
    async fn close_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.counted(false, self.inner.close_record(key)).await
    }
    async fn delete_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.counted(false, self.inner.delete_record(key)).await
    }
    async fn flush(&self, key: &RecordKey, timeout: Duration) -> Result<bool, Self::Error> {
        self.counted(false, self.inner.flush(key, timeout)).await
    }
    fn changes(&self) -> Option<ChangeReceiver> {
        self.inner.changes()
    }
    // Nudges are one-way and not bounded by the driver: forwarded, not counted.
    async fn reply_address(&self) -> Result<Option<Vec<u8>>, Self::Error> {
        self.inner.reply_address().await
    }
    async fn send_nudge(&self, to: &[u8], nudge: &contact_invite::dht::Nudge) -> Result<(), Self::Error> {
        self.inner.send_nudge(to, nudge).await
    }
    fn nudges(&self) -> Option<contact_invite::dht::NudgeReceiver> {
        self.inner.nudges()
    }
}
