//! A `Dht` wrapper that times every operation, for progress displays,
//! benchmarks and latency reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ChangeReceiver, Dht, Nudge, NudgeReceiver, RecordKey, Schema, Subkey, ValueData};
use crate::crypto::SigningKey;

/// One timed operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpRecord {
    /// `create`, `open`, `get`, `set`, `watch`, `cancel_watch`, `close`,
    /// `delete`, `flush`, `reply_address`, `nudge` (the send: dispatch only).
    pub op: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// Whether it succeeded.
    pub ok: bool,
    /// Bytes carried: the value written (set, nudge) or read (get); 0 otherwise.
    pub bytes: usize,
}

/// A shared log of timed operations.
#[derive(Clone, Debug, Default)]
pub struct OpLog(Arc<Mutex<Vec<OpRecord>>>);

impl OpLog {
    /// A new, empty log.
    pub fn new() -> Self {
        Self::default()
    }
    fn push(&self, r: OpRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }
    /// Takes every record so far.
    pub fn drain(&self) -> Vec<OpRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    /// A copy of every record so far.
    pub fn snapshot(&self) -> Vec<OpRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Median of successful operations of a kind.
pub fn median(records: &[OpRecord], op: &str) -> Option<Duration> {
    let mut v: Vec<Duration> = records.iter().filter(|r| r.ok && r.op == op).map(|r| r.elapsed).collect();
    v.sort();
    v.get(v.len() / 2).copied()
}

/// Wraps a `Dht`, timing every operation into an [`OpLog`]. Clones share
/// the log.
#[derive(Clone, Debug)]
pub struct Recorded<D> {
    inner: D,
    log: OpLog,
}

impl<D> Recorded<D> {
    /// Wraps `inner`, logging into `log`.
    pub fn new(inner: D, log: OpLog) -> Self {
        Self { inner, log }
    }
    /// The wrapped DHT.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dht> Recorded<D> {
    async fn timed<T, E>(&self, op: &'static str, f: impl core::future::Future<Output = Result<T, E>>) -> Result<T, E> {
        self.sized(op, 0, f).await
    }
    async fn sized<T, E>(
        &self,
        op: &'static str,
        bytes: usize,
        f: impl core::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let t = Instant::now();
        let r = f.await;
        self.log.push(OpRecord { op, elapsed: t.elapsed(), ok: r.is_ok(), bytes });
        r
    }
}

impl<D: Dht> Dht for Recorded<D> {
    type Error = D::Error;

    async fn create_record(&self, schema: &Schema, owner: &SigningKey) -> Result<RecordKey, Self::Error> {
        self.timed("create", self.inner.create_record(schema, owner)).await
    }
    async fn create_record_with_secret(
        &self,
        schema: &Schema,
        owner: &SigningKey,
        secret: &crate::crypto::SecretKey,
    ) -> Result<RecordKey, Self::Error> {
        self.timed("create", self.inner.create_record_with_secret(schema, owner, secret)).await
    }
    async fn open_record(&self, key: &RecordKey, writer: Option<&SigningKey>) -> Result<(), Self::Error> {
        self.timed("open", self.inner.open_record(key, writer)).await
    }
    async fn get_value(&self, key: &RecordKey, subkey: Subkey, force: bool) -> Result<Option<ValueData>, Self::Error> {
        let t = Instant::now();
        let r = self.inner.get_value(key, subkey, force).await;
        let bytes = r.as_ref().ok().and_then(|v| v.as_ref()).map_or(0, |v| v.data.len());
        self.log.push(OpRecord { op: "get", elapsed: t.elapsed(), ok: r.is_ok(), bytes });
        r
    }
    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, Self::Error> {
        self.sized("set", data.len(), self.inner.set_value(key, subkey, data, writer)).await
    }
    async fn watch(&self, key: &RecordKey, subkeys: &[Subkey]) -> Result<bool, Self::Error> {
        self.timed("watch", self.inner.watch(key, subkeys)).await
    }
    async fn cancel_watch(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.timed("cancel_watch", self.inner.cancel_watch(key)).await
    }
    async fn close_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.timed("close", self.inner.close_record(key)).await
    }
    async fn delete_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.timed("delete", self.inner.delete_record(key)).await
    }
    async fn flush(&self, key: &RecordKey, timeout: Duration) -> Result<bool, Self::Error> {
        self.timed("flush", self.inner.flush(key, timeout)).await
    }
    fn changes(&self) -> Option<ChangeReceiver> {
        self.inner.changes()
    }
    async fn reply_address(&self) -> Result<Option<Vec<u8>>, Self::Error> {
        self.timed("reply_address", self.inner.reply_address()).await
    }
    async fn send_nudge(&self, to: &[u8], nudge: &Nudge) -> Result<(), Self::Error> {
        self.sized("nudge", nudge.value.len(), self.inner.send_nudge(to, nudge)).await
    }
    fn nudges(&self) -> Option<NudgeReceiver> {
        self.inner.nudges()
    }
}
