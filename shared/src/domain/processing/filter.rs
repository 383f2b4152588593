//! Which alerts go downstream: the integration's filters, each drop with its reason.

use std::collections::BTreeSet;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::graph_alert::{FileDetails, GraphAlert};
use crate::domain::source::Source;

/// Every `detectionSource` member of the v1.0 metadata (ms-apis.md §2), 39 in all, including
/// those Graph returns only with `Prefer: include-unknown-enum-members`.
pub const DETECTION_SOURCES: &[&str] = &[
    "unknown",
    "microsoftDefenderForEndpoint",
    "antivirus",
    "smartScreen",
    "customTi",
    "microsoftDefenderForOffice365",
    "automatedInvestigation",
    "microsoftThreatExperts",
    "customDetection",
    "microsoftDefenderForIdentity",
    "cloudAppSecurity",
    "microsoft365Defender",
    "azureAdIdentityProtection",
    "manual",
    "microsoftDataLossPrevention",
    "appGovernancePolicy",
    "appGovernanceDetection",
    "unknownFutureValue",
    "microsoftDefenderForCloud",
    "microsoftDefenderForIoT",
    "microsoftDefenderForServers",
    "microsoftDefenderForStorage",
    "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers",
    "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault",
    "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement",
    "nrtAlerts",
    "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics",
    "builtInMl",
    "microsoftInsiderRiskManagement",
    "microsoftThreatIntelligence",
    "microsoftDefenderForAIServices",
    "securityCopilot",
    "microsoftSentinel",
];

pub const SEVERITIES: &[&str] = &["informational", "low", "medium", "high", "unknown"];

/// DLP enforcement as the processor names it. alerts_v2 documents no such field (ms-apis.md
/// §12); see [`dlp_mode`] for what is read and how it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DlpMode {
    /// Blocking rules: RuleMode `Enforce`, policy mode `Enable`, endpoint modes 2, 3, 4.
    Enforce,
    /// Simulation with notifications: `AuditAndNotify`, `Audit with Notify`, `TestWithNotifications`.
    AuditAndNotify,
    /// Silent simulation: `Audit`, `Audit only`, `TestWithoutNotifications`, endpoint modes 1, 5.
    AuditOnly,
}

/// Why an alert did not go downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    Severity,
    DetectionSource,
    Title,
    File,
    PreludeTest,
    DlpMode,
    /// A submission's verdict is one of the integration's excluded result categories.
    EmailResultCategory,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Severity => "severity",
            DropReason::DetectionSource => "detection_source",
            DropReason::Title => "title_exclusion",
            DropReason::File => "file_exclusion",
            DropReason::PreludeTest => "prelude_test",
            DropReason::DlpMode => "dlp_mode",
            DropReason::EmailResultCategory => "email_result_category",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Goes downstream; `passed` names the filters applied, `notes` what was unusual.
    Pass {
        passed: Vec<&'static str>,
        notes: Vec<String>,
    },
    Drop {
        reason: DropReason,
        detail: String,
    },
}

/// The filter settings of one integration, as stored (JSON) and validated at save time.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterDoc {
    /// Severities to keep; empty = all.
    pub severities: Vec<String>,
    /// detectionSource members to keep; empty = all.
    pub detection_sources: Vec<String>,
    /// Case-insensitive substrings; an alert whose title contains one is dropped.
    pub title_excludes: Vec<String>,
    /// Regular expressions (Rust `regex` syntax) matched against the title.
    pub title_exclude_patterns: Vec<String>,
    /// File names (case-insensitive), paths with `*` wildcards, SHA-1/SHA-256 hashes.
    pub file_excludes: Vec<String>,
    /// Drop alerts raised by Prelude Security's test probes.
    pub exclude_prelude: bool,
    pub prelude: Option<PreludeDoc>,
    /// DLP enforcement modes to keep; empty = every DLP alert.
    pub dlp_modes: Vec<DlpMode>,
}

/// What identifies a Prelude Security test: Prelude's probe runs each Verified Security Test as
/// a binary named by the test's UUID in its `.vst` working directory (docs.preludesecurity.com,
/// "Probes", "Security tests").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PreludeDoc {
    /// Folder names that hold the test binaries.
    pub folders: Vec<String>,
    /// Also require the file name to be a UUID (with or without an extension).
    pub uuid_names: bool,
    /// Parent process images that run the tests.
    pub parent_images: Vec<String>,
    /// Signers/publishers of the probe.
    pub signers: Vec<String>,
}

