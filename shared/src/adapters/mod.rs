//! Implementations of the ports: local ones (memory, files) and, per technology, the real ones.

pub mod aws;
pub mod graph;
pub mod local;
