//! Where Microsoft is, and how to reach it.

use std::time::Duration;

use crate::error::ConfigError;

/// Microsoft's production endpoints, the defaults.
pub const LOGIN_BASE_URL: &str = "https://login.microsoftonline.com";
pub const GRAPH_BASE_URL: &str = "https://graph.microsoft.com";
/// Defender for Endpoint (ms-apis.md §7); geo hosts such as `https://eu.api.security.microsoft.com` also work.
pub const MDE_BASE_URL: &str = "https://api.securitycenter.microsoft.com";
/// Exchange Online's admin API host (ms-apis.md §8).
pub const EXCHANGE_BASE_URL: &str = "https://outlook.office365.com";
/// Defender for Cloud Apps: 30 requests a minute per tenant (api-introduction.md).
pub const CLOUD_APPS_REQUESTS_PER_WINDOW: usize = 30;
pub const CLOUD_APPS_WINDOW: Duration = Duration::from_secs(60);
/// Graph `/security`: 150 requests a minute per app per tenant (throttling-limits.md; whether the
/// table covers alerts_v2 and incidents is not said, ms-apis.md §11).
pub const GRAPH_SECURITY_RATE: crate::ports::Rate = crate::ports::Rate { requests: 150, window: Duration::from_secs(60) };
/// Outlook (mail, attachments): 10,000 requests per 10 minutes per app per mailbox
/// (throttling-limits.md "Outlook service limits"; ms-apis.md §11).
pub const MAILBOX_RATE: crate::ports::Rate = crate::ports::Rate { requests: 10_000, window: Duration::from_secs(600) };
/// Identity and access reports (sign-ins, registration details): 5 requests per 10 s per app per
/// tenant (throttling-limits.md; ms-apis.md §11).
pub const REPORTS_RATE: crate::ports::Rate = crate::ports::Rate { requests: 5, window: Duration::from_secs(10) };
/// Users and memberships: the directory's token bucket allows 3,500 resource units per 10 s in
/// the smallest tenants, a GET of a user or its memberships costing 2–3 (throttling-limits.md).
pub const DIRECTORY_RATE: crate::ports::Rate = crate::ports::Rate { requests: 1_000, window: Duration::from_secs(10) };
/// Presence: 1,500 requests per 30 s per app per tenant (throttling-limits.md).
pub const PRESENCE_RATE: crate::ports::Rate = crate::ports::Rate { requests: 1_500, window: Duration::from_secs(30) };
/// Advanced hunting: 45 calls a minute and 1,500 an hour per tenant (run-advanced-query-api.md,
/// and the Graph overview's earlier revision; the current one drops the hour: the stricter is
/// kept). 25 a minute keeps both under either budget: the shared one spaces calls 2.4 s apart,
/// and the local one, a sliding window, never lets more than 25 through in a minute (an hour's
/// 1,500 would let 1,500 through in the first minute).
pub const HUNTING_RATE: crate::ports::Rate = crate::ports::Rate { requests: 25, window: Duration::from_secs(60) };
/// Exchange Online cmdlets through `InvokeCommand`: 25 per 5 s per app per tenant. Microsoft
/// publishes no limit for the endpoint; this is the cmdlet budget of Exchange's throttling
/// policy (`ExchangeMaxCmdlets` per `PowerShellMaxCmdletsTimePeriod`, New-ThrottlingPolicy.md)
/// at its long-published default, which the simulator enforces.
pub const EXCHANGE_RATE: crate::ports::Rate = crate::ports::Rate { requests: 25, window: Duration::from_secs(5) };
/// Defender for Endpoint: 100 calls a minute per API (get-machine-by-id.md, get-file-information.md).
pub const MDE_RATE: crate::ports::Rate = crate::ports::Rate { requests: 100, window: Duration::from_secs(60) };
/// And 1,500 an hour per API (the same pages; get-machineaction-object.md,
/// get-live-response-result.md, cancel-machine-action.md, upload-library.md), kept whenever
/// `mde_rate` is (domain/budget.rs: half of it may go in a burst).
pub const MDE_HOURLY_RATE: crate::ports::Rate = crate::ports::Rate { requests: 1_500, window: Duration::from_secs(3_600) };
/// A Graph page of 1000 alerts is a few MB; a minute covers slow tenants without hanging a run.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// 32 MiB: ten times a typical full page, a quarter of a 128 MB Lambda.
pub const MAX_BODY_BYTES: usize = 32 << 20;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The Microsoft cloud the deployment serves (MICROSOFT_CLOUD).
    pub cloud: crate::domain::cloud::Cloud,
    /// Each API's token scope, derived from the hosts below and the cloud.
    pub scopes: crate::domain::cloud::Scopes,
    pub login_base_url: String,
    pub graph_base_url: String,
    pub mde_base_url: String,
    pub exchange_base_url: String,
    /// Sends every Cloud Apps request here instead of the integration's portal (the tenant
    /// simulator serves all tenants on one URL). None in production.
    pub cloud_apps_base_override: Option<String>,
    /// The client's own pacing of Cloud Apps calls per tenant: at most this many per window.
    pub cloud_apps_rate: (usize, Duration),
    /// Graph security calls per app per tenant (throttling-limits.md: 150 a minute for
    /// `/security`); None: not paced, 429s alone hold it back.
    pub graph_rate: Option<crate::ports::Rate>,
    /// Graph calls to a mailbox (`/users/{mailbox}/…`), per app per mailbox, apart from the
    /// security budget (Outlook's limits are its own); None: not paced.
    pub mailbox_rate: Option<crate::ports::Rate>,
    /// Graph's identity reports, directory and presence, and Defender for Endpoint's APIs, for
    /// the calls that count against them (context lookups); None: not paced.
    pub reports_rate: Option<crate::ports::Rate>,
    pub directory_rate: Option<crate::ports::Rate>,
    pub presence_rate: Option<crate::ports::Rate>,
    pub mde_rate: Option<crate::ports::Rate>,
    pub hunting_rate: Option<crate::ports::Rate>,
    pub exchange_rate: Option<crate::ports::Rate>,
    /// Extra trusted roots (PEM), added to the system's: how the tenant simulator's CA is trusted.
    pub extra_ca_pem: Option<String>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// The largest response body read. A Graph page of 1000 alerts is a few MB; alerts with
    /// hundreds of evidence items make it tens of MB. Larger answers are refused, and the poller
    /// asks for fewer items instead.
    pub max_body_bytes: usize,
    /// Send `Prefer: include-unknown-enum-members` (ms-apis.md §2): newer enum members arrive as themselves.
    pub include_unknown_enum_members: bool,
    /// A whole download of a live response result, inside the processor's 150 s timeout (the
    /// file streams; 512 MB at 10 MB/s is under a minute). One cut short is a passing failure:
    /// the job tries again.
    pub download_timeout: Duration,
    /// An Exchange cmdlet call: Exchange ends REST cmdlets at 15 minutes (exchange-online-powershell-v2.md),
    /// more than the processor's 150 s; a lookup by Message-ID takes seconds, and one that runs
    /// past this is a passing failure the job's next step tries again.
    pub exchange_timeout: Duration,
    /// Host names resolved to these addresses instead of DNS: how a test reaches the
    /// simulator's blob host by its own name. Empty in production.
    pub resolve: Vec<(String, std::net::SocketAddr)>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            cloud: crate::domain::cloud::Cloud::Global,
            scopes: crate::domain::cloud::Scopes::default(),
            login_base_url: LOGIN_BASE_URL.into(),
            graph_base_url: GRAPH_BASE_URL.into(),
            mde_base_url: MDE_BASE_URL.into(),
            exchange_base_url: EXCHANGE_BASE_URL.into(),
            cloud_apps_base_override: None,
            cloud_apps_rate: (CLOUD_APPS_REQUESTS_PER_WINDOW, CLOUD_APPS_WINDOW),
            graph_rate: Some(GRAPH_SECURITY_RATE),
            mailbox_rate: Some(MAILBOX_RATE),
            reports_rate: Some(REPORTS_RATE),
            directory_rate: Some(DIRECTORY_RATE),
            presence_rate: Some(PRESENCE_RATE),
            mde_rate: Some(MDE_RATE),
            hunting_rate: Some(HUNTING_RATE),
            exchange_rate: Some(EXCHANGE_RATE),
            extra_ca_pem: None,
            request_timeout: REQUEST_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            include_unknown_enum_members: true,
            max_body_bytes: MAX_BODY_BYTES,
            download_timeout: Duration::from_secs(110),
            exchange_timeout: Duration::from_secs(100),
            resolve: Vec::new(),
        }
    }
}

