//! The inbox poll schedule of a waiting invitation (docs/protocol.md, "Poll
//! schedule").
//!
//! Watches and nudges carry the common case; the poll only catches a lost
//! watch notification together with a lost nudge. Its interval grows with
//! the invitation's age (time since it was created): equal to the age,
//! clamped to [`POLL_FLOOR_MS`, `POLL_CAP_MS`], so polls come at about 5 s,
//! 10 s, 20 s, … (doubling) until the cap. Each delay is jittered by up to
//! ±[`POLL_JITTER_PERCENT`] % from the machine's RNG, never below the floor,
//! so flows resumed together do not poll in lockstep. A response written at
//! any time is therefore read within at most [`POLL_BOUND_MS`] (2 h 12 min)
//! even if every notification and nudge is lost (plus the retry time of
//! reads that fail).

use super::Rng;

/// The shortest poll interval: a fresh invitation polls every 5 s.
pub const POLL_FLOOR_MS: u64 = 5_000;
/// The longest poll interval before jitter: 2 h.
pub const POLL_CAP_MS: u64 = 2 * 3600 * 1000;
/// Jitter either way, in percent of the interval.
pub const POLL_JITTER_PERCENT: u64 = 10;
/// The longest any poll delay can be: the cap plus its jitter. A value
/// that neither a watch nor a nudge reported is read within this time.
pub const POLL_BOUND_MS: u64 = POLL_CAP_MS + POLL_CAP_MS * POLL_JITTER_PERCENT / 100;

/// The interval before jitter for a flow of age `age_ms`: the age, clamped
/// to [floor, cap]. Monotone non-decreasing in the age.
pub const fn base_interval(age_ms: u64) -> u64 {
    if age_ms < POLL_FLOOR_MS {
        POLL_FLOOR_MS
    } else if age_ms > POLL_CAP_MS {
        POLL_CAP_MS
    } else {
        age_ms
    }
}

/// The delay to the next poll for a flow of age `age_ms`: the base interval
/// jittered uniformly by ±[`POLL_JITTER_PERCENT`] %, never below the floor.
pub fn next_delay(age_ms: u64, rng: &mut dyn Rng) -> u64 {
    #[cfg(feature = "bench-internals")]
    if legacy::on() {
        return POLL_FLOOR_MS;
    }
    let base = base_interval(age_ms);
    let span = base * POLL_JITTER_PERCENT / 100;
    let d = base - span + rng.next_u64() % (2 * span + 1);
    d.max(POLL_FLOOR_MS)
}

/// The delay to the first poll after a restart: uniform over
/// [floor, base interval], so flows resumed together spread out over their
/// interval instead of all reading at once.
pub fn resume_delay(age_ms: u64, rng: &mut dyn Rng) -> u64 {
    #[cfg(feature = "bench-internals")]
    if legacy::on() {
        return POLL_FLOOR_MS;
    }
    let base = base_interval(age_ms);
    POLL_FLOOR_MS + rng.next_u64() % (base - POLL_FLOOR_MS + 1)
}

/// Benchmarks only: the fixed 5 s poll of earlier releases, to measure both
/// schedules side by side in one run.
#[cfg(feature = "bench-internals")]
pub(crate) mod legacy {
    use std::sync::atomic::{AtomicBool, Ordering};

    static LEGACY: AtomicBool = AtomicBool::new(false);

    pub(crate) fn on() -> bool {
        LEGACY.load(Ordering::Relaxed)
    }
    pub(crate) fn set(on: bool) {
        LEGACY.store(on, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn doubles_from_the_floor_to_the_cap() {
        // Polling at each base interval from age 5 s: 5, 10, 20, 40 s, …
        let mut age = POLL_FLOOR_MS;
        let mut polls = vec![];
        while base_interval(age) < POLL_CAP_MS {
            polls.push(age);
            age += base_interval(age);
        }
        assert_eq!(&polls[..4], &[5_000, 10_000, 20_000, 40_000]);
        assert_eq!(base_interval(0), POLL_FLOOR_MS);
        assert_eq!(base_interval(7 * 24 * 3600 * 1000), POLL_CAP_MS);
        assert_eq!(POLL_BOUND_MS, 7_920_000);
    }

    proptest! {
        #[test]
        fn schedule_properties(a in 0u64..30 * 24 * 3600 * 1000, b in 0u64..30 * 24 * 3600 * 1000, seed: u64) {
            let (lo, hi) = (a.min(b), a.max(b));
            // Monotone up to the cap, never below the floor nor above the cap.
            prop_assert!(base_interval(lo) <= base_interval(hi));
            prop_assert!((POLL_FLOOR_MS..=POLL_CAP_MS).contains(&base_interval(a)));
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let base = base_interval(a);
            let d = next_delay(a, &mut rng);
            // Jitter bounded, never below the floor, never beyond the bound.
            prop_assert!(d >= POLL_FLOOR_MS);
            prop_assert!(d <= POLL_BOUND_MS);
            prop_assert!(d.abs_diff(base) <= base * POLL_JITTER_PERCENT / 100);
            let r = resume_delay(a, &mut rng);
            prop_assert!((POLL_FLOOR_MS..=base).contains(&r));
        }
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let age = 3 * 24 * 3600 * 1000;
        let ds: Vec<u64> = (0..1000).map(|_| next_delay(age, &mut rng)).collect();
        let (min, max) = (ds.iter().min().copied().unwrap_or(0), ds.iter().max().copied().unwrap_or(0));
        // Both halves of the ±10 % band are used (not in lockstep).
        assert!(min < POLL_CAP_MS - POLL_CAP_MS / 20, "{min}");
        assert!(max > POLL_CAP_MS + POLL_CAP_MS / 20, "{max}");
        let rs: std::collections::HashSet<u64> = (0..100).map(|_| resume_delay(age, &mut rng)).collect();
        assert!(rs.len() > 90);
    }
}
