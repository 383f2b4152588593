//! Simulated Microsoft Defender for Cloud Apps API (CloudAppSecurityDocs @46884a16:
//! api-introduction.md for limits and filters, api-alerts-list.md and api-alerts-fetch.md for
//! the alert endpoints, api-authentication-application.md for tokens and `investigation.read`).
//!
//! The real API lives at the tenant's portal URL (`https://<tenant>.<region>.portal.cloudappsecurity.com`);
//! the simulator serves it on its own base URL and tells tenants apart by the token's `tid`.
//! Error bodies of this API are not documented; the simulator answers `{"detail": "..."}`.

pub mod activities;
pub mod api;
pub mod data;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant as WallInstant};

use axum::routing::get;
use axum::Router;

pub use data::CloudAppsAlert;

use crate::scenario::CloudAppsSpec;
use crate::state::Sim;

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/api/v1/alerts/", get(api::list_get).post(api::list_post))
        .route("/api/v1/alerts", get(api::list_get).post(api::list_post))
        .route("/api/v1/alerts/{pk}/", get(api::fetch))
        .route("/api/v1/alerts/{pk}", get(api::fetch))
        .route("/api/v1/activities/", axum::routing::post(activities::list).get(activities::list))
        .route("/api/v1/activities", axum::routing::post(activities::list).get(activities::list))
}

/// Per-tenant alerts and the request log behind the 30-a-minute limit.
#[derive(Debug)]
pub struct CloudAppsState {
    pub spec: RwLock<CloudAppsSpec>,
    pub alerts: RwLock<Vec<Vec<CloudAppsAlert>>>,
    calls: Mutex<HashMap<usize, VecDeque<WallInstant>>>,
}

impl CloudAppsState {
    pub fn new(spec: CloudAppsSpec, alerts: Vec<Vec<CloudAppsAlert>>) -> Self {
        CloudAppsState { spec: RwLock::new(spec), alerts: RwLock::new(alerts), calls: Mutex::new(HashMap::new()) }
    }

    pub fn spec(&self) -> CloudAppsSpec {
        self.spec.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts a request of `tenant`; `Err(wait)` when it is over the limit (sliding window).
    pub fn admit(&self, tenant: usize) -> Result<(), Duration> {
        let spec = self.spec();
        let window = Duration::from_secs(spec.window_secs);
        let now = WallInstant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let q = calls.entry(tenant).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= spec.requests_per_window {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(window.saturating_sub(now.duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }
}
