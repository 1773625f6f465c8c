//! PIN invitations: SPAKE2 (RustCrypto's `spake2`, Ed25519 group) between the
//! invitee (side A) and the inviter (side B), rules PIN-1..PIN-9 in
//! `docs/protocol.md`.
//!
//! The SPAKE2 identities bind a run to one invitation: each side's identity is
//! a fixed label followed by the inbox record's opaque key, so a message made
//! for one invitation is useless for another. The password is the PIN's
//! digits. SPAKE2's output key `K` is never used directly: the invitation
//! seal key, the inviter's confirmation tag and the session secret (root of
//! the response and final-status keys) are derived from it with distinct
//! labels, bound to the inbox and the attempt's nonce.
//!
//! The invitee's SPAKE2 state is never persisted: it is recomputed from the
//! PIN and a persisted 32-byte attempt seed (the RNG of `start_a`), so a
//! restarted invitee that is given the same PIN continues the same attempt.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, SeedableRng};
use spake2::{Ed25519Group, Identity, Password as SpakePassword, Spake2};
use subtle::ConstantTimeEq;

use super::SecretKey;
use super::kdf::{KeyPurpose, derive};
use super::password::Password;

/// Length of an attempt nonce.
pub(crate) const NONCE_LEN: usize = 16;
/// Length of a SPAKE2 (Ed25519) message.
pub(crate) const MESSAGE_LEN: usize = 33;
/// Length of the key-confirmation tag.
pub(crate) const CONFIRM_LEN: usize = 32;

const ID_INVITEE: &[u8] = b"contact-invite pin invitee ";
const ID_INVITER: &[u8] = b"contact-invite pin inviter ";

pub(crate) fn identities(inbox: &[u8; 32]) -> (Identity, Identity) {
    let a = [ID_INVITEE, inbox.as_slice()].concat();
    let b = [ID_INVITER, inbox.as_slice()].concat();
    (Identity::new(&a), Identity::new(&b))
}

/// Why a PAKE step failed (never says more: the input is untrusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PakeFailed;

/// The keys one SPAKE2 run gives (each derived from `K` with its own label).
pub(crate) struct PakeKeys {
    /// Seals the signed invitation in the reply.
    pub(crate) invitation: SecretKey,
    /// The inviter's key-confirmation tag.
    pub(crate) confirm: [u8; CONFIRM_LEN],
    /// The session secret: root of the response and final-status keys.
    pub(crate) session: SecretKey,
}

pub(crate) fn keys(k: &[u8], inbox: &[u8; 32], nonce: &[u8; NONCE_LEN], msg_a: &[u8], msg_b: &[u8]) -> PakeKeys {
    let ctx: [&[u8]; 4] = [inbox, nonce, msg_a, msg_b];
    let confirm_key = derive(KeyPurpose::PakeConfirm, k, &ctx);
    let mut confirm = [0u8; CONFIRM_LEN];
    confirm.copy_from_slice(confirm_key.expose());
    PakeKeys {
        invitation: derive(KeyPurpose::PakeInvitationSeal, k, &ctx),
        confirm,
        session: derive(KeyPurpose::PakeSession, k, &ctx),
    }
}

/// The invitee's message A for an attempt (deterministic in `pin` and `seed`).
pub(crate) fn invitee_message(pin: &Password, inbox: &[u8; 32], seed: &[u8; 32]) -> Vec<u8> {
    let (a, b) = identities(inbox);
    let (_, msg) = Spake2::<Ed25519Group>::start_a_with_rng(
        &SpakePassword::new(pin.bytes()),
        &a,
        &b,
        ChaCha20Rng::from_seed(*seed),
    );
    msg
}

