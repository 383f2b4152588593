//! A tenant's phishing-report mailbox (ms-apis.md §5; user-list-messages.md, message.md,
//! attachment-get.md, message-get.md "Get MIME content"): reports arriving over time, each
//! carrying the reported email as an item attachment (what Outlook's Report button sends), as
//! an attached `.eml` file, or being the reported email itself (forwarded as is). Every email
//! has real MIME (RFC 5322 headers with Authentication-Results, a multipart body with links
//! and a file), so a client parses what Exchange would give it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Map, Value};

use super::pool::{Pool, User};
use crate::ids::{self, pick, pick_str, SimRng};
use crate::scenario::{AlertPlan, MailboxPlan};
use crate::time::{parse_duration_secs, Instant};

/// One message of the reporting mailbox.
#[derive(Debug, Clone)]
pub struct MailMessage {
    pub id: String,
    pub received: Instant,
    /// Listed from this instant on.
    pub visible: Instant,
    /// The Graph `message` resource, as listed (without `@odata.etag`).
    pub body: Map<String, Value>,
    /// The message's own MIME (`/messages/{id}/$value`).
    pub mime: String,
    pub attachments: Vec<MailAttachment>,
}

impl MailMessage {
    /// How the reported email is carried: `item` (an attached message), `file` (an `.eml`), or
    /// `message` (the report is the email).
    pub fn carried_as(&self) -> &'static str {
        match self.attachments.first().map(|a| &a.kind) {
            Some(AttachmentKind::Item { .. }) => "item",
            Some(AttachmentKind::File { .. }) => "file",
            None => "message",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MailAttachment {
    pub id: String,
    pub name: String,
    pub kind: AttachmentKind,
}

#[derive(Debug, Clone)]
pub enum AttachmentKind {
    /// An attached message (`#microsoft.graph.itemAttachment`): its MIME through `/$value`.
    Item { mime: String, item: Map<String, Value> },
    /// A file (`#microsoft.graph.fileAttachment`), here an `.eml` of the reported email.
    File { content_type: String, bytes: Vec<u8> },
}

impl MailAttachment {
    /// The attachment resource as `GET …/attachments/{id}` answers (item without `$expand`).
    pub fn resource(&self, modified: Instant) -> Value {
        match &self.kind {
            AttachmentKind::Item { mime, .. } => json!({
                "@odata.type": "#microsoft.graph.itemAttachment", "id": self.id, "lastModifiedDateTime": modified.graph7(),
                "name": self.name, "contentType": null, "size": mime.len(), "isInline": false,
            }),
            AttachmentKind::File { content_type, bytes } => json!({
                "@odata.type": "#microsoft.graph.fileAttachment", "id": self.id, "lastModifiedDateTime": modified.graph7(),
                "name": self.name, "contentType": content_type, "size": bytes.len(), "isInline": false,
                "contentId": null, "contentLocation": null, "contentBytes": STANDARD.encode(bytes),
            }),
        }
    }

    /// What `GET …/attachments/{id}/$value` answers: the attached message's MIME, or the file.
    pub fn raw(&self) -> (&str, Vec<u8>) {
        match &self.kind {
            AttachmentKind::Item { mime, .. } => ("text/plain", mime.as_bytes().to_vec()),
            AttachmentKind::File { content_type, bytes } => (content_type.as_str(), bytes.clone()),
        }
    }
}

const LURES: &[(&str, &str)] = &[
    ("Action required: verify your account", "https://login-verify.contoso-support.net/session"),
    ("Invoice #4471 overdue", "https://billing.fabrikam-billing.com/pay/4471"),
    ("Shared document: Q3 salaries.xlsx", "https://share.tailspin.example/d/q3"),
    ("Your mailbox is almost full", "https://mail-quota.contoso-support.net/upgrade"),
    ("DocuSign: please sign", "https://docusign.tailspin.example/sign/88231"),
];

/// The reporting mailbox's address at `domain`.
pub fn address(plan: &MailboxPlan, domain: &str) -> String {
    format!("{}@{domain}", plan.local_part)
}

/// The mailbox's messages: `plan.count` reports received over the alert plan's window.
pub fn generate(plan: &MailboxPlan, alerts: &AlertPlan, pool: &Pool, seed: u64, start: Instant) -> Vec<MailMessage> {
    let mut rng = ids::rng(seed, 0x3A);
    let from = start.plus_secs(parse_duration_secs(&alerts.from).unwrap_or(-86_400));
    let to = start.plus_secs(parse_duration_secs(&alerts.to).unwrap_or(0));
    let span = (to.0 - from.0).max(1);
    let mut out: Vec<MailMessage> = (0..plan.count)
        .map(|_| {
            let at = Instant(from.0 + rng.gen_range(0..span));
            report(&mut rng, plan, pool, at)
        })
        .collect();
    out.sort_by(|a, b| (a.received, &a.id).cmp(&(b.received, &b.id)));
    out
}

/// `count` reports received at `now`.
pub fn raise(rng: &mut SimRng, plan: &MailboxPlan, pool: &Pool, now: Instant, count: usize) -> Vec<MailMessage> {
    (0..count).map(|_| report(rng, plan, pool, now)).collect()
}

/// The email a user reports: from outside, to them, with a link and a file.
struct Phish {
    mime: String,
    subject: String,
    message_id: String,
    sender: String,
    sent: Instant,
}

fn phish(rng: &mut SimRng, victim: &User, pool: &Pool, at: Instant) -> Phish {
    let (subject, url) = *pick(rng, LURES);
    let domain = pick(rng, &pool.sender_domains).clone();
    let sender = format!("{}@{domain}", pick_str(rng, &["billing", "it-support", "no-reply", "hr"]));
    let message_id = format!("<{}@{domain}>", ids::hex(rng, 10));
    let ip = pick(rng, &pool.external_ips).clone();
    let sent = at.plus_secs(-rng.gen_range(60..7_200));
    let (spf, dkim, dmarc) = if rng.gen_bool(0.7) { ("fail", "none", "fail") } else { ("pass", "pass", "pass") };
    let boundary = format!("b_{}", ids::hex(rng, 8));
    let file = format!("<html><body>Open <a href=\"{url}\">the document</a></body></html>\r\n{}", ids::hex(rng, 16));
    let mime = format!(
        "Received: from mail.{domain} ({ip}) by EX1.{tenant} with Microsoft SMTP Server; {date}\r\n\
Authentication-Results: spf={spf} (sender IP is {ip}) smtp.mailfrom={domain}; dkim={dkim} (message not signed) header.d=none; dmarc={dmarc} action=none header.from={domain};\r\n\
From: \"Accounts\" <{sender}>\r\n\
To: \"{name}\" <{to}>\r\n\
Subject: {subject}\r\n\
Date: {date}\r\n\
Message-ID: {message_id}\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
\r\n\
--{boundary}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Please review today: {url}\r\n\
\r\n\
--{boundary}\r\n\
Content-Type: text/html; name=\"document.html\"\r\n\
Content-Disposition: attachment; filename=\"document.html\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
{file64}\r\n\
--{boundary}--\r\n",
        tenant = pool.domain,
        date = rfc2822(sent),
        name = victim.display_name,
        to = victim.upn,
        file64 = STANDARD.encode(file.as_bytes()),
    );
    Phish { mime, subject: subject.to_owned(), message_id, sender, sent }
}

fn report(rng: &mut SimRng, plan: &MailboxPlan, pool: &Pool, received: Instant) -> MailMessage {
    // Outlook's times are whole seconds (message.md): reports of one burst tie.
    let received = Instant::from_unix_seconds(received.unix_seconds());
    let reporter = pick(rng, &pool.users).clone();
    let p = phish(rng, &reporter, pool, received);
    let mailbox = address(plan, &pool.domain);
    let id = format!("AAMkA{}=", ids::hex(rng, 24));
    let roll: f64 = rng.gen();
    let (kind, attachments) = if roll < plan.item_fraction {
        let item = json!({
            "@odata.type": "#microsoft.graph.message", "id": "", "internetMessageId": p.message_id, "subject": p.subject,
            "receivedDateTime": p.sent.plus_secs(5).seconds_z(), "sentDateTime": p.sent.seconds_z(),
            "from": {"emailAddress": {"name": "Accounts", "address": p.sender}},
            "toRecipients": [{"emailAddress": {"name": reporter.display_name, "address": reporter.upn}}],
        });
        let a = MailAttachment {
            id: format!("AAMkA{}=", ids::hex(rng, 20)),
            name: p.subject.clone(),
            kind: AttachmentKind::Item { mime: p.mime.clone(), item: item.as_object().cloned().unwrap_or_default() },
        };
        ("item", vec![a])
    } else if roll < plan.item_fraction + plan.file_fraction {
        let a = MailAttachment {
            id: format!("AAMkA{}=", ids::hex(rng, 20)),
            name: format!("{}.eml", p.subject.replace([':', '#'], "")),
            kind: AttachmentKind::File { content_type: "message/rfc822".into(), bytes: p.mime.clone().into_bytes() },
        };
        ("file", vec![a])
    } else {
        ("inline", Vec::new())
    };
    // The report as Exchange holds it: a wrapper from the reporter, or the phish itself.
    let (subject, from, mime, internet_id) = if kind == "inline" {
        (p.subject.clone(), (String::from("Accounts"), p.sender.clone()), p.mime.clone(), p.message_id.clone())
    } else {
        let wrapper_id = format!("<{}@{}>", ids::hex(rng, 10), pool.domain);
        let mime = format!(
            "From: \"{name}\" <{upn}>\r\nTo: <{mailbox}>\r\nSubject: Phish: {subject}\r\nDate: {date}\r\nMessage-ID: {wrapper_id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nReported via the Report button.\r\n",
            name = reporter.display_name,
            upn = reporter.upn,
            subject = p.subject,
            date = rfc2822(received),
        );
        (format!("Phish: {}", p.subject), (reporter.display_name.clone(), reporter.upn.clone()), mime, wrapper_id)
    };
    let body = json!({
        "id": id,
        "createdDateTime": received.seconds_z(),
        "lastModifiedDateTime": received.seconds_z(),
        "receivedDateTime": received.seconds_z(),
        "sentDateTime": received.plus_secs(-2).seconds_z(),
        "hasAttachments": !attachments.is_empty(),
        "internetMessageId": internet_id,
        "subject": subject,
        "bodyPreview": "Reported via the Report button.",
        "importance": "normal",
        "parentFolderId": "AAMkAInbox=",
        "conversationId": format!("AAQkA{}=", ids::hex(rng, 12)),
        "isRead": false,
        "isDraft": false,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}&exvsurl=1&viewmodel=ReadMessageItem"),
        "inferenceClassification": "focused",
        "body": {"contentType": "html", "content": "<html><body>Reported via the Report button.</body></html>"},
        "sender": {"emailAddress": {"name": from.0, "address": from.1}},
        "from": {"emailAddress": {"name": from.0, "address": from.1}},
        "toRecipients": [{"emailAddress": {"name": "Phishing reports", "address": mailbox}}],
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
    });
    MailMessage {
        id,
        received,
        visible: received.plus_secs(plan.latency_secs),
        body: body.as_object().cloned().unwrap_or_default(),
        mime,
        attachments,
    }
}

/// RFC 5322 date, e.g. `Thu, 26 Nov 2026 10:00:00 +0000`.
pub(crate) fn rfc2822(t: Instant) -> String {
    let secs = t.unix_seconds();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(m - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {:02}:{:02}:{:02} +0000", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's civil_from_days).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_5322() {
        assert_eq!(rfc2822(Instant::parse("2026-11-26T10:00:00Z").unwrap_or_default()), "Thu, 26 Nov 2026 10:00:00 +0000");
        assert_eq!(rfc2822(Instant::parse("2024-02-29T23:59:59Z").unwrap_or_default()), "Thu, 29 Feb 2024 23:59:59 +0000");
    }
}
