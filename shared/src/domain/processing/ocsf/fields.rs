//! The parts every OCSF finding shares: the version, a null-free JSON object builder, times,
//! the finding head (class, activity, type) and the severity, status and verdict captions.

use serde_json::{Map, Value};

use crate::domain::time::GraphTime;

pub const OCSF_VERSION: &str = "1.8.0";

pub(super) fn ms(s: Option<&str>) -> Option<i64> {
    s.and_then(|s| GraphTime::parse(s).ok()).map(|t| t.ticks() / 10_000)
}

/// A JSON object that leaves out absent values (OCSF rejects nulls).
pub(super) struct Obj(Map<String, Value>);

impl Obj {
    pub(super) fn new() -> Self {
        Obj(Map::new())
    }
    pub(super) fn set(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.0.insert(k.into(), v.into());
        self
    }
    pub(super) fn opt<T: Into<Value>>(mut self, k: &str, v: Option<T>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v.into());
        }
        self
    }
    pub(super) fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A finding's activity: Close once closed, Create while never updated, Update otherwise.
pub(super) fn lifecycle(closed: bool, created: Option<&str>, updated: Option<&str>) -> (u8, &'static str) {
    if closed {
        (3, "Close")
    } else if created.is_some() && ms(created) == ms(updated) {
        (1, "Create")
    } else {
        (2, "Update")
    }
}

/// The attributes a finding of class `class` opens with: its category, class, activity and
/// type, and its severity, status and verdict by id and caption.
pub(super) fn finding_head(class: (u32, &str), activity: (u8, &str), severity: (u8, &str), status: (u8, &str), verdict: (u8, &str)) -> Obj {
    let ((class_uid, class_name), (activity_id, activity_name)) = (class, activity);
    Obj::new()
        .set("activity_id", activity_id)
        .set("activity_name", activity_name)
        .set("category_uid", 2)
        .set("category_name", "Findings")
        .set("class_uid", class_uid)
        .set("class_name", class_name)
        .set("type_uid", class_uid * 100 + u32::from(activity_id))
        .set("type_name", format!("{class_name}: {activity_name}"))
        .set("severity_id", severity.0)
        .set("severity", severity.1)
        .set("status_id", status.0)
        .set("status", status.1)
        .set("verdict_id", verdict.0)
        .set("verdict", verdict.1)
}

pub(super) fn severity(s: Option<&str>) -> (u8, &'static str) {
    match s {
        Some("informational") => (1, "Informational"),
        Some("low") => (2, "Low"),
        Some("medium") => (3, "Medium"),
        Some("high") => (4, "High"),
        _ => (0, "Unknown"),
    }
}

pub(super) fn status(s: Option<&str>) -> (u8, &'static str) {
    match s {
        Some("new") => (1, "New"),
        Some("inProgress") => (2, "In Progress"),
        Some("resolved") => (4, "Resolved"),
        _ => (0, "Unknown"),
    }
}

pub(super) fn verdict(v: Option<&str>) -> (u8, &'static str) {
    match v {
        Some("falsePositive") => (1, "False Positive"),
        Some("truePositive") | Some("malicious") => (2, "True Positive"),
        Some("suspicious") => (4, "Suspicious"),
        Some("informationalExpectedActivity") | Some("noThreatsFound") => (5, "Benign"),
        _ => (0, "Unknown"),
    }
}

/// An address as OCSF's email_t takes it (local part of the allowed characters, `@`, a
/// dotted domain); anything else is left out rather than failing the finding.
pub(super) fn address(s: &str) -> Option<String> {
    let (local, domain) = s.split_once('@')?;
    let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+,-./=?^_`{|}~".contains(&b));
    let (first, rest) = domain.split_once('.')?;
    let label = |t: &str, dots: bool| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || (dots && b == b'.'));
    (local_ok && label(first, false) && label(rest, true)).then(|| s.to_owned())
}
