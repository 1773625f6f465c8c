//! Public profile with validated field lengths.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits;
use crate::wire::pb;

/// A public profile shown to the other party before they decide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    name: String,
    pronouns: String,
    about: String,
    status: String,
    availability: u32,
    avatar_hash: Option<[u8; 32]>,
}

fn check(what: &'static str, s: &str, max: usize) -> Result<(), DecodeError> {
    if s.len() > max {
        return Err(DecodeError::FieldTooLong { what, max, got: s.len() });
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DecodeError::Invalid("profile text contains control characters"));
    }
    Ok(())
}

impl Profile {
    /// A profile with just a display name.
    pub fn new(name: impl Into<String>) -> Result<Self, DecodeError> {
        let p = Self { name: name.into(), ..Self::default() };
        p.validate()?;
        Ok(p)
    }
    /// Sets the pronouns.
    pub fn with_pronouns(mut self, v: impl Into<String>) -> Result<Self, DecodeError> {
        self.pronouns = v.into();
        self.validate().map(|()| self)
    }
    /// Sets the about text.
    pub fn with_about(mut self, v: impl Into<String>) -> Result<Self, DecodeError> {
        self.about = v.into();
        self.validate().map(|()| self)
    }
    /// Sets the status line.
    pub fn with_status(mut self, v: impl Into<String>) -> Result<Self, DecodeError> {
        self.status = v.into();
        self.validate().map(|()| self)
    }
    /// Sets the availability code (app-defined).
    pub fn with_availability(mut self, v: u32) -> Self {
        self.availability = v;
        self
    }
    /// Sets the hash of an avatar published elsewhere.
    pub fn with_avatar_hash(mut self, h: [u8; 32]) -> Self {
        self.avatar_hash = Some(h);
        self
    }
    fn validate(&self) -> Result<(), DecodeError> {
        if self.name.trim().is_empty() {
            return Err(DecodeError::MissingField { what: "profile", field: "name" });
        }
        check("profile name", &self.name, limits::MAX_NAME)?;
        check("profile pronouns", &self.pronouns, limits::MAX_PRONOUNS)?;
        check("profile about", &self.about, limits::MAX_ABOUT)?;
        check("profile status", &self.status, limits::MAX_STATUS)
    }
    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Pronouns.
    pub fn pronouns(&self) -> &str {
        &self.pronouns
    }
    /// About text.
    pub fn about(&self) -> &str {
        &self.about
    }
    /// Status line.
    pub fn status(&self) -> &str {
        &self.status
    }
    /// Availability code.
    pub fn availability(&self) -> u32 {
        self.availability
    }
    /// Avatar hash.
    pub fn avatar_hash(&self) -> Option<&[u8; 32]> {
        self.avatar_hash.as_ref()
    }
}

impl TryFrom<pb::Profile> for Profile {
    type Error = DecodeError;
    fn try_from(p: pb::Profile) -> Result<Self, DecodeError> {
        let avatar_hash =
            if p.avatar_hash.is_empty() { None } else { Some(crate::wire::bytes32(&p.avatar_hash, "avatar hash")?) };
        let out = Self {
            name: p.name,
            pronouns: p.pronouns,
            about: p.about,
            status: p.status,
            availability: p.availability,
            avatar_hash,
        };
        out.validate()?;
        Ok(out)
    }
}

impl From<&Profile> for pb::Profile {
    fn from(p: &Profile) -> Self {
        Self {
            name: p.name.clone(),
            pronouns: p.pronouns.clone(),
            about: p.about.clone(),
            status: p.status.clone(),
            availability: p.availability,
            avatar_hash: p.avatar_hash.map(|h| h.to_vec()).unwrap_or_default(),
        }
    }
}