impl Default for PreludeDoc {
    fn default() -> Self {
        PreludeDoc {
            folders: vec![".vst".into()],
            uuid_names: true,
            parent_images: vec!["prelude-probe.exe".into(), "prelude-probe".into()],
            signers: vec!["Prelude Research, Inc.".into()],
        }
    }
}

/// A field of the filter settings that is not acceptable, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filters.{field}: {problem}")]
pub struct FilterError {
    pub field: String,
    pub problem: String,
}

#[derive(Debug, Clone)]
enum FilePattern {
    Name(String),
    Path(Regex),
    Hash(String),
}

/// Validated filters, ready to run.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    severities: BTreeSet<String>,
    detection_sources: BTreeSet<String>,
    title_excludes: Vec<String>,
    title_patterns: Vec<Regex>,
    files: Vec<FilePattern>,
    prelude: Option<(PreludeDoc, Regex)>,
    dlp_modes: BTreeSet<DlpMode>,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> FilterError {
    FilterError { field: field.into(), problem: problem.into() }
}

/// `C:\Users\*\Downloads\*.exe` → an anchored, case-insensitive regex; `\` and `/` both match either.
fn glob(pattern: &str) -> Result<Regex, regex::Error> {
    let mut re = String::from("(?i)^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '\\' | '/' => re.push_str(r"[\\/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re)
}

impl FilterDoc {
    pub fn validate(&self) -> Result<Filters, FilterError> {
        let mut f = Filters::default();
        for (i, s) in self.severities.iter().enumerate() {
            let s = s.to_ascii_lowercase();
            if !SEVERITIES.contains(&s.as_str()) {
                return Err(err(format!("severities[{i}]"), format!("`{s}` is not a severity; use {}", SEVERITIES.join(", "))));
            }
            f.severities.insert(s);
        }
        for (i, s) in self.detection_sources.iter().enumerate() {
            let known = DETECTION_SOURCES.iter().find(|m| m.eq_ignore_ascii_case(s));
            let Some(m) = known else {
                return Err(err(
                    format!("detection_sources[{i}]"),
                    format!("`{s}` is not a Graph detectionSource member (e.g. antivirus, microsoftDefenderForEndpoint, customDetection)"),
                ));
            };
            f.detection_sources.insert((*m).to_owned());
        }
        for (i, t) in self.title_excludes.iter().enumerate() {
            if t.trim().is_empty() {
                return Err(err(format!("title_excludes[{i}]"), "is empty: it would drop every alert"));
            }
            f.title_excludes.push(t.to_lowercase());
        }
        for (i, p) in self.title_exclude_patterns.iter().enumerate() {
            let re = Regex::new(&format!("(?i){p}"))
                .map_err(|e| err(format!("title_exclude_patterns[{i}]"), format!("is not a valid regular expression: {e}")))?;
            if re.is_match("") {
                return Err(err(format!("title_exclude_patterns[{i}]"), "matches an empty title: it would drop every alert"));
            }
            f.title_patterns.push(re);
        }
        for (i, p) in self.file_excludes.iter().enumerate() {
            let p = p.trim();
            let hex = p.chars().all(|c| c.is_ascii_hexdigit());
            let pat = if hex && (p.len() == 40 || p.len() == 64) {
                FilePattern::Hash(p.to_ascii_lowercase())
            } else if p.contains(['\\', '/']) {
                FilePattern::Path(glob(p).map_err(|e| err(format!("file_excludes[{i}]"), e.to_string()))?)
            } else if p.is_empty() || p == "*" {
                return Err(err(format!("file_excludes[{i}]"), "must name a file, a path or a SHA-1/SHA-256 hash"));
            } else if p.contains('*') {
                FilePattern::Path(glob(p).map_err(|e| err(format!("file_excludes[{i}]"), e.to_string()))?)
            } else {
                FilePattern::Name(p.to_lowercase())
            };
            f.files.push(pat);
        }
        if self.exclude_prelude {
            let doc = self.prelude.clone().unwrap_or_default();
            let uuid = Regex::new(r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(\.[a-z0-9]+)?$")
                .map_err(|e| err("prelude", e.to_string()))?;
            f.prelude = Some((doc, uuid));
        } else if self.prelude.is_some() {
            return Err(err("prelude", "is set but exclude_prelude is false; set exclude_prelude: true to use it"));
        }
        f.dlp_modes = self.dlp_modes.iter().copied().collect();
        Ok(f)
    }
}

/// The enforcement mode of a DLP alert, from what can carry it (ms-apis.md §12): a rule's
/// `RuleMode` in `additionalData.PolicyDetails[].Rules[]` (the Management Activity DLP schema's
/// name), a policy `Mode`, or the endpoint's numeric `EnforcementMode`. None when absent.
pub fn dlp_mode(additional: Option<&Value>) -> Option<DlpMode> {
    let data = additional?;
    let from_text = |s: &str| match s.to_ascii_lowercase().replace([' ', '_'], "").as_str() {
        "enforce" | "enable" | "block" => Some(DlpMode::Enforce),
        "auditandnotify" | "auditwithnotify" | "testwithnotifications" | "warn" => Some(DlpMode::AuditAndNotify),
        "audit" | "auditonly" | "testwithoutnotifications" => Some(DlpMode::AuditOnly),
        _ => None,
    };
    let rule_modes = data
        .get("PolicyDetails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|p| p.get("Rules").and_then(Value::as_array).into_iter().flatten())
        .filter_map(|r| r.get("RuleMode").and_then(Value::as_str))
        .filter_map(from_text);
    // The strictest rule that matched decides.
    if let Some(m) = rule_modes.min() {
        return Some(m);
    }
    if let Some(m) = data.get("Mode").and_then(Value::as_str).and_then(from_text) {
        return Some(m);
    }
    match data.get("EnforcementMode").and_then(Value::as_i64) {
        Some(2..=4) => Some(DlpMode::Enforce),
        Some(1 | 5) => Some(DlpMode::AuditOnly),
        _ => None,
    }
}

/// The note on a DLP alert whose enforcement mode cannot be read (counted: `DlpModeUnknown`).
pub const DLP_MODE_UNKNOWN: &str = "the DLP alert names no enforcement mode; kept";

/// What Test & Save says of `dlp_modes`: no Microsoft document names where a DLP alert carries
/// its mode. alerts_v2 documents `additionalData` only as "other alert properties" and no DLP
/// evidence type exists; the keys read are the Office 365 Management Activity API's DLP audit
/// schema's (`PolicyDetails[].Rules[].RuleMode`, `EndpointMetaData.EnforcementMode`).
pub const DLP_MODE_CAVEAT: &str = "filters.dlp_modes cannot be guaranteed: no Microsoft document says where a DLP alert \
     carries its enforcement mode (alerts_v2 documents additionalData only as other alert properties); the filter reads the \
     Office 365 Management Activity API's DLP names there (PolicyDetails[].Rules[].RuleMode, EnforcementMode), and a DLP \
     alert without them is kept and counted in the metric DlpModeUnknown";

/// The sources whose items carry Defender's `detectionSource`: the one filter that is a
/// Defender-alert setting applies to them alone. Email threat submissions have none (they read as
/// `unknown`) and Cloud Apps alerts carry their own product's name, so an allow-list set as
/// Microsoft's guide sets it for Defender alerts would drop every one of theirs.
pub fn has_detection_source(source: Source) -> bool {
    matches!(source, Source::DefenderAlerts | Source::DefenderIncidents)
}

impl Filters {
    /// Whether an item of `source` is kept; `detection_sources` applies to Defender's alerts
    /// (and the alerts of incidents) only.
    pub fn decide(&self, source: Source, a: &GraphAlert) -> Decision {
        let mut passed = Vec::new();
        let mut notes = Vec::new();
        let severity = a.severity.as_deref().unwrap_or("unknown").to_ascii_lowercase();
        if !self.severities.is_empty() {
            if !self.severities.contains(&severity) {
                return Decision::Drop { reason: DropReason::Severity, detail: format!("severity {severity} is not enabled") };
            }
            passed.push("severity");
        }
        if !self.detection_sources.is_empty() && has_detection_source(source) {
            let ds = a.detection_source.as_deref().unwrap_or("unknown");
            let known = DETECTION_SOURCES.iter().any(|m| m.eq_ignore_ascii_case(ds)) && ds != "unknownFutureValue";
            if !known {
                // A member newer than this build (or masked as unknownFutureValue) is kept and reported, never dropped by accident.
                notes.push(format!("detectionSource `{ds}` is not a member this version knows; kept"));
            } else if !self.detection_sources.iter().any(|m| m.eq_ignore_ascii_case(ds)) {
                return Decision::Drop { reason: DropReason::DetectionSource, detail: format!("detectionSource {ds} is not enabled") };
            }
            passed.push("detection_source");
        }
        let title = a.title.as_deref().unwrap_or_default();
        if !self.title_excludes.is_empty() || !self.title_patterns.is_empty() {
            let lower = title.to_lowercase();
            if let Some(t) = self.title_excludes.iter().find(|t| lower.contains(t.as_str())) {
                return Decision::Drop { reason: DropReason::Title, detail: format!("title contains `{t}`") };
            }
            if let Some(p) = self.title_patterns.iter().find(|p| p.is_match(title)) {
                return Decision::Drop {
                    reason: DropReason::Title,
                    detail: format!("title matches /{}/", p.as_str().trim_start_matches("(?i)")),
                };
            }
            passed.push("title_exclusion");
        }
        if !self.files.is_empty() {
            if let Some((f, why)) = a.subject_files().find_map(|f| self.file_match(f).map(|w| (f, w))) {
                return Decision::Drop {
                    reason: DropReason::File,
                    detail: format!("{} matches {why}", f.file_name.as_deref().unwrap_or("a file")),
                };
            }
            passed.push("file_exclusion");
        }
        if let Some((p, uuid)) = &self.prelude {
            if let Some(why) = prelude_match(a, p, uuid) {
                return Decision::Drop { reason: DropReason::PreludeTest, detail: why };
            }
            passed.push("prelude_exclusion");
        }
        if a.service_source.as_deref() == Some("dataLossPrevention") && !self.dlp_modes.is_empty() {
            match dlp_mode(a.additional_data.as_ref()) {
                Some(m) if !self.dlp_modes.contains(&m) => {
                    return Decision::Drop { reason: DropReason::DlpMode, detail: format!("DLP enforcement mode {m:?} is not enabled") };
                }
                Some(_) => {}
                None => notes.push(DLP_MODE_UNKNOWN.into()),
            }
            passed.push("dlp_mode");
        }
        Decision::Pass { passed, notes }
    }

    fn file_match(&self, f: &FileDetails) -> Option<String> {
        let name = f.file_name.as_deref().unwrap_or_default();
        let full = match (f.file_path.as_deref(), name) {
            (Some(p), n) if !n.is_empty() => format!("{}\\{n}", p.trim_end_matches(['\\', '/'])),
            (Some(p), _) => p.to_owned(),
            (None, n) => n.to_owned(),
        };
        let hashes = [f.sha1.as_deref(), f.sha256.as_deref()];
        self.files.iter().find_map(|p| match p {
            FilePattern::Name(n) if name.eq_ignore_ascii_case(n) => Some(format!("the excluded name {n}")),
            FilePattern::Path(re) if re.is_match(&full) || re.is_match(name) => Some(format!("the excluded path {}", re.as_str())),
            FilePattern::Hash(h) if hashes.iter().flatten().any(|x| x.eq_ignore_ascii_case(h)) => Some(format!("the excluded hash {h}")),
            _ => None,
        })
    }
}

fn prelude_match(a: &GraphAlert, p: &PreludeDoc, uuid: &Regex) -> Option<String> {
    for e in &a.evidence {
        let files = [e.file_details.as_ref(), e.image_file.as_ref()];
        for f in files.into_iter().flatten() {
            let in_folder = f
                .file_path
                .as_deref()
                .is_some_and(|path| path.split(['\\', '/']).any(|seg| p.folders.iter().any(|d| d.eq_ignore_ascii_case(seg))));
            let named = !p.uuid_names || f.file_name.as_deref().is_some_and(|n| uuid.is_match(n));
            if in_folder && named {
                return Some(format!("{} runs from Prelude's test folder", f.file_name.as_deref().unwrap_or("a file")));
            }
            let signed = [f.signer.as_deref(), f.file_publisher.as_deref()]
                .into_iter()
                .flatten()
                .any(|s| p.signers.iter().any(|x| x.eq_ignore_ascii_case(s)));
            if signed {
                return Some(format!("{} is signed by Prelude", f.file_name.as_deref().unwrap_or("a file")));
            }
        }
        if let Some(parent) = e.parent_process_image_file.as_ref().and_then(|f| f.file_name.as_deref()) {
            if p.parent_images.iter().any(|x| x.eq_ignore_ascii_case(parent)) {
                return Some(format!("started by Prelude's probe {parent}"));
            }
        }
    }
    None
}
