//! What is fuzzed: each decoder of Microsoft data on the poll path, the processor on an intake
//! message (it decodes the alert, filters it and renders both output formats), the token and
//! secret parsers, and the integration document in both formats.

use std::sync::{Arc, OnceLock};

use m365_ingest::adapters::aws::parse_secret;
use m365_ingest::adapters::graph::auth::token_claims;
use m365_ingest::adapters::graph::cloud_apps::decode_cloud_apps_page;
use m365_ingest::adapters::graph::collections::{decode_entity, decode_page};
use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryDedupStore};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::domain::alert::Item;
use m365_ingest::domain::integration::doc as integration_doc;
use m365_ingest::domain::integration::Integration;
use m365_ingest::ports::{ProcessWith, SystemClock};
use m365_ingest::sources::phishing_mailbox::MESSAGE_HEAD;
use m365_ingest::sources::{GRAPH_SECURITY_HEAD, SUBMISSION_HEAD};
use m365_ingest::GraphTime;

pub struct Target {
    pub name: &'static str,
    pub corpus: Vec<&'static [u8]>,
    pub run: fn(&[u8]),
}

const ALERTS: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list.json");
const SENTINEL: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/graph_alerts_v2_list_sentinel.json");
const INCIDENTS: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/graph_incidents_list_expand_alerts.json");
const SUBMISSIONS: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/graph_email_threat_submissions_list.json");
const PHISH_EML: &[u8] = include_bytes!("../../../../shared/tests/fixtures/mime/phish.eml");
const MESSAGES: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/graph_user_messages_list.json");
const MDCA: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/mdca_alerts_list.json");
/// `tenant-sim sample` gzipped, and zipped (deflated), as Python's gzip and zipfile write them.
const RESULT_GZIP: &[u8] =
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03+I\xcdK\xcc+\xd1-\xce\xccU(N\xcc-\xc8I\x05\x00\x1e\x87\xa1\x94\x11\x00\x00\x00";
const RESULT_ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00!\x00\x1e\x87\xa1\x94\x13\x00\x00\x00\x11\x00\x00\x00\x01\x00\x00\x00a+I\xcdK\xcc+\xd1-\xce\xccU(N\xcc-\xc8I\x05\x00PK\x01\x02\x14\x03\x14\x00\x00\x00\x08\x00\x00\x00!\x00\x1e\x87\xa1\x94\x13\x00\x00\x00\x11\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x01\x00\x00\x00\x00aPK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00/\x00\x00\x002\x00\x00\x00\x00\x00";
const TOKEN: &str = include_str!("../../../tenant-sim/tests/fixtures/microsoft-docs/entra_token_response_client_credentials.json");
const DOC_TOML: &str = include_str!("../../../examples/integration.toml");

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Intake messages as the poller writes them, around the doc samples.
fn envelopes() -> &'static [Vec<u8>] {
    static E: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    E.get_or_init(|| {
        let mut out = Vec::new();
        for (source, page) in [
            ("defender_alerts", ALERTS),
            ("defender_alerts", SENTINEL),
            ("defender_incidents", INCIDENTS),
            ("email_submissions", SUBMISSIONS),
        ] {
            let v: serde_json::Value = serde_json::from_str(page).unwrap_or_default();
            for item in v["value"].as_array().into_iter().flatten() {
                out.push(envelope(source, item).into_bytes());
            }
        }
        let v: serde_json::Value = serde_json::from_str(MDCA).unwrap_or_default();
        for item in v["data"].as_array().into_iter().flatten() {
            out.push(envelope("cloud_apps", item).into_bytes());
        }
        // Reports as the poller delivers them: with the reported email's parse, and without.
        let v: serde_json::Value = serde_json::from_str(MESSAGES).unwrap_or_default();
        let parsed = m365_ingest::domain::email::mime::parse(PHISH_EML).ok();
        for item in v["value"].as_array().into_iter().flatten() {
            out.push(envelope("phishing_mailbox", item).into_bytes());
            let mut annotated = item.clone();
            annotated[m365_ingest::domain::polling::mailbox_report::REPORTED_EMAIL_MEMBER] =
                serde_json::json!({"via": "item_attachment", "attachment_id": "a", "parsed": parsed});
            out.push(envelope("phishing_mailbox", &annotated).into_bytes());
        }
        out
    })
}

fn envelope(source: &str, object: &serde_json::Value) -> String {
    serde_json::json!({
        "schema": m365_ingest::domain::envelope::INTAKE_SCHEMA, "integration_id": "contoso", "tenant_id": "t",
        "source": source, "id": object["id"].as_str().unwrap_or("x"), "version": "2026-11-26T10:00:00.0000000Z",
        "dedup_key": "k", "polled_at": "2026-11-26T10:00:00.0000000Z", "object": object,
    })
    .to_string()
}

fn items(page: &[Item]) {
    for i in page {
        // What the processor decodes of each item.
        let _ = serde_json::from_str::<m365_ingest::domain::graph_alert::GraphAlert>(i.raw.get());
        let _ = m365_ingest::domain::polling::cloud_apps_alert::to_alert(i.raw.get());
        let _ = m365_ingest::domain::polling::email_submission::to_alert(i.raw.get());
        let _ = m365_ingest::domain::polling::email_submission::email_section(i.raw.get());
        if let Ok(note) = m365_ingest::domain::polling::mailbox_report::note_of(i.raw.get()) {
            let parsed = note.as_ref().and_then(|n| n.parsed.as_ref());
            let _ = m365_ingest::domain::polling::mailbox_report::to_alert(i.raw.get(), parsed, false);
            let _ = m365_ingest::domain::polling::mailbox_report::email_section(i.raw.get(), parsed, true);
        }
    }
}

type LocalProcessor = (Processor<ProcessWith<Arc<MemoryDedupStore>, MemoryAlertQueue, DirArtifactStore, SystemClock>>, Integration);

fn processor() -> &'static (tokio::runtime::Runtime, LocalProcessor) {
    static P: OnceLock<(tokio::runtime::Runtime, LocalProcessor)> = OnceLock::new();
    P.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("runtime: {e}"));
        let dir = std::env::temp_dir().join(format!("m365-ingest-fuzz-{}", std::process::id()));
        let mut i = Integration::new("contoso", "t", "c", "s");
        i.output = m365_ingest::domain::integration::OutputFormat::Both;
        i.email_submissions.enabled = true;
        i.email_submissions.excluded_result_categories = vec!["notJunk".into(), "allowedByPolicy".into()];
        i.phishing_mailbox =
            Some(m365_ingest::domain::integration::sections::MailboxDoc { address: "phish@contoso.com".into(), filter: None });
        let p = Processor::new(
            Arc::new(MemoryDedupStore::new()),
            MemoryAlertQueue::new(),
            DirArtifactStore::new(dir),
            SystemClock,
            ProcessSettings::default(),
        );
        (rt, (p, i))
    })
}

