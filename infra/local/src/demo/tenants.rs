//! The simulated tenants the demo runs against: their scenario (two tenants, a half-configured
//! app, some throttling and a token expiry), the simulator's clock, the Microsoft clients that
//! reach them, and Test & Save of the demo's integration documents.

use std::sync::Arc;

use m365_ingest::adapters::graph::{HttpSettings, MicrosoftHttp, RetryPolicy};
use m365_ingest::adapters::local::{MemoryIntegrationStore, MemorySecrets};
use m365_ingest::app::test_and_save::check::{Checker, CredentialInput, SaveMode};
use m365_ingest::domain::integration::doc::{self as integration_doc, IntegrationDoc};
use m365_ingest::domain::integration::{Credential, Credentials, Integration};
use m365_ingest::ports::{Clock, IntegrationSource};
use m365_ingest::secret::Secret;
use m365_ingest::GraphTime;
use tenant_sim::scenario::{AppSpec, CertificateSpec, SecretSpec, TenantSpec, DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID};
use tenant_sim::testing::ClientCertificate;
use tenant_sim::{FaultKind, FaultSpec, Scenario, Simulator};

use crate::args::DemoOptions;
use crate::Failure;

const FABRIKAM: &str = "0b1c2d3e-4f50-4617-8a9b-c0d1e2f3a4b5";
const FABRIKAM_CLIENT: &str = "7d6c5b4a-3928-4716-a5b4-c3d2e1f0a9b8";
/// A simulator fixture, not a credential.
const FABRIKAM_SECRET: &str = "sim~FabrikamSecret.5555555555";
/// A second app in contoso, registered with Graph's alert permission only.
const CONTOSO_SOC_CLIENT: &str = "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d";
const CONTOSO_SOC_SECRET: &str = "sim~ContosoSocSecret.777777777";

/// The poller reads the simulator's clock, so simulated time can pass between runs.
pub(super) struct SimClock(pub(super) Arc<Simulator>);

impl Clock for SimClock {
    fn now(&self) -> GraphTime {
        GraphTime::from_ticks(self.0.clock().now().0)
    }
}

/// The simulator's clock in Unix seconds: the demo moves simulated time on by hours, and a
/// client assertion must be valid at the simulator's "now", as it would be at Entra's.
fn sim_seconds(sim: &Arc<Simulator>) -> m365_ingest::adapters::graph::auth::AssertionClock {
    let sim = sim.clone();
    Arc::new(move || sim.clock().now().unix_seconds())
}

/// A Microsoft client for one part of the demo: every part counts against one budget per
/// tenant, as a deployment's functions share theirs (the DynamoDB budget), so a request one part
/// could have waited for is never sent into another part's 429.
pub(super) fn microsoft(sim: &Arc<Simulator>, http: &HttpSettings, policy: RetryPolicy) -> Result<MicrosoftHttp, Failure> {
    static DEPLOYMENT_BUDGET: std::sync::OnceLock<Arc<m365_ingest::adapters::graph::pacing::LocalBudget>> = std::sync::OnceLock::new();
    let budget = DEPLOYMENT_BUDGET.get_or_init(Default::default).clone();
    Ok(MicrosoftHttp::new(http, policy)
        .map_err(|e| Failure::Run(format!("HTTP client: {e}")))?
        .with_assertion_clock(sim_seconds(sim))
        .with_budget(budget))
}

