//! Issue 15, staged: every attack and every misleading refusal an
//! independent sweep found in the shareable forms of a ticket, each with the
//! typed error it must give now, and the one entry point for anything
//! scanned or pasted ([`parse_scanned`], [`parse_scanned_bytes`]).

use contact_invite::crypto::{SecretKey, SigningKey};
use contact_invite::dht::RecordKey;
use contact_invite::encoding::{
    Address, EncodingError as E, HttpsBase, InvitationKind, LinkConfig, LockParams, Scanned, Ticket, TicketSecret,
    UriScheme, parse_scanned, parse_scanned_bytes,
};
use data_encoding::BASE64URL_NOPAD;
use rand_core::{OsRng, RngCore};

fn random_ticket(locked: bool) -> Ticket {
    let mut record = [0u8; 32];
    OsRng.fill_bytes(&mut record);
    let s = contact_invite::crypto::InviteSecret::generate(&mut OsRng);
    Ticket {
        kind: InvitationKind::Contact,
        record,
        secret: if locked {
            let mut salt = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            TicketSecret::Locked { masked: s, params: LockParams { salt, m_cost_log2: 16, t_cost: 3, p_cost: 1 } }
        } else {
            TicketSecret::Plain(s)
        },
    }
}

fn address() -> Address {
    let mut record = [0u8; 32];
    OsRng.fill_bytes(&mut record);
    Address {
        identity: SigningKey::generate(&mut OsRng).public(),
        record: RecordKey::new(record, Some(SecretKey::generate(&mut OsRng))),
    }
}

fn chat() -> UriScheme {
    UriScheme::new("chat").unwrap()
}

fn base() -> HttpsBase {
    HttpsBase::new("https://chat.example/invite").unwrap()
}

fn links() -> LinkConfig {
    LinkConfig::new(chat()).with_https(base())
}

