//! Real-network latency: K invitations between two parties on a private
//! 6-node Veilid network, with the end-to-end latency distribution next to
//! the critical path predicted from operation latencies measured in the same
//! run.
//!
//! `scripts/netns-cargo.sh build --example network_bench -- [K] [think_ms]`
//! (`think_ms`: how long the invitee waits between publish and scan; 0 =
//! at once).
//!
//! The critical path from "send" to "both contacts final" is, in order:
//! publish (set), the invitee's open (one inspect round trip on Veilid: the
//! record is not held locally) and read (get), the invitee's freshness check
//! of the inviter's identity record (open + get: the bench accepts at once,
//! so the response waits for it, FRESH-4), the response (set), the nudge to
//! the inviter; then on the inviter the freshness check of the responder's
//! identity record (open + get) and only then the final status (set), and
//! the nudge to the invitee. The prediction adds the median of each of
//! those, measured in this run: sets and gets from the drivers' own
//! operations; the open of a record the node does not hold, and the nudge's
//! one-way delivery, from probes between the same two nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::crypto::SigningKey;
use contact_invite::dht::veilid::VeilidDht;
use contact_invite::dht::{Dht, Nudge, OpLog, Recorded, Schema, median};
use contact_invite::driver::{self, DriverConfig, Events, Handle, SystemClock};
use contact_invite::flow::{Event, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use contact_invite::veilid_net::{LocalNetwork, LocalNetworkOptions};
use rand_core::OsRng;

type Error = Box<dyn std::error::Error>;

/// Nudge probes between the two parties' nodes.
const PROBES: usize = 20;

/// A driver's events, each stamped with when it arrived.
type Stamped = tokio::sync::mpsc::UnboundedReceiver<(Instant, Event)>;

fn stamp(mut ev: Events) -> Stamped {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = ev.recv().await {
            if tx.send((Instant::now(), e.event)).is_err() {
                return;
            }
        }
    });
    rx
}

