//! What a saved revision of an integration records beside its document (issue 28 §2): who
//! saved it, what changed since the revision before, and which guard rails it relaxed. A
//! relaxation is saved only when the request names it: a console's stray toggle or a pasted
//! document cannot quietly turn remediation on, drop a break-glass account from the protected
//! list, or filter a source away.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::integration::doc::IntegrationDoc;
use crate::domain::response::remediation::{RemediationDoc, RemediationMode};
use crate::domain::source::Source;

/// The most changes a revision lists, and the longest value (as JSON text) each shows: a
/// record stays small whatever the document holds.
pub const MAX_CHANGES: usize = 50;
pub const MAX_VALUE_CHARS: usize = 256;

/// One field that differs from the revision before (a new integration: from the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The document's path, dotted (`remediation.mode`); a list is one field.
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// A guard rail this revision relaxes, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relaxation {
    /// What the request names to allow it (`remediation.mode`, `filters`, …).
    pub field: String,
    pub detail: String,
}

/// What a saved revision records beside its document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Who saved it: the check function's invocation, or the operator's AWS principal.
    pub saved_by: String,
    pub changes: Vec<Change>,
    /// The guard rails it relaxed (each named by the request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relaxed: Vec<Relaxation>,
}

fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&path, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned(), v.clone());
        }
    }
}

fn bounded(v: Value) -> Value {
    let text = v.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return v;
    }
    Value::String(format!("{}… ({} characters)", text.chars().take(MAX_VALUE_CHARS).collect::<String>(), text.chars().count()))
}

/// The fields `after` changes from `before` (None: a new integration, compared with the
/// defaults of a document with the same identity), at most [`MAX_CHANGES`].
pub fn changes(before: Option<&IntegrationDoc>, after: &IntegrationDoc) -> Vec<Change> {
    let base = before.cloned().unwrap_or_else(|| IntegrationDoc::new(&after.id, "", "", ""));
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves("", &serde_json::to_value(&base).unwrap_or_default(), &mut a);
    leaves("", &serde_json::to_value(after).unwrap_or_default(), &mut b);
    let fields: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    fields
        .into_iter()
        .filter_map(|f| {
            let (x, y) = (a.get(f).cloned().unwrap_or(Value::Null), b.get(f).cloned().unwrap_or(Value::Null));
            (x != y).then(|| Change { field: f.clone(), before: bounded(x), after: bounded(y) })
        })
        .take(MAX_CHANGES)
        .collect()
}

/// The guard rails `after` relaxes from `before` (a new integration: from the defaults).
pub fn relaxations(before: Option<&IntegrationDoc>, after: &IntegrationDoc) -> Vec<Relaxation> {
    let defaults = RemediationDoc::default();
    let was = before.map_or(&defaults, |b| &b.remediation);
    let now = &after.remediation;
    let mut out = Vec::new();
    if now.mode == RemediationMode::Enforce && was.mode != RemediationMode::Enforce {
        out.push(Relaxation {
            field: "remediation.mode".into(),
            detail: "remediation goes from dry_run to enforce: requests will change accounts".into(),
        });
    }
    if !now.protect_privileged_roles && was.protect_privileged_roles {
        out.push(Relaxation {
            field: "remediation.protect_privileged_roles".into(),
            detail: "holders of privileged directory roles are no longer protected from remediation".into(),
        });
    }
    let removed = |was: &[String], now: &[String]| -> Vec<String> {
        was.iter().filter(|w| !now.iter().any(|n| n.eq_ignore_ascii_case(w))).cloned().collect()
    };
    let users = removed(&was.protected_users, &now.protected_users);
    if !users.is_empty() {
        out.push(Relaxation { field: "remediation.protected_users".into(), detail: format!("no longer protected: {}", users.join(", ")) });
    }
    let groups = removed(&was.protected_groups, &now.protected_groups);
    if !groups.is_empty() {
        out.push(Relaxation {
            field: "remediation.protected_groups".into(),
            detail: format!("members no longer protected: {}", groups.join(", ")),
        });
    }
    if was.allowed_groups.is_some() && now.allowed_groups.is_none() {
        out.push(Relaxation {
            field: "remediation.allowed_groups".into(),
            detail: "the allow-list of groups is gone: remediation may act on anyone not protected".into(),
        });
    }
    if now.max_actions_per_hour > was.max_actions_per_hour {
        out.push(Relaxation {
            field: "remediation.max_actions_per_hour".into(),
            detail: format!("raised from {} to {}", was.max_actions_per_hour, now.max_actions_per_hour),
        });
    }
    let added: Vec<String> = now.actions.iter().filter(|a| !was.actions.contains(a)).map(|a| format!("{a:?}")).collect();
    if !added.is_empty() {
        out.push(Relaxation { field: "remediation.actions".into(), detail: format!("allowed now: {}", added.join(", ")) });
    }
    let dropped_before: Vec<Source> = before.map(|b| whole_sources_dropped(b).into_iter().map(|(s, _)| s).collect()).unwrap_or_default();
    for (source, why) in whole_sources_dropped(after) {
        if !dropped_before.contains(&source) {
            out.push(Relaxation { field: "filters".into(), detail: format!("every {source} item would be dropped: {why}") });
        }
    }
    out
}

