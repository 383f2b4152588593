//! The intake queue on SQS: SendMessageBatch, with per-entry failures reported.

use aws_sdk_sqs::config::http::HttpRequest;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use aws_smithy_types::body::SdkBody;

use super::sdk::{describe, sdk_retryable};
use crate::error::QueueError;
use crate::ports::{AlertQueue, FailedEntry, QueueEntry, SendReport, MAX_BATCH_ENTRIES};

/// SendMessageBatch's request in the AWS JSON 1.0 protocol, as the SDK's serializer writes it
/// (a test holds the two byte for byte, signature included). Written here because the SDK
/// escapes each message body one byte at a time (`aws_smithy_json::escape`), which was a fifth
/// of the poll process's CPU with bodies of a few KB.
fn batch_body(queue_url: &str, entries: &[QueueEntry]) -> Vec<u8> {
    // Room for each body escaped whole (`escape_quotes` writes into it), so it never moves.
    let size: usize = entries.iter().map(|e| 2 * e.body.len() + e.id.len() + 48).sum();
    let mut out = Vec::with_capacity(size + queue_url.len() + 32);
    out.extend_from_slice(b"{\"QueueUrl\":");
    json_string(&mut out, queue_url);
    out.extend_from_slice(b",\"Entries\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Id\":");
        json_string(&mut out, &e.id);
        out.extend_from_slice(b",\"MessageBody\":");
        json_string(&mut out, &e.body);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// What a byte becomes inside a JSON string: 0 = itself, `u` = `\u00XX`, else `\` and this.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0A] = b'n';
    t[0x0C] = b'f';
    t[0x0D] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// `s` as a JSON string, escaped as the SDK escapes it (lower-case `\u00xx` for the other
/// control characters; `/`, DEL and non-ASCII as they are).
fn json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.push(b'"');
    // An envelope has no control characters (JSON escapes them in strings; the poller turns
    // line breaks between tokens into spaces), so only quotes and backslashes are looked for;
    // the check itself vectorises.
    if bytes.iter().fold(false, |control, &b| control | (b < 0x20)) {
        escape_each(out, bytes);
    } else {
        escape_quotes(out, bytes);
    }
    out.push(b'"');
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that equals `b`, and no other bit.
fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ (ONES * u64::from(b));
    // A byte's high bit survives only where the byte is zero: `+ 0x7f` carries into it from
    // any low bit, and `| x` from its own (no carry crosses bytes).
    !(((x & !HIGH) + !HIGH) | x) & HIGH
}

/// Quotes and backslashes escaped, eight bytes at a time: each word is stored whole and the
/// write position advanced past what belongs, so nothing is copied byte by byte or through a
/// `memcpy` call per run. About one byte in ten of an alert is a quote; finding each with a
/// search call and copying the run before it was a tenth of the poll process's CPU.
fn escape_quotes(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    // Room for every byte escaped, plus one word of slack for the whole-word stores.
    out.resize(start + 2 * bytes.len() + 8, 0);
    let buf = &mut out[start..];
    let mut at = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let mut escapes = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
        let mut left = 8;
        while escapes != 0 {
            // The bytes before the escape go out with the store; the backslash then lands on
            // the escaped byte's place, and the word moves on to start at that byte.
            let before = (escapes.trailing_zeros() / 8) as usize;
            buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
            at += before;
            buf[at] = b'\\';
            at += 1;
            word >>= 8 * before;
            escapes = (escapes >> (8 * before)) & !0x80;
            left -= before;
        }
        buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
        at += left;
    }
    for &b in words.remainder() {
        if b == b'"' || b == b'\\' {
            buf[at] = b'\\';
            at += 1;
        }
        buf[at] = b;
        at += 1;
    }
    out.truncate(start + at);
}

