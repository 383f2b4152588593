//! `tenant-sim tour`: starts the simulator in-process on the built-in scenario
//! and walks it the way a client would (discovery, token, every alert page,
//! incidents with their alerts), printing what it saw.

use std::collections::BTreeMap;

use serde_json::Value;
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::{Scenario, Simulator};

/// Page cap: the built-in scenario needs a handful of pages; this only bounds a runaway loop.
const MAX_PAGES: usize = 1_000;

pub async fn run(scenario: Scenario) -> Result<(), String> {
    let sim = Simulator::start(scenario).await.map_err(|e| e.to_string())?;
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder().tls_certs_only([ca]).build().map_err(|e| e.to_string())?;
    let base = sim.base_url().to_owned();
    println!("simulator at {base}");

    let oidc: Value = get_json(&http, &format!("{base}/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration"), None).await?;
    let token_url = oidc["token_endpoint"].as_str().ok_or("openid configuration has no token_endpoint")?.to_owned();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let tok: Value = http.post(&token_url).form(&form).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let access = tok["access_token"].as_str().ok_or_else(|| format!("no token: {tok}"))?.to_owned();
    let roles = roles_of(&access);
    println!("token for Graph: expires_in {}s, {} application roles", tok["expires_in"], roles.len());

    let mut url = format!("{base}/v1.0/security/alerts_v2?$top=200&$orderby=lastUpdateDateTime%20asc&$count=true");
    let (mut pages, mut alerts, mut evidence, mut biggest) = (0usize, 0usize, 0usize, 0usize);
    let mut by_source: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    while pages < MAX_PAGES {
        let page: Value = get_json(&http, &url, Some(&access)).await?;
        pages += 1;
        for a in page["value"].as_array().into_iter().flatten() {
            alerts += 1;
            biggest = biggest.max(a.to_string().len());
            *by_source.entry(a["serviceSource"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
            for e in a["evidence"].as_array().into_iter().flatten() {
                evidence += 1;
                let t = e["@odata.type"].as_str().unwrap_or("?").trim_start_matches("#microsoft.graph.security.");
                *by_type.entry(t.to_owned()).or_default() += 1;
            }
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    println!("alerts_v2: {alerts} alerts in {pages} pages, {evidence} evidence items, largest alert {biggest} bytes");
    println!("  by serviceSource (without the Prefer header newer sources read unknownFutureValue):");
    for (k, v) in &by_source {
        println!("    {k:<32} {v}");
    }
    println!("  evidence types:");
    for (k, v) in &by_type {
        println!("    {k:<32} {v}");
    }
    let inc: Value = get_json(&http, &format!("{base}/v1.0/security/incidents?$expand=alerts&$top=50&$count=true"), Some(&access)).await?;
    let first_page = inc["value"].as_array().map_or(0, Vec::len);
    let embedded: usize = inc["value"].as_array().into_iter().flatten().map(|i| i["alerts"].as_array().map_or(0, Vec::len)).sum();
    println!("incidents: {} visible; first page of {first_page} embeds {embedded} alerts", inc["@odata.count"]);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("scope", "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"),
    ];
    let tok: Value = http.post(&token_url).form(&form).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let mdca = tok["access_token"].as_str().ok_or_else(|| format!("no Cloud Apps token: {tok}"))?.to_owned();
    let (mut skip, mut listed, mut calls) = (0usize, 0usize, 0usize);
    loop {
        let body = serde_json::json!({"sortField": "date", "sortDirection": "asc", "skip": skip, "limit": 100});
        let resp = http.post(format!("{base}/api/v1/alerts/")).bearer_auth(&mdca).json(&body).send().await.map_err(|e| e.to_string())?;
        let page: Value = resp.json().await.map_err(|e| e.to_string())?;
        calls += 1;
        let n = page["data"].as_array().map_or(0, Vec::len);
        listed += n;
        skip += n;
        if page["hasNext"] != Value::Bool(true) || n == 0 || calls >= MAX_PAGES {
            break;
        }
    }
    println!("cloud apps alerts: {listed} listed in {calls} calls of up to 100 (30 calls a minute per tenant are allowed)");
    println!("requests served: {}", sim.requests().all().len());
    sim.shutdown().await;
    Ok(())
}

async fn get_json(http: &reqwest::Client, url: &str, bearer: Option<&str>) -> Result<Value, String> {
    let mut req = http.get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t).header("Prefer", "include-unknown-enum-members");
    }
    let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: {status} {body}"));
    }
    Ok(body)
}

fn roles_of(jwt: &str) -> Vec<String> {
    tenant_sim::entra::jwt::Jws::parse(jwt)
        .and_then(|j| j.claims.get("roles").and_then(Value::as_array).cloned())
        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
