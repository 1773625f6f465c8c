//! Smoke test of `VeilidDht` on a real private Veilid network (6 nodes in
//! this process), with a timing table.
//!
//! Run inside the sealed namespace:
//!
//! ```text
//! scripts/netns-cargo.sh build --features veilid-net --example veilid_smoke
//! ```
//!
//! Node A creates an SMPL record (owner subkey 0, member subkey 1 for a
//! writer key) and writes subkey 0; node B opens it with the full key and
//! the writer key and reads subkey 0 from the network; A watches subkey 1,
//! B writes it, A gets the `ValueChange` (or, after a timeout, sees it by
//! re-reading). Then the refusals: the member writing the owner's subkey,
//! reads with the opaque key only, an oversized value.
//!
//! Env: `VEILID_NODES` (default 6), `RUST_LOG` (default `warn`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use contact_invite::crypto::SigningKey;
use contact_invite::dht::{Dht, DhtError, DhtErrorKind, MAX_VALUE_LEN, Schema, SchemaMember};
use contact_invite::veilid_net::{DEFAULT_NODES, LocalNetwork, LocalNetworkOptions, vm_rss_kib};
use rand_core::OsRng;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long A waits for the watch notification before re-reading instead.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long A keeps re-reading when the notification did not come.
const REREAD_TIMEOUT: Duration = Duration::from_secs(30);

struct Timings(Vec<(String, Duration, String)>);

