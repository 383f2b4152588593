//! Each filter on realistic alerts: Microsoft's doc sample and the simulator's alerts of each kind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;

use m365_ingest::domain::graph_alert::GraphAlert;
use m365_ingest::domain::processing::filter::{dlp_mode, Decision, DlpMode, DropReason, FilterDoc, DETECTION_SOURCES};
use m365_ingest::Source;
use serde_json::{json, Value};
use support::*;
use tenant_sim::data::kinds::AlertKind;
use tenant_sim::{Scenario, Simulator};

/// Alerts of one kind, as the simulator serves them (with the Prefer header).
async fn alerts(kind: AlertKind, n: usize) -> Vec<GraphAlert> {
    let mut s = Scenario::default();
    s.tenants[0].alerts.count = n;
    s.tenants[0].alerts.mix = BTreeMap::from([(kind, 1)]);
    s.tenants[0].alerts.to = "-1h".into();
    let sim = Simulator::start(fixed(s)).await.unwrap();
    fetch_alerts(&sim).await.into_iter().map(|v| serde_json::from_value(v).unwrap()).collect()
}

fn doc_sample() -> GraphAlert {
    let v: Value =
        serde_json::from_str(include_str!("../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list.json")).unwrap();
    serde_json::from_value(v["value"][0].clone()).unwrap()
}

fn filters(doc: Value) -> m365_ingest::domain::processing::filter::Filters {
    serde_json::from_value::<FilterDoc>(doc).unwrap().validate().unwrap()
}

fn dropped(d: &Decision) -> Option<DropReason> {
    match d {
        Decision::Drop { reason, .. } => Some(*reason),
        Decision::Pass { .. } => None,
    }
}

#[test]
fn no_filters_pass_everything() {
    assert_eq!(filters(json!({})).decide(Source::DefenderAlerts, &doc_sample()), Decision::Pass { passed: vec![], notes: vec![] });
}

#[test]
fn severity_levels() {
    let a = doc_sample(); // severity low
    assert_eq!(dropped(&filters(json!({"severities": ["medium", "high"]})).decide(Source::DefenderAlerts, &a)), Some(DropReason::Severity));
    assert_eq!(dropped(&filters(json!({"severities": ["Low"]})).decide(Source::DefenderAlerts, &a)), None);
    let e = serde_json::from_value::<FilterDoc>(json!({"severities": ["critical"]})).unwrap().validate().unwrap_err();
    assert_eq!(e.field, "severities[0]");
}

#[test]
fn detection_sources_know_all_39_members_and_keep_unknown_ones() {
    assert_eq!(DETECTION_SOURCES.len(), 39);
    let every: Vec<&str> = DETECTION_SOURCES.to_vec();
    assert!(serde_json::from_value::<FilterDoc>(json!({ "detection_sources": every })).unwrap().validate().is_ok());
    let a = doc_sample(); // antivirus
    assert_eq!(
        dropped(&filters(json!({"detection_sources": ["customDetection"]})).decide(Source::DefenderAlerts, &a)),
        Some(DropReason::DetectionSource)
    );
    assert_eq!(dropped(&filters(json!({"detection_sources": ["antivirus"]})).decide(Source::DefenderAlerts, &a)), None);
    for future in ["unknownFutureValue", "microsoftDefenderForQuantum"] {
        let mut b = a.clone();
        b.detection_source = Some(future.into());
        match filters(json!({"detection_sources": ["customDetection"]})).decide(Source::DefenderAlerts, &b) {
            Decision::Pass { notes, .. } => assert!(notes[0].contains(future), "{notes:?}"),
            d => panic!("{future} must be kept and reported, got {d:?}"),
        }
    }
    assert!(serde_json::from_value::<FilterDoc>(json!({"detection_sources": ["defender"]})).unwrap().validate().is_err());
}

#[test]
fn title_substrings_and_patterns() {
    let a = doc_sample(); // "Suspicious execution of hidden file"
    assert_eq!(dropped(&filters(json!({"title_excludes": ["HIDDEN FILE"]})).decide(Source::DefenderAlerts, &a)), Some(DropReason::Title));
    assert_eq!(
        dropped(&filters(json!({"title_exclude_patterns": ["^suspicious .* of"]})).decide(Source::DefenderAlerts, &a)),
        Some(DropReason::Title)
    );
    assert_eq!(
        dropped(
            &filters(json!({"title_excludes": ["mimikatz"], "title_exclude_patterns": ["^benign"]})).decide(Source::DefenderAlerts, &a)
        ),
        None
    );
    for (doc, field) in [
        (json!({"title_exclude_patterns": ["(unclosed"]}), "title_exclude_patterns[0]"),
        (json!({"title_exclude_patterns": [".*"]}), "title_exclude_patterns[0]"),
        (json!({"title_excludes": [" "]}), "title_excludes[0]"),
    ] {
        assert_eq!(serde_json::from_value::<FilterDoc>(doc).unwrap().validate().unwrap_err().field, field);
    }
}

