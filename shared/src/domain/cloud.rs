//! Microsoft's clouds: where each API is, which token scope reaches it, and what Microsoft does
//! not offer there. One deployment serves one cloud: "access tokens acquired for a national
//! cloud deployment are not interchangeable with those acquired for the global service or any
//! other national cloud" (graph-docs concepts/deployments.md).
//!
//! Sources, by API:
//! - Entra ID and Graph roots: concepts/deployments.md (GCC keeps the worldwide endpoints; GCC
//!   High `graph.microsoft.us`, DoD `dod-graph.microsoft.us`, both signing in at
//!   `login.microsoftonline.us`); a `.default` scope names the national Graph root
//!   (concepts/sdks/national-clouds.md).
//! - Defender for Endpoint: defender-endpoint/gov.md "API" (GCC `api-gcc.securitycenter.microsoft.us`,
//!   GCC High and DoD `api-gov.securitycenter.microsoft.us`); a GCC tenant still on the commercial
//!   service uses the commercial hosts (gov.md's note). Commercial tokens name the legacy
//!   resource `https://api.securitycenter.microsoft.com` whatever the host (exposed-apis tip).
//! - Exchange Online: Connect-ExchangeOnline `-ConnectionUri` (GCC High
//!   `outlook.office365.us`, DoD `webmail.apps.mil`); GCC uses the worldwide host.
//! - Defender for Cloud Apps: editions-cloud-app-security-gcc.md (GCC signs in at
//!   `portal.cloudappsecuritygov.com`), network-requirements.md (GCC High `*.portal.cloudappsecurity.us`;
//!   the GCC High and DoD offering is one). Its token resource is its application id.

use serde::Serialize;

use super::permissions::{Api, Feature};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cloud {
    #[default]
    Global,
    /// Microsoft 365 GCC: the worldwide Entra ID, Graph and Exchange; Defender for Endpoint and
    /// Cloud Apps of its own.
    Gcc,
    /// Microsoft 365 GCC High (Graph "US Government L4").
    GccHigh,
    /// Microsoft 365 DoD (Graph "US Government L5").
    Dod,
}

/// The values MICROSOFT_CLOUD takes, as the template's `MicrosoftCloud` parameter names them.
pub const CLOUD_NAMES: [(&str, Cloud); 4] =
    [("Global", Cloud::Global), ("GCC", Cloud::Gcc), ("GCCHigh", Cloud::GccHigh), ("DoD", Cloud::Dod)];

/// Cloud Apps portal host suffixes of every cloud: Global, GCC, then GCC High and DoD.
pub const CLOUD_APPS_SUFFIXES: [&str; 3] =
    [".portal.cloudappsecurity.com", ".portal.cloudappsecuritygov.com", ".portal.cloudappsecurity.us"];

/// The hosts a live response result link may point to in each cloud: a leading dot is a
/// suffix under which a storage account's name must come, anything else one exact host.
/// - The result is "an Azure blob SAS URL" and Microsoft's own sample is on `core.windows.net`
///   itself (get-live-response-result.md, every version to ms.date 2025-11-13).
/// - A storage account's blob endpoint is `<account>.blob.core.windows.net`, and
///   `<account>.blob.core.usgovcloudapi.net` in Azure Government, where Defender for Endpoint's
///   US Government storage is (standard-device-connectivity-urls-gov.md, ms.date 2025-10-16:
///   AutoIR sample storage and the portal's `*.blob.core.usgovcloudapi.net`). A GCC tenant still
///   on the commercial service gets commercial links (gov.md).
///
/// No other host is followed: the China cloud has no Defender for Endpoint here.
pub const fn result_link_hosts(cloud: Cloud) -> &'static [&'static str] {
    match cloud {
        Cloud::Global => &[".blob.core.windows.net", "core.windows.net"],
        Cloud::Gcc => &[".blob.core.windows.net", "core.windows.net", ".blob.core.usgovcloudapi.net"],
        Cloud::GccHigh | Cloud::Dod => &[".blob.core.usgovcloudapi.net"],
    }
}

/// Whether `host` (lower case) is one of `hosts` as [`result_link_hosts`] lists them.
pub fn host_listed(host: &str, hosts: &[&str]) -> bool {
    hosts.iter().any(|h| if h.starts_with('.') { host.len() > h.len() && host.ends_with(h) } else { host == *h })
}

