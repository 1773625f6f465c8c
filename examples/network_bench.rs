//! Real-network latency: K invitations between two parties on a private
//! 6-node Veilid network, with the end-to-end latency distribution next to
//! (critical-path DHT operations × median operation latency) from the same run.
//!
//! `scripts/netns.sh cargo run --example network_bench -- [K] [think_ms]`
//! (`think_ms`: how long the invitee waits between publish and scan; 0 =
//! at once, the worst case for Veilid's watch set-up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::dht::veilid::VeilidDht;
use contact_invite::dht::{OpLog, Recorded, median};
use contact_invite::driver::{self, DriverConfig, Events, SystemClock};
use contact_invite::identity::Identity;
use contact_invite::machine::{Event, ReceiveParams, SendParams};
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions};
use rand_core::OsRng;

type Error = Box<dyn std::error::Error>;

/// Sequential network operations on the critical path of one invitation:
/// publish (set), fetch (get), response (set), final status (set).
const CRITICAL_PATH_OPS: u32 = 4;

async fn until(ev: &mut Events, pred: impl Fn(&Event) -> bool) -> Result<(), Error> {
    let r = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(e) = ev.recv().await {
            if pred(&e.event) {
                return true;
            }
        }
        false
    })
    .await;
    if r == Ok(true) { Ok(()) } else { Err("timed out or driver stopped".into()) }
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let k: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let think = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(0));
    LocalNetwork::check_namespace(6).map_err(|e| format!("{e}\nrun under scripts/netns.sh"))?;
    let net = LocalNetwork::start(LocalNetworkOptions::default()).await?;
    print!("{}", net.report());
    let now = SystemClock.now_secs();
    let log = OpLog::new();
    let mut parties = Vec::new();
    for (node, name) in [(1, "alice"), (2, "bob")] {
        let id = Identity::generate(Profile::new(name)?, "d", now, &mut OsRng)?;
        let id = driver::publish_identity(&net.dht(node)?, id).await?;
        let dht = Recorded::new(net.dht(node)?, log.clone());
        let (h, ev) =
            driver::start::<Recorded<VeilidDht>, _>(dht, Arc::new(MemoryStore::new()), DriverConfig::default()).await?;
        parties.push((id, h, ev));
    }
    let (b, a) = (parties.pop().ok_or("b")?, parties.pop().ok_or("a")?);
    let ((a_id, ha, mut ea), (b_id, hb, mut eb)) = (a, b);
    log.drain();
    let mut e2e = Vec::new();
    for i in 0..k {
        let t0 = Instant::now();
        let f = ha.send_invitation(SendParams::new(a_id.clone())).await?;
        until(&mut ea, |e| matches!(e, Event::InvitationPublished { .. })).await?;
        let ticket = ha.ticket(f).await?.ok_or("ticket")?;
        tokio::time::sleep(think).await;
        let g = hb.receive(ReceiveParams::new(b_id.clone(), ticket)).await?;
        until(&mut eb, |e| matches!(e, Event::InvitationReceived(_))).await?;
        hb.accept(g).await?;
        until(&mut ea, |e| matches!(e, Event::Finished(_))).await?;
        until(&mut eb, |e| matches!(e, Event::Finished(_))).await?;
        // End to end excluding the deliberate think time.
        e2e.push(t0.elapsed().saturating_sub(think));
        eprintln!("invitation {}: {:.0} ms", i + 1, e2e[i].as_secs_f64() * 1e3);
    }
    let ops = log.drain();
    e2e.sort();
    let (mg, ms) = (median(&ops, "get").unwrap_or_default(), median(&ops, "set").unwrap_or_default());
    let op_median = (mg + ms) / 2;
    let predicted = op_median * CRITICAL_PATH_OPS;
    println!("\n{k} invitations, think time {} ms", think.as_millis());
    println!(
        "end to end (send -> both contacts final): min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        e2e[0].as_secs_f64() * 1e3,
        pct(&e2e, 0.5).as_secs_f64() * 1e3,
        pct(&e2e, 0.9).as_secs_f64() * 1e3,
        e2e[e2e.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "median get {:.1} ms, median set {:.1} ms over {} operations",
        mg.as_secs_f64() * 1e3,
        ms.as_secs_f64() * 1e3,
        ops.len()
    );
    println!(
        "critical path: {CRITICAL_PATH_OPS} operations x {:.1} ms = {:.0} ms",
        op_median.as_secs_f64() * 1e3,
        predicted.as_secs_f64() * 1e3
    );
    println!(
        "ratio median end to end / critical path: {:.1} x   (goal <= 1.5 x)",
        pct(&e2e, 0.5).as_secs_f64() / predicted.as_secs_f64().max(1e-9)
    );
    ha.shutdown().await;
    hb.shutdown().await;
    net.shutdown().await;
    Ok(())
}
