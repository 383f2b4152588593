//! A reported email's MIME (RFC 5322 / 2045) read for what a SOC correlates and hunts on: its
//! `Message-ID`, addresses, subject and date, the verdicts of `Authentication-Results`, the
//! `Received` hops, the URLs of its text and HTML bodies, and its attachments' names, types,
//! sizes and SHA-256. Parsing is mail-parser's (Stalwart's maintained parser); every list and
//! value kept is bounded, so the worst message a sender can craft gives a bounded result, and
//! bytes that are not a message are an error, never a panic.

use serde::{Deserialize, Serialize};

/// The largest MIME read: the Graph client's body cap (Exchange Online's default message limit
/// is 35 MB; a larger reported email is refused as too large, with its size).
pub const MAX_MIME_BYTES: usize = 32 * 1024 * 1024;
/// Bounds of what is kept from one message.
pub const MAX_ADDRESSES: usize = 50;
pub const MAX_URLS: usize = 200;
pub const MAX_ATTACHMENTS: usize = 100;
pub const MAX_HOPS: usize = 30;
pub const MAX_VALUE_CHARS: usize = 1_000;
/// URLs longer than this are cut (and counted as cut).
pub const MAX_URL_CHARS: usize = 2_048;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedEmail {
    pub message_id: Option<String>,
    pub from: Vec<String>,
    pub sender: Option<String>,
    pub reply_to: Vec<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    /// The `Date` header, RFC 3339.
    pub date: Option<String>,
    /// `spf`, `dkim`, `dmarc` results of the first (topmost, the receiving server's)
    /// `Authentication-Results`, e.g. `fail`.
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
    pub authentication_results: Vec<String>,
    /// `Received` headers, topmost (last hop) first.
    pub received: Vec<String>,
    pub urls: Vec<String>,
    pub attachments: Vec<MimeAttachment>,
    /// Some list or value was longer than its bound and was cut.
    pub truncated: bool,
    /// Set when the message's shape is past a bound of `mime_guard` (a boundary of a megabyte,
    /// millions of header lines, …): only its top-level headers were read, and this says which
    /// bound. A sender crafted it, or something broke it; either way the message is in the
    /// artifact store whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MimeAttachment {
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: usize,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("the reported email is {size} bytes, more than the {limit} read")]
    TooLarge { size: usize, limit: usize },
    #[error("the reported email is not a MIME message (no header block)")]
    NotAMessage,
    #[error("the reported email could not be parsed: {0}")]
    Failed(String),
}

/// `parse` and the message's SHA-256 on a blocking thread, so a large message never holds up
/// the runtime's other work (a poller's tenants share one thread). The message is at most
/// `MAX_MIME_BYTES`, and `mime_guard` keeps mail-parser off the shapes known to cost it more
/// than linear time.
pub async fn parse_apart(bytes: bytes::Bytes) -> (String, Result<ParsedEmail, MimeError>) {
    // One parse at a time per process, as when it ran on the single-threaded runtime: a parse
    // holds a few times its message (ten 30 MB exports parsed at once overran the processor's
    // 256 MB in the memory soak).
    static PARSES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let _turn = PARSES.acquire().await;
    let mine = bytes.clone();
    let sha = bytes.clone();
    let job = tokio::task::spawn_blocking(move || (crate::domain::envelope::sha256_hex(&sha), parse(&mine)));
    match job.await {
        Ok(done) => done,
        // Not expected (parse is fuzzed for panics); the message is still stored and named.
        Err(e) => (crate::domain::envelope::sha256_hex(&bytes), Err(MimeError::Failed(e.to_string()))),
    }
}

