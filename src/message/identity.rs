//! SuperIdentity-style identity records: a long-term identity key publishes a
//! signed record listing its devices (each with its own consent signature),
//! its X25519 key and its profile. Verification checks every signature and the
//! chain from each device back to the identity key.

use serde::{Deserialize, Serialize};

use super::profile::Profile;
use crate::crypto::sign::{SignedKind, sign, verify};
use crate::crypto::{DhPublicKey, DhSecretKey, PublicKey, Signature, SigningKey};
use crate::dht::RecordKey;
use crate::error::{DecodeError, VerifyError};
use crate::limits;
use crate::wire::{self, pb};

/// Status of a device in an identity record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceStatus {
    /// May sign on behalf of the identity.
    Current,
    /// Being phased out: old signatures stay valid, new messages are refused.
    Deprecated,
    /// Compromised or removed: nothing it signed is accepted any more.
    Revoked,
}

/// One device of an identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// The device's signing key.
    pub device_key: PublicKey,
    /// Its status.
    pub status: DeviceStatus,
    /// When it was added (unix seconds).
    pub added_at: u64,
    /// A human label ("Alice's phone").
    pub label: String,
    /// The device's own X25519 key ([`DhSecretKey::from_device_key`]): a
    /// rotated account secret is sealed to it.
    pub dh_key: DhPublicKey,
    consent: Signature,
}

impl DeviceEntry {
    /// A device entry with the device's consent to join `identity`.
    pub(crate) fn new(identity: &PublicKey, device: &SigningKey, added_at: u64, label: &str) -> Self {
        Self {
            device_key: device.public(),
            status: DeviceStatus::Current,
            added_at,
            label: label.to_owned(),
            dh_key: DhSecretKey::from_device_key(device).public(),
            consent: device_consent(identity, device),
        }
    }

    /// A device entry from a new device's public key, its consent and its DH
    /// key (device links: the old device adds the new one, both keys from
    /// the new device's signed response). The consent is checked.
    pub(crate) fn from_consent(
        identity: &PublicKey,
        device: PublicKey,
        consent: Signature,
        dh_key: DhPublicKey,
        added_at: u64,
        label: &str,
    ) -> Result<Self, VerifyError> {
        if !verify_device_consent(identity, &device, &consent) {
            return Err(VerifyError::BadSignature);
        }
        let mut label = label.to_owned();
        while label.len() > limits::MAX_DEVICE_LABEL {
            label.pop();
        }
        Ok(Self { device_key: device, status: DeviceStatus::Current, added_at, label, dh_key, consent })
    }
}

/// A published request inbox: where anyone who knows the identity may leave
/// a contact request (see [`crate::machine::RequestInbox`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInboxInfo {
    /// The inbox record.
    pub record: RecordKey,
    /// Its public writer key pair. Public on purpose: every requester writes
    /// with it, so anyone can also overwrite a slot (the documented limit).
    pub writer: SigningKey,
    /// Number of request slots (member subkeys 1..=slots).
    pub slots: u32,
    /// Proof-of-work difficulty a request must carry.
    pub pow_bits: u32,
}

/// The new device's consent to be added to `identity` (PZP's
/// `sign(":account-add:ACCOUNT_ID", new privkey)`, domain-separated).
pub(crate) fn device_consent(identity: &PublicKey, device: &SigningKey) -> Signature {
    sign(device, SignedKind::DeviceConsent, &[identity.as_bytes()], identity.as_bytes())
}

/// Checks a device's consent signature.
pub(crate) fn verify_device_consent(identity: &PublicKey, device: &PublicKey, consent: &Signature) -> bool {
    verify(device, SignedKind::DeviceConsent, &[identity.as_bytes()], identity.as_bytes(), consent)
}

