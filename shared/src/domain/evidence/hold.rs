//! Holding an alert until its evidence is final (`evidence.delivery = hold_until_final`,
//! issue 13 §2). The processor renders the alert as usual, keeps the rendered messages in the
//! artifact store and a hold record beside the jobs; the alert goes out once every item ended or
//! the hold's deadline passed, with its items as they stand then. Items still pending at the
//! deadline follow as evidence updates, exactly as with the default delivery, so a consumer
//! handles one protocol: an alert version's items by id, and updates for the ones it listed as
//! `pending`.
//!
//! One step releases, by a claim on the record; the record then says which items the released
//! alert carried final (`included`): every other job's update is published when it ends, by
//! whoever notices first (its own last step or a release). A releaser that dies after its claim
//! is taken over once the claim lapses; one that dies after publishing and before saving makes
//! the alert go out twice at worst, never not at all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::envelope::ObjectRef;
use crate::domain::processing::ocsf;
use crate::domain::processing::output::{EvidenceItem, EvidenceRetrieval, OUTPUT_SCHEMA};
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;

/// The schema of a held alert's object in the artifact store.
pub const HELD_OUTPUT_SCHEMA: &str = "m365-ingest.held-alert.v1";

/// The hold of one alert version, beside its jobs (`{dedup key}/evidence-hold`).
pub fn hold_key(dedup_key: &str) -> String {
    format!("{dedup_key}/evidence-hold")
}

/// A held alert's rendered messages, as the output queue would have taken them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAlert {
    pub schema: String,
    pub bodies: Vec<String>,
}

impl HeldAlert {
    pub fn new(bodies: Vec<String>) -> Self {
        HeldAlert { schema: HELD_OUTPUT_SCHEMA.into(), bodies }
    }
}

/// A hold as it is stored. Bounded: at most `MAX_TARGETS` items of bounded strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    pub key: String,
    pub integration_id: String,
    pub dedup_key: String,
    /// The alert's items as planned; a pending one's id is its job's key.
    pub items: Vec<EvidenceItem>,
    /// The held alert's messages.
    pub held: ObjectRef,
    pub created_at: GraphTime,
    /// The alert goes out at the latest then.
    pub deadline: GraphTime,
    /// A step claimed the release then (the claim lapses after the processor's claim time).
    #[serde(default)]
    pub releasing: Option<GraphTime>,
    pub released_at: Option<GraphTime>,
    /// The jobs whose end the released alert carried (they publish no update of their own).
    pub included: Vec<String>,
}

impl HoldRecord {
    /// The jobs the hold waits for.
    pub fn pending_jobs(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter(|i| !i.is_final()).map(|i| i.id.as_str())
    }

    /// The items with each job's item as it now stands (`jobs`: the jobs read, by key; a job
    /// that is gone (expired) stays as it was listed).
    pub fn current_items(&self, jobs: &[EvidenceItem]) -> Vec<EvidenceItem> {
        self.items.iter().map(|i| jobs.iter().find(|j| j.id == i.id).cloned().unwrap_or_else(|| i.clone())).collect()
    }

    /// Whether the alert goes out now.
    pub fn due(&self, items: &[EvidenceItem], now: GraphTime) -> bool {
        now >= self.deadline || items.iter().all(EvidenceItem::is_final)
    }
}

