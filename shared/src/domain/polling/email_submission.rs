//! An email threat submission (beta `emailThreatSubmission`: security-emailthreatsubmission.md,
//! security-submissionresult.md; ms-apis.md §4) read as the processor's alert view, so the same
//! filters and output contract apply, and judged against the integration's excluded result
//! categories. Both the documented shape (`subject`) and the docs sample's (`emailSubject`,
//! the category `notSpam` that no enum has) are read. The original travels on untouched.

use serde::Deserialize;

use crate::domain::email::section::{EmailSection, SubmissionInfo};
use crate::domain::graph_alert::{Evidence, GraphAlert, Sender};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Raw {
    id: String,
    tenant_id: Option<String>,
    created_date_time: Option<String>,
    /// `administrator` or `user`.
    source: Option<String>,
    /// What the submitter says it is: notJunk, spam, phishing, malware.
    category: Option<String>,
    /// notStarted, running, succeeded, failed, skipped.
    status: Option<String>,
    result: Option<SubmissionResult>,
    created_by: Option<CreatedBy>,
    recipient_email_address: Option<String>,
    internet_message_id: Option<String>,
    subject: Option<String>,
    /// The docs sample's name for `subject`.
    email_subject: Option<String>,
    sender: Option<String>,
    #[serde(rename = "senderIP")]
    sender_ip: Option<String>,
    received_date_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SubmissionResult {
    category: Option<String>,
    detail: Option<String>,
    detected_urls: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CreatedBy {
    user: Option<Identity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Identity {
    email: Option<String>,
    display_name: Option<String>,
}

/// Where Microsoft's analysis of a submission is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not analysed yet (`notStarted`, `running`, or a status this version does not know).
    Pending,
    /// `succeeded`: the result's category (`submissionResultCategory`), as sent.
    Result(String),
    /// `failed` or `skipped`: no verdict will come.
    None,
}

/// Result categories that mean Microsoft found a threat, a nuisance, or nothing to act on;
/// they set the alert view's severity (the docs define no severity for submissions).
const THREATS: &[&str] = &[
    "phishing",
    "malware",
    "spoof",
    "threatsFound",
    "domainImpersonation",
    "userImpersonation",
    "brandImpersonation",
    "authenticationFailure",
    "spoofedBlocked",
    "spoofedAllowed",
];
const NUISANCE: &[&str] = &["spam", "bulk", "blockedByPolicy", "blockedDueToOrganizationOverride", "blockedDueToUserOverride"];
const CLEAN: &[&str] = &[
    "notJunk",
    "notSpam",
    "noThreatsFound",
    "allowedByPolicy",
    "allowedDueToOrganizationOverride",
    "allowedDueToUserOverride",
    "phishingSimulation",
];

/// The verdict of a submission object.
pub fn verdict(object: &str) -> Result<Verdict, serde_json::Error> {
    let raw: Raw = serde_json::from_str(object)?;
    Ok(verdict_of(&raw))
}

fn verdict_of(raw: &Raw) -> Verdict {
    match raw.status.as_deref() {
        Some("succeeded") => raw.result.as_ref().and_then(|r| r.category.clone()).map_or(Verdict::Pending, Verdict::Result),
        Some("failed" | "skipped") => Verdict::None,
        _ => Verdict::Pending,
    }
}

/// The excluded category a submission's verdict falls in, if it does (the integration's
/// `sources.email_submissions.excluded_result_categories`, validated members, compared as
/// written). A pending submission is never excluded: its verdict is not known yet.
pub fn excluded_by<'a>(object: &str, excluded: &'a [String]) -> Result<Option<&'a str>, serde_json::Error> {
    Ok(match verdict(object)? {
        Verdict::Result(c) => excluded.iter().find(|e| **e == c).map(String::as_str),
        Verdict::Pending | Verdict::None => None,
    })
}