/// The general case: every byte looked up.
fn escape_each(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let e = ESCAPE[usize::from(b)];
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if e == b'u' {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Runs before signing, on every attempt: the signature covers this body.
fn with_body(request: &mut HttpRequest, body: bytes::Bytes) {
    request.headers_mut().insert("content-length", body.len().to_string());
    *request.body_mut() = SdkBody::from(body);
}

#[derive(Debug, Clone)]
pub struct SqsAlertQueue {
    client: Client,
    queue_url: String,
}

impl SqsAlertQueue {
    pub fn new(client: Client, queue_url: &str) -> Self {
        SqsAlertQueue { client, queue_url: queue_url.to_owned() }
    }
}

/// The evidence-jobs queue: one message, held back up to SQS's 15 minutes.
impl crate::ports::DelayQueue for SqsAlertQueue {
    async fn send_delayed(&self, body: &str, delay: std::time::Duration) -> Result<(), QueueError> {
        let seconds = delay.min(crate::ports::evidence::MAX_DELAY).as_secs() as i32;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Send { detail: describe(&e), retryable: sdk_retryable(&e) })
    }
}

impl AlertQueue for SqsAlertQueue {
    async fn send_batch(&self, entries: &[QueueEntry]) -> Result<SendReport, QueueError> {
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(QueueError::Send {
                detail: format!("{} entries; SendMessageBatch takes at most {MAX_BATCH_ENTRIES}", entries.len()),
                retryable: false,
            });
        }
        // The SDK is given the entries without their bodies, and the request's body is swapped
        // for `batch_body` before it is signed (see there why).
        let placeholders = entries
            .iter()
            .map(|e| SendMessageBatchRequestEntry::builder().id(&e.id).message_body("").build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Send { detail: e.to_string(), retryable: false })?;
        let body = bytes::Bytes::from(batch_body(&self.queue_url, entries));
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(placeholders))
            .customize()
            .mutate_request(move |request| with_body(request, body.clone()))
            .send()
            .await
            .map_err(|e| QueueError::Send { detail: describe(&e), retryable: sdk_retryable(&e) })?;
        Ok(SendReport {
            failed: out
                .failed()
                .iter()
                .map(|f| FailedEntry {
                    id: f.id().to_owned(),
                    // The sender's fault (a bad message) will fail again; the service's may not.
                    retryable: !f.sender_fault(),
                    reason: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// One HTTP/1.1 request off a connection: its header block and body.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed inside a request");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap();
                while buf.len() < end + 4 + len {
                    let n = stream.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                return (head, buf[end + 4..end + 4 + len].to_vec());
            }
        }
    }

    /// Answers every request with an empty successful batch; returns what was asked.
    async fn capture(listener: TcpListener, requests: usize) -> Vec<(String, Vec<u8>)> {
        let mut seen = Vec::new();
        for _ in 0..requests {
            let (mut stream, _) = listener.accept().await.unwrap();
            seen.push(read_request(&mut stream).await);
            let body = r#"{"Successful":[],"Failed":[]}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    }

    /// Quotes and backslashes at every position of a word, in runs and alone, beside
    /// multi-byte characters whose bytes are neither (a high bit set must not match).
    #[test]
    fn word_at_a_time_escaping_writes_what_serde_json_writes() {
        let parts = ["\"", "\\", "a", "é", "€", "😀", "/", "\u{7f}", "xyzw", "\"\"", "\\\""];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut checked = 0;
        for len in 0..200 {
            for _ in 0..20 {
                let mut s = String::new();
                while s.len() < len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    s.push_str(parts[(seed % parts.len() as u64) as usize]);
                }
                let mut out = b"prefix".to_vec();
                json_string(&mut out, &s);
                assert_eq!(String::from_utf8_lossy(&out[6..]), serde_json::to_string(&s).unwrap(), "{s:?}");
                assert!(out.starts_with(b"prefix"));
                checked += 1;
            }
        }
        assert_eq!(checked, 4000);
    }

    #[tokio::test]
    async fn the_batch_body_is_the_sdks_own_byte_for_byte_and_signed() {
        crate::adapters::graph::settings::install_crypto_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(capture(listener, 2));
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None, None, "test"))
            .time_source(aws_smithy_async::time::StaticTimeSource::new(UNIX_EPOCH + Duration::from_secs(1_764_000_000)))
            .endpoint_url(&endpoint)
            .http_client(http)
            .build();
        let client = Client::from_conf(config);
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/intake";
        // Every kind of character an escape treats apart: quotes, backslashes, control
        // characters, a slash, DEL, non-ASCII and a character outside the BMP.
        let every_ascii: String = (0u8..128).map(char::from).collect();
        let bodies = [r#"{"a":"b\"c","d":"e\\f"}"#.to_owned(), every_ascii, "/\u{7f}é€😀".to_owned(), "x".repeat(5000)];
        let entries: Vec<QueueEntry> = bodies.iter().enumerate().map(|(i, b)| QueueEntry { id: i.to_string(), body: b.clone() }).collect();
        SqsAlertQueue::new(client.clone(), url).send_batch(&entries).await.unwrap();
        let sdk_entries =
            entries.iter().map(|e| SendMessageBatchRequestEntry::builder().id(&e.id).message_body(&e.body).build().unwrap()).collect();
        client.send_message_batch().queue_url(url).set_entries(Some(sdk_entries)).send().await.unwrap();
        let seen = server.await.unwrap();
        let (ours, sdks) = (&seen[0], &seen[1]);
        assert_eq!(String::from_utf8_lossy(&ours.1), String::from_utf8_lossy(&sdks.1), "the bodies differ");
        let header = |head: &str, name: &str| head.lines().find(|l| l.starts_with(name)).map(str::to_owned);
        for name in ["authorization:", "content-length:", "content-type:", "x-amz-target:"] {
            assert_eq!(header(&ours.0, name), header(&sdks.0, name), "{name}");
        }
        assert!(header(&ours.0, "authorization:").is_some_and(|a| a.contains("signature=")), "signed: {}", ours.0);
    }
}
