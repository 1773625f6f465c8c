//! Ticket encodings: round trips, every bit flip, one negative test per
//! parser rule, finding tickets in surrounding text, QR output.

use contact_invite::crypto::InviteSecret;
use contact_invite::encoding::{
    EncodingError as E, HttpsBase, InvitationKind, LinkConfig, LockParams, Scanned, Ticket, TicketSecret, UriScheme,
    parse_scanned,
};
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use proptest::prelude::*;

fn secret(b: u8) -> InviteSecret {
    InviteSecret::from_slice(&[b; 16]).unwrap()
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
            params: LockParams { salt: [5; 16], m_cost_log2: 16, t_cost: 3, p_cost: 1 },
        },
    }
}

fn chat() -> UriScheme {
    UriScheme::new("chat").unwrap()
}

fn base() -> HttpsBase {
    HttpsBase::new("https://chat.example/invite").unwrap()
}

fn links() -> LinkConfig {
    LinkConfig::new(chat()).with_https(base()).with_https(HttpsBase::new("https://chat.example/i").unwrap())
}

fn find(text: &str) -> Result<Ticket, E> {
    match parse_scanned(text, &links())? {
        Scanned::Ticket(t) => Ok(t),
        other => panic!("not a ticket: {other:?}"),
    }
}

fn pin(kind: InvitationKind) -> Ticket {
    Ticket { kind, record: [7; 32], secret: TicketSecret::Pin(secret(9)) }
}

fn all() -> Vec<Ticket> {
    vec![
        plain(InvitationKind::Contact),
        plain(InvitationKind::DeviceLink),
        pin(InvitationKind::Contact),
        pin(InvitationKind::DeviceLink),
        locked(InvitationKind::Contact),
        locked(InvitationKind::DeviceLink),
    ]
}

#[test]
fn sizes_match_the_goals() {
    // Issue 15, item 4: at most 49 bytes unlocked, 78 locked.
    assert_eq!(plain(InvitationKind::Contact).to_bytes().len(), 49);
    assert_eq!(pin(InvitationKind::Contact).to_bytes().len(), 49);
    assert_eq!(locked(InvitationKind::Contact).to_bytes().len(), 68);
}

#[cfg(feature = "qr")]
#[test]
fn qr_versions_and_renderings() {
    // TICKET-SIZE-1 (issue 15, item 4): 49 bytes → QR version 3-L (29×29),
    // 68 locked → 4-L (33×33); VeilidChat's 168 bytes need version 8.
    for kind in [InvitationKind::Contact, InvitationKind::DeviceLink] {
        assert_eq!(plain(kind).to_bytes().len(), 49);
        assert_eq!(locked(kind).to_bytes().len(), 68);
        assert_eq!(plain(kind).qr_version().unwrap(), 3);
        assert_eq!(locked(kind).qr_version().unwrap(), 4);
    }
    let t = plain(InvitationKind::Contact);
    let term = t.qr_terminal().unwrap();
    assert!(term.lines().count() > 10 && term.contains('█'));
    assert!(t.qr_svg().unwrap().contains("<svg"));
    let png = t.qr_png(4).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let reader = decoder.read_info().unwrap();
    // Version 3 = 29 modules, plus 4 quiet modules each side, at 4 px.
    assert_eq!(reader.info().width, (29 + 8) * 4);
    assert_eq!(reader.info().height, (29 + 8) * 4);
    assert!(matches!(t.qr_png(0), Err(E::Qr(_))));
    // The QR holds the bytes: the text form in alphanumeric mode would need
    // a larger symbol (measured, so the choice follows the sizes).
    for t in all() {
        let text = t.to_string().to_uppercase();
        let q = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L).unwrap();
        let qrcode::Version::Normal(v) = q.version() else { panic!("micro QR") };
        assert!(v > t.qr_version().unwrap(), "text {v} vs bytes {}", t.qr_version().unwrap());
    }
}

#[test]
fn round_trips_every_form() {
    for t in all() {
        assert_eq!(Ticket::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(Ticket::from_armor(&t.to_armor()).unwrap(), t);
        assert_eq!(Ticket::from_uri(&t.to_uri(&chat()), &chat()).unwrap(), t);
        let text = t.to_string();
        assert!(text.starts_with("invite-2-"), "{text}");
        assert_eq!(text.parse::<Ticket>().unwrap(), t);
        assert_eq!(t.to_uri(&chat()), format!("chat://invite/{text}"));
        let link = t.to_https(&base());
        assert_eq!(link, format!("https://chat.example/invite#{text}"));
        assert_eq!(Ticket::from_https(&link, &[base()]).unwrap(), t);
        let armor_body: String = t.to_armor().lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(armor_body, text);
        // Any letter case.
        assert_eq!(Ticket::from_uri(&t.to_uri(&chat()).to_uppercase(), &chat()).unwrap(), t);
        assert_eq!(Ticket::from_https(&link.to_uppercase(), &[base()]).unwrap(), t);
        assert_eq!(Ticket::from_armor(&t.to_armor().to_lowercase()).unwrap(), t);
        // Human-readable serde is the text form.
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Ticket>(&format!("\"{text}\"")).unwrap(), t);
    }
}