/// The reported email and its submission, for the output's `email` section: the keys to find
/// the message by (`internetMessageId` with `recipientEmailAddress`; submissions have no
/// networkMessageId, ms-apis.md §4) and Microsoft's verdict as far as it goes.
pub fn email_section(object: &str) -> Result<EmailSection, serde_json::Error> {
    let raw: Raw = serde_json::from_str(object)?;
    let verdict = verdict_of(&raw);
    let result = raw.result.as_ref().filter(|_| matches!(verdict, Verdict::Result(_)));
    Ok(EmailSection {
        internet_message_id: raw.internet_message_id.clone(),
        network_message_id: None,
        recipient: raw.recipient_email_address.clone(),
        sender: raw.sender.clone(),
        sender_ip: raw.sender_ip.clone(),
        subject: raw.subject.clone().or_else(|| raw.email_subject.clone()),
        received_at: raw.received_date_time.clone(),
        submission: Some(SubmissionInfo {
            id: Some(raw.id.clone()),
            submitted_via: raw.source.clone(),
            reported_as: raw.category.clone(),
            submitted_by: raw.created_by.as_ref().and_then(|c| c.user.as_ref()).and_then(|u| u.email.clone()),
            submitted_at: raw.created_date_time.clone(),
            status: raw.status.clone(),
            verdict: result.and_then(|r| r.category.clone()),
            verdict_detail: result.and_then(|r| r.detail.clone()),
            revision: Some(revision(&verdict).into()),
        }),
        headers: None,
    })
}

/// `pending` while Microsoft's analysis may still give a verdict, `final` once it cannot.
pub fn revision(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Pending => "pending",
        Verdict::Result(_) | Verdict::None => "final",
    }
}

/// The submission as the processor's alert view: the reported message and the reporter as
/// evidence, a title that says who submitted what, and a severity from the verdict: high for a
/// threat, low for spam and the like, informational for clean mail, medium while pending or
/// for a category this version does not know.
pub fn to_alert(object: &str) -> Result<GraphAlert, serde_json::Error> {
    let raw: Raw = serde_json::from_str(object)?;
    let verdict = verdict_of(&raw);
    let severity = match &verdict {
        Verdict::Result(c) if THREATS.contains(&c.as_str()) => "high",
        Verdict::Result(c) if NUISANCE.contains(&c.as_str()) => "low",
        Verdict::Result(c) if CLEAN.contains(&c.as_str()) => "informational",
        _ => "medium",
    };
    let subject = raw.subject.clone().or_else(|| raw.email_subject.clone());
    let who = match raw.source.as_deref() {
        Some("administrator") => "Admin-submitted",
        _ => "User-reported",
    };
    let reported_as = raw.category.as_deref().unwrap_or("suspicious");
    let title = format!("{who} email ({reported_as}): {}", subject.as_deref().unwrap_or("(no subject)"));
    let verdict_text = match &verdict {
        Verdict::Pending => format!("Microsoft's analysis is {}.", raw.status.as_deref().unwrap_or("pending")),
        Verdict::Result(c) => {
            format!(
                "Microsoft's verdict: {c}{}.",
                raw.result.as_ref().and_then(|r| r.detail.as_deref()).map(|d| format!(" ({d})")).unwrap_or_default()
            )
        }
        Verdict::None => format!("Microsoft's analysis {}: no verdict.", raw.status.as_deref().unwrap_or("ended")),
    };
    let mut evidence = vec![Evidence {
        odata_type: "#microsoft.graph.security.analyzedMessageEvidence".into(),
        internet_message_id: raw.internet_message_id.clone(),
        subject: subject.clone(),
        recipient_email_address: raw.recipient_email_address.clone(),
        p1_sender: raw.sender.clone().map(|s| Sender { email_address: Some(s), display_name: None }),
        ..Evidence::default()
    }];
    if let Some(user) = raw.created_by.as_ref().and_then(|c| c.user.as_ref()) {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.mailboxEvidence".into(),
            roles: vec!["contextual".into()],
            primary_address: user.email.clone(),
            display_name: user.display_name.clone(),
            ..Evidence::default()
        });
    }
    if let Some(ip) = &raw.sender_ip {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.ipEvidence".into(),
            ip_address: Some(ip.clone()),
            ..Evidence::default()
        });
    }
    for url in raw.result.as_ref().map(|r| r.detected_urls.as_slice()).unwrap_or_default() {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.urlEvidence".into(),
            url: Some(url.clone()),
            ..Evidence::default()
        });
    }
    Ok(GraphAlert {
        id: raw.id.clone(),
        tenant_id: raw.tenant_id.clone(),
        title: Some(title),
        description: Some(verdict_text),
        severity: Some(severity.into()),
        status: Some("new".into()),
        category: Some("EmailSubmission".into()),
        service_source: Some("microsoftDefenderForOffice365".into()),
        created_date_time: raw.created_date_time.clone(),
        evidence,
        ..GraphAlert::default()
    })
}

