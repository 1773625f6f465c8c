//! Finding a ticket pasted inside surrounding text (a chat message, an
//! email): an armor block, a `SCHEME://invite/...` URI, an https link with a
//! `#v/...` fragment, or a bare base64url blob.

use data_encoding::BASE64URL_NOPAD;

use super::blob::{LOCKED_LEN, PLAIN_LEN};
use super::{EncodingError, MAX_TEXT_LEN, Ticket, UriScheme};

fn uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:#+".contains(c)
}

/// End of a URI-like token starting at `start`, with trailing sentence
/// punctuation removed.
fn token_end(text: &str, start: usize) -> usize {
    let end = text[start..].find(|c: char| !uri_char(c)).map_or(text.len(), |e| start + e);
    let trimmed = text[start..end].trim_end_matches(['.', ',', ':', ';']);
    start + trimmed.len()
}

/// Finds the first ticket in `text` (by position). When candidates are found
/// but none parses, the first candidate's error is returned.
pub fn find_in_text(text: &str, scheme: &UriScheme) -> Result<Ticket, EncodingError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(EncodingError::TooLarge(text.len()));
    }
    let mut candidates: Vec<(usize, Result<Ticket, EncodingError>)> = Vec::new();

    // Every search starts after the previous candidate, so the work is
    // linear in the text: a paste of many "-----BEGIN " or "https://" with
    // nothing between them must not cost quadratic time. Within one span,
    // the first and the last marker are tried (a marker glued to junk in
    // front of a genuine one still finds the genuine one).

    // Armor blocks: the block of an END is from the last BEGIN before it.
    let mut from = 0;
    while let Some(p) = text[from..].find("-----BEGIN ") {
        let first = from + p;
        let Some(e) = text[first..].find("-----END ") else {
            // No END after this BEGIN: none after any later one either.
            candidates.push((first, Err(EncodingError::ArmorMissingEnd)));
            break;
        };
        let end_start = first + e;
        let start = text[first..end_start].rfind("-----BEGIN ").map_or(first, |l| first + l);
        let end = text[end_start + 9..].find("-----").map_or(text.len(), |x| end_start + 9 + x + 5);
        candidates.push((start, Ticket::from_armor(&text[start..end])));
        from = end.max(start + 11);
    }

    // Scheme URIs and https links with a ticket fragment.
    let prefix = format!("{}://invite", scheme.as_str());
    for marker in [prefix.as_str(), "https://"] {
        let mut from = 0;
        while let Some(p) = text[from..].find(marker) {
            let first = from + p;
            let end = token_end(text, first);
            let last = text[first..end].rfind(marker).map_or(first, |l| first + l);
            for start in if last == first { vec![first] } else { vec![first, last] } {
                let token = &text[start..end];
                if marker == "https://" {
                    if token.contains("#v/") {
                        candidates.push((start, Ticket::from_https(token)));
                    }
                } else {
                    candidates.push((start, Ticket::from_uri(token, scheme)));
                }
            }
            from = end.max(first + marker.len());
        }
    }

    // Bare base64url blobs of exactly a ticket's length.
    let b64_len = |n: usize| (n * 4).div_ceil(3);
    let mut pos = 0;
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
        let start = pos;
        pos += word.len() + 1;
        if (word.len() == b64_len(PLAIN_LEN) || word.len() == b64_len(LOCKED_LEN))
            && let Ok(bytes) = BASE64URL_NOPAD.decode(word.as_bytes())
        {
            candidates.push((start, Ticket::from_bytes(&bytes)));
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
