//! The versioned record format of everything this crate writes into a store
//! (a format byte, then postcard): below the types it encodes (identities,
//! contacts, flows), which encode themselves with it, and below the
//! [`crate::store::Store`] that holds the bytes.

/// Version byte in front of every record this crate writes into a store, so
/// a later release can recognise and migrate older records. Flow records
/// have their own, [`FLOW_RECORD_FORMAT`]. 3: contacts record their
/// safety-number verification; stored identities and contacts hold identity
/// records of protocol version 2 (device DH keys, account-secret rotations,
/// their signed location). 4: identity records of protocol version 3.
pub const RECORD_FORMAT: u8 = 4;

/// Version byte of flow records (table [`crate::store::Table::Flows`]). 3: the inviter's
/// identity is a reference to a snapshot in [`crate::store::Table::IdentitySnapshots`],
/// its record keys are seeds, pending operations and timers are lists. 4: an
/// inviter cleaning up counts its tombstone rewrites (bounded); identity
/// records carry device DH keys and account-secret rotations (protocol
/// version 2). 5: a request being delivered keeps the recipient's identity
/// record while its stamp is minted off the runtime. A
/// flow record of another format is reported as unreadable (and left in the
/// store), never decoded as this layout. 4 also: freshness state (re-read
/// counters, the response awaiting its freshness check, a reject awaiting
/// its final status). 5: the stamp being minted is kept (CPU work runs off
/// the runtime and is asked for again on resume). 6: a request being
/// delivered is sealed before its stamp is minted (the stamp covers the
/// sealed bytes) and keeps them while minting; a request inbox keeps the
/// requests whose requester's record it is reading (FRESH-8); protocol
/// version 3. 7: an inviter keeps the ticket's 128-bit invitation secret
/// (the inbox's secret derives from it) and a pending create its chosen
/// record secret (ticket version 2). 8: PIN invitations (PAKE): an
/// inviter keeps its PIN, attempt count, nonces seen and session secrets;
/// an invitee its PIN offer and the attempt in flight. 9: multi-use
/// invitations: an inviter keeps its terms, uses, queued claims and the
/// acceptor being answered; an invitee its answer record and claim.
pub const FLOW_RECORD_FORMAT: u8 = 9;

/// Encodes a value for the store: version byte, then postcard.
pub(crate) fn encode_record<T: serde::Serialize>(v: &T) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    encode_versioned(RECORD_FORMAT, v)
}

/// Decodes a value written by [`encode_record`].
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T, crate::Error> {
    decode_versioned(RECORD_FORMAT, b, what)
}

/// Counts the bytes written to it (sizes an encoding before making it).
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Records hold secrets (flow keys, account keys, conversation keys): the
/// encoding is sized first and made in one allocation, so no reallocation
/// leaves a copy behind, and it is wiped on drop.
pub(crate) fn encode_versioned<T: serde::Serialize>(
    format: u8,
    v: &T,
) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::Error> {
    let err = |e: postcard::Error| crate::Error::Store(format!("encode: {e}"));
    let mut size = Counter(0);
    postcard::to_io(v, &mut size).map_err(err)?;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(1 + size.0));
    out.push(format);
    postcard::to_io(v, &mut *out).map_err(err)?;
    Ok(out)
}

pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(
    format: u8,
    b: &[u8],
    what: &str,
) -> Result<T, crate::Error> {
    match b.split_first() {
        Some((&f, rest)) if f == format => {
            postcard::from_bytes(rest).map_err(|e| crate::Error::Store(format!("corrupt {what}: {e}")))
        }
        Some((v, _)) => Err(crate::Error::Store(format!("{what}: unknown record format {v}"))),
        None => Err(crate::Error::Store(format!("{what}: empty record"))),
    }
}
