//! `soak --memory`: the processor's worst batch, measured. The release `processor` runs as
//! Lambda runs it (its own process, the Runtime API, its role's keys through the IAM gate) under a
//! 256 MB limit, and is handed ten evidence jobs of quarantined emails of 30 MB each, batch by
//! batch as the evidence-jobs queue's event source mapping would (ten messages a batch). Its peak
//! resident set (`VmHWM`) is read for each batch, reset before the next (`clear_refs` 5).
//!
//! The limit: `RLIMIT_DATA` of 256 MiB on the process (every private writable mapping counts, so
//! it is stricter than the resident memory Lambda holds a function to), and where the machine
//! lets us, a memory cgroup of 256 MiB without swap as well (Lambda's own way).
//!
//! The simulator runs inside this program, so its copies of the emails are not the processor's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use m365_ingest::adapters::aws::{DynamoEvidenceJobs, Principal};
use m365_ingest::app::evidence::setup::EvidenceSettings;
use m365_ingest::app::test_and_save::check::{CredentialInput, SaveMode};
use m365_ingest::domain::evidence::index::due_set;
use m365_ingest::domain::evidence::job::{EvidenceJob, JobMessage, JobRecord};
use m365_ingest::domain::evidence::plan::{job_key, EvidenceTarget};
use m365_ingest::domain::integration::doc as integration_doc;
use m365_ingest::domain::integration::{Credential, Credentials};
use m365_ingest::ports::EvidenceJobStore;
use m365_ingest::secret::Secret;
use m365_ingest::{GraphTime, Source};
use serde_json::{json, Value};
use tenant_sim::scenario::{CertificateSpec, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID};
use tenant_sim::testing::ClientCertificate;
use tenant_sim::{Scenario, Simulator};

use super::drive;
use super::lambda::{Function, Outcome};
use super::world::Resources;

/// Lambda's memory for the processor (template.yaml `MemorySize`).
const LIMIT_BYTES: u64 = 256 << 20;
const EMAIL_BYTES: usize = 30 << 20;
const JOBS: usize = 10;
const INTEGRATION: &str = "memory";
/// The processor's timeout in template.yaml.
const TIMEOUT: Duration = Duration::from_secs(150);

/// One batch handed to the processor and what it cost.
struct Batch {
    messages: usize,
    exports: usize,
    peak_rss: u64,
    /// CPU time the processor spent on the batch.
    cpu: Duration,
    outcome: String,
}

