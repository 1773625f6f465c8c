//! Shareable encodings of an invitation.

/// Placeholder until the encodings land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoding")]
pub struct EncodingError;
