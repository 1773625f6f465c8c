//! Text armor: BEGIN/END lines around base64url (no padding) of the binary
//! ticket in lines of exactly 64 characters (the last 1..=64). The ticket's
//! CRC-32 is the armor's checksum and is always verified.

use data_encoding::BASE64URL_NOPAD;

use super::{EncodingError, InvitationKind, MAX_TEXT_LEN, Ticket};

/// Body line width.
pub(crate) const LINE_WIDTH: usize = 64;

fn label(kind: InvitationKind) -> &'static str {
    match kind {
        InvitationKind::Contact => "CONTACT INVITATION",
        InvitationKind::DeviceLink => "DEVICE LINK INVITATION",
    }
}

fn kind_of(label: &str) -> Option<InvitationKind> {
    match label {
        "CONTACT INVITATION" => Some(InvitationKind::Contact),
        "DEVICE LINK INVITATION" => Some(InvitationKind::DeviceLink),
        _ => None,
    }
}

impl Ticket {
    /// The text armor (ends with a newline).
    pub fn to_armor(&self) -> String {
        let body = BASE64URL_NOPAD.encode(&self.to_bytes());
        let l = label(self.kind);
        let mut out = format!("-----BEGIN {l}-----\n");
        for chunk in body.as_bytes().chunks(LINE_WIDTH) {
            out.push_str(&String::from_utf8_lossy(chunk));
            out.push('\n');
        }
        out.push_str(&format!("-----END {l}-----\n"));
        out
    }

    /// Parses text armor (strict; surrounding whitespace is allowed).
    pub fn from_armor(text: &str) -> Result<Self, EncodingError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(text.len()));
        }
        if text.contains('\r') {
            return Err(EncodingError::ArmorCarriageReturn);
        }
        let mut lines = text.trim().split('\n');
        let first = lines.next().unwrap_or_default();
        let begin = first
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
            .ok_or(EncodingError::ArmorMissingBegin)?;
        let kind = kind_of(begin).ok_or(EncodingError::ArmorLabelMismatch)?;
        let rest: Vec<&str> = lines.collect();
        let (end_line, body) = rest.split_last().ok_or(EncodingError::ArmorMissingEnd)?;
        let end = end_line
            .strip_prefix("-----END ")
            .and_then(|r| r.strip_suffix("-----"))
            .ok_or(EncodingError::ArmorMissingEnd)?;
        if end != begin {
            return Err(EncodingError::ArmorLabelMismatch);
        }
        if body.is_empty() {
            return Err(EncodingError::ArmorEmpty);
        }
        let mut b64 = String::with_capacity(body.len() * LINE_WIDTH);
        for (i, line) in body.iter().enumerate() {
            let last = i + 1 == body.len();
            if line.len() > LINE_WIDTH || line.is_empty() || (!last && line.len() != LINE_WIDTH) {
                return Err(EncodingError::ArmorLineLength { line: i + 1 });
            }
            b64.push_str(line);
        }
        let bytes =
            BASE64URL_NOPAD.decode(b64.as_bytes()).map_err(|_| EncodingError::BadEncoding { what: "armor body" })?;
        let t = Self::from_bytes(&bytes)?;
        if t.kind != kind {
            return Err(EncodingError::ArmorKindMismatch);
        }
        Ok(t)
    }
}
