//! **Not API** (feature `bench-internals`, off by default): thin wrappers
//! over crate-private primitives so this repository's benches, tests and fuzz
//! targets (separate crates) can time and probe exactly what a flow
//! performs. May change or disappear in any release; apps must not enable
//! the feature.
#![allow(missing_docs)]

use rand_core::OsRng;

use crate::crypto::aead::{self, SealedKind};
use crate::crypto::sign::{self, SignedKind};
use crate::crypto::{
    DhPublicKey, DhSecretKey, Password, PasswordLimits, PasswordParams, SecretKey, Signature, SigningKey,
};

pub fn sign(key: &SigningKey, payload: &[u8]) -> Signature {
    sign::sign(key, SignedKind::Invitation, &[&[1; 32], &[2; 8]], payload)
}
pub fn verify(key: &SigningKey, payload: &[u8], sig: &Signature) -> bool {
    sign::verify(&key.public(), SignedKind::Invitation, &[&[1; 32], &[2; 8]], payload, sig)
}
pub fn seal(key: &SecretKey, plaintext: &[u8]) -> Vec<u8> {
    aead::seal(key, SealedKind::Response, &[3; 32], plaintext, &mut OsRng)
}
pub fn open(key: &SecretKey, sealed: &[u8]) -> bool {
    aead::open(key, SealedKind::Response, &[3; 32], sealed).is_ok()
}
pub fn derive(secret: &SecretKey) -> SecretKey {
    crate::crypto::kdf::derive(crate::crypto::kdf::KeyPurpose::RequestSeal, secret.expose(), &[&[4; 32]])
}
pub fn conversation_key(own: &DhSecretKey, peer: &DhPublicKey) -> bool {
    crate::crypto::conversation_key(own, peer, [&[1; 32], &[2; 32]], [&[3; 32], &[4; 32]], &[5; 32]).is_ok()
}
pub fn stretch(password: &Password, params: &PasswordParams) -> bool {
    crate::crypto::password::stretch(password, &[7; 16], params, &PasswordLimits::default()).is_ok()
}

/// Deterministic test vectors (see `tests/vectors.rs`).
pub mod vectors {
    use rand_core::SeedableRng;

    use crate::dht::RecordKey;
    use crate::encoding::{InvitationKind, LockParams, Ticket, TicketSecret};
    use crate::identity::Identity;
    use crate::message::{EncryptionKeyType, InvitationContent, Profile};

    /// (name, expect, type, now, inbox, data)
    pub type Vector = (&'static str, &'static str, &'static str, Option<u64>, Option<[u8; 32]>, Vec<u8>);

    const NOW: u64 = 1_795_305_600;

    fn flip(mut v: Vec<u8>, at: usize) -> Vec<u8> {
        let i = at.min(v.len() - 1);
        v[i] ^= 0x01;
        v
    }

    /// One base32 character of a text form changed to another (`a`/`b`).
    fn typo(text: &str, at: usize) -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        let i = at.min(v.len() - 1);
        v[i] = if v[i] == b'a' { b'b' } else { b'a' };
        v
    }