/// Reads `bytes` as one message.
pub fn parse(bytes: &[u8]) -> Result<ParsedEmail, MimeError> {
    if bytes.len() > MAX_MIME_BYTES {
        return Err(MimeError::TooLarge { size: bytes.len(), limit: MAX_MIME_BYTES });
    }
    let limited = crate::domain::email::mime_guard::check(bytes).err();
    let headers_only;
    let source = match &limited {
        None => bytes,
        Some(_) => {
            headers_only = top_headers(bytes);
            &headers_only[..]
        }
    };
    let limited = limited.map(|why| format!("only the top-level headers were read: {why}"));
    let parsed = mail_parser::MessageParser::default().parse(source).filter(|m| !m.headers().is_empty());
    let m = match parsed {
        Some(m) => m,
        // Past a bound with no header small enough to keep: said, never an error.
        None if limited.is_some() => return Ok(ParsedEmail { limited, truncated: true, ..Default::default() }),
        None => return Err(MimeError::NotAMessage),
    };
    let mut out = ParsedEmail { limited, ..Default::default() };
    let mut cut = out.limited.is_some();
    let value = |s: &str, cut: &mut bool| bounded(s.trim(), MAX_VALUE_CHARS, cut);
    out.message_id = m.message_id().map(|v| value(v, &mut cut));
    out.subject = m.subject().map(|v| value(v, &mut cut));
    out.date = m.date().map(|d| d.to_rfc3339());
    let list = |a: Option<&mail_parser::Address<'_>>, cut: &mut bool| -> Vec<String> {
        let all: Vec<String> = a
            .map(|a| a.iter().filter_map(|x| x.address()).take(MAX_ADDRESSES + 1).map(|s| bounded(s, MAX_VALUE_CHARS, cut)).collect())
            .unwrap_or_default();
        capped(all, MAX_ADDRESSES, cut)
    };
    out.from = list(m.from(), &mut cut);
    out.sender = list(m.sender(), &mut cut).into_iter().next();
    out.reply_to = list(m.reply_to(), &mut cut);
    out.to = list(m.to(), &mut cut);
    out.cc = list(m.cc(), &mut cut);
    let raw_values = |name: &str| -> Vec<String> {
        m.headers_raw().filter(|(n, _)| n.eq_ignore_ascii_case(name)).take(MAX_HOPS + 1).map(|(_, v)| unfold(v)).collect()
    };
    out.authentication_results =
        capped(raw_values("Authentication-Results").iter().map(|v| value(v, &mut cut)).collect(), MAX_HOPS, &mut cut);
    if let Some(first) = out.authentication_results.first() {
        out.spf = verdict(first, "spf");
        out.dkim = verdict(first, "dkim");
        out.dmarc = verdict(first, "dmarc");
    }
    out.received = capped(raw_values("Received").iter().map(|v| value(v, &mut cut)).collect(), MAX_HOPS, &mut cut);
    // First seen first, each once; the scan stops at one past the bound (then it was cut).
    let mut urls: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    'parts: for part in m.text_bodies().chain(m.html_bodies()) {
        if let Some(text) = part.text_contents() {
            for u in find_urls(text) {
                let u = bounded(u, MAX_URL_CHARS, &mut cut);
                if seen.insert(u.clone()) {
                    urls.push(u);
                    if urls.len() > MAX_URLS {
                        break 'parts;
                    }
                }
            }
        }
    }
    out.urls = capped(urls, MAX_URLS, &mut cut);
    use mail_parser::MimeHeaders;
    let attachments: Vec<MimeAttachment> = m
        .attachments()
        .take(MAX_ATTACHMENTS + 1)
        .map(|a| MimeAttachment {
            name: a.attachment_name().map(|n| bounded(n, MAX_VALUE_CHARS, &mut cut)),
            content_type: a.content_type().map(|c| match c.subtype() {
                Some(sub) => format!("{}/{sub}", c.ctype()),
                None => c.ctype().to_owned(),
            }),
            size: a.contents().len(),
            sha256: crate::domain::envelope::sha256_hex(a.contents()),
        })
        .collect();
    out.attachments = capped(attachments, MAX_ATTACHMENTS, &mut cut);
    out.truncated = cut;
    Ok(out)
}

