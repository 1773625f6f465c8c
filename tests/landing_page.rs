//! The landing page for https links (`web/`), in a real browser (issue 18,
//! part 2): Debian's headless Chromium loads the page from a local HTTP
//! server with a valid, a damaged, a newer-version and an empty fragment;
//! the rendered DOM says the right thing, the QR code decoded from the
//! screenshot is the ticket's binary form, the page's checker agrees with
//! the Rust parser on tricky strings, and the server's log shows that no
//! request was for anything but the page's own files or carried any part
//! of the ticket.
//!
//! Without `chromium` on the PATH (or in `$CHROMIUM`) these tests print
//! that they skipped, unless `CI` is set: then they fail.
//!
//! Screenshots go to `$LANDING_SCREENSHOTS` (default
//! `target/landing-screenshots` in the package).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contact_invite::crypto::{SecretKey, SigningKey};
use contact_invite::dht::RecordKey;
use contact_invite::encoding::{
    Address, EncodingError, HttpsBase, InvitationKind, LinkConfig, LockParams, ScanAdvice, Scanned, Ticket,
    TicketSecret, UriScheme, parse_scanned,
};
use data_encoding::BASE32_NOPAD;
use rand_core::{OsRng, RngCore};

/// The path the page is served at (the links' base path); its CSS and
/// script are next to it.
const PAGE_PATH: &str = "/invite";
/// The page's own files: request path → file in `web/`, content type.
const FILES: [(&str, &str, &str); 3] = [
    (PAGE_PATH, "index.html", "text/html; charset=utf-8"),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
    ("/landing.js", "landing.js", "text/javascript; charset=utf-8"),
];
/// The scheme configured in `web/index.html`.
const SCHEME: &str = "chat";

// ---------------------------------------------------------------------------
// The test server: std only, one thread per connection, every request
// logged (request line and headers) before it is answered.

/// One request as the server received it.
#[derive(Clone, Debug)]
struct Request {
    line: String,
    headers: Vec<String>,
}

struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let shared = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, web) = (Arc::clone(&shared), web.clone());
                std::thread::spawn(move || serve(stream, &log, &web));
            }
        });
        Self { port, log }
    }

    /// The page's https base as the app would configure it.
    fn base(&self) -> HttpsBase {
        HttpsBase::new(&format!("https://127.0.0.1:{}{PAGE_PATH}", self.port)).expect("valid base")
    }

    /// What the browser loads for an https link to this page: the same
    /// link over plain http (the test server has no TLS).
    fn local(&self, https_link: &str) -> String {
        let rest = https_link.strip_prefix("https://").expect("an https link");
        format!("http://{rest}")
    }

    fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log lock").clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Request>>, web: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut stream = stream;
    // Keep-alive: answer requests on this connection until it closes.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                break;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            headers.push(h.to_owned());
        }
        log.lock().expect("log lock").push(Request { line: line.clone(), headers });
        let path = line.split(' ').nth(1).unwrap_or("");
        let found = FILES.iter().find(|(p, _, _)| *p == path);
        let (status, ctype, body) = match (line.starts_with("GET "), found) {
            (true, Some((_, file, ctype))) => {
                ("200 OK", *ctype, std::fs::read(web.join(file)).expect("read a web/ file"))
            }
            _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body)).is_err() {
            return;
        }
    }
}

