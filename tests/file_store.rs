//! Flows persisted in a FileStore survive a crash and resume from disk.

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, DriverConfig, TokioClock};
use contact_invite::flow::{Event, Outcome, ReceiveParams, SendParams};
use contact_invite::identity::Identity;
use contact_invite::message::Profile;
use contact_invite::store::{FileStore, Store, Table};
use rand_core::OsRng;

#[tokio::test(start_paused = true)]
async fn inviter_crashes_and_resumes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let net = MemoryNetwork::new();
    let clock = TokioClock::starting_at(T0_MS);
    let alice = Identity::generate(Profile::new("alice").unwrap(), "d", T0_MS / 1000, &mut OsRng).unwrap();
    let alice = driver::publish_identity(&net.join("alice"), alice).await.unwrap();
    let mut bob = party(&net, "bob").await;

    // First run: crash right after the invitation is published.
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let cfg = |crash| DriverConfig::builder().clock(clock).crash_after_effects(crash).build();
    let (a, mut events) = driver::start(net.join("alice"), store.clone(), cfg(Some(14))).await.unwrap();
    let flow = a.send_invitation(SendParams::new(alice.clone())).await.unwrap();
    wait_for(&mut events, "published", |e| matches!(e.event, Event::InvitationPublished { .. })).await;
    let ticket = a.ticket(flow).await.unwrap().unwrap();
    while events.recv().await.is_some() {} // the driver stops at its crash point
    assert_eq!(store.list(Table::Flows).await.unwrap().len(), 1, "the flow is on disk");
    assert_eq!(store.list(Table::Invitations).await.unwrap().len(), 1, "and in the invitation table");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::read_dir(dir.path().join("flows")).unwrap().next().unwrap().unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600, "secrets are owner-only");
    }

    // Bob answers while Alice is down.
    let b = bob.handle.receive(ReceiveParams::new(bob.identity.clone(), ticket)).await.unwrap();
    wait_for(&mut bob.events, "inv", |e| matches!(e.event, Event::InvitationReceived(_))).await;
    bob.handle.accept(b).await.unwrap();
    wait_for(&mut bob.events, "sent", |e| matches!(e.event, Event::ResponseSent { .. })).await;

    // Alice restarts from a fresh FileStore over the same directory.
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let (a, mut events) = driver::start(net.join("alice"), store.clone(), cfg(None)).await.unwrap();
    assert_eq!(finished(&mut events, flow).await, Outcome::Contact(bob.identity.public_key()));
    assert!(store.list(Table::Invitations).await.unwrap().is_empty(), "clean when Finished is seen");
    // A command round trip: the driver has finished processing that step.
    assert!(a.ticket(flow).await.unwrap().is_none());
    assert_eq!(finished(&mut bob.events, b).await, Outcome::Contact(alice.public_key()));
    let contacts = driver::contacts(store.as_ref()).await.unwrap().contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].profile.name(), "bob");
    assert!(store.list(Table::Flows).await.unwrap().is_empty());
    assert!(store.list(Table::Invitations).await.unwrap().is_empty());
}

#[tokio::test]
async fn file_store_basics_and_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path()).unwrap();
    s.put(Table::Contacts, b"k1", b"v1").await.unwrap();
    s.put(Table::Contacts, b"k1", b"v2").await.unwrap();
    s.put(Table::Contacts, b"k0", b"v0").await.unwrap();
    assert_eq!(s.get(Table::Contacts, b"k1").await.unwrap().unwrap(), b"v2");
    assert_eq!(
        s.list(Table::Contacts).await.unwrap(),
        vec![(b"k0".to_vec(), b"v0".to_vec()), (b"k1".to_vec(), b"v2".to_vec())]
    );
    s.delete(Table::Contacts, b"k1").await.unwrap();
    s.delete(Table::Contacts, b"k1").await.unwrap();
    assert!(s.get(Table::Contacts, b"k1").await.unwrap().is_none());
    // A leftover temp file of an interrupted write is ignored.
    std::fs::write(dir.path().join("contacts").join("6b30.tmp"), b"partial").unwrap();
    assert_eq!(s.list(Table::Contacts).await.unwrap().len(), 1);
    // A corrupt persisted flow is reported as a failed flow and left in the
    // store; the driver still starts (other flows resume).
    // (Of the current format: one of another format is migrated, see
    // tests/store_records.rs.)
    let corrupt = [&[contact_invite::store::FLOW_RECORD_FORMAT][..], b"{not a flow"].concat();
    s.put(Table::Flows, &[0u8; 16], &corrupt).await.unwrap();
    let net = MemoryNetwork::new();
    let (_h, mut events) = driver::start(net.join("x"), Arc::new(s.clone()), DriverConfig::default()).await.unwrap();
    let e = events.recv().await.unwrap();
    assert_eq!(e.flow.0, [0u8; 16]);
    assert!(matches!(e.event, Event::Finished(Outcome::Failed(contact_invite::Error::Store(_)))), "{e:?}");
    assert_eq!(s.get(Table::Flows, &[0u8; 16]).await.unwrap().unwrap(), corrupt, "nothing lost");
}