    #[allow(clippy::unwrap_used, clippy::missing_panics_doc)]
    pub fn generate() -> Vec<Vector> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(20_261_122);
        let mut id = Identity::generate(Profile::new("Alice").unwrap(), "phone", NOW - 60, &mut rng).unwrap();
        id.bind_location(RecordKey::new([0x11; 32], Some(crate::crypto::SecretKey::generate(&mut rng)))).unwrap();
        let inbox = [0x22; 32];
        let content = InvitationContent {
            kind: InvitationKind::Contact,
            inbox_key: inbox,
            writer_key: crate::crypto::SigningKey::generate(&mut rng).public(),
            identity_key: id.public_key(),
            device_key: id.device_public(),
            identity_record: id.record_key().unwrap().clone(),
            profile: id.profile().unwrap().clone(),
            conversation: Some(RecordKey::new([0x33; 32], None)),
            created_at: NOW,
            expires_at: NOW + 3600,
            message: "hello".into(),
            encryption_key_type: EncryptionKeyType::None,
            reply_to: None,
            multi_use: None,
        };
        let good = content.sign(id.device_key(), id.signed()).unwrap();
        let mut other_id = Identity::generate(Profile::new("Mallory").unwrap(), "x", NOW - 60, &mut rng).unwrap();
        other_id.bind_location(RecordKey::new([0x44; 32], None)).unwrap();
        let mut forged = content.clone();
        forged.device_key = other_id.device_public();
        let foreign_device = forged.sign(other_id.device_key(), id.signed()).unwrap();
        // FRESH-1: signed by a current device, but naming an identity record
        // location other than the one the identity key signed.
        let mut elsewhere = content.clone();
        elsewhere.identity_record = RecordKey::new([0x66; 32], None);
        let other_location = elsewhere.sign(id.device_key(), id.signed()).unwrap();
        let plain = Ticket {
            kind: InvitationKind::Contact,
            record: inbox,
            secret: TicketSecret::Plain(crate::crypto::InviteSecret::generate(&mut rng)),
        };
        let locked = Ticket {
            kind: InvitationKind::DeviceLink,
            record: inbox,
            secret: TicketSecret::Locked {
                masked: crate::crypto::InviteSecret::generate(&mut rng),
                params: LockParams { salt: [0x55; 16], m_cost_log2: 16, t_cost: 3, p_cost: 1 },
            },
        };
        let mut newer = plain.to_bytes();
        newer[0] = ((crate::encoding::VERSION + 1) << 4) | (newer[0] & 0x0f);
        let n = good.len();
        vec![
            ("invitation_valid", "success", "invitation", Some(NOW + 1), Some(inbox), good.clone()),
            ("invitation_expired", "expired", "invitation", Some(NOW + 3600), Some(inbox), good.clone()),
            ("invitation_from_the_future", "expired", "invitation", Some(NOW - 3600), Some(inbox), good.clone()),
            ("invitation_other_location", "wrong context", "invitation", Some(NOW + 1), Some(inbox), other_location),
            (
                "invitation_other_inbox",
                "signature failure",
                "invitation",
                Some(NOW + 1),
                Some([0x23; 32]),
                good.clone(),
            ),
            (
                "invitation_signature_bit_flipped",
                "signature failure",
                "invitation",
                Some(NOW + 1),
                Some(inbox),
                flip(good.clone(), n - 3),
            ),
            (
                "invitation_payload_bit_flipped",
                "signature failure",
                "invitation",
                Some(NOW + 1),
                Some(inbox),
                flip(good.clone(), 200),
            ),
            (
                "invitation_truncated",
                "decode failure",
                "invitation",
                Some(NOW + 1),
                Some(inbox),
                good[..n - 10].to_vec(),
            ),
            ("invitation_foreign_device", "wrong context", "invitation", Some(NOW + 1), Some(inbox), foreign_device),
            ("invitation_empty", "decode failure", "invitation", Some(NOW + 1), Some(inbox), Vec::new()),
            ("ticket_plain", "success", "ticket", None, None, plain.to_bytes()),
            ("ticket_locked_device_link", "success", "ticket", None, None, locked.to_bytes()),
            // A PIN ticket (PAKE, PIN-1): the plain layout with flag 0x08.
            ("ticket_pin", "success", "ticket", None, None, {
                let mut b = plain.to_bytes();
                b[0] |= 0x08;
                b
            }),
            // A PIN never takes the offline (password) path: 0x08 with 0x04 is refused.
            ("ticket_pin_with_password_lock", "decode failure", "ticket", None, None, {
                let mut b = locked.to_bytes();
                b[0] |= 0x08;
                b
            }),
            ("ticket_truncated", "decode failure", "ticket", None, None, plain.to_bytes()[..48].to_vec()),
            ("ticket_version_3", "version too new", "ticket", None, None, newer),
            ("ticket_text_plain", "success", "ticket text", None, None, plain.to_string().into_bytes()),
            (
                "ticket_text_locked_upper_case",
                "success",
                "ticket text",
                None,
                None,
                locked.to_string().to_uppercase().into_bytes(),
            ),
            ("ticket_text_typo", "checksum failure", "ticket text", None, None, typo(&plain.to_string(), 30)),
            (
                "ticket_text_cut",
                "decode failure",
                "ticket text",
                None,
                None,
                plain.to_string().into_bytes()[..60].to_vec(),
            ),
            (
                "ticket_text_version_3",
                "version too new",
                "ticket text",
                None,
                None,
                plain.to_string().replacen("-2-", "-3-", 1).into_bytes(),
            ),
        ]
    }
}

/// Fuzzing entry: decodes an inbox subkey value (never panics).
pub fn decode_inbox_value(bytes: &[u8]) -> bool {
    crate::message::inbox::decode_value(bytes).is_ok()
}

