//! Whether a user is away at the alert's time: automatic replies (`mailboxSettings`), the
//! calendar around the alert (`getSchedule`) and presence, as the user's context keeps them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{flag, text};
use crate::domain::time::GraphTime;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReplies {
    /// disabled, alwaysEnabled or scheduled.
    pub status: Option<String>,
    pub external_audience: Option<String>,
    pub scheduled_start: Option<String>,
    pub scheduled_end: Option<String>,
    /// Whether replies were on at the alert's time; None when the schedule is in a time zone
    /// other than UTC (Graph gives the mailbox's own zone, which is not converted here).
    pub active_at_alert: Option<bool>,
    pub internal_reply: Option<String>,
}

/// A `dateTimeTimeZone` as a time, when its zone is UTC.
fn utc_time(v: &Value) -> Option<GraphTime> {
    let zone = v.get("timeZone").and_then(Value::as_str)?;
    if !zone.eq_ignore_ascii_case("UTC") {
        return None;
    }
    let t = v.get("dateTime").and_then(Value::as_str)?;
    let t = t.trim_end_matches('Z');
    let (main, frac) = t.split_once('.').unwrap_or((t, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(7).collect();
    GraphTime::parse(&format!("{main}.{frac}Z")).ok()
}

pub fn auto_replies_of(v: &Value, at: GraphTime) -> AutoReplies {
    let status = text(v, "/status");
    let start = v.get("scheduledStartDateTime");
    let end = v.get("scheduledEndDateTime");
    let active_at_alert = match status.as_deref() {
        Some("disabled") => Some(false),
        Some("alwaysEnabled") => Some(true),
        Some("scheduled") => match (start.and_then(utc_time), end.and_then(utc_time)) {
            (Some(s), Some(e)) => Some(s <= at && at < e),
            _ => None,
        },
        _ => None,
    };
    AutoReplies {
        status,
        external_audience: text(v, "/externalAudience"),
        scheduled_start: start.and_then(|s| text(s, "/dateTime")),
        scheduled_end: end.and_then(|s| text(s, "/dateTime")),
        active_at_alert,
        internal_reply: text(v, "/internalReplyMessage"),
    }
}

/// How long each digit of getSchedule's `availabilityView` covers, as asked.
pub const SCHEDULE_INTERVAL_MINUTES: u64 = 15;
/// Calendar items kept per user.
pub const MAX_SCHEDULE_ITEMS: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAtAlert {
    /// free, tentative, busy, oof, workingElsewhere or unknown, at the alert's time.
    pub availability_at_alert: String,
    /// Out of office or working elsewhere at the alert's time: a sign of travel.
    pub away_at_alert: bool,
    pub items: Vec<ScheduleItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleItem {
    pub status: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Left out of private items.
    pub location: Option<String>,
}

/// One `scheduleInformation` of getSchedule asked from `from` in UTC with
/// [`SCHEDULE_INTERVAL_MINUTES`]: the availability at `at` (calendar-getschedule.md: the view
/// is one digit per interval, 0 free, 1 tentative, 2 busy, 3 oof, 4 working elsewhere).
pub fn schedule_of(v: &Value, from: GraphTime, at: GraphTime) -> ScheduleAtAlert {
    let view = v.get("availabilityView").and_then(Value::as_str).unwrap_or_default();
    let slot = (at.since(from).as_secs() / (SCHEDULE_INTERVAL_MINUTES * 60)) as usize;
    let availability = match view.as_bytes().get(slot) {
        Some(b'0') => "free",
        Some(b'1') => "tentative",
        Some(b'2') => "busy",
        Some(b'3') => "oof",
        Some(b'4') => "workingElsewhere",
        _ => "unknown",
    };
    let items = v
        .get("scheduleItems")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .take(MAX_SCHEDULE_ITEMS)
                .map(|i| ScheduleItem {
                    status: text(i, "/status"),
                    start: i.get("start").and_then(|s| text(s, "/dateTime")),
                    end: i.get("end").and_then(|s| text(s, "/dateTime")),
                    location: if flag(i, "/isPrivate") == Some(true) { None } else { text(i, "/location") },
                })
                .collect()
        })
        .unwrap_or_default();
    ScheduleAtAlert {
        availability_at_alert: availability.to_owned(),
        away_at_alert: matches!(availability, "oof" | "workingElsewhere"),
        items,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub availability: Option<String>,
    pub activity: Option<String>,
    pub out_of_office: Option<bool>,
    pub work_location: Option<String>,
}

pub fn presence_of(v: &Value) -> Presence {
    Presence {
        availability: text(v, "/availability"),
        activity: text(v, "/activity"),
        out_of_office: flag(v, "/outOfOfficeSettings/isOutOfOffice"),
        work_location: text(v, "/workLocation/workLocationType"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::domain::processing::context::calendar::*;
    use crate::domain::processing::context::MAX_TEXT;

    fn t(s: &str) -> GraphTime {
        GraphTime::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_schedule_reads_the_digit_at_the_alert_time_and_hides_private_locations() {
        let v = json!({"availabilityView": "00340", "scheduleItems": [
            {"isPrivate": false, "status": "oof", "location": "Lisbon", "start": {"dateTime": "2026-11-27T10:30:00.0000000", "timeZone": "UTC"}, "end": {"dateTime": "2026-11-27T11:00:00.0000000", "timeZone": "UTC"}},
            {"isPrivate": true, "status": "busy", "location": "Clinic", "start": {"dateTime": "2026-11-27T11:00:00.0000000", "timeZone": "UTC"}}
        ]});
        let from = t("2026-11-27T10:00:00.0000000Z");
        let s = schedule_of(&v, from, t("2026-11-27T10:35:00.0000000Z"));
        assert_eq!((s.availability_at_alert.as_str(), s.away_at_alert), ("oof", true));
        assert_eq!(s.items[0].location.as_deref(), Some("Lisbon"));
        assert_eq!(s.items[1].location, None, "private");
        assert_eq!(schedule_of(&v, from, t("2026-11-27T10:50:00.0000000Z")).availability_at_alert, "workingElsewhere");
        assert_eq!(schedule_of(&v, from, t("2026-11-27T12:00:00.0000000Z")).availability_at_alert, "unknown", "past the view");
    }

    #[test]
    fn auto_replies_are_active_only_inside_a_utc_schedule() {
        let at = t("2026-11-27T10:00:00.0000000Z");
        let sched = |zone: &str| {
            json!({"status": "scheduled", "externalAudience": "all",
                "scheduledStartDateTime": {"dateTime": "2026-11-26T00:00:00", "timeZone": zone},
                "scheduledEndDateTime": {"dateTime": "2026-11-30T00:00:00.0000000", "timeZone": zone},
                "internalReplyMessage": "x".repeat(2_000)})
        };
        let a = auto_replies_of(&sched("UTC"), at);
        assert_eq!(a.active_at_alert, Some(true));
        assert_eq!(a.internal_reply.map(|r| r.len()), Some(MAX_TEXT), "cut");
        assert_eq!(auto_replies_of(&sched("Pacific Standard Time"), at).active_at_alert, None, "not converted");
        assert_eq!(auto_replies_of(&json!({"status": "disabled"}), at).active_at_alert, Some(false));
    }

    #[test]
    fn the_documented_presence_sample_shapes_as_expected() {
        let presence: Value =
            serde_json::from_str(include_str!("../../../../tests/fixtures/microsoft-docs/graph_presences_by_userid.json"))
                .unwrap_or_default();
        assert_eq!(presence_of(&presence["value"][1]).availability.as_deref(), Some("Away"));
    }
}