/// The fields of the doc samples that hold free text a device or a sender chose.
const FREE_TEXT: &[&str] = &["title", "description", "fileName", "filePath", "displayName", "subject", "userPrincipalName", "name"];

/// One of the intake messages with `\uDxxx` escapes at the start of some of its free-text
/// values, chosen by the fuzzer's bytes (the first picks the message).
fn with_unpaired_surrogates(b: &[u8]) -> Option<String> {
    let (first, rest) = b.split_first()?;
    let all = envelopes();
    let body = String::from_utf8(all[usize::from(*first) % all.len()].clone()).ok()?;
    let mut starts: Vec<usize> = FREE_TEXT
        .iter()
        .flat_map(|k| {
            let needle = format!("\"{k}\":\"");
            body.match_indices(needle.as_str()).map(|(at, _)| at + needle.len()).collect::<Vec<_>>()
        })
        .collect();
    starts.sort_unstable();
    let mut out = String::with_capacity(body.len() + 64);
    let mut copied = 0;
    for (n, at) in starts.into_iter().enumerate() {
        let Some(&r) = rest.get(n) else { break };
        out.push_str(&body[copied..at]);
        // Low bits choose the unit; a high bit adds a paired one after it (a real character).
        out.push_str(&format!("\\u{:04x}", 0xD800 + (u16::from(r) << 3)));
        if r & 0x80 != 0 {
            out.push_str("\\ud83d\\ude00");
        }
        copied = at;
    }
    out.push_str(&body[copied..]);
    Some(out)
}

type Observed = Processor<ProcessWith<Arc<MemoryDedupStore>, Arc<MemoryAlertQueue>, DirArtifactStore, SystemClock>>;

/// A processor of its own for one input (no dedup across inputs), and what it published.
fn fresh_processor() -> (Observed, Integration, Arc<MemoryAlertQueue>) {
    let (_, (_, i)) = processor();
    let out = Arc::new(MemoryAlertQueue::new());
    let dir = std::env::temp_dir().join(format!("m365-ingest-fuzz-{}", std::process::id()));
    let p =
        Processor::new(Arc::new(MemoryDedupStore::new()), out.clone(), DirArtifactStore::new(dir), SystemClock, ProcessSettings::default());
    (p, i.clone(), out)
}

