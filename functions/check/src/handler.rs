//! Decodes the invocation, runs Test & Save, answers with the report (never an error: a
//! failed check is an answer the caller shows, not a retryable failure).

use lambda_runtime::{Diagnostic, LambdaEvent};
use m365_ingest::app::check::{Checker, Report};
use m365_ingest::ports::{IntegrationStore, MicrosoftProbe, SecretSource, SecretWriter};
use m365_ingest::GraphTime;
use serde_json::Value;

pub async fn handle<M, S, I, W>(app: &Checker<M, S, I, W>, event: LambdaEvent<Value>) -> Result<Report, Diagnostic>
where
    M: MicrosoftProbe,
    S: SecretSource,
    I: IntegrationStore,
    W: SecretWriter,
{
    let report = m365_ingest::lambda::check::handle(app, &event.payload, GraphTime::now()).await;
    lambda_runtime::tracing::info!(
        integration = %report.integration_id,
        passed = report.passed,
        saved = report.saved.as_ref().map(|s| s.revision),
        "test and save"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use m365_ingest::adapters::graph::{HttpGraphApi, HttpSettings, RetryPolicy};
    use m365_ingest::adapters::local::{MemoryIntegrationStore, MemorySecrets};
    use m365_ingest::ports::IntegrationStore;
    use serde_json::json;
    use tenant_sim::scenario::{ClockSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
    use tenant_sim::{Scenario, Simulator};

    async fn app(sim: &Simulator) -> Checker<HttpGraphApi, MemorySecrets, MemoryIntegrationStore, MemorySecrets> {
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        Checker {
            microsoft: HttpGraphApi::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
            secrets: MemorySecrets::new(),
            store: MemoryIntegrationStore::new(),
            writer: MemorySecrets::new(),
        }
    }

    fn event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    fn config() -> Value {
        json!({"version": 1, "id": "contoso", "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID, "secret_ref": "m365-ingest/contoso"})
    }

    #[tokio::test]
    async fn a_passing_request_is_saved_and_answered_without_the_secret() {
        let sim = Simulator::start(Scenario {
            clock: ClockSpec { start: Some("2026-11-26T12:00:00Z".into()), fixed: true },
            ..Scenario::default()
        })
        .await
        .unwrap();
        let app = app(&sim).await;
        let r = handle(&app, event(json!({"config": config(), "credentials": {"client_secret": DEFAULT_CLIENT_SECRET}}))).await.unwrap();
        assert!(r.passed, "{}", r.to_text());
        assert_eq!(r.saved.as_ref().map(|s| s.revision), Some(1));
        assert_eq!(app.store.get("contoso").await.unwrap().map(|r| r.revision), Some(1));
        let answer = serde_json::to_string(&r).unwrap();
        assert!(!answer.contains(DEFAULT_CLIENT_SECRET));
        assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["features"][0]["status"], "ok");
    }

    #[tokio::test]
    async fn bad_requests_name_the_field() {
        let sim = Simulator::start(Scenario::default()).await.unwrap();
        let app = app(&sim).await;
        for (payload, field) in [
            (json!({"config": config(), "save": "maybe"}), "save"),
            (json!({"config": config(), "credentials": {"client_secret": "x", "private_key_pem": "y"}}), "credentials"),
            (json!({"config": {"version": 1, "id": "x"}}), "config.(document)"),
            (json!({"config": config(), "credential": {}}), "credential"),
        ] {
            let r = handle(&app, event(payload.clone())).await.unwrap();
            assert!(!r.passed);
            assert_eq!(r.problems[0].field, field, "{payload}");
            assert!(!serde_json::to_string(&r).unwrap().contains("\"y\""));
        }
        assert!(app.store.list().await.unwrap().is_empty());
    }
}
