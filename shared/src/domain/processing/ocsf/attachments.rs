//! What is added to a finding after it is rendered: retrieved evidence, context enrichments
//! and the note on replaced text.

use serde_json::{json, Value};

use super::fields::{address, Obj};

/// One evidence item as an OCSF evidence artifact: the file (at its `s3://` uri once stored)
/// and its device, or the email and, once stored, its `.eml`.
pub fn evidence_of_item(item: &crate::domain::processing::output::EvidenceItem) -> Value {
    let stored = item.artifact.as_ref().map(|r| {
        let name = r.key.rsplit('/').next().unwrap_or(&r.key).to_owned();
        Obj::new()
            .set("name", name)
            .set("type_id", 1)
            .set("type", "Regular File")
            .set("uri", format!("s3://{}/{}", r.bucket, r.key))
            .set("size", r.size)
            .opt("mime_type", r.content_type.clone())
            .set("hashes", vec![json!({"algorithm_id": 3, "algorithm": "SHA-256", "value": r.sha256})])
            .done()
    });
    let mut evidence = Obj::new().set("name", format!("{} evidence: {}", item.kind, item.status)).set("uid", item.id.clone());
    match item.kind.as_str() {
        "file" => {
            let hashes: Vec<Value> = [(2, "SHA-1", &item.sha1), (3, "SHA-256", &item.sha256)]
                .into_iter()
                .filter_map(|(id, alg, v)| v.as_ref().map(|v| json!({"algorithm_id": id, "algorithm": alg, "value": v})))
                .collect();
            let name = item.path.as_deref().and_then(|p| p.rsplit(['\\', '/']).next()).unwrap_or("file").to_owned();
            let file = stored.unwrap_or_else(|| Obj::new().set("name", name).set("type_id", 1).set("type", "Regular File").done());
            let mut file = file;
            if let Some(o) = file.as_object_mut() {
                if let Some(p) = &item.path {
                    o.insert("path".into(), json!(p));
                }
                if !hashes.is_empty() {
                    o.insert("hashes".into(), Value::Array(hashes));
                }
            }
            evidence = evidence.set("file", file);
            if let Some(d) = &item.device_id {
                evidence = evidence.set("device", json!({"uid": d, "type_id": 0, "type": "Unknown"}));
            }
        }
        _ => {
            let mut email = Obj::new().opt("message_uid", item.internet_message_id.clone());
            if let Some(to) = item.recipient.as_deref().and_then(address) {
                email = email.set("to", vec![to]);
            }
            if let Some(h) = &item.headers {
                email = email.opt("subject", h.subject.clone());
            }
            evidence = evidence.set("email", email.done()).opt("file", stored);
        }
    }
    evidence.done()
}

/// The alert's context as OCSF enrichments (one per user, device and file, the data being the
/// v1 message's object for it), and how each part went under `unmapped.m365ingest_enrichment`.
pub fn attach_context(finding: &mut Value, c: &crate::domain::processing::context::ContextSection) -> Option<()> {
    let o = finding.as_object_mut()?;
    let mut enrichments: Vec<Value> = Vec::new();
    for u in &c.users {
        let value = u.upn.clone().or_else(|| u.id.clone()).unwrap_or_default();
        enrichments.push(json!({"name": "user", "value": value, "type": "user_context", "provider": "Microsoft Graph", "data": u}));
    }
    for d in &c.devices {
        enrichments.push(
            json!({"name": "device", "value": d.id, "type": "device_context", "provider": "Microsoft Defender for Endpoint", "data": d}),
        );
    }
    for f in &c.files {
        enrichments.push(
            json!({"name": "file", "value": f.hash, "type": "file_context", "provider": "Microsoft Defender for Endpoint", "data": f}),
        );
    }
    if !enrichments.is_empty() {
        o.entry("enrichments").or_insert_with(|| Value::Array(Vec::new())).as_array_mut()?.extend(enrichments);
    }
    let unmapped = o.entry("unmapped").or_insert_with(|| json!({})).as_object_mut()?;
    unmapped.insert("m365ingest_enrichment".into(), serde_json::to_value(&c.enrichment).ok()?);
    Some(())
}

/// Puts an alert's evidence into its finding: each item in `evidences` (a stored file or `.eml`
/// at its `s3://` uri) and `unmapped.m365ingest_evidence` = `{status, delivery, released_at,
/// items: [{id, kind, status, detail}]}`, the ids the evidence updates name. `None` when the
/// finding is not an object.
pub fn attach_evidence(finding: &mut Value, r: &crate::domain::processing::output::EvidenceRetrieval) -> Option<()> {
    let o = finding.as_object_mut()?;
    if !r.items.is_empty() {
        let evidences = o.entry("evidences").or_insert_with(|| Value::Array(Vec::new())).as_array_mut()?;
        evidences.extend(r.items.iter().map(evidence_of_item));
    }
    let listed: Vec<Value> = r.items.iter().map(|i| json!({"id": i.id, "kind": i.kind, "status": i.status, "detail": i.detail})).collect();
    let unmapped = o.entry("unmapped").or_insert_with(|| Value::Object(Default::default())).as_object_mut()?;
    let mut ev = json!({"status": r.status, "items": listed});
    if let Some(reason) = &r.reason {
        ev["reason"] = json!(reason);
    }
    if let Some(d) = &r.delivery {
        ev["delivery"] = json!(d);
    }
    if let Some(t) = &r.released_at {
        ev["released_at"] = json!(t.to_string());
    }
    unmapped.insert("m365ingest_evidence".into(), ev);
    Some(())
}

/// Says in `unmapped.m365ingest_text_replaced` = `{count, original_bytes}` that escapes which
/// decode to no character were read as U+FFFD in the finding and its `raw_data`, and where
/// Microsoft's bytes are.
pub fn attach_text_replaced(finding: &mut Value, t: &crate::domain::processing::output::TextReplaced) -> Option<()> {
    let unmapped = finding.as_object_mut()?.entry("unmapped").or_insert_with(|| json!({})).as_object_mut()?;
    unmapped.insert("m365ingest_text_replaced".into(), serde_json::to_value(t).ok()?);
    Some(())
}
