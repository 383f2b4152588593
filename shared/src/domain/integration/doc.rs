//! The integration configuration document, `version = 1` (DESIGN.md §6): what the Test & Save
//! screen collects, read from TOML or JSON, stored as JSON in the integration's record.
//! Unknown fields are errors; every problem names its field and the fix, all at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::duration_text::DurationText;
use crate::domain::field_error::FieldError;
use crate::domain::integration::sections::{
    EmailSubmissionsDoc, EnrichmentDoc, EvidenceDelivery, EvidenceDoc, FeaturesDoc, MailboxDoc, MAX_VERDICT_WAIT,
};
use crate::domain::integration::{is_guid, normalize_guid, DefenderMode, Integration, OutputFormat};
use crate::domain::polling::window::WindowSettings;
use crate::domain::processing::filter::FilterDoc;
use crate::domain::response::remediation::RemediationDoc;

pub const DOC_VERSION: u32 = 1;

/// A saved document is one DynamoDB item (400 KB at most, with the record's other attributes);
/// documents stay far below that, so a save never fails on the item's size.
pub const MAX_DOC_BYTES: usize = 64 * 1024;

/// Cloud Apps portal hosts (api-introduction.md: `<tenant>.<region>.portal.cloudappsecurity.com`;
/// US Government tenants use `cloudappsecuritygov.com` (GCC) or `cloudappsecurity.us` (GCC High,
/// DoD); which one a deployment accepts follows its cloud, domain/cloud.rs).
pub const CLOUD_APPS_HOST_SUFFIXES: &[&str] = &crate::domain::cloud::CLOUD_APPS_SUFFIXES;

/// Every `submissionResultCategory` member (ms-apis.md §4), including those Graph returns only
/// with `Prefer: include-unknown-enum-members`.
pub const SUBMISSION_RESULT_CATEGORIES: &[&str] = &[
    "notJunk",
    "spam",
    "phishing",
    "malware",
    "allowedByPolicy",
    "blockedByPolicy",
    "spoof",
    "unknown",
    "noResultAvailable",
    "unknownFutureValue",
    "beingAnalyzed",
    "notSubmittedToMicrosoft",
    "phishingSimulation",
    "allowedDueToOrganizationOverride",
    "blockedDueToOrganizationOverride",
    "allowedDueToUserOverride",
    "blockedDueToUserOverride",
    "itemNotfound",
    "threatsFound",
    "noThreatsFound",
    "domainImpersonation",
    "userImpersonation",
    "brandImpersonation",
    "authenticationFailure",
    "spoofedBlocked",
    "spoofedAllowed",
    "bulk",
    "reasonLostInTransit",
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationDoc {
    /// The document's format version: 1.
    pub version: u32,
    /// Names the integration in records, cursors, messages and commands.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    /// The Secrets Manager secret (name or ARN) with the client secret or certificate.
    pub secret_ref: String,
    /// Other integrations use the same secret (one app registration polled several ways), and
    /// a save of this one may write new credentials into it for all of them. Without it, a
    /// save refuses to write a secret another integration names.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared_secret: bool,
    /// The tenant's initial domain, `<name>.onmicrosoft.com` (Exchange Online calls need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// The Cloud Apps API URL from Defender portal → Settings → Cloud Apps → System → About.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portal_url: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub polling: PollingDoc,
    #[serde(default)]
    pub sources: SourcesDoc,
    #[serde(default)]
    pub evidence: EvidenceDoc,
    #[serde(default)]
    pub features: FeaturesDoc,
    #[serde(default)]
    pub enrichment: EnrichmentDoc,
    #[serde(default)]
    pub remediation: RemediationDoc,
    #[serde(default)]
    pub filters: FilterDoc,
    #[serde(default)]
    pub output: OutputFormat,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

/// Timing of every source of the integration (DESIGN.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingDoc {
    pub interval: DurationText,
    pub lookback: DurationText,
    pub ingestion_delay: DurationText,
    pub overlap: DurationText,
}

impl Default for PollingDoc {
    fn default() -> Self {
        use crate::domain::integration::defaults as d;
        PollingDoc {
            interval: DurationText(d::POLL_INTERVAL),
            lookback: DurationText(d::LOOKBACK),
            ingestion_delay: DurationText(d::INGESTION_DELAY),
            overlap: DurationText(d::OVERLAP),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesDoc {
    /// `alerts`, `incidents` or `off`.
    pub defender: DefenderMode,
    /// Defender for Cloud Apps alerts (needs `portal_url`).
    pub cloud_apps: bool,
    pub email_submissions: EmailSubmissionsDoc,
    /// The mailbox users report phishing to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phishing_mailbox: Option<MailboxDoc>,
}

/// Every problem of one document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not valid:{}", if .id == "?" { "the integration document".to_owned() } else { format!("integration `{}`", .id) }, .errors.iter().map(|e| format!("\n  {}: {}", e.field, e.problem)).collect::<String>())]
pub struct IntegrationError {
    pub id: String,
    pub errors: Vec<FieldError>,
}

impl IntegrationError {
    pub fn single(id: &str, field: impl Into<String>, problem: impl Into<String>) -> Self {
        IntegrationError { id: id.to_owned(), errors: vec![FieldError { field: field.into(), problem: problem.into() }] }
    }

    pub fn has(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }
}

/// Reads a document from JSON, naming the path of a field that does not fit.
pub fn from_json(text: &str) -> Result<IntegrationDoc, IntegrationError> {
    if text.trim().is_empty() {
        return Err(IntegrationError::single("?", "(document)", "is empty; start from infra/examples/integration.toml"));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map(normalized).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        IntegrationError::single("?", if field == "." { "(document)".to_owned() } else { field }, explain(&inner))
    })
}

/// Reads a document from TOML (the local program's files).
#[cfg(feature = "toml")]
pub fn from_toml(text: &str) -> Result<IntegrationDoc, IntegrationError> {
    if text.trim().is_empty() {
        return Err(IntegrationError::single("?", "(document)", "is empty; start from infra/examples/integration.toml"));
    }
    let de = toml::Deserializer::parse(text).map_err(|e| IntegrationError::single("?", "(document)", e.to_string()))?;
    serde_path_to_error::deserialize(de).map(normalized).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.message().to_owned();
        IntegrationError::single("?", if field == "." { "(document)".to_owned() } else { field }, explain(&msg))
    })
}

/// serde's wording, with what to do about the usual cases.
fn explain(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg).trim().to_owned();
    if msg.starts_with("unknown field") {
        format!("{msg}; remove it or fix its spelling")
    } else if msg.starts_with("missing field") {
        format!("{msg}; it is required (see infra/examples/integration.toml)")
    } else {
        msg
    }
}