/// When the first event matching `pred` arrived.
async fn until(ev: &mut Stamped, pred: impl Fn(&Event) -> bool) -> Result<Instant, Error> {
    let r = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some((at, e)) = ev.recv().await {
            if pred(&e) {
                return Some(at);
            }
        }
        None
    })
    .await;
    match r {
        Ok(Some(at)) => Ok(at),
        _ => Err("timed out or driver stopped".into()),
    }
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Waits until the driver has its reply address (a Veilid private route).
async fn reply_address_ready(h: &Handle) -> Result<(), Error> {
    for _ in 0..120 {
        if h.has_reply_address().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("no private route after 30 s".into())
}

/// One-way nudge latency from node `from` to node `to`: send, and time the
/// arrival at the receiver's route.
async fn probe_nudges(net: &LocalNetwork, from: usize, to: usize) -> Result<Vec<Duration>, Error> {
    let (tx, rx) = (net.dht(from)?, net.dht(to)?);
    let mut arrivals = rx.nudges().ok_or("nudge stream")?;
    let mut address = None;
    for _ in 0..40 {
        match rx.reply_address().await {
            Ok(Some(a)) => {
                address = Some(a);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let address = address.ok_or("no private route for the probe")?;
    println!("reply address (private route blob) of node {to}: {} bytes", address.len());
    let mut out = Vec::new();
    for i in 0..PROBES {
        let nudge = Nudge { record: [i as u8; 32], subkey: 0, value: vec![0; 600] };
        let t = Instant::now();
        if tx.send_nudge(&address, &nudge).await.is_err() {
            continue;
        }
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(5), arrivals.recv()).await
            && n.record == nudge.record
        {
            out.push(t.elapsed());
        }
    }
    out.sort();
    if out.is_empty() { Err("no probe nudge arrived".into()) } else { Ok(out) }
}

/// Opening a record node `to` does not hold (Veilid inspects it on the
/// network), `n` times, each on a fresh record written by node `from`.
async fn probe_remote_opens(net: &LocalNetwork, from: usize, to: usize, n: usize) -> Result<Vec<Duration>, Error> {
    let (w, r) = (net.dht(from)?, net.dht(to)?);
    let schema = Schema { owner_subkeys: 1, members: Vec::new() };
    let mut out = Vec::new();
    for _ in 0..n {
        let owner = SigningKey::generate(&mut OsRng);
        let key = w.create_record(&schema, &owner).await?;
        w.set_value(&key, 0, vec![1; 600], None).await?;
        let t = Instant::now();
        if r.open_record(&key, None).await.is_ok() {
            out.push(t.elapsed());
        }
        let _ = r.close_record(&key).await;
    }
    out.sort();
    if out.is_empty() { Err("no probe open succeeded".into()) } else { Ok(out) }
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
    let ((a_id, ha, ea), (b_id, hb, eb)) = (a, b);
    let (mut ea, mut eb) = (stamp(ea), stamp(eb));
    let t = Instant::now();
    reply_address_ready(&ha).await?;
    reply_address_ready(&hb).await?;
    println!("private routes ready after {:.0} ms more", ms(t.elapsed()));
    let mut probes = probe_nudges(&net, 2, 1).await?;
    probes.extend(probe_nudges(&net, 1, 2).await?);
    probes.sort();
    let mut opens = probe_remote_opens(&net, 1, 2, 10).await?;
    opens.extend(probe_remote_opens(&net, 2, 1, 10).await?);
    opens.sort();
    log.drain();
    let (mut e2e, mut finished) = (Vec::new(), Vec::new());
    // Per step: published, shown (from the scan), response stored (from the
    // accept), inviter contact final, invitee contact final (from the response).
    let mut steps: [Vec<Duration>; 5] = Default::default();
    for i in 0..k {
        let t0 = Instant::now();
        let f = ha.send_invitation(SendParams::new(a_id.clone())).await?;
        let published = until(&mut ea, |e| matches!(e, Event::InvitationPublished { .. })).await?;
        let ticket = ha.ticket(f).await?.ok_or("ticket")?;
        tokio::time::sleep(think).await;
        let scan = Instant::now();
        let g = hb.receive(ReceiveParams::new(b_id.clone(), ticket)).await?;
        let shown = until(&mut eb, |e| matches!(e, Event::InvitationReceived(_))).await?;
        let accept = Instant::now();
        hb.accept(g).await?;
        let stored = until(&mut eb, |e| matches!(e, Event::ResponseSent { .. })).await?;
        // Both contacts final (what the users see), then both flows done
        // (the inviter also tombstones the response).
        let a_final = until(&mut ea, |e| matches!(e, Event::ContactEstablished { .. })).await?;
        let b_final = until(&mut eb, |e| matches!(e, Event::ContactEstablished { .. })).await?;
        e2e.push(a_final.max(b_final).duration_since(t0).saturating_sub(think));
        for (v, d) in steps.iter_mut().zip([
            published - t0,
            shown - scan,
            stored - accept,
            a_final.saturating_duration_since(stored),
            b_final.saturating_duration_since(stored),
        ]) {
            v.push(d);
        }
        until(&mut ea, |e| matches!(e, Event::Finished(_))).await?;
        until(&mut eb, |e| matches!(e, Event::Finished(_))).await?;
        finished.push(t0.elapsed().saturating_sub(think));
        eprintln!("invitation {}: contacts final {:.0} ms, flows done {:.0} ms", i + 1, ms(e2e[i]), ms(finished[i]));
    }
    let ops = log.drain();
    e2e.sort();
    finished.sort();
    for v in &mut steps {
        v.sort();
    }
    let m = |op| median(&ops, op).unwrap_or_default();
    let kinds = ["create", "open", "get", "set", "watch", "nudge", "close", "delete"];
    let all: Vec<String> = kinds.iter().map(|k| format!("{k} {:.1}", ms(m(k)))).collect();
    println!("driver operation medians (ms): {}", all.join(", "));
    let sized = |big: bool| {
        let mut v: Vec<Duration> =
            ops.iter().filter(|r| r.ok && r.op == "set" && (r.bytes > 4096) == big).map(|r| r.elapsed).collect();
        v.sort();
        v.get(v.len() / 2).map_or(0.0, |d| ms(*d))
    };
    println!(
        "median set of a value over 4 KiB (the padded response) {:.1} ms, of smaller ones {:.1} ms",
        sized(true),
        sized(false)
    );
    let (mg, mset) = (m("get"), m("set"));
    let (mopen, mnudge) = (pct(&opens, 0.5), pct(&probes, 0.5));
    let to_response = mset + mopen + mg + mopen + mg + mset + mnudge;
    let invitee_path = to_response + mopen + mg + mset + mnudge;
    let inviter_path = to_response + mopen + mg + mset;
    let predicted = invitee_path.max(inviter_path);
    println!("\n{k} invitations, think time {} ms", think.as_millis());
    println!(
        "send -> both contacts final: min {:.0} ms, median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        ms(e2e[0]),
        ms(pct(&e2e, 0.5)),
        ms(pct(&e2e, 0.9)),
        ms(e2e[e2e.len() - 1])
    );
    println!("send -> both flows done (with the tombstone): median {:.0} ms", ms(pct(&finished, 0.5)));
    let med = |i: usize| ms(pct(&steps[i], 0.5));
    println!(
        "median steps: send -> published {:.0} ms; scan -> shown {:.0} ms; accept -> response stored {:.0} ms; \
         response stored -> inviter final {:.0} ms, invitee final {:.0} ms",
        med(0),
        med(1),
        med(2),
        med(3),
        med(4)
    );
    println!(
        "medians this run: get {:.1} ms, set {:.1} ms ({} operations); open of a record not held {:.1} ms ({} probes); \
         nudge one-way {:.1} ms ({} probes)",
        ms(mg),
        ms(mset),
        ops.len(),
        ms(mopen),
        opens.len(),
        ms(mnudge),
        probes.len()
    );
    println!(
        "critical path: publish set + open + get + freshness open + get + response set + nudge, then \
         invitee: open + get + final set + nudge = {:.0} ms, inviter: open + get + final set = {:.0} ms",
        ms(invitee_path),
        ms(inviter_path)
    );
    println!(
        "ratio median end to end / critical path: {:.2} x   (goal <= 1.5 x)",
        pct(&e2e, 0.5).as_secs_f64() / predicted.as_secs_f64().max(1e-9)
    );
    ha.shutdown().await;
    hb.shutdown().await;
    net.shutdown().await;
    Ok(())
}
