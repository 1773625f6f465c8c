//! The layouts the crate writes for a contact and an identity (tables
//! `contacts` and `identity`, after the version byte), mirrored here so
//! tests can read and tamper with stored records: what `#[derive(Serialize)]`
//! on `Contact` and `Identity` wrote before they lost their public serde
//! impls, and what the crate's private persisted form still writes.

use contact_invite::contact::Role;
use contact_invite::crypto::{PublicKey, SecretKey, SigningKey};
use contact_invite::dht::RecordKey;
use contact_invite::message::{Profile, SignedIdentity};
use serde::{Deserialize, Serialize};

/// A stored identity.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredIdentity {
    pub identity_key: Option<SigningKey>,
    pub identity_public: PublicKey,
    pub device_key: SigningKey,
    pub account_key: SecretKey,
    pub record_key: Option<RecordKey>,
    pub signed: SignedIdentity,
}

/// A stored contact.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredContact {
    pub peer: PublicKey,
    pub peer_identity_record: RecordKey,
    pub peer_identity: SignedIdentity,
    pub profile: Profile,
    pub local_conversation: RecordKey,
    pub remote_conversation: RecordKey,
    pub via_inbox: [u8; 32],
    pub role: Role,
    pub established_at: u64,
    pub verified_at: Option<u64>,
    pub local_conversation_owner: SigningKey,
    pub conversation_key: SecretKey,
}
