//! What an integration's filters would do to the items Test & Save's probe read: the same
//! source units, source exclusions and filters the processor applies (process.rs), counted per
//! reason, so a setting that would drop everything is found before it is saved.

use std::collections::BTreeMap;

use crate::domain::alert::Item;
use crate::domain::envelope::{dedup_key, Envelope, INTAKE_SCHEMA};
use crate::domain::integration::Integration;
use crate::domain::processing::filter::{Decision, DropReason, Filters};
use crate::domain::time::GraphTime;
use crate::Source;

/// How a sample of a source's items fared under the filters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FilterPreview {
    /// The alerts the items hold (an incident holds several).
    pub alerts: usize,
    /// Alerts each reason would drop.
    pub dropped: BTreeMap<DropReason, usize>,
    /// Items that do not read as their source's items (the processor quarantines them).
    pub unreadable: usize,
}

impl FilterPreview {
    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }

    /// Every alert read would be dropped.
    pub fn drops_everything(&self) -> bool {
        self.alerts > 0 && self.dropped_total() == self.alerts
    }

    /// "3 of 20 alerts the test read would be dropped (severity 2, title_exclusion 1)".
    pub fn describe(&self) -> String {
        let reasons: Vec<String> = self.dropped.iter().map(|(r, n)| format!("{} {n}", r.as_str())).collect();
        let mut s = format!(
            "{} of {} alert{} the test read would be dropped by the filters",
            self.dropped_total(),
            self.alerts,
            if self.alerts == 1 { "" } else { "s" }
        );
        if !reasons.is_empty() {
            s.push_str(&format!(" ({})", reasons.join(", ")));
        }
        s
    }
}

/// The setting that drops an alert for `reason`, for the fix.
pub fn setting_of(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Severity => "filters.severities",
        DropReason::DetectionSource => "filters.detection_sources",
        DropReason::Title => "filters.title_excludes / filters.title_exclude_patterns",
        DropReason::File => "filters.file_excludes",
        DropReason::PreludeTest => "filters.exclude_prelude",
        DropReason::DlpMode => "filters.dlp_modes",
        DropReason::EmailResultCategory => "sources.email_submissions.excluded_result_categories",
    }
}

/// Runs `items` of `source` through the integration's exclusions and filters.
pub fn preview(source: Source, integration: &Integration, filters: &Filters, items: &[Item], now: GraphTime) -> FilterPreview {
    let spec = crate::sources::spec(source);
    let mut out = FilterPreview::default();
    for item in items {
        let envelope = Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: integration.id.clone(),
            tenant_id: integration.tenant_id.clone(),
            source,
            id: item.head.id.clone(),
            version: item.head.version,
            dedup_key: dedup_key(source, &integration.tenant_id, &item.head.id, item.head.version),
            polled_at: now,
            object: None,
            object_ref: None,
        };
        let Ok(units) = spec.units(&envelope, &item.raw) else {
            out.unreadable += 1;
            continue;
        };
        for unit in units {
            out.alerts += 1;
            let reason = match spec.excluded(integration, &unit) {
                Some((reason, _)) => Some(reason),
                None => match filters.decide(source, &unit.alert) {
                    Decision::Drop { reason, .. } => Some(reason),
                    Decision::Pass { .. } => None,
                },
            };
            if let Some(reason) = reason {
                *out.dropped.entry(reason).or_default() += 1;
            }
        }
    }
    out
}