/// The content of an identity record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The long-term identity key (the account id).
    pub identity_key: PublicKey,
    /// Increases with every update; a lower one than already seen is stale.
    pub seq: u64,
    /// The identity's X25519 key for conversation keys.
    pub dh_key: DhPublicKey,
    /// Devices, current and past.
    pub devices: Vec<DeviceEntry>,
    /// Public profile.
    pub profile: Option<Profile>,
    /// Last update (unix seconds).
    pub updated_at: u64,
    /// A published request inbox, if the identity accepts requests to a known address.
    pub request_inbox: Option<RequestInboxInfo>,
    /// Where this record is published (its DHT record key), signed with the
    /// rest: a record is only ever taken as news of this identity from the
    /// location it names (FRESH-1). `None` only before the first publish
    /// ([`crate::driver::publish_identity`] sets it).
    pub location: Option<RecordKey>,
    /// The last rotation of the account secret behind `dh_key`: the new
    /// secret sealed to each device that was current then (see
    /// [`crate::identity::Identity::revoke_device`]). Carried unchanged by
    /// later updates until the next rotation.
    pub rotation: Option<AccountKeyRotation>,
}

/// A rotation of an identity's account secret, as its record carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountKeyRotation {
    /// The X25519 public key every copy was sealed with.
    pub ephemeral: DhPublicKey,
    /// One sealed copy of the new secret per device current at the
    /// rotation (`XChaCha20-Poly1305(account secret)`, 48 bytes; each device
    /// finds its own by trying its key).
    pub copies: Vec<Vec<u8>>,
}

/// Length of one sealed copy: 32-byte secret and tag (the nonce is zero:
/// every copy key seals once).
const SEALED_COPY_LEN: usize = crate::crypto::aead::TAG_LEN + crate::crypto::KEY_LEN;

/// Encoded bytes a rotation over `devices` current devices takes in the
/// record: the ephemeral key field (field 20: 2-byte tag, length, key), then
/// one copy each (field 21: 2-byte tag, length, copy).
fn rotation_len(devices: usize) -> usize {
    (2 + 1 + 32) + devices * (2 + 1 + SEALED_COPY_LEN)
}

fn copy_key(
    own: &DhSecretKey,
    peer: &DhPublicKey,
    ephemeral: &DhPublicKey,
    recipient: &DhPublicKey,
    identity: &PublicKey,
    device: &PublicKey,
    new_dh: &DhPublicKey,
) -> Result<crate::crypto::SecretKey, VerifyError> {
    crate::crypto::seal_key(
        own,
        peer,
        ephemeral,
        recipient,
        crate::crypto::kdf::KeyPurpose::AccountKeyCopy,
        &[identity.as_bytes(), device.as_bytes(), new_dh.as_bytes()],
    )
}

impl AccountKeyRotation {
    /// Seals `account_key` (whose DH key is `new_dh`) to every current
    /// device of `devices`.
    pub(crate) fn seal(
        identity: &PublicKey,
        devices: &[DeviceEntry],
        account_key: &crate::crypto::SecretKey,
        new_dh: &DhPublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<Self, VerifyError> {
        let eph = DhSecretKey::generate(rng);
        let ephemeral = eph.public();
        let mut copies = Vec::new();
        for d in devices.iter().filter(|d| d.status == DeviceStatus::Current) {
            let key = copy_key(&eph, &d.dh_key, &ephemeral, &d.dh_key, identity, &d.device_key, new_dh)?;
            copies.push(crate::crypto::aead::seal_once(
                &key,
                crate::crypto::aead::SealedKind::AccountKeyCopy,
                identity.as_bytes(),
                account_key.expose(),
            ));
        }
        Ok(Self { ephemeral, copies })
    }

    /// Opens the copy sealed to `device` with its DH secret `own`, and
    /// checks that the secret derives `record.dh_key`.
    pub(crate) fn open(
        &self,
        record: &IdentityRecord,
        device: &PublicKey,
        own: &DhSecretKey,
    ) -> Result<crate::crypto::SecretKey, VerifyError> {
        let own_pub = own.public();
        let key =
            copy_key(own, &self.ephemeral, &self.ephemeral, &own_pub, &record.identity_key, device, &record.dh_key)?;
        let plain = self
            .copies
            .iter()
            .find_map(|c| {
                crate::crypto::aead::open_once(
                    &key,
                    crate::crypto::aead::SealedKind::AccountKeyCopy,
                    record.identity_key.as_bytes(),
                    c,
                )
                .ok()
            })
            .ok_or(VerifyError::AccountKeyMismatch)?;
        let secret = crate::crypto::SecretKey::from_slice(&plain).map_err(|_| VerifyError::AccountKeyMismatch)?;
        if DhSecretKey::from_account_key(&secret).public() != record.dh_key {
            return Err(VerifyError::AccountKeyMismatch);
        }
        Ok(secret)
    }
}

impl IdentityRecord {
    /// Status of a device, if listed.
    pub fn device_status(&self, device: &PublicKey) -> Option<DeviceStatus> {
        self.devices.iter().find(|d| &d.device_key == device).map(|d| d.status)
    }