#[cfg(test)]
mod tests {
    use crate::domain::polling::email_submission::*;

    const SAMPLE: &str =
        include_str!("../../../../infra/tenant-sim/tests/fixtures/microsoft-docs/graph_email_threat_submissions_list.json");

    fn sample() -> String {
        let v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap_or_default();
        v["value"][0].to_string()
    }

    fn submission(status: &str, result: Option<&str>) -> String {
        serde_json::json!({
            "id": "s1", "createdDateTime": "2026-11-26T10:00:00.0000000Z", "source": "user", "category": "phishing",
            "status": status, "result": result.map(|c| serde_json::json!({"category": c, "detail": "none", "detectedUrls": ["http://x.example/a"]})),
            "createdBy": {"user": {"email": "ann@contoso.com", "displayName": "Ann"}},
            "recipientEmailAddress": "ann@contoso.com", "internetMessageId": "<m1@fabrikam.com>", "subject": "Invoice",
            "sender": "billing@fabrikam.com", "senderIP": "203.0.113.9"
        })
        .to_string()
    }

    #[test]
    fn the_docs_sample_reads_with_its_own_names() {
        let a = to_alert(&sample()).unwrap_or_default();
        assert_eq!(a.title.as_deref(), Some("Admin-submitted email (spam): This is a spam"));
        assert_eq!(a.severity.as_deref(), Some("informational"), "notSpam is clean mail, though no enum has it");
        let message = a.evidence.iter().find(|e| e.kind() == "analyzedMessageEvidence");
        assert_eq!(message.and_then(|m| m.internet_message_id.as_deref()), Some("some-internet-message-id@contoso.com"));
        assert_eq!(message.and_then(|m| m.recipient_email_address.as_deref()), Some("tifc@a830edad9050849EQTPWBJZXODQ.onmicrosoft.com"));
        assert_eq!(verdict(&sample()).ok(), Some(Verdict::Result("notSpam".into())));
    }

    #[test]
    fn severity_follows_the_verdict_and_waits_while_pending() {
        for (status, result, severity) in [
            ("notStarted", None, "medium"),
            ("running", None, "medium"),
            ("succeeded", Some("phishing"), "high"),
            ("succeeded", Some("bulk"), "low"),
            ("succeeded", Some("allowedDueToUserOverride"), "informational"),
            ("succeeded", Some("unknownFutureValue"), "medium"),
            ("failed", None, "medium"),
        ] {
            let a = to_alert(&submission(status, result)).unwrap_or_default();
            assert_eq!(a.severity.as_deref(), Some(severity), "{status} {result:?}");
        }
        let a = to_alert(&submission("succeeded", Some("phishing"))).unwrap_or_default();
        assert_eq!(a.description.as_deref(), Some("Microsoft's verdict: phishing (none)."));
        let kinds: Vec<&str> = a.evidence.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["analyzedMessageEvidence", "mailboxEvidence", "ipEvidence", "urlEvidence"]);
    }

    #[test]
    fn only_a_known_verdict_in_the_list_excludes() {
        let excluded = vec!["allowedByPolicy".to_owned(), "allowedDueToUserOverride".to_owned()];
        let by = |s: String| excluded_by(&s, &excluded).ok().flatten();
        assert_eq!(by(submission("succeeded", Some("allowedDueToUserOverride"))), Some("allowedDueToUserOverride"));
        assert_eq!(by(submission("succeeded", Some("phishing"))), None);
        assert_eq!(by(submission("running", None)), None, "pending: the verdict is not known yet");
        assert_eq!(by(submission("succeeded", Some("unknownFutureValue"))), None, "a masked member is not the excluded one");
        assert!(excluded_by("not json", &excluded).is_err());
    }
}
