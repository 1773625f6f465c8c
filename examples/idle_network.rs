//! The cost of waiting, on a real private Veilid network: N invitations
//! waiting on one node (this process's own veilid-core node, as a chat
//! app's), what that node does while nothing happens, and the memory each
//! waiting invitation costs, Veilid's own record state included.
//!
//! `scripts/idle-network.sh [N] [MINUTES] [--no-watch]` (defaults 1000 and
//! 10; `--no-watch` never watches, to tell Veilid's watch upkeep from the
//! rest of its traffic): it starts
//! the 6-node network as its own process (`cli network`) in the sealed
//! namespace, then runs this on node 6. Measured:
//! - the process's resident memory (VmRSS: our machine state, the store and
//!   Veilid's node with its record store and caches) after attach, after
//!   publishing N invitations, and at the end of the idle window;
//! - every DHT operation the driver makes during the idle window (all
//!   kinds: polls, watches), per second;
//! - Veilid's own traffic (bytes per second up and down, as the node
//!   reports it) for a minute before the invitations and during the window:
//!   watch renewals and routing upkeep happen inside Veilid and are not
//!   operations of ours.
//!
//! The invitations are fresh, so the window sees the poll schedule's young
//! end (polls at ~5, 10, 20, … s of age): the costliest part of an
//! invitation's life. docs/protocol.md ("Poll schedule") gives the rate
//! over a whole life.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::crypto::{SecretKey, SigningKey};
use contact_invite::dht::{
    ChangeReceiver, Dht, Nudge, NudgeReceiver, OpLog, RecordKey, Recorded, Schema, Subkey, ValueData,
};
use contact_invite::prelude::*;
use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions, vm_rss_kib};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A DHT that never watches (each watch reports "not active"), for
/// `--no-watch`: it tells Veilid's watch upkeep from the rest of its
/// traffic. Everything else passes through.
struct NoWatch<D>(D);

impl<D: Dht> Dht for NoWatch<D> {
    type Error = D::Error;
    async fn create_record(&self, schema: &Schema, owner: &SigningKey) -> Result<RecordKey, Self::Error> {
        self.0.create_record(schema, owner).await
    }
    async fn create_record_with_secret(
        &self,
        schema: &Schema,
        owner: &SigningKey,
        secret: &SecretKey,
    ) -> Result<RecordKey, Self::Error> {
        self.0.create_record_with_secret(schema, owner, secret).await
    }
    async fn open_record(&self, key: &RecordKey, writer: Option<&SigningKey>) -> Result<(), Self::Error> {
        self.0.open_record(key, writer).await
    }
    async fn get_value(&self, key: &RecordKey, subkey: Subkey, fresh: bool) -> Result<Option<ValueData>, Self::Error> {
        self.0.get_value(key, subkey, fresh).await
    }
    async fn set_value(
        &self,
        key: &RecordKey,
        subkey: Subkey,
        data: Vec<u8>,
        writer: Option<&SigningKey>,
    ) -> Result<Option<ValueData>, Self::Error> {
        self.0.set_value(key, subkey, data, writer).await
    }
    async fn watch(&self, _key: &RecordKey, _subkeys: &[Subkey]) -> Result<bool, Self::Error> {
        Ok(false)
    }
    async fn cancel_watch(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.0.cancel_watch(key).await
    }
    async fn close_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.0.close_record(key).await
    }
    async fn delete_record(&self, key: &RecordKey) -> Result<(), Self::Error> {
        self.0.delete_record(key).await
    }
    async fn flush(&self, key: &RecordKey, timeout: Duration) -> Result<bool, Self::Error> {
        self.0.flush(key, timeout).await
    }
    fn changes(&self) -> Option<ChangeReceiver> {
        self.0.changes()
    }
    async fn reply_address(&self) -> Result<Option<Vec<u8>>, Self::Error> {
        self.0.reply_address().await
    }
    async fn send_nudge(&self, to: &[u8], nudge: &Nudge) -> Result<(), Self::Error> {
        self.0.send_nudge(to, nudge).await
    }
    fn nudges(&self) -> Option<NudgeReceiver> {
        self.0.nudges()
    }
}

