//! Test & Save: prove an integration's credentials and permissions before anything is saved
//! (DESIGN.md §6; ms-apis.md §1 on `roles`). For each API the enabled features need, get a
//! token and read its `roles`; compare them with each feature's permissions; then make one
//! small real call per feature that reads data. Only a passing configuration is saved.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::app::test_and_save::advice::{self, Ctx};
use crate::domain::cloud::Cloud;
use crate::domain::field_error::FieldError;
use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::revision::{self as revision, Provenance, Relaxation};
use crate::domain::integration::{Credentials, Integration};
use crate::domain::permissions::{
    self, Api, Feature, TokenClaims, EXCHANGE_DIRECTORY_ROLES, QUARANTINE_EXPORT_ROLES, SENSITIVE_ACTION_ROLES,
};
use crate::domain::processing::context::ContextPart;
use crate::domain::time::GraphTime;
use crate::error::{GraphError, SecretError};
use crate::ports::{ContextProbe, IntegrationStore, MicrosoftProbe, PartCall, Probe, SecretSource, SecretWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

/// One line of the report: a feature, and whether it works.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureResult {
    pub feature: &'static str,
    pub api: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl FeatureResult {
    fn ok(f: Feature, detail: String) -> Self {
        FeatureResult { feature: f.name(), api: f.api().owner(), status: Status::Ok, detail, fix: None }
    }

    fn failed(f: Feature, detail: String, fix: String) -> Self {
        FeatureResult { feature: f.name(), api: f.api().owner(), status: Status::Failed, detail, fix: Some(fix) }
    }
}

/// What was saved, when the check passed and saving was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub revision: u64,
    /// Who the revision records as its author.
    pub saved_by: String,
    /// The fields it changed, and the guard rails it relaxed (each named by the request).
    pub changes: Vec<crate::domain::integration::revision::Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relaxed: Vec<Relaxation>,
    /// The secret written to Secrets Manager, when new credentials were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub integration_id: String,
    pub passed: bool,
    /// Problems that stop every feature: the document, or the credentials as stored.
    pub problems: Vec<FieldError>,
    pub features: Vec<FeatureResult>,
    /// Application permissions each API's token carries (None: no `roles` claim at all).
    pub granted: BTreeMap<Api, Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
    /// Why nothing was saved although saving was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_saved: Option<String>,
    /// Guard rails the configuration relaxes that the request did not name: it was not saved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_relaxations: Vec<Relaxation>,
    pub checked_at: GraphTime,
}

impl Report {
    /// A report of problems found before any feature could be tried.
    pub fn failed(id: &str, problems: Vec<FieldError>, at: GraphTime) -> Self {
        Report {
            integration_id: id.to_owned(),
            passed: false,
            problems,
            features: Vec::new(),
            granted: BTreeMap::new(),
            saved: None,
            not_saved: None,
            unconfirmed_relaxations: Vec::new(),
            checked_at: at,
        }
    }

    /// The report for a terminal: one line per feature, each failure with its fix.
    pub fn to_text(&self) -> String {
        let mut s = format!("Test & Save — integration `{}`\n", self.integration_id);
        for p in &self.problems {
            let _ = writeln!(s, "  FAIL  {:<22} {}", p.field, p.problem);
        }
        for f in &self.features {
            let mark = if f.status == Status::Ok { "ok  " } else { "FAIL" };
            let _ = writeln!(s, "  {mark}  {:<22} {}: {}", f.feature, f.api, f.detail);
            if let Some(fix) = &f.fix {
                let _ = writeln!(s, "        {:<22} fix: {fix}", "");
            }
        }
        let failed = self.features.iter().filter(|f| f.status == Status::Failed).count() + self.problems.len();
        let _ = match (&self.saved, &self.not_saved, self.passed) {
            (Some(sv), _, _) => {
                for r in &sv.relaxed {
                    let _ = writeln!(s, "  RELAXED {:<20} {}", r.field, r.detail);
                }
                writeln!(
                    s,
                    "Passed; saved as revision {} by {} ({} field(s) changed){}.",
                    sv.revision,
                    sv.saved_by,
                    sv.changes.len(),
                    sv.secret.as_ref().map(|x| format!(", credentials in {x}")).unwrap_or_default()
                )
            }
            (None, Some(why), _) => writeln!(s, "Not saved: {why}"),
            (None, None, true) => writeln!(s, "Passed: every enabled feature works."),
            (None, None, false) => writeln!(s, "Failed: {failed} problem(s); nothing was saved."),
        };
        s
    }
}

