//! Builds a tenant's alert timeline from an [`AlertPlan`]: first sightings,
//! later updates, ties on one timestamp, ingestion latency, incidents.

use rand::Rng;

use super::alert::{AlertBody, AlertRecord, AlertVersion, Comment};
use super::incident::IncidentRecord;
use super::kinds::{AlertKind, DEFAULT_MIX};
use super::pool::Pool;
use crate::ids::{self, pick, SimRng};
use crate::scenario::AlertPlan;
use crate::time::{parse_duration_secs, Instant};

pub struct Timeline {
    pub alerts: Vec<AlertRecord>,
    pub incidents: Vec<IncidentRecord>,
}

#[derive(Debug, thiserror::Error)]
#[error("alerts.{field}: {reason}")]
pub struct PlanError {
    pub field: &'static str,
    pub reason: String,
}

fn kind_table(plan: &AlertPlan) -> Vec<(AlertKind, u32)> {
    if plan.mix.is_empty() {
        DEFAULT_MIX.to_vec()
    } else {
        plan.mix.iter().map(|(k, w)| (*k, *w)).collect()
    }
}

fn pick_kind(rng: &mut SimRng, table: &[(AlertKind, u32)], total: u32) -> AlertKind {
    let mut x = rng.gen_range(0..total);
    for (k, w) in table {
        if x < *w {
            return *k;
        }
        x -= w;
    }
    AlertKind::MdeEdr
}

fn latency(rng: &mut SimRng, plan: &AlertPlan) -> i64 {
    let lo = plan.latency_min_secs.max(0);
    let hi = plan.latency_max_secs.max(lo);
    // Sub-second jitter too, so visibility is not aligned to whole seconds.
    rng.gen_range(lo * 10_000_000..=hi * 10_000_000)
}

/// First index of generated alerts in a tenant, so later additions keep unique seeds.
pub fn alert_seed(scenario_seed: u64, tenant_no: usize, index: usize) -> u64 {
    scenario_seed ^ ((tenant_no as u64) << 40) ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub fn generate(
    plan: &AlertPlan,
    tenant_id: &str,
    tenant_no: usize,
    pool: &Pool,
    seed: u64,
    start: Instant,
) -> Result<Timeline, PlanError> {
    let from = parse_duration_secs(&plan.from)
        .ok_or(PlanError { field: "from", reason: format!("`{}` is not a duration like -24h", plan.from) })?;
    let to = parse_duration_secs(&plan.to).ok_or(PlanError { field: "to", reason: format!("`{}` is not a duration like +2h", plan.to) })?;
    if to <= from {
        return Err(PlanError { field: "to", reason: "must be later than `from`".into() });
    }
    let table = kind_table(plan);
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return Err(PlanError { field: "mix", reason: "weights add up to 0".into() });
    }
    let mut rng = ids::rng(seed ^ tenant_no as u64, 1);
    let (t0, t1) = (start.plus_secs(from), start.plus_secs(to));
    let mut alerts: Vec<AlertRecord> = (0..plan.count)
        .map(|i| {
            let kind = pick_kind(&mut rng, &table, total);
            let big = kind != AlertKind::MdoCampaign && rng.gen_bool(plan.big_evidence_fraction.clamp(0.0, 1.0));
            first_sighting(&mut rng, plan, kind, big, tenant_id, alert_seed(seed, tenant_no, i), t0, t1)
        })
        .collect();
    make_ties(&mut rng, plan, &mut alerts);
    for a in &mut alerts {
        if rng.gen_bool(plan.update_fraction.clamp(0.0, 1.0)) {
            let n = rng.gen_range(1..=plan.max_updates.max(1));
            add_updates(&mut rng, plan, pool, a, n);
        }
    }
    let incidents = group_into_incidents(&mut rng, plan, tenant_id, &mut alerts, pool);
    Ok(Timeline { alerts, incidents })
}

#[allow(clippy::too_many_arguments)]
fn first_sighting(
    rng: &mut SimRng,
    plan: &AlertPlan,
    kind: AlertKind,
    big: bool,
    tenant_id: &str,
    seed: u64,
    t0: Instant,
    t1: Instant,
) -> AlertRecord {
    let first_update = Instant(rng.gen_range(t0.0..t1.0));
    let created = first_update.plus_ticks(-rng.gen_range(0..120 * 10_000_000));
    let first_activity = created.plus_ticks(-rng.gen_range(10 * 10_000_000..7_200 * 10_000_000));
    let identity = kind.identity(&mut ids::rng(seed, 3), created);
    AlertRecord {
        id: identity.id,
        tenant_id: tenant_id.to_owned(),
        incident_id: String::new(),
        created,
        first_activity,
        severity: identity.severity,
        service_source: identity.service_source,
        detection_source: identity.detection_source,
        body: AlertBody::Generated { kind, seed, big_evidence: big },
        versions: vec![AlertVersion {
            last_update: first_update,
            visible_at: first_update.plus_ticks(latency(rng, plan)),
            status: "new",
            classification: "unknown",
            determination: "unknown",
            assigned_to: None,
            comments: Vec::new(),
            resolved: None,
        }],
    }
}