/// This process's node index: past the network's six.
const NODE: usize = 6;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Veilid's reported traffic (bytes per second down, up), averaged over
/// `secs` one-second samples.
async fn traffic(api: &veilid_core::VeilidAPI, secs: u64) -> Res<(f64, f64)> {
    let (mut down, mut up) = (0u64, 0u64);
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = api.get_state().await?;
        down += s.network.bps_down.as_u64();
        up += s.network.bps_up.as_u64();
    }
    Ok((down as f64 / secs as f64, up as f64 / secs as f64))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let no_watch = std::env::args().any(|a| a == "--no-watch");
    let mut args = std::env::args().skip(1).filter(|a| a != "--no-watch");
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let minutes: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let t0 = Instant::now();
    let say = |what: String| println!("[{:>7.1}s] {what}", t0.elapsed().as_secs_f64());

    let opts = LocalNetworkOptions { nodes: 1, first_node: NODE, ..Default::default() };
    let net = LocalNetwork::start(opts).await?;
    let api = net.api(NODE)?.clone();
    let rss_attached = vm_rss_kib().unwrap_or(0);
    say(format!("node{NODE} attached; VmRSS {:.1} MiB", mib(rss_attached)));
    let (down0, up0) = traffic(&api, 60).await?;
    say(format!("Veilid's own traffic with no invitation: {down0:.0} B/s down, {up0:.0} B/s up (60 s)"));

    let log = OpLog::new();
    let dht = Recorded::new(net.dht(NODE)?, log.clone());
    let now = driver::SystemClock.now_secs();
    let identity =
        driver::publish_identity(&dht, Identity::generate(Profile::new("Idle")?, "bench", now, &mut OsRng)?).await?;
    let store = Arc::new(MemoryStore::new());
    let (handle, mut events) = if no_watch {
        say("--no-watch: the invitations are never watched (polls and nudges only)".into());
        driver::start(NoWatch(dht), store, DriverConfig::default()).await?
    } else {
        driver::start(dht, store, DriverConfig::default()).await?
    };
    let rss_before = vm_rss_kib().unwrap_or(0);

    say(format!("publishing {n} invitations"));
    let publish = Instant::now();
    for _ in 0..n {
        handle.send_invitation(SendParams::new(identity.clone())).await?;
    }
    let mut published = 0;
    while published < n {
        match tokio::time::timeout(Duration::from_secs(600), events.recv()).await {
            Ok(Some(e)) => match e.event {
                Event::InvitationPublished { .. } => published += 1,
                Event::Finished(o) => return Err(format!("an invitation ended while publishing: {o:?}").into()),
                _ => {}
            },
            _ => return Err(format!("only {published} of {n} published").into()),
        }
    }
    let rss_published = vm_rss_kib().unwrap_or(0);
    say(format!(
        "{n} invitations published in {:.1} s ({} DHT operations); VmRSS {:.1} MiB",
        publish.elapsed().as_secs_f64(),
        log.drain().len(),
        mib(rss_published)
    ));

    say(format!("idle for {minutes} min: nothing is scanned, every invitation waits"));
    let window = Instant::now();
    let mut ops: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut down, mut up) = (0.0, 0.0);
    for m in 1..=minutes {
        let (d, u) = traffic(&api, 60).await?;
        down += d;
        up += u;
        let mut this_minute = 0;
        for o in log.drain() {
            *ops.entry(o.op).or_default() += 1;
            this_minute += 1;
        }
        say(format!(
            "minute {m}: {this_minute} DHT operations, Veilid {d:.0} B/s down / {u:.0} B/s up, VmRSS {:.1} MiB",
            mib(vm_rss_kib().unwrap_or(0))
        ));
    }
    let secs = window.elapsed().as_secs_f64();
    let total: usize = ops.values().sum();
    let rss_end = vm_rss_kib().unwrap_or(0);
    while let Ok(e) = events.try_recv() {
        if let Event::Finished(o) = e.event {
            return Err(format!("an invitation ended while idle: {o:?}").into());
        }
    }
    let flows = handle.flows().await?.len();

    println!("\n== {n} waiting invitations on one Veilid node, {minutes} min idle");
    println!("  still waiting at the end: {flows}");
    println!(
        "  DHT operations: {:.2} /s ({total} in {secs:.0} s; {})",
        total as f64 / secs,
        ops.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    let m = minutes as f64;
    println!(
        "  Veilid traffic: {:.0} B/s down, {:.0} B/s up (without invitations: {down0:.0} / {up0:.0})",
        down / m,
        up / m
    );
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
    println!(
        "  memory per waiting invitation: {:.1} KiB after publishing, {:.1} KiB after the window \
         (VmRSS {:.1} -> {:.1} -> {:.1} MiB; Veilid's record state included)",
        per(rss_published, rss_before),
        per(rss_end, rss_before),
        mib(rss_before),
        mib(rss_published),
        mib(rss_end)
    );
    handle.shutdown().await;
    net.shutdown().await;
    Ok(())
}