/// The top-level header block alone, for a message past a bound of `mime_guard`: only the
/// fields this parse reads, each kept only when it is small (its bytes, its encoded words) and
/// at most 64 of a name, so padding cannot push the ones that matter out and mail-parser reads
/// headers and nothing else, in bounded work.
fn top_headers(bytes: &[u8]) -> Vec<u8> {
    const READ: &[&[u8]] =
        &[b"from", b"sender", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id", b"received", b"authentication-results"];
    const PER_NAME: usize = 64;
    const FIELD_BYTES: usize = 4 << 10;
    const ENCODED_WORDS: usize = 32;
    let mut out = Vec::new();
    let mut kept = [0usize; 10];
    let mut field: Vec<u8> = Vec::new();
    let mut keep = |field: &[u8], out: &mut Vec<u8>| {
        let name: Vec<u8> = field.split(|c| *c == b':').next().unwrap_or_default().to_ascii_lowercase();
        let Some(slot) = READ.iter().position(|n| *n == name.as_slice()) else { return };
        let small = field.len() <= FIELD_BYTES && field.windows(2).filter(|w| w == b"=?").count() <= ENCODED_WORDS;
        if small && kept[slot] < PER_NAME {
            out.extend_from_slice(field);
            out.extend_from_slice(b"\r\n");
            kept[slot] += 1;
        }
    };
    for line in bytes.split(|c| *c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
            // A continuation with nothing to continue (a block that starts folded) is skipped.
            if !field.is_empty() && field.len() <= FIELD_BYTES {
                field.extend_from_slice(b"\r\n");
                field.extend_from_slice(&line[..line.len().min(FIELD_BYTES + 1)]);
            }
            continue;
        }
        keep(&field, &mut out);
        field.clear();
        field.extend_from_slice(&line[..line.len().min(FIELD_BYTES + 1)]);
    }
    keep(&field, &mut out);
    out.extend_from_slice(b"\r\n");
    out
}

/// A header value on one line (folding whitespace collapsed).
fn unfold(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `spf=fail (…)` → `fail`: the method's result in an Authentication-Results value (RFC 8601).
fn verdict(value: &str, method: &str) -> Option<String> {
    value.split(';').map(str::trim).find_map(|clause| {
        let (name, rest) = clause.split_once('=')?;
        (name.trim().eq_ignore_ascii_case(method))
            .then(|| rest.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
    })
}

/// `http://` and `https://` URLs in text or HTML, ending at whitespace, quotes or brackets.
fn find_urls(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut at = 0;
    while let Some(found) = lower[at..].find("http").map(|i| i + at) {
        let rest = &lower[found..];
        let scheme = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            0
        };
        if scheme == 0 {
            at = found + 4;
            continue;
        }
        let end = text[found..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '}' | '`'))
            .map_or(text.len(), |e| found + e);
        let url = text[found..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        if url.len() > scheme {
            out.push(url);
        }
        at = end.max(found + scheme);
    }
    out
}

fn bounded(s: &str, max: usize, cut: &mut bool) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    *cut = true;
    s.chars().take(max).collect()
}

fn capped<T>(mut v: Vec<T>, max: usize, cut: &mut bool) -> Vec<T> {
    if v.len() > max {
        *cut = true;
        v.truncate(max);
    }
    v
}

#[cfg(test)]
mod tests {
    use crate::domain::email::mime::*;

    const PHISH: &str = include_str!("../../../tests/fixtures/mime/phish.eml");

