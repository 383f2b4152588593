//! A message of the phishing-report mailbox read as the processor's alert view, with the
//! reported email's MIME (when it was retrieved) as its evidence: the reported message (its
//! `Message-ID`, first sender and recipient), the reporter's mailbox when the report carries
//! the email as an attachment, its URLs and its attachments by SHA-256. The docs define no
//! severity for a user's report: medium, and high when the receiving server's
//! Authentication-Results say the sender failed DMARC.

use serde::{Deserialize, Serialize};

use crate::domain::email::mime::ParsedEmail;
use crate::domain::email::section::EmailSection;
use crate::domain::envelope::ObjectRef;
use crate::domain::graph_alert::{Evidence, FileDetails, GraphAlert, Sender};

/// The member the poller adds to a report before delivery, as an OData instance annotation in
/// our own namespace (Graph's members never start with `@m365ingest.`): what it retrieved of the
/// reported email, so that the processor reads the report without calling Microsoft.
pub const REPORTED_EMAIL_MEMBER: &str = "@m365ingest.reportedEmail";

/// Where the reported email was found in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedVia {
    /// An attached message (`itemAttachment`): what Outlook's Report button sends.
    ItemAttachment,
    /// An attached `.eml` (`message/rfc822` file).
    FileAttachment,
    /// The report is the email itself, forwarded or redirected to the mailbox.
    Message,
}

/// What the poller retrieved of a report's email: its MIME in the artifact store and the parse
/// of its headers, or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedEmailNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<ReportedVia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parsed: Option<ParsedEmail>,
    /// Why the email or its parse is missing (deleted before it was read, too large, not MIME).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ReportedEmailNote {
    /// Whether the report is the email itself (then its sender is not the reporter).
    pub fn forwarded(&self) -> bool {
        self.via == Some(ReportedVia::Message)
    }
}

/// The poller's note in a delivered report; None when it carries none (delivered by a version
/// that did not retrieve emails, or replayed from elsewhere).
pub fn note_of(message: &str) -> Result<Option<ReportedEmailNote>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Annotated {
        #[serde(rename = "@m365ingest.reportedEmail", default)]
        note: Option<ReportedEmailNote>,
    }
    Ok(serde_json::from_str::<Annotated>(message)?.note)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Message {
    id: String,
    received_date_time: Option<String>,
    internet_message_id: Option<String>,
    subject: Option<String>,
    from: Option<Recipient>,
    to_recipients: Vec<Recipient>,
    web_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Recipient {
    email_address: Option<Address>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Address {
    name: Option<String>,
    address: Option<String>,
}

fn address(r: &Option<Recipient>) -> Option<String> {
    r.as_ref().and_then(|r| r.email_address.as_ref()).and_then(|a| a.address.clone())
}

/// The most URLs and attachments carried as evidence (the email section keeps its own bounds).
const MAX_EVIDENCE: usize = 50;

/// The report as an alert. `reported` is the reported email's parse, `forwarded` whether the
/// report is that email itself (then its sender is not the reporter).
pub fn to_alert(message: &str, reported: Option<&ParsedEmail>, forwarded: bool) -> Result<GraphAlert, serde_json::Error> {
    let m: Message = serde_json::from_str(message)?;
    let subject = reported.and_then(|r| r.subject.clone()).or_else(|| m.subject.clone());
    let reporter = (!forwarded).then(|| address(&m.from)).flatten();
    let severity = if reported.is_some_and(|r| r.dmarc.as_deref() == Some("fail")) { "high" } else { "medium" };
    let mut evidence = vec![Evidence {
        odata_type: "#microsoft.graph.security.analyzedMessageEvidence".into(),
        internet_message_id: reported
            .and_then(|r| r.message_id.as_ref())
            .map(|id| format!("<{id}>"))
            .or_else(|| m.internet_message_id.clone()),
        subject: subject.clone(),
        recipient_email_address: reported
            .and_then(|r| r.to.first().cloned())
            .or_else(|| m.to_recipients.first().and_then(|r| r.email_address.as_ref()).and_then(|a| a.address.clone())),
        p1_sender: reported
            .and_then(|r| r.from.first().cloned())
            .or_else(|| if forwarded { address(&m.from) } else { None })
            .map(|s| Sender { email_address: Some(s), display_name: None }),
        ..Evidence::default()
    }];
    if let Some(r) = &reporter {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.mailboxEvidence".into(),
            roles: vec!["contextual".into()],
            primary_address: Some(r.clone()),
            display_name: m.from.as_ref().and_then(|f| f.email_address.as_ref()).and_then(|a| a.name.clone()),
            ..Evidence::default()
        });
    }
    for url in reported.map(|r| r.urls.as_slice()).unwrap_or_default().iter().take(MAX_EVIDENCE) {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.urlEvidence".into(),
            url: Some(url.clone()),
            ..Evidence::default()
        });
    }
    for a in reported.map(|r| r.attachments.as_slice()).unwrap_or_default().iter().take(MAX_EVIDENCE) {
        evidence.push(Evidence {
            odata_type: "#microsoft.graph.security.fileEvidence".into(),
            file_details: Some(FileDetails {
                file_name: a.name.clone(),
                sha256: Some(a.sha256.clone()),
                file_size: i64::try_from(a.size).ok(),
                ..FileDetails::default()
            }),
            ..Evidence::default()
        });
    }
    let who = reporter.as_deref().map_or_else(|| "a user".to_owned(), str::to_owned);
    Ok(GraphAlert {
        id: m.id.clone(),
        title: Some(format!("Reported email: {}", subject.as_deref().unwrap_or("(no subject)"))),
        description: Some(format!("Reported by {who} to the phishing mailbox.")),
        severity: Some(severity.into()),
        status: Some("new".into()),
        category: Some("UserReportedEmail".into()),
        detection_source: Some("userReported".into()),
        created_date_time: m.received_date_time.clone(),
        alert_web_url: m.web_link.clone(),
        evidence,
        ..GraphAlert::default()
    })
}

/// The output's `email` section for a report: the reported email's keys, and its parsed
/// headers and indicators under `headers`.
pub fn email_section(message: &str, reported: Option<&ParsedEmail>, forwarded: bool) -> Result<EmailSection, serde_json::Error> {
    let m: Message = serde_json::from_str(message)?;
    Ok(EmailSection {
        internet_message_id: reported
            .and_then(|r| r.message_id.as_ref())
            .map(|id| format!("<{id}>"))
            .or_else(|| forwarded.then(|| m.internet_message_id.clone()).flatten()),
        network_message_id: None,
        recipient: reported.and_then(|r| r.to.first().cloned()),
        sender: reported.and_then(|r| r.from.first().cloned()),
        sender_ip: None,
        subject: reported.and_then(|r| r.subject.clone()),
        received_at: reported.and_then(|r| r.date.clone()),
        submission: None,
        headers: reported.cloned(),
    })
}
