//! The tenant's quarantine: every message its visible alerts show quarantined
//! (`analyzedMessageEvidence` with `deliveryLocation` = `quarantine`), one entry per recipient,
//! each with real MIME built from the evidence.
//!
//! Cmdlet output properties follow the names scripts read (ms-apis.md §8 marks them
//! UNCONFIRMED: Microsoft publishes no output sample); `Export-QuarantineMessage`'s `Eml` is the
//! message in Base64 with `BodyEncoding` = `Base64` (export-quarantinemessage.md).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::data::mailbox::rfc2822;
use crate::state::Sim;
use crate::time::Instant;

#[derive(Debug, Clone)]
pub struct Quarantined {
    /// `GUID1\GUID2`, as Get-QuarantineMessage's `Identity`.
    pub identity: String,
    pub message_id: String,
    pub recipient: String,
    pub sender: String,
    pub subject: String,
    pub received: Instant,
    pub quarantine_type: &'static str,
    pub sender_ip: String,
    pub urls: Vec<String>,
    /// Body bytes beyond the text (the simulator's `set_quarantined_message_padding`).
    pub padding: usize,
}

/// A GUID-shaped id derived from text: stable across calls, as a message's identity is.
fn guid_of(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Every quarantined message of tenant `tenant` now, oldest first.
pub fn messages(sim: &Sim, tenant: usize) -> Vec<Quarantined> {
    let mut out: Vec<Quarantined> = Vec::new();
    let released = sim.released_messages.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (_, created, evidence) in sim.visible_evidence(tenant) {
        for e in evidence.iter() {
            let Some((q, location)) = of_evidence(sim, e, created) else { continue };
            if !location.eq_ignore_ascii_case("quarantine") || released.contains(&(tenant, q.message_id.clone())) {
                continue;
            }
            if !out.iter().any(|x| x.identity == q.identity) {
                out.push(q);
            }
        }
    }
    out.sort_by(|a, b| a.received.cmp(&b.received).then_with(|| a.identity.cmp(&b.identity)));
    out
}

/// Every message of tenant `tenant` that reached a recipient's mailbox, with its folder and when
/// its alert was made: delivered (security-analyzedmessageevidence.md `deliveryLocation` inbox,
/// junkFolder or deletedFolder) or released from quarantine (to the inbox).
pub fn delivered(sim: &Sim, tenant: usize) -> Vec<(Quarantined, &'static str, Instant)> {
    let mut out: Vec<(Quarantined, &'static str, Instant)> = Vec::new();
    let released = sim.released_messages.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (_, created, evidence) in sim.visible_evidence(tenant) {
        for e in evidence.iter() {
            let Some((q, location)) = of_evidence(sim, e, created) else { continue };
            let folder = match location.to_ascii_lowercase().as_str() {
                "inbox" => "inbox",
                "junkfolder" => "junkemail",
                "deletedfolder" => "deleteditems",
                "quarantine" if released.contains(&(tenant, q.message_id.clone())) => "inbox",
                _ => continue,
            };
            if !out.iter().any(|(x, _, _)| x.identity == q.identity) {
                out.push((q, folder, created));
            }
        }
    }
    out
}

/// The message an `analyzedMessageEvidence` names, and its `deliveryLocation`.
fn of_evidence(sim: &Sim, e: &Value, created: Instant) -> Option<(Quarantined, String)> {
    let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    if text("@odata.type") != "#microsoft.graph.security.analyzedMessageEvidence" {
        return None;
    }
    let (nmid, recipient) = (text("networkMessageId"), text("recipientEmailAddress"));
    let identity = format!("{}\\{}", guid_of(&nmid), guid_of(&format!("{nmid}\n{}", recipient.to_lowercase())));
    let threats = e.get("threats").and_then(Value::as_array).map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","));
    let quarantine_type = match threats.unwrap_or_default().to_ascii_lowercase() {
        t if t.contains("malware") => "Malware",
        t if t.contains("phish") => "HighConfPhish",
        t if t.contains("spam") => "Spam",
        _ => "Phish",
    };
    let q = Quarantined {
        identity,
        message_id: text("internetMessageId"),
        recipient,
        sender: e.pointer("/p1Sender/emailAddress").and_then(Value::as_str).unwrap_or_default().to_owned(),
        subject: text("subject"),
        received: Instant::parse(&text("receivedDateTime")).unwrap_or(created),
        quarantine_type,
        sender_ip: text("senderIp"),
        padding: sim.quarantine_padding.load(std::sync::atomic::Ordering::Relaxed),
        urls: e
            .get("urls")
            .and_then(Value::as_array)
            .map(|u| u.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
    };
    Some((q, text("deliveryLocation")))
}

/// `n` bytes of body text in lines of 76 characters, as a Base64 attachment's would be.
fn pad(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let line = (n - out.len()).min(78);
        out.extend(std::iter::repeat_n('A', line.saturating_sub(2)));
        out.push_str(&"\r\n"[..line.min(2)]);
    }
    out
}

impl Quarantined {
    /// Get-QuarantineMessage's row.
    pub fn row(&self, detailed: bool) -> Value {
        let mut v = json!({
            "Identity": self.identity,
            "ReceivedTime": self.received.seconds_no_zone(),
            "MessageId": self.message_id,
            "SenderAddress": self.sender,
            "Subject": self.subject,
            "Size": self.mime().len(),
            "Type": self.quarantine_type,
            "QuarantineTypes": self.quarantine_type,
            "PolicyType": if self.quarantine_type == "Malware" { "AntiMalwarePolicy" } else { "HostedContentFilterPolicy" },
            "PolicyName": "Default",
            "Direction": "Inbound",
            "Reported": false,
            "ReleaseStatus": "NOTRELEASED",
            "Expires": self.received.plus_secs(30 * 86_400).seconds_no_zone(),
            "RecipientCount": 1,
            "EntityType": "Email",
        });
        if detailed {
            if let Some(o) = v.as_object_mut() {
                o.insert("RecipientAddress".into(), json!([self.recipient]));
                o.insert("QuarantineUser".into(), json!([]));
                o.insert("ReleasedUser".into(), json!([]));
            }
        }
        v
    }

    /// The message as it arrived: RFC 5322, with the headers a reader of the export looks at.
    pub fn mime(&self) -> String {
        let domain = self.sender.rsplit('@').next().unwrap_or("example.com");
        let link = self.urls.first().cloned().unwrap_or_else(|| format!("https://{domain}/login"));
        format!(
            "Received: from mail.{domain} ({ip}) by EOP.protection.outlook.com with Microsoft SMTP Server; {date}\r\n\
Authentication-Results: spf=fail (sender IP is {ip}) smtp.mailfrom={domain}; dkim=none (message not signed) header.d=none; dmarc=fail action=quarantine header.from={domain};\r\n\
From: <{sender}>\r\n\
To: <{to}>\r\n\
Subject: {subject}\r\n\
Date: {date}\r\n\
Message-ID: {id}\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Your account needs attention: {link}\r\n{pad}",
            pad = pad(self.padding),
            ip = self.sender_ip,
            date = rfc2822(self.received),
            sender = self.sender,
            to = self.recipient,
            subject = self.subject,
            id = self.message_id,
        )
    }

    /// Export-QuarantineMessage's answer.
    pub fn export(&self) -> Value {
        json!({
            "Identity": self.identity,
            "Eml": STANDARD.encode(self.mime().as_bytes()),
            "BodyEncoding": "Base64",
        })
    }
}
