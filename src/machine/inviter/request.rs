//! The inviter's part of a request to a known address ([`Inviter::request`]):
//! once the invitation is published, its ticket is signed, sealed to the
//! recipient's request inbox (read from its identity record), stamped and
//! written to a slot.

use super::*;

/// The recipient's request inbox, from its identity record (verified at
/// the address's location, FRESH-1), refused above our cap before any work.
pub(super) fn recipient_inbox(
    d: &Delivery,
    recipient_record: &[u8],
) -> Result<(SignedIdentity, crate::message::RequestInboxInfo), Error> {
    let recipient = SignedIdentity::verify_at(recipient_record, &d.to.identity, &d.to.record)?;
    let info = recipient.record().request_inbox.clone().ok_or(ProtocolError::NoRequestInbox)?;
    if info.pow_bits > d.max_pow_bits {
        return Err(ProtocolError::StampTooCostly { required: info.pow_bits, max: d.max_pow_bits }.into());
    }
    Ok((recipient, info))
}

/// The stamp job for a sealed request (EDGE-RQ-3: over its sealed bytes),
/// to the inbox `info` of the recipient's verified record.
pub(super) fn mint_job(d: &Delivery, info: &crate::message::RequestInboxInfo, sealed: &[u8]) -> Job {
    Job::Mint {
        bits: info.pow_bits,
        recipient: *d.to.identity.as_bytes(),
        inbox: *info.record.opaque(),
        subject: address::stamp_subject(d.ephemeral.public().as_bytes(), sealed),
    }
}

impl Inviter {
    /// Starts a contact request to a known address: an ordinary contact
    /// invitation whose ticket, once published, is delivered to the
    /// recipient's request inbox (signed by this device, sealed to the
    /// recipient, with a proof-of-work stamp of the difficulty the recipient
    /// asks, refused above `max_pow_bits`). If the recipient accepts, the
    /// contact is made exactly as for a scanned ticket.
    pub fn request(
        params: SendParams,
        to: Address,
        max_pow_bits: u32,
        now: u64,
        rng: &mut dyn Rng,
    ) -> Result<(Self, Vec<Effect>), Error> {
        if params.lock.is_locked() {
            return Err(Error::ApiMisuse("a request carries an unlocked ticket: no password"));
        }
        if to.identity == params.identity.public_key() {
            return Err(Error::ApiMisuse("a request to ourselves"));
        }
        let (mut m, out) = Self::with_kind(params, InvitationKind::Contact, now, rng)?;
        m.delivery = Some(Box::new(Delivery {
            to,
            max_pow_bits: max_pow_bits.min(crate::crypto::pow::MAX_POW_BITS),
            ephemeral: DhSecretKey::generate(&mut RngAdapter(rng)),
            delivered: false,
            write: None,
            overwrites: 0,
            minting: None,
        }));
        Ok((m, out))
    }

    /// The recipient of this flow's request, if it is one.
    pub fn request_target(&self) -> Option<PublicKey> {
        self.delivery.as_ref().map(|d| d.to.identity)
    }

    pub(super) fn start_delivery(&mut self, out: &mut Vec<Effect>) {
        let Some(d) = &self.delivery else { return };
        if d.delivered
            || d.minting.is_some()
            || self.ops.has_pending(|p| matches!(p, Purpose::DeliverGetIdentity | Purpose::DeliverSet))
        {
            return;
        }
        let key = d.to.record.clone();
        self.ops.start(Purpose::DeliverGetIdentity, DhtOp::Get { key, subkey: 0 }, out);
    }

    /// The recipient's identity record is in: sign and seal the request,
    /// then ask for its stamp over the sealed bytes (minted off the runtime,
    /// see [`Self::on_minted`]).
    pub(super) fn on_deliver_identity(
        &mut self,
        v: Option<ValueData>,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let (State::Waiting(p), Some(d)) = (&self.state, &self.delivery) else { return };
        let p = p.clone();
        let sealed = (|| -> Result<(Minting, Job), Error> {
            let record = v.ok_or(ProtocolError::NotFound)?.data;
            let (recipient, info) = recipient_inbox(d, &record)?;
            let inbox_key = *info.record.opaque();
            let c = &self.core;
            let content = AddressRequestContent {
                recipient_identity: d.to.identity,
                request_inbox: inbox_key,
                ephemeral_key: d.ephemeral.public(),
                identity_key: c.identity.public_key(),
                device_key: c.identity.device_public(),
                identity_record: c.identity.record_key().cloned().ok_or(Error::ApiMisuse("identity not published"))?,
                profile: c.profile()?.clone(),
                ticket: p.ticket.clone(),
                message: c.message.clone(),
                created_at: c.created_at,
                expires_at: c.expires_at,
            };
            let signed = content.sign(c.identity.device_key(), c.identity.signed())?;
            let sealed = address::seal_request(
                &signed,
                &d.ephemeral,
                &d.to.identity,
                &recipient.record().dh_key,
                &inbox_key,
                &mut RngAdapter(rng),
            )?;
            let job = mint_job(d, &info, &sealed);
            Ok((Minting { record, sealed }, job))
        })();
        match sealed {
            Ok((m, job)) => {
                if let Some(d) = &mut self.delivery {
                    d.minting = Some(m);
                }
                out.push(Effect::Persist);
                out.push(Effect::Compute(job));
            }
            Err(e) => self.delivery_failed(p, e, now, rng, out),
        }
    }

    /// The stamp is minted: write the slot value to a random slot of the
    /// recipient's request inbox.
    pub(super) fn on_minted(
        &mut self,
        (bits, subject, nonce): (u32, [u8; 32], Option<u64>),
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let (State::Waiting(p), Some(d)) = (&self.state, &self.delivery) else { return };
        let Some(m) = d.minting.clone() else { return };
        if subject != address::stamp_subject(d.ephemeral.public().as_bytes(), &m.sealed) {
            return;
        }
        let p = p.clone();
        let built = (|| -> Result<(RecordKey, u32, Vec<u8>, SigningKey), Error> {
            let (_, info) = recipient_inbox(d, &m.record)?;
            let too_costly = ProtocolError::StampTooCostly { required: info.pow_bits, max: d.max_pow_bits };
            // The stamp must be one for exactly these bytes (fail closed).
            let stamp = nonce
                .filter(|n| {
                    bits == info.pow_bits
                        && crate::crypto::pow::check(
                            info.pow_bits,
                            d.to.identity.as_bytes(),
                            info.record.opaque(),
                            &subject,
                            *n,
                        )
                })
                .ok_or(too_costly)?;
            let value = address::slot_value(&d.ephemeral.public(), stamp, m.sealed);
            let slot = 1 + (rng.next_u32() % info.slots);
            Ok((info.record, slot, value, info.writer))
        })();
        if let Some(d) = &mut self.delivery {
            d.minting = None;
        }
        match built {
            Ok((key, subkey, data, writer)) => {
                let op = DhtOp::Set { key, subkey, data, writer };
                if let Some(d) = &mut self.delivery {
                    d.write = Some(op.clone());
                }
                self.ops.start(Purpose::DeliverSet, op, out);
                out.insert(0, Effect::Persist);
            }
            Err(e) => self.delivery_failed(p, e, now, rng, out),
        }
    }

    /// The request could not be delivered: close the invitation (nobody can
    /// answer it) and end with the reason.
    pub(super) fn delivery_failed(
        &mut self,
        p: Published,
        e: Error,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        self.pending_failure = Some(Failure::from(e));
        self.finalize(p, FinalStatusKind::Revoked, None, now, rng, out);
    }
}
