//! Simulated Microsoft Graph security APIs.

pub mod alerts;
pub mod collection;
pub mod context;
pub mod error;
pub mod hunting;
pub mod incidents;
pub mod mail;
pub mod mailbox;
pub mod people;
pub mod quota;
pub mod roles;

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
        .route("/v1.0/users/{id}/mailFolders/{folder}/messages", get(mailbox::folder_messages))
        .route("/v1.0/users/{id}/messages/{message}/$value", get(mailbox::message_mime))
        .route("/v1.0/users/{id}/messages/{message}/attachments", get(mailbox::attachments))
        .route("/v1.0/users/{id}/messages/{message}/attachments/{attachment}", get(mailbox::attachment))
        .route("/v1.0/users/{id}/messages/{message}/attachments/{attachment}/$value", get(mailbox::attachment_raw))
        .route("/beta/security/threatSubmission/emailThreats", get(mail::submissions))
        .route("/beta/security/threatSubmission/emailThreats/{id}", get(mail::submission))
        .route("/v1.0/security/runHuntingQuery", axum::routing::post(hunting::run_hunting_query))
        .merge(people::routes())
        .merge(roles::routes())
}