/// Puts `tie_size` alerts on one exact `lastUpdateDateTime`, per group: the
/// boundary case that loses alerts in `gt`-based cursors (PEERS.md §2.2).
fn make_ties(rng: &mut SimRng, plan: &AlertPlan, alerts: &mut [AlertRecord]) {
    if alerts.len() < 2 || plan.tie_size < 2 {
        return;
    }
    for _ in 0..plan.tie_groups {
        let lead = rng.gen_range(0..alerts.len());
        let t = alerts[lead].versions[0].last_update;
        for _ in 1..plan.tie_size {
            let j = rng.gen_range(0..alerts.len());
            let a = &mut alerts[j];
            let v = &mut a.versions[0];
            let lag = v.visible_at.0 - v.last_update.0;
            v.last_update = t;
            v.visible_at = t.plus_ticks(lag);
            a.created = a.created.min(t);
            a.first_activity = a.first_activity.min(a.created);
        }
    }
}

/// Appends `n` later versions: triage, assignment, comments, resolution.
pub fn add_updates(rng: &mut SimRng, plan: &AlertPlan, pool: &Pool, a: &mut AlertRecord, n: usize) {
    for _ in 0..n {
        let Some(prev) = a.versions.last().cloned() else { return };
        if prev.status == "resolved" {
            return;
        }
        let lo = plan.update_gap_min_secs.max(1) * 10_000_000;
        let hi = (plan.update_gap_max_secs * 10_000_000).max(lo + 1);
        let at = prev.last_update.plus_ticks(rng.gen_range(lo..hi));
        let analyst = pick(rng, &pool.users).upn.clone();
        let mut v = prev.clone();
        v.last_update = at;
        v.visible_at = at.plus_ticks(latency(rng, plan));
        v.assigned_to = Some(analyst.clone());
        if prev.status == "new" && rng.gen_bool(0.6) {
            v.status = "inProgress";
            v.comments.push(Comment { text: "Triage started.".into(), by: analyst, at });
        } else {
            v.status = "resolved";
            v.resolved = Some(at);
            let (c, d) = *pick(
                rng,
                &[
                    ("truePositive", "malware"),
                    ("truePositive", "phishing"),
                    ("falsePositive", "notMalicious"),
                    ("informationalExpectedActivity", "securityTesting"),
                    ("truePositive", "compromisedAccount"),
                ],
            );
            v.classification = c;
            v.determination = d;
            v.comments.push(Comment { text: format!("Resolved as {c}."), by: analyst, at });
        }
        a.versions.push(v);
    }
}

fn group_into_incidents(
    rng: &mut SimRng,
    plan: &AlertPlan,
    tenant_id: &str,
    alerts: &mut [AlertRecord],
    pool: &Pool,
) -> Vec<IncidentRecord> {
    let n = plan.incidents.max(1).min(alerts.len().max(1));
    let base_id: u64 = rng.gen_range(20_000..90_000);
    let mut incidents: Vec<IncidentRecord> = (0..n)
        .map(|i| IncidentRecord {
            id: (base_id + i as u64).to_string(),
            tenant_id: tenant_id.to_owned(),
            display_name: String::new(),
            description: String::new(),
            assigned_to: if rng.gen_bool(0.4) { Some(pick(rng, &pool.users).upn.clone()) } else { None },
            custom_tags: if rng.gen_bool(0.2) { vec!["Demo".to_owned()] } else { Vec::new() },
            awaiting_action: i % 17 == 5,
            alerts: Vec::new(),
            verbatim: None,
            edits: Vec::new(),
        })
        .collect();
    if alerts.is_empty() {
        return Vec::new();
    }
    // Every incident gets at least one alert; the rest fall where they may.
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by_key(|i| alerts[*i].created);
    for (k, ai) in order.iter().enumerate() {
        let inc = if k < n { k } else { rng.gen_range(0..n) };
        incidents[inc].alerts.push(*ai);
        alerts[*ai].incident_id.clone_from(&incidents[inc].id);
    }
    for inc in &mut incidents {
        let titles: Vec<String> = inc.alerts.iter().filter_map(|i| alerts.get(*i)).map(|a| a.service_source.to_owned()).collect();
        inc.display_name = if inc.alerts.len() > 1 {
            format!("Multi-stage incident involving {} alerts reported by {}", inc.alerts.len(), dedup_join(&titles))
        } else {
            format!("Single-alert incident reported by {}", dedup_join(&titles))
        };
        inc.description = format!("Incident correlating {} alert(s).", inc.alerts.len());
    }
    incidents
}

fn dedup_join(xs: &[String]) -> String {
    let mut v: Vec<&str> = xs.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v.join(", ")
}
