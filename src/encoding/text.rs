//! The canonical text form shared by every text encoding (iroh-tickets
//! style: a kind prefix, the bytes, a checksum, in a case-insensitive
//! alphabet):
//!
//! ```text
//! text     = kind "-" version "-" body          ; any letter case
//! kind     = "invite" | "address"
//! version  = 1*3DIGIT                            ; canonical decimal, judged first
//! body     = base32(payload || crc32(kind "-" version "-" || payload))
//!            ; RFC 4648 alphabet, no padding, written lowercase
//! ```
//!
//! The version is read before anything a newer version may change (the
//! alphabet, the checksum, the length), so a newer text is always reported
//! as [`EncodingError::VersionTooNew`]. The CRC-32 covers the prefix and the
//! payload; one mistyped character changes at most 5 consecutive bits, a
//! burst every CRC-32 detects, so no single typo yields another valid text.

use data_encoding::BASE32_NOPAD;

use super::EncodingError;

/// What a text form holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextKind {
    /// An invitation ticket.
    Ticket,
    /// A known address.
    Address,
}

impl TextKind {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Self::Ticket => "invite-",
            Self::Address => "address-",
        }
    }
}

const CRC_LEN: usize = 4;

/// Characters of base32 (no padding) for `n` bytes.
pub(crate) const fn b32_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Text length of a payload of `n` bytes under `kind`, version `v` (< 10).
pub(crate) const fn text_len(kind: TextKind, n: usize) -> usize {
    let prefix = match kind {
        TextKind::Ticket => 7,
        TextKind::Address => 8,
    };
    prefix + 2 + b32_len(n + CRC_LEN)
}

fn crc(head: &str, payload: &[u8]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    h.update(head.as_bytes());
    h.update(payload);
    h.finalize().to_be_bytes()
}

/// Encodes `payload` as `kind-version-body`, lowercase.
pub(crate) fn encode(kind: TextKind, version: u8, payload: &[u8]) -> String {
    let head = format!("{}{version}-", kind.prefix());
    let mut all = zeroize::Zeroizing::new(Vec::with_capacity(payload.len() + CRC_LEN));
    all.extend_from_slice(payload);
    all.extend_from_slice(&crc(&head, payload));
    let mut body = BASE32_NOPAD.encode(&all);
    body.make_ascii_lowercase();
    let out = format!("{head}{body}");
    zeroize::Zeroize::zeroize(&mut body);
    out
}

/// Which kind of text `s` starts with (any letter case), if any.
pub(crate) fn kind_of(s: &str) -> Option<TextKind> {
    [TextKind::Ticket, TextKind::Address].into_iter().find(|k| {
        let p = k.prefix();
        s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    })
}

/// Decodes a text of `kind` whose payload is one of `lens` bytes long
/// (ascending), for format `version`. Checks, in order: the kind, the
/// version, the length, the alphabet, the checksum.
pub(crate) fn decode(
    s: &str,
    kind: TextKind,
    version: u8,
    lens: &[usize],
) -> Result<zeroize::Zeroizing<Vec<u8>>, EncodingError> {
    match kind_of(s) {
        Some(k) if k == kind => {}
        Some(TextKind::Ticket) => return Err(EncodingError::NotAnAddress),
        Some(TextKind::Address) => return Err(EncodingError::NotATicket),
        None => return Err(EncodingError::NotFound),
    }
    let rest = &s[kind.prefix().len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let v = &rest[..digits];
    let canonical = !v.is_empty() && v.len() <= 3 && (v == "0" || !v.starts_with('0'));
    let found: u32 = if canonical { v.parse().map_err(|_| EncodingError::BadNumber(super::token(v)))? } else { 0 };
    if !canonical {
        return Err(if v.is_empty() {
            EncodingError::Truncated { expected: text_len(kind, lens[0]), got: s.len() }
        } else {
            EncodingError::BadNumber(super::token(v))
        });
    }
    let supported = u32::from(version);
    if found > supported {
        return Err(EncodingError::VersionTooNew { found, supported });
    }
    if found < supported {
        return Err(EncodingError::VersionTooOld { found, supported });
    }
    let body = match rest[digits..].strip_prefix('-') {
        Some(b) => b,
        None if rest.len() == digits => {
            return Err(EncodingError::Truncated { expected: text_len(kind, lens[0]), got: s.len() });
        }
        None => return Err(EncodingError::BadEncoding { what: "text form (no '-' after the version)" }),
    };
    // The base32 alphabet is ASCII: anything else is refused before the
    // body is measured or cut (a cut inside a multi-byte character would
    // panic).
    if !body.is_ascii() {
        return Err(EncodingError::BadEncoding { what: "text form (a character outside base32)" });
    }
    // The length, from the number of characters alone (and, between two
    // lengths, whether a shorter valid text is followed by more).
    let head = format!("{}{version}-", kind.prefix());
    let want: Vec<usize> = lens.iter().map(|n| b32_len(n + CRC_LEN)).collect();
    let max = want.last().copied().unwrap_or(0);
    if !want.contains(&body.len()) {
        if let Some(w) = want.iter().rev().find(|w| **w < body.len())
            && checked(&head, &body[..*w]).is_ok()
        {
            return Err(EncodingError::TrailingGarbage(body.len() - w));
        }
        if body.len() > max {
            return Err(EncodingError::TrailingGarbage(body.len() - max));
        }
        let next = want.iter().find(|w| **w > body.len()).copied().unwrap_or(max);
        let head_len = s.len() - body.len();
        return Err(EncodingError::Truncated { expected: head_len + next, got: s.len() });
    }
    checked(&head, body)
}

/// Decodes a base32 body and checks its CRC-32.
fn checked(head: &str, body: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, EncodingError> {
    let mut upper = zeroize::Zeroizing::new(body.as_bytes().to_vec());
    upper.make_ascii_uppercase();
    let all = zeroize::Zeroizing::new(
        BASE32_NOPAD.decode(&upper).map_err(|_| EncodingError::BadEncoding { what: "text form" })?,
    );
    let (payload, sum) = all.split_at(all.len().saturating_sub(CRC_LEN));
    if sum.len() != CRC_LEN || crc(head, payload) != sum {
        return Err(EncodingError::ChecksumMismatch);
    }
    Ok(zeroize::Zeroizing::new(payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_any_case() {
        let t = encode(TextKind::Ticket, 1, &[1, 2, 3, 4, 5]);
        assert!(t.starts_with("invite-1-"), "{t}");
        assert_eq!(t.len(), text_len(TextKind::Ticket, 5));
        assert_eq!(&decode(&t, TextKind::Ticket, 1, &[5]).unwrap()[..], &[1, 2, 3, 4, 5]);
        assert_eq!(&decode(&t.to_uppercase(), TextKind::Ticket, 1, &[5]).unwrap()[..], &[1, 2, 3, 4, 5]);
        assert_eq!(decode(&t, TextKind::Address, 1, &[5]).unwrap_err(), EncodingError::NotAnAddress);
        assert_eq!(
            decode(&t.replace("-1-", "-2-"), TextKind::Ticket, 1, &[5]).unwrap_err(),
            EncodingError::VersionTooNew { found: 2, supported: 1 }
        );
        assert_eq!(
            decode(&t.replace("-1-", "-01-"), TextKind::Ticket, 1, &[5]).unwrap_err(),
            EncodingError::BadNumber("01".into())
        );
    }
}
