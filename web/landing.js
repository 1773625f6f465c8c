// Landing page for invitation links (https://HOST/PATH#TEXT).
//
// Everything happens in this browser: the invitation is read from the
// fragment (the part after '#', which browsers never send to a server),
// checked exactly as the Rust parser checks it (src/encoding/text.rs,
// blob.rs, address.rs), and shown as an "Open in app" link and a QR code.
// This script makes no network request and writes the invitation into no
// link but the app URI. No dependencies, no build step.
"use strict";

// ---------------------------------------------------------------------------
// The text form (docs/protocol.md, "Text forms"):
//   text = kind "-" version "-" base32(payload || crc32(kind "-" version "-" || payload))
// in any ASCII letter case; RFC 4648 base32 without padding.

const KINDS = {
  // Ticket::from_text: version 2, payload 49 (plain) or 68 (locked) bytes.
  ticket: { prefix: "invite-", version: 2, lens: [49, 68] },
  // Address::from_text: version 1, payload 66 (bare) or 98 (with secret) bytes.
  address: { prefix: "address-", version: 1, lens: [66, 98] },
};
const CRC_LEN = 4;
const MAX_TEXT_LEN = 64 * 1024;

/** ASCII-only lower case (String.toLowerCase also folds e.g. U+212A to 'k'). */
function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** Bytes (UTF-8) as a string of single-byte characters, so lengths and
 *  offsets are byte counts, as in Rust. */
function byteString(s) {
  let out = "";
  for (const b of new TextEncoder().encode(s)) out += String.fromCharCode(b);
  return out;
}

/** CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as crc32fast. */
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Base32 (RFC 4648, no padding) as data_encoding's BASE32_NOPAD decodes
 *  it: only A-Z2-7 (after ASCII upper-casing), no impossible length, and
 *  the unused trailing bits must be zero. Null when refused. */
function base32Decode(body) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  if ([1, 3, 6].includes(body.length % 8)) return null;
  const out = [];
  let acc = 0;
  let bits = 0;
  for (const ch of asciiLower(body)) {
    const v = alphabet.indexOf(ch);
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return Uint8Array.from(out);
}

/** Base32-decodes `body` and checks its CRC-32 (text.rs `checked`). */
function checked(head, body) {
  const all = base32Decode(body);
  if (all === null || all.length < CRC_LEN) return { verdict: "damaged" };
  const payload = all.subarray(0, all.length - CRC_LEN);
  const headBytes = Array.from(head, (c) => c.charCodeAt(0));
  const want = crc32([...headBytes, ...payload]);
  const s = all.subarray(all.length - CRC_LEN);
  const got = ((s[0] << 24) | (s[1] << 16) | (s[2] << 8) | s[3]) >>> 0;
  if (got !== want) return { verdict: "damaged" };
  return { verdict: "ok", payload };
}

/** text.rs `decode`, in its order: the kind, the version, the length, the
 *  alphabet, the checksum. `s` is a byte string. */
function decodeText(s, kind) {
  const k = KINDS[kind];
  const rest = s.slice(k.prefix.length);
  let digits = 0;
  while (digits < rest.length && rest[digits] >= "0" && rest[digits] <= "9") digits++;
  const v = rest.slice(0, digits);
  const canonical = digits > 0 && digits <= 3 && (v === "0" || v[0] !== "0");
  if (!canonical) return { verdict: digits === 0 ? "truncated" : "damaged" };
  const found = Number(v);
  if (found > k.version) return { verdict: "update" };
  if (found < k.version) return { verdict: "outdated" };
  let body;
  if (rest[digits] === "-") body = rest.slice(digits + 1);
  else if (rest.length === digits) return { verdict: "truncated" };
  else return { verdict: "damaged" };
  const head = `${k.prefix}${k.version}-`;
  const want = k.lens.map((n) => Math.ceil(((n + CRC_LEN) * 8) / 5));
  const max = want[want.length - 1];
  if (!want.includes(body.length)) {
    // A valid shorter text followed by more is "trailing garbage" (damaged).
    const shorter = want.filter((w) => w < body.length).pop();
    if (shorter !== undefined && checked(head, body.slice(0, shorter)).verdict === "ok") {
      return { verdict: "damaged" };
    }
    return { verdict: body.length > max ? "damaged" : "truncated" };
  }
  return checked(head, body);
}

