//! Decodes the invocation, runs Test & Save, answers with the report (never an error: a
//! failed check is an answer the caller shows, not a retryable failure).

use lambda_runtime::{Diagnostic, LambdaEvent};
use m365_ingest::app::test_and_save::check::{Checker, Report};
use m365_ingest::lambda::check::Invocation;
use m365_ingest::lambda::telemetry;
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
    let invocation = Invocation { request_id: event.context.request_id.clone(), function_arn: event.context.invoked_function_arn.clone() };
    let report = m365_ingest::lambda::check::handle(app, &event.payload, &invocation, GraphTime::now()).await;
    telemetry::emit(&telemetry::check_records(&report, GraphTime::now()));
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
    use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
    use m365_ingest::adapters::local::{MemoryIntegrationStore, MemorySecrets};
    use m365_ingest::ports::IntegrationStore;
    use serde_json::json;
    use tenant_sim::scenario::{ClockSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
    use tenant_sim::{Scenario, Simulator};

    async fn app(sim: &Simulator) -> Checker<MicrosoftHttp, MemorySecrets, MemoryIntegrationStore, MemorySecrets> {
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        Checker {
            microsoft: MicrosoftHttp::new(&HttpSettings::simulator(sim.base_url(), sim.ca_pem()), RetryPolicy::quick()).unwrap(),
            secrets: MemorySecrets::new(),
            store: MemoryIntegrationStore::new(),
            writer: MemorySecrets::new(),
            secret_prefix: String::new(),
        }
    }

    fn event(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    fn creds() -> Value {
        json!({"client_secret": DEFAULT_CLIENT_SECRET})
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

        // The revision names the invocation (and the requester the caller states); a relaxation
        // must be named, and a name that is not a guard rail is a bad request.
        let mut ctx = lambda_runtime::Context::default();
        ctx.request_id = "4f2c-req".into();
        ctx.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:stack-CheckFunction".into();
        let mut enforce = config();
        enforce["features"] = json!({"remediation": true});
        enforce["remediation"] = json!({"mode": "enforce"});
        let r = handle(
            &app,
            LambdaEvent::new(json!({"config": enforce, "credentials": creds(), "requested_by": "alice@contoso.com"}), ctx.clone()),
        )
        .await
        .unwrap();
        assert!(r.saved.is_none() && r.unconfirmed_relaxations[0].field == "remediation.mode", "{}", r.to_text());
        let r = handle(&app, LambdaEvent::new(json!({"config": enforce, "credentials": creds(), "relax": ["everything"]}), ctx.clone()))
            .await
            .unwrap();
        assert_eq!(r.problems[0].field, "relax[0]");
        let payload =
            json!({"config": enforce, "credentials": creds(), "relax": ["remediation.mode"], "requested_by": "alice@contoso.com"});
        let r = handle(&app, LambdaEvent::new(payload, ctx)).await.unwrap();
        let saved = r.saved.as_ref().unwrap_or_else(|| panic!("{}", r.to_text()));
        assert_eq!(
            saved.saved_by,
            "check function arn:aws:lambda:eu-west-1:123456789012:function:stack-CheckFunction request 4f2c-req, \
             requested by alice@contoso.com (as the caller states)"
        );
        assert_eq!(app.store.get("contoso").await.unwrap().unwrap().provenance.unwrap().relaxed[0].field, "remediation.mode");
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

    /// A credential of the wrong type (a bare string, a number) is named, never echoed.
    #[tokio::test]
    async fn credentials_of_the_wrong_type_are_not_echoed() {
        let sim = Simulator::start(Scenario::default()).await.unwrap();
        let app = app(&sim).await;
        for (payload, field) in [
            (json!({"config": config(), "credentials": "Sup3r~Secret.Value"}), "credentials"),
            (json!({"config": config(), "credentials": {"client_secret": 8675309123_u64}}), "credentials"),
            (json!({"config": config(), "credentials": ["Sup3r~Secret.Value"]}), "credentials"),
        ] {
            let r = handle(&app, event(payload.clone())).await.unwrap();
            let text = serde_json::to_string(&r).unwrap() + &r.to_text();
            assert!(!r.passed);
            assert_eq!(r.problems[0].field, field, "{payload}");
            assert!(r.problems[0].problem.contains("given, expected"), "{}", r.problems[0].problem);
            assert!(!text.contains("Sup3r~Secret.Value") && !text.contains("8675309123"), "{text}");
        }
        assert!(sim.requests().all().is_empty(), "nothing was called");
    }

    #[tokio::test]
    async fn end_to_end_on_moto_the_aws_app_saves_only_a_passing_configuration() {
        use m365_ingest::adapters::aws::{load_sdk_config, AwsClients};
        use m365_ingest::config::CheckConfig;
        use m365_ingest::lambda::check::build_aws;

        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL: run `bash infra/scripts/test.sh`, which starts moto");
        assert!(endpoint.starts_with("http://127.0.0.1:"), "loopback only");
        m365_ingest::adapters::graph::settings::install_crypto_provider();
        let mut scenario = Scenario::default();
        scenario.tenants[0].apps[0].grants.remove("mdca");
        let sim = Simulator::start(scenario).await.unwrap();
        let clients = AwsClients::new(&load_sdk_config().await);
        let suffix = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        );
        let table = format!("check-state-{suffix}");
        m365_ingest::adapters::aws::create_state_table(&clients.dynamodb, &table).await.unwrap();
        let stack = m365_ingest::adapters::aws::GateStack::new(&load_sdk_config().await, &endpoint).await.unwrap();
        stack.register_named("StateTable", &table).await.unwrap();
        // Removed when the test ends, pass or fail.
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        let ca = ca_file.path().to_owned();
        sim.write_ca(&ca).unwrap();
        let env: std::collections::HashMap<&str, String> = [
            ("STATE_TABLE", table.clone()),
            ("LOGIN_BASE_URL", sim.base_url().to_owned()),
            ("GRAPH_BASE_URL", sim.base_url().to_owned()),
            ("MDE_BASE_URL", sim.base_url().to_owned()),
            ("EXCHANGE_BASE_URL", sim.base_url().to_owned()),
            ("CLOUD_APPS_BASE_URL", sim.base_url().to_owned()),
            ("EXTRA_CA_BUNDLE_FILE", ca.display().to_string()),
            ("ALLOW_NON_MICROSOFT_HOSTS", "true".to_owned()),
        ]
        .into();
        let settings = CheckConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
        // The check function's code under its role, as deployed.
        let app = build_aws(&settings, &stack.clients(m365_ingest::adapters::aws::Principal::Check)).unwrap();
        let secret = format!("m365-ingest/check-{suffix}");
        let mut doc = config();
        doc["secret_ref"] = json!(secret);
        let creds = json!({"client_secret": DEFAULT_CLIENT_SECRET});

        // Cloud Apps without admin consent: the report says so and nothing is written.
        let mut with_cloud_apps = doc.clone();
        with_cloud_apps["portal_url"] = json!("https://contoso.us2.portal.cloudappsecurity.com");
        with_cloud_apps["sources"] = json!({"cloud_apps": true});
        let r = handle(&app, event(json!({"config": with_cloud_apps, "credentials": creds}))).await.unwrap();
        assert!(!r.passed);
        assert!(r.to_text().contains("Grant admin consent"), "{}", r.to_text());
        assert!(clients.secrets.get_secret_value().secret_id(&secret).send().await.is_err(), "no secret written");
        assert!(app.store.get("contoso").await.unwrap().is_none(), "no record written");

        // Passing: the secret and revision 1; then the stored secret is tested and saved as revision 2.
        let r = handle(&app, event(json!({"config": doc, "credentials": creds}))).await.unwrap();
        assert!(r.passed, "{}", r.to_text());
        assert!(r.saved.as_ref().and_then(|s| s.secret.as_deref()).is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")));
        let stored = clients.secrets.get_secret_value().secret_id(&secret).send().await.unwrap();
        assert!(stored.secret_string().unwrap().contains(DEFAULT_CLIENT_SECRET));
        let r = handle(&app, event(json!({"config": doc}))).await.unwrap();
        assert_eq!(r.saved.map(|s| s.revision), Some(2));
        let r = handle(&app, event(json!({"config": doc, "save": "test"}))).await.unwrap();
        assert!(r.passed && r.saved.is_none());
        assert_eq!(app.store.get("contoso").await.unwrap().map(|r| r.revision), Some(2));
    }
}
