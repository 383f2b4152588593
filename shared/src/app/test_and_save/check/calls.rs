//! The test call that proves a feature, and the feature's line of the report from what it
//! found: a source's first page tried on the filters, each context part's call, the mailbox
//! search.

use super::report::FeatureResult;
use crate::app::test_and_save::advice;
use crate::domain::integration::Integration;
use crate::domain::permissions::Feature;
use crate::domain::processing::context::ContextPart;
use crate::domain::time::GraphTime;
use crate::error::GraphError;
use crate::ports::{ContextProbe, PartCall, Probe};

/// The most items of a source's first page Test & Save reads (and tries the filters on).
const FILTER_SAMPLE: usize = 50;
/// Alerts read, all dropped, from which the filters fail the source rather than warn.
const FILTER_FAILS_AT: usize = 10;

/// The call that proves a feature, and what it is about (for messages). A source with its
/// own module is proven by the poller's own first request for the integration's window.
pub(super) fn probe_of(f: Feature, i: &Integration, now: GraphTime) -> Option<(Probe, String)> {
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

/// The source whose probe items the filters are tried on. The phishing mailbox's are not: a
/// report's severity comes from its retrieved email, which the probe does not fetch.
pub(super) fn previewed_source(f: Feature) -> Option<crate::Source> {
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
pub(super) fn filtered_result(
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
pub(super) fn context_result(f: Feature, probe: &ContextProbe, granted: &str, settings: &str) -> FeatureResult {
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
pub(super) fn mailbox_result(f: Feature, on: Option<&str>, call: &PartCall, granted: &str) -> FeatureResult {
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
