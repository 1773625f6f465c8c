//! Password protection of an invitation secret with Argon2id (the offline
//! path, for long passphrases). PINs never take it: a PIN invitation runs
//! SPAKE2 with the inviter's device ([`super::pake`], rules PIN-*).
//!
//! The ticket carries the salt and the Argon2id parameters; the secret it
//! carries is `secret XOR derive(PasswordMask, Argon2id(password, salt), record)`.
//! There is **no** check value: a wrong password yields a wrong secret that is
//! only detected when the inbox ciphertext fails to open. A guess can therefore
//! not be confirmed from the ticket alone; it can be confirmed offline by
//! someone who holds the ticket **and** has fetched the inbox ciphertext, at
//! the cost of one Argon2id evaluation per guess (see `docs/threat-model.md`).
//!
//! Parameters read from a ticket are untrusted: [`PasswordLimits::check`] runs
//! before any work and refuses anything above the caps with
//! [`PasswordError::ExcessiveWork`].

use core::fmt;

use rand_core::RngCore as CryptoRngCore;
use zeroize::Zeroizing;

use super::kdf::{KeyPurpose, derive};
use super::keys::INVITE_SECRET_LEN;
use super::{InviteSecret, SecretKey};
use crate::error::PasswordError;

/// Salt length.
pub const SALT_LEN: usize = 16;

/// Argon2id parameters as carried in a ticket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordParams {
    /// Memory is `2^m_cost_log2` KiB.
    pub m_cost_log2: u8,
    /// Passes.
    pub t_cost: u8,
    /// Lanes.
    pub p_cost: u8,
}

impl PasswordParams {
    /// The defaults for new invitations: 64 MiB, 3 passes, 1 lane
    /// (RFC 9106's second recommendation, with one lane for phones).
    /// Measured cost per guess is in the README (`## Performance`).
    pub const DEFAULT: Self = Self { m_cost_log2: 16, t_cost: 3, p_cost: 1 };

    /// Cheap parameters for tests and examples only. Never use for real invitations.
    pub const INSECURE_FAST_FOR_TESTS: Self = Self { m_cost_log2: 5, t_cost: 1, p_cost: 1 };

    /// Memory in KiB (saturating).
    pub fn memory_kib(&self) -> u64 {
        1u64.checked_shl(u32::from(self.m_cost_log2)).unwrap_or(u64::MAX)
    }
}

/// Caps on attacker-supplied Argon2id parameters. Checked before any work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordLimits {
    /// Largest memory exponent accepted (KiB = 2^this).
    pub max_m_cost_log2: u8,
    /// Most passes accepted.
    pub max_t_cost: u8,
    /// Most lanes accepted.
    pub max_p_cost: u8,
    /// Cap on memory × passes, in KiB·passes.
    pub max_work_kib_passes: u64,
}

impl Default for PasswordLimits {
    /// [`Self::MOBILE`]: safe in a phone app (rule EDGE-ARGON-1).
    fn default() -> Self {
        Self::MOBILE
    }
}

impl PasswordLimits {
    /// The default policy, safe in a phone app and its extensions: at most
    /// 64 MiB ([`crate::limits::MOBILE_MAX_ARGON2_MEMORY_KIB`]), 8 passes,
    /// 4 lanes and 256 MiB·passes in total. Opens every ticket made with
    /// [`PasswordParams::DEFAULT`] (64 MiB, 3 passes); refuses, before any
    /// work, tickets that would allocate more than a phone app can afford
    /// (an OS kills apps that do, iOS extensions above a few tens of MiB).
    pub const MOBILE: Self = Self {
        max_m_cost_log2: crate::limits::MOBILE_MAX_ARGON2_M_COST_LOG2,
        max_t_cost: 8,
        max_p_cost: 4,
        max_work_kib_passes: crate::limits::MOBILE_MAX_ARGON2_MEMORY_KIB * 4,
    };
    /// For desktop apps that want to open tickets made with stronger
    /// parameters: 256 MiB, 10 passes, 4 lanes, at most 1 GiB·pass.
    pub const DESKTOP: Self = Self { max_m_cost_log2: 18, max_t_cost: 10, max_p_cost: 4, max_work_kib_passes: 1 << 20 };

    /// The most memory this policy lets a ticket ask for, in KiB.
    pub fn max_memory_kib(&self) -> u64 {
        1u64.checked_shl(u32::from(self.max_m_cost_log2)).unwrap_or(u64::MAX)
    }