/// The credentials to test: the ones stored under the document's `secret_ref`, or new ones
/// (written to Secrets Manager only if the check passes).
pub enum CredentialInput {
    Stored,
    New(Credentials),
}

/// A save as it was asked for: how, by whom, and which guard-rail relaxations the request
/// names (a relaxation it does not name is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Save {
    pub mode: SaveMode,
    /// The caller, as the revision records it.
    pub by: String,
    /// The fields (`remediation.mode`, `remediation.protect_privileged_roles`,
    /// `remediation.protected_users`, `remediation.protected_groups`, `filters`) whose
    /// relaxation the request allows.
    pub relax: Vec<String>,
}

/// The fields a request may name to allow a relaxation.
pub const RELAXABLE: &[&str] = &[
    "remediation.mode",
    "remediation.protect_privileged_roles",
    "remediation.protected_users",
    "remediation.protected_groups",
    "remediation.allowed_groups",
    "remediation.max_actions_per_hour",
    "remediation.actions",
    "filters",
];

impl SaveMode {
    /// This mode, saved by `who`, relaxing nothing.
    pub fn by(self, who: impl Into<String>) -> Save {
        Save { mode: self, by: who.into(), relax: Vec::new() }
    }
}

/// How a passing configuration is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// Test only.
    No,
    /// A new integration: fails if the id exists.
    Create,
    /// A new revision of an existing integration (or the first).
    Update,
}

pub struct Checker<M, S, I, W> {
    pub microsoft: M,
    pub secrets: S,
    pub store: I,
    pub writer: W,
    /// Secret names the functions may read (the stack's SecretPrefix); empty = any.
    pub secret_prefix: String,
}

impl<M: MicrosoftProbe, S: SecretSource, I: IntegrationStore, W: SecretWriter> Checker<M, S, I, W> {
    /// Tests `doc` with its credentials and, when it passes and `save` says so, saves it:
    /// new credentials to the secret store first, then the record (so a saved record never
    /// points at a secret that was not written).
    pub async fn test_and_save(&self, doc: &IntegrationDoc, input: CredentialInput, request: Save, now: GraphTime) -> Report {
        let save = request.mode;
        let (creds, new) = match input {
            CredentialInput::New(c) => (Ok(c), true),
            CredentialInput::Stored => (self.secrets.load(&doc.secret_ref).await, false),
        };
        if let Some(problem) = secret_outside(&doc.secret_ref, &self.secret_prefix) {
            return Report::failed(&doc.id, vec![FieldError { field: "secret_ref".into(), problem }], now);
        }
        let mut report = check(&self.microsoft, doc, creds.clone(), now).await;
        if !report.passed || save == SaveMode::No {
            return report;
        }
        let before = match self.store.get(&doc.id).await {
            Ok(r) => r,
            Err(e) => {
                report.not_saved = Some(format!("reading the current record failed: {e}"));
                return report;
            }
        };
        let current = before.as_ref().map(|r| r.revision);
        if save == SaveMode::Create && current.is_some() {
            report.not_saved = Some(format!("integration `{}` exists already; use `integration update` to save a new revision", doc.id));
            return report;
        }
        let relaxed = revision::relaxations(before.as_ref().map(|r| &r.doc), doc);
        let unconfirmed: Vec<Relaxation> = relaxed.iter().filter(|r| !request.relax.contains(&r.field)).cloned().collect();
        if !unconfirmed.is_empty() {
            let fields: std::collections::BTreeSet<&str> = unconfirmed.iter().map(|r| r.field.as_str()).collect();
            report.not_saved = Some(format!(
                "this revision relaxes a guard rail ({}); save it only by naming each in the request (`relax`: {})",
                unconfirmed.iter().map(|r| format!("{}: {}", r.field, r.detail)).collect::<Vec<_>>().join("; "),
                fields.into_iter().collect::<Vec<_>>().join(", ")
            ));
            report.unconfirmed_relaxations = unconfirmed;
            return report;
        }
        let mut secret = None;
        if new && !doc.shared_secret {
            match self.store.secret_users(&doc.secret_ref).await {
                Ok(users) => {
                    let owners: Vec<String> = users.into_iter().filter(|id| *id != doc.id).collect();
                    if !owners.is_empty() {
                        report.not_saved = Some(format!(
                            "`{}` holds the credentials of integration(s) {} as well; writing it would change theirs: give this integration a secret_ref of its own, or set shared_secret = true if they share one app registration",
                            doc.secret_ref,
                            owners.join(", ")
                        ));
                        return report;
                    }
                }
                Err(e) => {
                    report.not_saved = Some(format!("reading the integrations that use `{}` failed: {e}", doc.secret_ref));
                    return report;
                }
            }
        }
        if let (true, Ok(c)) = (new, &creds) {
            match self.writer.put(&doc.secret_ref, c).await {
                Ok(arn) => secret = Some(arn),
                Err(e) => {
                    report.not_saved = Some(format!("writing the credentials to `{}` failed: {e}", doc.secret_ref));
                    return report;
                }
            }
        }
        let provenance = Provenance { saved_by: request.by, changes: revision::changes(before.as_ref().map(|r| &r.doc), doc), relaxed };
        match self.store.save(doc, current, now, &provenance).await {
            Ok(revision) => {
                if !provenance.relaxed.is_empty() {
                    tracing::warn!(
                        integration = %doc.id,
                        revision,
                        saved_by = %provenance.saved_by,
                        relaxed = ?provenance.relaxed.iter().map(|r| r.field.as_str()).collect::<Vec<_>>(),
                        "a guard rail was relaxed"
                    );
                }
                report.saved = Some(Saved {
                    revision,
                    saved_by: provenance.saved_by,
                    changes: provenance.changes,
                    relaxed: provenance.relaxed,
                    secret,
                })
            }
            Err(e) => report.not_saved = Some(e.to_string()),
        }
        report
    }
}

