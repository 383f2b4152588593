//! The phishing-report mailbox: Graph `GET /v1.0/users/{mailbox}/mailFolders/inbox/messages`
//! (user-list-messages.md, mailfolder-list-messages.md; ms-apis.md §5), windowed on
//! `receivedDateTime`.
//!
//! The window leads the `$filter` and `$orderby` sorts on it (Outlook answers
//! `InefficientFilter` otherwise), the integration's own filter is AND-ed after it in
//! parentheses, and `$select` keeps pages small. Outlook documents no `$count` for messages
//! here, so none is asked for: a listing's end is the end of its `@odata.nextLink` chain,
//! followed whole from the first request (never rebuilt with `$skip`). Test & Save makes the
//! same first request.
//!
//! Each new report's email is retrieved before delivery (app/polling/reported_email.rs): the attached
//! message's MIME, an attached `.eml`, or the report's own MIME; it is stored in the artifact
//! store and its parse travels with the report (domain/polling/mailbox_report.rs).

use serde_json::value::RawValue;

use super::{ReportedEmailAt, SourceSpec, SpanQuery, Unit};
use crate::domain::alert::Item;
use crate::domain::alert::{HeadSpec, VersionFormat};
use crate::domain::envelope::Envelope;
use crate::domain::integration::sections::MailboxDoc;
use crate::domain::integration::Integration;
use crate::domain::polling::mailbox_report::{email_section, note_of, to_alert};
use crate::domain::processing::output::EvidenceRetrieval;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::ConfigError;
use crate::ports::{GraphQuery, PageRequest};
use crate::sources::settings::PollSettings;

/// `id` and `receivedDateTime` (message.md).
pub const MESSAGE_HEAD: HeadSpec = HeadSpec { id: "id", version: "receivedDateTime", version_format: VersionFormat::IsoTime };

/// The message members a report is read by; the body and the MIME are fetched per message.
pub const MESSAGE_SELECT: &str =
    "id,receivedDateTime,sentDateTime,internetMessageId,subject,from,sender,toRecipients,hasAttachments,isRead,webLink";

/// Requests a report's email costs: its attachments' listing and one MIME download.
const REQUESTS_PER_REPORT: usize = 2;

pub struct PhishingMailbox;

impl SourceSpec for PhishingMailbox {
    fn source(&self) -> Source {
        Source::PhishingMailbox
    }
    fn head(&self) -> HeadSpec {
        MESSAGE_HEAD
    }
    fn page_size(&self, settings: &PollSettings) -> usize {
        settings.mailbox_page_size
    }
    /// Outlook's times are whole seconds (message.md): a span is never cut inside one.
    fn granularity(&self) -> i64 {
        10_000_000
    }
    fn ready(&self, integration: &Integration) -> Result<(), ConfigError> {
        match integration.phishing_mailbox {
            Some(_) => Ok(()),
            None => Err(ConfigError::Missing {
                name: format!("integration `{}` sources.phishing_mailbox", integration.id),
                hint: "set sources.phishing_mailbox.address to the mailbox users report phishing to".into(),
            }),
        }
    }
    fn request(&self, q: &SpanQuery<'_>) -> PageRequest {
        // `ready` refused an integration without a mailbox before any request.
        let none = MailboxDoc { address: String::new(), filter: None };
        request(q.integration.phishing_mailbox.as_ref().unwrap_or(&none), q.from, q.to, q.top)
    }
    /// Links only: a chain that ends is the listing's end; one that is cut is never resumed by
    /// an offset (Outlook's `$skip` in its links is not the page size, user-list-messages.md).
    fn max_skip(&self, _settings: &PollSettings) -> Option<usize> {
        Some(0)
    }
    fn count_optional(&self) -> bool {
        true
    }
    fn reported_email(&self, integration: &Integration, item: &Item) -> Option<ReportedEmailAt> {
        let mailbox = integration.phishing_mailbox.as_ref()?;
        Some(ReportedEmailAt { mailbox: mailbox.address.clone(), message_id: item.head.id.clone() })
    }
    fn requests_per_item(&self) -> usize {
        REQUESTS_PER_REPORT
    }
    fn request_cap(&self, settings: &PollSettings) -> usize {
        settings.mailbox_requests_per_run
    }
    /// Outlook's times are whole seconds: a campaign reported by thousands in one second is one
    /// tie. Listed with `$select` a report is under a kilobyte: 10,000 of them are a few MB.
    fn max_tie_items(&self) -> usize {
        5_000
    }
    fn units(&self, envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String> {
        let bad = |e: serde_json::Error| format!("the reported message does not parse: {e}");
        let note = note_of(object.get()).map_err(bad)?;
        let parsed = note.as_ref().and_then(|n| n.parsed.as_ref());
        let forwarded = note.as_ref().is_some_and(|n| n.forwarded());
        let alert = to_alert(object.get(), parsed, forwarded).map_err(bad)?;
        let email = email_section(object.get(), parsed, forwarded).map_err(bad)?;
        let evidence = match &note {
            None => EvidenceRetrieval {
                status: "failed".into(),
                artifacts: vec![],
                reason: Some("the report carries no retrieved email (it was not delivered by the poller)".into()),
                ..EvidenceRetrieval::default()
            },
            Some(n) => EvidenceRetrieval {
                status: if n.mime.is_some() { "retrieved" } else { "failed" }.into(),
                artifacts: n.mime.iter().cloned().collect(),
                reason: n.problem.clone(),
                ..EvidenceRetrieval::default()
            },
        };
        Ok(vec![Unit { email: Some(email), evidence: Some(evidence), ..Unit::plain(alert, object, envelope.version) }])
    }
}

/// The listing of `[from, to)` of `mailbox`'s inbox.
pub fn request(mailbox: &MailboxDoc, from: GraphTime, to: GraphTime, top: usize) -> PageRequest {
    PageRequest::Graph(GraphQuery {
        collection: format!("/v1.0/users/{}/mailFolders/inbox/messages", super::path_segment(&mailbox.address)),
        field: MESSAGE_HEAD.version,
        from,
        to,
        top,
        skip: 0,
        expand: None,
        ordered: true,
        counted: false,
        and_filter: mailbox.filter.clone().filter(|f| !f.trim().is_empty()),
        select: Some(MESSAGE_SELECT),
        head: MESSAGE_HEAD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_leads_the_filter_and_the_users_filter_follows_in_parentheses() {
        let m = MailboxDoc { address: "phish@contoso.com".into(), filter: Some("isRead eq false or hasAttachments eq true".into()) };
        let t = GraphTime::from_unix_seconds(0);
        let PageRequest::Graph(q) = request(&m, t, t.plus(std::time::Duration::from_secs(60)), 100) else { panic!("a Graph query") };
        assert_eq!(q.collection, "/v1.0/users/phish%40contoso.com/mailFolders/inbox/messages");
        assert_eq!((q.field, q.ordered, q.counted), ("receivedDateTime", true, false));
        assert_eq!(q.and_filter.as_deref(), Some("isRead eq false or hasAttachments eq true"));
        let none = MailboxDoc { address: "phish@contoso.com".into(), filter: Some("  ".into()) };
        assert!(matches!(request(&none, t, t, 10), PageRequest::Graph(q) if q.and_filter.is_none()));
    }
}
