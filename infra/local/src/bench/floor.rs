//! `poll-bench --floor`: the transport floor of the end-to-end path, measured beside the two
//! pollers in the same run. It does only what every poller on this path must: one token (the
//! secret from the environment, one Secrets Manager call fewer than the pollers make), every page
//! of the same window read over TLS, and the same number of messages sent through the AWS SDK's
//! SendMessageBatch (ten to a call, with the body the adapter writes). It parses nothing, builds
//! no envelope, keeps no cursor and checks nothing: each page's bytes are cut into as many
//! messages as the page holds alerts (a piece lacks an envelope's few hundred bytes, which only
//! lowers the floor). No poller can spend less than this on the path, so Python / floor bounds
//! the ratio any poller can reach here.
//!
//! Everything comes from the environment `poll-bench --e2e` sets for the Python peer, plus
//! FLOOR_QUEUE_URL and FLOOR_ALERTS (the number the simulator serves). FLOOR_ALERTS_PER_MESSAGE
//! (default 1) asks what a contract of several alerts per message would cost on the same path:
//! the same bytes in fewer, larger messages.

use std::time::Duration;

use m365_ingest::adapters::aws::{load_sdk_config, SqsAlertQueue};
use m365_ingest::domain::time::GraphTime;
use m365_ingest::ports::{AlertQueue, QueueEntry};

const PAGE_SIZE: usize = 1000;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (poll-bench --e2e sets it)"))
}

/// Runs the floor on a one-thread runtime, as `m365-ingest` runs; prints what it sent.
pub fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let sent = rt.block_on(transport())?;
    println!("{{\"alerts\": {sent}}}");
    Ok(())
}

async fn transport() -> Result<usize, String> {
    let (login, graph) = (env("LOGIN_BASE_URL")?, env("GRAPH_BASE_URL")?);
    let (tenant, client_id, secret) = (env("PEER_TENANT_ID")?, env("PEER_CLIENT_ID")?, env("BENCH_CLIENT_SECRET")?);
    let total: usize = env("FLOOR_ALERTS")?.parse().map_err(|_| "FLOOR_ALERTS is not a number".to_owned())?;
    let per_message = alerts_per_message()?;
    let pem = std::fs::read(env("EXTRA_CA_BUNDLE_FILE")?).map_err(|e| format!("EXTRA_CA_BUNDLE_FILE: {e}"))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("EXTRA_CA_BUNDLE_FILE: {e}"))?;
    let http = reqwest::Client::builder().tls_certs_merge(certs).timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
    let queue = SqsAlertQueue::new(aws_sdk_sqs::Client::new(&load_sdk_config().await), &env("FLOOR_QUEUE_URL")?);

    let token_url = format!("{}/{tenant}/oauth2/v2.0/token", login.trim_end_matches('/'));
    let form = [
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let answer: serde_json::Value =
        http.post(&token_url).form(&form).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
    let token = answer["access_token"].as_str().ok_or("no access_token in the token answer")?.to_owned();

    let now = GraphTime::now();
    let secs = |name: &str| -> Result<Duration, String> {
        env(name)?.parse().map(Duration::from_secs).map_err(|_| format!("{name} is not a number"))
    };
    let (start, end) = (now.minus(secs("PEER_LOOKBACK_SECS")?), now.minus(secs("PEER_DELAY_SECS")?));
    let filter = format!("lastUpdateDateTime ge {start} and lastUpdateDateTime lt {end}");
    let mut url = format!("{}/v1.0/security/alerts_v2", graph.trim_end_matches('/'));
    let mut query = Some([("$filter", filter), ("$orderby", "lastUpdateDateTime asc".to_owned()), ("$top", PAGE_SIZE.to_string())]);
    let mut sent = 0;
    loop {
        let mut request = http.get(&url).bearer_auth(&token).header("Prefer", "include-unknown-enum-members");
        if let Some(q) = query.take() {
            request = request.query(&q);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("Graph answered {}", response.status()));
        }
        let page = response.bytes().await.map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&page).map_err(|e| e.to_string())?;
        let items = (total - sent).min(PAGE_SIZE);
        for batch in cut(text, items.div_ceil(per_message)).chunks(10) {
            let entries: Vec<QueueEntry> =
                batch.iter().enumerate().map(|(i, body)| QueueEntry { id: i.to_string(), body: (*body).to_owned() }).collect();
            let report = queue.send_batch(&entries).await.map_err(|e| e.to_string())?;
            if !report.failed.is_empty() {
                return Err(format!("{} entries failed", report.failed.len()));
            }
        }
        sent += items;
        match next_link(text) {
            Some(next) if sent < total => url = next,
            _ => return Ok(sent),
        }
    }
}

/// FLOOR_ALERTS_PER_MESSAGE, 1 when unset.
pub fn alerts_per_message() -> Result<usize, String> {
    match std::env::var("FLOOR_ALERTS_PER_MESSAGE") {
        Ok(v) => v.parse().ok().filter(|&n| n > 0).ok_or_else(|| "FLOOR_ALERTS_PER_MESSAGE is not a positive number".to_owned()),
        Err(_) => Ok(1),
    }
}

/// The messages the floor sends for `total` alerts: pages of PAGE_SIZE, each cut apart.
pub fn messages_for(total: usize, per_message: usize) -> usize {
    (0..total.div_ceil(PAGE_SIZE)).map(|p| (total - p * PAGE_SIZE).min(PAGE_SIZE).div_ceil(per_message)).sum()
}

/// `text` in `n` pieces of about equal length, each ending on a character boundary.
fn cut(text: &str, n: usize) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(n);
    let mut from = 0;
    for i in 1..=n {
        let mut to = if i == n { text.len() } else { text.len() * i / n };
        while !text.is_char_boundary(to) {
            to += 1;
        }
        pieces.push(&text[from..to.max(from)]);
        from = to.max(from);
    }
    pieces
}

/// The page's `@odata.nextLink`, found by its bytes (the floor parses nothing).
fn next_link(text: &str) -> Option<String> {
    const KEY: &str = "\"@odata.nextLink\":\"";
    let at = text.rfind(KEY)? + KEY.len();
    let end = at + text[at..].find('"')?;
    Some(text[at..end].replace("\\/", "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_whole_into_n_pieces_on_character_boundaries() {
        let text = "{\"value\":[\"é€😀\",\"abc\"],\"@odata.nextLink\":\"https://h/v1.0/x?$skiptoken=a\"}";
        for n in 1..=12 {
            let pieces = cut(text, n);
            assert_eq!(pieces.len(), n);
            assert_eq!(pieces.concat(), text);
        }
        assert_eq!(next_link(text).as_deref(), Some("https://h/v1.0/x?$skiptoken=a"));
        assert_eq!(next_link("{\"value\":[]}"), None);
        assert_eq!(messages_for(20_000, 1), 20_000);
        assert_eq!(messages_for(2_500, 10), 250);
        assert_eq!(messages_for(1_005, 10), 101);
    }
}