/// Where the APIs of one cloud are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub login: &'static str,
    pub graph: &'static str,
    pub mde: &'static str,
    pub exchange: &'static str,
}

impl Cloud {
    pub fn parse(text: &str) -> Result<Cloud, String> {
        let t = text.trim();
        CLOUD_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("use one of {}", CLOUD_NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")))
    }

    pub fn name(self) -> &'static str {
        CLOUD_NAMES.iter().find(|(_, c)| *c == self).map_or("Global", |(n, _)| n)
    }

    /// The preset: each API's production root in this cloud.
    pub fn endpoints(self) -> Endpoints {
        match self {
            Cloud::Global => Endpoints {
                login: "https://login.microsoftonline.com",
                graph: "https://graph.microsoft.com",
                mde: "https://api.securitycenter.microsoft.com",
                exchange: "https://outlook.office365.com",
            },
            Cloud::Gcc => Endpoints {
                login: "https://login.microsoftonline.com",
                graph: "https://graph.microsoft.com",
                mde: "https://api-gcc.securitycenter.microsoft.us",
                exchange: "https://outlook.office365.com",
            },
            Cloud::GccHigh => Endpoints {
                login: "https://login.microsoftonline.us",
                graph: "https://graph.microsoft.us",
                mde: "https://api-gov.securitycenter.microsoft.us",
                exchange: "https://outlook.office365.us",
            },
            Cloud::Dod => Endpoints {
                login: "https://login.microsoftonline.us",
                graph: "https://dod-graph.microsoft.us",
                mde: "https://api-gov.securitycenter.microsoft.us",
                exchange: "https://webmail.apps.mil",
            },
        }
    }

    /// Cloud Apps portal host suffixes of this cloud's tenants.
    pub fn cloud_apps_suffixes(self) -> &'static [&'static str] {
        match self {
            Cloud::Global => &CLOUD_APPS_SUFFIXES[0..1],
            Cloud::Gcc => &CLOUD_APPS_SUFFIXES[1..2],
            Cloud::GccHigh | Cloud::Dod => &CLOUD_APPS_SUFFIXES[2..3],
        }
    }

    /// Graph's name for this cloud in its availability tables ("national cloud deployments").
    fn graph_deployment(self) -> &'static str {
        match self {
            Cloud::Global | Cloud::Gcc => "Global service",
            Cloud::GccHigh => "US Government L4",
            Cloud::Dod => "US Government L5 (DOD)",
        }
    }

    /// Why Microsoft does not offer `feature` in this cloud, citing the page that says so.
    pub fn unavailable(self, feature: Feature) -> Option<String> {
        match (self, feature) {
            (Cloud::GccHigh | Cloud::Dod, Feature::EmailSubmissions) => Some(format!(
                "Microsoft offers email threat submissions (Graph security/threatSubmission) in the global service only, not in {} \
                 (security-emailthreatsubmission-list.md, national cloud table)",
                self.graph_deployment()
            )),
            _ => None,
        }
    }
}

/// What a configured host is, by Microsoft's published hosts.
struct Known {
    clouds: &'static [Cloud],
    /// The resource a `.default` scope names for this host.
    resource: &'static str,
}

const COMMERCIAL_MDE: Known = Known { clouds: &[Cloud::Global, Cloud::Gcc], resource: "https://api.securitycenter.microsoft.com" };

