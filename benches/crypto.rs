//! Criterion benches of each crypto primitive a flow performs.
#![allow(missing_docs)] // criterion_group! generates an undocumented function
use contact_invite::bench_internals as b;
use contact_invite::crypto::{DhSecretKey, Password, PasswordParams, SecretKey, SigningKey};
use criterion::{Criterion, criterion_group, criterion_main};
use rand_core::OsRng;
use std::hint::black_box;

fn primitives(c: &mut Criterion) {
    let k = SigningKey::generate(&mut OsRng);
    let payload = vec![7u8; 600];
    let sig = b::sign(&k, &payload);
    c.bench_function("ed25519 sign (framed, 600 B)", |x| x.iter(|| b::sign(&k, black_box(&payload))));
    c.bench_function("ed25519 verify strict (framed, 600 B)", |x| x.iter(|| b::verify(&k, black_box(&payload), &sig)));
    let s = SecretKey::generate(&mut OsRng);
    let big = vec![1u8; 8192];
    let sealed = b::seal(&s, &big);
    c.bench_function("xchacha20poly1305 seal 8 KiB", |x| x.iter(|| b::seal(&s, black_box(&big))));
    c.bench_function("xchacha20poly1305 open 8 KiB", |x| x.iter(|| b::open(&s, black_box(&sealed))));
    c.bench_function("blake3 labelled derive", |x| x.iter(|| b::derive(black_box(&s))));
    let (a, p) = (DhSecretKey::generate(&mut OsRng), DhSecretKey::generate(&mut OsRng).public());
    c.bench_function("x25519 conversation key", |x| x.iter(|| b::conversation_key(&a, black_box(&p))));
    let pw = Password::new("correct horse battery").unwrap_or_else(|_| unreachable!());
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    g.bench_function("default (64 MiB, t=3, p=1)", |x| x.iter(|| b::stretch(&pw, &PasswordParams::DEFAULT)));
    g.finish();
}

criterion_group!(benches, primitives);
criterion_main!(benches);
