//! Integration documents from files: TOML (`.toml`), or JSON (one document or an array).

use std::path::Path;

use m365_ingest::domain::integration::doc::{self as integration_doc, IntegrationDoc};

use crate::Failure;

/// One document; problems name the file and the field.
pub fn read_doc(path: &Path) -> Result<IntegrationDoc, Failure> {
    let mut docs = read_docs(path)?;
    match docs.len() {
        1 => Ok(docs.remove(0)),
        n => Err(Failure::Usage(format!("{} holds {n} integration documents; give a file with one", path.display()))),
    }
}

pub fn read_docs(path: &Path) -> Result<Vec<IntegrationDoc>, Failure> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("cannot read {p}: {e}")))?;
    let named = |e: integration_doc::IntegrationError| Failure::Usage(format!("{p}: {e}"));
    if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("toml")) {
        return integration_doc::from_toml(&text).map(|d| vec![d]).map_err(named);
    }
    if text.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("{p} is not a JSON array of integration documents: {e}")))?;
        return values.iter().map(|v| integration_doc::from_json(&v.to_string()).map_err(&named)).collect();
    }
    integration_doc::from_json(&text).map(|d| vec![d]).map_err(named)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_example_document_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/integration.toml");
        let doc = match read_doc(&path) {
            Ok(d) => d,
            Err(Failure::Usage(e) | Failure::Run(e)) => panic!("{e}"),
        };
        let i = doc.validate().unwrap();
        assert!(i.cloud_apps && i.cloud_apps_base.as_deref() == Some("https://contoso.us2.portal.cloudappsecurity.com"));
        assert_eq!(i.poll_interval.as_secs(), 300);
    }
}
