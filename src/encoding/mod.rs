//! Shareable encodings of an invitation: binary blob (QR), text armor, URI, QR rendering.
