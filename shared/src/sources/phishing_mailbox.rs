//! The phishing-report mailbox: Graph `GET /v1.0/users/{mailbox}/mailFolders/inbox/messages`
//! (user-list-messages.md, mailfolder-list-messages.md; ms-apis.md §5), windowed on
//! `receivedDateTime`.
//!
//! What is here so far is the request, shared by Test & Save (which makes the poller's own
//! call) and, once the source is registered, the poll loop: the window leads the `$filter` and
//! `$orderby` sorts on it (Outlook answers `InefficientFilter` otherwise), the integration's
//! own filter is AND-ed after it in parentheses, `$select` keeps pages small, and no `$count`
//! is asked for (the documented end of a listing is the end of its nextLink chain). The source
//! is not in the registry yet: reading the reported email's MIME is still to come, and until
//! then Test & Save refuses to save an integration that enables it.

use crate::domain::alert::{HeadSpec, VersionFormat};
use crate::domain::integration_doc::MailboxDoc;
use crate::domain::time::GraphTime;
use crate::ports::{GraphQuery, PageRequest};

/// `id` and `receivedDateTime` (message.md).
pub const MESSAGE_HEAD: HeadSpec = HeadSpec { id: "id", version: "receivedDateTime", version_format: VersionFormat::IsoTime };

/// The message members a report is read by; the body and the MIME are fetched per message.
pub const MESSAGE_SELECT: &str =
    "id,receivedDateTime,sentDateTime,internetMessageId,subject,from,sender,toRecipients,hasAttachments,isRead,webLink";

/// Messages per request: Outlook's default is 10; pages of full messages risk a 504
/// (user-list-messages.md), and `$select` keeps these small.
pub const MAILBOX_PAGE_SIZE: usize = 100;

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
