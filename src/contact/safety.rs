//! Safety numbers: what two people compare (or scan) to be sure no one sits
//! between them, after Signal's safety numbers.
//!
//! Each party's identity key gets its own **fingerprint**: a labelled,
//! iterated BLAKE3 hash (rule EDGE-SAFETY-1):
//!
//! ```text
//! d_0 = [FORMAT_VERSION]
//! d_i = BLAKE3-derive-key("contact-invite safety number fingerprint v1", d_(i-1) || identity_key)   i = 1..=ITERATIONS
//! fingerprint = the first 40 bytes of the extended output of the last step (its first 32 are d_ITERATIONS)
//! ```
//!
//! shown as 40 digits (eight groups of five: each group is 5 bytes as a
//! big-endian integer mod 100 000), about 132.9 bits per party. A man in the
//! middle must find a key of its own whose fingerprint equals the victim's
//! (a second preimage, not a birthday search: each fingerprint depends on
//! one key only), at `ITERATIONS` hashes per try. The number both people
//! see is the two 40-digit fingerprints, the smaller first, so it is the
//! same on both screens.
//!
//! The QR payload carries the showing side's two fingerprints in full;
//! [`SafetyNumber::verify_scanned`] checks one side's screen against the
//! other's keys in one step.

use core::fmt;

use crate::crypto::PublicKey;

/// Version of the fingerprint construction and of the QR payload.
pub const FORMAT_VERSION: u8 = 1;
/// Hash iterations per fingerprint (Signal uses 5200 of SHA-512).
pub const ITERATIONS: u32 = 5200;
/// Digits per party (40 digits ≈ 132.9 bits).
pub const DIGITS_PER_PARTY: usize = 40;
/// Fingerprint length in bytes (5 bytes per 5-digit group).
pub const FINGERPRINT_LEN: usize = DIGITS_PER_PARTY;
/// Length of [`SafetyNumber::qr_payload`].
pub const QR_PAYLOAD_LEN: usize = 4 + 2 * FINGERPRINT_LEN;

const LABEL: &str = "contact-invite safety number fingerprint v1";
const MAGIC: &[u8; 3] = b"CIS";

/// Why a scanned safety number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafetyNumberError {
    /// Not a safety-number payload (wrong length or marker).
    #[error("not a safety number code")]
    Malformed,
    /// A payload of another format version.
    #[error("safety number format {found} (this library reads {supported})")]
    Version {
        /// Found.
        found: u8,
        /// Supported.
        supported: u8,
    },
    /// The scanned code does not match the keys this contact was made with:
    /// someone may be in the middle, or it is another contact's code.
    #[error("the safety numbers do not match: this is not the contact's device, or someone is in the middle")]
    Mismatch,
}

/// One identity key's fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The fingerprint of an identity key (see the module docs).
    pub fn of(identity: &PublicKey) -> Self {
        let mut d = vec![FORMAT_VERSION];
        let mut out = [0u8; FINGERPRINT_LEN];
        for i in 0..ITERATIONS {
            let mut h = blake3::Hasher::new_derive_key(LABEL);
            h.update(&d);
            h.update(identity.as_bytes());
            if i + 1 == ITERATIONS {
                h.finalize_xof().fill(&mut out);
            } else {
                d = h.finalize().as_bytes().to_vec();
            }
        }
        Self(out)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
    /// Eight groups of five digits.
    pub fn digit_groups(&self) -> Vec<String> {
        self.0
            .chunks_exact(5)
            .map(|c| {
                let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) % 100_000;
                format!("{n:05}")
            })
            .collect()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.digit_groups().join(" "))
    }
}

/// The safety number of a contact, as seen from our side.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SafetyNumber {
    local: Fingerprint,
    remote: Fingerprint,
}

