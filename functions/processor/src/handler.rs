//! Decodes the SQS batch, processes it, reports the failed message ids; or, on the hourly
//! schedule's `{"sweep": "evidence"}`, drives the evidence jobs past their deadline to their end.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use m365_ingest::lambda::processor::ProcessorApp;
use m365_ingest::lambda::telemetry;
use m365_ingest::ports::{Clock, IntegrationSource, ProcessPorts};

/// The hours of deadlines each sweep reads back: an outage of up to three days is caught up.
const SWEEP_HOURS: u32 = 72;

pub async fn handle<P: ProcessPorts, I: IntegrationSource>(
    app: &ProcessorApp<P, I>,
    event: LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, Diagnostic> {
    let permanent = |e: String| Diagnostic { error_type: "Permanent".into(), error_message: e };
    if event.payload.get("sweep").is_some() {
        if event.payload["sweep"] != "evidence" {
            return Err(permanent(format!("unknown sweep {}: the schedule sends {{\"sweep\": \"evidence\"}}", event.payload["sweep"])));
        }
        let moved =
            app.processor.sweep_evidence(SWEEP_HOURS).await.map_err(|e| Diagnostic { error_type: "Retryable".into(), error_message: e })?;
        let now = app.processor.clock.now();
        telemetry::emit(&[telemetry::record(
            &[("Function", "processor")],
            &[("EvidenceJobsSwept", moved as f64, "Count")],
            &[],
            now.ticks() / 10_000,
        )]);
        return Ok(serde_json::json!({"swept": moved}));
    }
    let (payload, context) = event.into_parts();
    let batch: SqsEvent = serde_json::from_value(payload).map_err(|e| permanent(format!("neither an SQS batch nor a sweep: {e}")))?;
    let response = handle_batch(app, LambdaEvent::new(batch, context)).await?;
    serde_json::to_value(response).map_err(|e| permanent(e.to_string()))
}

pub async fn handle_batch<P: ProcessPorts, I: IntegrationSource>(
    app: &ProcessorApp<P, I>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Diagnostic> {
    // The invocation's deadline as an Instant (the runtime gives epoch milliseconds).
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let ends = std::time::Instant::now() + std::time::Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
    match app.handle_until(event.payload, Some(ends)).await {
        Ok((response, counts)) => {
            telemetry::emit(&telemetry::process_records(&counts, app.processor.clock.now()));
            Ok(response)
        }
        Err(e) => {
            Err(Diagnostic { error_type: if e.is_retryable() { "Retryable" } else { "Permanent" }.into(), error_message: e.to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::sqs::SqsMessage;
    use lambda_runtime::Context;
    use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryDedupStore, StaticIntegrations};
    use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
    use m365_ingest::domain::envelope::{dedup_key, Envelope, INTAKE_SCHEMA};
    use m365_ingest::domain::integration::Integration;
    use m365_ingest::ports::SystemClock;
    use m365_ingest::{GraphTime, Source};
    use serde_json::value::RawValue;

    use super::*;

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    fn envelope(alert: &serde_json::Value) -> String {
        let version = GraphTime::parse(alert["lastUpdateDateTime"].as_str().unwrap()).unwrap();
        let id = alert["id"].as_str().unwrap();
        serde_json::to_string(&Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: "contoso".into(),
            tenant_id: "t".into(),
            source: Source::DefenderAlerts,
            id: id.into(),
            version,
            dedup_key: dedup_key(Source::DefenderAlerts, "t", id, version),
            polled_at: version,
            object: Some(RawValue::from_string(alert.to_string()).unwrap()),
            object_ref: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn reports_only_the_failed_message_ids() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list.json"))
                .unwrap();
        let alert = &sample["value"][0];
        let dir = tempfile::tempdir().unwrap();
        let output = MemoryAlertQueue::new();
        let app = ProcessorApp {
            processor: Processor::new(
                MemoryDedupStore::new(),
                output,
                DirArtifactStore::new(dir.path().to_owned()),
                SystemClock,
                ProcessSettings::default(),
            ),
            integrations: StaticIntegrations(vec![Integration::new(
                "contoso",
                "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
                "0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6",
                "s",
            )]),
            cache: m365_ingest::app::integration_cache::IntegrationCache::new(std::time::Duration::from_secs(60)),
        };
        let mut event = SqsEvent::default();
        event.records = vec![record("good", &envelope(alert)), record("bad", "not json"), record("again", &envelope(alert))];
        let r = handle_batch(&app, LambdaEvent::new(event, Context::default())).await.unwrap();
        let mut failed: Vec<&str> = r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        failed.sort_unstable();
        // The second copy of one alert version waits on the first's claim instead of publishing it twice.
        assert_eq!(failed, vec!["again", "bad"]);
        assert_eq!(app.processor.output.len(), 1);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["batchItemFailures"].as_array().unwrap().iter().any(|f| f["itemIdentifier"] == "bad"));
        // Redelivered, it finds the version published and is done.
        let mut event = SqsEvent::default();
        event.records = vec![record("again", &envelope(alert))];
        let r = handle_batch(&app, LambdaEvent::new(event, Context::default())).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
        assert_eq!(app.processor.output.len(), 1);
        // The function's event is either an SQS batch or the schedule's sweep.
        let mut event = SqsEvent::default();
        event.records = vec![record("bad", "not json")];
        let answer = handle(&app, LambdaEvent::new(serde_json::to_value(&event).unwrap(), Context::default())).await.unwrap();
        assert_eq!(answer["batchItemFailures"][0]["itemIdentifier"], "bad");
        let e = handle(&app, LambdaEvent::new(serde_json::json!({"sweep": "everything"}), Context::default())).await.unwrap_err();
        assert!(e.error_message.contains("unknown sweep"), "{}", e.error_message);
        let e = handle(&app, LambdaEvent::new(serde_json::json!({"sweep": "evidence"}), Context::default())).await.unwrap_err();
        assert!(
            e.error_message.contains("no evidence retrieval"),
            "a processor without evidence has nothing to sweep: {}",
            e.error_message
        );
    }
}