/// Why `secret_ref` is out of the functions' reach, if it is: their IAM policies allow the
/// secrets under the stack's prefix only, by name or by ARN.
fn secret_outside(secret_ref: &str, prefix: &str) -> Option<String> {
    let name = match secret_ref.strip_prefix("arn:") {
        Some(arn) => arn.split_once(":secret:").map_or(arn, |(_, n)| n),
        None => secret_ref,
    };
    (!prefix.is_empty() && !name.starts_with(prefix)).then(|| {
        format!("`{secret_ref}` is outside `{prefix}`, the only secrets the functions may read (the stack's SecretPrefix): name it {prefix}<something>")
    })
}

/// The check alone: nothing is written.
pub async fn check<M: MicrosoftProbe>(
    microsoft: &M,
    doc: &IntegrationDoc,
    creds: Result<Credentials, SecretError>,
    now: GraphTime,
) -> Report {
    let integration = match doc.validate() {
        Ok(i) => i,
        Err(e) => return Report::failed(&doc.id, e.errors, now),
    };
    let creds = match creds {
        Ok(c) => c,
        Err(e) => return Report::failed(&doc.id, vec![FieldError { field: "secret_ref".into(), problem: e.to_string() }], now),
    };
    let mismatch = |field: &str, stored: &str, configured: &str| {
        FieldError {
        field: field.into(),
        problem: format!(
            "the credentials in `{}` are for {field} {stored}, the configuration says {configured}: store this app's credentials or fix {field}",
            doc.secret_ref
        ),
    }
    };
    let mut problems = Vec::new();
    if !creds.tenant_id.eq_ignore_ascii_case(&integration.tenant_id) {
        problems.push(mismatch("tenant_id", &creds.tenant_id, &integration.tenant_id));
    }
    if !creds.client_id.eq_ignore_ascii_case(&integration.client_id) {
        problems.push(mismatch("client_id", &creds.client_id, &integration.client_id));
    }
    problems.extend(cloud_problems(microsoft.cloud(), &integration));
    if !problems.is_empty() {
        return Report::failed(&doc.id, problems, now);
    }
    let features = crate::domain::integration::enabled_features(&integration);
    let mut claims: BTreeMap<Api, Result<TokenClaims, GraphError>> = BTreeMap::new();
    for api in features.iter().map(|f| f.api()) {
        if let std::collections::btree_map::Entry::Vacant(slot) = claims.entry(api) {
            slot.insert(microsoft.claims(&creds, api).await);
        }
    }
    let endpoints = microsoft.cloud().endpoints();
    let ctx = Ctx {
        tenant_id: &integration.tenant_id,
        client_id: &integration.client_id,
        secret_ref: &integration.secret_ref,
        login_host: endpoints.login.trim_start_matches("https://"),
    };
    let mut results = Vec::new();
    for f in features {
        let r = match claims.get(&f.api()) {
            Some(c) => feature(microsoft, &creds, &integration, f, c, &ctx, now).await,
            None => continue,
        };
        results.push(r);
    }
    let granted = claims.iter().filter_map(|(api, c)| c.as_ref().ok().map(|c| (*api, c.roles.clone()))).collect();
    Report {
        integration_id: doc.id.clone(),
        passed: results.iter().all(|r| r.status == Status::Ok),
        problems: Vec::new(),
        features: results,
        granted,
        saved: None,
        not_saved: None,
        unconfirmed_relaxations: Vec::new(),
        checked_at: now,
    }
}