/// Every text form of a ticket, with the parser of that form.
type Parser = Box<dyn Fn(&str) -> Option<Scanned>>;
type Forms = Vec<(&'static str, String, Parser)>;

fn ticket_forms(t: &Ticket) -> Forms {
    vec![
        ("text", t.to_string(), Box::new(|s: &str| s.parse::<Ticket>().ok().map(Scanned::Ticket))),
        ("uri", t.to_uri(&chat()), Box::new(|s: &str| Ticket::from_uri(s, &chat()).ok().map(Scanned::Ticket))),
        ("https", t.to_https(&base()), Box::new(|s: &str| Ticket::from_https(s, &[base()]).ok().map(Scanned::Ticket))),
        ("armor", t.to_armor(), Box::new(|s: &str| Ticket::from_armor(s).ok().map(Scanned::Ticket))),
    ]
}

fn address_forms(a: &Address) -> Forms {
    vec![
        ("address text", a.to_string(), Box::new(|s: &str| s.parse::<Address>().ok().map(Scanned::Address))),
        (
            "address uri",
            a.to_uri(&chat()),
            Box::new(|s: &str| Address::from_uri(s, &chat()).ok().map(Scanned::Address)),
        ),
        (
            "address https",
            a.to_https(&base()),
            Box::new(|s: &str| Address::from_https(s, &[base()]).ok().map(Scanned::Address)),
        ),
    ]
}

/// The sweep of the issue: every single-bit flip and every truncation of
/// every text form, through its own parser and through `parse_scanned`,
/// decodes either nothing or the very same ticket (a flip of the case bit
/// of a letter is the same text: the forms are case-insensitive).
#[test]
fn no_bit_flip_or_truncation_of_any_text_form_decodes_another_ticket() {
    let mut checked = 0usize;
    let mut same = 0usize;
    let tickets = [random_ticket(false), random_ticket(true)];
    let addr = address();
    let mut cases: Vec<(Scanned, Forms)> =
        tickets.iter().map(|t| (Scanned::Ticket(t.clone()), ticket_forms(t))).collect();
    cases.push((Scanned::Address(addr.clone()), address_forms(&addr)));
    for (want, forms) in cases {
        for (name, form, parse) in forms {
            assert_eq!(parse(&form).as_ref(), Some(&want), "{name} round trip");
            let mut variants: Vec<String> = (0..form.len()).map(|n| form[..n].to_owned()).collect();
            for i in 0..form.len() * 8 {
                let mut b = form.clone().into_bytes();
                b[i / 8] ^= 1 << (i % 8);
                if let Ok(s) = String::from_utf8(b) {
                    variants.push(s);
                }
            }
            for v in variants {
                for got in [parse(&v), parse_scanned(&v, &links()).ok()] {
                    checked += 1;
                    match got {
                        None => {}
                        Some(g) => {
                            assert_eq!(g, want, "{name}: a changed form decoded another value");
                            same += 1;
                        }
                    }
                }
            }
        }
    }
    // Case flips of letters were accepted as the same value, nothing else.
    assert!(checked > 20_000 && same > 0, "{checked} {same}");
}

#[test]
fn lower_or_upper_casing_any_form_keeps_the_ticket() {
    let t = random_ticket(true);
    for (name, form, parse) in ticket_forms(&t) {
        for f in [form.to_lowercase(), form.to_uppercase()] {
            assert_eq!(parse(&f), Some(Scanned::Ticket(t.clone())), "{name}");
        }
    }
}

/// Cutting a locked ticket's text anywhere never yields an unlocked ticket
/// (the masked secret taken as the plain one): the cut is reported as
/// truncated (or damaged, when the cut lands on a valid length).
#[test]
fn a_cut_locked_ticket_is_truncated_not_unlocked() {
    let t = random_ticket(true);
    let plain_len = random_ticket(false).to_string().len();
    let text = t.to_string();
    for n in 0..text.len() {
        let r = text[..n].parse::<Ticket>();
        assert!(r.is_err(), "cut at {n} accepted");
        if n > plain_len {
            assert!(matches!(r, Err(E::Truncated { .. })), "cut at {n}: {r:?}");
        }
    }
    assert!(matches!(text[..plain_len].parse::<Ticket>(), Err(E::ChecksumMismatch | E::BadEncoding { .. })));
    let u = t.to_uri(&chat());
    let cut = &u[..u.len() - 20];
    assert!(matches!(Ticket::from_uri(cut, &chat()), Err(E::Truncated { .. })));
    assert!(matches!(parse_scanned(&format!("join me: {cut}"), &links()), Err(E::Truncated { .. })));
    let link = t.to_https(&base());
    assert!(matches!(Ticket::from_https(&link[..link.len() - 20], &[base()]), Err(E::Truncated { .. })));
}

/// A single mistyped character is reported as damaged.
#[test]
fn a_typo_is_damaged_not_another_ticket() {
    let t = random_ticket(false);
    let u = t.to_uri(&chat());
    let i = u.len() - 10;
    let c = u.as_bytes()[i];
    let typo = format!("{}{}{}", &u[..i], if c == b'a' { 'b' } else { 'a' }, &u[i + 1..]);
    assert_eq!(Ticket::from_uri(&typo, &chat()), Err(E::ChecksumMismatch));
    assert_eq!(parse_scanned(&typo, &links()), Err(E::ChecksumMismatch));
}

/// The version is judged first: a newer text whose body a newer version
/// may have changed (other characters, another length, new fields) is
/// "too new", in every form.
#[test]
fn a_newer_version_is_too_new_before_anything_else() {
    let too_new = Err(E::VersionTooNew { found: 3, supported: 2 });
    let future = "invite-3-a-new-layout/with/commands?and=more";
    assert_eq!(future.parse::<Ticket>(), too_new);
    assert_eq!(Ticket::from_uri(&format!("chat://invite/{future}"), &chat()), too_new);
    let future_link = "invite-3-whatever.v3.adds";
    assert_eq!(Ticket::from_https(&format!("https://chat.example/invite#{future_link}"), &[base()]), too_new);
    assert_eq!(parse_scanned(&format!("new: chat://invite/{future}"), &links()), too_new.clone().map(Scanned::Ticket));
    assert_eq!(parse_scanned(&format!("new: {future_link}"), &links()), too_new.clone().map(Scanned::Ticket));
    let armor = format!("-----BEGIN CONTACT INVITATION-----\n{future_link}\n-----END CONTACT INVITATION-----\n");
    assert_eq!(Ticket::from_armor(&armor), too_new);
    assert_eq!(
        Address::from_uri("chat://request/address-2-zzzz", &chat()),
        Err(E::VersionTooNew { found: 2, supported: 1 })
    );
    // Binary (a QR code): the high 4 bits of the first byte, whatever the
    // length and the other bits.
    let mut b = random_ticket(false).to_bytes();
    b[0] = 0x3f;
    b.push(0x80);
    assert_eq!(parse_scanned_bytes(&b, &links()), too_new.clone().map(Scanned::Ticket));
}

/// A case-mangled armor header is read (the labels are case-insensitive
/// like the text inside), not reported as a newer version.
#[test]
fn a_case_mangled_armor_is_read() {
    let t = random_ticket(false);
    let a = t.to_armor();
    let mangled =
        a.replace("BEGIN CONTACT INVITATION", "begin Contact invitation").replace("END CONTACT", "end contact");
    assert_eq!(Ticket::from_armor(&mangled).unwrap(), t);
    assert_eq!(parse_scanned(&format!("hi\n{mangled}"), &links()).unwrap(), Scanned::Ticket(t.clone()));
    assert_eq!(parse_scanned(&format!("hi\n{}", a.to_lowercase()), &links()).unwrap(), Scanned::Ticket(t));
}

/// VeilidChat's QR code content: its `SignedContactInvitation` protobuf
/// (`contact_invitation` = 1: bytes of a `ContactInvitation` {
/// `contact_request_inbox_key` = 1: TypedKey, `writer_secret` = 2: bytes },
/// `identity_signature` = 2: Signature { u0..u15: fixed32 }).
fn veilidchat_qr() -> Vec<u8> {
    fn len_field(n: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, u8::try_from(body.len()).unwrap()];
        v.extend_from_slice(body);
        v
    }
    fn fixed32s(count: u8) -> Vec<u8> {
        let mut v = Vec::new();
        for n in 1..=count {
            let key = (u16::from(n) << 3) | 5;
            if key < 0x80 {
                v.push(u8::try_from(key).unwrap());
            } else {
                v.extend([u8::try_from(key & 0x7f).unwrap() | 0x80, u8::try_from(key >> 7).unwrap()]);
            }
            v.extend([0x11, 0x22, 0x33, 0x44]);
        }
        v
    }
    let mut typed_key = vec![0x08, 0xb0, 0x88, 0xb1, 0xe2, 0x05]; // kind = VLD0
    typed_key.extend(len_field(2, &fixed32s(8)));
    let mut invitation = len_field(1, &typed_key);
    invitation.extend(len_field(2, &[0x5a; 56]));
    let mut signed = len_field(1, &invitation);
    signed.extend(len_field(2, &fixed32s(16)));
    signed
}

