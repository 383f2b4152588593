//! The alert sources, one module each, behind one small interface: how to query a window, which
//! members are an item's id and version, what an integration needs for the source, and the
//! processor's normalized view of an item. The poll loop (app/polling/poll.rs, app/polling/span.rs), the cursor
//! protocol and delivery are written once and know no source by name.
//!
//! Adding a source: write a module here that implements [`SourceSpec`], add its variant to
//! `Source` (domain/source.rs) and its line to [`spec`].

mod cloud_apps;
mod defender_alerts;
mod defender_incidents;
mod email_submissions;
pub mod phishing_mailbox;
pub mod settings;

use serde_json::value::RawValue;

use crate::domain::alert::{HeadSpec, Item, VersionFormat};
use crate::domain::email::section::EmailSection;
use crate::domain::envelope::Envelope;
use crate::domain::graph_alert::GraphAlert;
use crate::domain::integration::Integration;
use crate::domain::processing::filter::DropReason;
use crate::domain::processing::output::{EvidenceRetrieval, IncidentRef};
use crate::domain::source::Source;
use crate::domain::time::GraphTime;
use crate::error::ConfigError;
use crate::ports::PageRequest;
use crate::sources::settings::PollSettings;

pub use cloud_apps::{CLOUD_APPS_HEAD, CLOUD_APPS_MAX_LIMIT};
pub use email_submissions::SUBMISSION_HEAD;

/// The registry: each source's module.
pub fn spec(source: Source) -> &'static dyn SourceSpec {
    match source {
        Source::DefenderAlerts => &defender_alerts::DefenderAlerts,
        Source::DefenderIncidents => &defender_incidents::DefenderIncidents,
        Source::CloudApps => &cloud_apps::CloudApps,
        Source::EmailSubmissions => &email_submissions::EmailSubmissions,
        Source::PhishingMailbox => &phishing_mailbox::PhishingMailbox,
    }
}

/// One span's request as the poll loop asks for it.
#[derive(Debug, Clone, Copy)]
pub struct SpanQuery<'a> {
    pub from: GraphTime,
    pub to: GraphTime,
    /// Items per request.
    pub top: usize,
    /// Items of the span already read by offset.
    pub skip: usize,
    /// Children asked for in the same request (incidents' alerts), while the API allows it.
    pub expand: bool,
    /// Whose window: where the source reads (the Cloud Apps portal, the mailbox and its filter).
    pub integration: &'a Integration,
}

/// A source's children fetched per item when they could not come expanded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Children {
    /// The Graph collection under the item, e.g. `/v1.0/security/incidents/7/alerts`.
    pub path: String,
    /// The member they are appended as, as `$expand` would have put them.
    pub member: &'static str,
    pub head: HeadSpec,
}

/// One alert the processor filters and publishes, with the incident that carried it if any.
pub struct Unit {
    pub alert: GraphAlert,
    pub raw: Box<RawValue>,
    pub version: GraphTime,
    pub incident: Option<IncidentRef>,
    /// Which state of a version this is, where one version is delivered twice (a submission
    /// `pending` its verdict, then `final`): part of the dedup key, so each is published once.
    pub revision: Option<&'static str>,
    /// The email, where the source knows it better than the alert view's evidence says.
    pub email: Option<EmailSection>,
    /// What the poller retrieved with the item (a reported email's MIME), where it did.
    pub evidence: Option<EvidenceRetrieval>,
}

impl Unit {
    /// The alert an object is, at the envelope's version, with nothing more known of it.
    pub fn plain(alert: GraphAlert, object: &RawValue, version: GraphTime) -> Self {
        Unit { alert, raw: object.to_owned(), version, incident: None, revision: None, email: None, evidence: None }
    }
}

/// A message whose reported email the poll loop retrieves before delivery: it stores the MIME
/// in the artifact store and adds what it found to the item (domain/polling/mailbox_report.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedEmailAt {
    pub mailbox: String,
    pub message_id: String,
}

