//! The poller's input: `{"source": "defender_alerts"}` from the schedule's Input, or an
//! EventBridge event carrying it in `detail`.

use serde_json::Value;

use crate::domain::source::Source;
use crate::error::ConfigError;

pub fn source_of(event: &Value) -> Result<Source, ConfigError> {
    let named = |v: Option<&Value>| v.and_then(Value::as_str).and_then(|s| s.parse::<Source>().ok());
    named(event.get("source")).or_else(|| named(event.get("detail").and_then(|d| d.get("source")))).ok_or_else(|| ConfigError::Invalid {
        name: "event.source".into(),
        value: event.get("source").map(Value::to_string).unwrap_or_else(|| "(missing)".into()),
        hint: "give the schedule an Input of {\"source\": \"defender_alerts\"} or {\"source\": \"defender_incidents\"}".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_input_or_eventbridge_detail() {
        assert_eq!(source_of(&serde_json::json!({"source": "defender_alerts"})), Ok(Source::DefenderAlerts));
        let eb = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"source": "defender_incidents"}});
        assert_eq!(source_of(&eb), Ok(Source::DefenderIncidents));
        let e = source_of(&serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})).unwrap_err();
        assert!(e.to_string().contains("Input of {\"source\": \"defender_alerts\"}"));
    }
}
