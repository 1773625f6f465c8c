//! A `Dht` wrapper that times every operation, for progress displays,
//! benchmarks and latency reports, and (with [`Recorded::capturing`]) keeps
//! every value written, read or nudged: what an attacker watching the DHT
//! and the nudges would hold (the offline PIN attacker's test).

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

/// One value that went through a [`Recorded`] DHT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedValue {
    /// `set`, `get` or `nudge`.
    pub op: &'static str,
    /// The record (opaque key).
    pub record: [u8; 32],
    /// The subkey.
    pub subkey: Subkey,
    /// The bytes.
    pub value: Vec<u8>,
}

/// A shared log of every value written, read or nudged ([`Recorded::capturing`]).
#[derive(Clone, Debug, Default)]
pub struct ValueLog(Arc<Mutex<Vec<CapturedValue>>>);

impl ValueLog {
    /// A new, empty log.
    pub fn new() -> Self {
        Self::default()
    }
    fn push(&self, v: CapturedValue) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(v);
    }
    /// A copy of every value so far.
    pub fn snapshot(&self) -> Vec<CapturedValue> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Wraps a `Dht`, timing every operation into an [`OpLog`]. Clones share
/// the logs.
#[derive(Clone, Debug)]
pub struct Recorded<D> {
    inner: D,
    log: OpLog,
    values: Option<ValueLog>,
}

impl<D> Recorded<D> {
    /// Wraps `inner`, logging into `log`.
    pub fn new(inner: D, log: OpLog) -> Self {
        Self { inner, log, values: None }
    }
    /// Wraps `inner`, logging into `log` and keeping every value written,
    /// read or nudged in `values`.
    pub fn capturing(inner: D, log: OpLog, values: ValueLog) -> Self {
        Self { inner, log, values: Some(values) }
    }
    fn capture(&self, op: &'static str, record: &[u8; 32], subkey: Subkey, value: &[u8]) {
        if let Some(v) = &self.values {
            v.push(CapturedValue { op, record: *record, subkey, value: value.to_vec() });
        }
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
        if let Ok(Some(v)) = &r {
            self.capture("get", key.opaque(), subkey, &v.data);
        }
        r
    }
    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, Self::Error> {
        self.capture("set", key.opaque(), subkey, &data);
        let r = self.sized("set", data.len(), self.inner.set_value(key, subkey, data, writer)).await;
        if let Ok(Some(v)) = &r {
            self.capture("get", key.opaque(), subkey, &v.data);
        }
        r
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
        self.capture("nudge", &nudge.record, nudge.subkey, &nudge.value);
        self.sized("nudge", nudge.value.len(), self.inner.send_nudge(to, nudge)).await
    }
    fn nudges(&self) -> Option<NudgeReceiver> {
        self.inner.nudges()
    }
}