/// What the integration asks of this deployment's cloud that Microsoft does not offer there.
fn cloud_problems(cloud: Cloud, i: &Integration) -> Vec<FieldError> {
    let mut problems: Vec<FieldError> = crate::domain::integration::enabled_features(i)
        .into_iter()
        .filter_map(|f| {
            cloud.unavailable(f).map(|why| FieldError {
                field: feature_field(f).into(),
                problem: format!("{why}; this deployment serves {}: turn it off for this tenant", cloud.name()),
            })
        })
        .collect();
    if let Some(host) = i.cloud_apps_base.as_deref().filter(|_| i.cloud_apps).and_then(|u| u.strip_prefix("https://")) {
        if let Some(p) = cloud.cloud_apps_portal_problem(host) {
            problems.push(FieldError { field: "portal_url".into(), problem: p });
        }
    }
    problems
}

/// The document field that turns a feature on, for messages.
fn feature_field(f: Feature) -> &'static str {
    match f {
        Feature::DefenderAlerts | Feature::DefenderIncidents => "sources.defender",
        Feature::CloudApps => "sources.cloud_apps",
        Feature::EmailSubmissions => "sources.email_submissions",
        Feature::PhishingMailbox => "sources.phishing_mailbox",
        Feature::LiveResponseFiles => "evidence.live_response_files",
        Feature::QuarantineRestore => "evidence.restore_quarantined_files",
        Feature::QuarantinedEmail => "evidence.quarantined_email",
        Feature::DeliveredEmail => "evidence.delivered_email",
        Feature::Investigation | Feature::CloudAppsActivities => "features.investigation",
        Feature::UserContext => "features.user_context",
        Feature::Calendar => "features.calendar",
        Feature::Remediation => "features.remediation",
        Feature::DeviceContext => "features.device_context",
    }
}

