//! Implementations of the ports: local ones (memory, files) and, per technology, the real ones.

pub mod graph;
pub mod local;