pub(super) fn scenario(o: &DemoOptions, cert: &ClientCertificate) -> Scenario {
    let mut s = Scenario { seed: o.seed, ..Scenario::default() };
    // Exchange Online's app-only access is documented with a certificate (ms-apis.md §8).
    s.tenants[0].apps[0].certificates = vec![CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    s.tenants[0].alerts.count = o.alerts;
    s.tenants[0].alerts.incidents = (o.alerts / 4).max(1);
    // The restore's script is unsigned: contoso's admin turned on Advanced features → "Live
    // Response unsigned script execution", off by default (live-response.md), as Test & Save
    // says the restore needs.
    s.mde.unsigned_scripts = true;
    s.tenants[0].apps.push(AppSpec {
        client_id: CONTOSO_SOC_CLIENT.into(),
        display_name: "contoso SOC (half configured)".into(),
        secrets: vec![SecretSpec { value: CONTOSO_SOC_SECRET.into(), expires: None }],
        grants: [("graph".to_owned(), vec!["SecurityAlert.Read.All".to_owned()])].into(),
        ..AppSpec::default()
    });
    s.tenants.push(TenantSpec {
        id: FABRIKAM.into(),
        domain: "fabrikam.onmicrosoft.com".into(),
        apps: vec![AppSpec {
            client_id: FABRIKAM_CLIENT.into(),
            secrets: vec![SecretSpec { value: FABRIKAM_SECRET.into(), expires: None }],
            ..AppSpec::default()
        }],
        ..TenantSpec::default()
    });
    s.tenants[1].alerts.count = (o.alerts / 2).max(1);
    s.tenants[1].alerts.incidents = (o.alerts / 8).max(1);
    // What a real tenant does now and then: throttle, fail once, expire a token mid-run.
    s.faults = vec![
        FaultSpec::new("/v1.0/security/", FaultKind::Throttle { retry_after_secs: 1 }).on(&[1]),
        FaultSpec::new("/v1.0/security/", FaultKind::Status { status: 503, retry_after_secs: None }).on(&[4]),
        FaultSpec::new("/v1.0/security/alerts_v2", FaultKind::ExpireToken).on(&[3]),
    ];
    s
}

fn creds(tenant: &str, client: &str, secret: &str) -> Credentials {
    Credentials { tenant_id: tenant.into(), client_id: client.into(), credential: Credential::ClientSecret(Secret::new(secret)) }
}

/// The demo's two integration documents, as an admin would write them.
fn documents(cert: &ClientCertificate) -> Result<Vec<(IntegrationDoc, Credentials, bool)>, Failure> {
    let contoso = serde_json::json!({
        "version": 1, "id": "contoso", "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID, "secret_ref": "m365-ingest/contoso",
        "organization_id": "contoso.onmicrosoft.com",
        // The files on devices and the emails its alerts name (from quarantine, or from the
        // recipient's mailbox), as evidence; and (opt-in, see docs/evidence.md's risk) the files
        // antivirus quarantined, by a restore on the device that is cleaned up after.
        "evidence": {"live_response_files": true, "quarantined_email": true, "delivered_email": true, "restore_quarantined_files": true},
        // Who the users are (profile, roles, groups, MFA, sign-ins around the alert), whether
        // they are away (automatic replies, calendar, presence), and the devices' and files'
        // Defender profiles, with each alert.
        "features": {"investigation": true, "user_context": true, "calendar": true, "device_context": true, "remediation": true},
        // What a SOC typically asks for: no informational noise, no security-testing alerts,
        // only DLP alerts of enforced policies.
        "filters": {"severities": ["low", "medium", "high"], "exclude_prelude": true, "dlp_modes": ["enforce"], "title_excludes": ["Impossible travel"]},
        // User-reported mail too, less what Microsoft found allowed by the tenant's own policy,
        // and the reports users send to the phishing mailbox (each reported email's MIME read,
        // stored and parsed), unread ones only.
        "sources": {
            "defender": "alerts",
            "email_submissions": {"enabled": true, "excluded_result_categories": ["allowedByPolicy", "allowedDueToOrganizationOverride"]},
            "phishing_mailbox": {"address": "phish@contoso.onmicrosoft.com", "filter": "isRead eq false"},
        },
    });
    let fabrikam = serde_json::json!({
        "version": 1, "id": "fabrikam", "tenant_id": FABRIKAM, "client_id": FABRIKAM_CLIENT, "secret_ref": "m365-ingest/fabrikam",
        "portal_url": "https://fabrikam.eu2.portal.cloudappsecurity.com",
        "sources": {"defender": "incidents", "cloud_apps": true},
        "output": "ocsf",
    });
    // An app whose admin has not finished: Test & Save says what is missing and saves nothing.
    let half = serde_json::json!({
        "version": 1, "id": "contoso-soc", "tenant_id": DEFAULT_TENANT_ID, "client_id": CONTOSO_SOC_CLIENT, "secret_ref": "m365-ingest/contoso-soc",
        "portal_url": "https://contoso.us2.portal.cloudappsecurity.com",
        "sources": {"defender": "incidents", "cloud_apps": true},
    });
    let doc = |v: serde_json::Value| integration_doc::from_json(&v.to_string()).map_err(|e| Failure::Run(format!("demo document: {e}")));
    Ok(vec![
        (
            doc(contoso)?,
            Credentials {
                tenant_id: DEFAULT_TENANT_ID.into(),
                client_id: DEFAULT_CLIENT_ID.into(),
                credential: Credential::Certificate {
                    certificate_pem: cert.cert_pem.clone(),
                    private_key_pem: Secret::new(cert.key_pem.clone()),
                },
            },
            true,
        ),
        (doc(fabrikam)?, creds(FABRIKAM, FABRIKAM_CLIENT, FABRIKAM_SECRET), true),
        (doc(half)?, creds(DEFAULT_TENANT_ID, CONTOSO_SOC_CLIENT, CONTOSO_SOC_SECRET), false),
    ])
}

/// Test & Save of each document against the simulator, as the `check` Lambda does it;
/// the integrations polled are those saved.
pub(super) async fn test_and_save(
    sim: &Arc<Simulator>,
    http: &HttpSettings,
    cert: &ClientCertificate,
) -> Result<(Vec<Integration>, Arc<MemorySecrets>), Failure> {
    let secrets = Arc::new(MemorySecrets::new());
    let checker = Checker {
        microsoft: microsoft(sim, http, RetryPolicy::default())?,
        secrets: secrets.clone(),
        store: MemoryIntegrationStore::new(),
        writer: secrets.clone(),
        // As deployed: the functions read secrets under the stack's prefix only.
        secret_prefix: "m365-ingest/".into(),
    };
    println!("tenant simulator at {} (2 tenants)\n", sim.base_url());
    for (doc, creds, should_pass) in documents(cert)? {
        if !should_pass {
            println!("(the next one is meant to fail: its app has only SecurityAlert.Read.All and no consent for Cloud Apps)");
        }
        let report = checker
            .test_and_save(
                &doc,
                CredentialInput::New(creds),
                SaveMode::Create.by("demo (the local program, simulated tenants)"),
                GraphTime::now(),
            )
            .await;
        print!("{}", report.to_text());
        if report.passed != should_pass {
            return Err(Failure::Run(format!("Test & Save of `{}` did not come out as expected", doc.id)));
        }
    }
    let integrations = checker.store.integrations().await.map_err(|e| Failure::Run(e.to_string()))?;
    Ok((integrations, secrets))
}