async fn feature<M: MicrosoftProbe>(
    microsoft: &M,
    creds: &Credentials,
    i: &Integration,
    f: Feature,
    claims: &Result<TokenClaims, GraphError>,
    ctx: &Ctx<'_>,
    now: GraphTime,
) -> FeatureResult {
    let api = f.api();
    let fail = |detail: String, fix: String| FeatureResult::failed(f, detail, fix);
    if let Some(p) = crate::domain::integration::credential_problem(f, &creds.credential) {
        return fail("a client secret is stored".into(), p.into());
    }
    let claims = match claims {
        Ok(c) => c,
        Err(e) => {
            let (what, fix) = advice::token_failure(e, api, ctx);
            return fail(what, fix);
        }
    };
    let Some(roles) = &claims.roles else {
        return fail(
            format!("the token carries no roles claim: no application permission of {} has admin consent", api.owner()),
            advice::consent_fix(api, ctx),
        );
    };
    let missing = permissions::missing(f.required(), roles);
    if !missing.is_empty() {
        return fail(
            format!("missing permission{} {}", if missing.len() > 1 { "s" } else { "" }, missing.join(", ")),
            advice::missing_fix(api, &missing, ctx),
        );
    }
    if f == Feature::QuarantinedEmail && !claims.wids.iter().any(|w| EXCHANGE_DIRECTORY_ROLES.iter().any(|(_, id)| id == w)) {
        return fail("the app's service principal holds no Entra role Exchange Online accepts".into(), advice::exchange_role_fix(ctx));
    }
    if f == Feature::QuarantinedEmail && !claims.wids.iter().any(|w| QUARANTINE_EXPORT_ROLES.iter().any(|(_, id)| id == w)) {
        return fail(
            "the app's Entra role may find quarantined messages but not export them (Export-QuarantineMessage)".into(),
            advice::quarantine_export_fix(ctx),
        );
    }
    let may_change_admins = claims.wids.iter().any(|w| SENSITIVE_ACTION_ROLES.iter().any(|(_, id)| id == w));
    if f == Feature::Remediation && !i.remediation.protect_privileged_roles && !may_change_admins {
        return fail(
            "remediation.protect_privileged_roles is off, so users holding admin roles may be acted on, but the app's service \
             principal holds no Entra role that may change them (Privileged Authentication Administrator or Global Administrator)"
                .into(),
            advice::sensitive_action_fix(ctx),
        );
    }
    let granted = f.required().join(", ");
    let mut settings = tenant_settings(f).map(|s| format!("; {s}")).unwrap_or_default();
    if matches!(f, Feature::DefenderAlerts | Feature::DefenderIncidents) && !i.filters.dlp_modes.is_empty() {
        settings.push_str("; ");
        settings.push_str(crate::domain::processing::filter::DLP_MODE_CAVEAT);
    }
    if f == Feature::Remediation && !may_change_admins {
        settings.push_str(
            "; users holding admin roles are never acted on (remediation.protect_privileged_roles); acting on them would also \
             need the Entra role Privileged Authentication Administrator on the app's service principal",
        );
    }
    if matches!(f, Feature::UserContext | Feature::Calendar | Feature::DeviceContext) {
        let parts: Vec<ContextPart> = i.enrichment.effective_parts(&i.features).into_iter().filter(|p| p.feature() == f).collect();
        if !parts.is_empty() {
            let probe = microsoft.context(creds, &parts, now).await;
            return context_result(f, &probe, &granted, &settings);
        }
        return FeatureResult::ok(
            f,
            format!("{granted} granted (checked in the token; enrichment.parts asks for none of its parts){settings}"),
        );
    }
    if f == Feature::DeliveredEmail {
        let mailbox = i.phishing_mailbox.as_ref().map(|m| m.address.as_str());
        let (on, call) = microsoft.mailbox_search(creds, mailbox).await;
        return mailbox_result(f, on.as_deref(), &call, &granted);
    }
    let Some((probe, target)) = probe_of(f, i, now) else {
        return FeatureResult::ok(
            f,
            format!("{granted} granted (checked in the token; this feature reads nothing until it is used){settings}"),
        );
    };
    // A source's first page goes through the filters as the processor would run its items.
    if let (Probe::FirstPage(request), Some(source)) = (&probe, previewed_source(f)) {
        return match microsoft.first_page(creds, request).await {
            Ok(page) => filtered_result(f, i, source, &page, &granted, &settings, now),
            Err(e) => {
                let (what, fix) = advice::call_failure(&e, f, &target);
                fail(what, fix)
            }
        };
    }
    match microsoft.probe(creds, &probe).await {
        Ok(n) => FeatureResult::ok(f, format!("{granted} granted; a test call read {n} item{}{settings}", if n == 1 { "" } else { "s" })),
        Err(e) => {
            let (what, fix) = advice::call_failure(&e, f, &target);
            fail(what, fix)
        }
    }
}

/// The source whose probe items the filters are tried on. The phishing mailbox's are not: a
/// report's severity comes from its retrieved email, which the probe does not fetch.
fn previewed_source(f: Feature) -> Option<crate::Source> {
    match f {
        Feature::DefenderAlerts => Some(crate::Source::DefenderAlerts),
        Feature::DefenderIncidents => Some(crate::Source::DefenderIncidents),
        Feature::EmailSubmissions => Some(crate::Source::EmailSubmissions),
        Feature::CloudApps => Some(crate::Source::CloudApps),
        _ => None,
    }
}

