//! The local side of an identity: its secrets on this device and its public
//! identity record.

use core::fmt;
use std::collections::HashMap;
use std::sync::Arc;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::Signature;
use crate::crypto::sign::{SignedKind, sign};
use crate::crypto::{DhSecretKey, PublicKey, SecretKey, SigningKey};
use crate::dht::{RecordKey, Schema};
use crate::message::{DeviceEntry, DeviceStatus, IdentityRecord, Profile, SignedIdentity};

/// A message signature by one device of an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSignature {
    /// The signing device.
    pub device: PublicKey,
    /// The signature.
    pub signature: Signature,
}

/// Schema of an identity record: one owner subkey holding the signed record.
pub fn identity_record_schema() -> Schema {
    Schema { owner_subkeys: 1, members: Vec::new() }
}

/// An identity as held on this device: identity key (on the device that holds
/// it), this device's key, the account's internal key (from which the DH key
/// is derived), where the identity record lives and the current signed record.
///
/// `Debug` shows only public keys.
#[derive(Clone, Serialize, Deserialize)]
pub struct Identity {
    identity_key: Option<SigningKey>,
    identity_public: PublicKey,
    device_key: SigningKey,
    account_key: SecretKey,
    record_key: Option<RecordKey>,
    signed: SignedIdentity,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("identity", &self.identity_public)
            .field("device", &self.device_key.public())
            .field("holds_identity_key", &self.identity_key.is_some())
            .field("record", &self.record_key)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Creates a new identity with one device. Publish it with
    /// [`crate::driver::publish_identity`] before inviting anyone.
    pub fn generate(
        profile: Profile,
        device_label: &str,
        now_secs: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, crate::Error> {
        let identity_key = SigningKey::generate(rng);
        let device_key = SigningKey::generate(rng);
        let account_key = SecretKey::generate(rng);
        let record = IdentityRecord {
            identity_key: identity_key.public(),
            seq: 0,
            dh_key: DhSecretKey::from_account_key(&account_key).public(),
            devices: vec![DeviceEntry::new(&identity_key.public(), &device_key, now_secs, device_label)],
            profile: Some(profile),
            updated_at: now_secs,
            request_inbox: None,
            location: None,
        };
        let signed = record.sign(&identity_key)?;
        Ok(Self {
            identity_public: identity_key.public(),
            identity_key: Some(identity_key),
            device_key,
            account_key,
            record_key: None,
            signed,
        })
    }

    /// The identity (account) key.
    pub fn public_key(&self) -> PublicKey {
        self.identity_public
    }
    /// This device's key.
    pub fn device_public(&self) -> PublicKey {
        self.device_key.public()
    }
    /// The identity record's location, once published.
    pub fn record_key(&self) -> Option<&RecordKey> {
        self.record_key.as_ref()
    }
    pub(crate) fn set_record_key(&mut self, key: RecordKey) {
        self.record_key = Some(key);
    }
    /// Makes the signed record name `key` as where it is published
    /// (FRESH-1), then remembers `key`. A record that names no location yet
    /// (never published) is re-signed at the same sequence number; one that
    /// names another location is re-signed with a higher one. Needs the
    /// identity key unless the record already names `key`.
    pub(crate) fn bind_location(&mut self, key: RecordKey) -> Result<(), crate::Error> {
        let current = self.signed.record().location.clone();
        if current.as_ref() != Some(&key) {
            let signer = self
                .identity_key
                .as_ref()
                .ok_or(crate::Error::ApiMisuse("this device does not hold the identity key"))?;
            let mut record = self.signed.record().clone();
            if current.is_some() {
                record.seq += 1;
            }
            record.location = Some(key.clone());
            self.signed = record.sign(signer)?;
        }
        self.record_key = Some(key);
        Ok(())
    }
    /// The current signed identity record.
    pub fn signed(&self) -> &SignedIdentity {
        &self.signed
    }
    /// The profile in the identity record.
    pub fn profile(&self) -> Option<&Profile> {
        self.signed.record().profile.as_ref()
    }
    pub(crate) fn device_key(&self) -> &SigningKey {
        &self.device_key
    }
    pub(crate) fn identity_signing_key(&self) -> Option<&SigningKey> {
        self.identity_key.as_ref()
    }
    pub(crate) fn account_key(&self) -> &SecretKey {
        &self.account_key
    }
    pub(crate) fn dh_secret(&self) -> DhSecretKey {
        DhSecretKey::from_account_key(&self.account_key)
    }

    /// The identity of a device just linked: it holds the account key and
    /// its own device key, not the identity key.
    pub(crate) fn linked(
        device_key: SigningKey,
        account_key: SecretKey,
        record_key: RecordKey,
        signed: SignedIdentity,
    ) -> Self {
        Self {
            identity_key: None,
            identity_public: signed.record().identity_key,
            device_key,
            account_key,
            record_key: Some(record_key),
            signed,
        }
    }

    /// Adopts a newer verified record of this same identity (after a device
    /// link or a refresh from the DHT). Older or foreign records are refused.
    pub fn adopt_record(&mut self, signed: SignedIdentity) -> Result<(), crate::Error> {
        if signed.record().identity_key != self.identity_public {
            return Err(crate::VerifyError::WrongContext("identity record of another identity").into());
        }
        if signed.record().seq < self.signed.record().seq {
            return Err(crate::VerifyError::WrongContext("identity record older than ours").into());
        }
        // FRESH-1: a record published elsewhere is not ours to adopt.
        if let Some(key) = &self.record_key {
            signed.require_location(key)?;
        }
        self.signed = signed;
        Ok(())
    }

    /// Revokes one of this identity's devices (nothing it signs is accepted
    /// any more by peers that refresh the record). Needs the identity key;
    /// republish with [`crate::driver::publish_identity`].
    pub fn revoke_device(&mut self, device: &PublicKey, now_secs: u64) -> Result<(), crate::Error> {
        if self.signed.record().device_status(device).is_none() {
            return Err(crate::Error::ApiMisuse("no such device in the identity record"));
        }
        let device = *device;
        self.update_record(
            |r| {
                for d in &mut r.devices {
                    if d.device_key == device {
                        d.status = DeviceStatus::Revoked;
                    }
                }
            },
            now_secs,
        )
    }

    /// Signs an application message to the contact `to` with this device's
    /// key (domain-separated, bound to both identities). Peers check it with
    /// [`crate::contact::Contact::verify_message`].
    pub fn sign_message(&self, to: &PublicKey, payload: &[u8]) -> MessageSignature {
        let signature = sign(
            &self.device_key,
            SignedKind::ContactMessage,
            &[self.identity_public.as_bytes(), to.as_bytes()],
            payload,
        );
        MessageSignature { device: self.device_key.public(), signature }
    }

    /// Changes the identity record (profile, device statuses…) and re-signs
    /// it with a higher sequence number. Needs the identity key on this
    /// device; republish with [`crate::driver::publish_identity`].
    pub fn update_record(&mut self, f: impl FnOnce(&mut IdentityRecord), now_secs: u64) -> Result<(), crate::Error> {
        let key =
            self.identity_key.as_ref().ok_or(crate::Error::ApiMisuse("this device does not hold the identity key"))?;
        let mut record = self.signed.record().clone();
        f(&mut record);
        record.seq += 1;
        record.updated_at = now_secs;
        self.signed = record.sign(key)?;
        Ok(())
    }
}

/// An [`Identity`] held once for every flow that uses it.
///
/// A waiting invitation needs its sender's identity (to sign the final
/// status, check responses and derive the conversation key), but 100,000 of
/// them need not hold 100,000 copies, nor re-verify 100,000 copies of its
/// signed record when a driver restarts. Flows hold this shared handle; the
/// driver persists each distinct identity once, as a *snapshot* keyed by its
/// [`SharedIdentity::id`] (in [`crate::store::Table::IdentitySnapshots`]),
/// and a flow's own record carries only that id. On start the driver decodes
/// (and so verifies) every snapshot once, and flows are decoded against them
/// ([`Snapshots::decode_with`]).
///
/// Changing the identity ([`SharedIdentity::make_mut`], after a device link)
/// gives the flow its own copy with a new id: other flows keep the snapshot
/// they were started with, as they would with a copy of their own.
///
/// `Debug` shows what [`Identity`]'s does (public keys only) and the id.
#[derive(Clone)]
pub(crate) struct SharedIdentity(Arc<Snapshot>);

struct Snapshot {
    id: [u8; 32],
    identity: Identity,
}

/// Label of the snapshot id hash (BLAKE3 `derive_key` over the identity's
/// persisted encoding: equal ids mean equal identities, secrets included).
const SNAPSHOT_ID_LABEL: &str = "contact-invite v1 2026-11 identity snapshot id";

fn snapshot_id(identity: &Identity) -> Result<[u8; 32], crate::Error> {
    let bytes = zeroize::Zeroizing::new(crate::store::encode_record(identity)?);
    let mut h = blake3::Hasher::new_derive_key(SNAPSHOT_ID_LABEL);
    h.update(&bytes);
    Ok(*h.finalize().as_bytes())
}

impl SharedIdentity {
    /// Wraps an identity (computes its snapshot id).
    pub(crate) fn new(identity: Identity) -> Result<Self, crate::Error> {
        let id = snapshot_id(&identity)?;
        Ok(Self(Arc::new(Snapshot { id, identity })))
    }
    /// The snapshot id: a hash of the identity's whole persisted encoding.
    pub(crate) fn id(&self) -> &[u8; 32] {
        &self.0.id
    }
    /// Changes this flow's identity: copies it if other flows share it, then
    /// recomputes the id.
    pub(crate) fn make_mut<R>(
        &mut self,
        f: impl FnOnce(&mut Identity) -> Result<R, crate::Error>,
    ) -> Result<R, crate::Error> {
        let mut identity = self.0.identity.clone();
        let r = f(&mut identity)?;
        *self = Self::new(identity)?;
        Ok(r)
    }
    /// Whether two handles share one allocation.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    /// Whether this handle is the only one left.
    fn unshared(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl core::ops::Deref for SharedIdentity {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.0.identity
    }
}

impl fmt::Debug for SharedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedIdentity")
            .field(&data_encoding::HEXLOWER.encode(&self.0.id[..6]))
            .field(&self.0.identity)
            .finish()
    }
}

