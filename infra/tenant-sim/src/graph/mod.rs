//! Simulated Microsoft Graph security APIs.

pub mod alerts;
pub mod collection;
pub mod context;
pub mod error;
pub mod incidents;
pub mod mail;

use axum::routing::get;
use axum::Router;

use crate::state::Sim;

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/v1.0/security/alerts_v2", get(alerts::list))
        .route("/v1.0/security/alerts_v2/{id}", get(alerts::get_one))
        .route("/v1.0/security/incidents", get(incidents::list))
        .route("/v1.0/security/incidents/{id}", get(incidents::get_one))
        .route("/v1.0/security/incidents/{id}/alerts", get(incidents::alerts_of))
        .route("/v1.0/users/{id}/messages", get(mail::messages))
        .route("/beta/security/threatSubmission/emailThreats", get(mail::submissions))
        .route("/beta/security/threatSubmission/emailThreats/{id}", get(mail::submission))
}