/// The inviter's answer to message A: its message B and the run's keys.
pub(crate) fn inviter_answer(
    pin: &[u8],
    inbox: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    msg_a: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<(Vec<u8>, PakeKeys), PakeFailed> {
    if msg_a.len() != MESSAGE_LEN {
        return Err(PakeFailed);
    }
    let (a, b) = identities(inbox);
    let (state, msg_b) = Spake2::<Ed25519Group>::start_b_with_rng(&SpakePassword::new(pin), &a, &b, rng);
    let k = zeroize::Zeroizing::new(state.finish(msg_a).map_err(|_| PakeFailed)?);
    let keys = keys(&k, inbox, nonce, msg_a, &msg_b);
    Ok((msg_b, keys))
}

/// The invitee finishes an attempt with the inviter's message B and checks
/// the inviter's confirmation tag: `Err` is a wrong PIN (or a message that
/// was altered), the same to the invitee.
pub(crate) fn invitee_finish(
    pin: &Password,
    inbox: &[u8; 32],
    seed: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    msg_b: &[u8],
    confirm: &[u8],
) -> Result<PakeKeys, PakeFailed> {
    if msg_b.len() != MESSAGE_LEN || confirm.len() != CONFIRM_LEN {
        return Err(PakeFailed);
    }
    let (a, b) = identities(inbox);
    let (state, msg_a) = Spake2::<Ed25519Group>::start_a_with_rng(
        &SpakePassword::new(pin.bytes()),
        &a,
        &b,
        ChaCha20Rng::from_seed(*seed),
    );
    let k = zeroize::Zeroizing::new(state.finish(msg_b).map_err(|_| PakeFailed)?);
    let keys = keys(&k, inbox, nonce, &msg_a, msg_b);
    if bool::from(keys.confirm.ct_eq(confirm)) { Ok(keys) } else { Err(PakeFailed) }
}

/// The key sealing hellos of this inbox (from the inbox secret: the ticket
/// alone opens a hello; nothing in it is derived from the PIN alone).
pub(crate) fn hello_key(inbox_secret: &SecretKey, inbox: &[u8; 32]) -> SecretKey {
    derive(KeyPurpose::PakeHelloSeal, inbox_secret.expose(), &[inbox])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn pin(s: &str) -> Password {
        Password::new(s).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn same_pin_agrees_and_confirms_wrong_pin_does_not() {
        let inbox = [7u8; 32];
        let nonce = [1u8; NONCE_LEN];
        let seed = [9u8; 32];
        let msg_a = invitee_message(&pin("1234"), &inbox, &seed);
        assert_eq!(msg_a, invitee_message(&pin("1234"), &inbox, &seed), "deterministic in pin and seed");
        let (msg_b, k_b) = inviter_answer(b"1234", &inbox, &nonce, &msg_a, &mut OsRng).expect("answer");
        let k_a = invitee_finish(&pin("1234"), &inbox, &seed, &nonce, &msg_b, &k_b.confirm).expect("finish");
        assert_eq!(k_a.session, k_b.session);
        assert_eq!(k_a.invitation, k_b.invitation);
        // The inviter holds another PIN: the tag does not verify.
        let (msg_b, k_b) = inviter_answer(b"1235", &inbox, &nonce, &msg_a, &mut OsRng).expect("answer");
        assert!(invitee_finish(&pin("1234"), &inbox, &seed, &nonce, &msg_b, &k_b.confirm).is_err());
        // Another inbox: the identities differ, so the keys do too.
        let (msg_b, k_b) = inviter_answer(b"1234", &[8u8; 32], &nonce, &msg_a, &mut OsRng).expect("answer");
        assert!(invitee_finish(&pin("1234"), &inbox, &seed, &nonce, &msg_b, &k_b.confirm).is_err());
        // Garbage messages are refused, not a panic.
        assert!(inviter_answer(b"1234", &inbox, &nonce, &[0u8; 5], &mut OsRng).is_err());
        assert!(invitee_finish(&pin("1234"), &inbox, &seed, &nonce, &[0u8; 33], &[0u8; 32]).is_err());
    }
}
