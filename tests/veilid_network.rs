//! `VeilidDht` against a real private Veilid network (6 nodes in this
//! process). Needs the sealed namespace of `scripts/netns.sh`:
//!
//! ```text
//! scripts/netns-cargo.sh test --features veilid-network-tests --test veilid_network
//! ```
//!
//! The network is started once; every check is a step of one test so the
//! binary's runtime stays low (about 1 min). Every wait is bounded, and the
//! whole run is capped by [`OVERALL_TIMEOUT`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use contact_invite::crypto::SigningKey;
use contact_invite::dht::veilid::{SECRETS_TABLE, VeilidDht};
use contact_invite::dht::{
    ChangeReceiver, Dht, DhtError, DhtErrorKind, MAX_VALUE_LEN, RecordKey, Schema, SchemaMember,
};
use contact_invite::veilid_net::{DEFAULT_NODES, LocalNetwork, LocalNetworkOptions};
use rand_core::OsRng;

/// Cap on the whole test.
const OVERALL_TIMEOUT: Duration = Duration::from_secs(300);
/// A watch set just before a write may report late; then re-read.
const FIRST_NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(20);
/// A settled watch must report within this.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Re-reading deadline when a notification is late.
const REREAD_TIMEOUT: Duration = Duration::from_secs(30);

fn step(name: &str, started: Instant) {
    eprintln!("[{:>7.2} s] {name}", started.elapsed().as_secs_f64());
}

fn assert_kind<T: std::fmt::Debug, E: DhtError>(r: Result<T, E>, kind: DhtErrorKind, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
    }
}

