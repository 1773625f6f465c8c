//! A search for secrets in every form they could be printed or encoded in
//! (shared by the tests that check nothing leaks one).

use data_encoding::{
    BASE32, BASE32_NOPAD, BASE32HEX_NOPAD, BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, HEXLOWER, HEXUPPER,
};

/// Every form a secret could take in text or bytes: raw, hex (both cases),
/// base32 and base64 in every alphabet at every alignment, and a byte list
/// (`12, 200, ...` as JSON and Rust print it, with or without spaces).
pub(crate) struct Needles(Vec<(String, Vec<u8>)>);

impl Needles {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }
    pub(crate) fn add(&mut self, what: &str, s: &[u8]) {
        assert!(s.len() >= 16, "needles need at least 16 bytes");
        self.0.push((format!("{what} raw"), s.to_vec()));
        for w in s.windows(8) {
            self.0.push((format!("{what} hex"), HEXLOWER.encode(w).into_bytes()));
            self.0.push((format!("{what} HEX"), HEXUPPER.encode(w).into_bytes()));
            let list: Vec<String> = w.iter().map(u8::to_string).collect();
            self.0.push((format!("{what} byte list"), list.join(", ").into_bytes()));
            self.0.push((format!("{what} JSON byte list"), list.join(",").into_bytes()));
        }
        for (name, group, encs) in [
            ("base32", 5usize, vec![&BASE32, &BASE32_NOPAD, &BASE32HEX_NOPAD]),
            ("base64", 3, vec![&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD]),
        ] {
            for k in 0..group {
                let m = (s.len() - k) / group * group;
                for e in &encs {
                    let text = e.encode(&s[k..k + m]);
                    let text = text.trim_end_matches('=');
                    self.0.push((format!("{what} {name}"), text.as_bytes().to_vec()));
                    self.0.push((format!("{what} {name} lower"), text.to_lowercase().into_bytes()));
                }
            }
        }
    }
    /// The first needle found in `hay`, if any.
    pub(crate) fn find(&self, hay: &[u8]) -> Option<&str> {
        self.0.iter().find(|(_, n)| hay.windows(n.len()).any(|w| w == n.as_slice())).map(|(what, _)| what.as_str())
    }
    /// Adds a text secret (as it is, and in every encoded form).
    pub(crate) fn add_text(&mut self, what: &str, s: &str) {
        self.0.push((format!("{what} text"), s.as_bytes().to_vec()));
        self.add(what, s.as_bytes());
    }
    /// Fails if `text` shows any needle.
    #[track_caller]
    pub(crate) fn check(&self, context: &str, text: &str) {
        if let Some(what) = self.find(text.as_bytes()) {
            panic!("{context} shows the {what}: {text}");
        }
    }
}