    /// Signs the record with the identity key.
    pub(crate) fn sign(&self, identity: &SigningKey) -> Result<SignedIdentity, DecodeError> {
        if identity.public() != self.identity_key {
            return Err(DecodeError::Invalid("identity record signed by a key other than its identity key"));
        }
        let payload = wire::encode(&pb::IdentityRecord::from(self));
        let sig = sign(
            identity,
            SignedKind::IdentityRecord,
            &[self.identity_key.as_bytes(), &self.seq.to_be_bytes()],
            &payload,
        );
        let bytes =
            wire::encode(&pb::SignedIdentityRecord { identity_record: payload, signature: sig.as_bytes().to_vec() });
        // REV-6: room is kept for a rotation over every current device, so a
        // revocation (which only shrinks that set) always fits.
        let current = self.devices.iter().filter(|d| d.status == DeviceStatus::Current).count();
        let held = self.rotation.as_ref().map_or(0, |r| rotation_len(r.copies.len()));
        let reserve = rotation_len(current).saturating_sub(held);
        if bytes.len() + reserve > limits::MAX_SIGNED_IDENTITY {
            return Err(DecodeError::TooLarge {
                what: "signed identity record (with room for a key rotation)",
                max: limits::MAX_SIGNED_IDENTITY,
                got: bytes.len() + reserve,
            });
        }
        Ok(SignedIdentity { bytes, record: self.clone() })
    }
}

fn device_status_from(v: i32) -> Result<DeviceStatus, DecodeError> {
    match pb::DeviceStatus::try_from(v) {
        Ok(pb::DeviceStatus::Current) => Ok(DeviceStatus::Current),
        Ok(pb::DeviceStatus::Deprecated) => Ok(DeviceStatus::Deprecated),
        Ok(pb::DeviceStatus::Revoked) => Ok(DeviceStatus::Revoked),
        _ => Err(DecodeError::UnknownEnumValue { what: "device status", value: v }),
    }
}

pub(crate) fn record_key_from(r: Option<pb::RecordKey>, what: &'static str) -> Result<RecordKey, DecodeError> {
    let r = r.ok_or(DecodeError::MissingField { what, field: "record key" })?;
    let opaque = wire::bytes32(&r.opaque, "record key")?;
    let secret = if r.secret.is_empty() { None } else { Some(crate::crypto::SecretKey::from_slice(&r.secret)?) };
    Ok(RecordKey::new(opaque, secret))
}

pub(crate) fn record_key_to(k: &RecordKey) -> pb::RecordKey {
    pb::RecordKey { opaque: k.opaque().to_vec(), secret: k.secret().map(|s| s.expose().to_vec()).unwrap_or_default() }
}

impl TryFrom<pb::IdentityRecord> for IdentityRecord {
    type Error = DecodeError;
    fn try_from(r: pb::IdentityRecord) -> Result<Self, DecodeError> {
        if r.devices.len() > limits::MAX_DEVICES {
            return Err(DecodeError::TooManyEntries {
                what: "devices",
                max: limits::MAX_DEVICES,
                got: r.devices.len(),
            });
        }
        let mut devices = Vec::with_capacity(r.devices.len());
        for d in r.devices {
            if d.label.len() > limits::MAX_DEVICE_LABEL {
                return Err(DecodeError::FieldTooLong {
                    what: "device label",
                    max: limits::MAX_DEVICE_LABEL,
                    got: d.label.len(),
                });
            }
            let entry = DeviceEntry {
                device_key: PublicKey::from_bytes(&d.device_key)?,
                status: device_status_from(d.status)?,
                added_at: d.added_at,
                label: d.label,
                dh_key: DhPublicKey::from_bytes(&d.dh_key)?,
                consent: Signature::from_bytes(&d.consent)?,
            };
            if devices.iter().any(|e: &DeviceEntry| e.device_key == entry.device_key) {
                return Err(DecodeError::Invalid("device listed twice in identity record"));
            }
            devices.push(entry);
        }
        Ok(Self {
            identity_key: PublicKey::from_bytes(&r.identity_key)?,
            seq: r.seq,
            dh_key: DhPublicKey::from_bytes(&r.dh_key)?,
            profile: r.profile.map(Profile::try_from).transpose()?,
            updated_at: r.updated_at,
            request_inbox: request_inbox_from(
                r.request_inbox,
                &r.request_writer_secret,
                r.request_slots,
                r.request_pow_bits,
            )?,
            rotation: rotation_from(r.rotation_ephemeral, r.account_key_copies, &devices)?,
            devices,
            location: r.location.map(|l| record_key_from(Some(l), "identity record location")).transpose()?,
        })
    }
}

/// REV-2: a rotation has at most one copy per listed device, each of the
/// exact sealed length, and no copies without an ephemeral key.
fn rotation_from(
    ephemeral: Vec<u8>,
    copies: Vec<Vec<u8>>,
    devices: &[DeviceEntry],
) -> Result<Option<AccountKeyRotation>, DecodeError> {
    if ephemeral.is_empty() {
        if !copies.is_empty() {
            return Err(DecodeError::Invalid("account key copies without a rotation key"));
        }
        return Ok(None);
    }
    if copies.len() > devices.len() {
        return Err(DecodeError::TooManyEntries { what: "account key copies", max: devices.len(), got: copies.len() });
    }
    if let Some(c) = copies.iter().find(|c| c.len() != SEALED_COPY_LEN) {
        return Err(DecodeError::WrongLength { what: "account key copy", expected: SEALED_COPY_LEN, got: c.len() });
    }
    Ok(Some(AccountKeyRotation { ephemeral: DhPublicKey::from_bytes(&ephemeral)?, copies }))
}

fn request_inbox_from(
    record: Option<pb::RecordKey>,
    writer: &[u8],
    slots: u32,
    pow_bits: u32,
) -> Result<Option<RequestInboxInfo>, DecodeError> {
    let Some(record) = record else {
        if !writer.is_empty() || slots != 0 || pow_bits != 0 {
            return Err(DecodeError::Invalid("request inbox parameters without a request inbox"));
        }
        return Ok(None);
    };
    if slots == 0 || slots as usize > limits::MAX_REQUEST_SLOTS {
        return Err(DecodeError::Invalid("request inbox slot count out of range"));
    }
    if pow_bits > crate::crypto::pow::MAX_POW_BITS {
        return Err(DecodeError::Invalid("request inbox asks for more proof of work than allowed"));
    }
    Ok(Some(RequestInboxInfo {
        record: record_key_from(Some(record), "request inbox")?,
        writer: SigningKey::from_seed_slice(writer)?,
        slots,
        pow_bits,
    }))
}

impl From<&IdentityRecord> for pb::IdentityRecord {
    fn from(r: &IdentityRecord) -> Self {
        Self {
            identity_key: r.identity_key.as_bytes().to_vec(),
            seq: r.seq,
            dh_key: r.dh_key.as_bytes().to_vec(),
            devices: r
                .devices
                .iter()
                .map(|d| pb::DeviceEntry {
                    device_key: d.device_key.as_bytes().to_vec(),
                    status: match d.status {
                        DeviceStatus::Current => pb::DeviceStatus::Current,
                        DeviceStatus::Deprecated => pb::DeviceStatus::Deprecated,
                        DeviceStatus::Revoked => pb::DeviceStatus::Revoked,
                    } as i32,
                    added_at: d.added_at,
                    label: d.label.clone(),
                    consent: d.consent.as_bytes().to_vec(),
                    dh_key: d.dh_key.as_bytes().to_vec(),
                })
                .collect(),
            profile: r.profile.as_ref().map(pb::Profile::from),
            updated_at: r.updated_at,
            request_inbox: r.request_inbox.as_ref().map(|i| record_key_to(&i.record)),
            request_pow_bits: r.request_inbox.as_ref().map_or(0, |i| i.pow_bits),
            request_writer_secret: r
                .request_inbox
                .as_ref()
                .map(|i| i.writer.expose_seed().to_vec())
                .unwrap_or_default(),
            request_slots: r.request_inbox.as_ref().map_or(0, |i| i.slots),
            rotation_ephemeral: r.rotation.as_ref().map(|x| x.ephemeral.as_bytes().to_vec()).unwrap_or_default(),
            account_key_copies: r.rotation.iter().flat_map(|x| x.copies.iter().cloned()).collect(),
            location: r.location.as_ref().map(record_key_to),
        }
    }
}

/// A signed identity record whose signatures have all been verified: the
/// record signature by the identity key and every device's consent.
///
/// Serializes as its signed bytes; deserializing verifies them again, so a
/// stored copy cannot smuggle in an unverified record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIdentity {
    bytes: Vec<u8>,
    record: IdentityRecord,
}