/// Waits for a change of `subkey` of `key`; `None` on timeout.
async fn wait_change(rx: &mut ChangeReceiver, key: &RecordKey, subkey: u32, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    tokio::time::timeout(timeout, async {
        while let Some(ch) = rx.recv().await {
            if ch.record == *key.opaque() && ch.subkeys.contains(&subkey) {
                return Some(t0.elapsed());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Re-reads until the subkey holds `want`.
async fn reread_until(dht: &VeilidDht, key: &RecordKey, subkey: u32, want: &[u8]) -> Duration {
    let t0 = Instant::now();
    loop {
        let v = dht.get_value(key, subkey, true).await.expect("re-read");
        if v.as_ref().is_some_and(|v| v.data == want) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < REREAD_TIMEOUT, "value never showed up by re-reading");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn veilid_dht_on_a_private_network() {
    if let Err(e) = LocalNetwork::check_namespace(DEFAULT_NODES) {
        panic!("{e}");
    }
    let net = LocalNetwork::start(LocalNetworkOptions::default()).await.expect("network attaches");
    eprint!("{}", net.report());
    let outcome = tokio::time::timeout(OVERALL_TIMEOUT, checks(&net)).await;
    net.shutdown().await;
    outcome.expect("test exceeded its overall timeout");
}

async fn checks(net: &LocalNetwork) {
    let started = Instant::now();
    let a = net.dht(1).unwrap();
    let b = net.dht(2).unwrap();
    let c = net.dht(3).unwrap();
    let mut a_changes = a.changes().expect("change stream");
    assert!(a.changes().is_none(), "change stream is taken once");

    let owner = SigningKey::generate(&mut OsRng);
    let writer = SigningKey::generate(&mut OsRng);
    let schema = Schema { owner_subkeys: 1, members: vec![SchemaMember { key: writer.public(), subkeys: 1 }] };

    step("create_record, idempotent", started);
    let key = a.create_record(&schema, &owner).await.unwrap();
    assert!(key.secret().is_some(), "record keys carry the encryption secret");
    assert_eq!(a.create_record(&schema, &owner).await.unwrap(), key);
    // A new handle on the same node finds the secret in the node's table store.
    let a2 = net.dht(1).unwrap();
    assert_eq!(a2.create_record(&schema, &owner).await.unwrap(), key);
    // A different schema is a different record.
    let other_schema = Schema { owner_subkeys: 2, members: vec![] };
    let other = a.create_record(&other_schema, &owner).await.unwrap();
    assert_ne!(other.opaque(), key.opaque());

    step("set (owner) on A; open + get(force) on B", started);
    assert_eq!(a.set_value(&key, 0, b"v1".to_vec(), None).await.unwrap(), None);
    assert!(a.flush(&key, Duration::from_secs(5)).await.unwrap(), "nothing queued");
    b.open_record(&key, Some(&writer)).await.unwrap();
    let v = b.get_value(&key, 0, true).await.unwrap().expect("subkey 0 set");
    assert_eq!((v.data.as_slice(), v.writer, v.seq), (&b"v1"[..], owner.public(), 0));
    assert_eq!(b.get_value(&key, 1, true).await.unwrap(), None, "subkey 1 never written");

    step("watch subkey 1 on A; B writes it", started);
    assert!(a.watch(&key, &[1]).await.unwrap());
    assert_eq!(b.set_value(&key, 1, b"m1".to_vec(), None).await.unwrap(), None);
    match wait_change(&mut a_changes, &key, 1, FIRST_NOTIFICATION_TIMEOUT).await {
        Some(d) => eprintln!("    first notification after {d:?}"),
        None => {
            let d = reread_until(&a, &key, 1, b"m1").await;
            eprintln!("    first notification late; seen by re-reading after {d:?}");
        }
    }
    let v = a.get_value(&key, 1, true).await.unwrap().expect("subkey 1 set");
    assert_eq!((v.data.as_slice(), v.writer), (&b"m1"[..], writer.public()));

    step("settled watch reports a second write", started);
    assert_eq!(b.set_value(&key, 1, b"m2".to_vec(), None).await.unwrap(), None);
    let d = wait_change(&mut a_changes, &key, 1, NOTIFICATION_TIMEOUT).await;
    let d = d.expect("a settled watch delivers the ValueChange");
    eprintln!("    notification after {d:?}");
    let v = a.get_value(&key, 1, true).await.unwrap().expect("subkey 1 set");
    assert_eq!((v.data.as_slice(), v.seq), (&b"m2"[..], 1));
    // Subkey 0 is not watched: its change is not reported.
    assert_eq!(a.set_value(&key, 0, b"v2".to_vec(), None).await.unwrap(), None);

    step("a stale writer gets the newer value back", started);
    // B last saw subkey 0 at seq 0; writing it as the owner from B makes seq
    // 1, which the network already holds with other data (A's "v2").
    b.open_record(&key, Some(&owner)).await.unwrap();
    let r = b.set_value(&key, 0, b"stale".to_vec(), None).await.unwrap();
    let newer = r.expect("the network holds a value at least as new");
    assert_eq!((newer.data.as_slice(), newer.seq), (&b"v2"[..], 1));
    b.open_record(&key, Some(&writer)).await.unwrap();
    // Another handle on node B opening the record with the owner key does not
    // change the writer B's handle uses (Veilid keeps one default per node).
    let b2 = net.dht(2).unwrap();
    b2.open_record(&key, Some(&owner)).await.unwrap();
    assert_eq!(b.set_value(&key, 1, b"m3".to_vec(), None).await.unwrap(), None);
    assert_eq!(b2.get_value(&key, 1, false).await.unwrap().unwrap().writer, writer.public());

    step("refusals", started);
    assert_kind(
        b.set_value(&key, 0, b"hijack".to_vec(), Some(&writer)).await,
        DhtErrorKind::SchemaViolation,
        "member writes owner subkey",
    );
    assert_kind(b.set_value(&key, 2, b"x".to_vec(), None).await, DhtErrorKind::SchemaViolation, "subkey out of range");
    assert_kind(
        a.set_value(&key, 0, vec![0; MAX_VALUE_LEN + 1], None).await,
        DhtErrorKind::ValueTooLarge,
        "oversized value",
    );
    let bare = key.without_secret();
    assert_kind(b.get_value(&bare, 0, true).await, DhtErrorKind::BadRecordSecret, "B opaque read");
    assert_kind(
        b.set_value(&bare, 1, b"plain".to_vec(), None).await,
        DhtErrorKind::BadRecordSecret,
        "write without the secret",
    );
    c.open_record(&bare, None).await.unwrap();
    assert_kind(c.get_value(&bare, 0, true).await, DhtErrorKind::BadRecordSecret, "C opaque read");
    assert_kind(c.set_value(&key, 0, b"x".to_vec(), None).await, DhtErrorKind::SchemaViolation, "no writer");
    let d = net.dht(4).unwrap();
    assert_kind(d.get_value(&key, 0, false).await, DhtErrorKind::NotOpen, "get before open");
    assert_kind(d.set_value(&key, 0, b"x".to_vec(), Some(&owner)).await, DhtErrorKind::NotOpen, "set before open");
    // Opening an unknown record waits for the fanout to give up (~10 s):
    // run it alongside the lost-secret checks.
    let unknown_open = async {
        let t0 = Instant::now();
        let missing = RecordKey::new([0x5a; 32], None);
        assert_kind(d.open_record(&missing, None).await, DhtErrorKind::NotFound, "open unknown");
        eprintln!("    open of an unknown record failed after {:?}", t0.elapsed());
    };
    step("lost secret: orphan replaced only if it holds no value", started);
    tokio::join!(unknown_open, lost_secret(net, &a, &key, &schema, &owner, &other_schema));

    step("cancel, close, delete (local only)", started);
    a.cancel_watch(&key).await.unwrap();
    a.close_record(&key).await.unwrap();
    assert_kind(a.get_value(&key, 0, false).await, DhtErrorKind::NotOpen, "get after close");
    c.close_record(&bare).await.unwrap();
    c.delete_record(&bare).await.unwrap();
    c.delete_record(&bare).await.unwrap(); // idempotent
    // The network still has it.
    c.open_record(&key, None).await.unwrap();
    let v = c.get_value(&key, 0, true).await.unwrap().expect("still on the network");
    assert_eq!(v.data, b"v2");

    step("writes without consensus are errors, never silently queued", started);
    for i in [3, 4, 5] {
        net.api(i).unwrap().detach().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.open_record(&key, Some(&owner)).await.unwrap();
    let t0 = Instant::now();
    let r = a.set_value(&key, 0, b"few".to_vec(), None).await;
    eprintln!("    set with 3 of 5 peers detached: {r:?} after {:?}", t0.elapsed());
    // Veilid 0.5.8 itself returns Ok(None) here, even with AllowOffline(false).
    assert_kind(r, DhtErrorKind::Unavailable, "set reaching 2 of 5 peers");
    let v = a.get_value(&key, 0, false).await.unwrap().expect("local copy");
    assert_eq!(v.data, b"v2", "the failed write left the local copy alone");
    assert!(a.flush(&key, Duration::from_secs(1)).await.unwrap(), "nothing was queued");

    step("offline writes are errors, never silently queued", started);
    for i in [0, 2] {
        net.api(i).unwrap().detach().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.open_record(&key, Some(&owner)).await.unwrap();
    let t0 = Instant::now();
    let r = a.set_value(&key, 0, b"lonely".to_vec(), None).await;
    eprintln!("    set with peers detached: {r:?} after {:?}", t0.elapsed());
    assert_kind(r, DhtErrorKind::Unavailable, "set with the other nodes detached");
    assert!(a.flush(&key, Duration::from_secs(1)).await.unwrap(), "nothing was queued");
    let v = a.get_value(&key, 0, false).await.unwrap().expect("local copy");
    assert_eq!(v.data, b"v2", "the failed write left the local copy alone");
    step("done", started);
}

/// A create interrupted before its secret was stored: the orphan is replaced
/// only if it holds no value.
async fn lost_secret(
    net: &LocalNetwork,
    a: &VeilidDht,
    key: &RecordKey,
    schema: &Schema,
    owner: &SigningKey,
    other_schema: &Schema,
) {
    let secrets = net.api(1).unwrap().open_table_db(SECRETS_TABLE, 1).await.unwrap();
    let owner2 = SigningKey::generate(&mut OsRng);
    let empty = a.create_record(other_schema, &owner2).await.unwrap();
    secrets.delete(0, empty.opaque().to_vec().into()).await.unwrap();
    let replaced = a.create_record(other_schema, &owner2).await.unwrap();
    assert_eq!(replaced.opaque(), empty.opaque());
    assert_ne!(replaced, empty, "a fresh secret");
    assert_eq!(a.create_record(other_schema, &owner2).await.unwrap(), replaced);
    let saved = secrets.load(0, key.opaque().to_vec().into()).await.unwrap().unwrap();
    secrets.delete(0, key.opaque().to_vec().into()).await.unwrap();
    assert_kind(a.create_record(schema, owner).await, DhtErrorKind::Other, "orphan with values");
    secrets.store(0, key.opaque().to_vec().into(), saved).await.unwrap();
    assert_eq!(&a.create_record(schema, owner).await.unwrap(), key);
}