impl Timings {
    fn add(&mut self, what: &str, d: Duration, note: impl Into<String>) {
        println!("  {what:<42} {:>9.1} ms  {}", ms(d), note.into());
        self.0.push((what.to_owned(), d, String::new()));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn check(cond: bool, what: &str) -> Result<(), BoxError> {
    if cond { Ok(()) } else { Err(format!("check failed: {what}").into()) }
}

fn expect_kind<T: std::fmt::Debug, E: DhtError>(
    r: Result<T, E>,
    kind: DhtErrorKind,
    what: &str,
) -> Result<String, BoxError> {
    match r {
        Err(e) if e.kind() == kind => Ok(e.to_string()),
        Err(e) => Err(format!("{what}: expected {kind:?}, got {:?}: {e}", e.kind()).into()),
        Ok(v) => Err(format!("{what}: expected {kind:?}, got Ok({v:?})").into()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let nodes = std::env::var("VEILID_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_NODES);
    if let Err(e) = LocalNetwork::check_namespace(nodes) {
        eprintln!("veilid_smoke: {e}");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let opts = LocalNetworkOptions { nodes, ..Default::default() };
    let net = match LocalNetwork::start(opts).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("veilid_smoke: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("== network: {nodes} nodes");
    print!("{}", net.report());

    let result = run(&net).await;
    let before_shutdown = Instant::now();
    net.shutdown().await;
    println!("shutdown: {:.0} ms", ms(before_shutdown.elapsed()));
    println!("total runtime: {:.1} s", started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            println!("veilid_smoke: PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("veilid_smoke: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(net: &LocalNetwork) -> Result<(), BoxError> {
    let mut t = Timings(Vec::new());
    let a = net.dht(1)?;
    let b = net.dht(2)?;
    let c = net.dht(3)?;
    let mut a_changes = a.changes().ok_or("changes already taken")?;

    let owner = SigningKey::generate(&mut OsRng);
    let writer = SigningKey::generate(&mut OsRng);
    let schema = Schema { owner_subkeys: 1, members: vec![SchemaMember { key: writer.public(), subkeys: 1 }] };

    println!("== operations (A = node1, B = node2, C = node3)");
    let t0 = Instant::now();
    let key = a.create_record(&schema, &owner).await?;
    t.add("A create_record", t0.elapsed(), format!("{key:?}"));
    check(key.secret().is_some(), "created key carries the encryption secret")?;

    let t0 = Instant::now();
    let again = a.create_record(&schema, &owner).await?;
    t.add("A create_record again (idempotent)", t0.elapsed(), "");
    check(again == key, "second create returns the same key and secret")?;

    let t0 = Instant::now();
    let r = a.set_value(&key, 0, b"owner hello".to_vec(), None).await?;
    t.add("A set_value subkey 0 (confirmed)", t0.elapsed(), "");
    check(r.is_none(), "set subkey 0 confirmed")?;

    let t0 = Instant::now();
    b.open_record(&key, Some(&writer)).await?;
    t.add("B open_record (full key + writer)", t0.elapsed(), "");

    let t0 = Instant::now();
    let v = b.get_value(&key, 0, true).await?.ok_or("B: subkey 0 empty")?;
    t.add("B get_value subkey 0 force_refresh", t0.elapsed(), format!("seq {}", v.seq));
    check(v.data == b"owner hello" && v.writer == owner.public(), "B reads A's value")?;

    let t0 = Instant::now();
    let active = a.watch(&key, &[1]).await?;
    t.add("A watch subkey 1 (call)", t0.elapsed(), format!("active={active}"));
    check(active, "watch active")?;

    let t0 = Instant::now();
    let r = b.set_value(&key, 1, b"member reply".to_vec(), None).await?;
    let set_done = Instant::now();
    t.add("B set_value subkey 1 (confirmed)", t0.elapsed(), "");
    check(r.is_none(), "set subkey 1 confirmed")?;

    let notified = tokio::time::timeout(WATCH_TIMEOUT, async {
        while let Some(ch) = a_changes.recv().await {
            if ch.record == *key.opaque() && ch.subkeys.contains(&1) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if notified {
        t.add("A watch notification after B's set", set_done.elapsed(), "ValueChange");
    } else {
        t.add("A watch notification after B's set", set_done.elapsed(), "TIMED OUT: re-reading");
        let deadline = Instant::now() + REREAD_TIMEOUT;
        loop {
            let v = a.get_value(&key, 1, true).await?;
            if v.as_ref().is_some_and(|v| v.data == b"member reply") {
                break;
            }
            check(Instant::now() < deadline, "A sees B's write by re-reading")?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        t.add("A saw B's write by re-reading", set_done.elapsed(), "fallback");
    }

    let t0 = Instant::now();
    let v = a.get_value(&key, 1, true).await?.ok_or("A: subkey 1 empty")?;
    t.add("A get_value subkey 1 force_refresh", t0.elapsed(), format!("seq {}", v.seq));
    check(v.data == b"member reply" && v.writer == writer.public(), "A reads B's value")?;

    // Once the watch is set up, notifications are faster than for a write
    // right after the watch call.
    let t0 = Instant::now();
    let r = b.set_value(&key, 1, b"member reply 2".to_vec(), None).await?;
    let set_done = Instant::now();
    t.add("B set_value subkey 1 again (confirmed)", t0.elapsed(), "");
    check(r.is_none(), "second set of subkey 1 confirmed")?;
    let notified = tokio::time::timeout(WATCH_TIMEOUT, async {
        while let Some(ch) = a_changes.recv().await {
            if ch.record == *key.opaque() && ch.subkeys.contains(&1) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    t.add(
        "A settled-watch notification after B's set",
        set_done.elapsed(),
        if notified { "ValueChange" } else { "TIMED OUT" },
    );
    check(notified, "a settled watch reports the change")?;

    println!("== refusals");
    let t0 = Instant::now();
    let e = expect_kind(
        b.set_value(&key, 0, b"hijack".to_vec(), Some(&writer)).await,
        DhtErrorKind::SchemaViolation,
        "member writes owner subkey",
    )?;
    t.add("B (member) set subkey 0 -> SchemaViolation", t0.elapsed(), e);

    let bare = key.without_secret();
    let t0 = Instant::now();
    let e = expect_kind(b.get_value(&bare, 0, true).await, DhtErrorKind::BadRecordSecret, "B opaque-key read")?;
    t.add("B get with opaque key -> BadRecordSecret", t0.elapsed(), e);

    let t0 = Instant::now();
    c.open_record(&bare, None).await?;
    t.add("C open_record (opaque key only)", t0.elapsed(), "");
    let t0 = Instant::now();
    let e = expect_kind(c.get_value(&bare, 0, true).await, DhtErrorKind::BadRecordSecret, "C opaque-key read")?;
    t.add("C get with opaque key -> BadRecordSecret", t0.elapsed(), e);

    let t0 = Instant::now();
    let e = expect_kind(
        a.set_value(&key, 0, vec![0u8; MAX_VALUE_LEN + 1], None).await,
        DhtErrorKind::ValueTooLarge,
        "oversized value",
    )?;
    t.add("A set 32 KiB + 1 -> ValueTooLarge", t0.elapsed(), e);

    let t0 = Instant::now();
    a.cancel_watch(&key).await?;
    a.close_record(&key).await?;
    b.close_record(&key).await?;
    c.close_record(&bare).await?;
    t.add("cancel_watch + close_record x3", t0.elapsed(), "");

    println!("== memory");
    let report = net.report();
    println!(
        "  VmRSS now: {:.1} MiB; per node at start: {:.1} MiB",
        vm_rss_kib().unwrap_or(0) as f64 / 1024.0,
        report.rss_per_node_kib().unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}