pub async fn run(out: &Path) -> Result<bool, String> {
    let run_id = format!("memory-{}", std::process::id());
    let dir = out.join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let res = super::world::resources(&run_id).await?;
    let cert = ClientCertificate::generate(7)?;
    let mut scenario = Scenario { seed: 7, ..Scenario::default() };
    let t = &mut scenario.tenants[0];
    // Exchange Online's app-only access is documented with a certificate (ms-apis.md §8), and
    // Get-QuarantineMessage / Export-QuarantineMessage want Security Administrator (§8).
    t.apps[0].certificates = vec![CertificateSpec { pem: Some(cert.cert_pem.clone()), pem_file: None }];
    t.apps[0].directory_roles = vec!["Security Administrator".into()];
    t.alerts.count = 400;
    t.alerts.incidents = 100;
    let sim = Simulator::start(scenario).await.map_err(|e| format!("cannot start the simulator: {e}"))?;
    sim.set_quarantined_message_padding(EMAIL_BYTES);
    let ca_file = dir.join("tenant-sim-ca.pem");
    sim.write_ca(&ca_file).map_err(|e| format!("cannot write {}: {e}", ca_file.display()))?;

    save_integration(&res, sim.base_url(), &ca_file, &cert).await?;
    let targets = quarantined_emails(&sim).await?;
    if targets.len() < JOBS {
        return Err(format!("the scenario has {} distinct quarantined emails, {JOBS} needed", targets.len()));
    }
    for (alert, target) in targets.into_iter().take(JOBS) {
        queue_job(&res, &alert, target).await?;
    }

    let mut env: Vec<(String, String)> = vec![
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT_URL".into(), res.endpoint.clone()),
        ("AWS_ENDPOINT_URL_SQS".into(), res.sqs_endpoint.clone()),
        ("STATE_TABLE".into(), res.table.clone()),
        ("DEDUP_TABLE".into(), res.dedup_table.clone()),
        ("ARTIFACT_BUCKET".into(), res.bucket.clone()),
        ("OUTPUT_QUEUE_URL".into(), res.output.clone()),
        ("EVIDENCE_QUEUE_URL".into(), res.evidence.clone()),
        ("AWS_LAMBDA_LOG_LEVEL".into(), "info".into()),
        ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
    ];
    env.extend(super::run_stack::simulator_variables(sim.base_url(), &ca_file).map(|(k, v)| (k.to_owned(), v)));
    env.extend(res.stack.env(Principal::Processor).into_iter().map(|(k, v)| (k.to_owned(), v)));
    env.push(super::lambda::handler("processor"));
    let function = Function { name: "processor".into(), binary: super::sibling("bootstrap")?, env, logs: dir.clone() };
    let mut instance = function.start(0).await?;
    let pid = instance.pid().ok_or("the processor exited at start")?;
    let limit = Limit::apply(pid, &run_id)?;
    println!("memory {run_id}: the processor (pid {pid}) under {}; logs in {}", limit.describe(), dir.display());

    let arn = "arn:aws:sqs:us-east-1:123456789012:evidence-jobs";
    let mut batches = Vec::new();
    let mut idle = 0;
    while idle < 5 && batches.len() < 40 {
        let messages = drive::receive(&res, &res.evidence).await;
        if messages.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        reset_peak(pid)?;
        let cpu_before = cpu_time(pid)?;
        let exports_before = stored_emails(&res).await?;
        let outcome = instance.invoke(&drive::sqs_event(&messages, arn), TIMEOUT, None).await;
        let exports = stored_emails(&res).await?.saturating_sub(exports_before);
        let (failed, outcome) = match &outcome {
            Outcome::Response(r) => (drive::reported_failures(r), "answered".to_owned()),
            other => (Vec::new(), format!("{other:?}")),
        };
        let answered = matches!(outcome.as_str(), "answered");
        // A process that died has no peak to read: the batch failed.
        let (peak_rss, cpu) = if answered { (peak(pid)?, cpu_time(pid)?.saturating_sub(cpu_before)) } else { (0, Duration::ZERO) };
        println!(
            "  batch {}: {} messages, {} exports, peak RSS {:.1} MiB, CPU {} ms, {} failed, {outcome}",
            batches.len() + 1,
            messages.len(),
            exports,
            peak_rss as f64 / f64::from(1 << 20),
            cpu.as_millis(),
            failed.len()
        );
        batches.push(Batch { messages: messages.len(), exports, peak_rss, cpu, outcome });
        if !answered {
            break;
        }
        drive::delete_done(&res, &res.evidence, &messages, &failed).await;
    }
    let cgroup_peak = limit.cgroup_peak();
    instance.kill().await;
    limit.remove();

    let updates = evidence_updates(&res).await;
    let retrieved: Vec<&Value> = updates.iter().filter(|u| u["item"]["status"] == "retrieved").collect();
    let sizes: Vec<u64> = retrieved.iter().filter_map(|u| u["item"]["artifact"]["size"].as_u64()).collect();
    let worst = batches.iter().max_by_key(|b| b.exports);
    let peak_all = batches.iter().map(|b| b.peak_rss).max().unwrap_or(0);
    let mib = |b: u64| (b as f64 / f64::from(1 << 20) * 10.0).round() / 10.0;
    let report = json!({
        "limit": limit.describe(),
        "limit_mib": LIMIT_BYTES >> 20,
        "jobs": JOBS,
        "email_bytes": EMAIL_BYTES,
        "batches": batches.iter().map(|b| json!({
            "messages": b.messages, "exports": b.exports, "peak_rss_mib": mib(b.peak_rss), "cpu_ms": b.cpu.as_millis(), "outcome": b.outcome,
        })).collect::<Vec<_>>(),
        "cpu_ms": batches.iter().map(|b| b.cpu).sum::<Duration>().as_millis(),
        "export_batch": worst.map(|b| json!({"messages": b.messages, "exports": b.exports, "peak_rss_mib": mib(b.peak_rss)})),
        "peak_rss_mib": mib(peak_all),
        "cgroup_max_usage_mib": cgroup_peak.map(mib),
        "retrieved": retrieved.len(),
        "retrieved_sizes": sizes,
        "other_outcomes": updates.iter().filter(|u| u["item"]["status"] != "retrieved").map(|u| u["item"].clone()).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(dir.join("memory.json"), &text).map_err(|e| format!("cannot write the report: {e}"))?;
    println!("{text}");
    let whole = sizes.iter().all(|s| *s > EMAIL_BYTES as u64);
    let all_answered = batches.iter().all(|b| b.outcome == "answered");
    let one_batch = worst.is_some_and(|b| b.exports == JOBS);
    println!(
        "memory: {} of {JOBS} quarantined emails of {} MiB retrieved whole; the batch of {} exports peaked at {:.1} MiB resident under {}{}",
        retrieved.len(),
        EMAIL_BYTES >> 20,
        worst.map_or(0, |b| b.exports),
        worst.map_or(0.0, |b| mib(b.peak_rss)),
        limit.describe(),
        if all_answered { "" } else { "; THE PROCESSOR DIED" }
    );
    sim.shutdown().await;
    Ok(retrieved.len() == JOBS && whole && all_answered && one_batch && peak_all < LIMIT_BYTES)
}

/// Test & Save through the check function's code, as an operator adds an integration that
/// retrieves quarantined emails.
async fn save_integration(res: &Resources, base_url: &str, ca_file: &Path, cert: &ClientCertificate) -> Result<(), String> {
    let checker = super::world::checker(res, base_url, ca_file)?;
    let doc = integration_doc::from_json(
        &json!({
            "version": 1, "id": INTEGRATION, "tenant_id": DEFAULT_TENANT_ID, "client_id": DEFAULT_CLIENT_ID,
            "secret_ref": format!("m365-ingest/{INTEGRATION}"), "organization_id": "contoso.onmicrosoft.com",
            "sources": {"defender": "alerts"},
            "evidence": {"quarantined_email": true},
        })
        .to_string(),
    )
    .map_err(|e| format!("the memory run's integration document: {e}"))?;
    let creds = Credentials {
        tenant_id: DEFAULT_TENANT_ID.into(),
        client_id: DEFAULT_CLIENT_ID.into(),
        credential: Credential::Certificate { certificate_pem: cert.cert_pem.clone(), private_key_pem: Secret::new(cert.key_pem.clone()) },
    };
    let report = checker
        .test_and_save(&doc, CredentialInput::New(creds), SaveMode::Create.by("memory (the check function's code)"), GraphTime::now())
        .await;
    if !report.passed || report.not_saved.is_some() {
        return Err(format!("Test & Save failed:\n{}", report.to_text()));
    }
    Ok(())
}

/// Distinct quarantined emails the tenant's alerts name, with an alert naming each, read from
/// Graph as the poller would (every page).
async fn quarantined_emails(sim: &Simulator) -> Result<Vec<(String, EvidenceTarget)>, String> {
    let pem = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder().tls_certs_only([pem]).build().map_err(|e| e.to_string())?;
    let token: Value = http
        .post(sim.token_url(DEFAULT_TENANT_ID))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = token["access_token"].as_str().ok_or("the simulator gave no token")?.to_owned();
    let mut url = format!("{}/v1.0/security/alerts_v2?$top=1000", sim.base_url());
    let mut found: Vec<(String, EvidenceTarget)> = Vec::new();
    for _ in 0..100 {
        let page: Value =
            http.get(&url).bearer_auth(&token).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        for a in page["value"].as_array().into_iter().flatten() {
            for e in a["evidence"].as_array().into_iter().flatten() {
                if e["@odata.type"] != "#microsoft.graph.security.analyzedMessageEvidence" || e["deliveryLocation"] != "quarantine" {
                    continue;
                }
                let (Some(id), Some(to), Some(alert)) =
                    (e["internetMessageId"].as_str(), e["recipientEmailAddress"].as_str(), a["id"].as_str())
                else {
                    continue;
                };
                let target = EvidenceTarget::Email {
                    internet_message_id: id.into(),
                    recipient: to.into(),
                    location: m365_ingest::domain::evidence::plan::EmailLocation::Quarantine,
                };
                if !found.iter().any(|(_, t)| t == &target) {
                    found.push((alert.to_owned(), target));
                }
            }
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => next.clone_into(&mut url),
            None => return Ok(found),
        }
    }
    Err("Graph's alerts did not end within 100 pages".into())
}

/// A job for `target` and its first step on the evidence-jobs queue, as the processor creates
/// one for an alert.
async fn queue_job(res: &Resources, alert: &str, target: EvidenceTarget) -> Result<(), String> {
    let jobs = DynamoEvidenceJobs::new(res.aws.dynamodb.clone(), &res.dedup_table);
    let now = GraphTime::now();
    let dedup_key = format!("defender_alerts/{DEFAULT_TENANT_ID}/{alert}");
    let key = job_key(&dedup_key, &target);
    let record = JobRecord {
        job: EvidenceJob::new(key.clone(), target, now),
        integration_id: INTEGRATION.into(),
        tenant_id: DEFAULT_TENANT_ID.into(),
        source: Source::DefenderAlerts,
        alert_id: alert.into(),
        incident_id: None,
        alert_version: now,
        dedup_key,
        title: "a phishing alert".into(),
        severity: Some("high".into()),
        reported: false,
        hold: None,
    };
    let expires = now.plus(Duration::from_secs(86_400));
    jobs.create(&record, expires).await.map_err(|e| format!("cannot create a job: {e}"))?;
    let deadline = now.plus(EvidenceSettings::default().limits.max_wait);
    jobs.set_add(&due_set(deadline, &key), &key, Some(expires)).await.map_err(|e| format!("cannot index a job: {e}"))?;
    let sent = res
        .aws
        .sqs
        .send_message()
        .queue_url(&res.evidence)
        .message_body(JobMessage::new(INTEGRATION, &key).to_json())
        .send()
        .await
        .map_err(|e| format!("cannot queue a job: {e:?}"))?;
    sent.message_id.ok_or("SQS gave the job's message no id")?;
    Ok(())
}

/// Quarantined emails stored so far: one per export that ended in S3.
async fn stored_emails(res: &Resources) -> Result<usize, String> {
    let mut n = 0;
    let mut token = None;
    loop {
        let page = res
            .aws
            .s3
            .list_objects_v2()
            .bucket(&res.bucket)
            .prefix("quarantined-email/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| format!("cannot list the artifacts: {e:?}"))?;
        n += page.contents.as_ref().map_or(0, Vec::len);
        token = page.next_continuation_token;
        if token.is_none() {
            return Ok(n);
        }
    }
}

async fn evidence_updates(res: &Resources) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let messages = drive::receive(res, &res.output).await;
        if messages.is_empty() {
            return out;
        }
        out.extend(
            messages
                .iter()
                .filter_map(|m| m.body.as_deref())
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .filter(|v| v["schema"] == "m365-ingest.evidence.v1"),
        );
        drive::delete_done(res, &res.output, &messages, &[]).await;
    }
}

fn status_field(pid: u32, field: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("cannot read the processor's status: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

fn peak(pid: u32) -> Result<u64, String> {
    status_field(pid, "VmHWM:")
}

/// The CPU time the process has run (proc(5), `/proc/<pid>/schedstat`: its first field, in ns).
fn cpu_time(pid: u32) -> Result<Duration, String> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/schedstat")).map_err(|e| format!("cannot read the processor's CPU time: {e}"))?;
    let ns = text.split_whitespace().next().and_then(|n| n.parse().ok()).ok_or("the processor's schedstat has no CPU time")?;
    Ok(Duration::from_nanos(ns))
}

/// Resets the process's peak resident set to its current one (proc(5), `clear_refs` 5).
fn reset_peak(pid: u32) -> Result<(), String> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").map_err(|e| format!("cannot reset the processor's peak RSS: {e}"))
}

/// The 256 MiB the processor runs under.
struct Limit {
    cgroup: Option<PathBuf>,
}

impl Limit {
    fn apply(pid: u32, name: &str) -> Result<Self, String> {
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg(format!("--data={LIMIT_BYTES}"))
            .status()
            .map_err(|e| format!("cannot run prlimit (util-linux): {e}"))?;
        if !status.success() {
            return Err(format!("prlimit could not limit the processor: {status}"));
        }
        Ok(Limit { cgroup: Self::cgroup(pid, name) })
    }

    /// A cgroup v1 memory group of 256 MiB without swap, when this machine lets us make one.
    fn cgroup(pid: u32, name: &str) -> Option<PathBuf> {
        let dir = Path::new("/sys/fs/cgroup/memory").join(format!("m365-ingest-{name}"));
        std::fs::create_dir(&dir).ok()?;
        let ok = std::fs::write(dir.join("memory.limit_in_bytes"), LIMIT_BYTES.to_string()).is_ok()
            && (std::fs::write(dir.join("memory.memsw.limit_in_bytes"), LIMIT_BYTES.to_string()).is_ok()
                || std::fs::write(dir.join("memory.swappiness"), "0").is_ok())
            && std::fs::write(dir.join("cgroup.procs"), pid.to_string()).is_ok();
        if ok {
            Some(dir)
        } else {
            std::fs::remove_dir(&dir).ok();
            None
        }
    }

    fn describe(&self) -> String {
        match &self.cgroup {
            Some(_) => format!("RLIMIT_DATA {0} MiB and a {0} MiB memory cgroup", LIMIT_BYTES >> 20),
            None => format!("RLIMIT_DATA {} MiB (no memory cgroup on this machine)", LIMIT_BYTES >> 20),
        }
    }

    fn cgroup_peak(&self) -> Option<u64> {
        let dir = self.cgroup.as_ref()?;
        std::fs::read_to_string(dir.join("memory.max_usage_in_bytes")).ok()?.trim().parse().ok()
    }

    fn remove(&self) {
        if let Some(dir) = &self.cgroup {
            // Empty once the process is gone; a failure leaves an empty group behind, no more.
            std::fs::remove_dir(dir).ok();
        }
    }
}
