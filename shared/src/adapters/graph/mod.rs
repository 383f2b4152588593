//! Microsoft Graph and Entra ID over HTTPS (reqwest + rustls, ring).

pub mod auth;
pub mod client;
pub mod retry;
pub mod settings;

pub use auth::{Audience, TokenProvider};
pub use client::HttpGraphApi;
pub use retry::RetryPolicy;
pub use settings::HttpSettings;
