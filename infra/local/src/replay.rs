//! `replay`: a saved Graph list response (`{"value": [...]}`, the shape of Microsoft's doc
//! samples) through the same envelope and claim-check code, printed as NDJSON.

use m365_ingest::adapters::local::{DirArtifactStore, MemoryAlertQueue};
use m365_ingest::app::polling::deliver::deliver;
use m365_ingest::app::polling::origin::Context;
use m365_ingest::domain::alert::Item;
use m365_ingest::sources::settings::DeliverySettings;
use m365_ingest::GraphTime;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::args::ReplayOptions;
use crate::Failure;

#[derive(Deserialize)]
struct ListResponse<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tenant {
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
}

pub async fn run(o: ReplayOptions) -> Result<(), Failure> {
    let path = o.file.display().to_string();
    let text = std::fs::read_to_string(&o.file).map_err(|e| Failure::Usage(format!("cannot read {path}: {e}")))?;
    let list: ListResponse<'_> = serde_json::from_str(&text).map_err(|e| {
        Failure::Usage(format!("{path} is not a Graph list response ({e}); expected {{\"value\": [ ...alerts or incidents... ]}}"))
    })?;
    let mut items = Vec::with_capacity(list.value.len());
    let mut tenant = o.tenant.clone();
    for (n, raw) in list.value.iter().enumerate() {
        let item = Item::decode(raw, &m365_ingest::sources::GRAPH_SECURITY_HEAD)
            .map_err(|e| Failure::Usage(format!("{path}: item {n} of `value`: {e}")))?;
        if tenant.is_none() {
            tenant = serde_json::from_str::<Tenant>(raw.get()).ok().and_then(|t| t.tenant_id);
        }
        items.push(item);
    }
    let tenant = tenant.ok_or_else(|| Failure::Usage(format!("{path} names no tenantId; pass --tenant ID")))?;
    let queue = MemoryAlertQueue::new();
    let artifacts = DirArtifactStore::new(std::env::temp_dir().join("m365-ingest-replay"));
    let ctx = Context { integration_id: &o.integration, tenant_id: &tenant, source: o.source, polled_at: GraphTime::now() };
    deliver(&items, &ctx, &queue, &artifacts, &DeliverySettings::default()).await.map_err(|e| Failure::Run(e.to_string()))?;
    for m in queue.messages() {
        println!("{m}");
    }
    Ok(())
}
