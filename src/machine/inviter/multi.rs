//! Multi-use invitations (rules MU-*, docs/protocol.md "Multi-use
//! invitations").
//!
//! The invitation's inbox keeps its request in subkey 0 while it is open,
//! and has [`crate::limits::USE_SLOTS`] claim slots (writer subkeys
//! `1..=slots`). An acceptor creates its own *answer record* (an inbox of
//! the one-time shape: owner subkey 0, writer subkey 1), writes its sealed
//! response there, and writes a claim to a slot: the answer record's key and
//! keys and the response, sealed to the inviter's identity X25519 key.
//!
//! The inviter answers claims one at a time, in the order it takes them: a
//! verified claim is queued (deduplicated by its response's name, MU-4),
//! and the one at the head is answered through the one-time finalize path,
//! with the answer record standing in for the inbox (`Published::bound`
//! names the invitation's inbox in every signed context, MU-3): freshness
//! read, final status written to the answer record, contact saved,
//! tombstone. An accept while uses remain is `accepted` (the final status
//! carries our conversation record for it); an accept once every use is
//! taken is `no uses left` (MU-5); a reject is `rejected`. When the last use
//! is taken, the claims already queued are answered `no uses left`, then the
//! invitation is closed: its subkey 0 becomes a final status `no uses left`
//! (or `revoked` / `expired`), which is what later scanners and acceptors
//! whose claims were never answered read (MU-5). So at most `limit`
//! contacts are ever made, and every acceptor ends.

use std::collections::VecDeque;

use super::*;
use crate::flow::{Lock, UseView, Uses, UsesClosed, UsesView};
use crate::message::MultiUse;

/// Most claims waiting their turn; more stay in their slots and are read
/// again once the queue has room.
const MAX_QUEUED: usize = 16;

/// Turns one claim may take before it is dropped: its answer record could
/// not be opened or written (a network fault, or a record nobody can open).
const USE_TRIES: u32 = 3;

/// How long one acceptor may hold the invitation's turn (opening and
/// writing its answer record, reading its identity record) before it is
/// given up: a hostile acceptor cannot stall the others for longer (MU-6).
/// An accept's final status, once being written, is retried like a
/// one-time invitation's instead (see `give_up_at`): only the inviter's own
/// network failing keeps it waiting then.
const USE_TURN_MS: u64 = 120_000;

/// The terms a `SendParams::uses` asks for, or why they cannot be had.
pub(super) fn terms(uses: Uses, kind: InvitationKind, lock: &Lock) -> Result<Option<MultiUse>, Error> {
    let limit = match uses {
        Uses::Once | Uses::AtMost(1) => return Ok(None),
        Uses::AtMost(0) => return Err(Error::ApiMisuse("an invitation admits at least one use")),
        Uses::AtMost(n) => Some(n),
        Uses::Unlimited => None,
    };
    if kind != InvitationKind::Contact {
        return Err(Error::ApiMisuse("only contact invitations can be multi-use"));
    }
    if matches!(lock, Lock::Pin(_)) {
        return Err(Error::ApiMisuse("a PIN invitation is one-time (its attempts are counted per invitation)"));
    }
    Ok(Some(MultiUse { limit, slots: crate::limits::USE_SLOTS }))
}

/// A multi-use invitation's bookkeeping (persisted with the flow).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Multi {
    terms: MultiUse,
    accepted: Vec<UseView>,
    rejected: u32,
    turned_away: u32,
    /// Names of every response taken (answered or being answered): a claim
    /// is answered once, however often it is read or replayed (MU-4).
    answered: Vec<[u8; 32]>,
    /// Claims waiting their turn, with their response's name; opened and
    /// verified again when taken.
    queue: VecDeque<([u8; 32], Vec<u8>, u32)>,
    /// The acceptor being answered.
    current: Option<Box<CurrentUse>>,
    /// Closing once no acceptor is being answered: revoked, expired, or
    /// every use taken (`NoUsesLeft`, after the queue is answered).
    close: Option<FinalStatusKind>,
}

/// The acceptor being answered, and the invitation to return to.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CurrentUse {
    hub: Published,
    /// Writes the answer record's final status.
    owner: KeySeed,
    /// Writes the answer record's tombstone.
    writer: KeySeed,
    /// Owns our conversation record for this contact.
    conversation_owner: KeySeed,
    record: RecordKey,
    status: FinalStatusKind,
    /// The claim as read (verified again when answered), its response's
    /// name, and the turns it took before this one.
    claim: Vec<u8>,
    hash: [u8; 32],
    tries: u32,
    name: String,
    conversation: Option<RecordKey>,
    opened: bool,
    started_at: u64,
}

