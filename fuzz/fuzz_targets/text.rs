//! Arbitrary text -> text form, armor, URI, https link, `parse_scanned`:
//! never panics; what parses round-trips to its canonical form (up to
//! letter case); no error quotes a long piece of its input.
#![no_main]
use contact_invite::encoding::{
    Address, HttpsBase, LinkConfig, Scanned, Ticket, UriScheme, parse_scanned, parse_scanned_bytes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(scheme) = UriScheme::new("chat") else { return };
    let Ok(base) = HttpsBase::new("https://chat.example/invite") else { return };
    let links = LinkConfig::new(scheme.clone()).with_https(base.clone());
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
    match text.parse::<Ticket>() {
        Ok(t) => assert!(t.to_string().eq_ignore_ascii_case(&text), "canonical text"),
        Err(e) => quotes_no_long_segment(&e),
    }
    match text.parse::<Address>() {
        Ok(a) => assert!(a.to_string().eq_ignore_ascii_case(&text), "canonical address"),
        Err(e) => quotes_no_long_segment(&e),
    }
    match Ticket::from_uri(&text, &scheme) {
        Ok(t) => assert!(t.to_uri(&scheme).eq_ignore_ascii_case(&text), "canonical URI"),
        Err(e) => quotes_no_long_segment(&e),
    }
    match Ticket::from_https(&text, &[base]) {
        Ok(t) => assert_eq!(Ticket::from_bytes(&t.to_bytes()).ok(), Some(t)),
        Err(e) => quotes_no_long_segment(&e),
    }
    match parse_scanned(&text, &links) {
        Ok(Scanned::Ticket(t)) => assert_eq!(t.to_string().parse::<Ticket>().ok(), Some(t)),
        Ok(Scanned::Address(a)) => assert_eq!(a.to_string().parse::<Address>().ok(), Some(a)),
        Ok(_) => {}
        Err(e) => quotes_no_long_segment(&e),
    }
    let _ = parse_scanned_bytes(data, &links);
});
