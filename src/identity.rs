//! The local side of an identity: its secrets on this device and its public
//! identity record.

use core::fmt;

use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::{DhSecretKey, PublicKey, SecretKey, SigningKey};
use crate::dht::{RecordKey, Schema};
use crate::message::{DeviceEntry, IdentityRecord, Profile, SignedIdentity};

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
            request_pow_bits: 0,
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
    pub(crate) fn dh_secret(&self) -> DhSecretKey {
        DhSecretKey::from_account_key(&self.account_key)
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