impl Multi {
    pub(super) fn new(terms: MultiUse) -> Box<Self> {
        Box::new(Self {
            terms,
            accepted: Vec::new(),
            rejected: 0,
            turned_away: 0,
            answered: Vec::new(),
            queue: VecDeque::new(),
            current: None,
            close: None,
        })
    }

    fn full(&self) -> bool {
        self.terms.limit.is_some_and(|l| self.accepted.len() >= l as usize)
    }

    /// The accounting as the app sees it.
    pub(super) fn view(&self, expires_at: u64) -> UsesView {
        UsesView {
            limit: self.terms.limit,
            accepted: self.accepted.clone(),
            rejected: self.rejected,
            turned_away: self.turned_away,
            expires_at,
            closed: None,
        }
    }

    /// The accounting once closed with `status`.
    pub(super) fn closed_view(&self, status: FinalStatusKind, expires_at: u64) -> UsesView {
        let closed = match status {
            FinalStatusKind::NoUsesLeft => UsesClosed::UsedUp,
            FinalStatusKind::Expired => UsesClosed::Expired,
            _ => UsesClosed::Revoked,
        };
        UsesView { closed: Some(closed), ..self.view(expires_at) }
    }
}

impl Inviter {
    /// The multi-use invitation's own inbox while it takes claims (also
    /// while one acceptor is answered); `None` for one-time invitations and
    /// once it is closing.
    pub(super) fn hub(&self) -> Option<&Published> {
        let m = self.multi.as_ref()?;
        match (&self.state, &m.current) {
            (_, Some(c)) => Some(&c.hub),
            (State::Waiting(p), None) => Some(p),
            _ => None,
        }
    }

    /// The writer subkeys responses (claims) arrive in.
    pub(super) fn response_subkeys(&self) -> Vec<u32> {
        match self.core.multi_use {
            Some(m) => (1..=u32::from(m.slots)).collect(),
            None => vec![WRITER_SUBKEY],
        }
    }

    pub(super) fn use_in_progress(&self) -> bool {
        self.multi.as_ref().is_some_and(|m| m.current.is_some())
    }

    fn current(&self) -> Option<&CurrentUse> {
        self.multi.as_ref().and_then(|m| m.current.as_deref())
    }

    /// Writes the final status: the answer record's owner while an acceptor
    /// is answered, else the inbox's.
    pub(super) fn final_writer(&self) -> SigningKey {
        self.current().map_or_else(|| self.core.inbox_owner(), |c| c.owner.expand())
    }

    /// Writes the tombstone over the response subkey.
    pub(super) fn tombstone_writer(&self) -> SigningKey {
        self.current().map_or_else(|| self.core.writer(), |c| c.writer.expand())
    }

    /// Owns our conversation record for the contact being made.
    pub(super) fn conversation_owner(&self) -> SigningKey {
        self.current().map_or_else(|| self.core.conversation_owner(), |c| c.conversation_owner.expand())
    }

    /// Until when a final status is retried: the invitee's grace period, or
    /// an acceptor's turn (MU-6). Once an accept's final status is being
    /// written, the turn no longer limits it: a write may land though the
    /// network told us it failed, and the acceptor then makes the contact,
    /// so the use is kept trying for as long as a one-time invitation's.
    pub(super) fn give_up_at(&self) -> u64 {
        let grace = self.core.expires_at.saturating_mul(1000) + FINAL_GRACE_MS;
        let accept_written = matches!(
            &self.state,
            State::Finalizing(_, f) if f.status == FinalStatusKind::Accepted && !f.final_value.is_empty()
        );
        match self.current() {
            Some(c) if !accept_written => grace.min(c.started_at.saturating_add(USE_TURN_MS)),
            _ => grace,
        }
    }

