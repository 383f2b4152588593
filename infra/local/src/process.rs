//! `process`: intake envelopes (NDJSON, as `demo` and `replay` write them) through the
//! processor, printing the output messages as NDJSON and the counts per filter reason.

use std::collections::BTreeSet;

use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue, MemoryDedupStore};
use m365_ingest::app::processing::processor::{ProcessSettings, Processor};
use m365_ingest::domain::envelope::Envelope;
use m365_ingest::domain::integration::Integration;
use m365_ingest::ports::SystemClock;

use crate::args::ProcessOptions;
use crate::Failure;

/// Integrations from integration documents (a TOML file, a JSON document or a JSON array of
/// them), or, without one, every
/// integration the envelopes name with no filters and the default output.
fn integrations(o: &ProcessOptions, envelopes: &[Envelope]) -> Result<Vec<Integration>, Failure> {
    if let Some(path) = &o.integrations {
        let p = path.display().to_string();
        let docs = crate::docs::read_docs(path)?;
        return docs.into_iter().map(|d| d.validate().map_err(|e| Failure::Usage(format!("{p}: {e}")))).collect();
    }
    let ids: BTreeSet<(&str, &str)> = envelopes.iter().map(|e| (e.integration_id.as_str(), e.tenant_id.as_str())).collect();
    Ok(ids.into_iter().map(|(id, tenant)| Integration::new(id, tenant, "", "")).collect())
}

pub async fn run(o: ProcessOptions) -> Result<(), Failure> {
    let p = o.file.display().to_string();
    let text = std::fs::read_to_string(&o.file).map_err(|e| Failure::Usage(format!("cannot read {p}: {e}")))?;
    let mut messages = Vec::new();
    let mut envelopes = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let e: Envelope =
            serde_json::from_str(line).map_err(|e| Failure::Usage(format!("{p}: line {} is not an intake envelope: {e}", n + 1)))?;
        envelopes.push(e);
        messages.push((format!("line-{}", n + 1), line.to_owned()));
    }
    let integrations = integrations(&o, &envelopes)?;
    let out = MemoryAlertQueue::new();
    let artifacts = DirArtifactStore::new(std::env::temp_dir().join("m365-ingest-process"));
    let processor = Processor::new(
        MemoryDedupStore::new(),
        out,
        artifacts,
        SystemClock,
        ProcessSettings { owner: "local".into(), ..ProcessSettings::default() },
    );
    let run = processor.batch(integrations);
    let failed = run.process_batch(&messages).await;
    for m in processor.output.messages() {
        println!("{m}");
    }
    let c = run.take_counts();
    eprintln!(
        "{} alerts: {} published, {} duplicates, dropped {:?}, {} messages failed",
        c.alerts, c.published, c.duplicates, c.dropped, c.failed_messages
    );
    if !failed.is_empty() {
        return Err(Failure::Run(format!("{} message(s) could not be processed: {}", failed.len(), failed.join(", "))));
    }
    Ok(())
}