/// Names of the files in a table directory.
fn file_names(dir: &std::path::Path, table: Table) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join(table.name()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// STORE-6: many tasks writing one key at once (each write its own
/// temporary file, renamed over the entry) never leave a torn or mixed
/// value for a reader, the last write wins whole, and no temporary file is
/// left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_6_concurrent_writes_of_one_key_are_never_torn_and_leave_no_temp_file() {
    const WRITERS: u8 = 16;
    const LEN: usize = 128 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(FileStore::open(dir.path()).unwrap());
    // A value is whole if it is LEN bytes of one writer's byte.
    let whole = |v: &[u8]| v.len() == LEN && v.iter().all(|b| *b == v[0]) && (1..=WRITERS).contains(&v[0]);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (s, done) = (s.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(v) = s.get(Table::Contacts, b"key").await.unwrap() {
                    assert!(whole(&v), "a reader saw a torn or mixed value ({} bytes)", v.len());
                    seen += 1;
                }
                for (k, v) in s.list(Table::Contacts).await.unwrap() {
                    assert_eq!(k, b"key", "only the entry is listed, never a temporary file");
                    assert!(whole(&v), "list saw a torn or mixed value");
                }
                tokio::task::yield_now().await;
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for w in 1..=WRITERS {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..3 {
                s.put(Table::Contacts, b"key", &vec![w; LEN]).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let v = s.get(Table::Contacts, b"key").await.unwrap().unwrap();
    assert!(whole(&v), "the last write is whole");
    assert_eq!(file_names(dir.path(), Table::Contacts), vec!["6b6579".to_owned()], "no temporary file left");
}

/// STORE-6: the temporary file of a write that was killed (here: left on
/// disk as it would be, in the current and the earlier naming) is never
/// listed, and is removed when the store is opened again.
#[tokio::test]
async fn store_6_stale_temp_files_of_killed_writes_are_removed_at_open_and_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path()).unwrap();
    s.put(Table::Flows, b"k", b"whole").await.unwrap();
    let t = dir.path().join("flows");
    // A killed write: a complete or partial temporary file, never renamed.
    std::fs::write(t.join(".6b.4242-7-0011223344556677.tmp"), b"partial").unwrap();
    std::fs::write(t.join("6b.tmp"), b"partial").unwrap();
    // One that got as far as a hex-looking name with the temporary suffix.
    std::fs::write(t.join("6b6b.tmp"), b"x").unwrap();
    assert_eq!(s.list(Table::Flows).await.unwrap(), vec![(b"k".to_vec(), b"whole".to_vec())]);
    assert_eq!(file_names(dir.path(), Table::Flows).len(), 4);

    let s = FileStore::open(dir.path()).unwrap();
    assert_eq!(file_names(dir.path(), Table::Flows), vec!["6b".to_owned()], "stale temporary files removed");
    assert_eq!(s.list(Table::Flows).await.unwrap(), vec![(b"k".to_vec(), b"whole".to_vec())]);
    assert_eq!(s.get(Table::Flows, b"k").await.unwrap().unwrap(), b"whole");
}