/// Fuzzing entry: decodes an opened request (writer seed + invitation).
pub fn decode_request_private(bytes: &[u8]) -> bool {
    crate::message::inbox::parse_request_private(bytes).is_ok()
}

/// Fuzzing entry: decodes and verifies a signed final status against a fixed
/// key and context; returns whether it verified (nothing forged can).
pub fn verify_final_status(bytes: &[u8]) -> bool {
    let _ = crate::message::FinalStatus::closed_reason(bytes);
    let Ok(key) = crate::crypto::PublicKey::from_bytes(&[0x58; 32]) else { return false };
    crate::message::FinalStatus::verify(bytes, &key, &[0; 32], &[0; 32]).is_ok()
}

/// Fuzzing entry: a request-inbox slot value through the recipient's checks
/// (id, stamp at 0 bits so every byte reaches the seal, seal with a fixed
/// key). Returns whether it opened (nothing forged can).
pub fn open_request_slot(bytes: &[u8]) -> bool {
    let _ = crate::message::address::slot_id(bytes);
    let mut seed = [0x42; 32];
    let dh = DhSecretKey::from_account_key(&SecretKey::from_bytes(&mut seed));
    let Ok(me) = crate::crypto::PublicKey::from_bytes(&[0x58; 32]) else { return false };
    crate::message::address::open_slot(bytes, &dh, &me, &[0; 32], 0).is_ok()
}

/// Fuzzing entry: a device-link handover through opening (fixed keys).
pub fn open_handover(bytes: &[u8]) -> bool {
    let mut seed = [0x43; 32];
    let dh = DhSecretKey::from_account_key(&SecretKey::from_bytes(&mut seed));
    let Ok(id) = crate::crypto::PublicKey::from_bytes(&[0x58; 32]) else { return false };
    let ctx = crate::message::handover::HandoverContext {
        inbox: &[0; 32],
        invitation_hash: &[0; 32],
        response_hash: &[0; 32],
        device: &id,
    };
    crate::message::handover::open(&ctx, &dh, &id, bytes).is_ok()
}

/// Scale measurements: a persisted flow record, as the driver writes it.
pub fn encode_flow(flow: &crate::machine::Flow) -> Vec<u8> {
    crate::machine::encode_flow(flow).map(|b| b.to_vec()).unwrap_or_default()
}

/// Scale measurements: decodes persisted flow records (`(key, record)`, as
/// listed from [`crate::store::Table::Flows`]) against the identity
/// snapshots listed from [`crate::store::Table::IdentitySnapshots`], as the
/// driver does on start. Unreadable records are skipped.
pub fn decode_flows(
    snapshots: &crate::store::Entries,
    flows: &crate::store::Entries,
) -> Vec<(crate::flow::FlowId, crate::machine::Flow)> {
    let mut held = crate::identity::Snapshots::default();
    for (_, bytes) in snapshots {
        if let Ok(s) = crate::identity::Identity::from_store_record(bytes, "identity snapshot")
            .and_then(crate::identity::SharedIdentity::new)
        {
            held.insert(s);
        }
    }
    held.decode_with(|| {
        flows
            .iter()
            .filter_map(|(k, v)| {
                let id = crate::flow::FlowId(k.as_slice().try_into().ok()?);
                Some((id, crate::machine::decode_flow(v, "flow").ok()?))
            })
            .collect()
    })
}

/// Attack tests (`tests/attack_revocation.rs`): whether the account secret
/// `identity` holds on its device opens a request-inbox slot value sealed to
/// that identity for `inbox` (any stamp accepted: the seal is what counts).
pub fn account_secret_opens_request(identity: &crate::identity::Identity, inbox: &[u8; 32], slot: &[u8]) -> bool {
    crate::message::address::open_slot(slot, &identity.dh_secret(), &identity.public_key(), inbox, 0).is_ok()
}

/// Attack tests: the conversation key the account secret `identity` holds
/// derives with `peer` (its DH key), over the given conversation records
/// and inbox, as both sides of a contact derive it.
pub fn conversation_key_from_account_secret(
    identity: &crate::identity::Identity,
    peer: &crate::message::SignedIdentity,
    conversations: [&[u8; 32]; 2],
    inbox: &[u8; 32],
) -> Option<SecretKey> {
    crate::crypto::conversation_key(
        &identity.dh_secret(),
        &peer.record().dh_key,
        [identity.public_key().as_bytes(), peer.record().identity_key.as_bytes()],
        conversations,
        inbox,
    )
    .ok()
}

