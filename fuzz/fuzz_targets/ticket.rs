//! Arbitrary bytes -> ticket: never panics; what parses re-encodes to the
//! same bytes and round-trips through the text form and the armor.
#![no_main]
use contact_invite::encoding::Ticket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Ticket::from_bytes(data) {
        assert_eq!(t.to_bytes(), data, "canonical: one encoding per ticket");
        assert_eq!(t.to_string().parse::<Ticket>().ok(), Some(t.clone()));
        assert_eq!(Ticket::from_armor(&t.to_armor()).ok(), Some(t));
    }
});
