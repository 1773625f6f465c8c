//! Arbitrary text -> armor, URI, https link, finder: never panics; what
//! parses round-trips.
#![no_main]
use contact_invite::encoding::{Ticket, UriScheme, find_in_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(scheme) = UriScheme::new("chat") else { return };
    if let Ok(t) = Ticket::from_armor(&text) {
        assert_eq!(Ticket::from_armor(&t.to_armor()).ok(), Some(t));
    }
    if let Ok(t) = Ticket::from_uri(&text, &scheme) {
        assert_eq!(t.to_uri(&scheme), text.as_ref(), "canonical URI");
    }
    if let Ok(t) = Ticket::from_https(&text) {
        assert_eq!(Ticket::from_bytes(&t.to_bytes()).ok(), Some(t));
    }
    let _ = find_in_text(&text, &scheme);
});
