//! TEMPORARY stand-in for the encodings module (replaced at merge).
#![allow(missing_docs)]
use crate::crypto::SecretKey;
pub use crate::message::InvitationKind;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding")]
pub struct EncodingError;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockParams { pub salt: [u8; 16], pub m_cost_log2: u8, pub t_cost: u8, pub p_cost: u8 }
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketSecret { Plain(SecretKey), Locked { masked: SecretKey, params: LockParams } }
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket { pub kind: InvitationKind, pub record: [u8; 32], pub secret: TicketSecret }
impl Ticket {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![1u8, match self.kind { InvitationKind::Contact => 1, InvitationKind::DeviceLink => 2 }];
        v.extend_from_slice(&self.record);
        match &self.secret {
            TicketSecret::Plain(s) => v.extend_from_slice(s.expose()),
            TicketSecret::Locked { masked, params } => {
                v[1] |= 0x10;
                v.extend_from_slice(masked.expose());
                v.extend_from_slice(&params.salt);
                v.extend_from_slice(&[params.m_cost_log2, params.t_cost, params.p_cost]);
            }
        }
        v
    }
    pub fn from_bytes(b: &[u8]) -> Result<Self, EncodingError> {
        let kind = match b.get(1).map(|k| k & 0x0f) { Some(1) => InvitationKind::Contact, Some(2) => InvitationKind::DeviceLink, _ => return Err(EncodingError) };
        let record: [u8; 32] = b.get(2..34).ok_or(EncodingError)?.try_into().map_err(|_| EncodingError)?;
        let s = SecretKey::from_slice(b.get(34..66).ok_or(EncodingError)?).map_err(|_| EncodingError)?;
        let secret = if b[1] & 0x10 != 0 {
            let salt: [u8; 16] = b.get(66..82).ok_or(EncodingError)?.try_into().map_err(|_| EncodingError)?;
            let p = b.get(82..85).ok_or(EncodingError)?;
            TicketSecret::Locked { masked: s, params: LockParams { salt, m_cost_log2: p[0], t_cost: p[1], p_cost: p[2] } }
        } else { TicketSecret::Plain(s) };
        Ok(Self { kind, record, secret })
    }
}
