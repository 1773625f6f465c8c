//! Ticket encodings: round trips, every bit flip, one negative test per
//! parser rule, finding tickets in surrounding text, QR output.

use contact_invite::crypto::SecretKey;
use contact_invite::encoding::{
    EncodingError as E, InvitationKind, LockParams, Ticket, TicketSecret, UriScheme, find_in_text,
};
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use proptest::prelude::*;

fn secret(b: u8) -> SecretKey {
    SecretKey::from_slice(&[b; 32]).unwrap()
}

fn plain(kind: InvitationKind) -> Ticket {
    Ticket { kind, record: [7; 32], secret: TicketSecret::Plain(secret(9)) }
}

fn locked(kind: InvitationKind) -> Ticket {
    Ticket {
        kind,
        record: [7; 32],
        secret: TicketSecret::Locked {
            masked: secret(9),
            params: LockParams { salt: [5; 16], m_cost_log2: 16, t_cost: 3, p_cost: 1, pin: false },
        },
    }
}

fn chat() -> UriScheme {
    UriScheme::new("chat").unwrap()
}

fn all() -> Vec<Ticket> {
    vec![
        plain(InvitationKind::Contact),
        plain(InvitationKind::DeviceLink),
        locked(InvitationKind::Contact),
        locked(InvitationKind::DeviceLink),
    ]
}

#[test]
fn sizes_match_the_goals() {
    assert_eq!(plain(InvitationKind::Contact).to_bytes().len(), 70);
    assert_eq!(locked(InvitationKind::Contact).to_bytes().len(), 89);
}

#[cfg(feature = "qr")]
#[test]
fn qr_versions_and_renderings() {
    assert_eq!(plain(InvitationKind::Contact).qr_version().unwrap(), 4);
    assert_eq!(locked(InvitationKind::Contact).qr_version().unwrap(), 5);
    let t = plain(InvitationKind::Contact);
    let term = t.qr_terminal().unwrap();
    assert!(term.lines().count() > 10 && term.contains('█'));
    assert!(t.qr_svg().unwrap().contains("<svg"));
    let png = t.qr_png(4).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().unwrap();
    // Version 4 = 33 modules, plus 4 quiet modules each side, at 4 px.
    assert_eq!(reader.info().width, (33 + 8) * 4);
    assert_eq!(reader.info().height, (33 + 8) * 4);
    assert!(matches!(t.qr_png(0), Err(E::Qr(_))));
}