/** blob.rs `Ticket::from_bytes`: version nibble, kind, flags, length, lock
 *  parameters. */
function checkTicketBytes(b) {
  const first = b[0];
  const version = first >> 4;
  if (version > 2) return "update";
  if (version < 2) return "outdated";
  const kind = first & 0x03; // 1 contact, 2 device link
  if (kind !== 1 && kind !== 2) return "damaged";
  const locked = (first & 0x04) !== 0;
  if ((first & 0x08) !== 0 && locked) return "damaged"; // a PIN is never a password lock (PIN-1)
  const expected = locked ? 68 : 49;
  if (b.length < expected) return "truncated";
  if (b.length > expected) return "damaged";
  if (locked) {
    const [m, t, p] = [b[65], b[66], b[67]];
    if (t === 0 || p === 0 || m > 63) return "damaged";
  }
  return "ok";
}

/** address.rs `Address::from_bytes`, except that whether the identity key
 *  is a valid Ed25519 point is left to the app (see docs/protocol.md). */
function checkAddressBytes(b) {
  if (b[0] > 1) return "update";
  if (b[0] < 1) return "outdated";
  const flags = b[1];
  if ((flags & ~0x01) !== 0) return "damaged";
  const expected = flags & 0x01 ? 98 : 66;
  if (b.length < expected) return "truncated";
  if (b.length > expected) return "damaged";
  return "ok";
}

/** One text form, strictly (Ticket::from_text / Address::from_text). */
function checkText(s) {
  const lower = asciiLower(s);
  const kind = Object.keys(KINDS).find((k) => lower.startsWith(KINDS[k].prefix));
  if (kind === undefined) return { verdict: "not-invitation" };
  const r = decodeText(s, kind);
  if (r.verdict !== "ok") return r;
  const verdict = kind === "ticket" ? checkTicketBytes(r.payload) : checkAddressBytes(r.payload);
  if (verdict !== "ok") return { verdict };
  // A text that passed every check above is the canonical text (what
  // Display writes) up to letter case: strict version digits, canonical
  // base32 (zero trailing bits), lowercase prefix and body.
  return { verdict: "ok", kind, text: lower, payload: r.payload };
}