/// Every request was a GET of one of the page's own files, and no request
/// line or header holds the fragment or any 8 characters of `secrets`
/// (compared ignoring letter case).
fn assert_log_clean(server: &Server, secrets: &[String]) {
    let requests = server.requests();
    assert!(!requests.is_empty(), "the browser made no request");
    for r in &requests {
        let path = r.line.split(' ').nth(1).unwrap_or("");
        assert!(
            r.line.starts_with("GET ") && FILES.iter().any(|(p, _, _)| *p == path),
            "a request for something other than the page's own files: {r:?}"
        );
        assert!(!r.line.contains('#'), "a request line with a fragment: {r:?}");
        // The page's <meta name="referrer" content="no-referrer">: its
        // style sheet and script are fetched without naming the page.
        assert!(
            !r.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("referer:")),
            "a request with a Referer: {r:?}"
        );
        let all = format!("{}\n{}", r.line, r.headers.join("\n")).to_ascii_lowercase();
        for secret in secrets {
            let s = secret.to_ascii_lowercase();
            // The body of the text form (after "invite-2-"), in windows of 8.
            let body = s.rsplit('-').next().unwrap_or(&s);
            for i in 0..body.len().saturating_sub(7) {
                let part = &body[i..i + 8];
                assert!(!all.contains(part), "request carries part of the ticket ({part}): {r:?}");
            }
        }
    }
    println!("server log: {} request(s), all for the page's own files, none with the ticket:", requests.len());
    for r in &requests {
        let referer = r.headers.iter().find(|h| h.to_ascii_lowercase().starts_with("referer:"));
        println!("  {}  (referer: {})", r.line, referer.map_or("none", String::as_str));
    }
}

// ---------------------------------------------------------------------------
// The browser.

/// Serialises browser runs: the machine is small, and each run's log
/// checks are per server anyway.
static BROWSER: Mutex<()> = Mutex::new(());

/// Chromium's path; `None` (after saying so) when it is missing outside CI.
fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CHROMIUM") {
        Some(p) => vec![PathBuf::from(p)],
        None => std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium is not installed: the landing page tests need Debian's headless Chromium \
         (as root: apt-get install -y chromium), or its path in $CHROMIUM"
    );
    println!("SKIPPED: chromium is not installed (apt-get install chromium); the landing page was not tested");
    None
}

/// Runs headless Chromium with `args` then `url`; returns its stdout.
fn run_browser(browser: &Path, args: &[String], url: &str) -> String {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let profile = tempfile::tempdir().expect("temporary profile");
    let out_path = profile.path().join("stdout");
    let out = File::create(&out_path).expect("stdout file");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            // Containers often have a small /dev/shm.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => {
                assert!(status.success(), "chromium failed: {status}");
                break;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    std::fs::read_to_string(&out_path).expect("chromium's output")
}

/// The DOM after the page's script ran.
fn dump_dom(browser: &Path, url: &str) -> String {
    let dom = run_browser(browser, &["--dump-dom".into()], url);
    assert!(dom.contains("id=\"page\""), "not the landing page: {dom}");
    dom
}

/// Where screenshots go.
fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("LANDING_SCREENSHOTS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/landing-screenshots"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// A screenshot of the page at `url`, saved as `NAME.png`; its path.
fn screenshot(browser: &Path, url: &str, name: &str) -> PathBuf {
    let path = screenshot_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    run_browser(browser, &[format!("--screenshot={}", path.display()), "--window-size=480,900".into()], url);
    assert!(path.is_file(), "chromium wrote no screenshot at {}", path.display());
    println!("screenshot: {}", path.display());
    path
}

/// What the page shows: `data-verdict`, the heading, the "Open in app"
/// link's href (if the invitation section is shown).
struct Shown {
    verdict: String,
    title: String,
    href: Option<String>,
    qr_path: Option<String>,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[start..start + tag[start..].find('"')?])
}

/// The start tag of the element with `id`.
fn tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let start = dom[..at].rfind('<').expect("tag start");
    &dom[start..at + dom[at..].find('>').expect("tag end")]
}

fn shown(dom: &str) -> Shown {
    let verdict = attr(tag(dom, "page"), "data-verdict").expect("data-verdict").to_owned();
    let title_start = dom.find("id=\"title\">").expect("title") + "id=\"title\">".len();
    let title = dom[title_start..title_start + dom[title_start..].find('<').expect("title end")].to_owned();
    let section = tag(dom, "invitation");
    let visible = !section.contains(" hidden");
    let href = visible.then(|| attr(tag(dom, "open-app"), "href").map(str::to_owned)).flatten();
    let qr_path = dom.find("<path d=\"").map(|p| {
        let s = p + "<path d=\"".len();
        dom[s..s + dom[s..].find('"').expect("path end")].to_owned()
    });
    Shown { verdict, title, href, qr_path }
}

