//! `cargo bench --bench report`: one table with the crypto floor, the cost of
//! a full flow against the primitives it performs, round trips per role next
//! to VeilidChat's, ticket sizes and QR versions, and Argon2id's cost per
//! guess. Ratios are measured side by side in one run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::bench_internals as b;
use contact_invite::crypto::{DhSecretKey, InviteSecret, Password, PasswordParams, PublicKey, SecretKey, SigningKey};
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, DriverConfig, Events};
use contact_invite::encoding::{InvitationKind, LockParams, Ticket, TicketSecret};
use contact_invite::flow::{Event, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::MemoryStore;
use rand_core::OsRng;

/// Median time of `f` over `n` runs.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:>10.1} µs", d.as_secs_f64() * 1e6)
}

async fn until(ev: &mut Events, pred: impl Fn(&Event) -> bool) -> u32 {
    loop {
        let e = ev.recv().await.unwrap_or_else(|| unreachable!("driver stopped"));
        if pred(&e.event) {
            return e.round_trips;
        }
    }
}

struct Side {
    handle: driver::Handle,
    events: Events,
}

/// One full invitation (no password) between two running drivers on
/// MemoryDht; returns round trips (scan -> profile, accept -> stored,
/// response seen -> final).
async fn flow(a: &mut Side, b: &mut Side, a_id: &Identity, b_id: &Identity) -> (u32, u32, u32) {
    let f = a.handle.send_invitation(SendParams::new(a_id.clone())).await.unwrap_or_else(|_| unreachable!());
    until(&mut a.events, |e| matches!(e, Event::InvitationPublished { .. })).await;
    let t = a.handle.ticket(f).await.ok().flatten().unwrap_or_else(|| unreachable!());
    let g = b.handle.receive(ReceiveParams::new(b_id.clone(), t)).await.unwrap_or_else(|_| unreachable!());
    let r1 = until(&mut b.events, |e| matches!(e, Event::InvitationReceived(_))).await;
    b.handle.accept(g).await.unwrap_or_else(|_| unreachable!());
    let r2 = until(&mut b.events, |e| matches!(e, Event::ResponseSent { .. })).await;
    let r3 = until(&mut a.events, |e| matches!(e, Event::ContactEstablished { .. })).await;
    until(&mut a.events, |e| matches!(e, Event::Finished(_))).await;
    until(&mut b.events, |e| matches!(e, Event::Finished(_))).await;
    (r1, r2, r3)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|_| unreachable!());
    println!(
        "contact-invite benchmark report ({} cores)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Crypto floor.
    let k = SigningKey::generate(&mut OsRng);
    let public = *k.public().as_bytes();
    let payload = vec![7u8; 600];
    let sig = b::sign(&k, &payload);
    let s = SecretKey::generate(&mut OsRng);
    let small = vec![1u8; 700];
    let big = vec![1u8; 8192];
    let (sealed_small, sealed_big) = (b::seal(&s, &small), b::seal(&s, &big));
    let (dh, peer) = (DhSecretKey::generate(&mut OsRng), DhSecretKey::generate(&mut OsRng).public());
    // Every primitive a flow performs, `n` runs each; returns their medians
    // and the floor (see below for what one flow performs).
    let primitives = |n: usize| {
        let t = [
            time(n, || b::sign(&k, &payload)),
            time(n, || b::verify(&k, &payload, &sig)),
            time(n, || b::seal(&s, &small)),
            time(n, || b::seal(&s, &big)),
            time(n, || b::open(&s, &sealed_small)),
            time(n, || b::open(&s, &sealed_big)),
            time(n, || b::conversation_key(&dh, &peer)),
            time(n, || b::derive(&s)),
            time(n, || SigningKey::generate(&mut OsRng)),
            time(n, || PublicKey::from_bytes(&public)),
        ];
        let [t_sign, t_verify, t_seal_s, t_seal_b, t_open_s, t_open_b, t_dh, t_derive, t_keygen, t_point] = t;
        // What one full flow (both sides, no password) performs:
        // signs: invitation, response, final status (3)
        // verifies: invitation + its identity record + device consent (3), the
        //   inviter's fresh identity record + consent (2), response + identity +
        //   consent (3), the responder's fresh identity record + consent (2),
        //   final status (1): 11
        // seals/opens: request (small), response (8 KiB), final status (small)
        // conversation keys: 2; labelled derivations: 9
        // key generation: inbox owner, writer, two conversation owners (4)
        // key expansion: a waiting invitation keeps its three keys as seeds and
        //   expands each once when answered (final status, contact, tombstone):
        //   3, each the cost of a key generation from a seed
        // point checks: every Ed25519 key decoded from a message is decompressed
        //   to refuse invalid points (a typed error at parse time): the
        //   invitation's 3 keys and its identity record's 2, the response's 2
        //   and its record's 2, both freshness re-reads' 2 each, the final
        //   status's responder: 14 (counted with a probe in the decoder)
        // DHT writes: MemoryDht signs each set with the writer key and verifies
        //   it, as Veilid nodes do: request, response, final status, tombstone (4)
        let protocol = t_sign * 3
            + t_verify * 11
            + t_seal_s * 2
            + t_seal_b
            + t_open_s * 2
            + t_open_b
            + t_dh * 2
            + t_derive * 9
            + t_keygen * 4
            + t_keygen * 3
            + t_point * 14;
        let dht_writes = (t_sign + t_verify) * 4;
        (t, protocol, dht_writes)
    };
    let (t, protocol, dht_writes) = primitives(2000);
    let [t_sign, t_verify, t_seal_s, t_seal_b, t_open_s, t_open_b, t_dh, t_derive, t_keygen, t_point] = t;
    println!("{:<44} median", "primitive");
    for (n, t) in [
        ("ed25519 sign (framed)", t_sign),
        ("ed25519 verify strict (framed)", t_verify),
        ("xchacha20poly1305 seal 700 B", t_seal_s),
        ("xchacha20poly1305 seal 8 KiB (response)", t_seal_b),
        ("xchacha20poly1305 open 700 B", t_open_s),
        ("xchacha20poly1305 open 8 KiB (response)", t_open_b),
        ("x25519 + blake3 conversation key", t_dh),
        ("blake3 labelled derive", t_derive),
        ("ed25519 key generation", t_keygen),
        ("ed25519 point check (public key decoded)", t_point),
    ] {
        println!("{n:<44} {}", us(t));
    }

    let floor = protocol + dht_writes;
    let net = MemoryNetwork::new();
    let now = driver::SystemClock.now_secs();
    let a = rt.block_on(async {
        let id = Identity::generate(Profile::new("a").unwrap_or_else(|_| unreachable!()), "d", now, &mut OsRng)
            .unwrap_or_else(|_| unreachable!());
        driver::publish_identity(&net.join("pub-a"), id).await.unwrap_or_else(|_| unreachable!())
    });
    let bid = rt.block_on(async {
        let id = Identity::generate(Profile::new("b").unwrap_or_else(|_| unreachable!()), "d", now, &mut OsRng)
            .unwrap_or_else(|_| unreachable!());
        driver::publish_identity(&net.join("pub-b"), id).await.unwrap_or_else(|_| unreachable!())
    });
    let (mut sa, mut sb) = rt.block_on(async {
        let (ha, ea) = driver::start(net.join("a"), Arc::new(MemoryStore::new()), DriverConfig::default())
            .await
            .unwrap_or_else(|_| unreachable!());
        let (hb, eb) = driver::start(net.join("b"), Arc::new(MemoryStore::new()), DriverConfig::default())
            .await
            .unwrap_or_else(|_| unreachable!());
        (Side { handle: ha, events: ea }, Side { handle: hb, events: eb })
    });
    let mut rts = (0, 0, 0);
    let t_flow = time(300, || {
        rts = rt.block_on(flow(&mut sa, &mut sb, &a, &bid));
    });
    println!("\n{:<44} {}", "full flow on MemoryDht (send -> both final)", us(t_flow));
    println!("{:<44}", "  (two long-running drivers, in-memory stores, no password)");
    println!("{:<44} {}", "  protocol crypto it performs", us(protocol));
    println!("{:<44} {}", "  DHT write signatures (4 sets, sign+verify)", us(dht_writes));
    println!("{:<44} {}", "sum of the primitives it performs", us(floor));
    println!("{:<44} {:>10.2} x   (goal <= 1.3 x)", "ratio", t_flow.as_secs_f64() / floor.as_secs_f64());
    // The same, interleaved: primitives then flows, five times, so that a
    // noisy neighbour slows both sides of a ratio alike.
    let mut ratios: Vec<f64> = (0..5)
        .map(|_| {
            let (_, protocol, dht_writes) = primitives(500);
            let t_flow = time(100, || rt.block_on(flow(&mut sa, &mut sb, &a, &bid)));
            t_flow.as_secs_f64() / (protocol + dht_writes).as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "{:<44} {:>10.2} x   (range {:.2}-{:.2}; goal <= 1.3 x)",
        "ratio, median of 5 interleaved rounds", ratios[2], ratios[0], ratios[4]
    );

    println!("\nsequential DHT round trips on each critical path (this crate vs VeilidChat, counted the same way)");
    println!("  invitee: scan -> profile shown      {:>2}   VeilidChat: 2 (get inbox; SuperIdentity open+get)", rts.0);
    println!(
        "  invitee: accept -> response stored  {:>2}   VeilidChat: 2 (create+write conversation; set subkey 1)",
        rts.1
    );
    println!(
        "  inviter: response seen -> final     {:>2}   VeilidChat: >= 3 (SuperIdentity get; poll conversation; write; overwrite inbox)",
        rts.2
    );

    // Ticket sizes and QR versions.
    let plain = Ticket {
        kind: InvitationKind::Contact,
        record: [1; 32],
        secret: TicketSecret::Plain(InviteSecret::generate(&mut OsRng)),
    };
    let locked = Ticket {
        kind: InvitationKind::Contact,
        record: [1; 32],
        secret: TicketSecret::Locked {
            masked: InviteSecret::generate(&mut OsRng),
            params: LockParams { salt: [2; 16], m_cost_log2: 16, t_cost: 3, p_cost: 1 },
        },
    };
    println!("\nticket sizes (ECC L)                 binary  QR bytes  text chars  QR text (alnum)   VeilidChat");
    for (n, t, vc) in [("no password", &plain, "168 B, v8"), ("password / PIN", &locked, "208 B, v9")] {
        // The QR holds the bytes unless the text form, upper-cased into QR
        // alphanumeric mode, fits the same version (measured here).
        let text = t.to_string().to_uppercase();
        let alnum = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
            .map(|q| match q.version() {
                qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => v,
            })
            .unwrap_or(0);
        println!(
            "  {n:<33} {:>6}  {:>8}  {:>10}  {:>15}   {vc}",
            t.to_bytes().len(),
            format!("v{}", t.qr_version().unwrap_or(0)),
            text.len(),
            format!("v{alnum}"),
        );
    }
    println!("  {:<33} {:>6}", "text armor (chars)", plain.to_armor().len());

    // Argon2id per guess.
    let pw = Password::new("correct horse battery").unwrap_or_else(|_| unreachable!());
    let t_argon = time(7, || b::stretch(&pw, &PasswordParams::DEFAULT));
    let p = PasswordParams::DEFAULT;
    println!(
        "\nArgon2id default (m = {} MiB, t = {}, p = {}): {:.0} ms and {} MiB per guess",
        p.memory_kib() / 1024,
        p.t_cost,
        p.p_cost,
        t_argon.as_secs_f64() * 1e3,
        p.memory_kib() / 1024
    );
    // What README.md and docs/threat-model.md quote, from this one figure:
    // every PIN tried offline, one Argon2id each (half that on average).
    let per_guess = t_argon.as_secs_f64();
    println!(
        "  offline, every PIN on one core: 4 digits {:.0} core-minutes, 6 digits {:.0} core-hours",
        1e4 * per_guess / 60.0,
        1e6 * per_guess / 3600.0
    );

    // Proof-of-work stamps for requests to a known address: minting costs
    // the requester 2^bits hashes on average, checking costs the recipient one.
    println!("\nrequest stamps (BLAKE3, mean over fresh ephemeral keys)      mint          check");
    let check = time(2001, || contact_invite::crypto::pow::check(16, &[1; 32], &[2; 32], &[3; 32], 7));
    for bits in [12u32, 16, 18, 20] {
        let runs = if bits >= 20 { 6 } else { 24 };
        let mut total = Duration::ZERO;
        for i in 0..runs {
            let eph = [i as u8; 32];
            let start = Instant::now();
            black_box(contact_invite::crypto::pow::mint(bits, &[1; 32], &[2; 32], &eph));
            total += start.elapsed();
        }
        let mean = total / runs as u32;
        println!(
            "  {bits:>2} bits                                        {:>10}   {:>8}   attacker: {:.1} s per 1000 requests",
            us(mean),
            us(check),
            mean.as_secs_f64() * 1000.0
        );
    }
}
