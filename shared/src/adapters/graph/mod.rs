//! Microsoft Graph and Entra ID over HTTPS (reqwest + rustls, ring).

pub mod auth;
pub mod body;
pub mod client;
pub mod cloud_apps;
pub mod collections;
pub mod context;
pub mod directory;
pub mod evidence;
mod graph_api;
pub mod investigation;
pub mod pacing;
pub mod probe;
pub mod retry;
pub mod role_grants;
pub mod settings;

pub use auth::{Audience, TokenClaims, TokenProvider};
pub use client::MicrosoftHttp;
pub use retry::RetryPolicy;
pub use settings::HttpSettings;
