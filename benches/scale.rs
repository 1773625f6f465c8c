//! `cargo bench --no-default-features --bench scale [-- N [FILE_N]]`: N
//! outstanding invitations (default 100,000) sent through the real driver on
//! the in-memory DHT until every one waits for its answer, then:
//!
//! - persisted bytes per invitation (flow record, invitation-table record,
//!   the shared identity snapshot amortized);
//! - RAM per invitation, exact (a counting global allocator: live bytes
//!   requested, without the allocator's own per-block overhead) and as RSS:
//!   the machine states alone, and a whole running driver after resuming
//!   them (minus the in-process MemoryDht's own per-record state, measured
//!   separately and shown);
//! - per store backend: write, lookup, list, and the time to resume all of
//!   them through the real driver with its bounded concurrency (every flow
//!   decoded, re-watching its inbox; the most operations seen in flight).
//!
//! The file store uses the first FILE_N (default 20,000) because every write
//! is fsynced. With the `veilid` feature, run under `scripts/netns.sh`, the
//! same is measured for Veilid's table store on a node of a private network
//! (the first FILE_N too): `scripts/netns-cargo.sh bench --profile netbench
//! --bench scale` (outside the namespace that row is skipped, and says so). The drivers run on a frozen clock (the creation time), so the
//! inbox polls and expiry timers do not fire during the measurements.

