//! Shared set-up for the simulator's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Once;

use serde_json::Value;
use tenant_sim::scenario::{ClockSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

pub const TENANT: &str = DEFAULT_TENANT_ID;
pub const CLIENT: &str = DEFAULT_CLIENT_ID;
pub const SECRET: &str = DEFAULT_CLIENT_SECRET;
pub const START: &str = "2026-11-26T12:00:00Z";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rustls::crypto::ring::default_provider().install_default().ok();
    });
}

/// The friendly scenario on a fixed clock at `START`: these tests check one behaviour of the
/// simulator at a time, by exact pages and requests, so the unfriendly default's cut pages,
/// reordered ties, first 429 and latency are each opted into by the test that checks them
/// (`the_default_scenario_is_unfriendly` checks the default itself).
pub fn fixed_scenario() -> Scenario {
    let mut s = Scenario { clock: ClockSpec { start: Some(START.into()), fixed: true }, ..Scenario::friendly() };
    // A tenant that turned "Live response for servers" on (off by default): the alerts' devices
    // include servers (servers_and_groups_without_an_automation_level_are_refused_by_their_own_setting
    // turns it off again).
    s.mde.live_response_servers = true;
    s
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/microsoft-docs").join(name)
}

pub fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_path(name)).unwrap()).unwrap()
}

pub struct Harness {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start(scenario: Scenario) -> Harness {
        install_crypto();
        let sim = Simulator::start(scenario).await.expect("simulator starts");
        let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
        Harness { sim, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// POSTs a token request; returns (status, body).
    pub async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self.http.post(self.sim.token_url(tenant)).form(form).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn token_for(&self, scope: &str) -> String {
        let (status, body) = self
            .token_request(
                TENANT,
                &[("grant_type", "client_credentials"), ("client_id", CLIENT), ("client_secret", SECRET), ("scope", scope)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn graph_token(&self) -> String {
        self.token_for(GRAPH_SCOPE).await
    }

    /// GETs a Graph URL (absolute or a path); returns (status, headers, body).
    pub async fn get(&self, url_or_path: &str, token: &str, prefer: bool) -> (u16, reqwest::header::HeaderMap, Value) {
        let url = if url_or_path.starts_with("https://") { url_or_path.to_owned() } else { self.url(url_or_path) };
        let mut req = self.http.get(url).bearer_auth(token);
        if prefer {
            req = req.header("Prefer", "include-unknown-enum-members");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Follows `@odata.nextLink` from `path`; returns every item and the page count.
    pub async fn get_all(&self, path: &str, token: &str, prefer: bool) -> (Vec<Value>, usize) {
        let mut url = self.url(path);
        let mut items = Vec::new();
        for pages in 1..=10_000 {
            let (status, _, body) = self.get(&url, token, prefer).await;
            assert_eq!(status, 200, "{body}");
            items.extend(body["value"].as_array().unwrap().iter().cloned());
            match body["@odata.nextLink"].as_str() {
                Some(n) => url = n.to_owned(),
                None => return (items, pages),
            }
        }
        panic!("more than 10000 pages");
    }
}

/// Claims of a JWT, unverified.
pub fn claims(jwt: &str) -> Value {
    let jws = tenant_sim::entra::jwt::Jws::parse(jwt).expect("a JWT");
    Value::Object(jws.claims)
}
