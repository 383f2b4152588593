//! The email a report in the phishing mailbox is about (ms-apis.md §5): the attached message
//! (an `itemAttachment`, what Outlook's Report button sends; its MIME through
//! `/attachments/{id}/$value`), else an attached `.eml` (`message/rfc822` file), else the
//! message itself, forwarded as is (its MIME through `/messages/{id}/$value`). The listing of
//! attachments asks for no `contentBytes`, so a large file never rides along.

use crate::app::polling::item_json::with_member;
use crate::app::polling::origin::{safe_key, Context};
use crate::domain::alert::{HeadSpec, Item, VersionFormat};
use crate::domain::email::mime;
use crate::domain::integration::Credentials;
pub use crate::domain::polling::mailbox_report::ReportedVia;
use crate::domain::polling::mailbox_report::{ReportedEmailNote, REPORTED_EMAIL_MEMBER};
use crate::error::{Error, GraphError};
use crate::ports::{ArtifactStore, GraphApi};
use crate::sources::{path_segment, ReportedEmailAt};

/// Attachments by `id` and `lastModifiedDateTime` (attachment.md).
const ATTACHMENT_HEAD: HeadSpec = HeadSpec { id: "id", version: "lastModifiedDateTime", version_format: VersionFormat::IsoTime };

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedEmail {
    pub mime: Vec<u8>,
    pub via: ReportedVia,
    pub attachment_id: Option<String>,
}

/// The reported email of message `id` in `mailbox`; None when Graph no longer has the message.
pub async fn fetch_reported_email<G: GraphApi>(
    graph: &G,
    creds: &Credentials,
    mailbox: &str,
    id: &str,
) -> Result<Option<ReportedEmail>, GraphError> {
    let message = format!("/v1.0/users/{}/messages/{}", path_segment(mailbox), path_segment(id));
    let listing = format!("{message}/attachments?$select=id,name,contentType,size,isInline,lastModifiedDateTime");
    let attachments = match graph.collection(creds, &listing, ATTACHMENT_HEAD).await {
        Ok(a) => a,
        // The report was deleted or moved since it was listed.
        Err(GraphError::Http { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let kind = |raw: &str| -> (String, String, String) {
        let v: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
        (text("@odata.type"), text("contentType").to_ascii_lowercase(), text("name").to_ascii_lowercase())
    };
    let item = attachments.iter().find(|a| kind(a.raw.get()).0 == "#microsoft.graph.itemAttachment");
    let eml = attachments.iter().find(|a| {
        let (t, ct, name) = kind(a.raw.get());
        t == "#microsoft.graph.fileAttachment" && (ct == "message/rfc822" || name.ends_with(".eml"))
    });
    let (path, via, attachment_id) = match item.map(|a| (a, ReportedVia::ItemAttachment)).or(eml.map(|a| (a, ReportedVia::FileAttachment)))
    {
        Some((a, via)) => (format!("{message}/attachments/{}/$value", path_segment(&a.head.id)), via, Some(a.head.id.clone())),
        None => (format!("{message}/$value"), ReportedVia::Message, None),
    };
    Ok(graph.content(creds, &path).await?.map(|mime| ReportedEmail { mime, via, attachment_id }))
}

/// Retrieves the email `item` (a report listed from the mailbox) is about, stores its MIME as
/// `reported-email/<integration>/<sha256>.eml` (the same email reported twice is one object),
/// parses it, and adds what was found to the item as [`REPORTED_EMAIL_MEMBER`]. A report whose
/// email is gone, too large or not MIME is still delivered, with the problem named; throttling,
/// outages and a refused permission fail the run (the span is read and sent again). True when
/// the email was stored.
pub async fn annotate<G: GraphApi, A: ArtifactStore>(
    graph: &G,
    creds: &Credentials,
    artifacts: &A,
    ctx: &Context<'_>,
    at: &ReportedEmailAt,
    item: &mut Item,
) -> Result<bool, Error> {
    let mut note = ReportedEmailNote::default();
    match fetch_reported_email(graph, creds, &at.mailbox, &at.message_id).await {
        Ok(Some(email)) => {
            let mime = bytes::Bytes::from(email.mime);
            let (sha256, parsed) = mime::parse_apart(mime.clone()).await;
            let key = format!("reported-email/{}/{sha256}.eml", safe_key(ctx.integration_id));
            note.mime = Some(artifacts.put(&key, Vec::from(mime)).await?);
            note.via = Some(email.via);
            note.attachment_id = email.attachment_id;
            match parsed {
                Ok(p) => note.parsed = Some(p),
                Err(e) => note.problem = Some(e.to_string()),
            }
        }
        Ok(None) => note.problem = Some("the report was deleted or moved before its email was read".into()),
        Err(e @ GraphError::TooLarge { .. }) => note.problem = Some(format!("the reported email was not stored: {e}")),
        Err(e) if e.is_retryable() || matches!(e, GraphError::Http { status: 401 | 403, .. }) => return Err(e.into()),
        // This one message is refused (a 400 about it): delivered without its email, never
        // holding the mailbox back.
        Err(e) => note.problem = Some(format!("Graph refused the reported email: {e}")),
    }
    if let Some(p) = &note.problem {
        tracing::warn!(message = %at.message_id, problem = %p, "a report is delivered without its parsed email");
    }
    // A note of strings, numbers and a bounded parse always serialises.
    let value = serde_json::to_string(&note).unwrap_or_else(|_| "{}".into());
    item.raw = with_member(&item.raw, REPORTED_EMAIL_MEMBER, &value)?;
    Ok(note.mime.is_some())
}