/// A source's line from its first page: what the filters would drop of it, and a failure naming
/// the settings when they would drop every alert it read.
fn filtered_result(
    f: Feature,
    i: &Integration,
    source: crate::Source,
    page: &crate::ports::Page,
    granted: &str,
    settings: &str,
    now: GraphTime,
) -> FeatureResult {
    let n = page.items.len() + page.rejects.len();
    let read = format!("{granted} granted; a test call read {n} item{}", if n == 1 { "" } else { "s" });
    // Validated with the document: a filter that does not compile was refused before this.
    let Ok(filters) = i.filters.validate() else {
        return FeatureResult::ok(f, format!("{read}{settings}"));
    };
    let preview = crate::app::test_and_save::filter_preview::preview(source, i, &filters, &page.items, now);
    // A handful of alerts all dropped may be a quiet day; a sample of them is a setting that
    // sends nothing.
    if preview.drops_everything() && preview.alerts < FILTER_FAILS_AT {
        return FeatureResult::ok(
            f,
            format!(
                "{read}; {}: check that the filters keep what this source should send (too few alerts were read to tell)",
                preview.describe()
            ),
        );
    }
    if preview.drops_everything() {
        let fields: Vec<&str> = preview.dropped.keys().map(|r| crate::app::test_and_save::filter_preview::setting_of(*r)).collect();
        return FeatureResult::failed(
            f,
            format!("{read}; {}: nothing of this source would reach downstream", preview.describe()),
            format!("change {} so that the alerts this source sends are kept, or turn the source off", fields.join(" and ")),
        );
    }
    let filtered = if preview.alerts > 0 { format!("; {}", preview.describe()) } else { String::new() };
    FeatureResult::ok(f, format!("{read}{filtered}{settings}"))
}

/// A context feature's line from its parts' test calls: failed on the first part Microsoft
/// refused, with its fix; otherwise what each call found.
fn context_result(f: Feature, probe: &ContextProbe, granted: &str, settings: &str) -> FeatureResult {
    let on = match (&probe.user, &probe.device) {
        (Some(u), Some(d)) => format!(" on user {u} and device {d}"),
        (Some(u), None) => format!(" on user {u}"),
        (None, Some(d)) => format!(" on device {d}"),
        (None, None) => String::new(),
    };
    let mut said = Vec::new();
    for (part, call) in &probe.parts {
        let line = match call {
            PartCall::Answered => "answered".to_owned(),
            PartCall::Missing => "allowed, nothing found".to_owned(),
            PartCall::Unreached(why) => format!("not tried: {why}; tried on the first alert that names one"),
            // Sign-ins need Entra ID P1 (resources/signin.md): without it the rest of user
            // context works and each alert's sign-ins read `unlicensed`.
            PartCall::Failed(e) if *part == ContextPart::SignIns && e.is_unlicensed() => format!(
                "refused because the tenant has no Microsoft Entra ID P1 or P2 licence (Microsoft: {e}), so each alert's \
                 sign-ins will read `unlicensed` (the other parts are read as usual); with P1, sign-in risk fields read \
                 `hidden` until P2"
            ),
            // An application access policy (or RBAC for Applications) may scope the app to some
            // mailboxes (auth-limit-mailbox-access.md): a user outside it is not a failure.
            PartCall::Failed(GraphError::Http { status: 403, code, message, .. })
                if matches!(part, ContextPart::OutOfOffice | ContextPart::Schedule)
                    && (code == "ErrorAccessDenied" || message.contains("Access to OData")) =>
            {
                "refused for this user's mailbox by the app's mailbox scope (an application access policy or RBAC for \
                 Applications): alerts about users outside the scope read `forbidden`"
                    .to_owned()
            }
            // The tenant's budget busy (the deployment's other calls), or Microsoft throttling:
            // nothing wrong with the integration, so said and not failed.
            PartCall::Failed(e @ (GraphError::OverBudget { .. } | GraphError::Throttled { .. } | GraphError::Http { status: 429, .. })) => {
                format!("not tried: the tenant's budget for it is busy now ({e}); tried on the first alert")
            }
            PartCall::Failed(e) => {
                let (what, fix) = advice::call_failure(e, f, "");
                return FeatureResult::failed(f, format!("the test call for the `{part}` part{on} failed: {what}"), fix);
            }
        };
        said.push(format!("{part} {line}"));
    }
    FeatureResult::ok(f, format!("{granted} granted; a test call per part{on}: {}{settings}", said.join(", ")))
}

