//! The scenario: tenants, app registrations and their grants, the alert
//! timeline, Graph behaviour switches and faults. Read from a JSON file by the
//! binary, built in code by tests; deterministic from `seed`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::kinds::AlertKind;
use crate::faults::FaultSpec;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub seed: u64,
    pub clock: ClockSpec,
    pub tenants: Vec<TenantSpec>,
    pub graph: GraphSpec,
    pub tokens: TokenSpec,
    pub faults: Vec<FaultSpec>,
    /// Defender for Cloud Apps API limits.
    pub cloud_apps: CloudAppsSpec,
    /// Defender for Endpoint live response: its limits and how long devices take.
    pub mde: MdeSpec,
}

/// Defender for Endpoint live response (ms-apis.md §7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdeSpec {
    /// `runliveresponse` calls per minute per tenant (run-live-response.md: 10).
    pub runs_per_minute: usize,
    /// Live response sessions running at once per tenant (run-live-response.md, ms.date 2025-12-31: 50; the older text 25).
    pub max_sessions: usize,
    /// Seconds an online device takes to pick an action up, then to run it (not documented:
    /// the simulator's choice).
    pub pickup_secs: i64,
    pub run_secs: i64,
    /// An offline device's action waits this long, then times out (run-live-response.md, ms.date 2025-12-31: up to 2 hours; the older text 3 days).
    pub offline_timeout_secs: i64,
    /// A result link's lifetime (get-live-response-result.md: 30 minutes).
    pub link_lifetime_secs: i64,
    /// Machines (MDE ids) offline at the start.
    pub offline: Vec<String>,
    /// How a GetFile result downloads: not documented (get-live-response-result.md shows the
    /// link only). `gzip` (default) is what open-source callers unpack (demisto/content's
    /// Defender for Endpoint integration, alpine-sec/thevlad); `raw` and `zip` are the others a
    /// client must take.
    pub result_format: ResultFormat,
    /// Settings → Endpoints → Advanced features (advanced-features.md; live-response.md, ms.date
    /// 2025-03-04): "Live Response" (on: the tenant's devices take live response), and "Live
    /// Response unsigned script execution" (off, Microsoft's default: a RunScript of an unsigned
    /// library script fails on the device).
    pub live_response: bool,
    pub unsigned_scripts: bool,
    /// The largest file GetFile collects (live-response.md: `getfile` limit 3 GB).
    pub getfile_max_bytes: u64,
    /// How fast a device uploads what GetFile collects (bytes a second; 0: at once), and each
    /// command's time limit (live-response.md: 10 minutes a command, 30 for getfile): a GetFile
    /// whose upload would take longer fails with ERROR_TIMEOUT (0x800705B4); the words are the
    /// simulator's (README).
    pub device_upload_bytes_per_sec: u64,
    pub getfile_timeout_secs: u64,
    /// Each Defender for Endpoint API's limit per tenant: `api_calls` (100) per
    /// `api_window_secs` (60), and 1,500 an hour (get-machineaction-object.md,
    /// get-live-response-result.md, cancel-machine-action.md, upload-library.md,
    /// get-machine-by-id.md, get-file-information.md). Tests shrink the minute to see it in seconds.
    pub api_calls: u32,
    pub api_window_secs: u64,
    /// Advanced features → "Live response for servers" (advanced-features.md; live-response.md
    /// ms.date 2025-03-04: enabled separately from live response): off, a session on a Windows
    /// Server device is refused (the answer is undocumented: the documented code of a feature
    /// left off). Off by default here, the stricter reading: turning live response on does not
    /// turn it on for servers.
    pub live_response_servers: bool,
    /// Device groups (the pool's RBAC group names) with no automation (remediation) level: live
    /// response on their devices is refused (run-live-response.md, limitations).
    pub no_automation_groups: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultFormat {
    Raw,
    #[default]
    Gzip,
    Zip,
}