/// Attack tests: seals a device-link handover of `from`'s account secret and
/// `record` to `new_device` (as the old device does), then opens it as the
/// new device does; returns what opening it gives.
pub fn handover_round_trip(
    from: &crate::identity::Identity,
    record: &crate::message::SignedIdentity,
    new_device: &crate::identity::Identity,
) -> Result<(), crate::Error> {
    let device = new_device.device_public();
    let dh = handover_device_dh(new_device);
    let ctx = crate::message::handover::HandoverContext {
        inbox: &[1; 32],
        invitation_hash: &[2; 32],
        response_hash: &[3; 32],
        device: &device,
    };
    let sealed = crate::message::handover::seal(&ctx, &dh.public(), from.account_key(), record, &mut OsRng)?;
    crate::message::handover::open(&ctx, &dh, &record.record().identity_key, &sealed).map(|_| ())
}

fn handover_device_dh(device: &crate::identity::Identity) -> DhSecretKey {
    DhSecretKey::from_device_key(device.device_key())
}

/// Simulator (`tests/simulation.rs`): revokes the very device that holds the
/// identity key and rotates the account secret, as an owner elsewhere would
/// revoke a lost phone. The public [`crate::identity::Identity::revoke_device`]
/// refuses this on purpose; the simulator needs it to model a single-device
/// party that keeps running on its stale identity after the revocation.
pub fn revoke_own_device(
    identity: &mut crate::identity::Identity,
    now_secs: u64,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<(), crate::Error> {
    let me = identity.device_public();
    identity.rotate(
        |r| {
            for d in &mut r.devices {
                if d.device_key == me {
                    d.status = crate::message::DeviceStatus::Revoked;
                }
            }
        },
        now_secs,
        rng,
    )
}

/// Benchmarks only: poll on the fixed 5 s schedule of earlier releases
/// (`true`) or on the age-based one ([`crate::machine::poll`], `false`),
/// process-wide, to measure both side by side in one run.
pub fn set_legacy_poll(on: bool) {
    crate::machine::poll::legacy::set(on);
}

/// The PIN attacker of tests/pin_pake.rs: everything a holder of a PIN
/// ticket and of every value written to the DHT or nudged can compute for a
/// candidate PIN, and the active attacker's (MITM) moves.
/// The writer key inside an unlocked invitation's request (subkey 0), as any
/// ticket holder gets it: for tests that stage what a ticket holder can do.
pub fn request_writer(ticket: &crate::encoding::Ticket, value: &[u8]) -> Option<SigningKey> {
    use crate::message::inbox::{self, InboxKeys, InboxValue};
    let crate::encoding::TicketSecret::Plain(s) = &ticket.secret else { return None };
    let secret = s.inbox_secret();
    let keys = InboxKeys::derive(&secret, &ticket.record);
    let InboxValue::Request { sealed, ekt } = inbox::decode_value(value).ok()? else { return None };
    inbox::open_request(&keys, &ticket.record, ekt, &sealed).ok().map(|(w, _)| w)
}

/// A hostile acceptor's claim (MU-6): `claim` (an honest one, opened here
/// with the inviter's identity as a shortcut; the acceptor builds its own
/// from its keys) pointing at an answer record that does not exist.
pub fn claim_to_a_missing_record(
    claim: &[u8],
    inviter: &crate::identity::Identity,
    inbox: &[u8; 32],
) -> Option<Vec<u8>> {
    use crate::message::inbox::{self, InboxValue};
    let InboxValue::Claim { ephemeral, sealed } = inbox::decode_value(claim).ok()? else { return None };
    let c = inbox::open_claim(&inviter.dh_secret(), inbox, &ephemeral, &sealed).ok()?;
    let mut opaque = [0u8; 32];
    let mut secret = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut opaque);
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut secret);
    let missing = crate::dht::RecordKey::new(opaque, Some(SecretKey::from_bytes(&mut secret)));
    let response = inbox::reseal_response(&c.record, &missing, &c.response, &mut OsRng)?;
    let forged = inbox::Claim { record: missing, owner: c.owner, writer: c.writer, response };
    inbox::seal_claim(&inviter.dh_public(), inbox, &forged, &mut OsRng).ok()
}