/// Titles of every shape a source gives (Defender, submissions, reports, Cloud Apps, and the
/// shortest): a pattern that matches them all matches any title.
const SAMPLE_TITLES: [&str; 6] =
    ["Suspicious PowerShell command line", "Email reported by user as malware or phish", "Impossible travel activity", "x", "0", "-"];

/// The sources `doc` polls whose every item its filters drop, and why. Decided where a
/// source's items all share what the filter reads (DESIGN.md: the alert view each source
/// builds): reported emails are `medium` or `high`. Detection sources decide Defender's alerts
/// only (filter.rs `has_detection_source`), whose sources vary alert by alert.
pub fn whole_sources_dropped(doc: &IntegrationDoc) -> Vec<(Source, String)> {
    let Ok(integration) = doc.validate() else { return Vec::new() };
    let f = &doc.filters;
    // A title exclusion that matches titles of every kind drops every source's items.
    let everything = doc
        .filters
        .title_exclude_patterns
        .iter()
        .find(|p| regex::Regex::new(&format!("(?i){p}")).is_ok_and(|re| SAMPLE_TITLES.iter().all(|t| re.is_match(t))));
    if let Some(p) = everything {
        return Source::ALL
            .into_iter()
            .filter(|s| integration.polls(*s))
            .map(|s| (s, format!("filters.title_exclude_patterns /{p}/ matches every title")))
            .collect();
    }
    let fixed: [(Source, &[&str]); 1] = [(Source::PhishingMailbox, &["medium", "high"])];
    fixed
        .into_iter()
        .filter(|(source, all)| {
            integration.polls(*source)
                && !f.severities.is_empty()
                && !all.iter().any(|s| f.severities.iter().any(|k| k.eq_ignore_ascii_case(s)))
        })
        .map(|(source, all)| (source, format!("its items are {} severity, which filters.severities leaves out", all.join(" or "))))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::domain::integration::revision::*;
    use crate::domain::integration::DefenderMode;
    use crate::domain::processing::filter::FilterDoc;

    fn doc() -> IntegrationDoc {
        IntegrationDoc::new(
            "contoso",
            "6f1a0c3e-0000-4000-8000-000000000001",
            "6f1a0c3e-0000-4000-8000-000000000002",
            "m365-ingest/contoso",
        )
    }

    fn remediating(mode: RemediationMode, privileged: bool, users: &[&str]) -> IntegrationDoc {
        let mut d = doc();
        d.features.remediation = true;
        d.remediation.mode = mode;
        d.remediation.protect_privileged_roles = privileged;
        d.remediation.protected_users = users.iter().map(|u| (*u).to_owned()).collect();
        d
    }

    #[test]
    fn each_relaxed_guard_rail_is_named_and_tightening_is_not_a_relaxation() {
        let strict = remediating(RemediationMode::DryRun, true, &["breakglass@contoso.com", "ops@contoso.com"]);
        let loose = remediating(RemediationMode::Enforce, false, &["OPS@contoso.com"]);
        let r = relaxations(Some(&strict), &loose);
        let fields: Vec<&str> = r.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["remediation.mode", "remediation.protect_privileged_roles", "remediation.protected_users"]);
        assert!(r[2].detail.contains("breakglass@contoso.com") && !r[2].detail.contains("ops@"), "{r:?}");
        assert!(relaxations(Some(&loose), &strict).is_empty(), "tightening needs no say-so");
        assert_eq!(relaxations(None, &loose).len(), 2, "a new integration is compared with the defaults");
        assert!(relaxations(Some(&loose), &loose).is_empty(), "saving it again relaxes nothing more");
    }

    #[test]
    fn a_filter_that_drops_a_whole_source_is_a_relaxation() {
        let mut before = doc();
        before.sources.defender = DefenderMode::Alerts;
        before.sources.email_submissions.enabled = true;
        before.sources.phishing_mailbox =
            Some(crate::domain::integration::sections::MailboxDoc { address: "phish@contoso.com".into(), filter: None });
        let mut after = before.clone();
        after.filters = FilterDoc { severities: vec!["low".into()], ..FilterDoc::default() };
        let r = relaxations(Some(&before), &after);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].field, "filters");
        assert!(r[0].detail.contains("every phishing_mailbox item") && r[0].detail.contains("medium or high"), "{r:?}");
        let mut kept = before.clone();
        kept.filters = FilterDoc { severities: vec!["low".into(), "high".into()], ..FilterDoc::default() };
        assert!(relaxations(Some(&before), &kept).is_empty());
        assert!(whole_sources_dropped(&before).is_empty());
        assert!(relaxations(Some(&after), &after).is_empty(), "already so: nothing new is relaxed");
        // Detection sources decide Defender's alerts only: submissions and reports are not dropped by them.
        let mut by_source = before.clone();
        by_source.filters = FilterDoc { detection_sources: vec!["antivirus".into()], ..FilterDoc::default() };
        assert!(relaxations(Some(&before), &by_source).is_empty(), "{:?}", relaxations(Some(&before), &by_source));
        let mut dot = before.clone();
        dot.filters = FilterDoc { title_exclude_patterns: vec![".".into()], ..FilterDoc::default() };
        let r = relaxations(Some(&before), &dot);
        assert_eq!(r.len(), 3, "every polled source: {r:?}");
        let mut narrow = before.clone();
        narrow.filters = FilterDoc { title_exclude_patterns: vec!["^Test alert".into()], ..FilterDoc::default() };
        assert!(relaxations(Some(&before), &narrow).is_empty(), "an ordinary exclusion is not one");
    }

    #[test]
    fn widening_whom_remediation_may_act_on_is_a_relaxation() {
        use crate::domain::response::remediation::Action;
        let mut before = remediating(RemediationMode::Enforce, true, &[]);
        before.remediation.allowed_groups = Some(vec!["6f1a0c3e-0000-4000-8000-00000000000a".into()]);
        before.remediation.actions = vec![Action::RevokeSessions];
        let mut after = before.clone();
        after.remediation.allowed_groups = None;
        after.remediation.max_actions_per_hour = 500;
        after.remediation.actions = vec![Action::RevokeSessions, Action::DisableAccount];
        let fields: Vec<String> = relaxations(Some(&before), &after).into_iter().map(|r| r.field).collect();
        assert_eq!(fields, ["remediation.allowed_groups", "remediation.max_actions_per_hour", "remediation.actions"]);
    }

    #[test]
    fn changes_name_each_field_with_both_values_and_stay_bounded() {
        let a = doc();
        let mut b = doc();
        b.enabled = false;
        b.name = Some("Contoso".into());
        let c = changes(Some(&a), &b);
        let fields: Vec<&str> = c.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["enabled", "name"], "{c:?}");
        assert_eq!((c[0].before.clone(), c[0].after.clone()), (Value::Bool(true), Value::Bool(false)));
        let mut long = doc();
        long.name = Some("x".repeat(2_000));
        let c = changes(Some(&a), &long);
        assert!(c[0].after.to_string().len() < MAX_VALUE_CHARS + 64, "{c:?}");
        let fresh = changes(None, &a);
        assert!(fresh.iter().any(|x| x.field == "tenant_id"), "a new integration lists its identity: {fresh:?}");
    }
}