/// rustls is built with ring only; install it as the process default once.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which serves as well.
    rustls::crypto::ring::default_provider().install_default().ok();
}

impl HttpSettings {
    /// Every Microsoft API at one base URL, trusting `ca_pem`: how the tenant simulator is reached.
    pub fn simulator(base_url: &str, ca_pem: &str) -> Self {
        HttpSettings {
            login_base_url: base_url.into(),
            graph_base_url: base_url.into(),
            mde_base_url: base_url.into(),
            exchange_base_url: base_url.into(),
            cloud_apps_base_override: Some(base_url.into()),
            extra_ca_pem: Some(ca_pem.into()),
            // The simulator answers Outlook's limit with 429 and Retry-After, as Graph does; a
            // pace of one request per 61 ms would only slow the tests.
            mailbox_rate: None,
            ..HttpSettings::default()
        }
    }

    /// The same hosts serving `cloud`: its scopes, derived from them (the simulator in a
    /// sovereign preset keeps its one loopback URL).
    pub fn in_cloud(mut self, cloud: crate::domain::cloud::Cloud) -> Result<Self, crate::domain::cloud::HostMismatch> {
        self.scopes = cloud.scopes(
            &self.login_base_url,
            &self.graph_base_url,
            &self.mde_base_url,
            &self.exchange_base_url,
            crate::domain::cloud::Hosts::StandInsAllowed,
        )?;
        self.cloud = cloud;
        Ok(self)
    }

