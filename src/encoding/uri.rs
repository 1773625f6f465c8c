//! The URI and https forms. Both carry exactly the canonical text form
//! (see [`Ticket`]'s `Display`) and nothing the parser interprets field by
//! field:
//!
//! ```text
//! SCHEME://invite/TEXT            a ticket   (TEXT = invite-2-...)
//! SCHEME://request/TEXT           an address (TEXT = address-1-...)
//! https://HOST[:PORT]/PATH#TEXT   either, for a configured HttpsBase
//! ```
//!
//! The scheme, `invite`/`request` and the host are compared ignoring letter
//! case (the text form is case-insensitive too), so a link that a chat app
//! lower- or upper-cases still opens. An https link is refused unless its
//! host is one the app configured, and it has no user info, no port (unless
//! configured), no query, and the configured path (in any letter case); browsers never send the
//! fragment, where the ticket is, to the server.

use super::blob::PLAIN_LEN;
use super::text::{TextKind, text_len};
use super::{Address, EncodingError, MAX_TEXT_LEN, Ticket, address};

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

/// The web page an app's https links point to: `https://HOST[:PORT]/PATH`,
/// validated. Links are `BASE#TEXT`; a link is accepted only for a base the
/// app configured ([`LinkConfig::https`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpsBase {
    host: String,
    port: Option<u16>,
    path: String,
}

fn host_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn path_ok(p: &str) -> bool {
    p.starts_with('/') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
}

/// Splits `https://AUTHORITY/PATH` (no fragment) into its parts, refusing
/// user info, queries and anything but a DNS host and a decimal port.
fn split_https(s: &str) -> Result<(String, Option<u16>, String), EncodingError> {
    let rest = match s.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("https://") => &s[8..],
        _ => return Err(EncodingError::BadLink("not an https link")),
    };
    if rest.contains('?') {
        return Err(EncodingError::LinkQuery);
    }
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    if authority.contains('@') {
        return Err(EncodingError::LinkUserinfo);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let canonical =
                !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) && !p.starts_with('0');
            let port = if canonical { p.parse::<u16>().ok() } else { None };
            (h, Some(port.ok_or(EncodingError::LinkPort)?))
        }
        None => (authority, None),
    };
    if !host_ok(host) {
        return Err(EncodingError::LinkHost);
    }
    if !path_ok(path) {
        return Err(EncodingError::LinkPath);
    }
    Ok((host.to_ascii_lowercase(), port, path.to_owned()))
}

impl HttpsBase {
    /// Validates a base such as `https://chat.example/invite`: https, a DNS
    /// host, an optional port, a path of unreserved characters, no user
    /// info, query or fragment.
    pub fn new(base: &str) -> Result<Self, EncodingError> {
        if base.len() > 1024 || base.contains('#') {
            return Err(EncodingError::BadLink("the base must have no fragment"));
        }
        let (host, port, path) = split_https(base)?;
        Ok(Self { host, port, path })
    }

    fn render(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("https://{}{port}{}", self.host, self.path)
    }

    /// The link for a text form.
    fn link(&self, text: &str) -> String {
        format!("{}#{text}", self.render())
    }

    /// The fragment of `link` if it is a link to one of `bases`.
    fn fragment<'a>(link: &'a str, bases: &[HttpsBase]) -> Result<&'a str, EncodingError> {
        if link.len() > MAX_TEXT_LEN {
            return Err(EncodingError::TooLarge(link.len()));
        }
        let (page, fragment) = link.split_once('#').ok_or(EncodingError::BadLink("no fragment"))?;
        let (host, port, path) = split_https(page)?;
        let same_host: Vec<&HttpsBase> = bases.iter().filter(|b| b.host == host).collect();
        if same_host.is_empty() {
            return Err(EncodingError::LinkHost);
        }
        if !same_host.iter().any(|b| b.port == port) {
            return Err(EncodingError::LinkPort);
        }
        if !same_host.iter().any(|b| b.port == port && b.path.eq_ignore_ascii_case(&path)) {
            return Err(EncodingError::LinkPath);
        }
        Ok(fragment)
    }
}

/// Which links an app accepts: its URI scheme and its https pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// The app's URI scheme (`chat` for `chat://invite/...`).
    pub scheme: UriScheme,
    /// The pages https links may point to (none: https links are refused).
    pub https: Vec<HttpsBase>,
}

impl LinkConfig {
    /// A configuration with a scheme and no https pages.
    pub fn new(scheme: UriScheme) -> Self {
        Self { scheme, https: Vec::new() }
    }

    /// Adds an https page.
    #[must_use]
    pub fn with_https(mut self, base: HttpsBase) -> Self {
        self.https.push(base);
        self
    }
}

/// The text after `SCHEME://HOST/` for `host` = `invite` or `request`.
fn uri_text<'a>(uri: &'a str, scheme: &UriScheme, host: &str, min: usize) -> Result<&'a str, EncodingError> {
    if uri.len() > MAX_TEXT_LEN {
        return Err(EncodingError::TooLarge(uri.len()));
    }
    let (found, rest) = uri
        .split_once("://")
        .ok_or_else(|| EncodingError::WrongScheme { expected: scheme.0.clone(), found: String::new() })?;
    if !found.eq_ignore_ascii_case(&scheme.0) {
        return Err(EncodingError::WrongScheme { expected: scheme.0.clone(), found: super::token(found) });
    }
    let want = format!("{host}/");
    match rest.get(..want.len()) {
        Some(p) if p.eq_ignore_ascii_case(&want) => Ok(&rest[want.len()..]),
        _ if rest.eq_ignore_ascii_case(host) => {
            Err(EncodingError::Truncated { expected: uri.len() + 1 + min, got: uri.len() })
        }
        _ => Err(EncodingError::NotAnInvitation),
    }
}

impl Ticket {
    /// `SCHEME://invite/TEXT`.
    pub fn to_uri(&self, scheme: &UriScheme) -> String {
        format!("{}://invite/{self}", scheme.0)
    }

    /// Parses `SCHEME://invite/TEXT` (scheme, `invite` and TEXT in any case).
    pub fn from_uri(uri: &str, scheme: &UriScheme) -> Result<Self, EncodingError> {
        Self::from_text(uri_text(uri, scheme, "invite", text_len(TextKind::Ticket, PLAIN_LEN))?)
    }

    /// `https://HOST/PATH#TEXT`.
    pub fn to_https(&self, base: &HttpsBase) -> String {
        base.link(&self.to_string())
    }

    /// Parses an https link to one of `bases`; the fragment is the text form.
    pub fn from_https(link: &str, bases: &[HttpsBase]) -> Result<Self, EncodingError> {
        Self::from_text(HttpsBase::fragment(link, bases)?)
    }
}

impl Address {
    /// `SCHEME://request/TEXT`.
    pub fn to_uri(&self, scheme: &UriScheme) -> String {
        format!("{}://request/{self}", scheme.0)
    }

    /// Parses `SCHEME://request/TEXT` (scheme, `request` and TEXT in any case).
    pub fn from_uri(uri: &str, scheme: &UriScheme) -> Result<Self, EncodingError> {
        Self::from_text(uri_text(uri, scheme, "request", text_len(TextKind::Address, address::BARE_LEN))?)
    }

    /// `https://HOST/PATH#TEXT`.
    pub fn to_https(&self, base: &HttpsBase) -> String {
        base.link(&self.to_string())
    }

    /// Parses an https link to one of `bases`; the fragment is the text form.
    pub fn from_https(link: &str, bases: &[HttpsBase]) -> Result<Self, EncodingError> {
        Self::from_text(HttpsBase::fragment(link, bases)?)
    }
}