const LINK_CHAR = /[A-Za-z0-9\-_./:#+?=&@%~]/; // find.rs `link_char`
const TEXT_CHAR = /[A-Za-z0-9-]/; // find.rs `text_char`

/**
 * Checks the fragment of an invitation link as the app reads the whole
 * link (find.rs `parse_scanned`): the link ends at the first character a
 * link cannot hold, without trailing sentence punctuation, and its
 * fragment is parsed strictly; a bare text form after such a character
 * is a later candidate; the first that parses wins, else the first
 * refusal. Returns `{ verdict, kind, text, payload }`: verdict is "empty",
 * "not-invitation", "damaged", "truncated", "update", "outdated" or "ok";
 * for "ok", kind is "ticket" or "address", text the canonical (lowercase)
 * text form and payload its binary form.
 */
function checkFragment(fragment, linkLength) {
  if (fragment === "") return { verdict: "empty" };
  if (linkLength > MAX_TEXT_LEN) return { verdict: "not-invitation" };
  const s = byteString(fragment);
  const lower = asciiLower(s);
  const tokenEnd = (start, ok) => {
    let end = start;
    while (end < s.length && ok.test(s[end])) end++;
    return start + s.slice(start, end).replace(/[.,:;?-]+$/, "").length;
  };
  const candidates = [];
  // The link itself (its fragment starts the string).
  const link = s.slice(0, tokenEnd(0, LINK_CHAR));
  const linkKind = Object.values(KINDS).some((k) => asciiLower(link).startsWith(k.prefix));
  if (linkKind) candidates.push({ at: 0, r: checkText(link) });
  // Bare text forms not glued to what precedes them (the '#' before the
  // fragment glues one at its start).
  for (const prefix of ["invite-", "address-"]) {
    let from = 0;
    for (let p = lower.indexOf(prefix, from); p >= 0; p = lower.indexOf(prefix, from)) {
      const end = Math.max(tokenEnd(p, TEXT_CHAR), p + prefix.length);
      const glued = p === 0 || LINK_CHAR.test(s[p - 1]) || s[p - 1] === "-";
      if (!glued) candidates.push({ at: p + 1, r: checkText(s.slice(p, end)) });
      from = end;
    }
  }
  candidates.sort((a, b) => a.at - b.at);
  const ok = candidates.find((c) => c.r.verdict === "ok");
  if (ok) return ok.r;
  return candidates.length > 0 ? candidates[0].r : { verdict: "not-invitation" };
}

/** UriScheme::new: a lowercase letter, then lowercase letters, digits, "+-."; at most 32. */
function validScheme(s) {
  return typeof s === "string" && /^[a-z][a-z0-9+.-]{0,31}$/.test(s);
}

// ---------------------------------------------------------------------------
// QR code (ISO/IEC 18004): byte mode, error correction level L, the
// smallest version that fits, versions 1 to 10 (up to 271 bytes; a locked
// ticket is 68 bytes, version 4; an address's text form 164, version 8).

// Level L, per version: [EC codewords per block, [blocks, data codewords per block]...].
const QR_L_BLOCKS = [
  null,
  [7, [1, 19]],
  [10, [1, 34]],
  [15, [1, 55]],
  [20, [1, 80]],
  [26, [1, 108]],
  [18, [2, 68]],
  [20, [2, 78]],
  [24, [2, 97]],
  [30, [2, 116]],
  [18, [2, 68], [2, 69]],
];
// Centre coordinates of the alignment patterns, per version (Annex E).
const QR_ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50]];

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D):
// exponent and logarithm tables of the generator 2.
const GF_EXP = new Uint8Array(512);
const GF_LOG = new Uint8Array(256);
(function buildGf() {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x;
    GF_LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) GF_EXP[i] = GF_EXP[i - 255];
})();
function gfMul(a, b) {
  return a === 0 || b === 0 ? 0 : GF_EXP[GF_LOG[a] + GF_LOG[b]];
}

/** Reed-Solomon error correction codewords: the remainder of
 *  data(x) * x^n divided by the generator (x - 2^0)(x - 2^1)...(x - 2^(n-1)). */
function reedSolomon(data, n) {
  // Generator coefficients, highest degree first (leading 1 implied).
  let gen = [1];
  for (let i = 0; i < n; i++) {
    const next = new Array(gen.length + 1).fill(0);
    for (let j = 0; j < gen.length; j++) {
      next[j] ^= gen[j];
      next[j + 1] ^= gfMul(gen[j], GF_EXP[i]);
    }
    gen = next;
  }
  const rem = new Array(n).fill(0);
  for (const d of data) {
    const factor = d ^ rem[0];
    rem.shift();
    rem.push(0);
    for (let j = 0; j < n; j++) rem[j] ^= gfMul(gen[j + 1], factor);
  }
  return rem;
}

/** The final codeword sequence for `bytes` in version `v`: byte-mode
 *  segment, terminator, padding, blocks with their EC, interleaved. */
