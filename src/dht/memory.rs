//! In-memory DHT.
