//! Operational metrics as CloudWatch Embedded Metric Format: one JSON line on stdout per
//! record, which Lambda's log stream turns into metrics without an API call.

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::app::polling::dispatch::DispatchSummary;
use crate::app::polling::poll::{Outcome, RunSummary};
use crate::app::processing::process::ProcessCounts;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;

pub const NAMESPACE: &str = "m365-ingest";

/// One EMF record: `dimensions` name the metric set, `metrics` are (name, value, unit),
/// `properties` are searchable log fields that are not dimensions.
pub fn record(dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)], properties: &[(&str, Value)], now_ms: i64) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(n, _, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::from(*v));
    }
    for (n, v, _) in metrics {
        root.insert((*n).into(), json!(v));
    }
    for (k, v) in properties {
        root.insert((*k).into(), v.clone());
    }
    Value::Object(root).to_string()
}

/// Writes records to stdout, one per line.
pub fn emit(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        // Metrics are best effort: a closed stdout must not fail the invocation.
        if let Err(e) = writeln!(out, "{l}") {
            tracing::warn!(error = %e, "metrics not written");
            return;
        }
    }
}

/// Test & Save's record: the guard rails a saved revision relaxed (`GuardRailRelaxations`,
/// alarmed on), and the ones it refused to save unnamed (`GuardRailRelaxationsRefused`), with
/// the integration and who saved it as searchable fields.
pub fn check_records(report: &crate::app::test_and_save::check::Report, now: GraphTime) -> Vec<String> {
    let relaxed = report.saved.as_ref().map_or(0, |s| s.relaxed.len());
    let refused = report.unconfirmed_relaxations.len();
    if relaxed == 0 && refused == 0 {
        return Vec::new();
    }
    let fields: Vec<&str> =
        report.saved.iter().flat_map(|s| s.relaxed.iter()).chain(report.unconfirmed_relaxations.iter()).map(|r| r.field.as_str()).collect();
    vec![record(
        &[("Function", "check")],
        &[("GuardRailRelaxations", relaxed as f64, "Count"), ("GuardRailRelaxationsRefused", refused as f64, "Count")],
        &[
            ("integration", Value::from(report.integration_id.clone())),
            ("fields", json!(fields)),
            ("saved_by", json!(report.saved.as_ref().map(|s| s.saved_by.clone()))),
        ],
        now.ticks() / 10_000,
    )]
}

/// The poller's records: per integration run (dimension Source), and the 429 answers and
/// retries of the invocation per API (dimension Api).
pub fn poll_records(summaries: &[RunSummary], now: GraphTime, calls: &[(&str, u64, u64)]) -> Vec<String> {
    let now_ms = now.ticks() / 10_000;
    let mut out: Vec<String> = summaries
        .iter()
        .map(|s| {
            let lag = s.watermark.map(|w| (now.ticks() - w.ticks()) as f64 / 1e7);
            let failed = f64::from(u8::from(matches!(s.outcome, Outcome::Failed { .. })));
            let mut metrics = vec![
                ("AlertsPolled", (s.delivered + s.suppressed) as f64, "Count"),
                ("AlertsSent", s.delivered as f64, "Count"),
                ("ClaimChecks", s.claim_checks as f64, "Count"),
                ("GraphPages", s.pages as f64, "Count"),
                ("PollFailed", failed, "Count"),
            ];
            if let Some(lag) = lag {
                metrics.push(("CursorLagSeconds", lag, "Seconds"));
            }
            // Only sources that follow items until they settle have these; absent is zero.
            if s.verdicts + s.unsettled_dropped + s.held_for_verdict + s.verdicts_waited_out > 0 {
                metrics.push(("VerdictsSent", s.verdicts as f64, "Count"));
                metrics.push(("UnsettledDropped", s.unsettled_dropped as f64, "Count"));
                metrics.push(("HeldForVerdict", s.held_for_verdict as f64, "Count"));
                metrics.push(("VerdictsWaitedOut", s.verdicts_waited_out as f64, "Count"));
            }
            if s.source == crate::Source::PhishingMailbox {
                metrics.push(("ReportedEmailsMissing", s.reported_emails_missing as f64, "Count"));
            }
            record(
                &[("Source", s.source.as_str())],
                &metrics,
                &[
                    ("IntegrationId", json!(s.integration_id)),
                    ("Outcome", serde_json::to_value(&s.outcome).unwrap_or_default()),
                    ("StartedAt", json!(s.started_at)),
                    ("Watermark", json!(s.watermark)),
                ],
                now_ms,
            )
        })
        .collect();
    for (api, throttled, retried) in calls {
        out.push(record(&[("Api", api)], &[("Throttled", *throttled as f64, "Count"), ("Retried", *retried as f64, "Count")], &[], now_ms));
    }
    // One metric for the whole deployment, so one alarm sees any source set an item aside.
    let quarantined: usize = summaries.iter().map(|s| s.quarantined).sum();
    let refused = summaries.iter().filter(|s| s.credentials_refused).count();
    out.push(record(
        &[],
        &[("ItemsQuarantined", quarantined as f64, "Count"), ("CredentialsRefused", refused as f64, "Count")],
        &[],
        now_ms,
    ));
    out
}

/// The dispatcher's record per source: pairs due, jobs enqueued, and jobs the queue refused.
pub fn dispatch_records(s: &DispatchSummary, now: GraphTime) -> Vec<String> {
    let source = s.source.map_or("", Source::as_str);
    vec![record(
        &[("Source", source)],
        &[("JobsDue", s.due as f64, "Count"), ("JobsEnqueued", s.enqueued as f64, "Count"), ("JobsNotSent", s.not_sent as f64, "Count")],
        &[],
        now.ticks() / 10_000,
    )]
}

