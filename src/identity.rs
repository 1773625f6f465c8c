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
///
/// It holds secrets, so it implements neither `Serialize` nor `Deserialize`
/// (SER-1): only this crate persists it, through a store
/// ([`crate::driver::save_identity`], [`crate::driver::identities`]) or
/// inside a flow's state. To show it, log it or hand it to a UI, use
/// [`Identity::view`].
///
/// Loading one from a store checks it again
/// (STORE-2): its keys must be those of its signed record (identity key,
/// this device listed in it, the account secret deriving its DH key) and its
/// location the one the record names; anything else is refused.
#[derive(Clone)]
pub struct Identity {
    identity_key: Option<SigningKey>,
    identity_public: PublicKey,
    device_key: SigningKey,
    account_key: SecretKey,
    record_key: Option<RecordKey>,
    signed: SignedIdentity,
}

/// An identity as written to storage (the same fields, in the same order,
/// as [`StoredIdentity`]: the store's encoding).
#[derive(Serialize)]
struct StoredIdentityRef<'a> {
    identity_key: &'a Option<SigningKey>,
    identity_public: &'a PublicKey,
    device_key: &'a SigningKey,
    account_key: &'a SecretKey,
    record_key: &'a Option<RecordKey>,
    signed: &'a SignedIdentity,
}

/// An identity as read from storage, before [`Identity`]'s checks.
#[derive(Deserialize)]
pub(crate) struct StoredIdentity {
    identity_key: Option<SigningKey>,
    identity_public: PublicKey,
    device_key: SigningKey,
    account_key: SecretKey,
    record_key: Option<RecordKey>,
    signed: SignedIdentity,
}

impl TryFrom<StoredIdentity> for Identity {
    type Error = crate::VerifyError;
    fn try_from(s: StoredIdentity) -> Result<Self, Self::Error> {
        use crate::VerifyError::WrongContext;
        let r = s.signed.record();
        if r.identity_key != s.identity_public {
            return Err(WrongContext("stored identity's record belongs to another identity"));
        }
        if s.identity_key.as_ref().is_some_and(|k| k.public() != s.identity_public) {
            return Err(WrongContext("stored identity key does not match its public key"));
        }
        if r.device_status(&s.device_key.public()).is_none() {
            return Err(WrongContext("stored identity's device is not in its record"));
        }
        if DhSecretKey::from_account_key(&s.account_key).public() != r.dh_key {
            return Err(WrongContext("stored account secret does not derive the record's DH key"));
        }
        if let (Some(k), Some(l)) = (&s.record_key, r.location.as_ref())
            && k != l
        {
            return Err(WrongContext("stored identity's location is not the one its record names"));
        }
        Ok(Self {
            identity_key: s.identity_key,
            identity_public: s.identity_public,
            device_key: s.device_key,
            account_key: s.account_key,
            record_key: s.record_key,
            signed: s.signed,
        })
    }
}