impl Default for MdeSpec {
    fn default() -> Self {
        MdeSpec {
            runs_per_minute: 10,
            max_sessions: 50,
            pickup_secs: 5,
            run_secs: 20,
            offline_timeout_secs: 2 * 3600,
            link_lifetime_secs: 1_800,
            offline: Vec::new(),
            result_format: ResultFormat::Gzip,
            live_response: true,
            unsigned_scripts: false,
            getfile_max_bytes: 3 << 30,
            device_upload_bytes_per_sec: 0,
            getfile_timeout_secs: 1_800,
            live_response_servers: false,
            no_automation_groups: Vec::new(),
            api_calls: 100,
            api_window_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSpec {
    /// Simulated start time (`2026-11-26T00:00:00Z`); the real time if absent.
    pub start: Option<String>,
    /// A fixed clock stands still until a test moves it; otherwise it ticks with real time.
    pub fixed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSpec {
    pub id: String,
    /// The initial `*.onmicrosoft.com` domain; also accepted as the tenant in token URLs.
    pub domain: String,
    pub apps: Vec<AppSpec>,
    pub alerts: AlertPlan,
    /// Graph list responses (`{"value": [...]}` of alerts or incidents) served verbatim.
    pub seed_files: Vec<PathBuf>,
    /// Defender for Cloud Apps alerts of this tenant.
    pub cloud_apps: CloudAppsPlan,
    /// Email threat submissions of this tenant.
    pub submissions: SubmissionsPlan,
    /// The mailbox users report phishing to.
    pub mailbox: MailboxPlan,
    /// The Microsoft cloud the tenant lives in: which token scopes and audiences it knows, and
    /// which APIs it offers (`global`, `gcc`, `gcc_high`, `dod`).
    pub cloud: crate::entra::resources::Cloud,
    /// The tenant's Microsoft Entra ID plan: `free`, `p1` or `p2` (default). Sign-in logs
    /// through Graph need P1 or P2 (resources/signin.md); their risk fields need P2 and read
    /// `hidden` otherwise (riskDetail, riskLevelAggregated, riskLevelDuringSignIn).
    pub entra_license: EntraLicense,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntraLicense {
    Free,
    P1,
    #[default]
    P2,
}

/// A reporting mailbox (ms-apis.md §5): reports arrive over the alert plan's `from`..`to`, each
/// carrying the reported email as an attached item (the Report button's way), as an attached
/// `.eml` file, or being the reported email itself (forwarded as is).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailboxPlan {
    /// Local part of the mailbox's address at the tenant's domain.
    pub local_part: String,
    pub count: usize,
    /// A message is listed this long after its `receivedDateTime`.
    pub latency_secs: i64,
    /// Shares of reports carrying the reported email as an item attachment and as a file.
    pub item_fraction: f64,
    pub file_fraction: f64,
}

impl Default for MailboxPlan {
    fn default() -> Self {
        MailboxPlan { local_part: "phish".into(), count: 30, latency_secs: 20, item_fraction: 0.6, file_fraction: 0.2 }
    }
}

/// A tenant's email threat submissions: created over the alert plan's `from`..`to`, each
/// waiting, then analysed. Microsoft documents no timings; these are the simulator's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionsPlan {
    pub count: usize,
    /// A submission is listed this long after its `createdDateTime`.
    pub latency_secs: i64,
    /// `notStarted` for this long (a range, seconds), then `running` for the analysis.
    pub queued_min_secs: i64,
    pub queued_max_secs: i64,
    pub analysis_min_secs: i64,
    pub analysis_max_secs: i64,
    /// Share of analyses that end `failed` (no result).
    pub failed_fraction: f64,
}

impl Default for SubmissionsPlan {
    fn default() -> Self {
        SubmissionsPlan {
            count: 40,
            latency_secs: 30,
            queued_min_secs: 30,
            queued_max_secs: 600,
            analysis_min_secs: 300,
            analysis_max_secs: 6 * 3600,
            failed_fraction: 0.03,
        }
    }
}

/// A tenant's Cloud Apps alerts: spread over the alert plan's `from`..`to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudAppsPlan {
    pub count: usize,
    /// Alerts sharing one millisecond `timestamp`, in groups of `tie_size`.
    pub tie_groups: usize,
    pub tie_size: usize,
    /// An alert is listed this long after its `timestamp`.
    pub latency_secs: i64,
}

impl Default for CloudAppsPlan {
    fn default() -> Self {
        CloudAppsPlan { count: 60, tie_groups: 2, tie_size: 4, latency_secs: 60 }
    }
}

/// Defender for Cloud Apps' documented limits (api-introduction.md): 30 requests a minute per
/// tenant, at most 100 items per response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudAppsSpec {
    pub requests_per_window: usize,
    pub window_secs: u64,
    pub max_limit: usize,
    /// Send `Retry-After` on 429. Microsoft documents none for this API, so off by default.
    pub retry_after: bool,
    /// Alerts of one timestamp come back in a new order on every request: the docs sort by
    /// `date` and say nothing of ties.
    pub shuffle_ties: bool,
    /// `total` counts at most this many, with `moreThanTotal` true beyond (the field's meaning
    /// is undocumented: the unfriendlier reading, a lower bound). 0 = the exact count.
    pub total_cap: usize,
}

impl Default for CloudAppsSpec {
    fn default() -> Self {
        CloudAppsSpec { requests_per_window: 30, window_secs: 60, max_limit: 100, retry_after: false, shuffle_ties: true, total_cap: 25 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSpec {
    pub client_id: String,
    pub display_name: String,
    pub secrets: Vec<SecretSpec>,
    pub certificates: Vec<CertificateSpec>,
    /// Application permissions granted with admin consent, per API:
    /// `graph`, `mde`, `mdca`, `exchange`. An API missing here yields a token
    /// without a `roles` claim, as Entra does without consent.
    pub grants: BTreeMap<String, Vec<String>>,
    /// Entra directory roles of the app's service principal (`wids` claim).
    pub directory_roles: Vec<String>,
    pub disabled: bool,
    /// The mailboxes an Exchange application access policy (or RBAC for Applications scope)
    /// lets the app's Mail permissions reach; None: no policy, every mailbox.
    pub mailbox_scope: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub value: String,
    /// RFC 3339; the secret is refused after it (AADSTS7000222).
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificateSpec {
    /// The registered certificate (public part only), PEM.
    pub pem: Option<String>,
    pub pem_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPlan {
    pub count: usize,
    pub incidents: usize,
    /// Window of first `lastUpdateDateTime`s, relative to the clock start (`-24h`, `+2h`).
    pub from: String,
    pub to: String,
    /// Ingestion latency: a version becomes visible this long after its `lastUpdateDateTime`.
    pub latency_min_secs: i64,
    pub latency_max_secs: i64,
    /// Share of alerts updated later (status, classification, assignment, comments).
    pub update_fraction: f64,
    pub max_updates: usize,
    /// Each update comes this long after the version before it (a range, seconds).
    pub update_gap_min_secs: i64,
    pub update_gap_max_secs: i64,
    /// Groups of alerts sharing one exact `lastUpdateDateTime`.
    pub tie_groups: usize,
    pub tie_size: usize,
    /// Share of alerts with hundreds of evidence items.
    pub big_evidence_fraction: f64,
    /// Relative weights per kind; the built-in mix when empty.
    pub mix: BTreeMap<AlertKind, u32>,
    /// Users, devices and addresses the alerts draw from.
    pub pool_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSpec {
    /// Page size when `$top` is absent. Microsoft documents none for alerts_v2.
    pub default_page_size: usize,
    /// Leave `@odata.nextLink` out even when more items match, as Elastic saw
    /// alerts_v2 do in production (elastic/integrations#20234).
    pub omit_next_link: bool,
    /// Largest `$top` on incidents; Elastic found 50 to be the maximum with `$expand=alerts`.
    pub incidents_max_top: usize,
    /// `$expand=alerts` fails with 500 when a page would embed more alerts than
    /// this, as on large tenants (elastic/integrations#18144). 0 = never.
    pub expand_alert_limit: usize,
    /// Serve lists in the documented default order (newest `createdDateTime` first) whatever
    /// `$orderby` says: `$orderby` is not documented for alerts_v2 (ms-apis.md §2), so nothing
    /// promises that it is honoured.
    pub ignore_orderby: bool,
    /// Items that sort equal come back in a different order on every request: no document
    /// promises a stable order of ties between requests.
    pub shuffle_ties: bool,
    /// Return at most this many items per response, fewer than `$top`, and no nextLink when the
    /// cap cut the page: a short page is not the end (no document promises it is). 0 = off.
    pub page_cap: usize,
    /// How long a mailbox request is held before it is answered (milliseconds): with it,
    /// concurrent requests to one mailbox overlap, and Outlook's limit of 4 shows.
    pub mailbox_latency_ms: u64,
    /// Every answer but Entra's is held this long (real time, milliseconds): no API answers at
    /// once, and calls a client makes at the same time overlap.
    pub latency_ms: u64,
    /// The first request to each security list (alerts, incidents, email threat submissions)
    /// is answered 429 with `Retry-After: 1` (throttling.md: a client must expect a 429 on any
    /// request and honour Retry-After), whatever the limits say.
    pub throttle_first_list: bool,
    /// Advanced hunting's quotas (`runHuntingQuery`).
    pub hunting: HuntingSpec,
    /// The security API's request limit per app per tenant (alerts, incidents, submissions,
    /// hunting): 150 a minute (throttling-limits.md). Friendly scenarios keep it; tests shrink it.
    pub security_limit: RateSpec,
}

/// At most `requests` in any `window_secs`, answered 429 with `Retry-After` beyond.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSpec {
    pub requests: u32,
    pub window_secs: u64,
}

/// Advanced hunting's quotas. The current Graph overview (security-api-overview.md, Learn
/// 2026-01-21) gives 45 calls a minute, a CPU allocation per tenant renewed every 15 minutes, a
/// 3-minute timeout and a 50 MB result; its earlier revision and the Defender for Endpoint API
/// (run-advanced-query-api.md, ms.date 2025-08-18) add 1,500 calls an hour and say 124 MB: the
/// stricter of each is served.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HuntingSpec {
    pub calls_per_minute: u32,
    pub calls_per_hour: u32,
    /// CPU milliseconds a tenant's queries may use per 15-minute cycle (Microsoft's figure is
    /// undocumented and "varies per tenant based on its size"); a query costs 5 ms and 1 ms per
    /// 100 rows it scans.
    pub cpu_ms_per_cycle: u64,
    /// Bytes of `results` a query may answer (50 MB).
    pub max_result_bytes: usize,
}

impl Default for HuntingSpec {
    fn default() -> Self {
        HuntingSpec { calls_per_minute: 45, calls_per_hour: 1_500, cpu_ms_per_cycle: 600_000, max_result_bytes: 50 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSpec {
    /// `expires_in` of issued tokens; Entra issues 60–90 minute app tokens (3599 in the doc sample).
    pub lifetime_secs: i64,
}

pub const DEFAULT_TENANT_ID: &str = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
pub const DEFAULT_CLIENT_ID: &str = "0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6";
/// Not a credential: the simulator's built-in app registration, known to anyone who reads this file.
pub const DEFAULT_CLIENT_SECRET: &str = "sim~DefaultAppSecret.0123456789";

/// Every application permission in the project's permission table (issue "Test & Save").
pub fn all_grants() -> BTreeMap<String, Vec<String>> {
    let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    BTreeMap::from([
        (
            "graph".to_owned(),
            v(&[
                "SecurityAlert.Read.All",
                "SecurityIncident.Read.All",
                "ThreatHunting.Read.All",
                "ThreatSubmission.Read.All",
                "Mail.Read",
                "AuditLog.Read.All",
                "Directory.Read.All",
                "User.Read.All",
                "Calendars.Read",
                "Calendars.ReadBasic.All",
                "MailboxSettings.Read",
                "Presence.Read.All",
                "User.RevokeSessions.All",
                "User.EnableDisableAccount.All",
                "RoleManagement.Read.Directory",
                "PrivilegedEligibilitySchedule.Read.AzureADGroup",
            ]),
        ),
        ("mdca".to_owned(), v(&["investigation.read"])),
        ("mde".to_owned(), v(&["File.Read.All", "Library.Manage", "Machine.LiveResponse", "Machine.ReadWrite.All"])),
        ("exchange".to_owned(), v(&["Exchange.ManageAsApp"])),
    ])
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: 7,
            clock: ClockSpec::default(),
            tenants: vec![TenantSpec::default()],
            graph: GraphSpec::default(),
            tokens: TokenSpec::default(),
            faults: Vec::new(),
            cloud_apps: CloudAppsSpec::default(),
            mde: MdeSpec::default(),
        }
    }
}

impl Default for TenantSpec {
    fn default() -> Self {
        TenantSpec {
            id: DEFAULT_TENANT_ID.to_owned(),
            domain: "contoso.onmicrosoft.com".to_owned(),
            apps: vec![AppSpec::default()],
            alerts: AlertPlan::default(),
            seed_files: Vec::new(),
            cloud_apps: CloudAppsPlan::default(),
            submissions: SubmissionsPlan::default(),
            mailbox: MailboxPlan::default(),
            cloud: Default::default(),
            entra_license: EntraLicense::P2,
        }
    }
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            display_name: "m365-ingest (simulated)".to_owned(),
            secrets: vec![SecretSpec { value: DEFAULT_CLIENT_SECRET.to_owned(), expires: None }],
            certificates: Vec::new(),
            grants: all_grants(),
            // Export-QuarantineMessage needs a role that acts on quarantine (ms-apis.md §8).
            directory_roles: vec!["Security Administrator".to_owned()],
            disabled: false,
            mailbox_scope: None,
        }
    }
}

impl Default for AlertPlan {
    fn default() -> Self {
        AlertPlan {
            count: 500,
            incidents: 120,
            from: "-24h".to_owned(),
            to: "+2h".to_owned(),
            latency_min_secs: 60,
            latency_max_secs: 600,
            update_fraction: 0.25,
            max_updates: 3,
            update_gap_min_secs: 300,
            update_gap_max_secs: 6 * 3_600,
            tie_groups: 5,
            tie_size: 8,
            big_evidence_fraction: 0.01,
            mix: BTreeMap::new(),
            pool_size: 40,
        }
    }
}

impl Default for GraphSpec {
    fn default() -> Self {
        GraphSpec {
            default_page_size: 100,
            omit_next_link: false,
            incidents_max_top: 50,
            expand_alert_limit: 0,
            // Unfriendly by default (issue 29 §4): everything Microsoft permits and does not
            // promise against. `Scenario::friendly()` is the opt-in to the friendly reading.
            ignore_orderby: true,
            shuffle_ties: true,
            page_cap: 37,
            mailbox_latency_ms: 5,
            latency_ms: 2,
            throttle_first_list: true,
            hunting: HuntingSpec::default(),
            security_limit: RateSpec { requests: 150, window_secs: 60 },
        }
    }
}

impl GraphSpec {
    /// Every query honoured as written, whole pages, no latency, no throttling beyond the
    /// documented limits: what a test opts into to count requests exactly.
    pub fn friendly() -> Self {
        GraphSpec {
            ignore_orderby: false,
            shuffle_ties: false,
            page_cap: 0,
            mailbox_latency_ms: 0,
            latency_ms: 0,
            throttle_first_list: false,
            ..GraphSpec::default()
        }
    }
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec { lifetime_secs: 3599 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("scenario file {path} is not valid: {source} (see infra/tenant-sim/README.md for the fields)")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("scenario field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

impl Scenario {
    /// The friendly opt-in (issue 29 §4): the default is everything Microsoft permits (pages
    /// cut short, `$orderby` ignored, ties reordered per request, Cloud Apps' `total` a lower
    /// bound, latency, a first 429); this honours every query as written, for a test that
    /// counts requests or pages exactly. Say why next to each use.
    pub fn friendly() -> Self {
        let mut s = Scenario { graph: GraphSpec::friendly(), ..Scenario::default() };
        s.cloud_apps.shuffle_ties = false;
        s.cloud_apps.total_cap = 0;
        s
    }

    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        let mut s: Scenario = serde_json::from_str(&text).map_err(|source| ScenarioError::Parse { path: path.to_owned(), source })?;
        // Seed files and certificate files are relative to the scenario file.
        let base = path.parent().unwrap_or(Path::new("."));
        for t in &mut s.tenants {
            for f in &mut t.seed_files {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
            for a in &mut t.apps {
                for c in &mut a.certificates {
                    if let Some(p) = c.pem_file.as_mut() {
                        if p.is_relative() {
                            *p = base.join(&*p);
                        }
                    }
                }
            }
        }
        let limit = s.graph.security_limit;
        if limit.requests == 0 || limit.window_secs == 0 {
            return Err(ScenarioError::Invalid {
                field: "graph.security_limit".into(),
                reason: format!(
                    "{} requests per {} s admits nothing; Microsoft's is {{\"requests\": 150, \"window_secs\": 60}}",
                    limit.requests, limit.window_secs
                ),
            });
        }
        Ok(s)
    }
}