/// A flow record stores only the snapshot id.
impl Serialize for SharedIdentity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.id)
    }
}

/// What [`Snapshots::decode_with`] lends the decoder.
struct Decoding {
    map: HashMap<[u8; 32], SharedIdentity>,
    /// The last id that was not found (to name it in the error).
    missing: Option<[u8; 32]>,
}

std::thread_local! {
    /// The snapshots a flow record is decoded against, set only for the
    /// duration of [`Snapshots::decode_with`] on this thread.
    static DECODING: core::cell::RefCell<Option<Decoding>> = const { core::cell::RefCell::new(None) };
}

/// Inside [`Snapshots::decode_with`]: the snapshot id the last failed decode
/// did not find, if that is why it failed (postcard drops custom messages).
pub(crate) fn take_missing_snapshot() -> Option<[u8; 32]> {
    DECODING.with(|c| c.borrow_mut().as_mut().and_then(|d| d.missing.take()))
}

/// Resolves the id against the snapshots of [`Snapshots::decode_with`]; an
/// id it does not know (or decoding outside it) is an error, so such a flow
/// is reported as unreadable, never run with some other identity.
impl<'de> Deserialize<'de> for SharedIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = crate::crypto::serde_bytes_vec(d)?;
        let id: [u8; 32] = v.as_slice().try_into().map_err(|_| serde::de::Error::custom("bad identity snapshot id"))?;
        DECODING
            .with(|c| {
                let mut c = c.borrow_mut();
                let d = c.as_mut()?;
                let found = d.map.get(&id).cloned();
                if found.is_none() {
                    d.missing = Some(id);
                }
                found
            })
            .ok_or_else(|| serde::de::Error::custom("the identity snapshot this flow refers to is not in the store"))
    }
}

