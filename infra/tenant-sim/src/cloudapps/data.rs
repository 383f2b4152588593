//! A tenant's Defender for Cloud Apps alerts, in the shape of api-alerts-list.md and
//! api-alerts-fetch.md (CloudAppSecurityDocs @46884a16): `_id`, `timestamp` in Unix
//! milliseconds, `entities`, `severityValue`, `resolutionStatusValue`, `statusValue`, `stories`.

use rand::Rng;
use serde_json::{json, Value};

use crate::data::pool::Pool;
use crate::ids::{self, pick, pick_str, SimRng};
use crate::scenario::{AlertPlan, CloudAppsPlan};
use crate::time::{parse_duration_secs, Instant};

/// The doc samples, served as they are (`mdca_alert_fetch.json` is the same alert as the list's).
pub const DOC_ALERT: &str = include_str!("../../tests/fixtures/microsoft-docs/mdca_alert_fetch.json");

#[derive(Debug, Clone)]
pub struct CloudAppsAlert {
    pub id: String,
    pub timestamp_ms: i64,
    /// Listed from this instant on (ingestion latency).
    pub visible_ms: i64,
    pub severity: i64,
    pub resolution_status: i64,
    /// The alert exactly as served.
    pub body: String,
}

impl CloudAppsAlert {
    pub fn from_value(v: &Value, body: String, latency_ms: i64) -> Option<Self> {
        let timestamp_ms = v.get("timestamp")?.as_i64()?;
        Some(CloudAppsAlert {
            id: v.get("_id")?.as_str()?.to_owned(),
            timestamp_ms,
            visible_ms: timestamp_ms + latency_ms,
            severity: v.get("severityValue").and_then(Value::as_i64).unwrap_or(0),
            resolution_status: v.get("resolutionStatusValue").and_then(Value::as_i64).unwrap_or(0),
            body,
        })
    }
}

/// Policy titles of built-in Cloud Apps detections (anomaly-detection-policy.md).
const TITLES: &[&str] = &[
    "Impossible travel activity",
    "Activity from infrequent country",
    "Activity from anonymous IP addresses",
    "Mass download by a single user",
    "Suspicious inbox forwarding",
    "Multiple failed login attempts",
    "Ransomware activity",
    "Unusual file deletion activity",
    "Suspicious OAuth app file download activities",
    "Honeytoken activity",
];

const SERVICES: &[(i64, &str)] = &[(11161, "Office 365"), (20893, "Microsoft Exchange Online"), (15600, "Microsoft OneDrive for Business")];

/// The Cloud Apps portal URL the alerts of a tenant link to (`<tenant>.<region>.portal…`).
pub fn portal_of(domain: &str) -> String {
    format!("https://{}.us2.portal.cloudappsecurity.com", domain.split('.').next().unwrap_or("tenant"))
}

/// The tenant's alerts: the doc sample first, then `plan.count` generated ones, sorted by time.
pub fn generate(plan: &CloudAppsPlan, alerts: &AlertPlan, pool: &Pool, portal: &str, seed: u64, start: Instant) -> Vec<CloudAppsAlert> {
    let mut rng = ids::rng(seed, 0xCA);
    let from_ms = start.plus_secs(parse_duration_secs(&alerts.from).unwrap_or(-86_400)).0 / 10_000;
    let to_ms = start.plus_secs(parse_duration_secs(&alerts.to).unwrap_or(0)).0 / 10_000;
    let span = (to_ms - from_ms).max(1);
    let latency_ms = plan.latency_secs * 1000;
    let mut stamps: Vec<i64> = (0..plan.count).map(|_| from_ms + rng.gen_range(0..span)).collect();
    // Ties: whole groups on one millisecond, as bulk detections land.
    for g in 0..plan.tie_groups {
        let at = from_ms + rng.gen_range(0..span);
        for k in 0..plan.tie_size {
            if let Some(s) = stamps.get_mut(g * plan.tie_size + k) {
                *s = at;
            }
        }
    }
    let mut out: Vec<CloudAppsAlert> = Vec::with_capacity(plan.count + 1);
    if let Ok(v) = serde_json::from_str::<Value>(DOC_ALERT) {
        out.extend(CloudAppsAlert::from_value(&v, DOC_ALERT.trim_end().to_owned(), latency_ms));
    }
    for ts in stamps {
        let v = alert(&mut rng, pool, portal, ts);
        out.extend(CloudAppsAlert::from_value(&v, v.to_string(), latency_ms));
    }
    out.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
    out
}

/// One generated alert at `ts` (ms).
pub fn alert(rng: &mut SimRng, pool: &Pool, portal: &str, ts: i64) -> Value {
    let id = ids::hex(rng, 12);
    let title = pick_str(rng, TITLES);
    let user = pick(rng, &pool.users);
    let device = pick(rng, &pool.devices);
    let (service_id, service) = *pick(rng, SERVICES);
    let severity = rng.gen_range(0..4);
    let resolution = if rng.gen_bool(0.8) { 0 } else { rng.gen_range(1..6) };
    json!({
        "_id": id,
        "contextId": ids::guid(rng),
        "description": format!("{} performed suspicious activity in {service}: {title}", user.display_name),
        "entities": [
            {"entityRole": "Source", "entityType": 2, "id": user.aad_id, "inst": 0, "label": user.account_name, "pa": user.upn, "type": "account"},
            {"entityRole": "Related", "id": device.aad_id, "label": device.host_name, "type": "device"},
            {"id": service_id, "label": service, "type": "service"},
            {"id": ids::hex(rng, 12), "label": title, "policyType": "ANOMALY_DETECTION", "type": "policyRule"},
        ],
        "idValue": rng.gen_range(10_000_000..20_000_000),
        "isSystemAlert": false,
        "resolutionStatusValue": resolution,
        "severityValue": severity,
        "statusValue": if resolution == 0 { 0 } else { 1 },
        "stories": [0],
        "threatScore": rng.gen_range(1..100),
        "timestamp": ts,
        "title": title,
        "URL": format!("{portal}/#/alerts/{id}"),
    })
}