/// The answer record a multi-use claim (a slot's value) points to, opened
/// with the inviter's identity (tests stage a lagging or hostile node on
/// that record).
pub fn claim_record(
    inviter: &crate::identity::Identity,
    inbox: &[u8; 32],
    value: &[u8],
) -> Option<crate::dht::RecordKey> {
    use crate::message::inbox::{self, InboxValue};
    let InboxValue::Claim { ephemeral, sealed } = inbox::decode_value(value).ok()? else { return None };
    inbox::open_claim(&inviter.dh_secret(), inbox, &ephemeral, &sealed).ok().map(|c| c.record)
}

pub mod pin_attack {
    use rand_core::OsRng;
    use spake2::{Ed25519Group, Password as SpakePassword, Spake2};

    use crate::crypto::kdf::{KeyPurpose, derive};
    use crate::crypto::pake::{self, NONCE_LEN};
    use crate::crypto::{SecretKey, SigningKey};
    use crate::encoding::{Ticket, TicketSecret};
    use crate::message::inbox::{self, InboxKeys, InboxValue, PakeReply};

    /// What the captured values hold, decoded with the ticket alone.
    #[derive(Default)]
    pub struct Material {
        hellos: Vec<([u8; NONCE_LEN], Vec<u8>)>,
        replies: Vec<PakeReply>,
        responses: Vec<Vec<u8>>,
        finals: Vec<Vec<u8>>,
        /// Sealed values that open under no key the ticket gives.
        pub opaque_to_ticket: usize,
    }

    impl Material {
        /// (hellos, replies, responses, final statuses) seen.
        pub fn counts(&self) -> (usize, usize, usize, usize) {
            (self.hellos.len(), self.replies.len(), self.responses.len(), self.finals.len())
        }
    }

    /// Decodes every captured value with what the ticket opens.
    pub fn material(ticket: &Ticket, values: &[Vec<u8>]) -> Material {
        let mut m = Material::default();
        let TicketSecret::Pin(s) = &ticket.secret else { return m };
        let inbox = ticket.record;
        let secret = s.inbox_secret();
        let hello_key = pake::hello_key(&secret, &inbox);
        for v in values {
            match inbox::decode_value(v) {
                Ok(InboxValue::PakeHello { sealed }) => match inbox::open_hello(&hello_key, &inbox, &sealed) {
                    Ok(h) if !m.hellos.contains(&(h.nonce, h.message.clone())) => m.hellos.push((h.nonce, h.message)),
                    Ok(_) => {}
                    Err(_) => m.opaque_to_ticket += 1,
                },
                Ok(InboxValue::PakeReply(r)) if !m.replies.iter().any(|x| x.nonce == r.nonce) => m.replies.push(r),
                Ok(InboxValue::Response { sealed }) => {
                    let keys = InboxKeys::derive(&secret, &inbox);
                    if inbox::open_response(&keys, &inbox, &sealed).is_err() {
                        m.opaque_to_ticket += 1;
                    }
                    if !m.responses.contains(&sealed) {
                        m.responses.push(sealed);
                    }
                }
                Ok(InboxValue::FinalStatus { sealed }) => m.finals.push(sealed),
                _ => {}
            }
        }
        m
    }

    /// Whether the keys of one guessed run open or confirm anything.
    fn keys_open_anything(
        k: &[u8],
        inbox: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        a: &[u8],
        b: &[u8],
        m: &Material,
    ) -> bool {
        let keys = pake::keys(k, inbox, nonce, a, b);
        let session = InboxKeys::derive(&keys.session, inbox);
        m.replies.iter().any(|r| {
            r.confirm.as_slice() == keys.confirm.as_slice()
                || inbox::open_pake_invitation(&keys.invitation, inbox, &r.nonce, &r.invitation).is_ok()
        }) || m.responses.iter().any(|s| inbox::open_response(&session, inbox, s).is_ok())
    }