fn normalized(mut doc: IntegrationDoc) -> IntegrationDoc {
    doc.tenant_id = normalize_guid(&doc.tenant_id);
    doc.client_id = normalize_guid(&doc.client_id);
    doc
}

fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !v.contains(char::is_whitespace)
}

/// A rough OData `$filter` check (quotes and parentheses balanced, no query options inside);
/// Test & Save sends the filter to Graph, which has the final word.
fn odata_filter_problem(f: &str) -> Option<String> {
    if f.trim().is_empty() {
        return Some("is empty; leave `filter` out to read every message".into());
    }
    let mut depth = 0i32;
    let mut in_quote = false;
    for c in f.chars() {
        match c {
            '\'' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote => {
                depth -= 1;
                if depth < 0 {
                    return Some("has a `)` without its `(`".into());
                }
            }
            '&' | '$' | '?' if !in_quote => return Some(format!("contains `{c}`: give only the expression, without `$filter=`")),
            _ => {}
        }
    }
    if in_quote {
        return Some("has an unclosed quote; quote strings as 'text' and double a quote inside ('it''s')".into());
    }
    if depth != 0 {
        return Some("has an unclosed `(`".into());
    }
    None
}

/// The Cloud Apps portal URL normalised to `https://host` (a trailing `/` or `/api` is dropped).
pub fn portal_base(url: &str) -> Result<String, String> {
    let fix = "copy the API URL from the Microsoft Defender portal → Settings → Cloud Apps → System → About (like https://contoso.us2.portal.cloudappsecurity.com)";
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| format!("`{url}` is not a URL ({e}); {fix}"))?;
    if parsed.scheme() != "https" {
        return Err(format!("must use https, not {}; {fix}", parsed.scheme()));
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    if !CLOUD_APPS_HOST_SUFFIXES.iter().any(|s| host.ends_with(s) && host.len() > s.len()) {
        return Err(format!("`{host}` is not a Cloud Apps portal host (*.portal.cloudappsecurity.com); {fix}"));
    }
    if parsed.port().is_some() || parsed.query().is_some() || !matches!(parsed.path(), "" | "/" | "/api" | "/api/") {
        return Err(format!("must be the portal's base URL without path, port or query; {fix}"));
    }
    Ok(format!("https://{host}"))
}

