//! What the benches that make many waiting invitations share: reading a
//! driver's events (it blocks if nobody reads them) and waiting until a
//! condition holds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contact_invite::driver::Events;
use contact_invite::flow::{Event, FlowId};

/// The flows that said `InvitationPublished`.
pub(crate) type Seen = Arc<std::sync::Mutex<HashSet<FlowId>>>;

/// Reads `events` until the driver stops, keeping the flows that said
/// `InvitationPublished`.
pub(crate) fn drain(mut events: Events) -> (tokio::task::JoinHandle<()>, Seen) {
    let seen = Seen::default();
    let s = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if matches!(e.event, Event::InvitationPublished { .. }) {
                s.lock().unwrap_or_else(|e| e.into_inner()).insert(e.flow);
            }
        }
    });
    (task, seen)
}

/// How many flows said `InvitationPublished`.
pub(crate) fn count(seen: &Seen) -> usize {
    seen.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Polls `done` every 5 ms (of tokio time) until it holds; panics after an
/// hour of wall-clock time.
pub(crate) async fn until(what: &str, done: impl Fn() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(3600), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