// ---------------------------------------------------------------------------
// QR codes.

/// The contents of the QR codes found in a PNG screenshot, with their
/// version and error correction level.
fn decode_qr(png_path: &Path) -> Vec<(Vec<u8>, usize, u16)> {
    let mut decoder = png::Decoder::new(File::open(png_path).expect("open the screenshot"));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let luma = |x: usize, y: usize| {
        let p = &buf[(y * w + x) * channels..];
        if channels >= 3 { ((u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10) as u8 } else { p[0] }
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    img.detect_grids()
        .into_iter()
        .map(|g| {
            let mut content = Vec::new();
            let meta = g.decode_to(&mut content).expect("a decodable QR code");
            (content, meta.version.0, meta.ecc_level)
        })
        .collect()
}

/// The dark modules of the page's QR code (from its SVG path
/// `M{x} {y}h1v1h-1z…`, 4-module quiet zone).
fn page_modules(path: &str) -> BTreeSet<(usize, usize)> {
    path.split('M')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let xy = s.trim_end_matches("h1v1h-1z");
            let (x, y) = xy.split_once(' ').expect("M x y");
            (x.parse::<usize>().expect("x") - 4, y.parse::<usize>().expect("y") - 4)
        })
        .collect()
}

/// The dark modules of the symbol the `qrcode` crate (what the app draws
/// with, `Ticket::qr_png`) makes of `content` in byte mode, level L, the
/// smallest version. (Its `with_error_correction_level` may also put a
/// long enough run of ASCII digit bytes in a numeric segment; a ticket's
/// random bytes almost never hold one.)
fn app_modules(content: &[u8]) -> BTreeSet<(usize, usize)> {
    let code = (1..=40)
        .find_map(|v| {
            let mut bits = qrcode::bits::Bits::new(qrcode::Version::Normal(v));
            bits.push_byte_data(content).ok()?;
            bits.push_terminator(qrcode::EcLevel::L).ok()?;
            qrcode::QrCode::with_bits(bits, qrcode::EcLevel::L).ok()
        })
        .expect("a QR version fits");
    let n = code.width();
    code.to_colors()
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == qrcode::Color::Dark)
        .map(|(i, _)| (i % n, i / n))
        .collect()
}

// ---------------------------------------------------------------------------
// Tickets.