fn known(api: Api, host: &str) -> Option<Known> {
    let h = host.to_ascii_lowercase();
    Some(match (api, h.as_str()) {
        (Api::Graph, "graph.microsoft.com") => Known { clouds: &[Cloud::Global, Cloud::Gcc], resource: "https://graph.microsoft.com" },
        (Api::Graph, "graph.microsoft.us") => Known { clouds: &[Cloud::GccHigh], resource: "https://graph.microsoft.us" },
        (Api::Graph, "dod-graph.microsoft.us") => Known { clouds: &[Cloud::Dod], resource: "https://dod-graph.microsoft.us" },
        (Api::DefenderForEndpoint, "api-gcc.securitycenter.microsoft.us") => {
            Known { clouds: &[Cloud::Gcc], resource: "https://api-gcc.securitycenter.microsoft.us" }
        }
        (Api::DefenderForEndpoint, "api-gov.securitycenter.microsoft.us") => {
            Known { clouds: &[Cloud::GccHigh, Cloud::Dod], resource: "https://api-gov.securitycenter.microsoft.us" }
        }
        // The commercial host, its newer name and the geo hosts (us., eu., api-eu. …).
        (Api::DefenderForEndpoint, h)
            if h == "api.securitycenter.microsoft.com"
                || h == "api.security.microsoft.com"
                || h.ends_with(".api.security.microsoft.com")
                || (h.starts_with("api-") && h.ends_with(".securitycenter.microsoft.com")) =>
        {
            COMMERCIAL_MDE
        }
        (Api::Exchange, "outlook.office365.com") => {
            Known { clouds: &[Cloud::Global, Cloud::Gcc], resource: "https://outlook.office365.com" }
        }
        (Api::Exchange, "outlook.office365.us") => Known { clouds: &[Cloud::GccHigh], resource: "https://outlook.office365.us" },
        (Api::Exchange, "webmail.apps.mil") => Known { clouds: &[Cloud::Dod], resource: "https://webmail.apps.mil" },
        _ => return None,
    })
}

fn login_clouds(host: &str) -> Option<&'static [Cloud]> {
    match host.to_ascii_lowercase().as_str() {
        "login.microsoftonline.com" => Some(&[Cloud::Global, Cloud::Gcc]),
        "login.microsoftonline.us" => Some(&[Cloud::GccHigh, Cloud::Dod]),
        _ => None,
    }
}

/// Cloud Apps' resource: its application id, the same in every cloud (first-party apps keep
/// their ids; api-authentication-application.md shows the commercial scope only).
const CLOUD_APPS_SCOPE: &str = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default";

/// The `.default` scope of each API, for the hosts configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    graph: String,
    mde: String,
    exchange: String,
}

impl Scopes {
    pub fn of(&self, api: Api) -> &str {
        match api {
            Api::Graph => &self.graph,
            Api::DefenderForEndpoint => &self.mde,
            Api::Exchange => &self.exchange,
            Api::CloudApps => CLOUD_APPS_SCOPE,
        }
    }
}

impl Default for Scopes {
    fn default() -> Self {
        Cloud::Global.scopes_for_presets()
    }
}

/// The variable a test stack sets to point the functions at a stand-in of Microsoft (the tenant
/// simulator). Never set by template.yaml.
pub const ALLOW_STAND_INS: &str = "ALLOW_NON_MICROSOFT_HOSTS";

/// Which configured hosts are accepted: Microsoft's published ones of the deployment's cloud,
/// or also hosts Microsoft does not publish (a test stack's stand-in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    MicrosoftOnly,
    StandInsAllowed,
}

/// A configured host that is not one of the deployment's cloud's Microsoft hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMismatch {
    /// The variable that set it (LOGIN_BASE_URL, GRAPH_BASE_URL, …).
    pub variable: &'static str,
    pub hint: String,
}

/// The host a request to `url` goes to, as the HTTP client parses it (a `\\` ends the authority
/// of an https URL, so `https://evil.example\\@graph.microsoft.com` goes to evil.example). A URL
/// with credentials in it, or none to parse, has no host this accepts.
fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) if u.username().is_empty() && u.password().is_none() => u.host_str().unwrap_or_default().to_ascii_lowercase(),
        _ => String::new(),
    }
}

impl Cloud {
    fn scopes_for_presets(self) -> Scopes {
        let e = self.endpoints();
        let scope = |api: Api, url: &str| format!("{}/.default", known(api, &host_of(url)).map_or(url, |k| k.resource));
        Scopes {
            graph: scope(Api::Graph, e.graph),
            mde: scope(Api::DefenderForEndpoint, e.mde),
            exchange: scope(Api::Exchange, e.exchange),
        }
    }

