//! Fuzzing builds only (`cfg(fuzzing)`, set by cargo-fuzz): exact memoization
//! of the deterministic curve operations (Ed25519 verify, sign, point
//! decoding; X25519 agreement), keyed by a hash of all their inputs.
//!
//! The fuzz targets drive a genuine handshake to its end after every hostile
//! input (to check the hostile values broke nothing) and most of each run
//! went into repeating the same curve operations on the same inputs. A
//! memoized result is the one the operation gives for exactly those inputs,
//! so no outcome changes; only repeated work is skipped. Never compiled into
//! a normal build.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;

/// Entries kept per table before it is cleared (bounds memory on long runs).
const MAX_ENTRIES: usize = 1 << 14;

thread_local! {
    static MEMO: RefCell<HashMap<[u8; 32], Box<dyn Any>>> = RefCell::new(HashMap::new());
}

fn key(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("contact-invite fuzzing memo");
    h.update(label.as_bytes());
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// `f()`'s result for these inputs, computed once (`label` names the
/// operation and fixes `T`).
pub(crate) fn memo<T: Clone + 'static>(label: &str, parts: &[&[u8]], f: impl FnOnce() -> T) -> T {
    let k = key(label, parts);
    if let Some(v) = MEMO.with(|m| m.borrow().get(&k).and_then(|v| v.downcast_ref::<T>()).cloned()) {
        return v;
    }
    let v = f();
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(k, Box::new(v.clone()));
    });
    v
}
