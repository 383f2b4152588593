//! From the intake queue to the output queue (DESIGN.md §4): the processor, its batch (filters,
//! dedup, rendering) and the context it adds.

pub mod enrich;
pub mod process;
pub mod processor;