impl SafetyNumber {
    /// For our identity key `own` and the peer's `peer`.
    pub fn new(own: &PublicKey, peer: &PublicKey) -> Self {
        Self { local: Fingerprint::of(own), remote: Fingerprint::of(peer) }
    }
    /// Our fingerprint.
    pub fn local(&self) -> &Fingerprint {
        &self.local
    }
    /// The peer's fingerprint.
    pub fn remote(&self) -> &Fingerprint {
        &self.remote
    }
    /// The 16 groups of five digits both sides show (the smaller
    /// fingerprint first, so both screens agree).
    pub fn digit_groups(&self) -> Vec<String> {
        let (a, b) = if self.local <= self.remote { (self.local, self.remote) } else { (self.remote, self.local) };
        let mut g = a.digit_groups();
        g.extend(b.digit_groups());
        g
    }
    /// The digits as text: 16 groups of five separated by spaces.
    pub fn digits(&self) -> String {
        self.digit_groups().join(" ")
    }
    /// What our screen shows as a QR code (byte mode):
    /// `"CIS" || FORMAT_VERSION || our fingerprint || the peer's fingerprint`.
    pub fn qr_payload(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(QR_PAYLOAD_LEN);
        v.extend_from_slice(MAGIC);
        v.push(FORMAT_VERSION);
        v.extend_from_slice(&self.local.0);
        v.extend_from_slice(&self.remote.0);
        v
    }
    /// Checks a payload scanned from the peer's screen: it must name the
    /// peer's key as theirs and ours as their peer's.
    pub fn verify_scanned(&self, scanned: &[u8]) -> Result<(), SafetyNumberError> {
        if scanned.len() < 4 || &scanned[..3] != MAGIC {
            return Err(SafetyNumberError::Malformed);
        }
        if scanned[3] != FORMAT_VERSION {
            return Err(SafetyNumberError::Version { found: scanned[3], supported: FORMAT_VERSION });
        }
        if scanned.len() != QR_PAYLOAD_LEN {
            return Err(SafetyNumberError::Malformed);
        }
        let (theirs, their_peer) = scanned[4..].split_at(FINGERPRINT_LEN);
        if theirs == self.remote.0.as_slice() && their_peer == self.local.0.as_slice() {
            Ok(())
        } else {
            Err(SafetyNumberError::Mismatch)
        }
    }
    /// The QR payload as an SVG document.
    #[cfg(feature = "qr")]
    pub fn qr_svg(&self) -> Result<String, crate::encoding::EncodingError> {
        use qrcode::render::svg;
        let code = qrcode::QrCode::with_error_correction_level(self.qr_payload(), qrcode::EcLevel::M)
            .map_err(|e| crate::encoding::EncodingError::Qr(e.to_string()))?;
        Ok(code.render::<svg::Color<'_>>().quiet_zone(true).build())
    }
}

impl fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyNumber({})", self.digits())
    }
}

impl fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;
    use rand_core::OsRng;

    #[test]
    fn digits_and_payload_shapes() {
        let (a, b) = (SigningKey::generate(&mut OsRng).public(), SigningKey::generate(&mut OsRng).public());
        let ab = SafetyNumber::new(&a, &b);
        let ba = SafetyNumber::new(&b, &a);
        assert_eq!(ab.digits(), ba.digits());
        assert_eq!(ab.digit_groups().len(), 16);
        assert!(ab.digit_groups().iter().all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
        assert_eq!(ab.qr_payload().len(), QR_PAYLOAD_LEN);
        assert_eq!(ba.verify_scanned(&ab.qr_payload()), Ok(()));
        assert_eq!(ab.verify_scanned(&ab.qr_payload()), Err(SafetyNumberError::Mismatch), "our own screen");
        for n in 0..QR_PAYLOAD_LEN {
            assert!(ba.verify_scanned(&ab.qr_payload()[..n]).is_err());
        }
        let mut v2 = ab.qr_payload();
        v2[3] = 2;
        assert_eq!(ba.verify_scanned(&v2), Err(SafetyNumberError::Version { found: 2, supported: 1 }));
    }
}
