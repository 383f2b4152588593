//! A tenant's email threat submissions (beta `emailThreatSubmission`,
//! api-reference/beta/resources/security-emailthreatsubmission.md and
//! security-threatsubmission.md; ms-apis.md §4), each with its lifecycle: `notStarted` when
//! submitted, `running` while Microsoft analyses it, then `succeeded` with a `result`, or
//! `failed`. The docs sample (`graph_email_threat_submissions_list.json`, with its
//! `emailSubject` and `notSpam` that the schema does not have) is served first, as it is.

use rand::Rng;
use serde_json::{json, Map, Value};

use super::pool::Pool;
use crate::ids::{self, pick, pick_str, SimRng};
use crate::scenario::{AlertPlan, SubmissionsPlan};
use crate::time::{parse_duration_secs, Instant};

pub const DOC_SAMPLE: &str = include_str!("../../tests/fixtures/microsoft-docs/graph_email_threat_submissions_list.json");

/// `submissionResultCategory` members up to `unknownFutureValue` (security-submissionresult.md).
const CATEGORIES: &[&str] =
    &["notJunk", "spam", "phishing", "malware", "allowedByPolicy", "blockedByPolicy", "spoof", "unknown", "noResultAvailable"];
/// Members after `unknownFutureValue`: sent as themselves only to a caller that asks with
/// `Prefer: include-unknown-enum-members`, else as `unknownFutureValue` (ms-apis.md §4).
const EVOLVED_CATEGORIES: &[&str] = &[
    "beingAnalyzed",
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
];
/// `submissionResultDetail` members before and after `unknownFutureValue` (a few of each).
const DETAILS: &[&str] =
    &["none", "underInvestigation", "allowedByTenant", "allowedByUserSetting", "urlFileShouldBeBlocked", "blockedByTenantAllowBlockList"];
const EVOLVED_DETAILS: &[&str] = &["itemFoundMalicious", "itemFoundClean", "willNotifyOnceDone", "senderFailedAuthentication"];

const SUBJECTS: &[&str] = &[
    "Your mailbox is almost full",
    "Invoice #4471 overdue",
    "Shared document: Q3 salaries.xlsx",
    "Action required: verify your account",
    "Weekly newsletter",
    "DocuSign: please sign",
];

#[derive(Debug, Clone)]
pub struct Submission {
    pub id: String,
    pub created: Instant,
    /// Listed from this instant on.
    pub visible: Instant,
    /// Analysis starts (`running`) and ends (`succeeded` or `failed`).
    pub running: Instant,
    pub done: Instant,
    /// The object without `status` and `result`, which depend on the time asked.
    pub body: Map<String, Value>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        category: &'static str,
        detail: &'static str,
    },
    Failed,
    /// The docs sample: served as it is at every time.
    Verbatim,
}

impl Submission {
    /// The object as Graph answers at `now`: before analysis ends `result` is null (the docs
    /// say nothing of it then; null is the answer a client must survive).
    pub fn render(&self, now: Instant, include_unknown: bool) -> Map<String, Value> {
        let mut m = self.body.clone();
        let (status, result) = match &self.outcome {
            Outcome::Verbatim => return m,
            _ if now < self.running => ("notStarted", Value::Null),
            _ if now < self.done => ("running", Value::Null),
            Outcome::Failed => ("failed", Value::Null),
            Outcome::Succeeded { category, detail } => {
                let mask =
                    |v: &'static str, evolved: &[&str]| if !include_unknown && evolved.contains(&v) { "unknownFutureValue" } else { v };
                let result = json!({
                    "category": mask(category, EVOLVED_CATEGORIES),
                    "detail": mask(detail, EVOLVED_DETAILS),
                    "detectedFiles": [],
                    "detectedUrls": [],
                    "userMailboxSetting": "isJunkMailRuleEnabled",
                });
                ("succeeded", result)
            }
        };
        m.insert("status".into(), Value::String(status.into()));
        m.insert("result".into(), result);
        m
    }
}