    /// Each API's scope, derived from its configured root: a Microsoft host names its own
    /// resource (so a GCC tenant on commercial Defender for Endpoint gets the commercial
    /// resource). A Microsoft host of another cloud is refused: its tokens would not be this
    /// cloud's. A host Microsoft does not publish is refused too (a typo must never receive a
    /// client secret or a token), unless `hosts` is [`Hosts::StandInsAllowed`]: a test stack's
    /// stand-in then gets this cloud's scopes.
    pub fn scopes(self, login: &str, graph: &str, mde: &str, exchange: &str, hosts: Hosts) -> Result<Scopes, HostMismatch> {
        let presets = self.scopes_for_presets();
        let e = self.endpoints();
        match login_clouds(&host_of(login)) {
            Some(clouds) if !clouds.contains(&self) => return Err(self.mismatch("LOGIN_BASE_URL", login, clouds, e.login)),
            None if hosts == Hosts::MicrosoftOnly => return Err(self.stranger("LOGIN_BASE_URL", login, e.login)),
            _ => {}
        }
        let derive = |api: Api, variable: &'static str, url: &str, preset: &str, fallback: String| match known(api, &host_of(url)) {
            None if hosts == Hosts::StandInsAllowed => Ok(fallback),
            None => Err(self.stranger(variable, url, preset)),
            Some(k) if k.clouds.contains(&self) => Ok(format!("{}/.default", k.resource)),
            Some(k) => Err(self.mismatch(variable, url, k.clouds, preset)),
        };
        Ok(Scopes {
            graph: derive(Api::Graph, "GRAPH_BASE_URL", graph, e.graph, presets.graph.clone())?,
            mde: derive(Api::DefenderForEndpoint, "MDE_BASE_URL", mde, e.mde, presets.mde.clone())?,
            exchange: derive(Api::Exchange, "EXCHANGE_BASE_URL", exchange, e.exchange, presets.exchange.clone())?,
        })
    }

    fn stranger(self, variable: &'static str, url: &str, preset: &str) -> HostMismatch {
        HostMismatch {
            variable,
            hint: format!(
                "`{}` is not one of Microsoft's hosts for {}: the client secret and tokens go only to Microsoft; use {preset} (leave the template's host parameter empty for the \
                 preset) or correct the host. Only a test stack pointed at a stand-in sets {ALLOW_STAND_INS}=true",
                host_of(url),
                self.name()
            ),
        }
    }

    fn mismatch(self, variable: &'static str, url: &str, clouds: &[Cloud], preset: &str) -> HostMismatch {
        let theirs: Vec<&str> = clouds.iter().map(|c| c.name()).collect();
        HostMismatch {
            variable,
            hint: format!(
                "`{}` serves {}, but MICROSOFT_CLOUD is {}: tokens of one cloud are not accepted in another; use {preset} \
                 (leave the template's host parameter empty for the preset) or set MicrosoftCloud to the tenant's cloud",
                host_of(url),
                theirs.join(" and "),
                self.name()
            ),
        }
    }

    /// Whether a Cloud Apps portal host is one of this cloud's, and the fix if not.
    pub fn cloud_apps_portal_problem(self, host: &str) -> Option<String> {
        let h = host.to_ascii_lowercase();
        if self.cloud_apps_suffixes().iter().any(|s| h.ends_with(s)) {
            return None;
        }
        let other = CLOUD_NAMES
            .iter()
            .map(|(_, c)| *c)
            .filter(|c| c.cloud_apps_suffixes().iter().any(|s| h.ends_with(s)))
            .map(|c| c.name())
            .collect::<Vec<_>>();
        Some(format!(
            "`{host}` is a Cloud Apps portal of {}, but this deployment serves {} (portals *{}): copy this tenant's API URL from \
             the Defender portal → Settings → Cloud Apps → System → About, or deploy with MicrosoftCloud set to the tenant's cloud",
            if other.is_empty() { "no known cloud".to_owned() } else { other.join(" and ") },
            self.name(),
            self.cloud_apps_suffixes().join(", *")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_link_is_followed_only_to_the_storage_hosts_microsoft_documents_for_the_cloud() {
        let ok = |cloud, host: &str| host_listed(host, result_link_hosts(cloud));
        // Microsoft's own sample link (get-live-response-result.md) is on core.windows.net itself.
        assert!(ok(Cloud::Global, "core.windows.net") && ok(Cloud::Global, "wdatpprd.blob.core.windows.net"));
        assert!(!ok(Cloud::Global, "x.blob.core.usgovcloudapi.net"), "a commercial tenant's links are commercial");
        assert!(!ok(Cloud::Global, "x.blob.core.chinacloudapi.cn") && !ok(Cloud::Global, "blob.core.windows.net.evil.com"));
        assert!(!ok(Cloud::Global, "x.core.windows.net") && !ok(Cloud::Global, "evilcore.windows.net"));
        assert!(ok(Cloud::Gcc, "x.blob.core.usgovcloudapi.net") && ok(Cloud::Gcc, "x.blob.core.windows.net"));
        for c in [Cloud::GccHigh, Cloud::Dod] {
            assert!(ok(c, "automatedirstrffusgv.blob.core.usgovcloudapi.net"));
            assert!(!ok(c, "core.windows.net") && !ok(c, "x.blob.core.windows.net"), "{c:?} stays in Azure Government");
        }
    }

    #[test]
    fn each_preset_derives_the_scopes_of_its_own_cloud() {
        for (_, cloud) in CLOUD_NAMES {
            let e = cloud.endpoints();
            let s = cloud.scopes(e.login, e.graph, e.mde, e.exchange, Hosts::MicrosoftOnly).unwrap();
            assert_eq!(s, cloud.scopes_for_presets());
            assert_eq!(s.of(Api::Graph), format!("{}/.default", e.graph), "a .default scope names the national Graph root");
            assert_eq!(s.of(Api::CloudApps), CLOUD_APPS_SCOPE);
        }
        let high = Cloud::GccHigh.scopes_for_presets();
        assert_eq!(high.of(Api::DefenderForEndpoint), "https://api-gov.securitycenter.microsoft.us/.default");
        assert_eq!(high.of(Api::Exchange), "https://outlook.office365.us/.default");
        assert_eq!(Cloud::Dod.scopes_for_presets().of(Api::Graph), "https://dod-graph.microsoft.us/.default");
    }

    #[test]
    fn a_geo_host_keeps_the_legacy_resource_and_gcc_may_stay_on_commercial_defender() {
        let g = Cloud::Global.endpoints();
        for geo in
            ["https://eu.api.security.microsoft.com", "https://api-eu.securitycenter.microsoft.com", "https://api.security.microsoft.com"]
        {
            let s = Cloud::Global.scopes(g.login, g.graph, geo, g.exchange, Hosts::MicrosoftOnly).unwrap();
            assert_eq!(s.of(Api::DefenderForEndpoint), "https://api.securitycenter.microsoft.com/.default", "{geo}");
        }
        let c = Cloud::Gcc.endpoints();
        let s = Cloud::Gcc.scopes(c.login, c.graph, "https://api.securitycenter.microsoft.com", c.exchange, Hosts::MicrosoftOnly).unwrap();
        assert_eq!(s.of(Api::DefenderForEndpoint), "https://api.securitycenter.microsoft.com/.default");
        assert_eq!(Cloud::Gcc.scopes_for_presets().of(Api::DefenderForEndpoint), "https://api-gcc.securitycenter.microsoft.us/.default");
    }

    #[test]
    fn a_host_of_another_cloud_is_refused_with_the_variable_and_the_fix() {
        let h = Cloud::GccHigh.endpoints();
        let e = Cloud::GccHigh.scopes(h.login, "https://graph.microsoft.com", h.mde, h.exchange, Hosts::StandInsAllowed).unwrap_err();
        assert_eq!(e.variable, "GRAPH_BASE_URL");
        assert!(e.hint.contains("Global and GCC") && e.hint.contains("use https://graph.microsoft.us"), "{}", e.hint);
        let e = Cloud::Global
            .scopes("https://login.microsoftonline.us", "https://graph.microsoft.com", h.mde, h.exchange, Hosts::StandInsAllowed)
            .unwrap_err();
        assert_eq!(e.variable, "LOGIN_BASE_URL");
        let e = Cloud::Dod
            .scopes(h.login, "https://dod-graph.microsoft.us", h.mde, "https://outlook.office365.us", Hosts::MicrosoftOnly)
            .unwrap_err();
        assert_eq!(e.variable, "EXCHANGE_BASE_URL");
        assert!(e.hint.contains("webmail.apps.mil"), "{}", e.hint);
        assert!(Cloud::Global.scopes(h.login, h.graph, h.mde, h.exchange, Hosts::StandInsAllowed).is_err());
    }

    #[test]
    fn a_stand_in_is_accepted_only_where_a_test_stack_allows_it_and_gets_the_scopes_of_the_configured_cloud() {
        let sim = "https://127.0.0.1:4443";
        for (_, cloud) in CLOUD_NAMES {
            assert_eq!(cloud.scopes(sim, sim, sim, sim, Hosts::StandInsAllowed).unwrap(), cloud.scopes_for_presets());
            let e = cloud.scopes(sim, sim, sim, sim, Hosts::MicrosoftOnly).unwrap_err();
            assert_eq!(e.variable, "LOGIN_BASE_URL");
        }
    }

    #[test]
    fn a_host_is_read_as_the_http_client_reads_it() {
        let g = Cloud::Global.endpoints();
        for tricky in
            ["https://evil.example\\@graph.microsoft.com", "https://user@graph.microsoft.com", "https://evil.example#@graph.microsoft.com"]
        {
            let e = Cloud::Global.scopes(g.login, tricky, g.mde, g.exchange, Hosts::MicrosoftOnly).unwrap_err();
            assert_eq!(e.variable, "GRAPH_BASE_URL", "{tricky}");
        }
        assert_eq!(host_of("https://GRAPH.microsoft.com:443/v1.0"), "graph.microsoft.com");
    }

    #[test]
    fn a_typo_in_a_host_is_refused_naming_the_variable_the_preset_and_the_test_stack_switch() {
        let g = Cloud::Global.endpoints();
        let cases = [
            ("LOGIN_BASE_URL", Cloud::Global.scopes("https://login.microsoftonline.co", g.graph, g.mde, g.exchange, Hosts::MicrosoftOnly)),
            ("GRAPH_BASE_URL", Cloud::Global.scopes(g.login, "https://graph.microsfot.com", g.mde, g.exchange, Hosts::MicrosoftOnly)),
            (
                "MDE_BASE_URL",
                Cloud::Global.scopes(g.login, g.graph, "https://api.securitycenter.evil.example", g.exchange, Hosts::MicrosoftOnly),
            ),
            (
                "EXCHANGE_BASE_URL",
                Cloud::Global.scopes(g.login, g.graph, g.mde, "https://outlook.office365.com.evil.example", Hosts::MicrosoftOnly),
            ),
        ];
        for (variable, result) in cases {
            let e = result.unwrap_err();
            assert_eq!(e.variable, variable);
            assert!(e.hint.contains("not one of Microsoft's hosts for Global") && e.hint.contains(ALLOW_STAND_INS), "{}", e.hint);
        }
        let h = Cloud::GccHigh.endpoints();
        let e = Cloud::GccHigh.scopes(h.login, "https://graph.microsoft.usa", h.mde, h.exchange, Hosts::MicrosoftOnly).unwrap_err();
        assert!(e.hint.contains("use https://graph.microsoft.us"), "{}", e.hint);
    }

    #[test]
    fn names_parse_as_the_template_spells_them() {
        assert_eq!(Cloud::parse("GCCHigh"), Ok(Cloud::GccHigh));
        assert_eq!(Cloud::parse(" dod "), Ok(Cloud::Dod));
        assert!(Cloud::parse("gcc-high").unwrap_err().contains("Global, GCC, GCCHigh, DoD"));
        for (n, c) in CLOUD_NAMES {
            assert_eq!(c.name(), n);
        }
    }

    #[test]
    fn email_submissions_are_refused_outside_the_global_service() {
        assert!(Cloud::Global.unavailable(Feature::EmailSubmissions).is_none());
        assert!(Cloud::Gcc.unavailable(Feature::EmailSubmissions).is_none(), "GCC uses the global Graph service");
        let why = Cloud::GccHigh.unavailable(Feature::EmailSubmissions).unwrap();
        assert!(why.contains("US Government L4") && why.contains("security-emailthreatsubmission-list.md"), "{why}");
        assert!(Cloud::Dod.unavailable(Feature::EmailSubmissions).is_some());
        assert!(Cloud::Dod.unavailable(Feature::DefenderAlerts).is_none());
    }

    #[test]
    fn cloud_apps_portals_belong_to_their_cloud() {
        assert!(Cloud::Global.cloud_apps_portal_problem("contoso.us2.portal.cloudappsecurity.com").is_none());
        assert!(Cloud::Gcc.cloud_apps_portal_problem("contoso.us3.portal.cloudappsecuritygov.com").is_none());
        assert!(Cloud::Dod.cloud_apps_portal_problem("contoso.us5.portal.cloudappsecurity.us").is_none());
        let p = Cloud::GccHigh.cloud_apps_portal_problem("contoso.us2.portal.cloudappsecurity.com").unwrap();
        assert!(p.contains("of Global") && p.contains("*.portal.cloudappsecurity.us"), "{p}");
    }
}