    /// Every derivation an offline attacker can compute for `candidate`
    /// from the material: SPAKE2 as the invitee (its own secret scalar)
    /// against every reply, as the inviter against every hello, each under
    /// every transcript the recorded messages allow, and keys derived from
    /// the PIN alone as if it were a key. True if anything opens or a tag
    /// matches: the candidate would then be told apart.
    pub fn candidate_opens_anything(ticket: &Ticket, candidate: &[u8], m: &Material) -> bool {
        let inbox = ticket.record;
        let (ida, idb) = pake::identities(&inbox);
        let pw = SpakePassword::new(candidate);
        // Keys from the PIN alone.
        for r in &m.replies {
            let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(r.nonce.as_slice()) else { continue };
            for (_, a) in m.hellos.iter().filter(|(n, _)| *n == nonce) {
                if keys_open_anything(candidate, &inbox, &nonce, a, &r.message, m) {
                    return true;
                }
            }
            let pin_key = derive(KeyPurpose::PakeInvitationSeal, candidate, &[&inbox, &nonce]);
            if inbox::open_pake_invitation(&pin_key, &inbox, &r.nonce, &r.invitation).is_ok() {
                return true;
            }
        }
        let pin_keys = InboxKeys::derive(&derive(KeyPurpose::PakeSession, candidate, &[&inbox]), &inbox);
        if m.responses.iter().any(|s| inbox::open_response(&pin_keys, &inbox, s).is_ok()) {
            return true;
        }
        // As the invitee against each reply.
        for r in &m.replies {
            let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(r.nonce.as_slice()) else { continue };
            let (st, own_a) = Spake2::<Ed25519Group>::start_a_with_rng(&pw, &ida, &idb, OsRng);
            let Ok(k) = st.finish(&r.message) else { continue };
            let mut transcripts = vec![own_a];
            transcripts.extend(m.hellos.iter().filter(|(n, _)| *n == nonce).map(|(_, a)| a.clone()));
            if transcripts.iter().any(|a| keys_open_anything(&k, &inbox, &nonce, a, &r.message, m)) {
                return true;
            }
        }
        // As the inviter against each hello.
        for (nonce, a) in &m.hellos {
            let (st, own_b) = Spake2::<Ed25519Group>::start_b_with_rng(&pw, &ida, &idb, OsRng);
            let Ok(k) = st.finish(a) else { continue };
            let mut transcripts = vec![own_b];
            transcripts.extend(m.replies.iter().filter(|r| r.nonce.as_slice() == nonce).map(|r| r.message.clone()));
            if transcripts.iter().any(|b| keys_open_anything(&k, &inbox, nonce, a, b, m)) {
                return true;
            }
        }
        false
    }

    /// The old (password) path, as a control: whether `candidate` unmasks a
    /// password ticket's secret so that the captured request opens.
    pub fn password_candidate_opens(ticket: &Ticket, candidate: &str, values: &[Vec<u8>]) -> bool {
        let TicketSecret::Locked { masked, params } = &ticket.secret else { return false };
        let pp = crate::crypto::PasswordParams {
            m_cost_log2: params.m_cost_log2,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
        };
        let Ok(pw) = crate::crypto::Password::new(candidate) else { return false };
        let Ok(st) = crate::crypto::password::stretch(&pw, &params.salt, &pp, &crate::crypto::PasswordLimits::DESKTOP)
        else {
            return false;
        };
        let secret = crate::crypto::password::apply_mask(masked, &st, &params.salt, &ticket.record).inbox_secret();
        let keys = InboxKeys::derive(&secret, &ticket.record);
        values.iter().any(|v| {
            matches!(inbox::decode_value(v), Ok(InboxValue::Request { sealed, ekt })
                if inbox::open_request(&keys, &ticket.record, ekt, &sealed).is_ok())
        })
    }

    /// What a ticket holder reads in the offer (subkey 0): the writer key
    /// and the inviter's reply address.
    pub fn open_offer(ticket: &Ticket, value: &[u8]) -> Option<(SigningKey, Option<Vec<u8>>)> {
        let TicketSecret::Pin(s) = &ticket.secret else { return None };
        let sealed = match inbox::decode_value(value).ok()? {
            InboxValue::PinOffer { sealed } => sealed,
            InboxValue::PakeReply(r) => r.offer,
            _ => return None,
        };
        let o =
            inbox::open_offer(&InboxKeys::derive(&s.inbox_secret(), &ticket.record), &ticket.record, &sealed).ok()?;
        Some((o.writer, o.reply_to))
    }

    /// The nonce of a hello (whoever holds the ticket can read it).
    pub fn hello_nonce(ticket: &Ticket, value: &[u8]) -> Option<[u8; NONCE_LEN]> {
        let TicketSecret::Pin(s) = &ticket.secret else { return None };
        let InboxValue::PakeHello { sealed } = inbox::decode_value(value).ok()? else { return None };
        let key = pake::hello_key(&s.inbox_secret(), &ticket.record);
        inbox::open_hello(&key, &ticket.record, &sealed).ok().map(|h| h.nonce)
    }