impl IntegrationDoc {
    /// Checks every field; returns the integration ready to run, or every problem found.
    pub fn validate(&self) -> Result<Integration, IntegrationError> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut bad = |field: &str, problem: String| errors.push(FieldError { field: field.to_owned(), problem });
        let size = serde_json::to_string(self).map_or(0, |j| j.len());
        if size > MAX_DOC_BYTES {
            bad(
                "document",
                format!(
                    "is {size} bytes as JSON; at most {MAX_DOC_BYTES} (it is stored as one DynamoDB item): shorten the filter lists, e.g. one title_exclude_patterns entry instead of many title_excludes"
                ),
            );
        }
        if self.version != DOC_VERSION {
            bad("version", format!("{} is not a known document version; this release reads version = {DOC_VERSION}", self.version));
        }
        if self.id.is_empty() || self.id.len() > 64 || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            bad("id", "must be 1 to 64 letters, digits, '-', '_' or '.'".into());
        }
        if !is_guid(&self.tenant_id) {
            bad(
                "tenant_id",
                "must be the Directory (tenant) ID, a GUID like 6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b, from the app registration's Overview"
                    .into(),
            );
        }
        if !is_guid(&self.client_id) {
            bad("client_id", "must be the Application (client) ID, a GUID, from the app registration's Overview".into());
        }
        if self.secret_ref.trim().is_empty() {
            bad("secret_ref", "must name the Secrets Manager secret that holds the client secret or certificate".into());
        }
        if let Some(org) = &self.organization_id {
            let ok = org
                .strip_suffix(".onmicrosoft.com")
                .is_some_and(|name| !name.is_empty() && !name.contains('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !ok {
                bad(
                    "organization_id",
                    format!(
                        "`{org}` must be the tenant's initial domain, like contoso.onmicrosoft.com (Entra admin center → Domain names)"
                    ),
                );
            }
        }
        let portal = match &self.portal_url {
            Some(u) => match portal_base(u) {
                Ok(b) => Some(b),
                Err(p) => {
                    bad("portal_url", p);
                    None
                }
            },
            None => None,
        };
        let p = &self.polling;
        if p.interval.0 < Duration::from_secs(60) || p.interval.0 > Duration::from_secs(86_400) {
            bad("polling.interval", format!("{} is outside 1m..24h (EventBridge schedules run at most once a minute)", p.interval));
        }
        if p.lookback.0 < Duration::from_secs(60) || p.lookback.0 > Duration::from_secs(90 * 86_400) {
            bad("polling.lookback", format!("{} is outside 1m..90d", p.lookback));
        }
        if p.ingestion_delay.0 > Duration::from_secs(6 * 3600) {
            bad("polling.ingestion_delay", format!("{} is longer than 6h; alerts would arrive hours late", p.ingestion_delay));
        } else if p.ingestion_delay >= p.lookback {
            bad("polling.ingestion_delay", format!("{} must be shorter than polling.lookback ({})", p.ingestion_delay, p.lookback));
        }
        if p.overlap.0.is_zero() || p.overlap.0 > Duration::from_secs(86_400) {
            bad("polling.overlap", format!("{} is outside 1s..24h; late alerts are caught only within delay + overlap", p.overlap));
        } else if p.ingestion_delay.0 + p.overlap.0 < MIN_LATE_ARRIVAL_COVER {
            bad(
                "polling.overlap",
                format!(
                    "ingestion_delay + overlap is {}, below 10m: Microsoft shows alerts minutes after their timestamp, so later ones would be skipped; raise overlap to at least {}",
                    DurationText(p.ingestion_delay.0 + p.overlap.0),
                    DurationText(MIN_LATE_ARRIVAL_COVER.saturating_sub(p.ingestion_delay.0)),
                ),
            );
        }
        let s = &self.sources;
        if s.cloud_apps && self.portal_url.is_none() {
            bad(
                "portal_url",
                "is required when sources.cloud_apps is true; copy it from Defender portal → Settings → Cloud Apps → System → About".into(),
            );
        }
        for (i, c) in s.email_submissions.excluded_result_categories.iter().enumerate() {
            if !SUBMISSION_RESULT_CATEGORIES.contains(&c.as_str()) {
                let hint = SUBMISSION_RESULT_CATEGORIES.iter().find(|m| m.eq_ignore_ascii_case(c)).map_or_else(
                    || "use a submissionResultCategory member such as allowedByPolicy or allowedDueToUserOverride".to_owned(),
                    |m| format!("did you mean `{m}`?"),
                );
                bad(
                    &format!("sources.email_submissions.excluded_result_categories[{i}]"),
                    format!("`{c}` is not a result category; {hint}"),
                );
            }
        }
        let wait = s.email_submissions.verdict_wait;
        if wait.0 < Duration::from_secs(300) || wait.0 > MAX_VERDICT_WAIT {
            bad("sources.email_submissions.verdict_wait", format!("{wait} is outside 5m..3d"));
        }
        if !s.email_submissions.enabled && !s.email_submissions.excluded_result_categories.is_empty() {
            bad(
                "sources.email_submissions.excluded_result_categories",
                "is set while sources.email_submissions.enabled is false; enable the source or remove the list".into(),
            );
        }
        if let Some(m) = &s.phishing_mailbox {
            if !is_email(&m.address) {
                bad("sources.phishing_mailbox.address", format!("`{}` is not a mailbox address like phish@contoso.com", m.address));
            }
            if let Some(problem) = m.filter.as_deref().and_then(odata_filter_problem) {
                bad("sources.phishing_mailbox.filter", problem);
            }
        }
        let ev = &self.evidence;
        if ev.restore_quarantined_files && !ev.live_response_files {
            bad(
                "evidence.restore_quarantined_files",
                "needs evidence.live_response_files: the restore runs through live response; enable both, or remove this one".into(),
            );
        }
        if ev.delivery == EvidenceDelivery::HoldUntilFinal && !ev.live_response_files && !ev.quarantined_email && !ev.delivered_email {
            bad(
                "evidence.delivery",
                "is hold_until_final, but no evidence is fetched: enable evidence.live_response_files, evidence.delivered_email or \
                 evidence.quarantined_email, or remove the setting"
                    .into(),
            );
        }
        if ev.hold_max_wait.0 < Duration::from_secs(60) || ev.hold_max_wait.0 > Duration::from_secs(86_400) {
            bad("evidence.hold_max_wait", format!("{} is outside 1m..24h", ev.hold_max_wait));
        }
        if self.evidence.quarantined_email && self.organization_id.is_none() {
            bad(
                "organization_id",
                "is required when evidence.quarantined_email is true: Exchange Online is addressed by the tenant's contoso.onmicrosoft.com domain".into(),
            );
        }
        let en = &self.enrichment;
        for (i, part) in en.parts.iter().flatten().enumerate() {
            if !self.features.allows(*part) {
                bad(
                    &format!("enrichment.parts[{i}]"),
                    format!(
                        "`{part}` needs features.{} = true (and its permissions); enable it, or remove the part",
                        part.feature().name()
                    ),
                );
            }
        }
        if en.cache_ttl.0 > Duration::from_secs(3600) {
            bad(
                "enrichment.cache_ttl",
                format!("{} is longer than 1h; context would describe the user as they were long ago", en.cache_ttl),
            );
        }
        if en.window.0 < Duration::from_secs(5 * 60) || en.window.0 > Duration::from_secs(86_400) {
            bad("enrichment.window", format!("{} is outside 5m..24h", en.window));
        }
        if !(1..=50).contains(&en.max_sign_ins) {
            bad("enrichment.max_sign_ins", format!("{} is outside 1..50", en.max_sign_ins));
        }
        if !(1..=200).contains(&en.max_groups) {
            bad("enrichment.max_groups", format!("{} is outside 1..200", en.max_groups));
        }
        for e in self.remediation.problems(self.features.remediation) {
            bad(&e.field, e.problem);
        }
        if let Err(e) = self.filters.validate() {
            bad(&format!("filters.{}", e.field), e.problem);
        }
        let nothing = s.defender == DefenderMode::Off && !s.cloud_apps && !s.email_submissions.enabled && s.phishing_mailbox.is_none();
        if nothing {
            bad(
                "sources",
                "enables no source; set sources.defender = \"alerts\" (or incidents), cloud_apps, email_submissions or phishing_mailbox"
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(IntegrationError { id: self.id.clone(), errors });
        }
        Ok(Integration {
            id: self.id.clone(),
            tenant_id: self.tenant_id.to_ascii_lowercase(),
            client_id: self.client_id.to_ascii_lowercase(),
            secret_ref: self.secret_ref.clone(),
            enabled: self.enabled,
            defender_mode: s.defender,
            organization_id: self.organization_id.clone(),
            cloud_apps_base: portal,
            cloud_apps: s.cloud_apps,
            email_submissions: s.email_submissions.clone(),
            phishing_mailbox: s.phishing_mailbox.clone(),
            evidence: self.evidence.clone(),
            features: self.features.clone(),
            enrichment: self.enrichment.clone(),
            remediation: self.remediation.clone(),
            window: WindowSettings { lookback: p.lookback.0, ingestion_delay: p.ingestion_delay.0, overlap: p.overlap.0 },
            poll_interval: p.interval.0,
            filters: self.filters.clone(),
            output: self.output,
        })
    }

    /// A minimal document: Defender alerts, defaults elsewhere.
    pub fn new(id: &str, tenant_id: &str, client_id: &str, secret_ref: &str) -> Self {
        IntegrationDoc {
            version: DOC_VERSION,
            id: id.into(),
            name: None,
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            secret_ref: secret_ref.into(),
            shared_secret: false,
            organization_id: None,
            portal_url: None,
            enabled: true,
            polling: PollingDoc::default(),
            sources: SourcesDoc::default(),
            evidence: EvidenceDoc::default(),
            features: FeaturesDoc::default(),
            enrichment: EnrichmentDoc::default(),
            remediation: RemediationDoc::default(),
            filters: FilterDoc::default(),
            output: OutputFormat::default(),
        }
    }
}

