//! A run's summary and how it ended (its outcome, and the line a cursor keeps of it).

use serde::Serialize;

use crate::domain::integration::Integration;
use crate::domain::source::Source;
use crate::domain::time::GraphTime;

/// How one integration's run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The window was read to its end.
    Completed,
    /// Stopped early (deadline, page cap); the next run resumes from the committed cursor.
    Partial {
        reason: String,
    },
    /// Not polled: not due, nothing to read yet, or another run holds the lease.
    Skipped {
        reason: String,
    },
    Failed {
        error: String,
        retryable: bool,
    },
}

impl Outcome {
    /// One line for operators, bounded so a cursor item stays small: `completed`,
    /// `partial: <why>`, `skipped: <why>`, `failed: <error>`.
    pub fn brief(&self) -> String {
        let (kind, why) = match self {
            Outcome::Completed => return "completed".into(),
            Outcome::Partial { reason } => ("partial", reason),
            Outcome::Skipped { reason } => ("skipped", reason),
            Outcome::Failed { error, .. } => ("failed", error),
        };
        let mut text = format!("{kind}: {why}");
        if text.len() > MAX_OUTCOME_BYTES {
            let mut cut = MAX_OUTCOME_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

/// The longest outcome line a cursor keeps.
const MAX_OUTCOME_BYTES: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub integration_id: String,
    pub source: Source,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Requests made: pages, and what items fetched with them (a report's email); the
    /// `GraphPages` metric.
    pub pages: usize,
    pub delivered: usize,
    /// Items the overlap re-read that had been delivered before.
    pub suppressed: usize,
    pub claim_checks: usize,
    pub batches: usize,
    /// Items set aside in the artifact store (undecodable, or refused by the queue for good).
    pub quarantined: usize,
    /// The secret named another tenant's or app's credentials, and was not used.
    pub credentials_refused: bool,
    /// Items delivered again once settled (submissions' verdicts).
    pub verdicts: usize,
    /// Unsettled items held back for their verdict (the integration excludes some verdicts).
    pub held_for_verdict: usize,
    /// Held items passed on without their verdict: none came within the integration's wait.
    pub verdicts_waited_out: usize,
    /// Unsettled items whose later state will not be delivered: the cursor could not keep
    /// them, or they did not settle in time (each logged with why).
    pub unsettled_dropped: usize,
    /// Reports delivered without their reported email (gone, too large, not MIME; each logged
    /// with why, and named in the report's evidence).
    pub reported_emails_missing: usize,
    pub watermark: Option<GraphTime>,
    /// When the run began, on the window field's clock.
    pub started_at: GraphTime,
}

impl RunSummary {
    pub(super) fn new(i: &Integration, source: Source) -> Self {
        RunSummary {
            integration_id: i.id.clone(),
            source,
            outcome: Outcome::Completed,
            pages: 0,
            delivered: 0,
            suppressed: 0,
            claim_checks: 0,
            batches: 0,
            quarantined: 0,
            credentials_refused: false,
            verdicts: 0,
            held_for_verdict: 0,
            verdicts_waited_out: 0,
            unsettled_dropped: 0,
            reported_emails_missing: 0,
            watermark: None,
            started_at: GraphTime::default(),
        }
    }
}
