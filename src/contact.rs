//! The result of a completed invitation: a mutual, authenticated contact.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SecretKey, SigningKey};
use crate::dht::RecordKey;
use crate::message::{Profile, SignedIdentity};

mod safety;
pub use safety::{
    DIGITS_PER_PARTY, FINGERPRINT_LEN, FORMAT_VERSION as SAFETY_NUMBER_VERSION, Fingerprint,
    ITERATIONS as SAFETY_NUMBER_ITERATIONS, QR_PAYLOAD_LEN, SafetyNumber, SafetyNumberError,
};

/// Which side of the invitation this device was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Sent the invitation.
    Inviter,
    /// Received and accepted it.
    Invitee,
    /// Sent a request to the peer's published address.
    Requester,
    /// Accepted a request sent to our published address.
    Recipient,
}

/// A contact: the peer's verified identity and profile, both conversation
/// records, and the conversation key both sides derived (the same on both).
///
/// Contacts are keyed by the peer's identity key: completing a second
/// invitation with the same person updates the contact instead of duplicating it.
///
/// It holds secrets (the conversation key, the key that writes our
/// conversation record, the records' encryption secrets), so it implements
/// neither `Serialize` nor `Deserialize` (SER-1): only this crate persists
/// it ([`crate::driver::save_contact`], [`crate::driver::contacts`]). To
/// show it, log it or hand it to a UI, use [`Contact::view`].
///
/// Loading one from a store checks it again
/// (STORE-1): the peer's identity record must belong to `peer` and name
/// `peer_identity_record` as its location; a stored contact that does not is
/// refused rather than trusted.
#[derive(Clone)]
pub struct Contact {
    /// The peer's identity key (the contact's id).
    pub peer: PublicKey,
    /// The peer's identity record location.
    pub peer_identity_record: RecordKey,
    /// The peer's verified identity record at the time the contact was made.
    pub peer_identity: SignedIdentity,
    /// The peer's profile.
    pub profile: Profile,
    /// Our conversation record (we write it).
    pub local_conversation: RecordKey,
    /// The peer's conversation record (they write it).
    pub remote_conversation: RecordKey,
    /// The inbox the contact was made through.
    pub via_inbox: [u8; 32],
    /// Our side.
    pub role: Role,
    /// When it became final (unix seconds).
    pub established_at: u64,
    /// When the user verified the safety number (unix seconds), if ever.
    verified_at: Option<u64>,
    local_conversation_owner: SigningKey,
    conversation_key: SecretKey,
}

/// What an app may show, log or send to its UI about a [`Contact`]: the
/// peer's key and profile, the records' opaque keys, how and when it was
/// made and verified; no secret (no conversation key, no record owner key,
/// no record encryption secret). It serializes (serde) to a stable form;
/// keys as lowercase hex strings in human-readable formats such as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// The peer's identity key (the contact's id).
    pub peer: PublicKey,
    /// The peer's profile.
    pub profile: Profile,
    /// Our side.
    pub role: Role,
    /// When it became final (unix seconds).
    pub established_at: u64,
    /// When the user verified the safety number (unix seconds), if ever.
    pub verified_at: Option<u64>,
    /// The opaque key of the peer's identity record.
    #[serde(with = "crate::identity::persist::opaque")]
    pub peer_identity_record: [u8; 32],
    /// The opaque key of our conversation record.
    #[serde(with = "crate::identity::persist::opaque")]
    pub local_conversation: [u8; 32],
    /// The opaque key of the peer's conversation record.
    #[serde(with = "crate::identity::persist::opaque")]
    pub remote_conversation: [u8; 32],
}

impl ContactView {
    /// The contact's safety number seen from `own` (our identity key), as
    /// [`Contact::safety_number`] gives it: it depends on the two public
    /// keys only.
    pub fn safety_number(&self, own: &PublicKey) -> SafetyNumber {
        SafetyNumber::new(own, &self.peer)
    }
}

