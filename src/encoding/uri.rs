//! Command-style URIs, after PZP/PPPPP invite URIs:
//! `SCHEME://invite/v/1/dht/vld0/KEY/contact/SECRET[/locked/argon2id/M.T.P/SALT]`
//! (`promise.account-add/SECRET` instead of `contact/SECRET` for device links),
//! and the https form `https://HOST/PATH#v/1/...` that keeps every secret in
//! the fragment (browsers never send fragments to servers).
//!
//! Every command has a fixed arity; unknown commands, missing or repeated
//! ones, empty segments, percent-escapes, queries and non-canonical numbers or
//! base64 are errors.

use data_encoding::BASE64URL_NOPAD;

use super::blob::{VERSION, check_lock};
use super::{EncodingError, InvitationKind, LockParams, MAX_TEXT_LEN, Ticket, TicketSecret};
use crate::crypto::SecretKey;

/// A validated URI scheme (RFC 3986: a letter, then letters, digits, `+ - .`; lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriScheme(String);

impl UriScheme {
    /// Validates a scheme such as `chat`.
    pub fn new(s: &str) -> Result<Self, EncodingError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if ok { Ok(Self(s.to_owned())) } else { Err(EncodingError::InvalidScheme(super::token(s))) }
    }
    /// The scheme.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const COMMANDS: [(&str, usize); 5] = [("v", 1), ("dht", 2), ("contact", 1), ("promise.account-add", 1), ("locked", 3)];

fn b64(what: &'static str, s: &str, len: usize) -> Result<Vec<u8>, EncodingError> {
    let v = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| EncodingError::BadEncoding { what })?;
    if v.len() != len {
        return Err(EncodingError::WrongLength { what, expected: len, got: v.len() });
    }
    Ok(v)
}

fn number(s: &str) -> Result<u32, EncodingError> {
    let canonical =
        !s.is_empty() && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(EncodingError::BadNumber(super::token(s)));
    }
    s.parse().map_err(|_| EncodingError::BadNumber(super::token(s)))
}

fn small(s: &str) -> Result<u8, EncodingError> {
    u8::try_from(number(s)?).map_err(|_| EncodingError::BadNumber(super::token(s)))
}

impl Ticket {
    /// The command path (`v/1/dht/vld0/...`), shared by both URI forms.
    fn command_path(&self) -> String {
        let e = |b: &[u8]| BASE64URL_NOPAD.encode(b);
        let kind = match self.kind {
            InvitationKind::Contact => "contact",
            InvitationKind::DeviceLink => "promise.account-add",
        };
        let (secret, lock) = match &self.secret {
            TicketSecret::Plain(s) => (e(s.expose()), String::new()),
            TicketSecret::Locked { masked, params: p } => (
                e(masked.expose()),
                format!(
                    "/locked/{}/{}.{}.{}/{}",
                    if p.pin { "argon2id-pin" } else { "argon2id" },
                    p.m_cost_log2,
                    p.t_cost,
                    p.p_cost,
                    e(&p.salt)
                ),
            ),
        };
        format!("v/{VERSION}/dht/vld0/{}/{kind}/{secret}{lock}", e(&self.record))
    }

    /// `SCHEME://invite/...`.
    pub fn to_uri(&self, scheme: &UriScheme) -> String {
        format!("{}://invite/{}", scheme.0, self.command_path())
    }

    /// Parses `SCHEME://invite/...` (strict).
    pub fn from_uri(uri: &str, scheme: &UriScheme) -> Result<Self, EncodingError> {
        if uri.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(uri.len()));
        }
        let (found, rest) = uri
            .split_once("://")
            .ok_or_else(|| EncodingError::WrongScheme { expected: scheme.0.clone(), found: String::new() })?;
        if found != scheme.0 {
            return Err(EncodingError::WrongScheme { expected: scheme.0.clone(), found: super::token(found) });
        }
        let path = match rest.strip_prefix("invite") {
            Some("") => return Err(EncodingError::MissingCommand("v")),
            Some(p) => p.strip_prefix('/').ok_or(EncodingError::NotAnInvitation)?,
            None => return Err(EncodingError::NotAnInvitation),
        };
        parse_commands(path)
    }

    /// `https://HOST/PATH#v/1/...`: `base` is the app's page (no fragment).
    pub fn to_https(&self, base: &str) -> Result<String, EncodingError> {
        if !base.starts_with("https://") || base.len() <= "https://".len() {
            return Err(EncodingError::BadLink("must start with https:// and name a host"));
        }
        if base.contains('#') || base.chars().any(char::is_whitespace) {
            return Err(EncodingError::BadLink("the base must have no fragment or whitespace"));
        }
        Ok(format!("{base}#{}", self.command_path()))
    }

    /// Parses an https link; the ticket is in the fragment.
    pub fn from_https(link: &str) -> Result<Self, EncodingError> {
        if link.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(link.len()));
        }
        if !link.starts_with("https://") {
            return Err(EncodingError::BadLink("not an https link"));
        }
        let (_, fragment) = link.split_once('#').ok_or(EncodingError::BadLink("no fragment"))?;
        parse_commands(fragment)
    }
}

