//! Use cases, generic over the ports.

pub mod deliver;
pub mod poll;
pub mod process;