#[path = "../tests/common/gauge.rs"]
mod gauge;
#[path = "common/waiting.rs"]
mod waiting;

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::bench_internals as b;
use contact_invite::crypto::SigningKey;
use contact_invite::dht::{Dht, MemoryNetwork, RecordKey, Schema};
use contact_invite::driver::{self, Clock, DriverConfig, SystemClock};
use contact_invite::flow::{FlowId, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::{Entries, FileStore, MemoryStore, Store, Table};
use gauge::{Gauge, GaugeStats};
use rand_core::OsRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use waiting::{count, drain, until};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes currently allocated (requested sizes; stats_alloc already counts
/// reallocations into both totals).
fn live_bytes() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Live bytes and RSS at one point.
#[derive(Clone, Copy)]
struct Mem {
    live: i64,
    rss_kib: i64,
}

impl Mem {
    fn now() -> Self {
        Self { live: live_bytes(), rss_kib: rss_kib() }
    }
    /// Per item since `before`: (exact KiB, RSS KiB).
    fn per(self, before: Self, n: usize) -> (f64, f64) {
        ((self.live - before.live) as f64 / 1024.0 / n as f64, (self.rss_kib - before.rss_kib) as f64 / n as f64)
    }
}

/// A clock stopped at the creation time.
struct Frozen(u64);
impl Clock for Frozen {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

fn config(now_ms: u64) -> DriverConfig {
    DriverConfig::builder().clock(Frozen(now_ms)).build()
}

/// Sends `n` invitations through a driver until all wait for an answer.
async fn create(net: &MemoryNetwork, store: &Arc<MemoryStore>, id: &Identity, n: usize, now_ms: u64) {
    let stats = GaugeStats::new();
    let dht = Gauge::new(net.join("a"), stats.clone(), Duration::ZERO);
    let (h, events) = driver::start(dht, store.clone(), config(now_ms)).await.unwrap_or_else(|e| panic!("{e}"));
    let (task, seen) = drain(events);
    for _ in 0..n {
        h.send_invitation(SendParams::new(id.clone())).await.unwrap_or_else(|e| panic!("{e}"));
    }
    until("published", || count(&seen) >= n).await;
    until("watching", || stats.watches() >= n as u64 && stats.in_flight() == 0).await;
    h.shutdown().await;
    let _ = task.await;
}

/// Starts a driver over `store` and waits until all `n` flows are resumed:
/// each published again and watching its inbox. Returns the time, the most
/// DHT operations in flight, and the memory while it runs (idle).
async fn resume<S: Store>(net: &MemoryNetwork, store: Arc<S>, n: usize, now_ms: u64) -> (Duration, usize, Mem) {
    let stats = GaugeStats::new();
    let dht = Gauge::new(net.join("a"), stats.clone(), Duration::ZERO);
    let t = Instant::now();
    let (h, events) = driver::start(dht, store, config(now_ms)).await.unwrap_or_else(|e| panic!("{e}"));
    let (task, seen) = drain(events);
    until("resumed", || count(&seen) >= n).await;
    until("watching", || stats.watches() >= n as u64 && stats.in_flight() == 0).await;
    let took = t.elapsed();
    // A command round trip: the driver has processed everything so far.
    let _ = h.ticket(FlowId([0; 16])).await;
    let mem = Mem::now();
    h.shutdown().await;
    let _ = task.await;
    (took, stats.max(), mem)
}

/// What the in-process MemoryDht itself keeps per resumed flow (an open
/// record and a watch on its handle), so it can be told apart from the
/// driver's own memory.
async fn memory_dht_per_record(net: &MemoryNetwork, n: usize) -> f64 {
    let dht = net.join("probe");
    let schema = Schema { owner_subkeys: 2, members: Vec::new() };
    let mut keys: Vec<RecordKey> = Vec::new();
    for _ in 0..n {
        let k = dht.create_record(&schema, &SigningKey::generate(&mut OsRng)).await;
        keys.push(k.unwrap_or_else(|e| panic!("{e}")));
    }
    let probe = net.join("probe");
    let before = live_bytes();
    for k in &keys {
        let _ = probe.open_record(k, None).await;
        let _ = probe.watch(k, &[1]).await;
    }
    (live_bytes() - before) as f64 / n as f64
}

async fn backend<S: Store>(
    name: &str,
    store: Arc<S>,
    net: &MemoryNetwork,
    snapshots: &Entries,
    flows: &[(Vec<u8>, Vec<u8>)],
    now_ms: u64,
    dht_per_record: f64,
) {
    for (k, v) in snapshots {
        store.put(Table::IdentitySnapshots, k, v).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let t = Instant::now();
    for (k, v) in flows {
        store.put(Table::Flows, k, v).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let write = t.elapsed();
    let lookups = 1000.min(flows.len());
    let t = Instant::now();
    for i in 0..lookups {
        let (k, _) = &flows[(i * 7919) % flows.len()];
        let _ = store.get(Table::Flows, k).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let lookup = t.elapsed() / lookups as u32;
    let t = Instant::now();
    let listed = store.list(Table::Flows).await.unwrap_or_else(|e| panic!("{e}")).len();
    let list = t.elapsed();
    assert_eq!(listed, flows.len());
    let before = Mem::now();
    let (took, max, during) = resume(net, store, flows.len(), now_ms).await;
    let (exact, rss) = during.per(before, flows.len());
    println!(
        "{name:<7} {:>6} flows  write {:>6.1} s ({:>7.1} µs each)  lookup {:>5.1} µs  list {:>5.2} s  \
         resume all through the driver {:>5.2} s ({:>5.1} µs each, at most {max} DHT ops in flight)",
        flows.len(),
        write.as_secs_f64(),
        write.as_secs_f64() * 1e6 / flows.len() as f64,
        lookup.as_secs_f64() * 1e6,
        list.as_secs_f64(),
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / flows.len() as f64,
    );
    println!(
        "          RAM per invitation in the running driver: {:.2} KiB exact ({:.2} KiB without the MemoryDht's \
         own {:.2} KiB per open, watched record), {:.2} KiB RSS",
        exact,
        exact - dht_per_record / 1024.0,
        dht_per_record / 1024.0,
        rss
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(100_000);
    let file_n = args.next().unwrap_or(20_000).min(n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let now_ms = SystemClock.now_ms();
    let net = MemoryNetwork::new();
    let id = rt.block_on(async {
        let profile = Profile::new("a").unwrap_or_else(|e| panic!("{e}"));
        let id = Identity::generate(profile, "d", now_ms / 1000, &mut OsRng).unwrap_or_else(|e| panic!("{e}"));
        driver::publish_identity(&net.join("a"), id).await.unwrap_or_else(|e| panic!("{e}"))
    });

    let store = Arc::new(MemoryStore::new());
    let t = Instant::now();
    rt.block_on(create(&net, &store, &id, n, now_ms));
    println!(
        "{n} outstanding invitations ({:.1} s to send through the driver until all wait; max_in_flight {})",
        t.elapsed().as_secs_f64(),
        driver::DEFAULT_MAX_IN_FLIGHT
    );
    let (flows, invitations, snapshots) = rt.block_on(async {
        let l = |t| store.list(t);
        (
            l(Table::Flows).await.unwrap_or_else(|e| panic!("{e}")),
            l(Table::Invitations).await.unwrap_or_else(|e| panic!("{e}")),
            l(Table::IdentitySnapshots).await.unwrap_or_else(|e| panic!("{e}")),
        )
    });
    drop(store);
    assert_eq!(flows.len(), n);
    let size = |e: &Entries| e.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    println!(
        "  persisted per invitation: {:.2} KiB flow record + {:.2} KiB invitation-table record \
         (+ {} identity snapshot of {:.2} KiB shared by all {n})",
        size(&flows) as f64 / n as f64 / 1024.0,
        size(&invitations) as f64 / n as f64 / 1024.0,
        snapshots.len(),
        size(&snapshots) as f64 / snapshots.len().max(1) as f64 / 1024.0,
    );

    // The machine states alone, decoded as the driver decodes them.
    let before = Mem::now();
    let t = Instant::now();
    let states = b::decode_flows(&snapshots, &flows);
    let decode = t.elapsed();
    let (exact, rss) = Mem::now().per(before, n);
    assert_eq!(states.len(), n);
    println!(
        "  RAM per invitation, machine state: {exact:.2} KiB exact, {rss:.2} KiB RSS   (goal <= 1 KiB); \
         decoding all: {:.2} s",
        decode.as_secs_f64()
    );
    drop(states);

    let dht_per_record = rt.block_on(memory_dht_per_record(&net, 10_000.min(n)));
    rt.block_on(backend("memory", Arc::new(MemoryStore::new()), &net, &snapshots, &flows, now_ms, dht_per_record));
    let dir = std::env::temp_dir().join(format!("contact-invite-scale-{}", std::process::id()));
    match FileStore::open(&dir) {
        Ok(fs) if file_n > 0 => {
            println!("  (file store: the first {file_n} flows; every write is fsynced)");
            rt.block_on(backend("file", Arc::new(fs), &net, &snapshots, &flows[..file_n], now_ms, dht_per_record));
        }
        Ok(_) => {}
        Err(e) => println!("  file store unavailable: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    #[cfg(feature = "veilid-net")]
    rt.block_on(veilid_table_store(&net, &snapshots, &flows[..file_n], now_ms, dht_per_record));
}

/// The same measurements over `VeilidTableStore` on node 0 of a private
/// network (Veilid's encrypted table store needs a running node).
#[cfg(feature = "veilid-net")]
async fn veilid_table_store(
    net: &MemoryNetwork,
    snapshots: &Entries,
    flows: &[(Vec<u8>, Vec<u8>)],
    now_ms: u64,
    dht_per_record: f64,
) {
    use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions, MIN_NODES};
    use contact_invite::veilid_store::VeilidTableStore;
    if let Err(e) = LocalNetwork::check_namespace(MIN_NODES) {
        println!("  (Veilid table store skipped: run under scripts/netns.sh to measure it; {e})");
        return;
    }
    let opts = LocalNetworkOptions { nodes: MIN_NODES, ..Default::default() };
    let veilid = match LocalNetwork::start(opts).await {
        Ok(n) => n,
        Err(e) => return println!("  (Veilid table store skipped: the network did not start: {e})"),
    };
    match veilid.api(0) {
        Ok(api) => match VeilidTableStore::open(api, "contact_invite_scale").await {
            Ok(store) => {
                println!("  (Veilid table store on a private-network node: the first {} flows)", flows.len());
                backend("veilid", Arc::new(store), net, snapshots, flows, now_ms, dht_per_record).await;
            }
            Err(e) => println!("  (Veilid table store skipped: {e})"),
        },
        Err(e) => println!("  (Veilid table store skipped: {e})"),
    }
    veilid.shutdown().await;
}