fn parse_commands(path: &str) -> Result<Ticket, EncodingError> {
    if let Some(c) = path.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c))) {
        return Err(EncodingError::UnexpectedCharacter(c));
    }
    let segs: Vec<&str> = path.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(EncodingError::EmptySegment);
    }
    let mut found: Vec<(&str, &[&str])> = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let name = segs[i];
        let arity = COMMANDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| EncodingError::UnknownCommand(super::token(name)))?;
        let args = segs.get(i + 1..i + 1 + arity).ok_or_else(|| EncodingError::WrongArity {
            command: super::token(name),
            expected: arity,
            got: segs.len() - i - 1,
        })?;
        if found.iter().any(|(n, _)| *n == name) {
            return Err(EncodingError::DuplicateCommand(super::token(name)));
        }
        if name == "v" && !found.is_empty() {
            return Err(EncodingError::VersionNotFirst);
        }
        if name != "v" && found.is_empty() {
            return Err(if segs.contains(&"v") {
                EncodingError::VersionNotFirst
            } else {
                EncodingError::MissingCommand("v")
            });
        }
        found.push((name, args));
        i += 1 + arity;
    }
    let get = |n: &str| found.iter().find(|(c, _)| *c == n).map(|(_, a)| *a);
    let v = get("v").ok_or(EncodingError::MissingCommand("v"))?;
    match number(v[0])? {
        x if x == u32::from(VERSION) => {}
        x if x < u32::from(VERSION) => {
            return Err(EncodingError::VersionTooOld { found: x, supported: VERSION.into() });
        }
        x => return Err(EncodingError::VersionTooNew { found: x, supported: VERSION.into() }),
    }
    let dht = get("dht").ok_or(EncodingError::MissingCommand("dht"))?;
    if dht[0] != "vld0" {
        return Err(EncodingError::UnsupportedCryptoKind(super::token(dht[0])));
    }
    let mut record = [0u8; 32];
    record.copy_from_slice(&b64("record key", dht[1], 32)?);
    let (kind, secret) = match (get("contact"), get("promise.account-add")) {
        (Some(s), None) => (InvitationKind::Contact, s[0]),
        (None, Some(s)) => (InvitationKind::DeviceLink, s[0]),
        (Some(_), Some(_)) => return Err(EncodingError::DuplicateCommand("contact/promise.account-add".into())),
        (None, None) => return Err(EncodingError::MissingCommand("contact")),
    };
    let secret = SecretKey::from_slice(&b64("secret", secret, 32)?)
        .map_err(|_| EncodingError::BadEncoding { what: "secret" })?;
    let secret = match get("locked") {
        None => TicketSecret::Plain(secret),
        Some(l) => {
            let pin = match l[0] {
                "argon2id" => false,
                "argon2id-pin" => true,
                other => return Err(EncodingError::UnsupportedKdf(super::token(other))),
            };
            let p: Vec<&str> = l[1].split('.').collect();
            let [m, t, pc] = p.as_slice() else { return Err(EncodingError::BadNumber(super::token(l[1]))) };
            let mut salt = [0u8; 16];
            salt.copy_from_slice(&b64("salt", l[2], 16)?);
            let params = LockParams { salt, m_cost_log2: small(m)?, t_cost: small(t)?, p_cost: small(pc)?, pin };
            check_lock(&params)?;
            TicketSecret::Locked { masked: secret, params }
        }
    };
    Ok(Ticket { kind, record, secret })
}
