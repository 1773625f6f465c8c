//! Arbitrary bytes -> every signed message through decoding and verification:
//! never panics, and nothing verifies (no forged signature can).
#![no_main]
use contact_invite::crypto::PublicKey;
use contact_invite::message::{
    InvitationContext, InvitationKind, SignedIdentity, UnverifiedInvitation, UnverifiedResponse,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = 1_795_305_600;
    if let Ok(u) = UnverifiedInvitation::from_bytes(data) {
        assert!(u.verify(&[0; 32], InvitationKind::Contact, now).is_err());
    }
    if let Ok(u) = UnverifiedResponse::from_bytes(data) {
        let Ok(id) = PublicKey::from_bytes(&[0x58; 32]) else { return };
        let ctx = InvitationContext {
            inbox_key: &[0; 32],
            hash: &[0; 32],
            expires_at: now + 10,
            kind: InvitationKind::Contact,
            identity_key: &id,
        };
        assert!(u.verify(&ctx, now).is_err());
    }
    let _ = SignedIdentity::verify(data, None);
    let _ = contact_invite::bench_internals::decode_inbox_value(data);
    let _ = contact_invite::bench_internals::decode_request_private(data);
    assert!(!contact_invite::bench_internals::verify_final_status(data));
    assert!(!contact_invite::bench_internals::open_request_slot(data));
    assert!(!contact_invite::bench_internals::open_handover(data));
    if let Ok(u) = contact_invite::message::UnverifiedAddressRequest::from_bytes(data) {
        let Ok(me) = PublicKey::from_bytes(&[0x58; 32]) else { return };
        assert!(u.verify(&me, &[0; 32], now).is_err());
    }
});
