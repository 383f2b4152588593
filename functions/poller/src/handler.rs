//! Runs the batch's poll jobs until shortly before the deadline; reports the jobs SQS should
//! deliver again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use m365_ingest::lambda::poller::PollerApp;
use m365_ingest::lambda::telemetry;
use m365_ingest::ports::{Clock, JobPorts};

/// The invocation deadline as an `Instant` (the runtime gives epoch milliseconds).
fn deadline(ctx: &lambda_runtime::Context) -> Instant {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    Instant::now() + Duration::from_millis(ctx.deadline.saturating_sub(now_ms))
}

pub async fn handle<P: JobPorts>(app: &PollerApp<P>, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Diagnostic> {
    let (payload, ctx) = event.into_parts();
    let r = app.handle(payload, deadline(&ctx)).await;
    let runs: Vec<_> = r.runs().cloned().collect();
    telemetry::emit(&telemetry::poll_records(&runs, app.poller.clock.now(), &r.calls));
    Ok(r.response)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_lambda_events::event::sqs::SqsMessage;
    use lambda_runtime::Context;
    use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
    use m365_ingest::adapters::local::{
        DirArtifactStore, MemoryAlertQueue, MemoryCursorStore, MemorySchedule, StaticIntegrations, StaticSecretSource,
    };
    use m365_ingest::app::integration_cache::IntegrationCache;
    use m365_ingest::app::polling::dispatch::PollJob;
    use m365_ingest::app::polling::poll::Poller;
    use m365_ingest::domain::integration::{Credential, Credentials, Integration};
    use m365_ingest::ports::{CursorKey, JobsWith, PollWith};
    use m365_ingest::secret::Secret;
    use m365_ingest::sources::settings::PollSettings;
    use m365_ingest::GraphTime;
    use m365_ingest::Source;
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

    fn job_record(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m
    }

    fn job(integration: &str, source: Source, at: GraphTime) -> String {
        serde_json::to_string(&PollJob::new(&CursorKey::live(integration, source), at)).unwrap()
    }

    type LocalJobs = JobsWith<
        PollWith<MicrosoftHttp, MemoryCursorStore, Arc<MemoryAlertQueue>, DirArtifactStore, StaticSecretSource, SimTime>,
        StaticIntegrations,
        MemorySchedule,
        MemoryAlertQueue,
    >;

    #[tokio::test]
    async fn a_batch_of_jobs_polls_each_pair_and_reports_only_what_failed() {
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        let mut scenario = Scenario::default();
        scenario.tenants[0].alerts.count = 60;
        let sim = Arc::new(Simulator::start(scenario).await.unwrap());
        let http = HttpSettings {
            login_base_url: sim.base_url().into(),
            graph_base_url: sim.base_url().into(),
            extra_ca_pem: Some(sim.ca_pem().into()),
            // Graph's pace (150 a minute) is not what this test is about; budget.rs tests it.
            graph_rate: None,
            ..HttpSettings::default()
        };
        let creds = Credentials {
            tenant_id: DEFAULT_TENANT_ID.into(),
            client_id: DEFAULT_CLIENT_ID.into(),
            credential: Credential::ClientSecret(Secret::new(DEFAULT_CLIENT_SECRET)),
        };
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(MemoryAlertQueue::new());
        let mut incidents_one = Integration::new("second", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s");
        incidents_one.defender_mode = m365_ingest::domain::integration::DefenderMode::Incidents;
        let app: PollerApp<LocalJobs> = PollerApp {
            poller: Poller {
                graph: MicrosoftHttp::new(&http, RetryPolicy::quick()).unwrap(),
                cursors: MemoryCursorStore::new(),
                queue: queue.clone(),
                artifacts: DirArtifactStore::new(dir.path().to_owned()),
                secrets: StaticSecretSource::new().with("s", creds),
                clock: SimTime(sim.clone()),
                settings: PollSettings::default(),
            },
            integrations: StaticIntegrations(vec![Integration::new("first", DEFAULT_TENANT_ID, DEFAULT_CLIENT_ID, "s"), incidents_one]),
            cache: IntegrationCache::new(Duration::from_secs(60)),
            schedule: MemorySchedule::new(),
            jobs: MemoryAlertQueue::new(),
            slice: Duration::from_secs(60),
        };
        let now = app.poller.clock.now();
        let mut event = SqsEvent::default();
        event.records = vec![
            job_record("a", &job("first", Source::DefenderAlerts, now)),
            job_record("i", &job("second", Source::DefenderIncidents, now)),
            job_record("garbage", "{\"source\": \"defender_alerts\"}"),
            job_record("gone", &job("removed", Source::DefenderAlerts, now)),
        ];
        let r = handle(&app, LambdaEvent::new(event, context(60_000))).await.unwrap();
        let failed: Vec<&str> = r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["garbage"], "a message that is not a poll job goes back to SQS (and on to the DLQ)");
        assert!(!queue.is_empty());
        for (id, source) in [("first", Source::DefenderAlerts), ("second", Source::DefenderIncidents)] {
            let key = CursorKey::live(id, source);
            // One interval after the run started (a moment after `now`: the simulator's clock runs).
            let next = app.schedule.when(&key).unwrap();
            assert!(
                next >= now.plus(Duration::from_secs(300)) && next < now.plus(Duration::from_secs(310)),
                "{key} due again one interval on"
            );
        }
        // The same jobs delivered again (SQS is at-least-once) find the pairs polled since.
        let before = queue.len();
        let mut event = SqsEvent::default();
        event.records = vec![job_record("a", &job("first", Source::DefenderAlerts, now))];
        let r = handle(&app, LambdaEvent::new(event, context(60_000))).await.unwrap();
        assert!(r.batch_item_failures.is_empty());
        assert_eq!(queue.len(), before, "a job delivered twice polls once");
    }

    /// As deployed: a saved integration is due at once; the dispatcher turns it into a job on
    /// the poll-jobs queue; the poller runs the job with every adapter on moto, the simulator
    /// throttling, failing and expiring tokens along the way; the pair is then due an interval on.
    #[tokio::test]
    async fn end_to_end_on_moto_with_faults() {
        use m365_ingest::adapters::aws::{load_sdk_config, AwsClients, DynamoIntegrations, GateStack, Principal};
        use m365_ingest::config::PollerConfig;
        use m365_ingest::domain::envelope::Envelope;
        use m365_ingest::domain::integration::doc::IntegrationDoc;
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
        let stack = GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
        let suffix = format!("{}-{}", std::process::id(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos());
        let table = format!("state-{suffix}");
        m365_ingest::adapters::aws::create_state_table(&clients.dynamodb, &table).await.unwrap();
        stack.register_named("StateTable", &table).await.unwrap();
        let queue = clients.sqs.create_queue().queue_name(format!("intake-{suffix}")).send().await.unwrap().queue_url.unwrap();
        stack.register_queue("IntakeQueue", &queue).await.unwrap();
        let jobs = clients.sqs.create_queue().queue_name(format!("jobs-{suffix}")).send().await.unwrap().queue_url.unwrap();
        stack.register_queue("PollJobsQueue", &jobs).await.unwrap();
        let bucket = format!("artifacts-{suffix}");
        clients.s3.create_bucket().bucket(&bucket).send().await.unwrap();
        stack.register_named("ArtifactBucket", &bucket).await.unwrap();
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
        doc.polling.interval = m365_ingest::domain::duration_text::DurationText(Duration::from_secs(60));
        doc.polling.lookback = m365_ingest::domain::duration_text::DurationText(Duration::from_secs(172_800));
        DynamoIntegrations::new(clients.dynamodb.clone(), &table).put(&doc).await.unwrap();
        // Removed when the test ends, pass or fail.
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        let ca = ca_file.path().to_owned();
        sim.write_ca(&ca).unwrap();
        let env: std::collections::HashMap<&str, String> = [
            ("STATE_TABLE", table.clone()),
            ("INTAKE_QUEUE_URL", queue.clone()),
            ("POLL_JOBS_QUEUE_URL", jobs.clone()),
            ("ARTIFACT_BUCKET", bucket),
            ("LOGIN_BASE_URL", sim.base_url().to_owned()),
            ("GRAPH_BASE_URL", sim.base_url().to_owned()),
            ("EXTRA_CA_BUNDLE_FILE", ca.display().to_string()),
            ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
            ("ALERT_PAGE_SIZE", "20".to_owned()),
        ]
        .into_iter()
        .collect();
        let mut config = PollerConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        // Real Retry-After values would make this test wait; the production policy's shape is kept.
        config.poll.safety_margin = Duration::from_secs(5);
        // Each function's code under its own role, as deployed.
        let app = build_aws(&config, &stack.clients(Principal::Poller)).unwrap();
        let dispatcher = m365_ingest::lambda::dispatch::build_aws(
            &m365_ingest::config::DispatchConfig::from_lookup(|k| env.get(k).cloned()).unwrap(),
            &stack.clients(Principal::Dispatch),
        );
        let tick = serde_json::json!({"source": "defender_alerts"});
        let d = m365_ingest::lambda::dispatch::handle(&dispatcher, &tick).await.unwrap();
        assert_eq!((d.due, d.enqueued), (1, 1), "{d:?}");
        let received = clients.sqs.receive_message().queue_url(&jobs).max_number_of_messages(10).send().await.unwrap();
        let mut event = SqsEvent::default();
        event.records = received.messages().iter().map(|m| job_record(m.message_id().unwrap(), m.body().unwrap())).collect();
        assert_eq!(event.records.len(), 1);
        let r = handle(&app, LambdaEvent::new(event, context(120_000))).await.unwrap();
        assert!(r.batch_item_failures.is_empty(), "{r:?}");
        let again = m365_ingest::lambda::dispatch::handle(&dispatcher, &tick).await.unwrap();
        assert_eq!((again.due, again.enqueued), (0, 0), "polled: due again one interval on, {again:?}");
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

        // The same integration with email submissions on: saved, dispatched and polled the same
        // way; hours later the ones under analysis come again with their verdict.
        doc.sources.email_submissions.enabled = true;
        DynamoIntegrations::new(clients.dynamodb.clone(), &table).put(&doc).await.unwrap();
        // A fresh instance: a warm one keeps the record it read for INTEGRATION_CACHE_SECS.
        let app = build_aws(&config, &clients).unwrap();
        // One scheduled tick of `source`: dispatched, its job run, its intake drained.
        let run_source = |source: Source| {
            let (dispatcher, clients, app, jobs, queue) = (&dispatcher, &clients, &app, &jobs, &queue);
            async move {
                let tick = serde_json::json!({ "source": source });
                let d = m365_ingest::lambda::dispatch::handle(dispatcher, &tick).await.unwrap();
                assert_eq!((d.due, d.enqueued), (1, 1), "{d:?}");
                let received = clients.sqs.receive_message().queue_url(jobs).max_number_of_messages(10).send().await.unwrap();
                let mut event = SqsEvent::default();
                event.records = received.messages().iter().map(|m| job_record(m.message_id().unwrap(), m.body().unwrap())).collect();
                let r = handle(app, LambdaEvent::new(event, context(120_000))).await.unwrap();
                assert!(r.batch_item_failures.is_empty(), "{r:?}");
                for m in received.messages() {
                    clients.sqs.delete_message().queue_url(jobs).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
                }
                let mut got: Vec<Envelope> = Vec::new();
                loop {
                    let msgs = clients
                        .sqs
                        .receive_message()
                        .queue_url(queue)
                        .max_number_of_messages(10)
                        .send()
                        .await
                        .unwrap()
                        .messages
                        .unwrap_or_default();
                    if msgs.is_empty() {
                        return got;
                    }
                    for m in msgs {
                        let e: Envelope = serde_json::from_str(m.body().unwrap()).unwrap();
                        assert_eq!(e.source, source);
                        got.push(e);
                        clients.sqs.delete_message().queue_url(queue).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
                    }
                }
            }
        };
        let submissions = || async {
            let got = run_source(Source::EmailSubmissions).await;
            got.into_iter()
                .map(|e| {
                    let o: serde_json::Value = serde_json::from_str(e.object.unwrap().get()).unwrap();
                    (e.id, o["status"].as_str().unwrap_or_default().to_owned())
                })
                .collect::<Vec<(String, String)>>()
        };
        let first = submissions().await;
        let cut = GraphTime::from_ticks(sim.clock().now().0);
        let due: std::collections::BTreeSet<String> = sim
            .submission_timeline(DEFAULT_TENANT_ID)
            .into_iter()
            .filter(|(_, c, v, _)| {
                GraphTime::from_ticks(c.0) >= cut.minus(Duration::from_secs(172_800))
                    && GraphTime::from_ticks(c.0) < cut.minus(Duration::from_secs(300))
                    && v.0 <= sim.clock().now().0
            })
            .map(|(id, ..)| id)
            .collect();
        assert_eq!(first.iter().map(|(id, _)| id.clone()).collect::<std::collections::BTreeSet<_>>(), due, "every due submission once");
        assert_eq!(first.len(), due.len());
        let pending: std::collections::BTreeSet<String> =
            first.iter().filter(|(_, s)| !matches!(s.as_str(), "succeeded" | "failed")).map(|(id, _)| id.clone()).collect();
        assert!(!pending.is_empty(), "some are still under analysis");
        // Seven hours on (Microsoft's clock; the schedule's is the wall clock, so the pair is
        // made due as its interval would have).
        sim.clock().advance_secs(7 * 3600);
        {
            use m365_ingest::ports::{CursorKey, ScheduleStore};
            let schedule = m365_ingest::adapters::aws::DynamoSchedule::new(clients.dynamodb.clone(), &table);
            schedule.set(&CursorKey::live("contoso", Source::EmailSubmissions), GraphTime::now()).await.unwrap();
        }
        let later = submissions().await;
        let verdicts: std::collections::BTreeSet<String> = later
            .iter()
            .filter(|(id, s)| pending.contains(id) && matches!(s.as_str(), "succeeded" | "failed"))
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(verdicts, pending, "each pending one again, with its verdict");

        // And with the phishing mailbox: each report delivered once, its reported email's MIME
        // in the artifact bucket (S3 on moto) under its SHA-256, as message/rfc822.
        doc.sources.email_submissions.enabled = false;
        doc.sources.phishing_mailbox =
            Some(m365_ingest::domain::integration::sections::MailboxDoc { address: "phish@contoso.onmicrosoft.com".into(), filter: None });
        DynamoIntegrations::new(clients.dynamodb.clone(), &table).put(&doc).await.unwrap();
        // The warm instance's cached record polls no mailbox: it is read again by its key.
        // The window is on the poller's clock (the wall clock); what is listed, on Microsoft's.
        let before = GraphTime::now();
        let reports = run_source(Source::PhishingMailbox).await;
        let after = GraphTime::now();
        let listed = |from: GraphTime, to: GraphTime| -> std::collections::BTreeSet<String> {
            sim.mailbox_timeline(DEFAULT_TENANT_ID)
                .into_iter()
                .filter(|(_, r, v, _)| {
                    let r = GraphTime::from_ticks(r.0);
                    r >= from.minus(Duration::from_secs(172_800)) && r < to.minus(Duration::from_secs(300)) && v.0 <= sim.clock().now().0
                })
                .map(|(id, ..)| id)
                .collect()
        };
        // Inside the run's window whenever it started, and nothing outside it.
        let (must, may) = (listed(after, before), listed(before, after));
        let got: std::collections::BTreeSet<String> = reports.iter().map(|e| e.id.clone()).collect();
        assert!(must.len() > 10, "{}", must.len());
        assert!(must.is_subset(&got) && got.is_subset(&may), "every due report: {must:?} {got:?}");
        assert_eq!(reports.len(), got.len(), "each once");
        for e in &reports {
            let note = m365_ingest::domain::polling::mailbox_report::note_of(e.object.as_ref().unwrap().get()).unwrap().unwrap();
            let mime = note.mime.expect("stored");
            let object = clients.s3.get_object().bucket(&mime.bucket).key(&mime.key).send().await.unwrap();
            assert_eq!(object.content_type(), Some("message/rfc822"));
            let bytes = object.body.collect().await.unwrap().into_bytes();
            assert_eq!(m365_ingest::adapters::local::sha256_hex(&bytes), mime.sha256);
            assert_eq!(note.parsed, Some(m365_ingest::domain::email::mime::parse(&bytes).unwrap()));
        }
    }
}
