//! `cargo bench --no-default-features --bench scale [-- N]`: N outstanding
//! invitations (default 100,000) driven to the waiting state through the
//! sans-IO inviter (synthetic DHT results, no network), then: RAM and
//! persisted bytes per invitation, store writes, lookups, listing, and the
//! time to decode and resume all of them, per store backend.

use std::time::Instant;

use contact_invite::__bench as b;
use contact_invite::crypto::SecretKey;
use contact_invite::dht::{MemoryNetwork, RecordKey};
use contact_invite::driver;
use contact_invite::identity::Identity;
use contact_invite::machine::{DhtOutput, Effect, Flow, FlowId, Input, Inviter, SendParams};
use contact_invite::message::Profile;
use contact_invite::store::{FileStore, MemoryStore, Store, Table};
use rand_core::{OsRng, RngCore};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn waiting_inviter(id: &Identity, now: u64) -> Inviter {
    let mut rng = OsRng;
    let (mut m, effects) = Inviter::new(SendParams::new(id.clone()), now, &mut rng).unwrap_or_else(|_| unreachable!());
    let mut pending: Vec<u64> =
        effects.iter().filter_map(|e| if let Effect::Dht { op, .. } = e { Some(*op) } else { None }).collect();
    // Answer every DHT op until the machine waits (create, create, set).
    while let Some(op) = pending.pop() {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        let result = match op {
            0 | 1 => Ok(DhtOutput::Created(RecordKey::new(k, Some(SecretKey::generate(&mut rng))))),
            _ => Ok(DhtOutput::Set(None)),
        };
        for e in m.handle(Input::DhtDone { op, result }, now, &mut rng) {
            if let Effect::Dht { op, request } = e
                && matches!(request, contact_invite::machine::DhtOp::Set { .. })
            {
                pending.push(op);
            }
        }
    }
    m
}

async fn measure<S: Store>(name: &str, store: &S, records: &[(FlowId, Vec<u8>)]) {
    let t = Instant::now();
    for (id, bytes) in records {
        store.put(Table::Flows, &id.0, bytes).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let write = t.elapsed();
    let t = Instant::now();
    let lookups = 1000.min(records.len());
    for i in 0..lookups {
        let (id, _) = &records[(i * 7919) % records.len()];
        let _ = store.get(Table::Flows, &id.0).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let lookup = t.elapsed() / lookups as u32;
    let t = Instant::now();
    let all = store.list(Table::Flows).await.unwrap_or_else(|e| panic!("{e}"));
    let list = t.elapsed();
    let t = Instant::now();
    let mut resumed = 0;
    let mut rng = OsRng;
    for (_, v) in &all {
        if let Some(mut f) = b::decode_flow(v) {
            let _ = f.resume(0, &mut rng);
            resumed += 1;
        }
    }
    let resume = t.elapsed();
    println!(
        "{name:<12} write {:>7.1} s ({:>6.1} µs each)  lookup {:>6.1} µs  list {:>6.2} s  decode+resume {:>6.2} s ({resumed})",
        write.as_secs_f64(),
        write.as_secs_f64() * 1e6 / records.len() as f64,
        lookup.as_secs_f64() * 1e6,
        list.as_secs_f64(),
        resume.as_secs_f64()
    );
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|_| unreachable!());
    let now = driver::SystemClock.now_secs();
    let id = rt.block_on(async {
        let id = Identity::generate(Profile::new("a").unwrap_or_else(|_| unreachable!()), "d", now, &mut OsRng)
            .unwrap_or_else(|_| unreachable!());
        driver::publish_identity(&MemoryNetwork::new().join("a"), id).await.unwrap_or_else(|_| unreachable!())
    });
    let before = rss_kib();
    let t = Instant::now();
    let flows: Vec<(FlowId, Flow)> = (0..n)
        .map(|_| (FlowId::random(&mut OsRng), Flow::Inviter(Box::new(waiting_inviter(&id, now * 1000)))))
        .collect();
    let create = t.elapsed();
    let after = rss_kib();
    let records: Vec<(FlowId, Vec<u8>)> = flows.iter().map(|(i, f)| (*i, b::encode_flow(f))).collect();
    let bytes: usize = records.iter().map(|(_, v)| v.len()).sum();
    println!("{n} outstanding invitations ({:.1} s to create through the machine)", create.as_secs_f64());
    println!(
        "  RAM per invitation (machine state in a running driver): {:.2} KiB   (goal <= 1 KiB)",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    println!("  persisted per invitation: {:.2} KiB", bytes as f64 / n as f64 / 1024.0);
    drop(flows);
    rt.block_on(measure("memory", &MemoryStore::new(), &records));
    let file_n = n.min(20_000);
    let dir = std::env::temp_dir().join(format!("contact-invite-scale-{}", std::process::id()));
    if let Ok(fs) = FileStore::open(&dir) {
        println!("  (file store: first {file_n}; every write is fsynced)");
        rt.block_on(measure("file", &fs, &records[..file_n]));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
