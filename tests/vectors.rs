//! Language-neutral test vectors (`tests/vectors/*.txt`, age-testkit style):
//! each file states the expected outcome first, then the inputs, so another
//! implementation can check itself against this one.
//!
//! ```text
//! expect: success | decode failure | signature failure | wrong context | expired | checksum failure | version too new
//! type: invitation | ticket | ticket text   (ticket text: data is the UTF-8 of the text form)
//! now: <unix seconds>          (invitation)
//! inbox: <hex, 32 bytes>       (invitation: the inbox the bytes were read from)
//! data: <hex>
//! ```
//! `CONTACT_INVITE_WRITE_VECTORS=1 cargo test --test vectors` rewrites the
//! files from a fixed seed (they are committed; the run checks them).

use std::collections::BTreeMap;
use std::path::Path;

use contact_invite::encoding::{EncodingError, Ticket};
use contact_invite::error::{DecodeError, Error, VerifyError};
use contact_invite::message::{InvitationKind, UnverifiedInvitation};

fn outcome_of_invitation(data: &[u8], inbox: &[u8; 32], now: u64) -> &'static str {
    let r = UnverifiedInvitation::from_bytes(data)
        .map_err(Error::from)
        .and_then(|u| u.verify(inbox, InvitationKind::Contact, now));
    match r {
        Ok(_) => "success",
        Err(Error::Decode(_)) => "decode failure",
        Err(Error::Verify(VerifyError::BadSignature)) => "signature failure",
        Err(Error::Verify(VerifyError::WrongContext(_) | VerifyError::UntrustedDevice(_))) => "wrong context",
        Err(Error::Verify(VerifyError::Expired { .. } | VerifyError::BadTimestamps(_))) => "expired",
        Err(e) => panic!("unexpected error class {e:?}"),
    }
}

fn outcome_of_ticket(data: &[u8]) -> &'static str {
    match Ticket::from_bytes(data) {
        Ok(_) => "success",
        Err(EncodingError::ChecksumMismatch) => "checksum failure",
        Err(EncodingError::VersionTooNew { .. }) => "version too new",
        Err(_) => "decode failure",
    }
}

fn outcome_of_ticket_text(data: &[u8]) -> &'static str {
    let Ok(text) = core::str::from_utf8(data) else { return "decode failure" };
    match text.parse::<Ticket>() {
        Ok(_) => "success",
        Err(EncodingError::ChecksumMismatch) => "checksum failure",
        Err(EncodingError::VersionTooNew { .. }) => "version too new",
        Err(_) => "decode failure",
    }
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

fn hex(s: &str) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap_or_else(|e| panic!("bad hex: {e}"))
}

#[test]
fn all_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    if std::env::var_os("CONTACT_INVITE_WRITE_VECTORS").is_some() {
        write_vectors(&dir);
    }
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for path in names {
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let f = parse(&std::fs::read_to_string(&path).unwrap());
        let expect = f["expect"].as_str();
        let data = hex(&f["data"]);
        let got = match f["type"].as_str() {
            "invitation" => {
                let inbox: [u8; 32] = hex(&f["inbox"]).try_into().unwrap();
                outcome_of_invitation(&data, &inbox, f["now"].parse().unwrap())
            }
            "ticket" => outcome_of_ticket(&data),
            "ticket text" => outcome_of_ticket_text(&data),
            t => panic!("{}: unknown type {t}", path.display()),
        };
        assert_eq!(got, expect, "{}", path.display());
        n += 1;
    }
    assert!(n >= 20, "only {n} vectors found");
}

/// Writes the vectors from a fixed seed.
fn write_vectors(dir: &Path) {
    use contact_invite::bench_internals::vectors as v;
    std::fs::create_dir_all(dir).unwrap();
    for (name, expect, ty, now, inbox, data) in v::generate() {
        let mut s = format!("expect: {expect}\ntype: {ty}\n");
        if let Some(now) = now {
            s.push_str(&format!("now: {now}\n"));
        }
        if let Some(inbox) = inbox {
            s.push_str(&format!("inbox: {}\n", data_encoding::HEXLOWER.encode(&inbox)));
        }
        s.push_str(&format!("data: {}\n", data_encoding::HEXLOWER.encode(&data)));
        std::fs::write(dir.join(format!("{name}.txt")), s).unwrap();
    }
    let _ = DecodeError::Invalid("");
}