/// The binary form has no checksum (the QR code's error correction covers
/// it; every text form has a CRC-32, swept in tests/scanned.rs). Its header
/// byte still refuses every single bit flip, except the PIN flag between an
/// unlocked and a PIN ticket of the same layout (PIN-1: the invitee then
/// looks for the other kind of inbox value and finds none it can use; the
/// invitation's own key type is checked once it opens).
#[test]
fn every_bit_flip_of_the_header_byte_is_refused() {
    for t in all() {
        let b = t.to_bytes();
        for bit in 0..8 {
            let mut x = b.clone();
            x[0] ^= 1 << bit;
            match Ticket::from_bytes(&x) {
                Err(_) => {}
                Ok(other) if !matches!(t.secret, TicketSecret::Locked { .. }) && bit == 3 => {
                    assert_eq!((other.kind, other.record, other.is_pin()), (t.kind, t.record, !t.is_pin()));
                }
                Ok(other) => panic!("bit {bit} of {:?} gave {other:?}", t.kind),
            }
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
        s[i] = if c.eq_ignore_ascii_case(&b'a') { b'b' } else { b'a' };
        let s = String::from_utf8(s).unwrap();
        assert!(Ticket::from_armor(&s).is_err(), "change at {i} accepted");
    }
}

#[test]
fn blob_rules() {
    let b = plain(InvitationKind::Contact).to_bytes();
    assert!(matches!(Ticket::from_bytes(&b[..1]), Err(E::Truncated { .. })));
    assert!(matches!(Ticket::from_bytes(&b[..48]), Err(E::Truncated { expected: 49, got: 48 })));
    let mut long = b.clone();
    long.push(0);
    assert_eq!(Ticket::from_bytes(&long), Err(E::TrailingGarbage(1)));
    let mut v = b.clone();
    v[0] = 0x01;
    assert_eq!(Ticket::from_bytes(&v), Err(E::VersionTooOld { found: 0, supported: 2 }));
    v[0] = 0x31;
    assert_eq!(Ticket::from_bytes(&v), Err(E::VersionTooNew { found: 3, supported: 2 }));
    let mut k = b.clone();
    k[0] = 0x23;
    assert_eq!(Ticket::from_bytes(&k), Err(E::UnknownKind(3)));
    k[0] = 0x20;
    assert_eq!(Ticket::from_bytes(&k), Err(E::UnknownKind(0)));
    // PIN-1: the PIN flag alone is a PIN ticket (secret in clear, PAKE);
    // with the password flag it is refused (a PIN never goes offline).
    k[0] = 0x29;
    assert!(Ticket::from_bytes(&k).is_ok_and(|t| t.is_pin() && t.is_locked()));
    let mut pl = locked(InvitationKind::Contact).to_bytes();
    pl[0] |= 0x08;
    assert_eq!(Ticket::from_bytes(&pl), Err(E::ReservedFlags(0x0c)));
    // No checksum in the binary form: a changed secret byte is another
    // (useless) ticket, which the QR code's error correction prevents.
    let mut c = b.clone();
    c[40] ^= 1;
    assert_ne!(Ticket::from_bytes(&c).unwrap(), plain(InvitationKind::Contact));
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
    let bad = a.replacen(&lines[1][..11], "invite-2-!!", 1);
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
    assert!(matches!(p("chat://invite"), Err(E::Truncated { .. })));
    assert_eq!(p(&format!("{u}/")), Err(E::TrailingGarbage(1)));
    assert_eq!(p(&format!("{u}?x=1")), Err(E::TrailingGarbage(4)));
    assert_eq!(p(&u.replace("/invite-2-", "/invite-1-")), Err(E::VersionTooOld { found: 1, supported: 2 }));
    assert_eq!(p(&u.replace("/invite-2-", "/invite-3-")), Err(E::VersionTooNew { found: 3, supported: 2 }));
    assert_eq!(p(&u.replace("/invite-2-", "/invite-02-")), Err(E::BadNumber("02".into())));
    assert_eq!(p(&u.replace("/invite-2-", "/address-1-")), Err(E::NotATicket));
    assert!(matches!(p(&u.replace("/invite-2-", "/invite-2")), Err(E::BadEncoding { .. })));
    // The body's last character carries padding bits that must be zero:
    // 'b' (index 1) sets the lowest, whatever the data bits.
    let (head, body) = u.split_at(u.find("invite-2-").unwrap() + 9);
    let odd = format!("{head}{}b", &body[..body.len() - 1]);
    assert!(matches!(p(&odd), Err(E::BadEncoding { .. })), "non-canonical trailing bits");
    // A character outside the alphabet.
    let bad = format!("{head}{}1", &body[..body.len() - 1]);
    assert!(matches!(p(&bad), Err(E::BadEncoding { .. })));
    assert!(matches!(UriScheme::new("Chat"), Err(E::InvalidScheme(_))));
    assert!(matches!(UriScheme::new("1chat"), Err(E::InvalidScheme(_))));
}

#[test]
fn https_rules() {
    let t = plain(InvitationKind::Contact);
    let text = t.to_string();
    let bases = [base(), HttpsBase::new("https://other.example:8443/join").unwrap()];
    let p = |s: &str| Ticket::from_https(s, &bases);
    assert_eq!(p(&format!("https://chat.example/invite#{text}")).unwrap(), t);
    assert_eq!(p(&format!("https://other.example:8443/join#{text}")).unwrap(), t);
    assert_eq!(p(&format!("HTTPS://CHAT.EXAMPLE/invite#{text}")).unwrap(), t);
    // The host must be a configured one; no host at all is refused.
    assert_eq!(p(&format!("https://evil.example/invite#{text}")), Err(E::LinkHost));
    assert_eq!(p(&format!("https://#{text}")), Err(E::LinkHost));
    assert_eq!(p(&format!("https://#v/1/{text}")), Err(E::LinkHost));
    assert_eq!(p(&format!("https:///invite#{text}")), Err(E::LinkHost));
    assert_eq!(p(&format!("https://chat.example.evil.example/invite#{text}")), Err(E::LinkHost));
    // No user info, no unconfigured port, no query, the configured path.
    assert_eq!(p(&format!("https://u@chat.example/invite#{text}")), Err(E::LinkUserinfo));
    assert_eq!(p(&format!("https://chat.example@evil.example/invite#{text}")), Err(E::LinkUserinfo));
    assert_eq!(p(&format!("https://chat.example:443/invite#{text}")), Err(E::LinkPort));
    assert_eq!(p(&format!("https://chat.example:x/invite#{text}")), Err(E::LinkPort));
    assert_eq!(p(&format!("https://other.example/join#{text}")), Err(E::LinkPort));
    assert_eq!(p(&format!("https://chat.example/invite?a=b#{text}")), Err(E::LinkQuery));
    assert_eq!(p(&format!("https://chat.example/other#{text}")), Err(E::LinkPath));
    assert_eq!(p(&format!("https://chat.example/in%76ite#{text}")), Err(E::LinkPath));
    assert_eq!(p(&format!("http://chat.example/invite#{text}")), Err(E::BadLink("not an https link")));
    assert_eq!(p("https://chat.example/invite"), Err(E::BadLink("no fragment")));
    assert_eq!(p(&format!("https://chat.example/invite#{text}x")), Err(E::TrailingGarbage(1)));
    // The fragment is the text form and nothing else.
    assert_eq!(p(&format!("https://chat.example/invite#v/{text}")), Err(E::NotFound));
    // Bases are validated.
    assert!(matches!(HttpsBase::new("http://x.example"), Err(E::BadLink(_))));
    assert_eq!(HttpsBase::new("https://"), Err(E::LinkHost));
    assert!(matches!(HttpsBase::new("https://x.example/#a"), Err(E::BadLink(_))));
    assert_eq!(HttpsBase::new("https://u@x.example/"), Err(E::LinkUserinfo));
    assert_eq!(HttpsBase::new("https://x.example/?q"), Err(E::LinkQuery));
    // No configured base: every link is refused.
    assert_eq!(Ticket::from_https(&t.to_https(&base()), &[]), Err(E::LinkHost));
}

#[test]
fn found_inside_surrounding_text() {
    for t in all() {
        let u = t.to_uri(&chat());
        assert_eq!(find(&u).unwrap(), t);
        assert_eq!(find(&format!("hey, add me: {u} thanks!")).unwrap(), t);
        assert_eq!(find(&format!("link ({u}). bye")).unwrap(), t);
        let email = format!("Hi Bob,\n\nhere is my invitation:\n\n{}\nSee you!\n-- Alice", t.to_armor());
        assert_eq!(find(&email).unwrap(), t);
        let link = t.to_https(&HttpsBase::new("https://chat.example/i").unwrap());
        assert_eq!(find(&format!("<a>{link}</a>")).unwrap(), t);
        let bare = t.to_string();
        assert_eq!(find(&format!("rubbish {bare} rubbish")).unwrap(), t);
        assert_eq!(find(&format!("rubbish {}. rubbish", bare.to_uppercase())).unwrap(), t);
        assert_eq!(find(&bare).unwrap(), t);
    }
    assert_eq!(find("nothing to see here"), Err(E::NotFound));
    assert_eq!(find("see https://docs.example/page#section"), Err(E::NotFound));
    let u = plain(InvitationKind::Contact).to_uri(&chat());
    assert!(matches!(find(&format!("see {}", u.replace("-2-", "-9-"))), Err(E::VersionTooNew { .. })));
    assert!(matches!(find(&"x".repeat(70_000)), Err(E::TooLarge(_))));
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
        any::<[u8; 16]>(),
        proptest::option::of((any::<[u8; 16]>(), 0u8..=30, 1u8..=255, 1u8..=255)),
    )
        .prop_map(|(dev, record, s, lock)| Ticket {
            kind: if dev { InvitationKind::DeviceLink } else { InvitationKind::Contact },
            record,
            secret: match lock {
                None => TicketSecret::Plain(InviteSecret::from_slice(&s).unwrap()),
                Some((salt, m, t, p)) => TicketSecret::Locked {
                    masked: InviteSecret::from_slice(&s).unwrap(),
                    params: LockParams { salt, m_cost_log2: m, t_cost: t, p_cost: p },
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
        prop_assert_eq!(Ticket::from_https(&t.to_https(&base()), &[base()]).unwrap(), t.clone());
        prop_assert_eq!(t.to_string().parse::<Ticket>().unwrap(), t.clone());
        let text = format!("{pre} {} {post}", t.to_uri(&s));
        prop_assert_eq!(parse_scanned(&text, &LinkConfig::new(s)).unwrap(), Scanned::Ticket(t));
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in ".{0,300}") {
        let _ = Ticket::from_bytes(&bytes);
        let _ = Ticket::from_armor(&text);
        let _ = Ticket::from_uri(&text, &chat());
        let _ = Ticket::from_https(&text, &[base()]);
        let _ = text.parse::<Ticket>();
        let _ = parse_scanned(&text, &links());
        let _ = contact_invite::encoding::parse_scanned_bytes(&bytes, &links());
    }
}

/// The finder's work is linear in the text: markers glued together (a
/// paste of "https://" or "-----BEGIN " many times over) are each looked at
/// once, and a genuine ticket after them, or glued behind junk, is found.
#[test]
fn found_after_many_glued_markers() {
    for t in all() {
        let u = t.to_uri(&chat());
        let link = t.to_https(&base());
        let armor = t.to_armor();
        let bare = t.to_string();
        for decoys in [
            "https://".repeat(6000),
            "-----BEGIN ".repeat(4000),
            "chat://invite".repeat(3000),
            "invite-".repeat(6000),
            "invite-1-".repeat(5000),
        ] {
            assert_eq!(find(&format!("{decoys} {u}")).unwrap(), t);
            assert_eq!(find(&format!("{decoys} {link}")).unwrap(), t);
            assert_eq!(find(&format!("{decoys}\n{armor}")).unwrap(), t);
            assert_eq!(find(&format!("{decoys} {bare}")).unwrap(), t);
        }
        // Glued behind junk in one token.
        assert_eq!(find(&format!("https://junk{link}")).unwrap(), t);
        assert_eq!(find(&format!("chat://invitejunk{u}")).unwrap(), t);
        assert_eq!(find(&format!("-----BEGIN junk\n{armor}")).unwrap(), t);
    }
}

/// Found by the landing page's differential run: a non-ASCII character
/// straddling the cut at a shorter valid length made `from_text` slice
/// inside it (a panic reachable from pasted text). Every text parser must
/// refuse such input with a typed error instead.
#[test]
fn non_ascii_at_a_valid_length_cut_is_refused_not_a_panic() {
    use contact_invite::encoding::{Address, Ticket};
    for n in 70..200 {
        for tail in ["é", "€", "😀", "aé", "\u{0301}"] {
            let s = format!("invite-2-{}{tail}", "a".repeat(n));
            assert!(Ticket::from_text(&s).is_err(), "{s}");
            assert!(s.parse::<Ticket>().is_err());
            let a = format!("address-1-{}{tail}", "a".repeat(n));
            assert!(Address::from_text(&a).is_err(), "{a}");
        }
    }
}