#[test]
fn round_trips_every_form() {
    for t in all() {
        assert_eq!(Ticket::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(Ticket::from_armor(&t.to_armor()).unwrap(), t);
        assert_eq!(Ticket::from_uri(&t.to_uri(&chat()), &chat()).unwrap(), t);
        let link = t.to_https("https://chat.example/invite").unwrap();
        assert!(link.starts_with("https://chat.example/invite#v/1/"));
        assert_eq!(Ticket::from_https(&link).unwrap(), t);
    }
}

#[test]
fn every_bit_flip_of_a_ticket_is_rejected() {
    for t in all() {
        let b = t.to_bytes();
        for i in 0..b.len() * 8 {
            let mut x = b.clone();
            x[i / 8] ^= 1 << (i % 8);
            assert!(Ticket::from_bytes(&x).is_err(), "bit {i} of {:?}", t.kind);
        }
    }
}

#[test]
fn every_character_change_in_the_armor_is_rejected() {
    let a = plain(InvitationKind::Contact).to_armor();
    let body_start = a.find('\n').unwrap() + 1;
    let body_end = a.rfind("-----END").unwrap();
    for i in body_start..body_end {
        let c = a.as_bytes()[i];
        if c == b'\n' {
            continue;
        }
        let mut s = a.clone().into_bytes();
        s[i] = if c == b'A' { b'B' } else { b'A' };
        let s = String::from_utf8(s).unwrap();
        assert!(Ticket::from_armor(&s).is_err(), "change at {i} accepted");
    }
}

#[test]
fn blob_rules() {
    let b = plain(InvitationKind::Contact).to_bytes();
    assert!(matches!(Ticket::from_bytes(&b[..1]), Err(E::Truncated { .. })));
    assert!(matches!(Ticket::from_bytes(&b[..69]), Err(E::Truncated { expected: 70, got: 69 })));
    let mut long = b.clone();
    long.push(0);
    assert_eq!(Ticket::from_bytes(&long), Err(E::TrailingGarbage(1)));
    let mut v = b.clone();
    v[0] = 0;
    assert_eq!(Ticket::from_bytes(&v), Err(E::VersionTooOld { found: 0, supported: 1 }));
    v[0] = 2;
    assert_eq!(Ticket::from_bytes(&v), Err(E::VersionTooNew { found: 2, supported: 1 }));
    let mut k = b.clone();
    k[1] = 3;
    assert_eq!(Ticket::from_bytes(&k), Err(E::UnknownKind(3)));
    k[1] = 0x81;
    assert_eq!(Ticket::from_bytes(&k), Err(E::ReservedFlags(0x80)));
    let mut c = b.clone();
    c[40] ^= 1;
    assert_eq!(Ticket::from_bytes(&c), Err(E::ChecksumMismatch));
    // Lock parameters that cannot be valid (with a correct checksum).
    let mut l = locked(InvitationKind::Contact);
    if let TicketSecret::Locked { params, .. } = &mut l.secret {
        params.t_cost = 0;
    }
    assert!(matches!(Ticket::from_bytes(&l.to_bytes()), Err(E::InvalidLockParams(_))));
}

#[test]
fn armor_rules() {
    let t = plain(InvitationKind::Contact);
    let a = t.to_armor();
    assert_eq!(Ticket::from_armor(&a.replace("-----BEGIN CONTACT INVITATION-----\n", "")), Err(E::ArmorMissingBegin));
    assert_eq!(Ticket::from_armor(&a.replace("-----END CONTACT INVITATION-----\n", "")), Err(E::ArmorMissingEnd));
    assert_eq!(Ticket::from_armor(&a.replace("END CONTACT", "END DEVICE LINK")), Err(E::ArmorLabelMismatch));
    assert_eq!(Ticket::from_armor(&a.replace("CONTACT INVITATION", "FRIEND INVITATION")), Err(E::ArmorLabelMismatch));
    assert_eq!(
        Ticket::from_armor(&a.replace("CONTACT INVITATION", "DEVICE LINK INVITATION")),
        Err(E::ArmorKindMismatch)
    );
    assert_eq!(Ticket::from_armor(&a.replace('\n', "\r\n")), Err(E::ArmorCarriageReturn));
    let lines: Vec<&str> = a.lines().collect();
    let rewrapped = format!("{}\n{}\n{}{}\n{}\n", lines[0], &lines[1][..60], &lines[1][60..], lines[2], lines[3]);
    assert_eq!(Ticket::from_armor(&rewrapped), Err(E::ArmorLineLength { line: 1 }));
    assert_eq!(Ticket::from_armor(&format!("{}\n{}\n", lines[0], lines[3])), Err(E::ArmorEmpty));
    let bad = a.replacen(&lines[1][..2], "!!", 1);
    assert!(matches!(Ticket::from_armor(&bad), Err(E::BadEncoding { .. })));
    assert!(matches!(Ticket::from_armor(&format!("{a}garbage")), Err(E::ArmorMissingEnd)));
    // Surrounding whitespace is fine.
    assert_eq!(Ticket::from_armor(&format!("\n\n  {a}  \n")).unwrap(), t);
}

#[test]
fn uri_rules() {
    let t = locked(InvitationKind::Contact);
    let u = t.to_uri(&chat());
    let p = |s: &str| Ticket::from_uri(s, &chat());
    assert!(matches!(p(&u.replace("chat://", "ssb://")), Err(E::WrongScheme { .. })));
    assert!(matches!(p(&u.replace("chat://", "chat:")), Err(E::WrongScheme { .. })));
    assert_eq!(p(&u.replace("://invite/", "://join/")), Err(E::NotAnInvitation));
    assert_eq!(p("chat://invite"), Err(E::MissingCommand("v")));
    assert_eq!(p(&u.replace("/contact/", "/befriend/")), Err(E::UnknownCommand("befriend".into())));
    assert_eq!(p(&u.replace("/contact/", "/CONTACT/")), Err(E::UnknownCommand("CONTACT".into())));
    assert!(matches!(p(&format!("{u}/dht/vld0")), Err(E::WrongArity { expected: 2, got: 1, .. })));
    let dht_cmd = &u[u.find("/dht/").unwrap()..u.find("/contact/").unwrap()];
    assert_eq!(p(&format!("{u}{dht_cmd}")), Err(E::DuplicateCommand("dht".into())));
    assert_eq!(p(&u.replace(dht_cmd, "")), Err(E::MissingCommand("dht")));
    assert_eq!(p(&format!("{u}/")), Err(E::EmptySegment));
    assert_eq!(p(&u.replace("/dht/", "//dht/")), Err(E::EmptySegment));
    assert_eq!(p(&format!("{u}?x=1")), Err(E::UnexpectedCharacter('?')));
    assert_eq!(p(&format!("{u}#frag")), Err(E::UnexpectedCharacter('#')));
    assert_eq!(p(&u.replace("/dht/", "/%64ht/")), Err(E::UnexpectedCharacter('%')));
    assert_eq!(p(&u.replace("/v/1/", "/v/0/")), Err(E::VersionTooOld { found: 0, supported: 1 }));
    assert_eq!(p(&u.replace("/v/1/", "/v/2/")), Err(E::VersionTooNew { found: 2, supported: 1 }));
    assert_eq!(p(&u.replace("/v/1/", "/v/01/")), Err(E::BadNumber("01".into())));
    assert_eq!(p(&u.replace("/vld0/", "/vld1/")), Err(E::UnsupportedCryptoKind("vld1".into())));
    assert_eq!(p(&u.replace("/argon2id/", "/scrypt/")), Err(E::UnsupportedKdf("scrypt".into())));
    assert_eq!(p(&u.replace("/16.3.1/", "/16.3/")), Err(E::BadNumber("16.3".into())));
    assert_eq!(p(&u.replace("/16.3.1/", "/16.300.1/")), Err(E::BadNumber("300".into())));
    let key = BASE64URL_NOPAD.encode(&[7u8; 32]);
    assert!(matches!(
        p(&u.replace(&key, &key[..40])),
        Err(E::WrongLength { what: "record key", .. }) | Err(E::BadEncoding { .. })
    ));
    // 32 bytes = 42 chars + one char holding 4 data bits and 2 zero bits.
    // [7; 32] ends in 'c' (0111 00); 'd' (0111 01) sets a padding bit.
    assert!(key.ends_with('c'));
    assert!(
        matches!(p(&u.replace(&key, &format!("{}d", &key[..42]))), Err(E::BadEncoding { .. })),
        "non-canonical trailing bits"
    );
    // v must come first.
    let moved = format!("chat://invite{}/v/1{}", dht_cmd, &u[u.find("/contact/").unwrap()..]);
    assert_eq!(p(&moved), Err(E::VersionNotFirst));
    // Both kinds at once.
    assert!(matches!(
        p(&format!("{u}/promise.account-add/{}", BASE64URL_NOPAD.encode(&[1u8; 32]))),
        Err(E::DuplicateCommand(_))
    ));
    // Dot segments are not normalised: they are just bad tokens.
    assert_eq!(p(&u.replace("/dht/", "/./dht/")), Err(E::UnknownCommand(".".into())));
    assert!(matches!(UriScheme::new("Chat"), Err(E::InvalidScheme(_))));
    assert!(matches!(UriScheme::new("1chat"), Err(E::InvalidScheme(_))));
    assert!(matches!(plain(InvitationKind::Contact).to_https("http://x"), Err(E::BadLink(_))));
    assert!(matches!(Ticket::from_https("https://chat.example/invite"), Err(E::BadLink("no fragment"))));
    assert!(matches!(Ticket::from_https("chat://invite#v/1"), Err(E::BadLink(_))));
}

#[test]
fn found_inside_surrounding_text() {
    let s = chat();
    for t in all() {
        let u = t.to_uri(&s);
        assert_eq!(find_in_text(&u, &s).unwrap(), t);
        assert_eq!(find_in_text(&format!("hey, add me: {u} thanks!"), &s).unwrap(), t);
        assert_eq!(find_in_text(&format!("link ({u}). bye"), &s).unwrap(), t);
        let email = format!("Hi Bob,\n\nhere is my invitation:\n\n{}\nSee you!\n-- Alice", t.to_armor());
        assert_eq!(find_in_text(&email, &s).unwrap(), t);
        let link = t.to_https("https://chat.example/i").unwrap();
        assert_eq!(find_in_text(&format!("<a>{link}</a>"), &s).unwrap(), t);
        let bare = BASE64URL_NOPAD.encode(&t.to_bytes());
        assert_eq!(find_in_text(&format!("rubbish {bare} rubbish"), &s).unwrap(), t);
        assert_eq!(find_in_text(&bare, &s).unwrap(), t);
    }
    assert_eq!(find_in_text("nothing to see here", &s), Err(E::NotFound));
    let u = plain(InvitationKind::Contact).to_uri(&s);
    assert!(matches!(find_in_text(&format!("see {}", u.replace("/v/1/", "/v/9/")), &s), Err(E::VersionTooNew { .. })));
    assert!(matches!(find_in_text(&"x".repeat(70_000), &s), Err(E::TooLarge(_))));
}

#[test]
fn debug_never_shows_the_secret() {
    for t in all() {
        let d = format!("{t:?}");
        assert!(!d.contains(&HEXLOWER.encode(&[9u8; 32])));
        assert!(!d.contains(&BASE64URL_NOPAD.encode(&[9u8; 32])));
        assert!(!d.contains("9, 9, 9"));
        assert!(d.contains("redacted"));
    }
}

fn arb_ticket() -> impl Strategy<Value = Ticket> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        proptest::option::of((any::<[u8; 16]>(), 0u8..=30, 1u8..=255, 1u8..=255)),
    )
        .prop_map(|(dev, record, s, lock)| Ticket {
            kind: if dev { InvitationKind::DeviceLink } else { InvitationKind::Contact },
            record,
            secret: match lock {
                None => TicketSecret::Plain(SecretKey::from_slice(&s).unwrap()),
                Some((salt, m, t, p)) => TicketSecret::Locked {
                    masked: SecretKey::from_slice(&s).unwrap(),
                    params: LockParams { salt, m_cost_log2: m, t_cost: t, p_cost: p, pin: false },
                },
            },
        })
}