    /// The nonce of a reply.
    pub fn reply_nonce(value: &[u8]) -> Option<Vec<u8>> {
        match inbox::decode_value(value).ok()? {
            InboxValue::PakeReply(r) => Some(r.nonce),
            _ => None,
        }
    }

    /// A hello of the attacker's own, for `guess`, under `nonce` (an
    /// attempt's, to relay in its place, or a fresh one).
    pub fn forge_hello(ticket: &Ticket, nonce: [u8; NONCE_LEN], guess: &str, seed: [u8; 32]) -> Option<Vec<u8>> {
        let TicketSecret::Pin(s) = &ticket.secret else { return None };
        let pw = crate::crypto::Password::new(guess).ok()?;
        let msg = pake::invitee_message(&pw, &ticket.record, &seed);
        let key = pake::hello_key(&s.inbox_secret(), &ticket.record);
        Some(inbox::hello(&key, &ticket.record, &nonce, &msg, None, &mut OsRng))
    }

    /// The attacker finishes its forged attempt with the inviter's reply:
    /// whether the tag verified and the invitation opened (it should not,
    /// for a wrong guess), and the session key it would then hold.
    pub fn finish_forged(ticket: &Ticket, guess: &str, seed: [u8; 32], reply: &[u8]) -> Option<SecretKey> {
        let pw = crate::crypto::Password::new(guess).ok()?;
        let InboxValue::PakeReply(r) = inbox::decode_value(reply).ok()? else { return None };
        let nonce = <[u8; NONCE_LEN]>::try_from(r.nonce.as_slice()).ok()?;
        let keys = pake::invitee_finish(&pw, &ticket.record, &seed, &nonce, &r.message, &r.confirm).ok()?;
        inbox::open_pake_invitation(&keys.invitation, &ticket.record, &r.nonce, &r.invitation).ok()?;
        Some(keys.session)
    }
    /// A ticket holder answers `hello` as if it were the inviter, with its
    /// own PIN `guess` and an invitation signed by `mallory` (PIN-10 stages
    /// it: such a reply can only arrive by nudge, never in subkey 0).
    pub fn forge_reply(
        ticket: &Ticket,
        offer_value: &[u8],
        hello_value: &[u8],
        guess: &str,
        mallory: &crate::identity::Identity,
        now_secs: u64,
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let TicketSecret::Pin(s) = &ticket.secret else { return None };
        let InboxValue::PakeHello { sealed } = inbox::decode_value(hello_value).ok()? else { return None };
        let key = pake::hello_key(&s.inbox_secret(), &ticket.record);
        let h = inbox::open_hello(&key, &ticket.record, &sealed).ok()?;
        let offer_sealed = match inbox::decode_value(offer_value).ok()? {
            InboxValue::PinOffer { sealed } => sealed,
            InboxValue::PakeReply(r) => r.offer,
            _ => return None,
        };
        let o = inbox::open_offer(&InboxKeys::derive(&s.inbox_secret(), &ticket.record), &ticket.record, &offer_sealed)
            .ok()?;
        let (msg_b, keys) =
            pake::inviter_answer(guess.as_bytes(), &ticket.record, &h.nonce, &h.message, &mut OsRng).ok()?;
        let rk = mallory.record_key()?.clone();
        let content = crate::message::InvitationContent {
            kind: ticket.kind,
            inbox_key: ticket.record,
            writer_key: o.writer.public(),
            identity_key: mallory.public_key(),
            device_key: mallory.device_public(),
            identity_record: rk.clone(),
            profile: crate::message::Profile::new("alice").ok()?,
            conversation: Some(rk),
            created_at: now_secs,
            expires_at: o.expires_at,
            message: String::new(),
            encryption_key_type: crate::message::EncryptionKeyType::Pin,
            reply_to: None,
            multi_use: None,
        };
        let signed = content.sign(mallory.device_key(), mallory.signed()).ok()?;
        let v = inbox::pake_reply(
            &offer_sealed,
            &h.nonce,
            &msg_b,
            &keys.confirm,
            &keys.invitation,
            &ticket.record,
            &signed,
            &mut OsRng,
        );
        Some((v, h.reply_to))
    }
}
