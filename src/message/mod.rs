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

pub use address::{AddressRequestContent, UnverifiedAddressRequest, VerifiedAddressRequest};
pub use final_status::{FinalStatus, FinalStatusKind};
pub(crate) use identity::device_consent;
pub(crate) use identity::record_key_to as record_key_to_pb;
pub use identity::{AccountKeyRotation, DeviceEntry, DeviceStatus, IdentityRecord, RequestInboxInfo, SignedIdentity};
pub(crate) use invitation::hash_of_signed as invitation_hash_of_signed;
pub use invitation::{EncryptionKeyType, InvitationContent, MultiUse, UnverifiedInvitation, VerifiedInvitation};
pub use profile::Profile;
pub(crate) use response::hash_of_signed as response_hash_of_signed;
pub use response::{InvitationContext, ResponseContent, UnverifiedResponse, VerifiedResponse};

pub use crate::wire::InvitationKind;

use crate::error::DecodeError;

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
