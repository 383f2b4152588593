//! What Test & Save reports: a line per feature, the problems that stop every feature, and what
//! was saved or why not.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::domain::field_error::FieldError;
use crate::domain::integration::revision::Relaxation;
use crate::domain::permissions::{Api, Feature};
use crate::domain::time::GraphTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

/// One line of the report: a feature, and whether it works.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureResult {
    pub feature: &'static str,
    pub api: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl FeatureResult {
    pub(super) fn ok(f: Feature, detail: String) -> Self {
        FeatureResult { feature: f.name(), api: f.api().owner(), status: Status::Ok, detail, fix: None }
    }

    pub(super) fn failed(f: Feature, detail: String, fix: String) -> Self {
        FeatureResult { feature: f.name(), api: f.api().owner(), status: Status::Failed, detail, fix: Some(fix) }
    }
}

/// What was saved, when the check passed and saving was asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub revision: u64,
    /// Who the revision records as its author.
    pub saved_by: String,
    /// The fields it changed, and the guard rails it relaxed (each named by the request).
    pub changes: Vec<crate::domain::integration::revision::Change>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relaxed: Vec<Relaxation>,
    /// The secret written to Secrets Manager, when new credentials were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub integration_id: String,
    pub passed: bool,
    /// Problems that stop every feature: the document, or the credentials as stored.
    pub problems: Vec<FieldError>,
    pub features: Vec<FeatureResult>,
    /// Application permissions each API's token carries (None: no `roles` claim at all).
    pub granted: BTreeMap<Api, Option<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
    /// Why nothing was saved although saving was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_saved: Option<String>,
    /// Guard rails the configuration relaxes that the request did not name: it was not saved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_relaxations: Vec<Relaxation>,
    pub checked_at: GraphTime,
}

impl Report {
    /// A report of problems found before any feature could be tried.
    pub fn failed(id: &str, problems: Vec<FieldError>, at: GraphTime) -> Self {
        Report {
            integration_id: id.to_owned(),
            passed: false,
            problems,
            features: Vec::new(),
            granted: BTreeMap::new(),
            saved: None,
            not_saved: None,
            unconfirmed_relaxations: Vec::new(),
            checked_at: at,
        }
    }

    /// The report for a terminal: one line per feature, each failure with its fix.
    pub fn to_text(&self) -> String {
        let mut s = format!("Test & Save — integration `{}`\n", self.integration_id);
        for p in &self.problems {
            let _ = writeln!(s, "  FAIL  {:<22} {}", p.field, p.problem);
        }
        for f in &self.features {
            let mark = if f.status == Status::Ok { "ok  " } else { "FAIL" };
            let _ = writeln!(s, "  {mark}  {:<22} {}: {}", f.feature, f.api, f.detail);
            if let Some(fix) = &f.fix {
                let _ = writeln!(s, "        {:<22} fix: {fix}", "");
            }
        }
        let failed = self.features.iter().filter(|f| f.status == Status::Failed).count() + self.problems.len();
        let _ = match (&self.saved, &self.not_saved, self.passed) {
            (Some(sv), _, _) => {
                for r in &sv.relaxed {
                    let _ = writeln!(s, "  RELAXED {:<20} {}", r.field, r.detail);
                }
                writeln!(
                    s,
                    "Passed; saved as revision {} by {} ({} field(s) changed){}.",
                    sv.revision,
                    sv.saved_by,
                    sv.changes.len(),
                    sv.secret.as_ref().map(|x| format!(", credentials in {x}")).unwrap_or_default()
                )
            }
            (None, Some(why), _) => writeln!(s, "Not saved: {why}"),
            (None, None, true) => writeln!(s, "Passed: every enabled feature works."),
            (None, None, false) => writeln!(s, "Failed: {failed} problem(s); nothing was saved."),
        };
        s
    }
}