/// What the poll loop and the processor need to know about a source.
pub trait SourceSpec: Sync {
    fn source(&self) -> Source;
    /// Which members of an item are its id and its version (the window's field).
    fn head(&self) -> HeadSpec;
    /// Items asked for per request.
    fn page_size(&self, settings: &PollSettings) -> usize;
    /// The window field's smallest step, in 100 ns ticks.
    fn granularity(&self) -> i64 {
        1
    }
    /// What the integration must have before this source can be polled; the error names the
    /// field and the fix.
    fn ready(&self, _integration: &Integration) -> Result<(), ConfigError> {
        Ok(())
    }
    /// The request for `[from, to)` from offset `skip`.
    fn request(&self, query: &SpanQuery<'_>) -> PageRequest;
    /// The highest offset the API accepts when it gives no link; None: no cap.
    fn max_skip(&self, settings: &PollSettings) -> Option<usize> {
        Some(settings.max_skip)
    }
    /// Whether an answer may come without a count, its end then marked by the API's own "no
    /// more" at the end of an unbroken chain (Cloud Apps' `hasNext: false`).
    fn count_optional(&self) -> bool {
        false
    }
    /// Whether the first read asks for children expanded (`$expand`).
    fn expands(&self) -> bool {
        false
    }
    /// An item's children to fetch when they did not come expanded; None: it has none.
    fn children(&self, _item: &Item) -> Option<Children> {
        None
    }
    /// The reported email to retrieve with an item; None: the source has none.
    fn reported_email(&self, _integration: &Integration, _item: &Item) -> Option<ReportedEmailAt> {
        None
    }
    /// Requests one delivered item costs beyond its page (its reported email's), counted
    /// against the run's cap before its span is sent.
    fn requests_per_item(&self) -> usize {
        0
    }
    /// Requests per run.
    fn request_cap(&self, settings: &PollSettings) -> usize {
        settings.max_pages
    }
    /// A tie (items sharing one instant, which time cannot split) is read while it holds at
    /// most twice this many items; a larger one fails the run, naming it. 0: the span's limit.
    fn max_tie_items(&self) -> usize {
        0
    }
    /// The processor's view: the alerts one delivered object carries.
    fn units(&self, envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String>;
    /// Whether a delivered item will still change in a way its consumer waits for (a
    /// submission under analysis): the poll loop re-reads it by id ([`Self::item_path`]) until
    /// it settles, and delivers it once more then.
    fn unsettled(&self, _item: &Item) -> bool {
        false
    }
    /// Which state of its version a delivered item is in, where one version is delivered more
    /// than once (a submission `pending`, then `final`); part of its dedup keys.
    fn revision(&self, _item: &Item) -> Option<&'static str> {
        None
    }
    /// Where one item is read by its id; None: the source's items are never re-read.
    fn item_path(&self, _id: &str) -> Option<String> {
        None
    }
    /// Why the integration does not want `unit` from this source, if it does not (the
    /// source's own settings; the common filters apply to every source).
    fn excluded(&self, _integration: &Integration, _unit: &Unit) -> Option<(DropReason, String)> {
        None
    }
    /// Whether an unsettled item is held, undelivered, until it settles (its verdict may be one
    /// the integration excludes): the settle rounds deliver it then, or without its verdict
    /// once the integration's wait for it passed (settle.rs).
    fn held_for_verdict(&self, _integration: &Integration, _item: &Item) -> bool {
        false
    }
    /// How long a held item waits for its verdict.
    fn verdict_wait(&self, _integration: &Integration) -> Option<std::time::Duration> {
        None
    }
    /// What the processor notes on `unit`'s output, where this source has something to say.
    fn note(&self, _integration: &Integration, _unit: &Unit) -> Option<String> {
        None
    }
}

/// Graph's alerts and incidents: `id` and `lastUpdateDateTime` (security-alert.md, security-incident.md).
pub const GRAPH_SECURITY_HEAD: HeadSpec = HeadSpec { id: "id", version: "lastUpdateDateTime", version_format: VersionFormat::IsoTime };

/// An id as one URL path segment: unreserved characters as they are, every other byte
/// percent-encoded (RFC 3986 §2.3), so an id can neither add a segment nor a query.
pub fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Graph collection windowed on `head.version`, ordered on it where the collection takes
/// `$orderby`.
fn graph_query(collection: &str, head: HeadSpec, q: &SpanQuery<'_>, expand: Option<&'static str>, ordered: bool) -> PageRequest {
    PageRequest::Graph(crate::ports::GraphQuery {
        collection: collection.to_owned(),
        field: head.version,
        from: q.from,
        to: q.to,
        top: q.top,
        skip: q.skip,
        expand,
        ordered,
        counted: true,
        and_filter: None,
        select: None,
        head,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        assert_eq!(path_segment("a/b c?d=é"), "a%2Fb%20c%3Fd%3D%C3%A9");
        assert_eq!(path_segment("49b1f9f4-67a1.X_~"), "49b1f9f4-67a1.X_~");
    }

    #[test]
    fn the_registry_names_every_source_once() {
        for source in Source::ALL {
            assert_eq!(spec(source).source(), source);
        }
    }
}