    /// Refuses parameters above the caps (before any work) or invalid for Argon2id.
    pub fn check(&self, p: &PasswordParams) -> Result<(), PasswordError> {
        if p.t_cost == 0 || p.p_cost == 0 {
            return Err(PasswordError::InvalidParams("t_cost and p_cost must be at least 1"));
        }
        if p.m_cost_log2 > self.max_m_cost_log2 {
            return Err(PasswordError::ExcessiveWork {
                required: format!("{} KiB of memory", p.memory_kib()),
                max: format!("{} KiB", 1u64 << self.max_m_cost_log2),
            });
        }
        if p.t_cost > self.max_t_cost {
            return Err(PasswordError::ExcessiveWork {
                required: format!("{} passes", p.t_cost),
                max: format!("{} passes", self.max_t_cost),
            });
        }
        if p.p_cost > self.max_p_cost {
            return Err(PasswordError::ExcessiveWork {
                required: format!("{} lanes", p.p_cost),
                max: format!("{} lanes", self.max_p_cost),
            });
        }
        let work = p.memory_kib().saturating_mul(u64::from(p.t_cost));
        if work > self.max_work_kib_passes {
            return Err(PasswordError::ExcessiveWork {
                required: format!("{work} KiB·passes"),
                max: format!("{} KiB·passes", self.max_work_kib_passes),
            });
        }
        // Argon2 needs at least 8 KiB per lane.
        if p.memory_kib() < 8 * u64::from(p.p_cost) {
            return Err(PasswordError::InvalidParams("memory must be at least 8 KiB per lane"));
        }
        Ok(())
    }
}

