//! The local side of an identity: its secrets on this device and its public
//! identity record.

use core::fmt;

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
