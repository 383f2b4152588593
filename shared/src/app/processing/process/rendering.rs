//! Rendering for the output queue: an alert in its integration's formats, with the context it
//! asks for, and where an original too large for its output message goes.

use crate::app::processing::processor::Processor;
use crate::domain::envelope::{sha256_hex, Envelope};
use crate::domain::integration::{Integration, OutputFormat};
use crate::domain::processing::context::ContextSection;
use crate::domain::processing::ocsf;
use crate::domain::processing::output::{AlertMessage, EvidenceRetrieval, MessageContext, Processing, TextReplaced};
use crate::domain::sqs_text::escape_for_sqs;
use crate::domain::time::GraphTime;
use crate::error::{Error, QueueError};
use crate::ports::{ArtifactStore, ProcessPorts};
use crate::sources::Unit;

impl<P: ProcessPorts> Processor<P> {
    /// The alert's context, when the integration asks for any and this processor can look it up.
    pub(super) async fn context_of(
        &self,
        integration: &Integration,
        unit: &Unit,
        batch_deadline: std::time::Instant,
    ) -> Option<ContextSection> {
        let enricher = self.context.as_ref()?;
        // Most integrations ask for no context: nothing is built for their alerts.
        if !integration.enrichment.asks(&integration.features) {
            return None;
        }
        let a = &unit.alert;
        let at =
            crate::app::processing::enrich::alert_time(a.first_activity_date_time.as_deref(), a.created_date_time.as_deref(), unit.version);
        enricher.context(integration, &crate::domain::entities::entities(a), at, batch_deadline).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn render(
        &self,
        env: &Envelope,
        integration: &Integration,
        unit: &Unit,
        key: &str,
        passed: Vec<&'static str>,
        notes: Vec<String>,
        evidence: Option<EvidenceRetrieval>,
        context: Option<ContextSection>,
        text_replaced: Option<&TextReplaced>,
        now: GraphTime,
    ) -> Result<Vec<String>, Error> {
        let max = self.settings.delivery.max_message_bytes;
        let ocsf_evidence = evidence.clone().filter(|_| matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both));
        let mut out = Vec::new();
        if matches!(integration.output, OutputFormat::AlertV1 | OutputFormat::Both) {
            let ctx = MessageContext {
                integration_id: &env.integration_id,
                tenant_id: &env.tenant_id,
                source: env.source,
                dedup_key: key.to_owned(),
                incident: unit.incident.clone(),
                email: unit.email.clone(),
                processing: Processing {
                    processor: concat!("m365-ingest/", env!("CARGO_PKG_VERSION")).into(),
                    processed_at: now,
                    filters_passed: passed.iter().map(|s| (*s).to_owned()).collect(),
                    notes,
                    evidence: evidence.or_else(|| unit.evidence.clone()).unwrap_or_else(|| EvidenceRetrieval {
                        status: "not_requested".into(),
                        reason: Some("evidence retrieval is not enabled for this integration".into()),
                        ..EvidenceRetrieval::default()
                    }),
                    text_replaced: text_replaced.cloned(),
                },
            };
            let mut msg = AlertMessage::build(&unit.alert, unit.version, &unit.raw, ctx);
            msg.context = context.clone();
            // Escaped before measuring: an escape is six bytes where the character was up to three.
            let mut body = escape_for_sqs(msg.to_json());
            if body.len() > max {
                msg.original = None;
                msg.original_ref =
                    Some(self.artifacts.put(&content_key(&env.integration_id, unit.raw.get()), unit.raw.get().as_bytes().to_vec()).await?);
                body = escape_for_sqs(msg.to_json());
            }
            if body.len() > max {
                return Err(QueueError::TooLarge { size: body.len(), limit: max }.into());
            }
            out.push(body);
        }
        if matches!(integration.output, OutputFormat::Ocsf | OutputFormat::Both) {
            let mut finding = ocsf::detection_finding(&unit.alert, unit.raw.get());
            // The alert's items (pending or ended), by the ids its evidence updates name.
            if let Some(r) = &ocsf_evidence {
                ocsf::attach_evidence(&mut finding, r);
            }
            if let Some(c) = &context {
                ocsf::attach_context(&mut finding, c);
            }
            if let Some(t) = text_replaced {
                ocsf::attach_text_replaced(&mut finding, t);
            }
            let mut body = escape_for_sqs(finding.to_string());
            if body.len() > max {
                let r = self.artifacts.put(&content_key(&env.integration_id, unit.raw.get()), unit.raw.get().as_bytes().to_vec()).await?;
                if let Some(o) = finding.as_object_mut() {
                    o.remove("raw_data");
                    if let Some(u) = o.get_mut("unmapped").and_then(|u| u.as_object_mut()) {
                        u.insert(
                            "original_ref".into(),
                            serde_json::json!({"bucket": r.bucket, "key": r.key, "size": r.size, "sha256": r.sha256}),
                        );
                    }
                }
                body = escape_for_sqs(finding.to_string());
            }
            if body.len() > max {
                return Err(QueueError::TooLarge { size: body.len(), limit: max }.into());
            }
            out.push(body);
        }
        Ok(out)
    }
}

/// Where an original too large for its output message goes: named by its content, so a later
/// publish never overwrites an object an earlier message points to.
pub(super) fn content_key(integration_id: &str, raw: &str) -> String {
    format!("output/{}/{}.json", crate::app::polling::origin::safe_key(integration_id), sha256_hex(raw.as_bytes()))
}
