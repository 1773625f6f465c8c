//! `cargo bench --no-default-features --bench idle [-- N MINUTES]`: the cost
//! of waiting. N (default 100,000) outstanding invitations on MemoryDht, aged
//! evenly over their lifetime (default 7 days), then MINUTES (default 10) of
//! virtual time: every DHT operation their driver issues (reads, watches,
//! anything) per second, with the age-based poll schedule of
//! `machine::poll` and, in the same run, with the fixed 5 s poll of earlier
//! releases.
//!
//! How the ages are made: the invitations are sent through one driver whose
//! clock is set, before each send, to T0 − age (ages evenly spaced over
//! [0, lifetime − MINUTES − 10 min), youngest first so no timer comes due
//! while sending); the inviter records that time as the invitation's
//! creation (and so its age). That driver is shut down and each schedule is
//! then measured by a new driver that resumes all of them from the store on
//! tokio's paused (virtual) clock starting at T0, as an app does after a
//! restart: after the resume (its re-watches are not idle cost and are not
//! counted) the op counts are reset and MINUTES of virtual time run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "common/waiting.rs"]
mod waiting;

use contact_invite::bench_internals as b;
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, Clock, DriverConfig, SystemClock, TokioClock};
use contact_invite::flow::{FlowId, SendParams};
use contact_invite::identity::Identity;
use contact_invite::limits::DEFAULT_EXPIRY_SECS;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use rand_core::OsRng;
use waiting::{count, drain, until};

/// A clock the bench sets by hand.
#[derive(Clone)]
struct Manual(Arc<AtomicU64>);
impl Clock for Manual {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Resumes all `n` flows at T0 on virtual time, then counts every DHT
/// operation over `window`. Returns operations per second.
async fn measure(net: &MemoryNetwork, store: &Arc<MemoryStore>, n: usize, t0: u64, window: Duration) -> (f64, u64) {
    net.reset_op_counts();
    let config = DriverConfig::builder().clock(TokioClock::starting_at(t0)).build();
    let (h, events) = driver::start(net.join("a"), store.clone(), config).await.unwrap_or_else(|e| panic!("{e}"));
    let (task, seen) = drain(events);
    until("resumed", || count(&seen) >= n && net.op_counts("a").watch >= n as u64).await;
    // A command round trip: the driver has applied the resume.
    let _ = h.ticket(FlowId([0; 16])).await;
    net.reset_op_counts();
    let start = tokio::time::Instant::now();
    tokio::time::sleep(window).await;
    let _ = h.ticket(FlowId([0; 16])).await;
    let ops = net.op_counts("a").total();
    let secs = start.elapsed().as_secs_f64();
    h.shutdown().await;
    let _ = task.await;
    (ops as f64 / secs, ops)
}

fn main() {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<u64>().ok());
    let n = args.next().unwrap_or(100_000) as usize;
    let minutes = args.next().unwrap_or(10);
    let window = Duration::from_secs(minutes * 60);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    let lifetime_ms = DEFAULT_EXPIRY_SECS * 1000;
    let t0 = SystemClock.now_ms();
    let net = MemoryNetwork::new();
    let store = Arc::new(MemoryStore::new());
    let clock = Manual(Arc::new(AtomicU64::new(t0 - lifetime_ms)));
    let t = Instant::now();
    rt.block_on(async {
        let profile = Profile::new("a").unwrap_or_else(|e| panic!("{e}"));
        let id =
            Identity::generate(profile, "d", (t0 - lifetime_ms) / 1000, &mut OsRng).unwrap_or_else(|e| panic!("{e}"));
        let id = driver::publish_identity(&net.join("a"), id).await.unwrap_or_else(|e| panic!("{e}"));
        let config = DriverConfig::builder().clock(clock.clone()).build();
        let (h, events) = driver::start(net.join("a"), store.clone(), config).await.unwrap_or_else(|e| panic!("{e}"));
        let (task, seen) = drain(events);
        // Ages evenly over the lifetime, minus the window and a margin so
        // none expires while measured.
        let span = lifetime_ms - window.as_millis() as u64 - 600_000;
        for i in 0..n {
            clock.0.store(t0 - span * i as u64 / n as u64, Ordering::SeqCst);
            h.send_invitation(SendParams::new(id.clone())).await.unwrap_or_else(|e| panic!("{e}"));
        }
        until("published", || count(&seen) >= n && net.op_counts("a").watch >= n as u64).await;
        let _ = h.ticket(FlowId([0; 16])).await;
        h.shutdown().await;
        let _ = task.await;
    });
    println!(
        "{n} waiting invitations, ages evenly over 0..{:.2} days ({:.1} s to send); {minutes} min of virtual time each:",
        (lifetime_ms - window.as_millis() as u64 - 600_000) as f64 / 86_400_000.0,
        t.elapsed().as_secs_f64()
    );
    rt.block_on(async {
        tokio::time::pause();
        let t = Instant::now();
        b::set_legacy_poll(false);
        let (new, new_ops) = measure(&net, &store, n, t0, window).await;
        println!(
            "  age-based poll (5 s doubling to 2 h, ±10 %): {new:>9.2} DHT ops/s ({new_ops} ops; {:.1} s real)",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        b::set_legacy_poll(true);
        let (old, old_ops) = measure(&net, &store, n, t0, window).await;
        b::set_legacy_poll(false);
        println!(
            "  fixed 5 s poll (before):                     {old:>9.2} DHT ops/s ({old_ops} ops; {:.1} s real)",
            t.elapsed().as_secs_f64()
        );
        println!("  ratio: {:.0}x fewer", old / new.max(f64::MIN_POSITIVE));
    });
}
