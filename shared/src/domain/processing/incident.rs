//! Incidents as incidents (issue 30 §1): in incidents mode each incident version is a message of
//! its own, `m365-ingest.incident.v1` (beside the alerts, which go out as `m365-ingest.alert.v1`
//! as before), with the incident's severity, status, classification, determination, assignment,
//! tags, comments and last update, and its alerts **referenced** by id, version and the dedup key
//! of their own message (never copied: an alert's evidence, context and original are in its
//! message), each marked `published` or `dropped` with the filter's reason. The JSON Schema is
//! `shared/schemas/m365-ingest.incident.v1.schema.json`.
//!
//! Read from the incident leniently, field by field (security-incident.md; ms-apis.md §3): the
//! resource documents `customTags` and comments with `createdByDisplayName`/`createdDateTime`,
//! its samples `tags` and `createdBy`/`createdTime`; both are read. A field of an unexpected
//! type is read as absent, never fails the incident: no incident field can cost its alerts.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::source::Source;
use crate::domain::time::GraphTime;

pub const INCIDENT_SCHEMA: &str = "m365-ingest.incident.v1";
/// Alerts listed in one message at most (each a few hundred bytes): an incident of thousands of
/// alerts stays inside an SQS message; `alerts_total` says how many it has.
pub const MAX_LISTED_ALERTS: usize = 200;
/// The newest comments kept, each at most [`MAX_COMMENT_CHARS`]: a comment thread cannot outgrow
/// the message (`comments_total` says how many there are).
pub const MAX_COMMENTS: usize = 50;
pub const MAX_TEXT_CHARS: usize = 4_000;
pub const MAX_COMMENT_CHARS: usize = 1_000;
/// Tags kept at most, each at most 256 characters.
pub const MAX_TAGS: usize = 100;

/// The incident's own fields as the message carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentFields {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub classification: Option<String>,
    pub determination: Option<String>,
    /// Graph's "free editable text": copied as it is.
    pub assigned_to: Option<String>,
    /// `customTags` (or the samples' `tags`).
    pub tags: Vec<String>,
    pub system_tags: Vec<String>,
    /// The newest [`MAX_COMMENTS`], oldest first.
    pub comments: Vec<IncidentComment>,
    pub comments_total: usize,
    pub created_at: Option<String>,
    pub last_update_at: Option<String>,
    pub last_modified_by: Option<String>,
    pub resolving_comment: Option<String>,
    pub priority_score: Option<i64>,
    pub redirect_incident_id: Option<String>,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentComment {
    pub comment: String,
    pub created_by: Option<String>,
    pub created_at: Option<String>,
}

/// What became of one alert of the incident in this version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRef {
    pub id: String,
    pub title: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    /// Its `lastUpdateDateTime`, where it has a readable one.
    pub version: Option<GraphTime>,
    /// `published` (its message went out, now or for an earlier version of the incident) or
    /// `dropped` (a filter or the source's settings kept it back: `reason`, `detail`).
    pub decision: &'static str,
    /// The dedup key of its `m365-ingest.alert.v1` message, when published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AlertRef {
    pub fn published(alert: &crate::domain::graph_alert::GraphAlert, version: GraphTime, dedup_key: String) -> Self {
        AlertRef {
            id: alert.id.clone(),
            title: alert.title.as_deref().map(|t| clip(t, 500)),
            severity: alert.severity.clone(),
            status: alert.status.clone(),
            version: Some(version),
            decision: "published",
            dedup_key: Some(dedup_key),
            reason: None,
            detail: None,
        }
    }

    pub fn dropped(alert: &crate::domain::graph_alert::GraphAlert, version: Option<GraphTime>, reason: &str, detail: String) -> Self {
        AlertRef {
            id: alert.id.clone(),
            title: alert.title.as_deref().map(|t| clip(t, 500)),
            severity: alert.severity.clone(),
            status: alert.status.clone(),
            version,
            decision: "dropped",
            dedup_key: None,
            reason: Some(reason.to_owned()),
            detail: Some(clip(&detail, 500)),
        }
    }

    pub fn is_published(&self) -> bool {
        self.decision == "published"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentProcessing {
    pub processor: String,
    pub processed_at: GraphTime,
    pub notes: Vec<String>,
}

/// One incident version on the output.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentMessage {
    pub schema: &'static str,
    pub integration_id: String,
    pub tenant_id: String,
    pub source: Source,
    pub id: String,
    /// The incident's `lastUpdateDateTime`: this message describes that version.
    pub version: GraphTime,
    pub dedup_key: String,
    pub incident: IncidentFields,
    pub alerts: Vec<AlertRef>,
    pub alerts_total: usize,
    pub processing: IncidentProcessing,
    /// The incident as Graph returned it, without its `alerts` (each is in its own message), or
    /// None when `original_ref` holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_ref: Option<crate::domain::envelope::ObjectRef>,
}

impl IncidentMessage {
    pub fn to_json(&self) -> String {
        // Plain strings, numbers and a JSON value: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether this version goes out: any of its alerts passed the filters.
    pub fn any_published(alerts: &[AlertRef]) -> bool {
        alerts.iter().any(AlertRef::is_published)
    }
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(|s| clip(s, MAX_TEXT_CHARS))
}

fn strings(m: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    let list = m.get(key)?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).take(MAX_TAGS).map(|s| clip(s, 256)).collect())
}