    /// Whether a live response result link may be followed: HTTPS, no credentials in it, and a
    /// storage host Microsoft documents for this cloud (`cloud::result_link_hosts`).
    pub fn allowed_download(&self, url: &str) -> bool {
        let Ok(u) = reqwest::Url::parse(url) else { return false };
        let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
        u.scheme() == "https"
            && u.username().is_empty()
            && u.password().is_none()
            && crate::domain::cloud::host_listed(&host, crate::domain::cloud::result_link_hosts(self.cloud))
    }

    /// Where Cloud Apps requests for the portal `portal_base` go.
    pub fn cloud_apps_base<'a>(&'a self, portal_base: &'a str) -> &'a str {
        self.cloud_apps_base_override.as_deref().unwrap_or(portal_base).trim_end_matches('/')
    }

    /// Whether `url` may be requested with a token: only at the origin (scheme, host, port) of
    /// `configured`. A link from a response that points elsewhere is refused, so the bearer token
    /// never leaves for another host.
    pub fn same_origin(url: &str, configured: &str) -> bool {
        match (reqwest::Url::parse(url), reqwest::Url::parse(configured)) {
            (Ok(u), Ok(c)) => u.origin() == c.origin() && u.username().is_empty() && u.password().is_none(),
            _ => false,
        }
    }

    pub fn client(&self) -> Result<reqwest::Client, ConfigError> {
        install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .https_only(true)
            // A redirect would carry the bearer token wherever a response points: follow none.
            .redirect(reqwest::redirect::Policy::none());
        for (host, addr) in &self.resolve {
            b = b.resolve(host, *addr);
        }
        if let Some(pem) = &self.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| ConfigError::Invalid {
                name: "EXTRA_CA_BUNDLE".into(),
                value: "(PEM)".into(),
                hint: format!("not a PEM certificate bundle: {e}"),
            })?;
            b = b.tls_certs_merge(certs);
        }
        b.build().map_err(|e| ConfigError::Invalid { name: "HTTP client".into(), value: String::new(), hint: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsofts_own_sample_result_link_is_followed_and_links_outside_the_clouds_storage_are_not() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/microsoft-docs/mde_liveresponse_download_link.json"))
                .unwrap_or_default();
        let global = HttpSettings::default();
        assert!(global.allowed_download(sample["value"].as_str().unwrap_or_default()));
        assert!(global.allowed_download("https://wdatpprd.blob.core.windows.net/investigation-actions-data/x?sig=y"));
        assert!(!global.allowed_download("http://wdatpprd.blob.core.windows.net/x"), "HTTPS only");
        assert!(!global.allowed_download("https://user:pw@wdatpprd.blob.core.windows.net/x"));
        assert!(!global.allowed_download("https://x.blob.core.chinacloudapi.cn/x"));
        let high = HttpSettings { cloud: crate::domain::cloud::Cloud::GccHigh, ..HttpSettings::default() };
        assert!(!high.allowed_download(sample["value"].as_str().unwrap_or_default()));
        assert!(high.allowed_download("https://automatedirstrffusgv.blob.core.usgovcloudapi.net/x?sig=y"));
    }
}