function qrCodewords(bytes, v) {
  const [ecLen, ...groups] = QR_L_BLOCKS[v];
  const dataLen = groups.reduce((s, [n, d]) => s + n * d, 0);
  const bits = [];
  const put = (value, len) => {
    for (let i = len - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4); // byte mode
  put(bytes.length, v < 10 ? 8 : 16); // character count
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, dataLen * 8 - bits.length)); // terminator
  while (bits.length % 8) bits.push(0);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < dataLen; pad ^= 0xec ^ 0x11) data.push(pad);
  // Split into blocks, compute each block's EC, interleave.
  const blocks = [];
  let at = 0;
  for (const [n, d] of groups) {
    for (let i = 0; i < n; i++, at += d) blocks.push(data.slice(at, at + d));
  }
  const ecs = blocks.map((b) => reedSolomon(b, ecLen));
  const out = [];
  const longest = Math.max(...blocks.map((b) => b.length));
  for (let i = 0; i < longest; i++) for (const b of blocks) if (i < b.length) out.push(b[i]);
  for (let i = 0; i < ecLen; i++) for (const e of ecs) out.push(e[i]);
  return out;
}

/** BCH code of `value` (the remainder of value * x^deg(poly) mod poly). */
function bch(value, poly, degree) {
  let r = value << degree;
  for (let i = 31 - Math.clz32(r); i >= degree; i--) if ((r >>> i) & 1) r ^= poly << (i - degree);
  return (value << degree) | r;
}

const QR_MASKS = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

/** Penalty score of a finished symbol (8.8.2): runs, 2x2 blocks,
 *  finder-like patterns, dark/light balance. Where the standard leaves
 *  room (N3 at the edges, N4's steps) this scores as the `qrcode` crate
 *  the app draws with, so the page shows the very symbol the app shows. */
function qrPenalty(m) {
  const n = m.length;
  let score = 0;
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(m[i]);
    lines.push(m.map((row) => row[i]));
  }
  const finder = [true, false, true, true, true, false, true];
  for (const line of lines) {
    // N1: 5 or more in a row of one colour: 3 + (length - 5).
    let run = 1;
    for (let i = 1; i <= n; i++) {
      if (i < n && line[i] === line[i - 1]) run++;
      else {
        if (run >= 5) score += run - 2;
        run = 1;
      }
    }
    // N3: dark-light-dark-dark-dark-light-dark with 4 light modules before
    // or after it (the quiet zone beyond the edge is light): 40.
    const light = (from) => [0, 1, 2, 3].every((k) => from + k < 0 || from + k >= n || !line[from + k]);
    for (let j = 0; j + 7 <= n; j++) {
      if (finder.every((dark, k) => line[j + k] === dark) && (light(j - 4) || light(j + 7))) score += 40;
    }
  }
  // N2: each 2x2 block of one colour: 3.
  for (let r = 0; r + 1 < n; r++) {
    for (let c = 0; c + 1 < n; c++) {
      const x = m[r][c];
      if (x === m[r][c + 1] && x === m[r + 1][c] && x === m[r + 1][c + 1]) score += 3;
    }
  }
  // N4: the dark share's distance from 50%, 2 points per whole 1% (the
  // standard's 10 per whole 5%, without the steps).
  const dark = m.reduce((s, row) => s + row.filter(Boolean).length, 0);
  score += Math.abs(Math.floor((dark * 200) / (n * n)) - 100);
  return score;
}

/** The QR symbol of `bytes` as rows of booleans (true = dark), or null if
 *  longer than version 10 holds. */