/// The tenant's submissions: the docs sample, then `plan.count` generated ones created over the
/// alert plan's window.
pub fn generate(plan: &SubmissionsPlan, alerts: &AlertPlan, pool: &Pool, tenant_id: &str, seed: u64, start: Instant) -> Vec<Submission> {
    let mut out = Vec::with_capacity(plan.count + 1);
    if let Some(sample) = serde_json::from_str::<Value>(DOC_SAMPLE).ok().and_then(|v| v["value"][0].as_object().cloned()) {
        let created = sample.get("createdDateTime").and_then(Value::as_str).and_then(|t| Instant::parse(t).ok()).unwrap_or_default();
        let id = sample.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        out.push(Submission { id, created, visible: created, running: created, done: created, body: sample, outcome: Outcome::Verbatim });
    }
    let mut rng = ids::rng(seed, 0x5B);
    let from = start.plus_secs(parse_duration_secs(&alerts.from).unwrap_or(-86_400));
    let to = start.plus_secs(parse_duration_secs(&alerts.to).unwrap_or(0));
    let span = (to.0 - from.0).max(1);
    for _ in 0..plan.count {
        let created = Instant(from.0 + rng.gen_range(0..span));
        out.push(one(&mut rng, plan, pool, tenant_id, created));
    }
    out
}

/// `count` submissions made at `now`, as `plan` says they are listed and analysed.
pub fn raise(rng: &mut SimRng, plan: &SubmissionsPlan, pool: &Pool, tenant_id: &str, now: Instant, count: usize) -> Vec<Submission> {
    (0..count).map(|_| one(rng, plan, pool, tenant_id, now)).collect()
}

fn one(rng: &mut SimRng, plan: &SubmissionsPlan, pool: &Pool, tenant_id: &str, created: Instant) -> Submission {
    let id = ids::guid(rng);
    let recipient = pick(rng, &pool.users).upn.clone();
    let reporter = pick(rng, &pool.users);
    let admin = rng.gen_bool(0.3);
    let category = pick_str(rng, &["spam", "phishing", "malware", "notJunk"]);
    let waited = rng.gen_range(plan.queued_min_secs..=plan.queued_max_secs.max(plan.queued_min_secs));
    let analysed = rng.gen_range(plan.analysis_min_secs..=plan.analysis_max_secs.max(plan.analysis_min_secs));
    let outcome = if rng.gen_bool(plan.failed_fraction.clamp(0.0, 1.0)) {
        Outcome::Failed
    } else {
        let category = if rng.gen_bool(0.35) { pick_str(rng, EVOLVED_CATEGORIES) } else { pick_str(rng, CATEGORIES) };
        let detail = if rng.gen_bool(0.3) { pick_str(rng, EVOLVED_DETAILS) } else { pick_str(rng, DETAILS) };
        Outcome::Succeeded { category, detail }
    };
    let sender_domain = pick_str(rng, &["fabrikam-billing.com", "contoso-support.net", "tailspin.example"]);
    let body = json!({
        "@odata.type": "#microsoft.graph.security.emailThreatSubmission",
        "id": id,
        "tenantId": tenant_id,
        "createdDateTime": created.graph7(),
        "contentType": "email",
        "category": category,
        "source": if admin { "administrator" } else { "user" },
        "clientSource": "microsoft",
        "createdBy": {"user": {"identity": reporter.aad_id, "displayName": reporter.display_name, "email": reporter.upn}},
        "adminReview": null,
        "recipientEmailAddress": recipient,
        "internetMessageId": format!("<{}@{}>", ids::hex(rng, 8), sender_domain),
        "subject": pick_str(rng, SUBJECTS),
        "sender": format!("billing@{sender_domain}"),
        "senderIP": format!("203.0.113.{}", rng.gen_range(1..255)),
        "receivedDateTime": created.plus_secs(-rng.gen_range(60..86_400)).graph7(),
        "originalCategory": category,
        "attackSimulationInfo": null,
        "tenantAllowOrBlockListAction": null,
    });
    let body = body.as_object().cloned().unwrap_or_default();
    let visible = created.plus_secs(plan.latency_secs);
    let running = created.plus_secs(waited);
    Submission { id, created, visible, running, done: running.plus_secs(analysed), body, outcome }
}
