//! Flows persisted in a FileStore survive a crash and resume from disk.

mod common;

use std::sync::Arc;

use common::*;
use contact_invite::dht::MemoryNetwork;
use contact_invite::driver::{self, DriverConfig, TokioClock};
use contact_invite::identity::Identity;
use contact_invite::machine::{Event, Outcome, ReceiveParams, SendParams};
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
    let cfg = |crash| DriverConfig { clock: Arc::new(clock), crash_after_effects: crash, ..DriverConfig::default() };
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
    let contacts = driver::contacts(store.as_ref()).await.unwrap();
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
    s.put(Table::Flows, &[0u8; 16], b"{not a flow").await.unwrap();
    let net = MemoryNetwork::new();
    let (_h, mut events) = driver::start(net.join("x"), Arc::new(s.clone()), DriverConfig::default()).await.unwrap();
    let e = events.recv().await.unwrap();
    assert_eq!(e.flow.0, [0u8; 16]);
    assert!(matches!(e.event, Event::Finished(Outcome::Failed(contact_invite::Error::Store(_)))), "{e:?}");
    assert_eq!(s.get(Table::Flows, &[0u8; 16]).await.unwrap().unwrap(), b"{not a flow", "nothing lost");
}