function qrEncode(bytes) {
  let v = 1;
  const capacity = (ver) => {
    const [, ...groups] = QR_L_BLOCKS[ver];
    const bits = groups.reduce((s, [n, d]) => s + n * d, 0) * 8;
    return Math.floor((bits - 4 - (ver < 10 ? 8 : 16)) / 8);
  };
  while (v <= 10 && capacity(v) < bytes.length) v++;
  if (v > 10) return null;
  const n = 17 + 4 * v;
  const m = Array.from({ length: n }, () => new Array(n).fill(false));
  const fixed = Array.from({ length: n }, () => new Array(n).fill(false));
  const set = (r, c, dark) => {
    m[r][c] = dark;
    fixed[r][c] = true;
  };
  // Finder patterns and their light separators, in three corners.
  for (const [r0, c0] of [[0, 0], [0, n - 7], [n - 7, 0]]) {
    for (let dr = -1; dr <= 7; dr++) {
      for (let dc = -1; dc <= 7; dc++) {
        const r = r0 + dr;
        const c = c0 + dc;
        if (r < 0 || c < 0 || r >= n || c >= n) continue;
        const ring = Math.max(Math.abs(dr - 3), Math.abs(dc - 3)); // 0 centre .. 4 separator
        set(r, c, ring !== 2 && ring !== 4);
      }
    }
  }
  // Timing patterns.
  for (let i = 8; i < n - 8; i++) {
    set(6, i, i % 2 === 0);
    set(i, 6, i % 2 === 0);
  }
  // Alignment patterns at every pair of centres, except the three that
  // would overlap a finder pattern (first/first, first/last, last/first).
  const centres = QR_ALIGN[v];
  const last = centres.length - 1;
  centres.forEach((r, i) => centres.forEach((c, j) => {
    if ((i === 0 && (j === 0 || j === last)) || (i === last && j === 0)) return;
    for (let dr = -2; dr <= 2; dr++) {
      for (let dc = -2; dc <= 2; dc++) set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
    }
  }));
  // Format information (15 bits, written once per mask tried) and the dark module.
  const format = (bits) => {
    // Bit 14 (most significant) first. Copy 1 around the top-left finder:
    // row 8 columns 0-5,7,8 then column 8 rows 7,5..0. Copy 2: column 8
    // from the bottom (bits 14..8), row 8 from column n-8 (bits 7..0).
    const a = [[8, 0], [8, 1], [8, 2], [8, 3], [8, 4], [8, 5], [8, 7], [8, 8], [7, 8], [5, 8], [4, 8], [3, 8], [2, 8], [1, 8], [0, 8]];
    const b = [];
    for (let i = 0; i < 7; i++) b.push([n - 1 - i, 8]);
    for (let i = 0; i < 8; i++) b.push([8, n - 8 + i]);
    for (let i = 0; i < 15; i++) {
      const dark = ((bits >>> (14 - i)) & 1) === 1;
      set(a[i][0], a[i][1], dark);
      set(b[i][0], b[i][1], dark);
    }
    set(n - 8, 8, true); // the dark module
  };
  format(0); // reserve the cells before placing data
  // Version information (versions 7 and up): 6 bits + 12-bit BCH, twice.
  if (v >= 7) {
    const bits = bch(v, 0x1f25, 12);
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1;
      const r = Math.floor(i / 3);
      const c = n - 11 + (i % 3);
      set(r, c, dark); // left of the top-right finder
      set(c, r, dark); // above the bottom-left finder
    }
  }
  // Data: codeword bits, most significant first, in two-module columns
  // from the bottom right, upwards then downwards, skipping column 6.
  const codewords = qrCodewords(bytes, v);
  let bit = 0;
  let upward = true;
  for (let right = n - 1; right > 0; right -= 2) {
    if (right === 6) right = 5;
    for (let k = 0; k < n; k++) {
      const r = upward ? n - 1 - k : k;
      for (const c of [right, right - 1]) {
        if (fixed[r][c]) continue;
        const i = bit++;
        m[r][c] = i < codewords.length * 8 && ((codewords[i >> 3] >>> (7 - (i & 7))) & 1) === 1;
      }
    }
    upward = !upward;
  }
  // Try the eight masks; keep the one with the lowest penalty.
  let best = null;
  for (let mask = 0; mask < 8; mask++) {
    const saved = m.map((row) => row.slice());
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (!fixed[r][c] && QR_MASKS[mask](r, c)) m[r][c] = !m[r][c];
    // Format: level L (01), mask number; BCH(15,5); XOR 0x5412.
    format(bch((0b01 << 3) | mask, 0x537, 10) ^ 0x5412);
    const score = qrPenalty(m);
    if (best === null || score < best.score) best = { score, matrix: m.map((row) => row.slice()) };
    for (let r = 0; r < n; r++) m[r] = saved[r];
  }
  return best.matrix;
}

