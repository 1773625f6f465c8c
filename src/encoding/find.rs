//! One entry point for anything scanned or pasted: [`parse_scanned`] finds
//! a ticket or an address in surrounding text (a chat message, an email) in
//! any of its forms (text armor, `SCHEME://invite/…`, `SCHEME://request/…`,
//! an https link to a configured page, or the bare text form), and
//! [`parse_scanned_bytes`] takes what a QR scanner returns (the binary
//! ticket, or text).
//!
//! Refusals are typed: damaged ([`EncodingError::ChecksumMismatch`],
//! [`EncodingError::BadEncoding`]), truncated ([`EncodingError::Truncated`]),
//! not ours ([`EncodingError::NotFound`]), a VeilidChat invitation
//! ([`EncodingError::VeilidChatInvitation`]), a newer version
//! ([`EncodingError::VersionTooNew`], judged before anything a newer
//! version may have changed).

use super::blob::{LOCKED_LEN, PLAIN_LEN, VERSION};
use super::text::{TextKind, kind_of};
use super::uri::{HttpsBase, LinkConfig};
use super::{Address, EncodingError, MAX_TEXT_LEN, Ticket};

/// What was scanned or pasted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scanned {
    /// An invitation ticket: receive it.
    Ticket(Ticket),
    /// A known address: send it a contact request.
    Address(Address),
}

/// Characters a link may contain as far as the finder is concerned: more
/// than a valid link holds (`? = & @ % :`), so that a link with a query or
/// user info is refused for what it is rather than cut short.
fn link_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:#+?=&@%~".contains(c)
}

fn text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// End of a token starting at `start`, with trailing sentence punctuation
/// removed.
fn token_end(text: &str, start: usize, ok: fn(char) -> bool) -> usize {
    let end = text[start..].find(|c: char| !ok(c)).map_or(text.len(), |e| start + e);
    let trimmed = text[start..end].trim_end_matches(['.', ',', ':', ';', '?', '-']);
    start + trimmed.len()
}

/// Parses a bare text form of either kind.
fn from_text(s: &str) -> Result<Scanned, EncodingError> {
    match kind_of(s) {
        Some(TextKind::Ticket) => Ticket::from_text(s).map(Scanned::Ticket),
        Some(TextKind::Address) => Address::from_text(s).map(Scanned::Address),
        None => Err(EncodingError::NotFound),
    }
}

fn from_https(link: &str, bases: &[HttpsBase]) -> Result<Scanned, EncodingError> {
    match link.split_once('#').map(|(_, f)| kind_of(f)) {
        Some(Some(TextKind::Ticket)) => Ticket::from_https(link, bases).map(Scanned::Ticket),
        Some(Some(TextKind::Address)) => Address::from_https(link, bases).map(Scanned::Address),
        _ => Err(EncodingError::NotFound),
    }
}

/// Finds the first ticket or address in `text` (by position) and parses it
/// strictly. When candidates are found but none parses, the first
/// candidate's error is returned; when there is none,
/// [`EncodingError::NotFound`].
pub fn parse_scanned(text: &str, links: &LinkConfig) -> Result<Scanned, EncodingError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(EncodingError::TooLarge(text.len()));
    }
    // ASCII lower-casing keeps every byte offset: markers are searched in
    // `lower`, candidates parsed from `text` (the parsers ignore case).
    let lower = text.to_ascii_lowercase();
    let mut candidates: Vec<(usize, Result<Scanned, EncodingError>)> = Vec::new();

    if let Some(p) = lower.find("begin veilidchat") {
        let line_start = lower[..p].rfind('\n').map_or(0, |l| l + 1);
        candidates.push((line_start, Err(EncodingError::VeilidChatInvitation)));
    }

    // Every search starts after the previous candidate, so the work is
    // linear in the text: a paste of many markers with nothing between
    // them must not cost quadratic time. Within one span, the first and the
    // last marker are tried (a marker glued to junk in front of a genuine
    // one still finds the genuine one).

    // Armor blocks: the block of an END is from the last BEGIN before it.
    let mut from = 0;
    while let Some(p) = lower[from..].find("-----begin ") {
        let first = from + p;
        let Some(e) = lower[first..].find("-----end ") else {
            // No END after this BEGIN: none after any later one either.
            candidates.push((first, Err(EncodingError::ArmorMissingEnd)));
            break;
        };
        let end_start = first + e;
        let start = lower[first..end_start].rfind("-----begin ").map_or(first, |l| first + l);
        let end = lower[end_start + 9..].find("-----").map_or(text.len(), |x| end_start + 9 + x + 5);
        candidates.push((start, Ticket::from_armor(&text[start..end]).map(Scanned::Ticket)));
        from = end.max(start + 11);
    }

    // Scheme URIs and https links.
    let scheme = links.scheme.as_str();
    let invite = format!("{scheme}://invite");
    let request = format!("{scheme}://request");
    for marker in [invite.as_str(), request.as_str(), "https://"] {
        let mut from = 0;
        while let Some(p) = lower[from..].find(marker) {
            let first = from + p;
            let end = token_end(text, first, link_char);
            let last = lower[first..end].rfind(marker).map_or(first, |l| first + l);
            for start in if last == first { vec![first] } else { vec![first, last] } {
                let token = &text[start..end];
                let r = if marker == "https://" {
                    from_https(token, &links.https)
                } else if marker == invite {
                    Ticket::from_uri(token, &links.scheme).map(Scanned::Ticket)
                } else {
                    Address::from_uri(token, &links.scheme).map(Scanned::Address)
                };
                if r != Err(EncodingError::NotFound) {
                    candidates.push((start, r));
                }
            }
            from = end.max(first + marker.len());
        }
    }

    // Bare text forms, at the start of a word that is not part of a link.
    for marker in [TextKind::Ticket.prefix(), TextKind::Address.prefix()] {
        let mut from = 0;
        while let Some(p) = lower[from..].find(marker) {
            let start = from + p;
            let end = token_end(text, start, text_char).max(start + marker.len());
            let glued = lower[..start].chars().next_back().is_some_and(|c| link_char(c) || c == '-');
            if !glued {
                candidates.push((start, from_text(&text[start..end])));
            }
            from = end;
        }
    }

    candidates.sort_by_key(|(p, _)| *p);
    let mut first_err = None;
    for (_, r) in candidates {
        match r {
            Ok(t) => return Ok(t),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(EncodingError::NotFound))
}