/// The processor's records: totals, and one per drop reason (dimension Reason).
pub fn process_records(c: &ProcessCounts, now: GraphTime) -> Vec<String> {
    let now_ms = now.ticks() / 10_000;
    let mut out = vec![record(
        &[("Function", "processor")],
        &[
            ("AlertsProcessed", c.alerts as f64, "Count"),
            ("AlertsPublished", c.published as f64, "Count"),
            ("Duplicates", c.duplicates as f64, "Count"),
            ("AlertsHeld", c.held as f64, "Count"),
            ("HeldAlertsReleased", c.released as f64, "Count"),
            ("MessagesFailed", c.failed_messages as f64, "Count"),
            ("EvidenceSteps", c.evidence_steps as f64, "Count"),
            ("EvidenceJobMaxAge", c.evidence_max_age_secs as f64, "Seconds"),
            ("RestoredCopiesLeft", c.restored_copies_left as f64, "Count"),
            ("DlpModeUnknown", c.dlp_mode_unknown as f64, "Count"),
            ("IncidentsPublished", c.incidents_published as f64, "Count"),
            ("IncidentsDropped", c.incidents_dropped as f64, "Count"),
            ("IncidentsTooLarge", c.incidents_too_large as f64, "Count"),
        ],
        &[],
        now_ms,
    )];
    for (reason, n) in &c.dropped {
        out.push(record(&[("Reason", reason.as_str())], &[("AlertsFiltered", *n as f64, "Count")], &[], now_ms));
    }
    // One per outcome: how evidence jobs end (retrieved, not_found, device_offline, ...).
    for (outcome, n) in &c.evidence_outcomes {
        out.push(record(&[("Outcome", outcome.as_str())], &[("EvidenceJobsEnded", *n as f64, "Count")], &[], now_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_emf() {
        let line = record(
            &[("Source", "defender_alerts")],
            &[("AlertsSent", 3.0, "Count")],
            &[("IntegrationId", json!("contoso"))],
            1_700_000_000_000,
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "m365-ingest");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Source"]]));
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0], json!({"Name": "AlertsSent", "Unit": "Count"}));
        assert_eq!(
            (v["Source"].as_str(), v["AlertsSent"].as_f64(), v["IntegrationId"].as_str()),
            (Some("defender_alerts"), Some(3.0), Some("contoso"))
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn poll_runs_report_volume_lag_and_graph_totals() {
        let s = RunSummary {
            integration_id: "contoso".into(),
            source: crate::Source::DefenderAlerts,
            outcome: Outcome::Completed,
            pages: 2,
            delivered: 5,
            suppressed: 3,
            claim_checks: 1,
            batches: 1,
            quarantined: 2,
            credentials_refused: false,
            verdicts: 0,
            held_for_verdict: 0,
            verdicts_waited_out: 0,
            unsettled_dropped: 0,
            reported_emails_missing: 0,
            watermark: Some(GraphTime::from_unix_seconds(1_000)),
            started_at: GraphTime::from_unix_seconds(1_290),
        };
        let r = poll_records(std::slice::from_ref(&s), GraphTime::from_unix_seconds(1_300), &[("graph", 4, 6), ("cloud_apps", 0, 0)]);
        let run: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!(
            (run["AlertsPolled"].as_f64(), run["AlertsSent"].as_f64(), run["CursorLagSeconds"].as_f64()),
            (Some(8.0), Some(5.0), Some(300.0))
        );
        assert_eq!(run["Outcome"]["outcome"], "completed");
        let at = |k: &str| run[k].as_str().and_then(|t| GraphTime::parse(t).ok());
        assert_eq!(
            (at("StartedAt"), at("Watermark")),
            (Some(GraphTime::from_unix_seconds(1_290)), Some(GraphTime::from_unix_seconds(1_000)))
        );
        let graph: Value = serde_json::from_str(&r[1]).unwrap();
        assert_eq!((graph["Api"].as_str(), graph["Throttled"].as_f64(), graph["Retried"].as_f64()), (Some("graph"), Some(4.0), Some(6.0)));
        let cloud_apps: Value = serde_json::from_str(&r[2]).unwrap();
        assert_eq!(cloud_apps["Api"].as_str(), Some("cloud_apps"));
        assert!(run.get("VerdictsSent").is_none(), "absent where nothing settles");
        let s = RunSummary { source: crate::Source::EmailSubmissions, verdicts: 2, unsettled_dropped: 1, ..s };
        let r = poll_records(std::slice::from_ref(&s), GraphTime::from_unix_seconds(1_300), &[]);
        let run: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!((run["VerdictsSent"].as_f64(), run["UnsettledDropped"].as_f64()), (Some(2.0), Some(1.0)));
        assert!(run.get("ReportedEmailsMissing").is_none(), "a mailbox's only");
        let s = RunSummary { source: crate::Source::PhishingMailbox, reported_emails_missing: 1, ..s };
        let r = poll_records(&[s], GraphTime::from_unix_seconds(1_300), &[]);
        let run: Value = serde_json::from_str(&r[0]).unwrap();
        assert_eq!(run["ReportedEmailsMissing"].as_f64(), Some(1.0));
    }

    #[test]
    fn drop_reasons_become_their_own_dimension() {
        let mut c = ProcessCounts { alerts: 10, published: 7, ..ProcessCounts::default() };
        c.dropped.insert("severity".into(), 3);
        let r = process_records(&c, GraphTime::from_unix_seconds(1));
        assert_eq!(r.len(), 2);
        let v: Value = serde_json::from_str(&r[1]).unwrap();
        assert_eq!((v["Reason"].as_str(), v["AlertsFiltered"].as_f64()), (Some("severity"), Some(3.0)));
    }
}
