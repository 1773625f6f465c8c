//! MemoryDht enforces what Veilid enforces, delivers watches, counts
//! operations and injects reproducible faults.

use std::time::Duration;

use contact_invite::crypto::SigningKey;
use contact_invite::dht::{
    Dht, DhtError, DhtErrorKind, FaultConfig, MAX_VALUE_LEN, MemoryNetwork, RecordKey, Schema, SchemaMember,
};
use rand_core::OsRng;

fn key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

fn inbox_schema(writer: &SigningKey) -> Schema {
    Schema { owner_subkeys: 1, members: vec![SchemaMember { key: writer.public(), subkeys: 1 }] }
}

#[tokio::test]
async fn schema_writers_are_enforced() {
    let net = MemoryNetwork::new();
    let (owner, writer) = (key(), key());
    let a = net.join("a");
    let k = a.create_record(&inbox_schema(&writer), &owner).await.unwrap();
    assert!(a.set_value(&k, 0, b"req".to_vec(), Some(&owner)).await.unwrap().is_none());
    let b = net.join("b");
    b.open_record(&k, Some(&writer)).await.unwrap();
    let e = b.set_value(&k, 0, b"x".to_vec(), Some(&writer)).await.unwrap_err();
    assert_eq!(e.kind(), DhtErrorKind::SchemaViolation, "a member cannot write the owner subkey");
    let e = a.set_value(&k, 1, b"x".to_vec(), Some(&owner)).await.unwrap_err();
    assert_eq!(e.kind(), DhtErrorKind::SchemaViolation, "the owner cannot write a member subkey");
    let e = b.set_value(&k, 2, b"x".to_vec(), Some(&writer)).await.unwrap_err();
    assert_eq!(e.kind(), DhtErrorKind::SchemaViolation, "out of range");
    assert!(b.set_value(&k, 1, b"resp".to_vec(), Some(&writer)).await.unwrap().is_none());
    assert_eq!(net.stored_value(k.opaque(), 1).unwrap().writer, writer.public());
    // Invalid schemas.
    let e = a.create_record(&Schema { owner_subkeys: 0, members: vec![] }, &key()).await.unwrap_err();
    assert_eq!(e.kind(), DhtErrorKind::SchemaViolation);
    let o = key();
    let s = Schema { owner_subkeys: 1, members: vec![SchemaMember { key: o.public(), subkeys: 1 }] };
    assert_eq!(a.create_record(&s, &o).await.unwrap_err().kind(), DhtErrorKind::SchemaViolation);
}

#[tokio::test]
async fn value_size_limit_is_32_kib() {
    let net = MemoryNetwork::new();
    let owner = key();
    let a = net.join("a");
    let k = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    assert!(a.set_value(&k, 0, vec![0; MAX_VALUE_LEN], None).await.unwrap().is_none());
    let e = a.set_value(&k, 0, vec![0; MAX_VALUE_LEN + 1], None).await.unwrap_err();
    assert_eq!(e.kind(), DhtErrorKind::ValueTooLarge);
}

#[tokio::test]
async fn sequence_numbers_and_newer_value_on_stale_write() {
    let net = MemoryNetwork::new();
    let owner = key();
    let a = net.join("a");
    let k = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    a.set_value(&k, 0, b"one".to_vec(), None).await.unwrap();
    a.set_value(&k, 0, b"two".to_vec(), None).await.unwrap();
    assert_eq!(net.stored_value(k.opaque(), 0).unwrap().seq, 1);
    // The same owner on a fresh device (no local copy) writes a stale seq.
    let a2 = net.join("a-other-device");
    a2.open_record(&k, Some(&owner)).await.unwrap();
    let newer = a2.set_value(&k, 0, b"three".to_vec(), None).await.unwrap().expect("network holds a newer value");
    assert_eq!((newer.seq, newer.data.as_slice()), (1, &b"two"[..]));
    assert_eq!(net.stored_value(k.opaque(), 0).unwrap().data, b"two", "nothing written");
    // Now it knows the newer value: the retry lands.
    assert!(a2.set_value(&k, 0, b"three".to_vec(), None).await.unwrap().is_none());
    assert_eq!(net.stored_value(k.opaque(), 0).unwrap().seq, 2);
}

