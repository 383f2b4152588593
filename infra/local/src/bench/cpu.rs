//! The poll path's own CPU work on a page against parsing the same bytes, in one process.

use std::time::{Duration, Instant};

use m365_ingest::adapters::graph::collections::decode_page;
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue};
use m365_ingest::app::polling::deliver::deliver;
use m365_ingest::app::polling::origin::Context;
use m365_ingest::domain::polling::cursor::Cursor;
use m365_ingest::sources::settings::DeliverySettings;
use m365_ingest::{GraphTime, Source};
use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};

pub struct CpuResult {
    pub parse_us: f64,
    pub path_us: f64,
    pub avg_alert_bytes: f64,
    pub rounds: usize,
}

const ROUNDS: usize = 7;

/// Fetches `n` alerts' pages from a simulator once, then times both treatments of the same
/// bytes, alternating rounds and keeping the median of each.
pub async fn measure(n: usize) -> Result<CpuResult, String> {
    let (sim, _ca) = super::scenario::start(n).await?;
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).map_err(|e| e.to_string())?])
        .build()
        .map_err(|e| e.to_string())?;
    let token: serde_json::Value = http
        .post(sim.token_url(DEFAULT_TENANT_ID))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = token["access_token"].as_str().ok_or("no token")?.to_owned();
    let mut pages: Vec<Vec<u8>> = Vec::new();
    let mut url = format!("{}/v1.0/security/alerts_v2?$top=1000&$orderby=lastUpdateDateTime%20asc", sim.base_url());
    for _ in 0..1000 {
        let body = http
            .get(&url)
            .bearer_auth(&token)
            .header("Prefer", "include-unknown-enum-members")
            .send()
            .await
            .map_err(|e| e.to_string())?
            .bytes()
            .await
            .map_err(|e| e.to_string())?;
        let next = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["@odata.nextLink"].as_str().map(str::to_owned));
        pages.push(body.to_vec());
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    sim.shutdown().await;
    let total_bytes: usize = pages.iter().map(|p| p.len()).sum();
    let queue = MemoryAlertQueue::new().without_retention();
    let artifacts = DirArtifactStore::new(std::env::temp_dir().join("poll-bench-cpu"));
    let settings = DeliverySettings::default();
    let ctx =
        Context { integration_id: "bench", tenant_id: DEFAULT_TENANT_ID, source: Source::DefenderAlerts, polled_at: GraphTime::now() };
    let (mut parse, mut path) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for p in &pages {
            let v: serde_json::Value = serde_json::from_slice(p).map_err(|e| e.to_string())?;
            std::hint::black_box(&v);
        }
        parse.push(t.elapsed());
        let t = Instant::now();
        let mut cursor = Cursor::default();
        let mut alerts = 0usize;
        for p in &pages {
            let page = decode_page(p, m365_ingest::sources::GRAPH_SECURITY_HEAD).map_err(|e| e.to_string())?;
            let fresh: Vec<_> = page.items.into_iter().filter(|i| !cursor.already_delivered(&i.head.id, i.head.version)).collect();
            alerts += fresh.len();
            deliver(&fresh, &ctx, &queue, &artifacts, &settings).await.map_err(|e| e.to_string())?;
            for i in &fresh {
                cursor.record(&i.head.id, i.head.version);
            }
            if let Some(last) = fresh.last() {
                cursor.advance(last.head.version, Duration::from_secs(900), 20_000);
            }
        }
        path.push(t.elapsed());
        std::hint::black_box(alerts);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let alerts = n as f64;
    Ok(CpuResult {
        parse_us: median(&mut parse) * 1e6 / alerts,
        path_us: median(&mut path) * 1e6 / alerts,
        avg_alert_bytes: total_bytes as f64 / alerts,
        rounds: ROUNDS,
    })
}