/// A password or PIN. Zeroized on drop, redacted in `Debug`, no `Display`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password. The string is taken as UTF-8 bytes, unnormalised:
    /// apps that accept input from several keyboards should NFC-normalise first.
    pub fn new(password: impl Into<String>) -> Result<Self, PasswordError> {
        let s = Zeroizing::new(password.into());
        if s.is_empty() {
            return Err(PasswordError::Empty);
        }
        Ok(Self(s))
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A PIN: [`crate::limits::MIN_PIN_DIGITS`] to
/// [`crate::limits::MAX_PIN_DIGITS`] ASCII digits, what a keypad enters.
/// The invitee of a PIN ticket is told to show a keypad
/// (`Event::PasswordRequired { pin: true }`), so a PIN holds nothing a keypad
/// cannot type. A PIN is checked online by the inviter's device (SPAKE2),
/// never stretched into an offline lock. Zeroized on drop, redacted in
/// `Debug`, no `Display`.
#[derive(Clone)]
pub struct Pin(Password);

impl Pin {
    /// Checks and wraps a PIN: digits only, of a valid length
    /// ([`PasswordError::Empty`], else [`PasswordError::InvalidPin`], which
    /// does not quote the input).
    pub fn new(digits: impl Into<String>) -> Result<Self, PasswordError> {
        let s = Zeroizing::new(digits.into());
        if s.is_empty() {
            return Err(PasswordError::Empty);
        }
        if !(crate::limits::MIN_PIN_DIGITS..=crate::limits::MAX_PIN_DIGITS).contains(&s.len())
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PasswordError::InvalidPin);
        }
        Ok(Self(Password(s)))
    }

    /// The PIN as a [`Password`] (the invitee enters it as one; it goes into
    /// a SPAKE2 attempt, never into Argon2id).
    pub fn as_password(&self) -> &Password {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

/// Runs Argon2id over the password (after checking the parameters against
/// `limits`). The output is a password-equivalent secret: the inviter keeps it
/// (never the password) until the record key is known.
pub(crate) fn stretch(
    password: &Password,
    salt: &[u8; SALT_LEN],
    params: &PasswordParams,
    limits: &PasswordLimits,
) -> Result<SecretKey, PasswordError> {
    limits.check(params)?;
    let m_kib = u32::try_from(params.memory_kib()).map_err(|_| PasswordError::InvalidParams("memory out of range"))?;
    let a_params = argon2::Params::new(m_kib, u32::from(params.t_cost), u32::from(params.p_cost), Some(32))
        .map_err(|_| PasswordError::InvalidParams("rejected by Argon2"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, a_params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.bytes(), salt, out.as_mut())
        .map_err(|_| PasswordError::InvalidParams("rejected by Argon2"))?;
    Ok(SecretKey::from_bytes(&mut out))
}

/// Masks (or unmasks: XOR is its own inverse) a ticket's invitation secret
/// with the key derived from a stretched password, bound to the record and
/// the salt.
pub(crate) fn apply_mask(
    secret: &InviteSecret,
    stretched: &SecretKey,
    salt: &[u8; SALT_LEN],
    record: &[u8; 32],
) -> InviteSecret {
    let m = derive(KeyPurpose::PasswordMask, stretched.expose(), &[record, salt]);
    let mut out = [0u8; INVITE_SECRET_LEN];
    for (o, (x, y)) in out.iter_mut().zip(secret.expose().iter().zip(m.expose().iter())) {
        *o = x ^ y;
    }
    InviteSecret::from_bytes(&mut out)
}

/// Fresh random salt.
pub(crate) fn new_salt(rng: &mut (impl CryptoRngCore + ?Sized)) -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    salt
}

/// Unmasks a ticket secret. A wrong password gives a wrong secret (detected
/// later, when the inbox fails to open); hostile parameters are refused first.
#[cfg(test)]
pub(crate) fn unlock(
    masked: &InviteSecret,
    password: &Password,
    salt: &[u8; SALT_LEN],
    params: &PasswordParams,
    record: &[u8; 32],
    limits: &PasswordLimits,
) -> Result<InviteSecret, PasswordError> {
    let stretched = stretch(password, salt, params, limits)?;
    Ok(apply_mask(masked, &stretched, salt, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const FAST: PasswordParams = PasswordParams::INSECURE_FAST_FOR_TESTS;

    #[test]
    fn lock_unlock_round_trip_and_wrong_password_gives_other_secret() {
        let s = InviteSecret::generate(&mut OsRng);
        let pw = Password::new("correct horse").unwrap();
        let rec = [3u8; 32];
        let salt = new_salt(&mut OsRng);
        let st = stretch(&pw, &salt, &FAST, &PasswordLimits::default()).unwrap();
        let masked = apply_mask(&s, &st, &salt, &rec);
        assert_ne!(masked, s);
        let lim = PasswordLimits::default();
        assert_eq!(unlock(&masked, &pw, &salt, &FAST, &rec, &lim).unwrap(), s);
        let wrong = Password::new("correct horsf").unwrap();
        assert_ne!(unlock(&masked, &wrong, &salt, &FAST, &rec, &lim).unwrap(), s);
        // Bound to the record key too.
        assert_ne!(unlock(&masked, &pw, &salt, &FAST, &[4u8; 32], &lim).unwrap(), s);
    }

    #[test]
    fn hostile_parameters_refused_before_work() {
        let lim = PasswordLimits::default();
        let huge_m = PasswordParams { m_cost_log2: 40, t_cost: 1, p_cost: 1 };
        let huge_t = PasswordParams { m_cost_log2: 10, t_cost: 255, p_cost: 1 };
        let huge_p = PasswordParams { m_cost_log2: 10, t_cost: 1, p_cost: 255 };
        let product = PasswordParams { m_cost_log2: 16, t_cost: 8, p_cost: 1 };
        for p in [huge_m, huge_t, huge_p, product] {
            let start = std::time::Instant::now();
            let r =
                unlock(&InviteSecret::generate(&mut OsRng), &Password::new("x").unwrap(), &[0; 16], &p, &[0; 32], &lim);
            assert!(matches!(r, Err(PasswordError::ExcessiveWork { .. })), "{p:?}: {r:?}");
            // Refused without running Argon2 (a 256 MiB x 10 run takes seconds).
            assert!(start.elapsed() < std::time::Duration::from_millis(200));
        }
        assert!(matches!(
            lim.check(&PasswordParams { m_cost_log2: 10, t_cost: 0, p_cost: 1 }),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(matches!(
            lim.check(&PasswordParams { m_cost_log2: 2, t_cost: 1, p_cost: 1 }),
            Err(PasswordError::InvalidParams(_))
        ));
        assert!(lim.check(&PasswordParams::DEFAULT).is_ok());
        assert_eq!(Password::new("").unwrap_err(), PasswordError::Empty);
        assert_eq!(format!("{:?}", Password::new("hunter2").unwrap()), "Password(<redacted>)");
    }

    /// APP-LOCK-1: a PIN is 4 to 32 ASCII digits; anything else is a typed
    /// error that does not quote the input.
    #[test]
    fn pin_is_digits_only_and_its_error_does_not_quote_the_input() {
        assert_eq!(Pin::new("").unwrap_err(), PasswordError::Empty);
        for bad in ["123", "12a4", "１２３４", "12 34", "-1234", &"9".repeat(crate::limits::MAX_PIN_DIGITS + 1)] {
            let e = Pin::new(bad).unwrap_err();
            assert_eq!(e, PasswordError::InvalidPin, "{bad:?}");
            assert!(!e.to_string().contains(bad), "{e}");
        }
        for good in ["0000", "4711", &"7".repeat(crate::limits::MAX_PIN_DIGITS)] {
            let pin = Pin::new(good).unwrap();
            assert_eq!(pin.as_password().bytes(), good.as_bytes());
            assert_eq!(format!("{pin:?}"), "Pin(<redacted>)");
        }
        assert_eq!(crate::Error::from(PasswordError::InvalidPin).code(), crate::ErrorCode::PinInvalid);
    }
}