#[tokio::test]
async fn record_secret_required_and_delete_is_local_only() {
    let net = MemoryNetwork::new();
    let owner = key();
    let a = net.join("a");
    let k = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    a.set_value(&k, 0, b"v".to_vec(), None).await.unwrap();
    let b = net.join("b");
    assert_eq!(b.open_record(&k.without_secret(), None).await.unwrap_err().kind(), DhtErrorKind::BadRecordSecret);
    let wrong = RecordKey::new(*k.opaque(), Some(contact_invite::crypto::SecretKey::generate(&mut OsRng)));
    assert_eq!(b.open_record(&wrong, None).await.unwrap_err().kind(), DhtErrorKind::BadRecordSecret);
    assert_eq!(b.get_value(&k, 0, true).await.unwrap_err().kind(), DhtErrorKind::NotOpen);
    b.open_record(&k, None).await.unwrap();
    assert_eq!(b.get_value(&k, 0, true).await.unwrap().unwrap().data, b"v");
    a.delete_record(&k).await.unwrap();
    assert!(net.record_exists(k.opaque()), "delete is local");
    assert_eq!(b.get_value(&k, 0, true).await.unwrap().unwrap().data, b"v");
    let missing = RecordKey::new([1; 32], None);
    assert_eq!(b.open_record(&missing, None).await.unwrap_err().kind(), DhtErrorKind::NotFound);
    // Idempotent create for the same owner and schema.
    let again = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    assert_eq!(again, k);
}

#[tokio::test]
async fn watches_notify_others_with_the_value_and_can_be_cancelled() {
    let net = MemoryNetwork::new();
    let (owner, writer) = (key(), key());
    let a = net.join("a");
    let mut a_changes = a.changes().unwrap();
    assert!(a.changes().is_none(), "the stream is taken once");
    let k = a.create_record(&inbox_schema(&writer), &owner).await.unwrap();
    a.watch(&k, &[1]).await.unwrap();
    let b = net.join("b");
    let mut b_changes = b.changes().unwrap();
    b.open_record(&k, Some(&writer)).await.unwrap();
    b.watch(&k, &[1]).await.unwrap();
    b.set_value(&k, 1, b"resp".to_vec(), None).await.unwrap();
    let c = a_changes.recv().await.unwrap();
    assert_eq!((c.record, c.subkeys.clone()), (*k.opaque(), vec![1]));
    assert_eq!(c.value.unwrap().data, b"resp");
    assert!(b_changes.try_recv().is_err(), "the writer is not notified of its own write");
    a.set_value(&k, 0, b"x".to_vec(), None).await.unwrap();
    assert!(a_changes.try_recv().is_err() && b_changes.try_recv().is_err(), "subkey 0 not watched");
    a.cancel_watch(&k).await.unwrap();
    b.set_value(&k, 1, b"resp2".to_vec(), None).await.unwrap();
    assert!(a_changes.try_recv().is_err(), "cancelled");
}

#[tokio::test]
async fn op_counts_and_offline_parties() {
    let net = MemoryNetwork::new();
    let owner = key();
    let a = net.join("a");
    let k = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
    a.set_value(&k, 0, b"v".to_vec(), None).await.unwrap();
    a.get_value(&k, 0, true).await.unwrap();
    let c = net.op_counts("a");
    assert_eq!((c.create, c.set, c.get, c.network(), c.total()), (1, 1, 1, 2, 3));
    net.set_offline("a", true);
    assert_eq!(a.get_value(&k, 0, true).await.unwrap_err().kind(), DhtErrorKind::Unavailable);
    assert!(a.get_value(&k, 0, true).await.unwrap_err().is_retryable());
    assert_eq!(net.op_counts("a").get, 3, "failed attempts count too");
    net.reset_op_counts();
    assert_eq!(net.op_counts("a").total(), 0);
}

