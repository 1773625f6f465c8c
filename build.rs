//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed) and
//! generates prost types into OUT_DIR. Generated types stay crate-private.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["contact_invite/v1/invite.proto"], ["proto"])?;
    let mut config = prost_build::Config::new();
    // Messages carrying secrets get no derived Debug.
    config.skip_debug([
        ".contact_invite.v1.ContactRequestPrivate",
        ".contact_invite.v1.ContactInvitationRecord",
        ".contact_invite.v1.RecordKey",
        ".contact_invite.v1.DeviceHandover",
        ".contact_invite.v1.PinOffer",
        ".contact_invite.v1.UseClaimPrivate",
    ]);
    config.compile_fds(fds)?;
    Ok(())
}
