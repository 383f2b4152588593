//! The email a report in the phishing mailbox is about (ms-apis.md §5): the attached message
//! (an `itemAttachment`, what Outlook's Report button sends; its MIME through
//! `/attachments/{id}/$value`), else an attached `.eml` (`message/rfc822` file), else the
//! message itself, forwarded as is (its MIME through `/messages/{id}/$value`). The listing of
//! attachments asks for no `contentBytes`, so a large file never rides along.

use serde::Serialize;

use crate::domain::alert::{HeadSpec, VersionFormat};
use crate::domain::integration::Credentials;
use crate::error::GraphError;
use crate::ports::GraphApi;
use crate::sources::path_segment;

/// Attachments by `id` and `lastModifiedDateTime` (attachment.md).
const ATTACHMENT_HEAD: HeadSpec = HeadSpec { id: "id", version: "lastModifiedDateTime", version_format: VersionFormat::IsoTime };

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedVia {
    ItemAttachment,
    FileAttachment,
    Message,
}

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
