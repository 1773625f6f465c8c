//! Protocol messages as domain types. Generated protobuf types stay private;
//! every conversion from the wire is a `TryFrom`/`from_bytes` that rejects
//! malformed input, and every signed message has an unverified form whose
//! only exit is a `verify` that checks signature, context and time.

pub(crate) mod address;
mod final_status;
pub(crate) mod handover;
mod identity;
pub(crate) mod inbox;
mod invitation;
mod profile;
mod response;

use serde::{Deserialize, Serialize};

pub use address::{AddressRequestContent, UnverifiedAddressRequest, VerifiedAddressRequest};
pub use final_status::{FinalStatus, FinalStatusKind};
pub(crate) use identity::device_consent;
pub(crate) use identity::record_key_to as record_key_to_pb;
pub use identity::{AccountKeyRotation, DeviceEntry, DeviceStatus, IdentityRecord, RequestInboxInfo, SignedIdentity};
pub(crate) use invitation::hash_of_signed as invitation_hash_of_signed;
pub use invitation::{EncryptionKeyType, InvitationContent, UnverifiedInvitation, VerifiedInvitation};
pub use profile::Profile;
pub(crate) use response::hash_of_signed as response_hash_of_signed;
pub use response::{InvitationContext, ResponseContent, UnverifiedResponse, VerifiedResponse};

use crate::error::DecodeError;
use crate::wire::pb;

/// What an invitation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InvitationKind {
    /// Become mutual contacts.
    Contact,
    /// Add a new device to the inviter's own account.
    DeviceLink,
}

impl InvitationKind {
    pub(crate) fn to_pb(self) -> i32 {
        (match self {
            Self::Contact => pb::InvitationKind::Contact,
            Self::DeviceLink => pb::InvitationKind::DeviceLink,
        }) as i32
    }
    pub(crate) fn from_pb(v: i32) -> Result<Self, DecodeError> {
        match pb::InvitationKind::try_from(v) {
            Ok(pb::InvitationKind::Contact) => Ok(Self::Contact),
            Ok(pb::InvitationKind::DeviceLink) => Ok(Self::DeviceLink),
            _ => Err(DecodeError::UnknownEnumValue { what: "invitation kind", value: v }),
        }
    }
}

/// A reply address from the wire: empty means none; over
/// [`crate::limits::MAX_REPLY_ADDRESS`] is refused.
pub(crate) fn reply_address_from(b: Vec<u8>) -> Result<Option<Vec<u8>>, DecodeError> {
    if b.len() > crate::limits::MAX_REPLY_ADDRESS {
        return Err(DecodeError::FieldTooLong {
            what: "reply address",
            max: crate::limits::MAX_REPLY_ADDRESS,
            got: b.len(),
        });
    }
    Ok((!b.is_empty()).then_some(b))
}

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod tests;
