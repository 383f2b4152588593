//! The email an alert is about, as the output contract describes it: the keys a downstream
//! tool correlates it by and what is known of its report.

use serde::{Deserialize, Serialize};

use crate::domain::graph_alert::GraphAlert;

/// The keys a downstream tool correlates an email by (internetMessageId with the recipient;
/// networkMessageId where Microsoft gives it) and what is known of its report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EmailSection {
    pub internet_message_id: Option<String>,
    pub network_message_id: Option<String>,
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub sender_ip: Option<String>,
    pub subject: Option<String>,
    pub received_at: Option<String>,
    pub submission: Option<SubmissionInfo>,
    /// What the email's own MIME says (a phishing-mailbox report): present only there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<EmailHeaders>,
}

/// A reported email's headers and indicators, read from its MIME (domain/email/mime.rs).
pub type EmailHeaders = crate::domain::email::mime::ParsedEmail;

/// A report of an email to Microsoft (an email threat submission, or an alert's
/// `submissionMailEvidence`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubmissionInfo {
    /// The submission's id (`submissionId` in an alert's evidence).
    pub id: Option<String>,
    /// `user` or `administrator` (submissions only).
    pub submitted_via: Option<String>,
    /// What the submitter said it is: `category` (notJunk, spam, phishing, malware) or the
    /// evidence's `reportType`.
    pub reported_as: Option<String>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<String>,
    /// Microsoft's analysis: notStarted, running, succeeded, failed, skipped (submissions only).
    pub status: Option<String>,
    /// `result.category` (submissionResultCategory) once the analysis succeeded.
    pub verdict: Option<String>,
    pub verdict_detail: Option<String>,
    /// `pending` until the analysis ended, then `final` (submissions only).
    pub revision: Option<String>,
}

/// The email an alert is about: its user-reported email (`submissionMailEvidence`), else its
/// only analysed message; None when it names none or several (`entities.messages` has them).
pub fn email_of(a: &GraphAlert) -> Option<EmailSection> {
    if let Some(e) = a.evidence.iter().find(|e| e.kind() == "submissionMailEvidence") {
        return Some(EmailSection {
            network_message_id: e.network_message_id.clone(),
            recipient: e.recipient.clone(),
            sender: e.sender.clone(),
            sender_ip: e.sender_ip.clone(),
            subject: e.subject.clone(),
            submission: Some(SubmissionInfo {
                id: e.submission_id.clone(),
                reported_as: e.report_type.clone(),
                submitted_by: e.submitter.clone(),
                submitted_at: e.submission_date_time.clone(),
                ..SubmissionInfo::default()
            }),
            ..EmailSection::default()
        });
    }
    let mut messages = a.evidence.iter().filter(|e| e.kind() == "analyzedMessageEvidence");
    let (Some(e), None) = (messages.next(), messages.next()) else { return None };
    Some(EmailSection {
        internet_message_id: e.internet_message_id.clone(),
        network_message_id: e.network_message_id.clone(),
        recipient: e.recipient_email_address.clone(),
        sender: e.p1_sender.as_ref().and_then(|s| s.email_address.clone()),
        sender_ip: e.sender_ip.clone(),
        subject: e.subject.clone(),
        received_at: e.received_date_time.clone(),
        submission: None,
        headers: None,
    })
}
