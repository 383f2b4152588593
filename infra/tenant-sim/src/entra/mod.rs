//! Simulated Entra ID: the token endpoint and the discovery documents around it.

pub mod assertion;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod jwt;
pub mod resources;
pub mod token;

use axum::routing::{get, post};
use axum::Router;

use crate::state::Sim;

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/common/discovery/instance", get(discovery::instance_discovery))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::keys))
}