#[test]
fn a_veilidchat_invitation_is_named() {
    let qr = veilidchat_qr();
    assert_eq!(qr[0], 0x0a, "what the old parser took for version 10");
    assert_eq!(parse_scanned_bytes(&qr, &links()), Err(E::VeilidChatInvitation));
    let b64 = BASE64URL_NOPAD.encode(&qr);
    let lines: Vec<&str> = b64.as_bytes().chunks(40).map(|c| core::str::from_utf8(c).unwrap()).collect();
    let text = format!(
        "Add me!\n--- BEGIN VEILIDCHAT CONTACT INVITE ----\n{}\n---- END VEILIDCHAT CONTACT INVITE -----\n",
        lines.join("\n")
    );
    assert_eq!(parse_scanned(&text, &links()), Err(E::VeilidChatInvitation));
    assert_eq!(parse_scanned(&text.to_lowercase(), &links()), Err(E::VeilidChatInvitation));
    assert_eq!(Ticket::from_armor(&text[8..]), Err(E::VeilidChatInvitation));
    assert_eq!(parse_scanned_bytes(text.as_bytes(), &links()), Err(E::VeilidChatInvitation));
    // Our own binary ticket is not mistaken for one, nor junk protobuf.
    let t = random_ticket(true);
    assert_eq!(parse_scanned_bytes(&t.to_bytes(), &links()).unwrap(), Scanned::Ticket(t));
    assert_eq!(parse_scanned_bytes(&[0x0a, 0x01, 0x00], &links()), Err(E::NotFound));
}

#[test]
fn addresses_are_found_too() {
    let a = address();
    let want = Scanned::Address(a.clone());
    assert_eq!(parse_scanned(&format!("write to {} please", a.to_uri(&chat())), &links()).unwrap(), want);
    assert_eq!(parse_scanned(&format!("mine: {a}."), &links()).unwrap(), want);
    assert_eq!(parse_scanned(&format!("<{}>", a.to_https(&base())), &links()).unwrap(), want);
    assert_eq!(parse_scanned_bytes(a.to_uri(&chat()).as_bytes(), &links()).unwrap(), want);
    // The wrong parser for the kind says so.
    assert_eq!(a.to_string().parse::<Ticket>(), Err(E::NotATicket));
    assert_eq!(random_ticket(false).to_string().parse::<Address>(), Err(E::NotAnAddress));
    assert_eq!(Ticket::from_uri(&a.to_uri(&chat()).replace("://request/", "://invite/"), &chat()), Err(E::NotATicket));
}

