//! Arbitrary text -> armor, URI, https link, finder: never panics; what
//! parses round-trips; no error quotes a long piece of its input.
#![no_main]
use contact_invite::encoding::{Ticket, UriScheme, find_in_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(scheme) = UriScheme::new("chat") else { return };
    if let Ok(t) = Ticket::from_armor(&text) {
        assert_eq!(Ticket::from_armor(&t.to_armor()).ok(), Some(t));
    }
    // EDGE-SECRET-2: an error never quotes a piece of the input longer than
    // the token limit (a shifted link segment may be the secret).
    let long: Vec<&str> = text
        .split(['/', '#', ':'])
        .filter(|s| {
            s.len() > contact_invite::encoding::MAX_ERROR_TOKEN
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .collect();
    let quotes_no_long_segment = |e: &contact_invite::encoding::EncodingError| {
        let m = e.to_string();
        assert!(!long.iter().any(|s| m.contains(s)), "an error quotes its input: {m}");
    };
    match Ticket::from_uri(&text, &scheme) {
        Ok(t) => assert_eq!(t.to_uri(&scheme), text.as_ref(), "canonical URI"),
        Err(e) => quotes_no_long_segment(&e),
    }
    match Ticket::from_https(&text) {
        Ok(t) => assert_eq!(Ticket::from_bytes(&t.to_bytes()).ok(), Some(t)),
        Err(e) => quotes_no_long_segment(&e),
    }
    let _ = find_in_text(&text, &scheme);
});