fn ticket(locked: bool) -> Ticket {
    let mut record = [0u8; 32];
    OsRng.fill_bytes(&mut record);
    let secret = contact_invite::crypto::InviteSecret::generate(&mut OsRng);
    Ticket {
        kind: InvitationKind::Contact,
        record,
        secret: if locked {
            let mut salt = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            TicketSecret::Locked { masked: secret, params: LockParams { salt, m_cost_log2: 16, t_cost: 3, p_cost: 1 } }
        } else {
            TicketSecret::Plain(secret)
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

fn scheme() -> UriScheme {
    UriScheme::new(SCHEME).expect("scheme")
}

/// A text form with a valid checksum around any `payload`: `head` is
/// `invite-N-` (lowercase), as `text.rs` writes it.
fn text_form(head: &str, payload: &[u8]) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(head.as_bytes());
    h.update(payload);
    let mut all = payload.to_vec();
    all.extend_from_slice(&h.finalize().to_be_bytes());
    format!("{head}{}", BASE32_NOPAD.encode(&all).to_ascii_lowercase())
}

/// One character of the text's body replaced by another base32 character:
/// only the checksum can tell.
fn damaged(text: &str) -> String {
    let i = text.len() - 10;
    let c = text.as_bytes()[i];
    let replacement = if c == b'a' { "b" } else { "a" };
    format!("{}{replacement}{}", &text[..i], &text[i + 1..])
}

// ---------------------------------------------------------------------------
// The four required cases.

#[test]
fn valid_ticket_link_shows_open_in_app_and_the_tickets_qr_code() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let mut secrets = Vec::new();
    for (name, t) in [("valid", ticket(false)), ("valid-locked", ticket(true))] {
        let link = t.to_https(&server.base());
        assert_eq!(
            Ticket::from_https(&link, &[server.base()]).expect("the app accepts the link"),
            t,
            "the link under test is one the app opens"
        );
        let url = server.local(&link);
        let dom = dump_dom(&browser, &url);
        let s = shown(&dom);
        assert_eq!(s.verdict, "ticket", "{dom}");
        assert_eq!(s.title, "You have been invited");
        assert_eq!(s.href.as_deref(), Some(t.to_uri(&scheme()).as_str()), "the button opens the app URI");
        assert!(dom.contains("never send to a server"), "the page says the fragment stays here");
        // The page draws exactly the symbol the app draws.
        let modules = page_modules(s.qr_path.as_deref().expect("a QR code in the page"));
        assert_eq!(modules, app_modules(&t.to_bytes()), "the page's QR code is the app's");
        // And a camera reads the ticket's binary form from the screen.
        let shot = screenshot(&browser, &url, name);
        let codes = decode_qr(&shot);
        assert_eq!(codes.len(), 1, "one QR code in {}", shot.display());
        let (content, version, ecc) = &codes[0];
        assert_eq!(content, &t.to_bytes(), "the QR code holds Ticket::to_bytes()");
        assert_eq!(*version as i16, t.qr_version().expect("version"), "the smallest version, as the app's");
        assert_eq!(*ecc, 1, "error correction level L (format bits 01)");
        secrets.push(t.to_string());
    }
    assert_log_clean(&server, &secrets);
}

#[test]
fn valid_address_link_opens_a_request_and_shows_its_text_as_qr() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let a = address();
    let link = a.to_https(&server.base());
    let url = server.local(&link);
    let dom = dump_dom(&browser, &url);
    let s = shown(&dom);
    assert_eq!(s.verdict, "address", "{dom}");
    assert_eq!(s.href.as_deref(), Some(a.to_uri(&scheme()).as_str()));
    // Version 8 (with version information): the address's text form.
    let text = a.to_string();
    assert_eq!(page_modules(s.qr_path.as_deref().expect("QR")), app_modules(text.as_bytes()));
    let codes = decode_qr(&screenshot(&browser, &url, "address"));
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].0, text.as_bytes(), "the QR code holds the text form");
    assert_eq!(codes[0].1, 8);
    assert!(matches!(
        contact_invite::encoding::parse_scanned_bytes(&codes[0].0, &LinkConfig::new(scheme())),
        Ok(Scanned::Address(found)) if found == a
    ));
    assert_log_clean(&server, &[text]);
}

#[test]
fn damaged_link_says_damaged_and_offers_nothing_to_open() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let t = ticket(false);
    let link = damaged(&t.to_https(&server.base()));
    assert_eq!(
        Ticket::from_https(&link, &[server.base()]),
        Err(EncodingError::ChecksumMismatch),
        "the link under test has a bad checksum"
    );
    let url = server.local(&link);
    let dom = dump_dom(&browser, &url);
    let s = shown(&dom);
    assert_eq!(s.verdict, "damaged", "{dom}");
    assert_eq!(s.title, "This link is damaged");
    assert_eq!(s.href, None, "no button for a damaged link");
    assert_eq!(s.qr_path, None, "no QR code for a damaged link");
    screenshot(&browser, &url, "damaged");
    let fragment = link.split_once('#').expect("fragment").1.to_owned();
    assert_log_clean(&server, &[t.to_string(), fragment]);
}