// ---------------------------------------------------------------------------
// The page.

const SVG = "http://www.w3.org/2000/svg";

/** The QR symbol as an SVG element (4-module quiet zone). */
function qrSvg(matrix) {
  const quiet = 4;
  const size = matrix.length + 2 * quiet;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  // Six whole pixels per module keep the code sharp for cameras.
  svg.setAttribute("width", size * 6);
  svg.setAttribute("height", size * 6);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "QR code of the invitation");
  const bg = document.createElementNS(SVG, "rect");
  bg.setAttribute("width", size);
  bg.setAttribute("height", size);
  bg.setAttribute("fill", "#fff");
  svg.appendChild(bg);
  let d = "";
  matrix.forEach((row, r) => row.forEach((dark, c) => {
    if (dark) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
  }));
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.appendChild(path);
  return svg;
}

const MESSAGES = {
  empty: ["An invitation page", "This page opens invitation links. The link you followed holds no invitation: ask the person who invited you to send the whole link again."],
  "not-invitation": ["No invitation in this link", "This link does not hold an invitation. Ask the person who invited you to send it again."],
  damaged: ["This link is damaged", "Part of the invitation was changed or lost on its way (a typo, a cut or an edited character). Ask the person who invited you to send it again."],
  truncated: ["This link is incomplete", "The invitation was cut short. Copy or open the whole link, or ask for it again."],
  update: ["Update the app", "This invitation was made by a newer version of the app. Update the app on your phone, then open the link again."],
  outdated: ["This invitation is from an old version", "It was made by an old version of the app. Ask the person who invited you for a new one."],
  ticket: ["You have been invited", "Open the invitation in the app on this device, or scan the code with the app on your phone."],
  address: ["A contact address", "Open the address in the app on this device to send a contact request, or scan the code with the app on your phone."],
  config: ["This page is not set up", "The site's app-scheme setting is not a valid URI scheme."],
};

function show(key, verdict) {
  const [title, message] = MESSAGES[key];
  document.getElementById("page").dataset.verdict = verdict;
  document.getElementById("title").textContent = title;
  document.getElementById("message").textContent = message;
}

function main() {
  // location.hash is "#TEXT" (or ""); the text itself is never sent anywhere.
  const fragment = location.hash.startsWith("#") ? location.hash.slice(1) : "";
  const result = checkFragment(fragment, byteString(location.href).length);
  if (result.verdict !== "ok") {
    show(result.verdict, result.verdict);
    return;
  }
  const meta = document.querySelector('meta[name="app-scheme"]');
  const scheme = meta ? meta.getAttribute("content") : null;
  if (!validScheme(scheme)) {
    show("config", "config");
    return;
  }
  show(result.kind, result.kind);
  // Ticket::to_uri / Address::to_uri: SCHEME://invite/TEXT, SCHEME://request/TEXT.
  const open = document.getElementById("open-app");
  open.href = `${scheme}://${result.kind === "ticket" ? "invite" : "request"}/${result.text}`;
  // The app's QR code of a ticket holds its binary form (Ticket::to_bytes);
  // an address is scanned as its text form (parse_scanned_bytes reads both).
  const content = result.kind === "ticket" ? result.payload : new TextEncoder().encode(result.text);
  const matrix = qrEncode(content);
  const figure = document.getElementById("qr");
  if (matrix !== null) figure.insertBefore(qrSvg(matrix), figure.firstChild);
  document.getElementById("invitation").hidden = false;
}

// (Guarded so the checker and encoder can be loaded outside a page.)
if (typeof document !== "undefined") main();
