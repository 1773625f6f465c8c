//! Text armor: BEGIN/END lines around the canonical text form of the ticket
//! (`invite-2-...`), in lines of exactly 64 characters (the last 1..=64).
//! The labels are read in any letter case, like the text inside; the text's
//! CRC-32 is the armor's checksum and is always verified.

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
    if label.eq_ignore_ascii_case("CONTACT INVITATION") {
        Some(InvitationKind::Contact)
    } else if label.eq_ignore_ascii_case("DEVICE LINK INVITATION") {
        Some(InvitationKind::DeviceLink)
    } else {
        None
    }
}

/// `-----BEGIN x-----` / `-----END x-----` in any letter case: the label.
fn strip<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let head = format!("-----{word} ");
    let l = line.get(..head.len())?;
    if !l.eq_ignore_ascii_case(&head) {
        return None;
    }
    line[head.len()..].strip_suffix("-----")
}

/// Whether `line` is VeilidChat's armor header (`--- BEGIN VEILIDCHAT ...`).
fn is_veilidchat(line: &str) -> bool {
    line.to_ascii_lowercase().contains("begin veilidchat")
}

impl Ticket {
    /// The text armor (ends with a newline).
    pub fn to_armor(&self) -> String {
        let text = zeroize::Zeroizing::new(self.to_string());
        let l = label(self.kind);
        let mut out = format!("-----BEGIN {l}-----\n");
        for chunk in text.as_bytes().chunks(LINE_WIDTH) {
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
        if is_veilidchat(first) {
            return Err(EncodingError::VeilidChatInvitation);
        }
        let begin = strip(first, "BEGIN").ok_or(EncodingError::ArmorMissingBegin)?;
        let kind = kind_of(begin).ok_or(EncodingError::ArmorLabelMismatch)?;
        let rest: Vec<&str> = lines.collect();
        let (end_line, body) = rest.split_last().ok_or(EncodingError::ArmorMissingEnd)?;
        let end = strip(end_line, "END").ok_or(EncodingError::ArmorMissingEnd)?;
        if kind_of(end) != Some(kind) {
            return Err(EncodingError::ArmorLabelMismatch);
        }
        if body.is_empty() {
            return Err(EncodingError::ArmorEmpty);
        }
        let mut joined = zeroize::Zeroizing::new(String::with_capacity(body.len() * LINE_WIDTH));
        for (i, line) in body.iter().enumerate() {
            let last = i + 1 == body.len();
            if line.len() > LINE_WIDTH || line.is_empty() || (!last && line.len() != LINE_WIDTH) {
                return Err(EncodingError::ArmorLineLength { line: i + 1 });
            }
            joined.push_str(line);
        }
        let t = Self::from_text(&joined)?;
        if t.kind != kind {
            return Err(EncodingError::ArmorKindMismatch);
        }
        Ok(t)
    }
}
