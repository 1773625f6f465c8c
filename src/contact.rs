//! The result of a completed invitation: a mutual, authenticated contact.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SecretKey, SigningKey};
use crate::dht::RecordKey;
use crate::message::{Profile, SignedIdentity};

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
#[derive(Clone, Serialize, Deserialize)]
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
    local_conversation_owner: SigningKey,
    conversation_key: SecretKey,
}

impl Contact {
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

    /// A short safety code both sides can compare out of band (same on both
    /// sides): hash of both identity keys, sorted.
    pub fn safety_code(&self, own: &PublicKey) -> String {
        let mut ids = [*own.as_bytes(), *self.peer.as_bytes()];
        ids.sort();
        let h = crate::crypto::message_hash(&[ids[0], ids[1]].concat());
        let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) % 1_000_000_000_000;
        format!("{:04} {:04} {:04}", n / 100_000_000, (n / 10_000) % 10_000, n % 10_000)
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
            .finish_non_exhaustive()
    }
}