pub fn all() -> Vec<Target> {
    let envelope_corpus: Vec<&'static [u8]> = envelopes().iter().map(|e| e.as_slice()).collect();
    vec![
        Target {
            name: "graph_time",
            corpus: vec![b"2021-04-27T12:19:27.7211305Z", b"2021-04-26T09:45:50+02:00", b"2026-11-26T00:00:00Z"],
            run: |b| {
                let _ = GraphTime::parse(&text(b)).map(|t| t.to_string());
            },
        },
        Target {
            name: "graph_page",
            corpus: vec![ALERTS.as_bytes(), SENTINEL.as_bytes(), INCIDENTS.as_bytes()],
            run: |b| {
                if let Ok(p) = decode_page(b, GRAPH_SECURITY_HEAD) {
                    items(&p.items);
                }
            },
        },
        Target {
            name: "submission_page",
            corpus: vec![SUBMISSIONS.as_bytes()],
            run: |b| {
                if let Ok(p) = decode_page(b, SUBMISSION_HEAD) {
                    items(&p.items);
                }
                // A submission read by id.
                if let Ok(i) = decode_entity(b, SUBMISSION_HEAD) {
                    items(std::slice::from_ref(&i));
                }
            },
        },
        Target {
            // The phishing mailbox's listing.
            name: "mailbox_page",
            corpus: vec![MESSAGES.as_bytes()],
            run: |b| {
                if let Ok(p) = decode_page(b, MESSAGE_HEAD) {
                    items(&p.items);
                }
            },
        },
        Target {
            // A reported email: hostile headers, broken MIME structure, endless URLs.
            name: "mime",
            corpus: vec![PHISH_EML],
            run: |b| {
                let _ = m365_ingest::domain::email::mime::parse(b);
            },
        },
        Target {
            name: "cloud_apps_page",
            corpus: vec![MDCA.as_bytes()],
            run: |b| {
                if let Ok(p) = decode_cloud_apps_page(b) {
                    items(&p.items);
                }
            },
        },
        Target {
            name: "processor",
            corpus: envelope_corpus,
            run: |b| {
                let (rt, (p, i)) = processor();
                let body = text(b);
                let _ = rt.block_on(p.batch(vec![i.clone()]).process_message(&body));
            },
        },
        Target {
            // Escapes no Rust string holds (unpaired UTF-16 surrogates, as Windows file names
            // carry them), put into the free text of real intake messages: every message must
            // still be published, and every published body read by a strict parser.
            name: "processor_unpaired_text",
            corpus: vec![b"\x00\x01\x02\x03", b"\xff\x10\x7f\x80\x00"],
            run: |b| {
                let Some(body) = with_unpaired_surrogates(b) else { return };
                let (rt, _) = processor();
                let (p, i, out) = fresh_processor();
                let outcome = rt.block_on(p.batch(vec![i]).process_message(&body));
                if let m365_ingest::app::processing::process::MessageOutcome::Retry(why) = outcome {
                    panic!("an intake message with unpaired surrogates was not published: {why}");
                }
                for m in out.messages() {
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&m) {
                        panic!("a published body does not parse: {e}");
                    }
                }
            },
        },
        Target {
            // A live response result: the file, or a gzip or zip of it (attacker-chosen bytes).
            name: "result_archive",
            corpus: vec![RESULT_GZIP, RESULT_ZIP, b"MZ\x90\x00"],
            run: |b| {
                let limits = m365_ingest::domain::evidence::result_archive::Limits { max_bytes: 8 << 20, max_ratio: 200 };
                let mut u = m365_ingest::domain::evidence::result_archive::Unpacker::new(limits);
                let mut out = Vec::new();
                for c in b.chunks(97) {
                    if u.feed(c, &mut out).is_err() {
                        return;
                    }
                    out.clear();
                }
                let _ = u.finish(&mut out);
            },
        },
        Target {
            name: "token",
            corpus: vec![TOKEN.as_bytes(), b"eyJhbGciOiJSUzI1NiJ9.eyJyb2xlcyI6WyJhIl0sIndpZHMiOlsiYiJdfQ.sig"],
            run: |b| {
                let _ = token_claims(&text(b));
            },
        },
        Target {
            name: "secret",
            corpus: vec![br#"{"tenant_id":"t","client_id":"c","client_secret":"s"}"#, br#"{"tenant_id":"t","client_id":"c","certificate_pem":"-----BEGIN CERTIFICATE-----","private_key_pem":"-----BEGIN PRIVATE KEY-----"}"#],
            run: |b| {
                let _ = parse_secret("fuzz", &text(b));
            },
        },
        Target {
            name: "integration_toml",
            corpus: vec![DOC_TOML.as_bytes()],
            run: |b| {
                if let Ok(d) = integration_doc::from_toml(&text(b)) {
                    let _ = d.validate();
                }
            },
        },
        Target {
            name: "integration_json",
            corpus: vec![br#"{"version":1,"id":"contoso","tenant_id":"6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b","client_id":"0e7c1d2a-3b4c-4d5e-9f60-718293a4b5c6","secret_ref":"m365-ingest/contoso","polling":{"overlap":"15m"},"sources":{"phishing_mailbox":{"address":"p@contoso.com","filter":"isRead eq false and (importance eq 'high')"}},"filters":{"severities":["high"],"title_patterns":["re:^x(y|z)$"]}}"#],
            run: |b| {
                if let Ok(d) = integration_doc::from_json(&text(b)) {
                    let _ = d.validate();
                }
            },
        },
    ]
}