#[test]
fn file_names_paths_and_hashes() {
    let a = doc_sample(); // MsSense.exe in C:\Program Files\temp; parent services.exe
    for rule in [
        "mssense.exe",
        r"C:\Program Files\*\MsSense.exe",
        "c:/program files/temp/*",
        "5f1e8acedc065031aad553b710838eb366cfee9a",
        "8963A19FB992AD9A76576C5638FD68292CFFB9AAAC29EB8285F9ABF6196A7DEC",
        "MsSen*",
    ] {
        assert_eq!(
            dropped(&filters(json!({"file_excludes": [rule]})).decide(Source::DefenderAlerts, &a)),
            Some(DropReason::File),
            "{rule}"
        );
    }
    // The parent process (services.exe) is context, not the alert's subject.
    for rule in ["services.exe", r"C:\Windows\*", "0000000000000000000000000000000000000000"] {
        assert_eq!(dropped(&filters(json!({"file_excludes": [rule]})).decide(Source::DefenderAlerts, &a)), None, "{rule}");
    }
    assert!(serde_json::from_value::<FilterDoc>(json!({"file_excludes": ["*"]})).unwrap().validate().is_err());
}

#[tokio::test]
async fn prelude_test_alerts_are_recognised_and_nothing_else() {
    let prelude = alerts(AlertKind::PreludeTest, 20).await;
    let f = filters(json!({"exclude_prelude": true}));
    assert!(prelude.iter().all(|a| dropped(&f.decide(Source::DefenderAlerts, a)) == Some(DropReason::PreludeTest)));
    for kind in [AlertKind::MdeAntivirus, AlertKind::MdeEdr, AlertKind::Mdo] {
        let others = alerts(kind, 40).await;
        assert!(others.iter().all(|a| dropped(&f.decide(Source::DefenderAlerts, a)).is_none()), "{kind:?} alerts are not Prelude's");
    }
    // The matcher is configurable: with another folder and no signer or probe, Prelude's alerts pass.
    let narrow = filters(
        json!({"exclude_prelude": true, "prelude": {"folders": ["prelude-tests"], "uuid_names": true, "parent_images": [], "signers": []}}),
    );
    assert!(prelude.iter().all(|a| dropped(&narrow.decide(Source::DefenderAlerts, a)).is_none()));
    assert!(
        serde_json::from_value::<FilterDoc>(json!({"prelude": {}})).unwrap().validate().is_err(),
        "prelude settings without exclude_prelude"
    );
}

#[tokio::test]
async fn dlp_alerts_by_enforcement_mode() {
    let dlp = alerts(AlertKind::Dlp, 60).await;
    assert!(dlp.iter().all(|a| a.service_source.as_deref() == Some("dataLossPrevention")));
    let enforce = filters(json!({"dlp_modes": ["enforce"]}));
    // The simulator's DLP alerts carry documented shapes only, so no mode: each is kept and noted.
    for a in &dlp {
        assert_eq!(dlp_mode(a.additional_data.as_ref()), None);
        assert!(
            matches!(enforce.decide(Source::DefenderAlerts, a), Decision::Pass { notes, .. } if notes[0].contains("no enforcement mode"))
        );
    }
    // Where a mode would be read: the Office 365 Management Activity API's DLP names, were
    // Microsoft to put them in `additionalData` (no document says it does).
    let with_mode = |data: Value| {
        let mut a = dlp[0].clone();
        a.additional_data = Some(data);
        a
    };
    let rules = |mode: &str| json!({"PolicyDetails": [{"PolicyName": "U.S. Financial Data", "Rules": [{"RuleMode": mode}]}]});
    for (mode, expected) in [("Enforce", DlpMode::Enforce), ("AuditAndNotify", DlpMode::AuditAndNotify), ("Audit", DlpMode::AuditOnly)] {
        let a = with_mode(rules(mode));
        assert_eq!(dlp_mode(a.additional_data.as_ref()), Some(expected));
        assert_eq!(dropped(&enforce.decide(Source::DefenderAlerts, &a)).is_none(), expected == DlpMode::Enforce, "{mode}");
    }
    // No mode chosen: every DLP alert.
    assert!(dlp.iter().all(|a| dropped(&filters(json!({})).decide(Source::DefenderAlerts, a)).is_none()));
    // Other alerts are not touched by the DLP filter.
    assert_eq!(dropped(&enforce.decide(Source::DefenderAlerts, &doc_sample())), None);
    // The carriers read and their mapping.
    assert_eq!(dlp_mode(Some(&json!({"EnforcementMode": 4}))), Some(DlpMode::Enforce));
    assert_eq!(dlp_mode(Some(&json!({"EnforcementMode": 1}))), Some(DlpMode::AuditOnly));
    assert_eq!(dlp_mode(Some(&json!({"Mode": "TestWithNotifications"}))), Some(DlpMode::AuditAndNotify));
    assert_eq!(
        dlp_mode(Some(&json!({"PolicyDetails": [{"Rules": [{"RuleMode": "Audit"}, {"RuleMode": "Enforce"}]}]}))),
        Some(DlpMode::Enforce),
        "the strictest rule"
    );
}

#[test]
fn unknown_filter_fields_are_errors() {
    let e = serde_json::from_value::<FilterDoc>(json!({"severity": ["high"]})).unwrap_err();
    assert!(e.to_string().contains("unknown field `severity`"));
}