/// Microsoft shows alerts minutes after their timestamp (PEERS.md §2.1); a window that ends
/// less than this far behind, counting the overlap re-read, lets late ones fall through.
pub const MIN_LATE_ARRIVAL_COVER: Duration = Duration::from_secs(10 * 60);

#[cfg(test)]
mod tests {
    use crate::domain::integration::doc::*;

    const T: &str = "6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    const C: &str = "0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6";

    fn doc() -> IntegrationDoc {
        IntegrationDoc::new("contoso", T, C, "m365-ingest/contoso")
    }

    fn fields(d: &IntegrationDoc) -> Vec<String> {
        d.validate().err().map(|e| e.errors.into_iter().map(|f| f.field).collect()).unwrap_or_default()
    }

    #[test]
    fn a_document_too_large_for_one_item_is_refused_with_the_fix() {
        let mut d = doc();
        d.filters.title_excludes = (0..5_000).map(|i| format!("a title to exclude, number {i}")).collect();
        let e = d.validate().unwrap_err();
        assert_eq!(e.errors[0].field, "document");
        assert!(e.errors[0].problem.contains("at most 65536") && e.errors[0].problem.contains("title_exclude_patterns"), "{e}");
        d.filters.title_excludes.truncate(100);
        assert!(d.validate().is_ok());
    }