impl persist::Persist for Identity {
    fn persist<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredIdentityRef {
            identity_key: &self.identity_key,
            identity_public: &self.identity_public,
            device_key: &self.device_key,
            account_key: &self.account_key,
            record_key: &self.record_key,
            signed: &self.signed,
        }
        .serialize(s)
    }
    fn restore<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(StoredIdentity::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Persistence of the types that hold secrets ([`Identity`],
/// [`crate::contact::Contact`]), reachable only inside this crate (SER-1).
///
/// Those types implement neither `Serialize` nor `Deserialize`, so an app
/// cannot serialize one by accident (to show it, log it or send it to its
/// UI: their views are for that). The store encodes them through
/// [`Stored`]; flow states that hold one mark the field
/// `#[serde(with = "crate::identity::persist")]`. The encoding is what
/// `#[derive(Serialize)]` on their stored fields gives (unchanged from when
/// they derived it), and loading runs their checks (STORE-1, STORE-2).
pub(crate) mod persist {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// A type holding secrets that this crate persists.
    pub(crate) trait Persist: Sized {
        /// Writes its stored form.
        fn persist<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
        /// Reads its stored form, checking it.
        fn restore<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    }

    /// `Stored(&value)` serializes a [`Persist`] value; `Stored<T>`
    /// deserializes one.
    pub(crate) struct Stored<T>(pub(crate) T);

    impl<T: Persist> Serialize for Stored<&T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.persist(s)
        }
    }

    impl<'de, T: Persist> Deserialize<'de> for Stored<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            T::restore(d).map(Stored)
        }
    }

    /// Encoded like `T` (as serde encodes a `Box`).
    impl<T: Persist> Persist for Box<T> {
        fn persist<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            (**self).persist(s)
        }
        fn restore<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            T::restore(d).map(Box::new)
        }
    }

    /// Encoded as serde encodes an `Option`.
    impl<T: Persist> Persist for Option<T> {
        fn persist<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Some(v) => s.serialize_some(&Stored(v)),
                None => s.serialize_none(),
            }
        }
        fn restore<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Option::<Stored<T>>::deserialize(d)?.map(|v| v.0))
        }
    }

    /// For `#[serde(with = "crate::identity::persist")]`.
    pub(crate) fn serialize<T: Persist, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        v.persist(s)
    }

    /// For `#[serde(with = "crate::identity::persist")]`.
    pub(crate) fn deserialize<'de, T: Persist, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::restore(d)
    }

    /// Encodes a value as a store record (`crate::record::encode_record`).
    pub(crate) fn encode<T: Persist>(v: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
        crate::record::encode_record(&Stored(v))
    }

    /// Decodes (and checks) a store record written by [`encode`].
    pub(crate) fn decode<T: Persist>(b: &[u8], what: &str) -> Result<T, crate::Error> {
        crate::record::decode_record::<Stored<T>>(b, what).map(|v| v.0)
    }

    /// A record's opaque key (not secret) as it appears in the public
    /// views: lowercase hex in human-readable formats, 32 bytes in others.
    pub(crate) mod opaque {
        use serde::{Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
            struct Hex<'a>(&'a [u8; 32]);
            impl core::fmt::Display for Hex<'_> {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    crate::crypto::write_hex(f, self.0)
                }
            }
            crate::crypto::serialize_id(&Hex(v), "RecordKey", v, s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
            crate::crypto::deserialize_id("RecordKey", "record key", d)
        }

        /// The same for an optional key.
        pub(crate) mod option {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            #[derive(Serialize, Deserialize)]
            #[serde(transparent)]
            struct Opaque(#[serde(with = "super")] [u8; 32]);

            pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
                v.map(Opaque).serialize(s)
            }

            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
                Ok(Option::<Opaque>::deserialize(d)?.map(|o| o.0))
            }
        }
    }
}

