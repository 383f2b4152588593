//! A Microsoft 365 tenant simulator: Entra ID's token endpoint and Microsoft
//! Graph's security APIs, answering as Microsoft documents them, with a
//! deterministic scenario, a movable clock, fault injection and a request log.

pub mod clock;
pub mod cloudapps;
pub mod data;
pub mod entra;
pub mod exchange;
pub mod faults;
pub mod graph;
mod http;
pub mod ids;
pub mod limits;
pub mod mde;
pub mod odata;
pub mod record;
pub mod scenario;
mod server;
mod shaping;
pub mod state;
pub mod testing;
pub mod time;
mod tls;
pub mod wtf16;

pub use data::AlertChange;
pub use faults::{FaultKind, FaultSpec};
pub use scenario::Scenario;
pub use server::{Simulator, StartError};
pub use time::Instant;