#[test]
fn the_one_entry_point_refuses_with_a_reason() {
    let t = random_ticket(false);
    let ok = Scanned::Ticket(t.clone());
    assert_eq!(parse_scanned(&t.to_string(), &links()).unwrap(), ok);
    assert_eq!(parse_scanned_bytes(&t.to_bytes(), &links()).unwrap(), ok);
    assert_eq!(parse_scanned_bytes(t.to_uri(&chat()).as_bytes(), &links()).unwrap(), ok);
    // Not ours.
    assert_eq!(parse_scanned("see you at 8, https://example.org/#top", &links()), Err(E::NotFound));
    assert_eq!(parse_scanned_bytes(&[0xff, 0xfe, 0x00], &links()), Err(E::NotFound));
    assert_eq!(parse_scanned_bytes(&[], &links()), Err(E::NotFound));
    // A link to another site is refused as such, not searched for a ticket.
    let foreign = format!("https://evil.example/invite#{t}");
    assert_eq!(parse_scanned(&foreign, &links()), Err(E::LinkHost));
    assert_eq!(parse_scanned(&format!("https://chat.example/invite?x#{t}"), &links()), Err(E::LinkQuery));
    assert_eq!(parse_scanned(&format!("https://me@chat.example/invite#{t}"), &links()), Err(E::LinkUserinfo));
    assert_eq!(parse_scanned(&format!("https://chat.example:8080/invite#{t}"), &links()), Err(E::LinkPort));
    // Damaged, truncated.
    let text = t.to_string();
    let damaged = format!("{}{}{}", &text[..20], if &text[20..21] == "a" { "b" } else { "a" }, &text[21..]);
    assert_eq!(parse_scanned(&format!("here: {damaged}"), &links()), Err(E::ChecksumMismatch));
    assert!(matches!(parse_scanned(&format!("here: {}", &text[..60]), &links()), Err(E::Truncated { .. })));
}

/// What a UI tells the user: every refusal of the one entry point falls in
/// the group the user can act on (`EncodingError::advice`).
#[test]
fn every_refusal_comes_with_advice_a_ui_can_show() {
    use contact_invite::encoding::ScanAdvice as A;
    let t = random_ticket(false);
    let text = t.to_string();
    let damaged = format!("{}{}{}", &text[..20], if &text[20..21] == "a" { "b" } else { "a" }, &text[21..]);
    let veilidchat = veilidchat_qr();
    let wrong_kind = text.parse::<Address>().map(Scanned::Address);
    let cases: Vec<(Result<Scanned, E>, A)> = vec![
        (parse_scanned(&format!("here: {damaged}"), &links()), A::Damaged),
        (parse_scanned(&format!("here: {}", &text[..60]), &links()), A::Truncated),
        (parse_scanned("new: invite-3-a-new-layout", &links()), A::UpdateApp),
        (parse_scanned_bytes(&veilidchat, &links()), A::VeilidChat),
        (parse_scanned(&format!("https://evil.example/invite#{t}"), &links()), A::ForeignLink),
        (parse_scanned("see you at 8", &links()), A::NotAnInvitation),
        (wrong_kind, A::WrongKind),
    ];
    for (i, (got, want)) in cases.into_iter().enumerate() {
        let e = got.expect_err("refused");
        assert_eq!(e.advice(), want, "case {i}: {e}");
        // The sentence is the user's, not the input's.
        assert!(!want.message().contains(&text[9..20]));
    }
}

/// A binary ticket whose random bytes happen to be valid UTF-8 (here all
/// ASCII) is still read from a QR code: no text form is found in it, and
/// it has a ticket's length and this version.
#[test]
fn a_binary_ticket_that_is_valid_utf8_is_still_read() {
    let t = Ticket {
        kind: InvitationKind::Contact,
        record: [b'a'; 32],
        secret: TicketSecret::Plain(contact_invite::crypto::InviteSecret::from_slice(&[b'b'; 16]).unwrap()),
    };
    let bytes = t.to_bytes();
    assert!(core::str::from_utf8(&bytes).is_ok());
    assert_eq!(parse_scanned_bytes(&bytes, &links()).unwrap(), Scanned::Ticket(t));
    // Text that is no ticket stays `NotFound`.
    assert_eq!(parse_scanned_bytes(b"hello there", &links()), Err(E::NotFound));
}
