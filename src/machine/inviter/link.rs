//! The inviter's part of a device link ([`Inviter::link_device`], on the
//! device holding the identity key): a verified accept first adds the new
//! device to the identity record by read–merge–write, then the final status
//! carries the handover sealed to the new device.

use super::*;

impl Inviter {
    /// Starts a device-link invitation: the device that accepts its ticket
    /// (with [`crate::machine::Invitee::link`]) becomes a current device of this
    /// identity and receives the account secret. Only the device holding the
    /// identity key can link devices.
    pub fn link_device(params: SendParams, now: u64, rng: &mut dyn Rng) -> Result<(Self, Vec<Effect>), Error> {
        if params.identity.identity_signing_key().is_none() {
            return Err(Error::ApiMisuse("only the device holding the identity key can link devices"));
        }
        Self::with_kind(params, InvitationKind::DeviceLink, now, rng)
    }

    /// A verified device-link accept: first add the device to the identity
    /// record (read, merge, write), then write the final status with the
    /// handover (see `on_link_published`).
    pub(super) fn finalize_link(&mut self, p: Published, resp: &VerifiedResponse, _now: u64, out: &mut Vec<Effect>) {
        let c = resp.content();
        let (Some(consent), Some(dh)) = (c.device_consent, c.device_dh_key) else {
            let reason = crate::error::ErrorCode::UntrustedDevice;
            out.push(Effect::Emit(Event::ResponseIgnored { reason }));
            return;
        };
        self.ops.cancel_timer(Timer::Poll, out);
        self.ops.cancel_timer(Timer::Expiry, out);
        let label = c.profile.as_ref().map(|p| p.name().to_owned()).unwrap_or_default();
        let link = LinkState {
            device: c.device_key,
            consent,
            dh,
            label,
            response_hash: *resp.hash(),
            updated: None,
            merges: 0,
        };
        let fin = Finalizing {
            status: FinalStatusKind::Accepted,
            final_value: Vec::new(),
            written: false,
            contact: None,
            responder_device: Some(c.device_key),
            freshness: Freshness::NotNeeded,
            link: Some(Box::new(link)),
            peer_reply_to: c.reply_to.clone(),
            answered: None,
            rewrites: 0,
        };
        self.state = State::Finalizing(p, Box::new(fin));
        let mut ops_out = Vec::new();
        self.start_link_read(&mut ops_out);
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    pub(super) fn start_link_read(&mut self, out: &mut Vec<Effect>) {
        let Some(key) = self.core.identity.record_key().cloned() else { return };
        self.ops.start(Purpose::LinkGetIdentity, DhtOp::Get { key, subkey: 0 }, out);
    }

    /// Merges the new device into the newest identity record we know of and
    /// writes it.
    pub(super) fn on_link_identity(
        &mut self,
        v: Option<ValueData>,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let own = self.core.identity.public_key();
        let mut base = self.core.identity.signed().clone();
        if let Some(v) = v
            && let Some(at) = self.core.identity.record_key()
            && let Ok(fetched) = SignedIdentity::verify_at(&v.data, &own, at)
            && fetched.record().seq > base.record().seq
        {
            base = fetched;
        }
        let (Some(id_key), Some(record_key)) =
            (self.core.identity.identity_signing_key().cloned(), self.core.identity.record_key().cloned())
        else {
            return self.fail(Error::ApiMisuse("only the device holding the identity key can link devices"), out);
        };
        let State::Finalizing(p, f) = &mut self.state else { return };
        let Some(link) = f.link.as_mut() else { return };
        let mut record = base.record().clone();
        let failure: Option<Error> = match record.device_status(&link.device) {
            Some(crate::message::DeviceStatus::Current) => None,
            Some(_) => Some(ProtocolError::DeviceRevoked.into()),
            None if record.devices.len() >= crate::limits::MAX_DEVICES => Some(ProtocolError::TooManyDevices.into()),
            None => {
                match crate::message::DeviceEntry::from_consent(
                    &own,
                    link.device,
                    link.consent,
                    link.dh,
                    secs(now),
                    &link.label,
                ) {
                    Ok(entry) => {
                        record.devices.push(entry);
                        None
                    }
                    Err(e) => Some(e.into()),
                }
            }
        };
        if let Some(reason) = failure {
            let p = p.clone();
            self.pending_failure = Some(Failure::from(reason));
            return self.finalize(p, FinalStatusKind::Revoked, None, now, rng, out);
        }
        record.seq = base.record().seq + 1;
        record.updated_at = secs(now);
        let signed = match record.sign(&id_key) {
            Ok(s) => s,
            Err(e) => return self.fail(e.into(), out),
        };
        let data = signed.to_bytes().to_vec();
        link.updated = Some(signed);
        let mut ops_out = Vec::new();
        self.ops.start(
            Purpose::LinkSetIdentity,
            DhtOp::Set { key: record_key, subkey: 0, data, writer: id_key },
            &mut ops_out,
        );
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    /// The record listing the new device is on the DHT: adopt it, hand the
    /// account secret over, and write the final status.
    pub(super) fn on_link_published(
        &mut self,
        newer: Option<ValueData>,
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let State::Finalizing(p, f) = &mut self.state else { return };
        let Some(link) = f.link.as_mut() else { return };
        let Some(updated) = link.updated.clone() else { return };
        if let Some(v) = newer
            && v.data != updated.to_bytes()
        {
            // Another writer updated the record first: merge into theirs.
            link.merges += 1;
            link.updated = None;
            if link.merges >= super::super::MAX_ATTEMPTS {
                let p = p.clone();
                self.pending_failure = Some(Failure::from(Error::Protocol(ProtocolError::RetriesExhausted {
                    what: "merging the new device into an identity record that kept changing".into(),
                    attempts: link.merges,
                })));
                return self.finalize(p, FinalStatusKind::Revoked, None, now, rng, out);
            }
            let mut ops_out = Vec::new();
            self.start_link_read(&mut ops_out);
            out.push(Effect::Persist);
            out.extend(ops_out);
            return;
        }
        let (device, dh, response_hash) = (link.device, link.dh, link.response_hash);
        let p = p.clone();
        if let Err(e) = self.core.identity.make_mut(|id| id.adopt_record(updated.clone())) {
            return self.fail(e, out);
        }
        let ctx = HandoverContext {
            inbox: p.inbox.opaque(),
            invitation_hash: &p.invitation_hash,
            response_hash: &response_hash,
            device: &device,
        };
        let account_key = self.core.identity.account_key().clone();
        let sealed = match handover::seal(&ctx, &dh, &account_key, &updated, &mut RngAdapter(rng)) {
            Ok(s) => s,
            Err(e) => return self.fail(e.into(), out),
        };
        let own = self.core.identity.public_key();
        let value =
            match self.final_value(&p, FinalStatusKind::Accepted, Some(response_hash), Some(own), sealed, now, rng) {
                Ok(v) => v,
                Err(e) => return self.fail(e, out),
            };
        let mut ops_out = Vec::new();
        self.start_final_write(&p.inbox, value, &mut ops_out);
        out.push(Effect::SaveIdentity(Box::new(Identity::clone(&self.core.identity))));
        out.push(Effect::Persist);
        out.extend(ops_out);
    }
}