/// The delivered-email line from its test search: a mailbox the app's scope leaves out is said
/// (emails of recipients outside it end `refused`, naming the scope), not failed.
fn mailbox_result(f: Feature, on: Option<&str>, call: &PartCall, granted: &str) -> FeatureResult {
    let on = on.map(|m| format!(" of {m}'s mailbox")).unwrap_or_default();
    match call {
        PartCall::Answered | PartCall::Missing => {
            FeatureResult::ok(f, format!("{granted} granted; a test search{on} by Internet Message-ID was answered"))
        }
        PartCall::Unreached(why) => FeatureResult::ok(f, format!("{granted} granted (checked in the token); not tried: {why}")),
        PartCall::Failed(GraphError::Http { status: 403, code, message, .. })
            if code == "ErrorAccessDenied" || message.contains("Access to OData") =>
        {
            FeatureResult::ok(
                f,
                format!(
                    "{granted} granted; the test search{on} was refused by the app's mailbox scope (an application access policy \
                     or RBAC for Applications): emails of recipients outside the scope end `refused`; widen the scope to \
                     retrieve them"
                ),
            )
        }
        PartCall::Failed(e @ (GraphError::OverBudget { .. } | GraphError::Throttled { .. } | GraphError::Http { status: 429, .. })) => {
            FeatureResult::ok(f, format!("{granted} granted; not tried: the mailbox's budget is busy now ({e})"))
        }
        PartCall::Failed(e) => {
            let (what, fix) = advice::call_failure(e, f, "");
            FeatureResult::failed(f, format!("the test search{on} failed: {what}"), fix)
        }
    }
}

/// What a feature needs of the tenant's own settings, which no API reads (live-response.md,
/// ms.date 2025-03-04; advanced-features.md): said in Test & Save, and named again by a job
/// that one of them refuses.
fn tenant_settings(f: Feature) -> Option<&'static str> {
    match f {
        Feature::LiveResponseFiles => Some(
            "the tenant also needs, in the Defender portal, Settings → Endpoints → Advanced features → \"Live Response\" on \
             (and \"Live Response for servers\" for servers), and device groups with a remediation level other than \
             \"No automated response\"; no API reads these, so a job one of them refuses says which",
        ),
        Feature::QuarantineRestore => Some(
            "the restore script is unsigned: the tenant also needs Settings → Endpoints → Advanced features → \"Live Response \
             unsigned script execution\" on (off by default), with \"Live Response\" on, and it runs on Windows devices only; \
             no API reads these, so a job one of them refuses says which",
        ),
        _ => None,
    }
}

/// The most items of a source's first page Test & Save reads (and tries the filters on).
const FILTER_SAMPLE: usize = 50;
/// Alerts read, all dropped, from which the filters fail the source rather than warn.
const FILTER_FAILS_AT: usize = 10;

/// The call that proves a feature, and what it is about (for messages). A source with its
/// own module is proven by the poller's own first request for the integration's window.
fn probe_of(f: Feature, i: &Integration, now: GraphTime) -> Option<(Probe, String)> {
    let first_page = |source: crate::Source| {
        let spec = crate::sources::spec(source);
        Probe::FirstPage(spec.request(&crate::sources::SpanQuery {
            from: now.minus(i.window.lookback),
            to: now.minus(i.window.ingestion_delay),
            top: spec.page_size(&crate::sources::settings::PollSettings::default()).min(FILTER_SAMPLE),
            skip: 0,
            // As the poller asks: incidents with their alerts, which the filters decide.
            expand: spec.expands(),
            integration: i,
        }))
    };
    Some(match f {
        // The poller's own first request of the window: its items go through the filters.
        Feature::DefenderAlerts => (first_page(crate::Source::DefenderAlerts), String::new()),
        Feature::DefenderIncidents => (first_page(crate::Source::DefenderIncidents), String::new()),
        Feature::EmailSubmissions => (first_page(crate::Source::EmailSubmissions), String::new()),
        // The poller's listing of the window, with the user's filter AND-ed after it.
        Feature::PhishingMailbox => (first_page(crate::Source::PhishingMailbox), i.phishing_mailbox.as_ref()?.address.clone()),
        Feature::CloudApps => (first_page(crate::Source::CloudApps), i.cloud_apps_base.clone()?),
        // Investigation's activity queries, as investigate.rs makes them.
        Feature::CloudAppsActivities => {
            let portal = i.cloud_apps_base.clone()?;
            (Probe::CloudAppsActivities { portal: portal.clone(), since: now.minus(std::time::Duration::from_secs(86_400)) }, portal)
        }
        Feature::LiveResponseFiles => (Probe::Machines, String::new()),
        Feature::QuarantinedEmail => {
            let org = i.organization_id.clone()?;
            (Probe::Exchange { organization: org.clone(), since: now.minus(crate::app::evidence::driver::QUARANTINE_DAYS) }, org)
        }
        Feature::UserContext
        | Feature::DeliveredEmail
        | Feature::QuarantineRestore
        | Feature::Investigation
        | Feature::Calendar
        | Feature::Remediation
        | Feature::DeviceContext => return None,
    })
}