    #[test]
    fn a_minimal_document_gets_the_defaults() {
        let json = format!(r#"{{"version":1,"id":"contoso","tenant_id":"{T}","client_id":"{C}","secret_ref":"s"}}"#);
        let i = from_json(&json).and_then(|d| d.validate());
        let Ok(i) = i else { panic!("{i:?}") };
        assert_eq!(i.window.overlap, crate::domain::integration::defaults::OVERLAP);
        assert!(i.enabled && i.defender_mode == DefenderMode::Alerts && !i.cloud_apps);
    }

    #[test]
    fn unknown_and_missing_fields_are_named_with_their_path() {
        let e = from_json(&format!(
            r#"{{"version":1,"id":"x","tenant_id":"{T}","client_id":"{C}","secret_ref":"s","polling":{{"intervall":"5m"}}}}"#
        ))
        .err()
        .map(|e| e.errors[0].clone());
        let Some(e) = e else { panic!("accepted") };
        assert_eq!(e.field, "polling.intervall");
        assert!(e.problem.contains("unknown field `intervall`") && e.problem.contains("remove it or fix its spelling"), "{}", e.problem);
        let e = from_json(r#"{"version":1,"id":"x"}"#).err().map(|e| e.errors[0].problem.clone()).unwrap_or_default();
        assert!(e.contains("missing field `tenant_id`"), "{e}");
        let e = from_json(&format!(
            r#"{{"version":1,"id":"x","tenant_id":"{T}","client_id":"{C}","secret_ref":"s","polling":{{"lookback":"two days"}}}}"#
        ))
        .err()
        .map(|e| e.errors[0].clone());
        assert_eq!(e.as_ref().map(|e| e.field.as_str()), Some("polling.lookback"));
        assert!(e.is_some_and(|e| e.problem.contains("90s, 15m, 24h")));
    }

    #[test]
    fn each_field_is_checked_with_its_fix() {
        let cases: Vec<(IntegrationDoc, &str, &str)> = vec![
            (IntegrationDoc { version: 2, ..doc() }, "version", "version = 1"),
            (IntegrationDoc { id: "has space".into(), ..doc() }, "id", "letters, digits"),
            (IntegrationDoc { tenant_id: "contoso.onmicrosoft.com".into(), ..doc() }, "tenant_id", "GUID"),
            (IntegrationDoc { client_id: "app".into(), ..doc() }, "client_id", "Application (client) ID"),
            (IntegrationDoc { secret_ref: " ".into(), ..doc() }, "secret_ref", "Secrets Manager"),
            (IntegrationDoc { organization_id: Some("contoso.com".into()), ..doc() }, "organization_id", "contoso.onmicrosoft.com"),
            (IntegrationDoc { portal_url: Some("http://contoso.us2.portal.cloudappsecurity.com".into()), ..doc() }, "portal_url", "https"),
            (IntegrationDoc { portal_url: Some("https://contoso.example.com".into()), ..doc() }, "portal_url", "Settings → Cloud Apps"),
            (
                IntegrationDoc { portal_url: Some("https://x.us2.portal.cloudappsecurity.com/alerts".into()), ..doc() },
                "portal_url",
                "without path",
            ),
            (IntegrationDoc { portal_url: Some("not a url".into()), ..doc() }, "portal_url", "not a URL"),
        ];
        for (d, field, hint) in cases {
            let e = d.validate().err();
            let Some(e) = e else { panic!("{field} accepted") };
            let f = e.errors.iter().find(|f| f.field == field);
            assert!(f.is_some_and(|f| f.problem.contains(hint)), "{field}: {e}");
        }
    }

    #[test]
    fn durations_and_their_relations_are_checked() {
        let mut d = doc();
        d.polling.interval = DurationText(Duration::from_secs(10));
        d.polling.ingestion_delay = DurationText(Duration::from_secs(86_400 * 2));
        d.polling.overlap = DurationText(Duration::ZERO);
        assert_eq!(fields(&d), ["polling.interval", "polling.ingestion_delay", "polling.overlap"], "all problems at once");
        let mut d = doc();
        d.polling.ingestion_delay = DurationText(Duration::from_secs(3600));
        d.polling.lookback = DurationText(Duration::from_secs(1800));
        assert_eq!(fields(&d), ["polling.ingestion_delay"]);
    }

    #[test]
    fn holding_alerts_needs_evidence_to_wait_for_and_a_bounded_wait() {
        let mut d = doc();
        d.evidence.delivery = EvidenceDelivery::HoldUntilFinal;
        d.evidence.hold_max_wait = DurationText(Duration::from_secs(2 * 86_400));
        assert_eq!(fields(&d), ["evidence.delivery", "evidence.hold_max_wait"]);
        d.evidence.live_response_files = true;
        d.evidence.hold_max_wait = DurationText(Duration::from_secs(3600));
        assert!(fields(&d).is_empty());
        let mut r = doc();
        r.evidence.restore_quarantined_files = true;
        assert_eq!(fields(&r), ["evidence.restore_quarantined_files"], "a restore runs through live response");
        r.evidence.live_response_files = true;
        assert!(fields(&r).is_empty());
        let parsed: EvidenceDoc =
            serde_json::from_str(r#"{"live_response_files":true,"delivery":"hold_until_final","hold_max_wait":"45m"}"#).unwrap_or_default();
        assert_eq!((parsed.delivery, parsed.hold_max_wait.secs()), (EvidenceDelivery::HoldUntilFinal, 2700));
        assert_eq!(serde_json::from_str::<EvidenceDoc>("{}").ok().map(|d| d.hold_max_wait.secs()), Some(1800));
    }

    #[test]
    fn a_delay_and_overlap_that_let_late_alerts_through_are_refused() {
        let mut d = doc();
        d.polling.ingestion_delay = DurationText(Duration::from_secs(60));
        d.polling.overlap = DurationText(Duration::from_secs(5 * 60));
        let e = d.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("polling.overlap: ingestion_delay + overlap is 6m, below 10m"), "{e}");
        assert!(e.contains("raise overlap to at least 9m"), "{e}");
        d.polling.overlap = DurationText(Duration::from_secs(9 * 60));
        assert!(d.validate().is_ok());
    }

    #[test]
    fn sources_and_their_settings_are_checked() {
        let mut d = doc();
        d.sources.cloud_apps = true;
        d.sources.email_submissions.excluded_result_categories = vec!["allowedbypolicy".into()];
        d.sources.phishing_mailbox = Some(MailboxDoc { address: "phish".into(), filter: Some("isRead eq false)".into()) });
        d.evidence.quarantined_email = true;
        let e = d.validate().err().map(|e| e.to_string()).unwrap_or_default();
        for part in [
            "portal_url: is required when sources.cloud_apps",
            "excluded_result_categories[0]: `allowedbypolicy` is not a result category; did you mean `allowedByPolicy`?",
            "sources.email_submissions.excluded_result_categories: is set while sources.email_submissions.enabled is false",
            "sources.phishing_mailbox.address",
            "sources.phishing_mailbox.filter: has a `)` without its `(`",
            "organization_id: is required when evidence.quarantined_email",
        ] {
            assert!(e.contains(part), "missing `{part}` in:\n{e}");
        }
        let mut d = doc();
        d.sources.defender = DefenderMode::Off;
        assert_eq!(fields(&d), ["sources"]);
        let mut d = doc();
        d.sources.phishing_mailbox =
            Some(MailboxDoc { address: "phish@contoso.com".into(), filter: Some("$filter=isRead eq false".into()) });
        assert_eq!(fields(&d), ["sources.phishing_mailbox.filter"]);
        d.sources.phishing_mailbox =
            Some(MailboxDoc { address: "phish@contoso.com".into(), filter: Some("subject eq 'it''s (urgent'".into()) });
        assert!(fields(&d).is_empty());
    }

    #[test]
    fn filter_problems_carry_the_filters_path() {
        let mut d = doc();
        d.filters.severities = vec!["high".into(), "severe".into()];
        let e = d.validate().err();
        assert!(e.is_some_and(|e| e.has("filters.severities[1]")));
    }

    #[test]
    fn the_portal_url_is_normalised() {
        assert_eq!(
            portal_base("https://Contoso.US2.portal.cloudappsecurity.com/api/").as_deref(),
            Ok("https://contoso.us2.portal.cloudappsecurity.com")
        );
        assert!(portal_base("https://portal.cloudappsecurity.com").is_err(), "the generic host is slower and not the tenant's");
    }

    #[test]
    fn documents_round_trip_through_json() {
        let mut d = doc();
        d.sources.cloud_apps = true;
        d.portal_url = Some("https://contoso.us2.portal.cloudappsecurity.com".into());
        let json = serde_json::to_string(&d).unwrap_or_default();
        assert_eq!(from_json(&json).ok(), Some(d));
    }
}
