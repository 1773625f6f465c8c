//! Nudges: a best-effort shortcut past watch latency.
//!
//! Right after a party's write is confirmed on the DHT, it sends the same
//! value straight to its peer's *reply address* (on Veilid an `app_message`
//! over the peer's private route), so the peer does not wait for the watch
//! notification — Veilid sends those on a one-second tick, which makes them
//! the slowest step of a flow. A nudge is only a hint: its value is as
//! untrusted as any DHT value (the machines open and verify it exactly as
//! they would a watched one), losing it costs nothing but time (watches and
//! polls remain). An honest peer nudges only after its write was confirmed,
//! so a nudge carries what the DHT holds; a hostile sender can make a flow
//! act only on a value that verifies, i.e. one it could as well have written
//! (and a response verifies only if signed by a responder for this very
//! invitation).

use tokio::sync::mpsc;

use super::Subkey;
use crate::error::DecodeError;
use crate::limits;
use crate::wire::{self, pb};

/// A value a peer just wrote, sent to our reply address.
#[derive(Clone, PartialEq, Eq)]
pub struct Nudge {
    /// The record (opaque key).
    pub record: [u8; 32],
    /// The subkey written.
    pub subkey: Subkey,
    /// The value as written. Untrusted.
    pub value: Vec<u8>,
}

impl core::fmt::Debug for Nudge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Nudge({}, subkey {}, {} bytes)",
            data_encoding::HEXLOWER.encode(&self.record[..8]),
            self.subkey,
            self.value.len()
        )
    }
}

impl Nudge {
    /// The wire form (protobuf `Nudge`).
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode(&pb::Nudge {
            version: crate::crypto::PROTOCOL_VERSION,
            record: self.record.to_vec(),
            subkey: self.subkey,
            value: self.value.clone(),
        })
    }

    /// Parses the wire form, refusing oversized or malformed input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let p: pb::Nudge = wire::decode(bytes, limits::MAX_NUDGE, "nudge")?;
        wire::check_version(p.version)?;
        if p.value.len() > super::MAX_VALUE_LEN {
            return Err(DecodeError::TooLarge { what: "nudge value", max: super::MAX_VALUE_LEN, got: p.value.len() });
        }
        Ok(Self { record: wire::bytes32(&p.record, "nudge record")?, subkey: p.subkey, value: p.value })
    }
}

/// Receives nudges sent to this party's reply address.
pub type NudgeReceiver = mpsc::Receiver<Nudge>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strict_parsing() {
        let n = Nudge { record: [7; 32], subkey: 1, value: vec![1, 2, 3] };
        assert_eq!(Nudge::from_bytes(&n.to_bytes()).unwrap(), n);
        assert!(format!("{n:?}").contains("3 bytes"));
        // Wrong record length, missing version, oversized input, garbage.
        let short = wire::encode(&pb::Nudge {
            version: crate::crypto::PROTOCOL_VERSION,
            record: vec![1; 31],
            subkey: 0,
            value: vec![],
        });
        assert!(matches!(Nudge::from_bytes(&short), Err(DecodeError::WrongLength { .. })));
        let unversioned = wire::encode(&pb::Nudge { version: 0, record: vec![1; 32], subkey: 0, value: vec![] });
        assert!(matches!(Nudge::from_bytes(&unversioned), Err(DecodeError::MissingField { .. })));
        assert!(matches!(Nudge::from_bytes(&vec![0u8; limits::MAX_NUDGE + 1]), Err(DecodeError::TooLarge { .. })));
        assert!(Nudge::from_bytes(&[0xff, 0xff, 0xff]).is_err());
        let big = Nudge { record: [7; 32], subkey: 0, value: vec![0; super::super::MAX_VALUE_LEN + 1] };
        assert!(matches!(Nudge::from_bytes(&big.to_bytes()), Err(DecodeError::TooLarge { .. })));
    }
}