/// A contact as written to storage (the same fields, in the same order, as
/// [`StoredContact`]: the store's encoding).
#[derive(Serialize)]
struct StoredContactRef<'a> {
    peer: &'a PublicKey,
    peer_identity_record: &'a RecordKey,
    peer_identity: &'a SignedIdentity,
    profile: &'a Profile,
    local_conversation: &'a RecordKey,
    remote_conversation: &'a RecordKey,
    via_inbox: &'a [u8; 32],
    role: &'a Role,
    established_at: &'a u64,
    verified_at: &'a Option<u64>,
    local_conversation_owner: &'a SigningKey,
    conversation_key: &'a SecretKey,
}

impl crate::identity::persist::Persist for Contact {
    fn persist<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredContactRef {
            peer: &self.peer,
            peer_identity_record: &self.peer_identity_record,
            peer_identity: &self.peer_identity,
            profile: &self.profile,
            local_conversation: &self.local_conversation,
            remote_conversation: &self.remote_conversation,
            via_inbox: &self.via_inbox,
            role: &self.role,
            established_at: &self.established_at,
            verified_at: &self.verified_at,
            local_conversation_owner: &self.local_conversation_owner,
            conversation_key: &self.conversation_key,
        }
        .serialize(s)
    }
    fn restore<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(StoredContact::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A contact as read from storage, before [`Contact`]'s checks.
#[derive(Deserialize)]
pub(crate) struct StoredContact {
    peer: PublicKey,
    peer_identity_record: RecordKey,
    peer_identity: SignedIdentity,
    profile: Profile,
    local_conversation: RecordKey,
    remote_conversation: RecordKey,
    via_inbox: [u8; 32],
    role: Role,
    established_at: u64,
    verified_at: Option<u64>,
    local_conversation_owner: SigningKey,
    conversation_key: SecretKey,
}

impl TryFrom<StoredContact> for Contact {
    type Error = crate::VerifyError;
    fn try_from(s: StoredContact) -> Result<Self, Self::Error> {
        let c = Self {
            peer: s.peer,
            peer_identity_record: s.peer_identity_record,
            peer_identity: s.peer_identity,
            profile: s.profile,
            local_conversation: s.local_conversation,
            remote_conversation: s.remote_conversation,
            via_inbox: s.via_inbox,
            role: s.role,
            established_at: s.established_at,
            verified_at: s.verified_at,
            local_conversation_owner: s.local_conversation_owner,
            conversation_key: s.conversation_key,
        };
        c.check_consistent()?;
        Ok(c)
    }
}

impl Contact {
    /// Its public view: what an app may show, log or serialize.
    pub fn view(&self) -> ContactView {
        ContactView {
            peer: self.peer,
            profile: self.profile.clone(),
            role: self.role,
            established_at: self.established_at,
            verified_at: self.verified_at,
            peer_identity_record: *self.peer_identity_record.opaque(),
            local_conversation: *self.local_conversation.opaque(),
            remote_conversation: *self.remote_conversation.opaque(),
        }
    }

    /// Encodes it as a store record (crate-private: see
    /// [`crate::identity::persist`]).
    pub(crate) fn to_store_record(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
        crate::identity::persist::encode(self)
    }

    /// Decodes and checks (STORE-1) a store record of a contact.
    pub(crate) fn from_store_record(b: &[u8], what: &str) -> Result<Self, crate::Error> {
        crate::identity::persist::decode(b, what)
    }

    /// STORE-1: the peer's identity record belongs to `peer` and names
    /// `peer_identity_record` as its location. Checked when a contact is
    /// loaded and before it verifies anything (its fields are public).
    fn check_consistent(&self) -> Result<(), crate::VerifyError> {
        if self.peer_identity.record().identity_key != self.peer {
            return Err(crate::VerifyError::WrongContext("contact's identity record belongs to another identity"));
        }
        self.peer_identity.require_location(&self.peer_identity_record)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        peer_identity: SignedIdentity,
        peer_identity_record: RecordKey,
        profile: Profile,
        local_conversation: RecordKey,
        local_conversation_owner: SigningKey,
        remote_conversation: RecordKey,
        via_inbox: [u8; 32],
        role: Role,
        established_at: u64,
        conversation_key: SecretKey,
    ) -> Self {
        Self {
            peer: peer_identity.record().identity_key,
            peer_identity_record,
            peer_identity,
            profile,
            local_conversation,
            remote_conversation,
            via_inbox,
            role,
            established_at,
            verified_at: None,
            local_conversation_owner,
            conversation_key,
        }
    }
    /// The shared conversation key. Keep the borrow short; never log it.
    pub fn conversation_key(&self) -> &SecretKey {
        &self.conversation_key
    }
    /// The key that writes our conversation record.
    pub fn local_conversation_owner(&self) -> &SigningKey {
        &self.local_conversation_owner
    }
    /// Checks a message signed by the peer with
    /// [`crate::identity::Identity::sign_message`]: the signature is bound to both
    /// identities, and the signing device must be a current device in the
    /// peer's identity record as this contact knows it (refresh it with
    /// [`Self::update_peer_identity`] to learn of new or revoked devices).
    pub fn verify_message(
        &self,
        own: &PublicKey,
        payload: &[u8],
        sig: &crate::identity::MessageSignature,
    ) -> Result<(), crate::VerifyError> {
        self.check_consistent()?;
        self.peer_identity.require_current(&sig.device)?;
        if crate::crypto::sign::verify(
            &sig.device,
            crate::crypto::sign::SignedKind::ContactMessage,
            &[self.peer.as_bytes(), own.as_bytes()],
            payload,
            &sig.signature,
        ) {
            Ok(())
        } else {
            Err(crate::VerifyError::BadSignature)
        }
    }

    /// Replaces the peer's identity record with a newer one read from the DHT
    /// at [`Self::peer_identity_record`] (encoded `SignedIdentityRecord`). It
    /// must verify, belong to the peer, name that location as where it is
    /// published (FRESH-1) and not be older than the one held. Returns
    /// whether it changed.
    pub fn update_peer_identity(&mut self, bytes: &[u8]) -> Result<bool, crate::Error> {
        self.check_consistent()?;
        let fetched = SignedIdentity::verify_at(bytes, &self.peer, &self.peer_identity_record)?;
        if fetched.record().seq < self.peer_identity.record().seq {
            return Err(crate::VerifyError::WrongContext("identity record older than the one held").into());
        }
        let changed = fetched != self.peer_identity;
        if let Some(p) = fetched.record().profile.clone() {
            self.profile = p;
        }
        self.peer_identity = fetched;
        Ok(changed)
    }

    /// The safety number of this contact, seen from `own` (our identity
    /// key): 40 digits per party from a labelled, iterated hash of each
    /// identity key (see [`SafetyNumber`]). Show its digits, or its QR
    /// payload for the peer to scan.
    pub fn safety_number(&self, own: &PublicKey) -> SafetyNumber {
        SafetyNumber::new(own, &self.peer)
    }

    /// The safety number's digits (16 groups of five, the same on both
    /// sides), to compare in person or over a call.
    pub fn safety_code(&self, own: &PublicKey) -> String {
        self.safety_number(own).digits()
    }

    /// Verifies the contact in one step from a QR payload scanned off the
    /// peer's screen ([`SafetyNumber::qr_payload`] on their side) and, if it
    /// matches, records the verification at `now` (unix seconds). A
    /// mismatch is an error and changes nothing. Save the contact afterwards
    /// ([`crate::driver::save_contact`]).
    pub fn verify_scanned_safety_number(
        &mut self,
        own: &PublicKey,
        scanned: &[u8],
        now: u64,
    ) -> Result<(), SafetyNumberError> {
        self.safety_number(own).verify_scanned(scanned)?;
        self.verified_at = Some(now);
        Ok(())
    }

    /// Records that the user compared the safety number's digits with the
    /// peer and they matched (unix seconds).
    pub fn mark_verified(&mut self, now: u64) {
        self.verified_at = Some(now);
    }

    /// When the safety number was verified (unix seconds), if it was.
    pub fn verified_at(&self) -> Option<u64> {
        self.verified_at
    }

    /// Whether the safety number was verified.
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }

    /// Keeps the verification of an earlier contact with the same peer key.
    pub(crate) fn keep_verification_from(&mut self, old: &Contact) {
        if old.peer == self.peer && self.verified_at.is_none() {
            self.verified_at = old.verified_at;
        }
    }
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("peer", &self.peer)
            .field("name", &self.profile.name())
            .field("local_conversation", &self.local_conversation)
            .field("remote_conversation", &self.remote_conversation)
            .field("role", &self.role)
            .field("established_at", &self.established_at)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_core::OsRng;

    use super::*;
    use crate::identity::Identity;

    fn published(name: &str, at: u8) -> Identity {
        let mut id = Identity::generate(Profile::new(name).unwrap(), "d", 1_795_305_600, &mut OsRng).unwrap();
        id.bind_location(RecordKey::new([at; 32], None)).unwrap();
        id
    }

    fn contact_of(peer: &Identity) -> Contact {
        Contact::new(
            peer.signed().clone(),
            peer.record_key().unwrap().clone(),
            Profile::new("peer").unwrap(),
            RecordKey::new([1; 32], None),
            SigningKey::generate(&mut OsRng),
            RecordKey::new([2; 32], None),
            [3; 32],
            Role::Invitee,
            1_795_305_600,
            SecretKey::generate(&mut OsRng),
        )
    }

    /// STORE-1 (review of issue 13): a contact whose peer identity record
    /// was swapped for another identity's (in the store, or through its
    /// public fields) is refused at load and verifies nothing.
    #[test]
    fn store_1_a_contact_with_a_swapped_identity_record_is_refused_and_verifies_nothing() {
        let (alice, bob, mallory) = (published("alice", 10), published("bob", 11), published("mallory", 12));
        let genuine = contact_of(&alice);
        let back = Contact::from_store_record(&genuine.to_store_record().unwrap(), "contact").unwrap();
        assert_eq!(back.peer, alice.public_key());
        let msg = alice.sign_message(&bob.public_key(), b"hi");
        assert!(genuine.verify_message(&bob.public_key(), b"hi", &msg).is_ok());

        // Mallory's record (and location) in Alice's contact.
        let mut swapped = genuine.clone();
        swapped.peer_identity = mallory.signed().clone();
        swapped.peer_identity_record = mallory.record_key().unwrap().clone();
        let r = Contact::from_store_record(&swapped.to_store_record().unwrap(), "contact");
        assert!(r.is_err(), "a contact with another identity's record was loaded");
        // Mutated in memory: it verifies nothing, not Mallory's message made
        // to pass as Alice's (her device, signing in Alice's context), not
        // even Alice's.
        let forged = crate::identity::MessageSignature {
            device: mallory.device_public(),
            signature: crate::crypto::sign::sign(
                mallory.device_key(),
                crate::crypto::sign::SignedKind::ContactMessage,
                &[alice.public_key().as_bytes(), bob.public_key().as_bytes()],
                b"evil",
            ),
        };
        assert!(swapped.verify_message(&bob.public_key(), b"evil", &forged).is_err(), "Mallory passed as Alice");
        assert!(swapped.verify_message(&bob.public_key(), b"hi", &msg).is_err());
        assert!(swapped.update_peer_identity(mallory.signed().to_bytes()).is_err());

        // Alice's record, but a location it does not name.
        let mut moved = genuine.clone();
        moved.peer_identity_record = RecordKey::new([13; 32], None);
        let r = Contact::from_store_record(&moved.to_store_record().unwrap(), "contact");
        assert!(r.is_err(), "a contact naming another location was loaded");
        assert!(moved.verify_message(&bob.public_key(), b"hi", &msg).is_err());
    }
}