#[test]
fn newer_version_link_says_update_the_app() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let t = ticket(false);
    // A newer text version, and a newer binary version inside a valid
    // text of today's version (the version nibble of the first byte).
    let newer_text = t.to_string().replacen("invite-2-", "invite-3-", 1);
    let mut bytes = t.to_bytes();
    bytes[0] = (3 << 4) | (bytes[0] & 0x0f);
    let newer_binary = text_form("invite-2-", &bytes);
    let page = server.base();
    let mut secrets = vec![t.to_string()];
    for (name, text) in [("newer-version", newer_text), ("newer-binary-version", newer_binary)] {
        let link = format!("{}#{text}", t.to_https(&page).split_once('#').expect("fragment").0);
        assert!(
            matches!(Ticket::from_https(&link, std::slice::from_ref(&page)), Err(e) if e.advice() == ScanAdvice::UpdateApp),
            "the app says: update the app"
        );
        let url = server.local(&link);
        let dom = dump_dom(&browser, &url);
        let s = shown(&dom);
        assert_eq!(s.verdict, "update", "{name}: {dom}");
        assert_eq!(s.title, "Update the app");
        assert_eq!(s.href, None);
        assert_eq!(s.qr_path, None);
        if name == "newer-version" {
            screenshot(&browser, &url, name);
        }
        secrets.push(text);
    }
    assert_log_clean(&server, &secrets);
}

#[test]
fn empty_fragment_says_what_the_page_is_for() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let page = format!("http://127.0.0.1:{}{PAGE_PATH}", server.port);
    for url in [page.clone(), format!("{page}#")] {
        let dom = dump_dom(&browser, &url);
        let s = shown(&dom);
        assert_eq!(s.verdict, "empty", "{dom}");
        assert_eq!(s.title, "An invitation page");
        assert!(dom.contains("This page opens invitation links"), "{dom}");
        assert_eq!(s.href, None);
    }
    screenshot(&browser, &page, "empty");
    assert_log_clean(&server, &[]);
}

// ---------------------------------------------------------------------------
// The page's checker and the Rust parser agree.

/// What the page should show for `fragment`: what the app's parser says
/// about the link (`parse_scanned`, as when the link is opened in the app),
/// and for an invitation the app URI of what it found.
fn expected_verdict(page: &HttpsBase, fragment: &str) -> (&'static str, Option<String>) {
    let links = LinkConfig::new(scheme()).with_https(page.clone());
    let link = format!("{}#{fragment}", ticket(false).to_https(page).split_once('#').expect("#").0);
    let verdict = match parse_scanned(&link, &links) {
        Ok(Scanned::Ticket(t)) => return ("ticket", Some(t.to_uri(&scheme()))),
        Ok(Scanned::Address(a)) => return ("address", Some(a.to_uri(&scheme()))),
        Err(EncodingError::NotFound) if fragment.is_empty() => "empty",
        Err(e) => match e.advice() {
            ScanAdvice::Damaged => "damaged",
            ScanAdvice::Truncated => "truncated",
            ScanAdvice::UpdateApp => "update",
            ScanAdvice::Outdated => "outdated",
            ScanAdvice::NotAnInvitation => "not-invitation",
            other => panic!("the page cannot be asked about {other:?} ({e})"),
        },
        Ok(other) => panic!("unexpected {other:?}"),
    };
    (verdict, None)
}