/// Parses what a QR scanner returned: the binary ticket (the QR code's
/// content, byte mode), VeilidChat's binary invitation (refused as such),
/// or text (as [`parse_scanned`]).
///
/// Text and binary are told apart by UTF-8: a binary ticket is 48 random
/// bytes after its first, which are valid UTF-8 with a chance of about
/// 2^-39, while every text form is; UTF-8 in which no text form is found,
/// of a binary ticket's length and version, is read as one. Binary content is ours only if its first byte
/// names this version (then parsed strictly) or one of the next few
/// (`VersionTooNew`: "update the app"); anything else is `NotFound`.
pub fn parse_scanned_bytes(bytes: &[u8], links: &LinkConfig) -> Result<Scanned, EncodingError> {
    if bytes.len() > MAX_TEXT_LEN {
        return Err(EncodingError::TooLarge(bytes.len()));
    }
    if is_veilidchat_protobuf(bytes) {
        return Err(EncodingError::VeilidChatInvitation);
    }
    if let Ok(text) = core::str::from_utf8(bytes) {
        return match parse_scanned(text, links) {
            // A binary ticket whose random bytes happen to be valid UTF-8
            // (about 2^-39): nothing textual found, the length and version
            // of ours.
            Err(EncodingError::NotFound)
                if matches!(bytes.len(), PLAIN_LEN | LOCKED_LEN) && bytes[0] >> 4 == VERSION =>
            {
                Ticket::from_bytes(bytes).map(Scanned::Ticket)
            }
            r => r,
        };
    }
    match bytes.first().map(|b| b >> 4) {
        Some(v) if v == VERSION => Ticket::from_bytes(bytes).map(Scanned::Ticket),
        Some(v) if v > VERSION && v <= VERSION + NEXT_VERSIONS => {
            Err(EncodingError::VersionTooNew { found: v.into(), supported: VERSION.into() })
        }
        _ => Err(EncodingError::NotFound),
    }
}

/// How many versions after this one a binary ticket is recognised as.
const NEXT_VERSIONS: u8 = 3;

/// One protobuf field at `b[i..]`: (field number, wire type, start of its
/// value, end).
fn field(b: &[u8], i: usize) -> Option<(u64, u8, usize, usize)> {
    fn varint(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = *b.get(i)?;
            i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Some((v, i));
            }
        }
        None
    }
    let (key, i) = varint(b, i)?;
    let wire = u8::try_from(key & 7).ok()?;
    let (start, end) = match wire {
        0 => (i, varint(b, i)?.1),
        1 => (i, i.checked_add(8)?),
        2 => {
            let (len, j) = varint(b, i)?;
            (j, j.checked_add(usize::try_from(len).ok()?)?)
        }
        5 => (i, i.checked_add(4)?),
        _ => return None,
    };
    (end <= b.len()).then_some((key >> 3, wire, start, end))
}

/// Whether `b` is one or more well-formed protobuf fields, nothing else.
fn all_fields(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        match field(b, i) {
            Some((n, _, _, end)) if n > 0 => i = end,
            _ => return false,
        }
    }
    !b.is_empty()
}

/// VeilidChat's QR code holds its `SignedContactInvitation` protobuf: field
/// 1 (`contact_invitation`, bytes holding a protobuf message) and field 2
/// (`identity_signature`, a message), each once, nothing else; larger than
/// any binary form of ours.
pub(crate) fn is_veilidchat_protobuf(b: &[u8]) -> bool {
    let mut seen = [false; 2];
    let mut i = 0;
    while i < b.len() {
        let Some((n @ 1..=2, 2, start, end)) = field(b, i) else { return false };
        let slot = usize::from(n == 2);
        if seen[slot] || !all_fields(&b[start..end]) {
            return false;
        }
        seen[slot] = true;
        i = end;
    }
    seen == [true, true] && b.len() > super::blob::LOCKED_LEN
}
