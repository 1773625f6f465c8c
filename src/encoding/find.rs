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

    // Armor blocks.
    let mut from = 0;
    while let Some(p) = text[from..].find("-----BEGIN ") {
        let start = from + p;
        let result = match text[start..].find("-----END ") {
            Some(e) => {
                let end_start = start + e;
                let end = text[end_start + 9..].find("-----").map_or(text.len(), |x| end_start + 9 + x + 5);
                Ticket::from_armor(&text[start..end])
            }
            None => Err(EncodingError::ArmorMissingEnd),
        };
        candidates.push((start, result));
        from = start + 11;
    }

    // Scheme URIs.
    let prefix = format!("{}://invite", scheme.as_str());
    let mut from = 0;
    while let Some(p) = text[from..].find(&prefix) {
        let start = from + p;
        let end = token_end(text, start);
        candidates.push((start, Ticket::from_uri(&text[start..end], scheme)));
        from = start + prefix.len();
    }

    // https links with a ticket fragment.
    let mut from = 0;
    while let Some(p) = text[from..].find("https://") {
        let start = from + p;
        let end = token_end(text, start);
        let link = &text[start..end];
        if link.contains("#v/") {
            candidates.push((start, Ticket::from_https(link)));
        }
        from = start + 8;
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