proptest! {
    #[test]
    fn proptest_round_trips(t in arb_ticket(), scheme in "[a-z][a-z0-9+.-]{0,10}", pre in "[ a-zA-Z,!]{0,40}", post in "[ a-zA-Z,!]{0,40}") {
        let s = UriScheme::new(&scheme).unwrap();
        prop_assert_eq!(Ticket::from_bytes(&t.to_bytes()).unwrap(), t.clone());
        prop_assert_eq!(Ticket::from_armor(&t.to_armor()).unwrap(), t.clone());
        prop_assert_eq!(Ticket::from_uri(&t.to_uri(&s), &s).unwrap(), t.clone());
        prop_assert_eq!(Ticket::from_https(&t.to_https("https://a.example/x").unwrap()).unwrap(), t.clone());
        let text = format!("{pre} {} {post}", t.to_uri(&s));
        prop_assert_eq!(find_in_text(&text, &s).unwrap(), t);
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in ".{0,300}") {
        let _ = Ticket::from_bytes(&bytes);
        let _ = Ticket::from_armor(&text);
        let _ = Ticket::from_uri(&text, &chat());
        let _ = Ticket::from_https(&text);
        let _ = find_in_text(&text, &chat());
    }
}

/// The finder's work is linear in the text: markers glued together (a
/// paste of "https://" or "-----BEGIN " many times over) are each looked at
/// once, and a genuine ticket after them, or glued behind junk, is found.
#[test]
fn found_after_many_glued_markers() {
    let s = chat();
    for t in all() {
        let u = t.to_uri(&s);
        let link = t.to_https("https://chat.example/i").unwrap();
        let armor = t.to_armor();
        for decoys in ["https://".repeat(6000), "-----BEGIN ".repeat(4000), "chat://invite".repeat(3000)] {
            assert_eq!(find_in_text(&format!("{decoys} {u}"), &s).unwrap(), t);
            assert_eq!(find_in_text(&format!("{decoys} {link}"), &s).unwrap(), t);
            assert_eq!(find_in_text(&format!("{decoys}\n{armor}"), &s).unwrap(), t);
        }
        // Glued behind junk in one token.
        assert_eq!(find_in_text(&format!("https://junk{link}"), &s).unwrap(), t);
        assert_eq!(find_in_text(&format!("chat://invitejunk{u}"), &s).unwrap(), t);
        assert_eq!(find_in_text(&format!("-----BEGIN junk\n{armor}"), &s).unwrap(), t);
    }
}
