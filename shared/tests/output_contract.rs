//! The output contract: every message validates against our JSON Schema, and every OCSF
//! rendering against the official OCSF 1.8.0 Detection Finding schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;

use m365_ingest::domain::graph_alert::GraphAlert;
use m365_ingest::domain::processing::ocsf;
use m365_ingest::domain::processing::output::{AlertMessage, EvidenceRetrieval, MessageContext, Processing};
use m365_ingest::{GraphTime, Source};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use support::*;
use tenant_sim::data::kinds::{AlertKind, DEFAULT_MIX};
use tenant_sim::{Scenario, Simulator};

fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    jsonschema::validator_for(&serde_json::from_str::<Value>(&text).unwrap()).unwrap()
}

fn v1() -> jsonschema::Validator {
    schema("schemas/m365-ingest.alert.v1.schema.json")
}

fn ocsf_schema() -> jsonschema::Validator {
    schema("tests/fixtures/ocsf/detection_finding.schema.json")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn message(raw: &str) -> (GraphAlert, Value) {
    let a: GraphAlert = serde_json::from_str(raw).unwrap();
    let version = GraphTime::parse(a.last_update_date_time.as_deref().unwrap()).unwrap();
    let raw = RawValue::from_string(raw.to_owned()).unwrap();
    let ctx = MessageContext {
        integration_id: "contoso",
        tenant_id: a.tenant_id.as_deref().unwrap_or("t"),
        source: Source::DefenderAlerts,
        dedup_key: format!("defender_alerts/t/{}/{version}", a.id),
        incident: None,
        email: None,
        processing: Processing {
            processor: "m365-ingest/test".into(),
            processed_at: GraphTime::from_unix_seconds(1_800_000_000),
            filters_passed: vec!["severity".into()],
            notes: vec![],
            evidence: EvidenceRetrieval { status: "not_requested".into(), ..EvidenceRetrieval::default() },
            text_replaced: None,
        },
    };
    let m = AlertMessage::build(&a, version, &raw, ctx);
    (a, serde_json::from_str(&m.to_json()).unwrap())
}

/// Every alert kind the simulator makes, with the Prefer header (newer enum members included).
async fn simulated_alerts() -> Vec<String> {
    let mut s = Scenario::default();
    s.tenants[0].alerts.count = 300;
    s.tenants[0].alerts.update_fraction = 0.5;
    s.tenants[0].alerts.to = "-1h".into();
    s.tenants[0].alerts.mix =
        DEFAULT_MIX.iter().filter(|(k, _)| *k != AlertKind::MdoCampaign).map(|(k, _)| (*k, 1)).collect::<BTreeMap<_, _>>();
    let sim = Simulator::start(fixed(s)).await.unwrap();
    sim.clock().advance_secs(48 * 3600); // every update visible, many resolved
    fetch_alerts(&sim).await.iter().map(|a| a.to_string()).collect()
}

fn doc_samples() -> Vec<String> {
    ["graph_alerts_v2_list.json", "graph_alerts_v2_list_sentinel.json"]
        .iter()
        .flat_map(|f| {
            let v: Value = serde_json::from_str(
                &std::fs::read_to_string(format!("{}/../infra/tenant-sim/tests/fixtures/microsoft-docs/{f}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap(),
            )
            .unwrap();
            v["value"].as_array().unwrap().iter().map(|a| a.to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_validators_work_on_the_official_example() {
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/tests/fixtures/ocsf/example_detection_finding.json", env!("CARGO_MANIFEST_DIR"))).unwrap(),
    )
    .unwrap();
    assert!(errors(&ocsf_schema(), &example).is_empty());
    let mut broken = example.clone();
    broken["class_uid"] = json!(2001);
    assert!(!errors(&ocsf_schema(), &broken).is_empty());
}

#[tokio::test]
async fn every_message_validates_against_the_v1_schema() {
    let v = v1();
    let mut all = doc_samples();
    all.extend(simulated_alerts().await);
    assert!(all.len() > 250);
    for raw in &all {
        let (_, m) = message(raw);
        let e = errors(&v, &m);
        assert!(e.is_empty(), "{e:?}\n{}", serde_json::to_string_pretty(&m).unwrap());
        assert_eq!(&m["original"], &serde_json::from_str::<Value>(raw).unwrap(), "the original travels untouched");
    }
    // A user-reported email's alert names its submission, for correlation downstream.
    let reported: Vec<Value> = all.iter().map(|raw| message(raw).1).filter(|m| !m["email"]["submission"].is_null()).collect();
    assert!(!reported.is_empty(), "the simulator raises alerts on user-reported email");
    for m in &reported {
        let evidence = m["original"]["evidence"].as_array().unwrap();
        let e = evidence.iter().find(|e| e["@odata.type"] == "#microsoft.graph.security.submissionMailEvidence").unwrap();
        assert_eq!(m["email"]["submission"]["id"], e["submissionId"]);
        assert_eq!(m["email"]["network_message_id"], e["networkMessageId"]);
        assert_eq!(m["email"]["recipient"], e["recipient"]);
    }
    // The schema is strict where consumers rely on it.
    let (_, mut m) = message(&all[0]);
    m["surprise"] = json!(1);
    assert!(!errors(&v, &m).is_empty(), "unknown fields are refused");
    let (_, mut m) = message(&all[0]);
    m.as_object_mut().unwrap().remove("original");
    assert!(!errors(&v, &m).is_empty(), "original or original_ref is required");
}

#[tokio::test]
async fn every_alert_renders_as_a_valid_ocsf_detection_finding() {
    let schema = ocsf_schema();
    let mut all = doc_samples();
    all.extend(simulated_alerts().await);
    let mut activities = BTreeMap::new();
    for raw in &all {
        let a: GraphAlert = serde_json::from_str(raw).unwrap();
        let f = ocsf::detection_finding(&a, raw);
        let e = errors(&schema, &f);
        assert!(e.is_empty(), "{e:?}\n{}", serde_json::to_string_pretty(&f).unwrap());
        assert_eq!(f["type_uid"], json!(200_400 + f["activity_id"].as_u64().unwrap()));
        assert_eq!(f["raw_data"].as_str().unwrap(), raw, "the raw object kept");
        *activities.entry(f["activity_name"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert!(activities.contains_key("Create") && activities.contains_key("Update") && activities.contains_key("Close"), "{activities:?}");
}

#[test]
fn ocsf_fields_follow_the_alert() {
    let raw = &doc_samples()[0];
    let a: GraphAlert = serde_json::from_str(raw).unwrap();
    let f = ocsf::detection_finding(&a, raw);
    assert_eq!((f["severity_id"].as_u64(), f["status_id"].as_u64()), (Some(2), Some(1)), "low, new");
    assert_eq!(f["activity_name"], "Update", "created 2021-04-27, updated 2021-05-02");
    assert_eq!(f["time"], json!(1_619_965_141_326_i64));
    assert_eq!(f["finding_info"]["uid"], "da637551227677560813_-961444813");
    assert_eq!(f["finding_info"]["attacks"][0]["sub_technique"]["uid"], "T1564.001");
    assert_eq!(f["metadata"]["product"]["name"], "Microsoft Defender for Endpoint");
    assert_eq!(f["metadata"]["correlation_uid"], "28282");
    let kinds: Vec<&str> = f["evidences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_object().unwrap().keys().find(|k| !k.starts_with("verdict")).unwrap().as_str())
        .collect();
    assert_eq!(kinds, vec!["device", "file", "process"]);
    assert_eq!(f["unmapped"]["unmappedEvidenceTypes"], json!(["registryKeyEvidence"]));
}

/// Submissions (the docs sample's shape and the simulator's, pending and final) through their
/// source module: valid v1 messages with the email section, valid OCSF with the email evidence.
#[tokio::test]
async fn submissions_validate_in_both_formats_with_their_email() {
    use m365_ingest::domain::envelope::{dedup_key, Envelope, INTAKE_SCHEMA};
    let mut s = Scenario::default();
    s.tenants[0].submissions.count = 60;
    let sim = Simulator::start(fixed(s)).await.unwrap();
    let mut all: Vec<Value> = {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_email_threat_submissions_list.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        v["value"].as_array().unwrap().clone()
    };
    all.extend(fetch_json(&sim, "/beta/security/threatSubmission/emailThreats").await);
    assert!(all.len() > 40);
    let (v1s, ocsf_schema) = (v1(), ocsf_schema());
    let spec = m365_ingest::sources::spec(Source::EmailSubmissions);
    let mut revisions = BTreeMap::new();
    let mut emails = 0;
    for raw in &all {
        let object = RawValue::from_string(raw.to_string()).unwrap();
        let version = GraphTime::parse(raw["createdDateTime"].as_str().unwrap()).unwrap();
        let id = raw["id"].as_str().unwrap();
        let env = Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: "contoso".into(),
            tenant_id: TENANT.into(),
            source: Source::EmailSubmissions,
            id: id.into(),
            version,
            dedup_key: dedup_key(Source::EmailSubmissions, TENANT, id, version),
            polled_at: version,
            object: None,
            object_ref: None,
        };
        let unit = spec.units(&env, &object).unwrap().pop().unwrap();
        let ctx = MessageContext {
            integration_id: "contoso",
            tenant_id: TENANT,
            source: Source::EmailSubmissions,
            dedup_key: format!("{}/{}", env.dedup_key, unit.revision.unwrap()),
            incident: None,
            email: unit.email.clone(),
            processing: Processing {
                processor: "m365-ingest/test".into(),
                processed_at: version,
                filters_passed: vec![],
                notes: vec![],
                evidence: EvidenceRetrieval { status: "not_requested".into(), ..EvidenceRetrieval::default() },
                text_replaced: None,
            },
        };
        let m: Value = serde_json::from_str(&AlertMessage::build(&unit.alert, unit.version, &unit.raw, ctx).to_json()).unwrap();
        let e = errors(&v1s, &m);
        assert!(e.is_empty(), "{e:?}\n{}", serde_json::to_string_pretty(&m).unwrap());
        let sub = &m["email"]["submission"];
        assert_eq!((&sub["id"], &m["email"]["recipient"]), (&raw["id"], &raw["recipientEmailAddress"]));
        assert_eq!(m["email"]["internet_message_id"], raw["internetMessageId"]);
        assert_eq!(sub["status"], raw["status"]);
        *revisions.entry(sub["revision"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        let f = ocsf::detection_finding(&unit.alert, unit.raw.get());
        let e = errors(&ocsf_schema, &f);
        assert!(e.is_empty(), "{e:?}\n{}", serde_json::to_string_pretty(&f).unwrap());
        emails += f["evidences"].as_array().map_or(0, |v| v.iter().filter(|e| e["email"].is_object()).count());
    }
    assert!(revisions.len() == 2, "pending and final both seen: {revisions:?}");
    assert!(emails >= all.len() - 1, "the reported email is an OCSF email evidence: {emails}");
}

/// Microsoft's documented incident (with its alert) renders as the Incident Finding the OCSF
/// fixture maps by hand (`tests/fixtures/ocsf/example_incident_finding.json`), valid against the
/// official 1.8.0 class (issue 30 §1).
#[test]
fn microsofts_sample_incident_is_the_fixtures_incident_finding() {
    use m365_ingest::domain::processing::incident::{
        without_alerts, AlertRef, IncidentFields, IncidentMessage, IncidentProcessing, INCIDENT_SCHEMA,
    };
    let sample: Value =
        serde_json::from_str(include_str!("../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_incidents_list_expand_alerts.json"))
            .unwrap();
    let incident = sample["value"][0].as_object().unwrap().clone();
    let alerts: Vec<GraphAlert> =
        incident["alerts"].as_array().unwrap().iter().map(|a| serde_json::from_value(a.clone()).unwrap()).collect();
    let version = GraphTime::parse(incident["lastUpdateDateTime"].as_str().unwrap()).unwrap();
    let fields = IncidentFields::of(&incident);
    let refs: Vec<AlertRef> = alerts.iter().map(|a| AlertRef::published(a, version, format!("defender_incidents/t/{}/v", a.id))).collect();
    let m = IncidentMessage {
        schema: INCIDENT_SCHEMA,
        integration_id: "contoso".into(),
        tenant_id: incident["tenantId"].as_str().unwrap().into(),
        source: Source::DefenderIncidents,
        id: fields.id.clone(),
        version,
        dedup_key: format!("defender_incidents/t/{}/{version}/incident", fields.id),
        incident: fields,
        alerts_total: refs.len(),
        alerts: refs,
        processing: IncidentProcessing { processor: "test".into(), processed_at: version, notes: vec![] },
        original: Some(without_alerts(&incident)),
        original_ref: None,
    };
    let v1 = schema("schemas/m365-ingest.incident.v1.schema.json");
    let doc = serde_json::to_value(&m).unwrap();
    assert!(errors(&v1, &doc).is_empty(), "{:?}", errors(&v1, &doc));
    let alert_refs: Vec<&GraphAlert> = alerts.iter().collect();
    let finding = ocsf::incident_finding(&m, &alert_refs);
    let official = schema("tests/fixtures/ocsf/incident_finding.schema.json");
    assert!(errors(&official, &finding).is_empty(), "{:?}\n{finding}", errors(&official, &finding));
    let example: Value = serde_json::from_str(include_str!("fixtures/ocsf/example_incident_finding.json")).unwrap();
    for path in [
        "/activity_id",
        "/type_uid",
        "/severity_id",
        "/status_id",
        "/verdict_id",
        "/time",
        "/start_time",
        "/end_time",
        "/message",
        "/src_url",
        "/assignee/name",
        "/comment",
        "/metadata/original_event_uid",
        "/metadata/correlation_uid",
        "/metadata/tenant_uid",
        "/metadata/modified_time",
        "/metadata/labels",
        "/metadata/product/name",
        "/finding_info_list/0/uid",
        "/finding_info_list/0/title",
        "/finding_info_list/0/created_time",
        "/unmapped/determination",
        "/unmapped/systemTags",
    ] {
        assert_eq!(finding.pointer(path), example.pointer(path), "{path}");
    }
}