#[test]
fn page_checker_agrees_with_the_rust_parser() {
    let Some(browser) = chromium() else { return };
    let server = Server::start();
    let page = server.base();
    let t = ticket(false).to_string();
    let locked = ticket(true).to_string();
    let a = address().to_string();
    let body = t.strip_prefix("invite-2-").expect("ticket text");
    let plain_bytes = ticket(false).to_bytes();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = plain_bytes.clone();
        f(&mut b);
        text_form("invite-2-", &b)
    };
    let locked_bytes = ticket(true).to_bytes();
    let with_locked = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = locked_bytes.clone();
        f(&mut b);
        text_form("invite-2-", &b)
    };
    let mut cases: Vec<(&str, String)> = vec![
        ("valid", t.clone()),
        ("valid, uppercase", t.to_ascii_uppercase()),
        ("valid, mixed case", format!("InViTe-2-{}", body.to_ascii_uppercase())),
        ("valid, locked", locked.clone()),
        ("valid address", a.clone()),
        ("address, uppercase", a.to_ascii_uppercase()),
        ("checksum damage at the end", damaged(&t)),
        ("last character changed", format!("{}{}", &t[..t.len() - 1], if t.ends_with('q') { 'r' } else { 'q' })),
        ("a character outside base32", format!("{}1{}", &t[..20], &t[21..])),
        ("nonzero trailing bits", format!("{}{}", &t[..t.len() - 1], "b")),
        ("one character short", t[..t.len() - 1].to_owned()),
        ("one character long", format!("{t}a")),
        ("valid text and more", format!("{t}{}", &body[..10])),
        ("far too long", format!("{locked}{}", &body[..20])),
        ("too short", "invite-2-abc".into()),
        ("prefix only", "invite-".into()),
        ("no body", "invite-2".into()),
        ("no dash after the version", format!("invite-2{body}")),
        ("wrong prefix", format!("invent-2-{body}")),
        ("not an invitation", "hello".into()),
        ("version with a leading zero", format!("invite-02-{body}")),
        ("newer version", format!("invite-3-{body}")),
        ("much newer version", format!("invite-999-{body}")),
        ("older version", format!("invite-1-{body}")),
        ("older binary version", with(&|b| b[0] = (1 << 4) | (b[0] & 0x0f))),
        ("newer binary version", with(&|b| b[0] = (4 << 4) | (b[0] & 0x0f))),
        ("unknown kind", with(&|b| b[0] = (b[0] & 0xf0) | 3)),
        ("a PIN ticket (flag 0x08 alone, SPAKE2)", with(&|b| b[0] |= 0x08)),
        ("PIN and password lock together", with_locked(&|b| b[0] |= 0x08)),
        ("lock flag on a plain-length ticket", with(&|b| b[0] |= 0x04)),
        ("address version 2", format!("address-2-{}", a.strip_prefix("address-1-").expect("address"))),
        ("", String::new()),
        ("valid, then a full stop", format!("{t}.")),
        ("valid, then a dash", format!("{t}-")),
        ("valid, then a comma and more", format!("{t},{body}")),
        ("damaged, then a comma and a valid one", format!("{},{t}", damaged(&t))),
        ("junk, a comma, a valid address", format!("junk,{a}")),
        ("the prefix and a dash only", "invite--".into()),
    ];
    cases.push(("address cut to the shorter length", a[..a.len() - 52].to_owned()));
    let mut secrets = Vec::new();
    let mut verdicts = BTreeSet::new();
    for (name, fragment) in &cases {
        let link = format!("{}#{fragment}", ticket(false).to_https(&page).split_once('#').expect("#").0);
        let (want, uri) = expected_verdict(&page, fragment);
        verdicts.insert(want);
        let dom = dump_dom(&browser, &server.local(&link));
        let s = shown(&dom);
        println!("{name:>40}: parser {want:<14} page {}", s.verdict);
        assert_eq!(s.verdict, want, "{name}: {fragment}");
        assert_eq!(s.href, uri, "{name}: the button opens what the app found");
        if fragment.len() > 20 {
            secrets.push(fragment.clone());
        }
    }
    // Each verdict the page can give came up at least once.
    for v in ["ticket", "address", "damaged", "truncated", "update", "outdated", "not-invitation", "empty"] {
        assert!(verdicts.contains(v), "no case for {v}");
    }
    assert_log_clean(&server, &secrets);
}