/// What an app may show, log or send to its UI about an [`Identity`]:
/// public keys and the public data of its signed record, no secret. It
/// serializes (serde) to a stable form; keys as lowercase hex strings in
/// human-readable formats such as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    /// The identity (account) key.
    pub identity: PublicKey,
    /// This device's key.
    pub device: PublicKey,
    /// Whether this device holds the identity key (it can change the record,
    /// link and revoke devices).
    pub holds_identity_key: bool,
    /// The opaque key of the identity record's location, once published
    /// (never its encryption secret).
    #[serde(with = "persist::opaque::option")]
    pub record: Option<[u8; 32]>,
    /// The profile in the identity record.
    pub profile: Option<Profile>,
    /// The signed record's sequence number.
    pub seq: u64,
    /// The devices the signed record lists.
    pub devices: Vec<DeviceEntry>,
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
            rotation: None,
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

    /// Its public view: what an app may show, log or serialize.
    pub fn view(&self) -> IdentityView {
        let r = self.signed.record();
        IdentityView {
            identity: self.identity_public,
            device: self.device_key.public(),
            holds_identity_key: self.identity_key.is_some(),
            record: self.record_key.as_ref().map(|k| *k.opaque()),
            profile: r.profile.clone(),
            seq: r.seq,
            devices: r.devices.clone(),
        }
    }
    /// Encodes it as a store record (crate-private: see [`persist`]).
    pub(crate) fn to_store_record(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
        persist::encode(self)
    }
    /// Decodes and checks (STORE-2) a store record of an identity.
    pub(crate) fn from_store_record(b: &[u8], what: &str) -> Result<Self, crate::Error> {
        persist::decode(b, what)
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
    /// The DH public key the account secret this device holds derives. It
    /// equals the record's `dh_key` on a device that holds the current
    /// secret (after a rotation: once it adopted the rotated record).
    pub fn dh_public(&self) -> crate::crypto::DhPublicKey {
        self.dh_secret().public()
    }
    /// This device's own DH secret (a rotated account secret is sealed to it).
    fn device_dh_secret(&self) -> DhSecretKey {
        DhSecretKey::from_device_key(&self.device_key)
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
    /// link or a refresh from the DHT; [`crate::driver::refresh_identity`]
    /// reads and adopts in one call). Older or foreign records are refused.
    ///
    /// If the record rotated the account secret (REV-4), this device opens
    /// the copy sealed to its own DH key and takes the new secret; the record
    /// is adopted only with a secret that derives its `dh_key`. A record
    /// that revokes this device, or rotated without a copy this device can
    /// open, is refused (typed error) and nothing changes.
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
        match signed.record().device_status(&self.device_public()) {
            Some(DeviceStatus::Revoked) => {
                return Err(crate::VerifyError::UntrustedDevice("this device is revoked in the identity record").into());
            }
            None => {
                return Err(
                    crate::VerifyError::UntrustedDevice("this device is not listed in the identity record").into()
                );
            }
            Some(_) => {}
        }
        if signed.record().dh_key != self.dh_public() {
            let rotation = signed.record().rotation.as_ref().ok_or(crate::VerifyError::AccountKeyMismatch)?;
            self.account_key = rotation.open(signed.record(), &self.device_public(), &self.device_dh_secret())?;
        }
        self.signed = signed;
        Ok(())
    }

    /// Revokes one of this identity's devices and rotates the account secret
    /// (REV-1): the revoked device keeps the old secret, so the record's DH
    /// key must move away from it. Nothing it signs is accepted any more by
    /// peers that refresh the record, and nothing sealed to the new DH key
    /// opens with what it holds. Needs the identity key (this device cannot
    /// revoke itself); republish with [`crate::driver::publish_identity`].
    /// The other current devices pick the new secret up from the record
    /// ([`Self::adopt_record`], [`crate::driver::refresh_identity`]).
    ///
    /// What stays exposed to the revoked device: everything derived from the
    /// old secret before this (conversation keys of existing contacts,
    /// requests sealed to the old DH key); see docs/threat-model.md.
    pub fn revoke_device(
        &mut self,
        device: &PublicKey,
        now_secs: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), crate::Error> {
        if self.signed.record().device_status(device).is_none() {
            return Err(crate::Error::ApiMisuse("no such device in the identity record"));
        }
        if device == &self.device_public() {
            return Err(crate::Error::ApiMisuse("the device holding the identity key cannot revoke itself"));
        }
        let device = *device;
        self.rotate(
            |r| {
                for d in &mut r.devices {
                    if d.device_key == device {
                        d.status = DeviceStatus::Revoked;
                    }
                }
            },
            now_secs,
            rng,
        )
    }

    /// Rotates the account secret without revoking anything (for instance
    /// when a device may have leaked it): a new secret and DH key, sealed to
    /// every current device, in a re-signed record. Needs the identity key;
    /// republish with [`crate::driver::publish_identity`].
    pub fn rotate_account_key(&mut self, now_secs: u64, rng: &mut impl CryptoRngCore) -> Result<(), crate::Error> {
        self.rotate(|_| {}, now_secs, rng)
    }

    pub(crate) fn rotate(
        &mut self,
        f: impl FnOnce(&mut IdentityRecord),
        now_secs: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), crate::Error> {
        let key =
            self.identity_key.as_ref().ok_or(crate::Error::ApiMisuse("this device does not hold the identity key"))?;
        let mut record = self.signed.record().clone();
        f(&mut record);
        let account_key = SecretKey::generate(rng);
        record.dh_key = DhSecretKey::from_account_key(&account_key).public();
        record.rotation = Some(crate::message::AccountKeyRotation::seal(
            &self.identity_public,
            &record.devices,
            &account_key,
            &record.dh_key,
            rng,
        )?);
        record.seq += 1;
        record.updated_at = now_secs;
        self.signed = record.sign(key)?;
        self.account_key = account_key;
        Ok(())
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

    /// Changes the identity record (profile, deprecating a device…) and
    /// re-signs it with a higher sequence number. Needs the identity key on
    /// this device; republish with [`crate::driver::publish_identity`].
    ///
    /// It cannot revoke a device (that is [`Self::revoke_device`], which
    /// rotates the account secret), change the identity key, the DH key, the
    /// rotation or a listed device's DH key: such a change is refused
    /// (`ApiMisuse`) and nothing changes.
    pub fn update_record(&mut self, f: impl FnOnce(&mut IdentityRecord), now_secs: u64) -> Result<(), crate::Error> {
        let key =
            self.identity_key.as_ref().ok_or(crate::Error::ApiMisuse("this device does not hold the identity key"))?;
        let old = self.signed.record();
        let mut record = old.clone();
        f(&mut record);
        if record.identity_key != old.identity_key || record.dh_key != old.dh_key || record.rotation != old.rotation {
            return Err(crate::Error::ApiMisuse("the identity key, DH key and rotation change only by rotation"));
        }
        for d in &record.devices {
            match old.devices.iter().find(|o| o.device_key == d.device_key) {
                Some(o) if o.dh_key != d.dh_key => {
                    return Err(crate::Error::ApiMisuse("a listed device's DH key cannot change"));
                }
                Some(o) if d.status == DeviceStatus::Revoked && o.status != DeviceStatus::Revoked => {
                    return Err(crate::Error::ApiMisuse(
                        "revoke devices with revoke_device (it rotates the account secret)",
                    ));
                }
                None if d.status == DeviceStatus::Revoked => {
                    return Err(crate::Error::ApiMisuse(
                        "revoke devices with revoke_device (it rotates the account secret)",
                    ));
                }
                _ => {}
            }
        }
        if old.devices.iter().any(|o| !record.devices.iter().any(|d| d.device_key == o.device_key)) {
            return Err(crate::Error::ApiMisuse("a device cannot be removed from the record; revoke it"));
        }
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
    let bytes = identity.to_store_record()?;
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

#[cfg(test)]
mod rotation_tests {
    use rand_core::OsRng;

    use super::*;
    use crate::error::{Error, VerifyError};

    const NOW: u64 = 1_795_305_600;

    /// An identity with `n` more devices linked by hand; returns the
    /// identity-key device and the linked devices' identities.
    fn account(n: usize, label: &str) -> (Identity, Vec<Identity>) {
        let mut phone = Identity::generate(Profile::new("alice").unwrap(), label, NOW, &mut OsRng).unwrap();
        phone.bind_location(RecordKey::new([9; 32], None)).unwrap();
        let keys: Vec<SigningKey> = (0..n).map(|_| SigningKey::generate(&mut OsRng)).collect();
        let id = phone.public_key();
        phone
            .update_record(|r| r.devices.extend(keys.iter().map(|k| DeviceEntry::new(&id, k, NOW, label))), NOW)
            .unwrap();
        let linked = keys
            .into_iter()
            .map(|k| {
                Identity::linked(k, phone.account_key().clone(), RecordKey::new([9; 32], None), phone.signed().clone())
            })
            .collect();
        (phone, linked)
    }

    /// STORE-2 (review of issue 13): an identity read back from a store is
    /// checked again; one whose keys do not match its signed record is
    /// refused, never trusted as loaded.
    #[test]
    fn store_2_a_tampered_stored_identity_is_refused() {
        let (phone, linked) = account(1, "device");
        let other = Identity::generate(Profile::new("mallory").unwrap(), "m", NOW, &mut OsRng).unwrap();
        for ok in [&phone, &linked[0]] {
            let back = Identity::from_store_record(&ok.to_store_record().unwrap(), "identity").unwrap();
            assert_eq!(back.device_public(), ok.device_public());
        }
        let mut tampered = Vec::new();
        let mut t = phone.clone();
        t.account_key = SecretKey::generate(&mut OsRng);
        tampered.push(("account secret not deriving the DH key", t));
        let mut t = phone.clone();
        t.device_key = SigningKey::generate(&mut OsRng);
        tampered.push(("device not in the record", t));
        let mut t = phone.clone();
        t.signed = other.signed().clone();
        tampered.push(("record of another identity", t));
        let mut t = phone.clone();
        t.identity_key = Some(SigningKey::generate(&mut OsRng));
        tampered.push(("identity key not matching", t));
        let mut t = phone.clone();
        t.record_key = Some(RecordKey::new([8; 32], None));
        tampered.push(("location not the record's", t));
        for (what, t) in tampered {
            let r = Identity::from_store_record(&t.to_store_record().unwrap(), "identity");
            assert!(r.is_err(), "{what}: loaded as if genuine");
        }
    }

    #[test]
    fn rotation_reaches_every_current_device_and_no_other() {
        let (mut phone, devs) = account(3, "device");
        let (laptop, tablet, watch) = (devs[0].clone(), devs[1].clone(), devs[2].clone());
        let w = watch.device_public();
        phone
            .update_record(
                |r| {
                    r.devices.iter_mut().filter(|d| d.device_key == w).for_each(|d| d.status = DeviceStatus::Deprecated)
                },
                NOW,
            )
            .unwrap();
        let old_dh = phone.dh_public();
        phone.revoke_device(&laptop.device_public(), NOW + 1, &mut OsRng).unwrap();
        let rec = phone.signed().clone();
        assert_ne!(rec.record().dh_key, old_dh);
        assert_eq!(phone.dh_public(), rec.record().dh_key);
        // Copies for the current devices only (phone, tablet).
        let rot = rec.record().rotation.as_ref().unwrap();
        assert_eq!(rot.copies.len(), 2);
        for d in [&phone, &tablet] {
            assert_eq!(rot.open(rec.record(), &d.device_public(), &d.device_dh_secret()).unwrap(), phone.account_key);
        }
        // The tablet follows; the laptop (revoked) and watch (deprecated) cannot, and keep what they had.
        let mut t = tablet.clone();
        t.adopt_record(rec.clone()).unwrap();
        assert_eq!(t.dh_public(), rec.record().dh_key);
        let mut l = laptop.clone();
        assert!(matches!(l.adopt_record(rec.clone()), Err(Error::Verify(VerifyError::UntrustedDevice(_)))));
        assert_eq!((l.dh_public(), l.signed()), (old_dh, laptop.signed()));
        let mut wt = watch.clone();
        assert_eq!(wt.adopt_record(rec.clone()).unwrap_err(), Error::Verify(VerifyError::AccountKeyMismatch));
        assert_eq!(wt.signed().record().seq, watch.signed().record().seq);
        // A device that missed a rotation catches up from the newest record,
        // also after later updates that carry the rotation along.
        phone.rotate_account_key(NOW + 2, &mut OsRng).unwrap();
        phone.update_record(|r| r.profile = Some(Profile::new("Alice").unwrap()), NOW + 3).unwrap();
        let mut stale = tablet.clone();
        stale.adopt_record(phone.signed().clone()).unwrap();
        assert_eq!(stale.dh_public(), phone.dh_public());
        // The identity-key device cannot revoke itself.
        let me = phone.device_public();
        assert!(matches!(phone.revoke_device(&me, NOW + 4, &mut OsRng), Err(Error::ApiMisuse(_))));
    }

    #[test]
    fn forged_or_tampered_copies_are_refused_and_nothing_changes() {
        let (mut phone, devs) = account(2, "device");
        phone.revoke_device(&devs[0].device_public(), NOW + 1, &mut OsRng).unwrap();
        let ik = phone.identity_signing_key().unwrap().clone();
        let tablet = devs[1].clone();
        // A bit flipped in the tablet's copy (record re-signed by the identity key).
        let mut rec = phone.signed().record().clone();
        for c in &mut rec.rotation.as_mut().unwrap().copies {
            c[30] ^= 1;
        }
        let mut t = tablet.clone();
        assert_eq!(t.adopt_record(rec.sign(&ik).unwrap()).unwrap_err(), Error::Verify(VerifyError::AccountKeyMismatch));
        // A copy that opens but holds a secret other than the one behind dh_key.
        let mut rec = phone.signed().record().clone();
        let wrong = SecretKey::generate(&mut OsRng);
        rec.rotation = Some(
            crate::message::AccountKeyRotation::seal(
                &phone.public_key(),
                &rec.devices,
                &wrong,
                &rec.dh_key,
                &mut OsRng,
            )
            .unwrap(),
        );
        assert_eq!(t.adopt_record(rec.sign(&ik).unwrap()).unwrap_err(), Error::Verify(VerifyError::AccountKeyMismatch));
        // A new DH key with no rotation at all.
        let mut rec = phone.signed().record().clone();
        rec.rotation = None;
        assert_eq!(t.adopt_record(rec.sign(&ik).unwrap()).unwrap_err(), Error::Verify(VerifyError::AccountKeyMismatch));
        assert_eq!(t.signed(), tablet.signed());
        assert_eq!(t.dh_public(), tablet.dh_public());
        // The genuine record is taken.
        t.adopt_record(phone.signed().clone()).unwrap();
        assert_eq!(t.dh_public(), phone.dh_public());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The class, not the instance: after any sequence of revocations,
        /// rotations, plain updates and refreshes, every current device that
        /// adopts the newest record holds the secret behind its DH key, and
        /// no revoked device holds it or can adopt the record.
        #[test]
        fn secrets_stay_with_current_devices(ops in proptest::collection::vec((0u8..4, 0usize..6), 1..14)) {
            let (mut phone, mut current) = account(5, "d");
            let mut revoked: Vec<Identity> = Vec::new();
            for (i, (op, pick)) in ops.into_iter().enumerate() {
                let now = NOW + 1 + i as u64;
                match op {
                    0 if !current.is_empty() => {
                        let d = current.remove(pick % current.len());
                        phone.revoke_device(&d.device_public(), now, &mut OsRng).unwrap();
                        revoked.push(d);
                    }
                    1 => phone.rotate_account_key(now, &mut OsRng).unwrap(),
                    2 => phone.update_record(|r| r.updated_at = now, now).unwrap(),
                    _ if !current.is_empty() => {
                        let n = current.len();
                        current[pick % n].adopt_record(phone.signed().clone()).unwrap();
                    }
                    _ => {}
                }
            }
            let rec = phone.signed().clone();
            proptest::prop_assert_eq!(phone.dh_public(), rec.record().dh_key);
            for d in &mut current {
                d.adopt_record(rec.clone()).unwrap();
                proptest::prop_assert_eq!(d.dh_public(), rec.record().dh_key);
            }
            for d in &mut revoked {
                proptest::prop_assert!(d.dh_public() != rec.record().dh_key);
                proptest::prop_assert!(d.adopt_record(rec.clone()).is_err());
                proptest::prop_assert!(d.dh_public() != rec.record().dh_key);
            }
        }
    }

    #[test]
    fn revocation_fits_the_record_cap_for_the_devices_allowed() {
        // Labels of 16 bytes ("Alice's laptop 2") and a short profile: every
        // device allowed can be listed and one revoked.
        let (mut phone, devs) = account(crate::limits::MAX_DEVICES - 1, "Alice's laptop 2");
        for d in &devs[..crate::limits::MAX_DEVICES - 2] {
            phone.revoke_device(&d.device_public(), NOW + 1, &mut OsRng).unwrap();
        }
        // REV-6: a record with no room left for a rotation over its current
        // devices is refused when signed, so revoking never runs out of room.
        // (12 devices with the longest labels: a long profile would fit the
        // cap, but not with the rotation's room.)
        let (mut full, _) = account(11, &"x".repeat(crate::limits::MAX_DEVICE_LABEL));
        let e = full
            .update_record(
                |r| r.profile = Some(Profile::new("alice").unwrap().with_about("a".repeat(1000)).unwrap()),
                NOW,
            )
            .unwrap_err();
        assert!(matches!(e, Error::Decode(crate::error::DecodeError::TooLarge { .. })), "{e:?}");
    }
}