/// The identity snapshots a driver holds: one shared handle per distinct
/// identity, each persisted once. Flows are interned against it so that
/// equal identities share one allocation.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    map: HashMap<[u8; 32], SharedIdentity>,
}

impl Snapshots {
    /// Adds a snapshot read from the store.
    pub(crate) fn insert(&mut self, s: SharedIdentity) {
        self.map.insert(*s.id(), s);
    }
    /// Makes `s` share the held snapshot with its id. Returns `true` if the
    /// snapshot is new (it must then be persisted before the flow is).
    pub(crate) fn intern(&mut self, s: &mut SharedIdentity) -> bool {
        match self.map.get(s.id()) {
            Some(held) => {
                if !held.same(s) {
                    *s = held.clone();
                }
                false
            }
            None => {
                self.map.insert(*s.id(), s.clone());
                true
            }
        }
    }
    /// Forgets a snapshot (it was not persisted after all).
    pub(crate) fn remove(&mut self, id: &[u8; 32]) {
        self.map.remove(id);
    }
    /// Takes the snapshots no flow refers to any more.
    pub(crate) fn take_unreferenced(&mut self) -> Vec<[u8; 32]> {
        let ids: Vec<[u8; 32]> = self.map.iter().filter(|(_, s)| s.unshared()).map(|(id, _)| *id).collect();
        for id in &ids {
            self.map.remove(id);
        }
        ids
    }
    /// Runs `f` (which decodes flow records) with these snapshots available
    /// to [`SharedIdentity`]'s `Deserialize`, on this thread only.
    pub(crate) fn decode_with<T>(&mut self, f: impl FnOnce() -> T) -> T {
        struct Restore<'a>(&'a mut HashMap<[u8; 32], SharedIdentity>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                if let Some(d) = DECODING.with(|c| c.borrow_mut().take()) {
                    *self.0 = d.map;
                }
            }
        }
        let map = core::mem::take(&mut self.map);
        DECODING.with(|c| *c.borrow_mut() = Some(Decoding { map, missing: None }));
        let _restore = Restore(&mut self.map);
        f()
    }
}
