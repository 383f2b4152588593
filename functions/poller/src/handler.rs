//! Decodes the invocation, runs one poll pass until shortly before the deadline, reports.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Diagnostic, LambdaEvent};
use m365_ingest::lambda::poller::{PollResponse, PollerApp};
use m365_ingest::lambda::telemetry;
use m365_ingest::ports::{AlertQueue, ArtifactStore, Clock, CursorStore, GraphApi, IntegrationSource, SecretSource};
use serde_json::Value;

/// The invocation deadline as an `Instant` (the runtime gives epoch milliseconds).
fn deadline(ctx: &lambda_runtime::Context) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(ctx.deadline.saturating_sub(now_ms))
}

pub async fn handle<G, C, Q, A, S, K, I>(
    app: &PollerApp<G, C, Q, A, S, K, I>,
    event: LambdaEvent<Value>,
) -> Result<PollResponse, Diagnostic>
where
    G: GraphApi,
    C: CursorStore,
    Q: AlertQueue,
    A: ArtifactStore,
    S: SecretSource,
    K: Clock,
    I: IntegrationSource,
{
    let (payload, ctx) = event.into_parts();
    let response = app.handle(&payload, deadline(&ctx)).await.map_err(|e| Diagnostic {
        error_type: if e.is_retryable() { "Retryable" } else { "Permanent" }.into(),
        error_message: e.to_string(),
    })?;
    telemetry::emit(&telemetry::poll_records(
        response.source,
        &response.integrations,
        app.poller.clock.now(),
        response.graph_throttled,
        response.graph_retried,
    ));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lambda_runtime::Context;
    use m365_ingest::adapters::graph::{HttpGraphApi, HttpSettings, RetryPolicy};
    use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, StaticIntegrations, StaticSecretSource};
    use m365_ingest::app::poll::{Outcome, PollSettings, Poller};
    use m365_ingest::domain::integration::{Credential, Credentials, Integration};
    use m365_ingest::secret::Secret;
    use m365_ingest::GraphTime;
    use tenant_sim::scenario::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
    use tenant_sim::{Scenario, Simulator};

    use super::*;

    struct SimTime(Arc<Simulator>);
    impl Clock for SimTime {
        fn now(&self) -> GraphTime {
            GraphTime::from_ticks(self.0.clock().now().0)
        }
    }

    fn context(ms_left: u64) -> Context {
        let mut ctx = Context::default();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        ctx.deadline = now + ms_left;
        ctx
    }

    #[tokio::test]
    async fn a_scheduled_event_polls_every_integration_of_its_source() {
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        let mut scenario = Scenario::default();
        scenario.tenants[0].alerts.count = 60;
        let sim = Arc::new(Simulator::start(scenario).await.unwrap());
        let http = HttpSettings {
            login_base_url: sim.base_url().into(),
            graph_base_url: sim.base_url().into(),
            extra_ca_pem: Some(sim.ca_pem().into()),
            ..HttpSettings::default()
        };
        let creds = Credentials {
            tenant_id: DEFAULT_TENANT_ID.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
        };
        let dir = std::env::temp_dir().join(format!("poller-handler-{}", std::process::id()));
        let queue = Arc::new(MemoryAlertQueue::new());
        let mut incidents_one = Integration::new("second", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s");
        incidents_one.defender_mode = m365_ingest::domain::integration::DefenderMode::Incidents;
        let app = PollerApp {
            poller: Poller {
                graph: HttpGraphApi::new(&http, RetryPolicy::quick()).unwrap(),
                cursors: MemoryCursorStore::new(),
                queue: queue.clone(),
                artifacts: DirArtifactStore::new(dir),
                secrets: StaticSecretSource::new().with("s", creds),
                clock: SimTime(sim.clone()),
                settings: PollSettings::default(),
            },
            integrations: StaticIntegrations(vec![Integration::new("first", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s"), incidents_one]),
        };
        let event = serde_json::from_str(r#"{"source": "defender_alerts"}"#).unwrap();
        let r = handle(&app, LambdaEvent::new(event, context(60_000))).await.unwrap();
        assert_eq!(r.integrations.len(), 1, "only the alerts-mode integration");
        assert_eq!(r.integrations[0].outcome, Outcome::Completed);
        assert!(r.delivered > 0 && r.delivered == queue.len());
        assert_eq!(r.failed, 0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["integrations"][0]["outcome"], "completed");

        let bad = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let e = handle(&app, LambdaEvent::new(bad, context(60_000))).await.unwrap_err();
        assert_eq!(e.error_type, "Permanent");
        assert!(e.error_message.contains("Input of"));
    }

    /// The handler as deployed: AWS adapters on moto, integrations and secrets from their stores,
    /// the simulator throttling, failing and expiring tokens along the way.
    #[tokio::test]
    async fn end_to_end_on_moto_with_faults() {
        use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, DynamoIntegrations};
        use m365_ingest::config::PollerConfig;
        use m365_ingest::domain::envelope::Envelope;
        use m365_ingest::domain::integration_doc::IntegrationDoc;
        use m365_ingest::lambda::poller::build_aws;
        use tenant_sim::{FaultKind, FaultSpec};

        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
        assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        let mut scenario = Scenario::default();
        scenario.tenants[0].alerts.count = 80;
        scenario.faults = vec![
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Throttle { retry_after_secs: 1 }).on(&[1]),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::Status { status: 503, retry_after_secs: None }).on(&[3]),
            FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::ExpireToken).on(&[5]),
        ];
        let sim = Simulator::start(scenario).await.unwrap();
        let clients = AwsClients::new(&load_sdk_config().await);
        let suffix = format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos());
        let table = format!("state-{suffix}");
        m365_ingest::adapters::aws::create_state_table(&clients.dynamodb, &table).await.unwrap();
        let queue = clients.sqs.create_queue().queue_name(format!("intake-{suffix}")).send().await.unwrap().queue_url.unwrap();
        let bucket = format!("artifacts-{suffix}");
        clients.s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let secret = format!("m365-ingest/contoso-{suffix}");
        clients
            .secrets
            .create_secret()
            .name(&secret)
            .secret_string(format!(
                r#"{{"tenant_id":"{DEFAULT_TENANT_ID}","client_id":"{DEFAULT_CLIENT_ID}","client_secret":"{DEFAULT_CLIENT_SECRET}"}}"#
            ))
            .send()
            .await
            .unwrap();
        let mut doc = IntegrationDoc::new("contoso", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, &secret);
        doc.polling.lookback = m365_ingest::domain::duration_text::DurationText(Duration::from_secs(172_800));
        DynamoIntegrations::new(clients.dynamodb.clone(), &table).put(&doc).await.unwrap();
        let ca = std::env::temp_dir().join(format!("sim-ca-{suffix}.pem"));
        sim.write_ca(&ca).unwrap();
        let env: std::collections::HashMap<&str, String> = [
            ("STATE_TABLE", table.clone()),
            ("INTAKE_QUEUE_URL", queue.clone()),
            ("ARTIFACT_BUCKET", bucket),
            ("LOGIN_BASE_URL", sim.base_url().to_owned()),
            ("GRAPH_BASE_URL", sim.base_url().to_owned()),
            ("EXTRA_CA_BUNDLE_FILE", ca.display().to_string()),
            ("ALERT_PAGE_SIZE", "20".to_owned()),
        ]
        .into_iter()
        .collect();
        let mut config = PollerConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        // Real Retry-After values would make this test wait; the production policy's shape is kept.
        config.poll.safety_margin = Duration::from_secs(5);
        let app = build_aws(&config, &clients).unwrap();
        let event = serde_json::json!({"source": "defender_alerts"});
        let r = handle(&app, LambdaEvent::new(event, context(120_000))).await.unwrap();
        assert_eq!(r.failed, 0, "{r:?}");
        assert_eq!(r.integrations[0].outcome, Outcome::Completed, "{r:?}");
        let cut = GraphTime::from_ticks(sim.clock().now().0).minus(Duration::from_secs(300));
        let want: std::collections::BTreeSet<(String, String)> = sim
            .visible_alert_versions(DEFAULT_TENANT_ID)
            .into_iter()
            .filter(|(_, v)| GraphTime::from_ticks(v.0) < cut)
            .map(|(id, v)| (id, v.graph7()))
            .collect();
        let mut got = Vec::new();
        loop {
            let msgs = clients
                .sqs
                .receive_message()
                .queue_url(&queue)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                let e: Envelope = serde_json::from_str(m.body().unwrap()).unwrap();
                got.push((e.id, e.version.to_string()));
                clients.sqs.delete_message().queue_url(&queue).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
            }
        }
        assert_eq!(got.len(), want.len(), "each version once");
        assert_eq!(got.into_iter().collect::<std::collections::BTreeSet<_>>(), want);
        let log = sim.requests().matching("/v1.0/security/alerts_v2");
        assert!(log.iter().any(|r| r.status == 429) && log.iter().any(|r| r.status == 503) && log.iter().any(|r| r.status == 401));
    }
}