/// The held messages with the evidence as it stands, each at most `max_bytes` once escaped for
/// SQS: the v1 message's `processing.evidence`, the OCSF finding's `evidences` and
/// `unmapped.m365ingest_evidence`. A retrieved email's headers are dropped first when a
/// message would be too large (they are in the stored `.eml`); `None` when it is still too
/// large or a message is not one this processor rendered: the held messages then go out as they
/// are, with their items pending, and every item follows as an update.
pub fn release_bodies(held: &HeldAlert, items: &[EvidenceItem], released_at: GraphTime, max_bytes: usize) -> Option<Vec<String>> {
    let fits = |items: &[EvidenceItem]| -> Option<Vec<String>> {
        held.bodies
            .iter()
            .map(|body| {
                let mut doc: Value = serde_json::from_str(body).ok()?;
                let mut retrieval = EvidenceRetrieval::of_items(items.to_vec());
                retrieval.delivery = Some("held".into());
                retrieval.released_at = Some(released_at);
                if doc["schema"] == OUTPUT_SCHEMA {
                    doc.get_mut("processing")?.as_object_mut()?.insert("evidence".into(), serde_json::to_value(retrieval).ok()?);
                } else if doc["class_uid"] == 2004 {
                    // Rendered with the items pending: those are replaced by the items as they stand.
                    if let Some(e) = doc.get_mut("evidences").and_then(Value::as_array_mut) {
                        e.retain(|x| !items.iter().any(|i| x["uid"] == i.id.as_str()));
                    }
                    ocsf::attach_evidence(&mut doc, &retrieval)?;
                } else {
                    return None;
                }
                let text = escape_for_sqs(doc.to_string());
                (text.len() <= max_bytes).then_some(text)
            })
            .collect()
    };
    fits(items).or_else(|| {
        let bare: Vec<EvidenceItem> = items.iter().cloned().map(|i| EvidenceItem { headers: None, ..i }).collect();
        fits(&bare)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::domain::evidence::hold::*;

    fn item(id: &str, status: &str) -> EvidenceItem {
        EvidenceItem { id: id.into(), kind: "file".into(), status: status.into(), path: Some("C:\\x\\a.exe".into()), ..Default::default() }
    }

    fn t0() -> GraphTime {
        GraphTime::from_unix_seconds(1_800_000_000)
    }

    fn hold(items: Vec<EvidenceItem>) -> HoldRecord {
        HoldRecord {
            key: hold_key("k"),
            integration_id: "i".into(),
            dedup_key: "k".into(),
            items,
            held: ObjectRef { bucket: "b".into(), key: "held/x.json".into(), size: 1, sha256: "0".repeat(64), content_type: None },
            created_at: t0(),
            deadline: t0().plus(Duration::from_secs(600)),
            releasing: None,
            released_at: None,
            included: Vec::new(),
        }
    }

    #[test]
    fn a_hold_waits_for_its_pending_jobs_until_its_deadline() {
        let h = hold(vec![item("k/evidence/1", "pending"), item("k/evidence/2", "disabled")]);
        assert_eq!(h.pending_jobs().collect::<Vec<_>>(), ["k/evidence/1"]);
        let now = h.current_items(&[]);
        assert_eq!(now, h.items, "a job not read stays as listed");
        assert!(!h.due(&now, t0()));
        assert!(h.due(&now, h.deadline), "the deadline releases it, pending or not");
        let ended = h.current_items(&[item("k/evidence/1", "retrieved")]);
        assert_eq!(ended[0].status, "retrieved");
        assert!(h.due(&ended, t0()));
    }

    #[test]
    fn released_messages_carry_the_items_as_they_stand_in_both_formats() {
        let v1 = serde_json::json!({"schema": OUTPUT_SCHEMA, "processing": {"evidence": {"status": "pending"}}}).to_string();
        let finding = serde_json::json!({"class_uid": 2004, "unmapped": {"a": 1}}).to_string();
        let held = HeldAlert::new(vec![v1, finding]);
        let items = [item("k/evidence/1", "retrieved"), item("k/evidence/2", "pending")];
        let out = release_bodies(&held, &items, t0(), 256 * 1024).unwrap_or_default();
        assert_eq!(out.len(), 2);
        let v1: Value = serde_json::from_str(&out[0]).unwrap_or_default();
        let ev = &v1["processing"]["evidence"];
        assert_eq!((ev["status"].as_str(), ev["delivery"].as_str()), (Some("pending"), Some("held")));
        assert_eq!(ev["items"][0]["status"], "retrieved");
        let f: Value = serde_json::from_str(&out[1]).unwrap_or_default();
        assert_eq!(f["evidences"].as_array().map(Vec::len), Some(2));
        assert_eq!(f["unmapped"]["a"], 1, "the finding's own unmapped fields stay");
        assert_eq!(f["unmapped"]["m365ingest_evidence"]["items"][1]["status"], "pending");
    }

    #[test]
    fn headers_go_first_and_a_message_still_too_large_is_released_as_it_was() {
        let v1 = serde_json::json!({"schema": OUTPUT_SCHEMA, "processing": {}}).to_string();
        let held = HeldAlert::new(vec![v1]);
        let headers = crate::domain::email::section::EmailHeaders { subject: Some("s".repeat(2_000)), ..Default::default() };
        let mut email = item("k/evidence/1", "retrieved");
        email.headers = Some(headers);
        let out = release_bodies(&held, &[email.clone()], t0(), 1_500).unwrap_or_default();
        assert_eq!(out.len(), 1, "fits without the headers");
        assert!(!out[0].contains("sss"));
        assert_eq!(release_bodies(&held, &[email], t0(), 200), None);
        assert_eq!(release_bodies(&HeldAlert::new(vec!["{}".into()]), &[], t0(), 1_000), None, "not a message of ours");
    }
}