impl SignedIdentity {
    /// Parses and verifies an encoded `SignedIdentityRecord`. When
    /// `expected_identity` is given the record must belong to it.
    pub fn verify(bytes: &[u8], expected_identity: Option<&PublicKey>) -> Result<Self, crate::Error> {
        let signed: pb::SignedIdentityRecord =
            wire::decode(bytes, limits::MAX_SIGNED_IDENTITY, "signed identity record")?;
        let sig = Signature::from_bytes(&signed.signature)?;
        let inner: pb::IdentityRecord =
            wire::decode(&signed.identity_record, limits::MAX_SIGNED_IDENTITY, "identity record")?;
        let record = IdentityRecord::try_from(inner)?;
        if let Some(e) = expected_identity
            && e != &record.identity_key
        {
            return Err(VerifyError::WrongContext("identity record belongs to another identity").into());
        }
        // INV-ID-1: the record is signed by its identity key, bound to its seq.
        if !verify(
            &record.identity_key,
            SignedKind::IdentityRecord,
            &[record.identity_key.as_bytes(), &record.seq.to_be_bytes()],
            &signed.identity_record,
            &sig,
        ) {
            return Err(VerifyError::BadSignature.into());
        }
        // INV-ID-2: every device consented to join this identity.
        for d in &record.devices {
            if !verify_device_consent(&record.identity_key, &d.device_key, &d.consent) {
                return Err(VerifyError::BadSignature.into());
            }
        }
        Ok(Self { bytes: bytes.to_vec(), record })
    }
    /// Parses and verifies an identity record **read from the DHT at
    /// `location`**: it must be signed by `identity` (every check of
    /// [`Self::verify`]) and name `location` as where it is published
    /// (FRESH-1). This is the only way a record read from the network is
    /// taken as news of an identity.
    pub fn verify_at(bytes: &[u8], identity: &PublicKey, location: &RecordKey) -> Result<Self, crate::Error> {
        let signed = Self::verify(bytes, Some(identity))?;
        signed.require_location(location)?;
        Ok(signed)
    }
    /// The verified record.
    pub fn record(&self) -> &IdentityRecord {
        &self.record
    }
    /// Where the record says it is published (signed by the identity key).
    pub fn location(&self) -> Option<&RecordKey> {
        self.record.location.as_ref()
    }
    /// FRESH-1: the record names `location` as where it is published. A
    /// message or contact that names an identity record location must name
    /// the one its snapshot was signed for; a record without a location
    /// (never published) is never taken as a peer's.
    pub fn require_location(&self, location: &RecordKey) -> Result<(), VerifyError> {
        match &self.record.location {
            Some(l) if l == location => Ok(()),
            Some(_) => Err(VerifyError::WrongContext("identity record is published at another location than named")),
            None => Err(VerifyError::WrongContext("identity record names no location (never published)")),
        }
    }
    /// The exact signed bytes (to publish or embed).
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Checks that `device` is a current device of this identity.
    pub(crate) fn require_current(&self, device: &PublicKey) -> Result<(), VerifyError> {
        match self.record.device_status(device) {
            Some(DeviceStatus::Current) => Ok(()),
            Some(DeviceStatus::Deprecated) => Err(VerifyError::UntrustedDevice("device is deprecated")),
            Some(DeviceStatus::Revoked) => Err(VerifyError::UntrustedDevice("device is revoked")),
            None => Err(VerifyError::UntrustedDevice("device is not listed")),
        }
    }
}

impl Serialize for SignedIdentity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for SignedIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = crate::crypto::serde_bytes_vec(d)?;
        Self::verify(&v, None).map_err(serde::de::Error::custom)
    }
}