    /// Opens a claim (sealed to our identity DH key) and verifies the
    /// response in it exactly as a one-time response is verified, bound to
    /// the invitation's inbox (MU-2, MU-3). Returns the claim, the verified
    /// response and the answer record standing in for the inbox.
    fn open_use_claim(
        &self,
        hub: &Published,
        data: &[u8],
        now: u64,
    ) -> Result<(inbox::Claim, VerifiedResponse, Published), Error> {
        let InboxValue::Claim { ephemeral, sealed } = inbox::decode_value(data)? else {
            return Err(DecodeError::Invalid("a claim slot holds something else").into());
        };
        let claim = inbox::open_claim(&self.core.identity.dh_secret(), hub.inbox.opaque(), &ephemeral, &sealed)?;
        let p = Published {
            inbox: claim.record.clone(),
            conversation: claim.record.without_secret(),
            ticket: hub.ticket.clone(),
            invitation_hash: hub.invitation_hash,
            request_value: Vec::new(),
            pin: None,
            bound: Some(*hub.inbox.opaque()),
        };
        let resp = self
            .check_response(&p, &claim.response, now)?
            .ok_or(DecodeError::Invalid("a claim's response slot holds a tombstone"))?;
        if resp.identity().is_none() {
            return Err(DecodeError::MissingField { what: "claim", field: "signed identity" }.into());
        }
        Ok((claim, resp, p))
    }

    /// A claim that arrived by nudge (its slot unknown to our copy).
    pub(super) fn on_claim(&mut self, data: &[u8], now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        self.on_claim_at(None, data, now, rng, out);
    }

    /// What a poll of subkey `subkey` is for.
    pub(super) fn read_purpose(&self, subkey: u32) -> Purpose {
        if self.multi.is_some() { Purpose::ReadSlot(subkey) } else { Purpose::ReadResponse }
    }

