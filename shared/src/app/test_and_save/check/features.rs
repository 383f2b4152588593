//! The check itself, which writes nothing: the document and the credentials, the deployment's
//! cloud, then each enabled feature: its token's roles, what it needs of the tenant, and one
//! small real call.

use std::collections::BTreeMap;

use super::calls::{context_result, filtered_result, mailbox_result, previewed_source, probe_of};
use super::report::{FeatureResult, Report, Status};
use crate::app::test_and_save::advice::{self, Ctx};
use crate::domain::cloud::Cloud;
use crate::domain::field_error::FieldError;
use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::integration::{Credentials, Integration};
use crate::domain::permissions::{
    self, Api, Feature, TokenClaims, EXCHANGE_DIRECTORY_ROLES, QUARANTINE_EXPORT_ROLES, SENSITIVE_ACTION_ROLES,
};
use crate::domain::processing::context::ContextPart;
use crate::domain::time::GraphTime;
use crate::error::{GraphError, SecretError};
use crate::ports::{MicrosoftProbe, Probe};

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