async fn faulty(f: FaultConfig) -> (MemoryNetwork, contact_invite::dht::MemoryDht, RecordKey, SigningKey) {
    let net = MemoryNetwork::new();
    let (owner, writer) = (key(), key());
    let a = net.join("a");
    let k = a.create_record(&inbox_schema(&writer), &owner).await.unwrap();
    a.set_value(&k, 0, b"v0".to_vec(), None).await.unwrap();
    net.set_faults(f);
    (net, a, k, owner)
}

#[tokio::test(start_paused = true)]
async fn each_fault_kind_happens() {
    let (_n, a, k, _) = faulty(FaultConfig { drop: 1.0, ..Default::default() }).await;
    assert_eq!(a.get_value(&k, 0, true).await.unwrap_err().kind(), DhtErrorKind::Unavailable);

    let (n, a, k, _) = faulty(FaultConfig { lost_ack: 1.0, ..Default::default() }).await;
    assert_eq!(a.set_value(&k, 0, b"v1".to_vec(), None).await.unwrap_err().kind(), DhtErrorKind::Unavailable);
    assert_eq!(n.stored_value(k.opaque(), 0).unwrap().data, b"v1", "the write landed anyway");

    let (n, a, k, _) = faulty(FaultConfig { stale_read: 1.0, ..Default::default() }).await;
    n.tamper_value(k.opaque(), 0, b"newer".to_vec());
    assert_eq!(a.get_value(&k, 0, true).await.unwrap().unwrap().data, b"v0", "stale local copy returned");

    let (n, a, k, _) = faulty(FaultConfig { conflict: 1.0, ..Default::default() }).await;
    let newer = a.set_value(&k, 0, b"v1".to_vec(), None).await.unwrap();
    assert!(newer.is_some(), "a concurrent writer got there first");
    assert_eq!(n.stored_value(k.opaque(), 0).unwrap().data, b"v0");

    let (_n, a, k, _) =
        faulty(FaultConfig { delay: 1.0, max_delay: Duration::from_secs(10), ..Default::default() }).await;
    let t = tokio::time::Instant::now();
    for _ in 0..5 {
        a.get_value(&k, 0, true).await.unwrap();
    }
    assert!(t.elapsed() > Duration::ZERO && t.elapsed() < Duration::from_secs(50));

    for (f, expect) in [
        (FaultConfig { duplicate: 1.0, ..Default::default() }, 2),
        (FaultConfig { lose_notification: 1.0, ..Default::default() }, 0),
    ] {
        let net = MemoryNetwork::with_faults(1, f);
        let (owner, writer) = (key(), key());
        let a = net.join("a");
        let mut ch = a.changes().unwrap();
        let k = a.create_record(&inbox_schema(&writer), &owner).await.unwrap();
        a.watch(&k, &[1]).await.unwrap();
        let b = net.join("b");
        b.open_record(&k, Some(&writer)).await.unwrap();
        b.set_value(&k, 1, b"r".to_vec(), None).await.unwrap();
        tokio::task::yield_now().await;
        let mut got = 0;
        while ch.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, expect);
    }
}

#[tokio::test]
async fn faults_are_reproducible_from_the_seed() {
    async fn pattern(seed: u64) -> (Vec<bool>, RecordKey) {
        let net = MemoryNetwork::with_faults(seed, FaultConfig::default());
        let owner = SigningKey::from_seed(&mut [seed as u8; 32]);
        let a = net.join("a");
        let k = a.create_record(&Schema { owner_subkeys: 1, members: vec![] }, &owner).await.unwrap();
        net.set_faults(FaultConfig { drop: 0.5, ..Default::default() });
        let mut out = Vec::new();
        for _ in 0..64 {
            out.push(a.get_value(&k, 0, true).await.is_ok());
        }
        (out, k)
    }
    let (p1, k1) = pattern(7).await;
    let (p2, k2) = pattern(7).await;
    let (p3, _) = pattern(8).await;
    assert_eq!(p1, p2);
    assert_eq!(k1, k2, "same record secret from the same seed");
    assert_ne!(p1, p3);
    assert!(p1.iter().any(|x| *x) && p1.iter().any(|x| !*x));
}