impl IncidentFields {
    /// The incident's fields from Graph's object (its `alerts` are not read here).
    pub fn of(incident: &Map<String, Value>) -> Self {
        let comments: Vec<IncidentComment> = incident
            .get("comments")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_object)
                    .filter_map(|c| {
                        Some(IncidentComment {
                            comment: text(c, "comment").map(|t| clip(&t, MAX_COMMENT_CHARS))?,
                            created_by: text(c, "createdByDisplayName").or_else(|| text(c, "createdBy")),
                            created_at: text(c, "createdDateTime").or_else(|| text(c, "createdTime")),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let comments_total = comments.len();
        // Graph documents no order: the newest by their time (an unreadable time sorts first).
        let mut comments = comments;
        comments.sort_by_key(|c| c.created_at.as_deref().and_then(|t| GraphTime::parse(t).ok()));
        let comments = comments.split_off(comments.len().saturating_sub(MAX_COMMENTS));
        IncidentFields {
            id: text(incident, "id").unwrap_or_default(),
            display_name: text(incident, "displayName"),
            description: text(incident, "description"),
            summary: text(incident, "summary"),
            severity: text(incident, "severity"),
            status: text(incident, "status"),
            classification: text(incident, "classification"),
            determination: text(incident, "determination"),
            assigned_to: text(incident, "assignedTo"),
            tags: strings(incident, "customTags").or_else(|| strings(incident, "tags")).unwrap_or_default(),
            system_tags: strings(incident, "systemTags").unwrap_or_default(),
            comments,
            comments_total,
            created_at: text(incident, "createdDateTime"),
            last_update_at: text(incident, "lastUpdateDateTime"),
            last_modified_by: text(incident, "lastModifiedBy"),
            resolving_comment: text(incident, "resolvingComment"),
            priority_score: incident.get("priorityScore").and_then(Value::as_i64),
            redirect_incident_id: text(incident, "redirectIncidentId"),
            web_url: text(incident, "incidentWebUrl"),
        }
    }
}

/// The incident without its `alerts`, as the message's `original`.
pub fn without_alerts(incident: &Map<String, Value>) -> Value {
    Value::Object(incident.iter().filter(|(k, _)| k.as_str() != "alerts").map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[cfg(test)]
mod tests {
    use crate::domain::processing::incident::*;

    #[test]
    fn the_documented_sample_and_the_resource_names_both_read() {
        let sample: Value = serde_json::from_str(include_str!(
            "../../../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_incidents_list_expand_alerts.json"
        ))
        .unwrap_or_default();
        let m = sample.pointer("/value/0").and_then(Value::as_object).cloned().unwrap_or_default();
        let f = IncidentFields::of(&m);
        assert_eq!(f.id, "2972395");
        assert_eq!(f.classification.as_deref(), Some("truePositive"));
        assert_eq!(f.determination.as_deref(), Some("multiStagedAttack"));
        assert_eq!(f.assigned_to.as_deref(), Some("KaiC@contoso.onmicrosoft.com"));
        assert_eq!(f.tags, vec!["Demo"]);
        assert_eq!(f.system_tags, vec!["Defender Experts"]);
        assert_eq!(
            f.comments,
            vec![IncidentComment {
                comment: "Demo incident".into(),
                created_by: Some("DavidS@contoso.onmicrosoft.com".into()),
                created_at: Some("2021-09-30T12:07:37.2756993Z".into()),
            }]
        );
        assert!(without_alerts(&m).get("alerts").is_none());
        // The resource's own names, and fields of a type no document gives: read as absent.
        let odd = serde_json::json!({
            "id": "7", "customTags": ["a", 5], "priorityScore": "high", "assignedTo": {"x": 1},
            "comments": [{"comment": "c", "createdByDisplayName": "Ann", "createdDateTime": "2026-12-01T10:00:00Z"}, "text", null],
        });
        let f = IncidentFields::of(odd.as_object().unwrap_or(&Map::new()));
        assert_eq!((f.tags, f.priority_score, f.assigned_to), (vec!["a".to_owned()], None, None));
        assert_eq!(f.comments[0].created_by.as_deref(), Some("Ann"));
        assert_eq!(f.comments_total, 1);
    }

    #[test]
    fn a_long_thread_keeps_its_newest_comments_each_bounded() {
        let comments: Vec<Value> = (0..80)
            .rev()
            .map(|i| serde_json::json!({"comment": "x".repeat(10_000), "createdDateTime": format!("2026-12-01T10:{:02}:00Z", i % 60), "createdByDisplayName": format!("{i}")}))
            .collect();
        let m = serde_json::json!({"id": "1", "comments": comments});
        let f = IncidentFields::of(m.as_object().unwrap_or(&Map::new()));
        assert_eq!((f.comments.len(), f.comments_total), (MAX_COMMENTS, 80));
        assert!(f.comments.iter().all(|c| c.comment.chars().count() == MAX_COMMENT_CHARS));
    }
}