    /// A claim read from slot `slot` (watch or poll; `None`: a nudge):
    /// verified, then queued once (MU-4). Anything that does not verify is
    /// ignored. Once the claim is queued or known (or the value is junk),
    /// a slot read from our copy is freed: a signed tombstone goes over it,
    /// which acceptors write over (MU-9). A claim that is not persisted yet
    /// (queue full, closing) stays where it is.
    pub(super) fn on_claim_at(
        &mut self,
        slot: Option<u32>,
        data: &[u8],
        now: u64,
        rng: &mut dyn Rng,
        out: &mut Vec<Effect>,
    ) {
        let Some(hub) = self.hub().cloned() else { return };
        let Some(m) = &self.multi else { return };
        if m.close.is_some() || m.queue.len() >= MAX_QUEUED {
            return;
        }
        let hash = match self.open_use_claim(&hub, data, now) {
            Ok((_, resp, _)) => *resp.hash(),
            // A freed slot: nothing to do.
            Err(_) if matches!(inbox::decode_value(data), Ok(InboxValue::Tombstone(_))) => return,
            Err(e) => {
                out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() }));
                return self.free_slot(&hub, slot, now, out);
            }
        };
        let Some(m) = &mut self.multi else { return };
        if m.answered.contains(&hash) || m.queue.iter().any(|(h, ..)| *h == hash) {
            return self.free_slot(&hub, slot, now, out);
        }
        m.queue.push_back((hash, data.to_vec(), 0));
        // Persisted (with the claim) before its slot is freed.
        out.push(Effect::Persist);
        self.free_slot(&hub, slot, now, out);
        self.start_next_use(now, rng, out);
    }

    /// Writes our signed tombstone over claim slot `slot` of the
    /// invitation's inbox (with its writer key), so the next acceptor can
    /// take it without walking past answered claims (MU-9).
    fn free_slot(&mut self, hub: &Published, slot: Option<u32>, now: u64, out: &mut Vec<Effect>) {
        let Some(slot) = slot else { return };
        let data =
            inbox::tombstone(self.core.identity.device_key(), hub.inbox.opaque(), &hub.invitation_hash, secs(now));
        let set = DhtOp::Set { key: hub.inbox.clone(), subkey: slot, data, writer: self.core.writer() };
        self.ops.start(Purpose::FreeSlot, set, out);
    }

    /// Takes the next claim if no acceptor is being answered; closes the
    /// invitation once asked to and the queue is done.
    fn start_next_use(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        loop {
            let State::Waiting(hub) = &self.state else { return };
            let hub = hub.clone();
            let Some(m) = &mut self.multi else { return };
            if m.current.is_some() {
                return;
            }
            let Some((hash, data, tries)) = m.queue.pop_front() else {
                if let Some(kind) = m.close {
                    self.finalize(hub, kind, None, now, rng, out);
                }
                return;
            };
            let (claim, resp) = match self.open_use_claim(&hub, &data, now) {
                Ok((claim, resp, _)) => (claim, resp),
                Err(e) => {
                    // Expired while it waited, say: dropped.
                    out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() }));
                    out.insert(0, Effect::Persist);
                    continue;
                }
            };
            let Some(m) = &mut self.multi else { return };
            m.answered.push(hash);
            let c = resp.content();
            // One use per identity: a second accept from someone already a
            // contact through this invitation gets no second use (its
            // contact stays the one made).
            let again = m.accepted.iter().any(|u| u.peer == c.identity_key);
            let status = if !c.accept {
                FinalStatusKind::Rejected
            } else if m.full() || m.close.is_some() || again {
                FinalStatusKind::NoUsesLeft
            } else {
                FinalStatusKind::Accepted
            };
            let name = c
                .profile
                .as_ref()
                .or_else(|| resp.identity().and_then(|i| i.record().profile.as_ref()))
                .map(|p| p.name().to_owned())
                .unwrap_or_default();
            let conversation_owner = SigningKey::generate(&mut RngAdapter(rng));
            m.current = Some(Box::new(CurrentUse {
                hub,
                owner: KeySeed::from(&claim.owner),
                writer: KeySeed::from(&claim.writer),
                conversation_owner: KeySeed::from(&conversation_owner),
                record: claim.record.clone(),
                status,
                claim: data,
                hash,
                tries,
                name,
                conversation: None,
                opened: false,
                started_at: now,
            }));
            out.push(Effect::Persist);
            let open = DhtOp::Open { key: claim.record.clone(), writer: Some(claim.owner.clone()) };
            self.ops.start(Purpose::OpenUse, open, out);
            if status == FinalStatusKind::Accepted {
                let create = DhtOp::Create { schema: conversation_schema(), owner: conversation_owner, secret: None };
                self.ops.start(Purpose::CreateConversation, create, out);
            }
            return;
        }
    }

    pub(super) fn on_use_opened(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        if let Some(c) = self.multi.as_mut().and_then(|m| m.current.as_mut()) {
            c.opened = true;
        }
        self.answer_use(now, rng, out);
    }

    pub(super) fn on_use_conversation(&mut self, k: RecordKey, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        if let Some(c) = self.multi.as_mut().and_then(|m| m.current.as_mut()) {
            c.conversation = Some(k);
        }
        self.answer_use(now, rng, out);
    }

    /// The answer record is open (and, for an accept, our conversation
    /// record made): answer through the one-time finalize path.
    fn answer_use(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(c) = self.current() else { return };
        if !c.opened || (c.status == FinalStatusKind::Accepted && c.conversation.is_none()) {
            out.insert(0, Effect::Persist);
            return;
        }
        if !matches!(self.state, State::Waiting(_)) {
            return;
        }
        let (hub, claim, status, conversation) = (c.hub.clone(), c.claim.clone(), c.status, c.conversation.clone());
        let (resp, mut p) = match self.open_use_claim(&hub, &claim, now) {
            Ok((_, resp, p)) => (resp, p),
            Err(e) => {
                out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() }));
                return self.abandon_use(now, rng, out);
            }
        };
        match status {
            FinalStatusKind::Accepted => {
                if let Some(conv) = conversation {
                    p.conversation = conv;
                }
                match self.pending_contact(&p, &resp, now) {
                    Ok(contact) => self.finalize(p, status, Some((resp, contact)), now, rng, out),
                    Err(e) => {
                        out.push(Effect::Emit(Event::ResponseIgnored { reason: e.code() }));
                        self.abandon_use(now, rng, out)
                    }
                }
            }
            FinalStatusKind::Rejected => self.finalize(p, status, Some((resp, Box::new(None))), now, rng, out),
            _ => self.turn_away(p, &resp, now, rng, out),
        }
    }

    /// "No uses left", naming the acceptor's response: no contact is made,
    /// so nothing needs its identity record read first.
    fn turn_away(&mut self, p: Published, resp: &VerifiedResponse, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let c = resp.content();
        let status = FinalStatusKind::NoUsesLeft;
        let value = match self.final_value(&p, status, Some(*resp.hash()), Some(c.identity_key), Vec::new(), now, rng) {
            Ok(v) => v,
            Err(_) => return self.abandon_use(now, rng, out),
        };
        self.ops.cancel_timer(Timer::Poll, out);
        self.ops.cancel_timer(Timer::Expiry, out);
        let key = p.inbox.clone();
        self.state = State::Finalizing(
            p,
            Box::new(Finalizing {
                status,
                final_value: Vec::new(),
                written: false,
                contact: None,
                responder_device: Some(c.device_key),
                freshness: Freshness::NotNeeded,
                link: None,
                peer_reply_to: c.reply_to.clone(),
                answered: None,
                rewrites: 0,
            }),
        );
        let mut ops_out = Vec::new();
        self.start_final_write(&key, value, &mut ops_out);
        out.push(Effect::Persist);
        out.extend(ops_out);
    }

    /// One acceptor answered (its final status confirmed, its record
    /// tombstoned): count it and return to the invitation (MU-5).
    pub(super) fn use_done(&mut self, finished: FinishedWith, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(m) = &mut self.multi else { return };
        let Some(c) = m.current.take() else { return };
        match (&finished, c.status) {
            (FinishedWith::Contact(peer), _) => {
                m.accepted.push(UseView { peer: *peer, name: c.name.clone(), at: secs(now) });
            }
            (FinishedWith::Rejected(_), _) => m.rejected = m.rejected.saturating_add(1),
            (_, FinalStatusKind::NoUsesLeft) => m.turned_away = m.turned_away.saturating_add(1),
            // The acceptor's device was not confirmed: no use is spent.
            _ => {}
        }
        if m.full() && m.close.is_none() {
            m.close = Some(FinalStatusKind::NoUsesLeft);
        }
        let view = m.view(self.core.expires_at);
        // A failed freshness check ended that use, not the invitation.
        self.pending_failure = None;
        self.back_to_hub(c.hub, now, out);
        out.push(Effect::Emit(Event::UsesChanged(view)));
        self.start_next_use(now, rng, out);
    }

    /// The acceptor being answered cannot be now (its record cannot be
    /// opened or written, its claim no longer verifies): no use is counted,
    /// the claim goes to the back of the queue (at most [`USE_TRIES`] turns
    /// in all, then it is dropped), and the next claim is taken (MU-6).
    pub(super) fn abandon_use(&mut self, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(m) = self.multi.as_mut() else { return };
        let Some(c) = m.current.take() else { return };
        // A fault may have been passing: the claim goes to the back of the
        // queue, a bounded number of times (its slot was freed: it would not
        // be read again).
        if c.tries + 1 < USE_TRIES && m.queue.len() < MAX_QUEUED {
            m.answered.retain(|h| *h != c.hash);
            m.queue.push_back((c.hash, c.claim.clone(), c.tries + 1));
        }
        self.pending_failure = None;
        self.ops.clear(out);
        let mut forget = vec![c.record.clone()];
        forget.extend(c.conversation.clone());
        self.back_to_hub(c.hub, now, out);
        for key in forget {
            self.ops.start(Purpose::Forget, DhtOp::Forget { key }, out);
        }
        out.push(Effect::Emit(Event::ResponseIgnored {
            reason: crate::error::ErrorCode::Dht(crate::dht::DhtErrorKind::Unavailable),
        }));
        self.start_next_use(now, rng, out);
    }

    /// Waiting on the invitation again: watch its slots, read them at once
    /// (claims may have arrived while an acceptor was answered), expiry.
    fn back_to_hub(&mut self, hub: Published, now: u64, out: &mut Vec<Effect>) {
        let key = hub.inbox.clone();
        self.state = State::Waiting(hub);
        out.push(Effect::Persist);
        if !self.ops.has_pending(|x| *x == Purpose::Watch) {
            let subkeys = self.response_subkeys();
            self.ops.start(Purpose::Watch, DhtOp::Watch { key, subkeys }, out);
        }
        self.ops.set_timer(Timer::Poll, now, out);
        self.ops.set_timer(Timer::Expiry, self.core.expires_at.saturating_mul(1000), out);
    }

    /// Revoked or expired: no more claims are taken; once the acceptor
    /// being answered (if any) is done, subkey 0 gets the closing status.
    pub(super) fn close_multi(&mut self, kind: FinalStatusKind, now: u64, rng: &mut dyn Rng, out: &mut Vec<Effect>) {
        let Some(m) = &mut self.multi else { return };
        if matches!(m.close, Some(FinalStatusKind::Revoked | FinalStatusKind::Expired)) {
            return;
        }
        m.close = Some(kind);
        m.queue.clear();
        out.push(Effect::Persist);
        self.start_next_use(now, rng, out);
    }
}