    #[test]
    fn a_phish_gives_its_keys_verdicts_urls_and_attachment_hashes() {
        let p = parse(PHISH.as_bytes()).map_err(|e| e.to_string());
        let Ok(p) = p else { panic!("{p:?}") };
        assert_eq!(p.message_id.as_deref(), Some("a1b2@fabrikam.example"));
        assert_eq!(p.from, ["billing@fabrikam.example"]);
        assert_eq!(p.reply_to, ["pay@evil.example"]);
        assert_eq!(p.to, ["alex@contoso.com", "bo@contoso.com"]);
        assert_eq!(p.subject.as_deref(), Some("Invoice € overdue"));
        assert_eq!(p.date.as_deref(), Some("2026-11-26T09:57:00Z"));
        assert_eq!((p.spf.as_deref(), p.dkim.as_deref(), p.dmarc.as_deref()), (Some("fail"), Some("none"), Some("fail")));
        assert!(p.authentication_results[0].contains("header.d=none;"), "unfolded: {:?}", p.authentication_results);
        assert_eq!(p.received.len(), 1);
        assert_eq!(p.urls, ["https://pay.evil.example/x?a=1&b=2", "https://evil.example/help"]);
        assert_eq!(p.attachments.len(), 1);
        let a = &p.attachments[0];
        assert_eq!((a.name.as_deref(), a.content_type.as_deref(), a.size), (Some("invoice.html"), Some("application/octet-stream"), 5));
        assert_eq!(a.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "sha256 of `hello`");
        assert!(!p.truncated);
    }

    #[test]
    fn hostile_input_is_bounded_or_refused() {
        assert_eq!(parse(&vec![b'a'; MAX_MIME_BYTES + 1]), Err(MimeError::TooLarge { size: MAX_MIME_BYTES + 1, limit: MAX_MIME_BYTES }));
        assert!(parse(b"").is_err());
        let many_urls: String = (0..500).map(|i| format!("https://x{i}.example/ ")).collect();
        let many_to: String = (0..80).map(|i| format!("u{i}@contoso.com")).collect::<Vec<_>>().join(", ");
        let msg = format!("From: a@b.example\r\nTo: {many_to}\r\nSubject: {}\r\n\r\n{many_urls}\r\n", "s".repeat(5_000));
        let p = parse(msg.as_bytes()).map_err(|e| e.to_string()).unwrap_or_default();
        assert_eq!((p.urls.len(), p.to.len()), (MAX_URLS, MAX_ADDRESSES));
        assert_eq!(p.subject.map(|s| s.chars().count()), Some(MAX_VALUE_CHARS));
        assert!(p.truncated);
    }

    /// A message past a bound of `mime_guard` (here a boundary of 100,000 characters, which costs
    /// mail-parser a compare of it at every `--`) is read for its top-level headers, says so,
    /// and keeps no field that would cost more than its bytes.
    #[test]
    fn a_shape_past_a_bound_is_read_for_its_headers_and_says_which_bound() {
        let boundary = "-".repeat(100_000);
        let msg = format!(
            "From: a@fabrikam.example\r\nTo: b@contoso.com\r\nSubject: {}\r\nX-Words: {}\r\n\
             Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n\r\nhttp://e.example/x\r\n",
            "=?utf-8?q?caf=C3=A9?=",
            "=?ab?q?".repeat(1_000),
        );
        let p = parse(msg.as_bytes()).map_err(|e| e.to_string()).unwrap_or_default();
        assert_eq!((p.from.as_slice(), p.subject.as_deref()), (&["a@fabrikam.example".to_owned()][..], Some("café")));
        assert!(p.limited.as_deref().is_some_and(|l| l.contains("boundary of 100000 characters")), "{:?}", p.limited);
        assert!(p.truncated && p.urls.is_empty() && p.attachments.is_empty());
        let headers_only = String::from_utf8(top_headers(msg.as_bytes())).unwrap_or_default();
        assert!(!headers_only.contains("X-Words") && !headers_only.contains("Content-Type"), "{headers_only}");
        // Padding before the fields that matter does not push them out.
        let padded = format!("X-Pad: 1\r\n{}{msg}", "X-Pad: 1\r\n".repeat(20_000));
        let p = parse(padded.as_bytes()).map_err(|e| e.to_string()).unwrap_or_default();
        assert_eq!(p.subject.as_deref(), Some("café"), "{:?}", p.limited);
        let within = parse(PHISH.as_bytes()).map_err(|e| e.to_string()).unwrap_or_default();
        assert_eq!(within.limited, None);
        assert!(!serde_json::to_string(&within).unwrap_or_default().contains("limited"), "absent, not null, within the bounds");
    }
}
