//! Email threat submissions: Graph `GET /beta/security/threatSubmission/emailThreats`
//! (security-emailthreatsubmission-list.md; ms-apis.md §4), windowed on `createdDateTime`.
//!
//! The list takes `$filter`, `$top`, `$skipToken` and `$count`, and documents neither
//! `$orderby` nor `$skip`: pages are chained by `@odata.nextLink` only, in an order nobody
//! promises (the window's count still proves a span whole). A submission is delivered when it
//! is first seen, verdict or not, so that a user's report reaches the SOC at once; while its
//! `status` is not final it is re-read by id (security-emailthreatsubmission-get.md) and, once
//! Microsoft's `result` is there, delivered again as the `final` revision of the same version.
//! An integration that excludes result categories must not pass on a submission whose verdict
//! will be excluded: then a submission waits, undelivered, for its verdict (at most
//! `verdict_wait`, after which it goes as `pending` with a note saying why).

use serde_json::value::RawValue;

use super::{graph_query, SourceSpec, SpanQuery, Unit};
use crate::domain::alert::{HeadSpec, Item, VersionFormat};
use crate::domain::envelope::Envelope;
use crate::domain::integration::Integration;
use crate::domain::polling::email_submission::{email_section, excluded_by, revision, to_alert, verdict, Verdict};
use crate::domain::processing::filter::DropReason;
use crate::domain::source::Source;
use crate::ports::PageRequest;
use crate::sources::settings::PollSettings;

const COLLECTION: &str = "/beta/security/threatSubmission/emailThreats";

/// `id` and `createdDateTime` (security-emailthreatsubmission.md): a submission has no
/// last-modified time, so its version is when it was made; the verdict is its revision.
pub const SUBMISSION_HEAD: HeadSpec = HeadSpec { id: "id", version: "createdDateTime", version_format: VersionFormat::IsoTime };

pub struct EmailSubmissions;

impl SourceSpec for EmailSubmissions {
    fn source(&self) -> Source {
        Source::EmailSubmissions
    }
    fn head(&self) -> HeadSpec {
        SUBMISSION_HEAD
    }
    fn page_size(&self, settings: &PollSettings) -> usize {
        settings.submission_page_size
    }
    fn request(&self, q: &SpanQuery<'_>) -> PageRequest {
        graph_query(COLLECTION, SUBMISSION_HEAD, q, None, false)
    }
    /// No `$skip`: a span whose pages end without a link is incomplete and is split.
    fn max_skip(&self, _settings: &PollSettings) -> Option<usize> {
        Some(0)
    }
    fn units(&self, envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String> {
        let bad = |e: serde_json::Error| format!("the submission does not parse: {e}");
        let alert = to_alert(object.get()).map_err(bad)?;
        let revision = revision(&verdict(object.get()).map_err(bad)?);
        let email = email_section(object.get()).map_err(bad)?;
        Ok(vec![Unit {
            alert,
            raw: object.to_owned(),
            version: envelope.version,
            incident: None,
            revision: Some(revision),
            email: Some(email),
            evidence: None,
        }])
    }
    fn unsettled(&self, item: &Item) -> bool {
        matches!(verdict(item.raw.get()), Ok(Verdict::Pending))
    }
    fn revision(&self, item: &Item) -> Option<&'static str> {
        // An object that does not parse is the processor's to refuse; its key says final.
        Some(verdict(item.raw.get()).map_or("final", |v| revision(&v)))
    }
    fn item_path(&self, id: &str) -> Option<String> {
        Some(format!("{COLLECTION}/{}", super::path_segment(id)))
    }
    fn held_for_verdict(&self, integration: &Integration, item: &Item) -> bool {
        !integration.email_submissions.excluded_result_categories.is_empty() && self.unsettled(item)
    }
    fn verdict_wait(&self, integration: &Integration) -> Option<std::time::Duration> {
        Some(integration.email_submissions.verdict_wait.0)
    }
    fn note(&self, integration: &Integration, unit: &Unit) -> Option<String> {
        let s = &integration.email_submissions;
        (unit.revision == Some("pending") && !s.excluded_result_categories.is_empty()).then(|| {
            format!(
                "passed on without Microsoft's verdict, so excluded_result_categories could not be applied to it: none came \
                 within sources.email_submissions.verdict_wait ({}), or it could not be held (a backfill, or the cursor's list of \
                 unsettled items full; both logged); a verdict that follows comes as the final revision, dropped if excluded",
                s.verdict_wait
            )
        })
    }
    fn excluded(&self, integration: &Integration, unit: &Unit) -> Option<(DropReason, String)> {
        let excluded = &integration.email_submissions.excluded_result_categories;
        match excluded_by(unit.raw.get(), excluded) {
            Ok(Some(category)) => Some((DropReason::EmailResultCategory, format!("Microsoft's verdict is {category}, which is excluded"))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::envelope::{dedup_key, INTAKE_SCHEMA};
    use crate::domain::time::GraphTime;

    fn envelope(object: &str) -> (Envelope, Box<RawValue>) {
        let raw = RawValue::from_string(object.to_owned()).unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default());
        let version = GraphTime::parse("2023-01-01T00:00:00Z").unwrap_or_default();
        let e = Envelope {
            schema: INTAKE_SCHEMA.into(),
            integration_id: "i".into(),
            tenant_id: "t".into(),
            source: Source::EmailSubmissions,
            id: "s1".into(),
            version,
            dedup_key: dedup_key(Source::EmailSubmissions, "t", "s1", version),
            polled_at: version,
            object: None,
            object_ref: None,
        };
        (e, raw)
    }

    const PENDING: &str = r#"{"id":"s1","createdDateTime":"2023-01-01T00:00:00Z","status":"running","result":null,"subject":"Invoice"}"#;
    const FINAL: &str = r#"{"id":"s1","createdDateTime":"2023-01-01T00:00:00Z","status":"succeeded","result":{"category":"allowedByPolicy"},"subject":"Invoice"}"#;

    #[test]
    fn a_pending_and_a_final_submission_are_two_revisions_of_one_version() {
        let s = EmailSubmissions;
        for (object, revision, unsettled) in [(PENDING, "pending", true), (FINAL, "final", false)] {
            let (env, raw) = envelope(object);
            let units = s.units(&env, &raw).unwrap_or_default();
            assert_eq!(units.len(), 1);
            assert_eq!(units[0].revision, Some(revision));
            assert_eq!(units[0].version, env.version);
            let item = Item::decode(&raw, &SUBMISSION_HEAD).map_err(|e| e.to_string());
            assert_eq!(item.map(|i| s.unsettled(&i)), Ok(unsettled), "{object}");
        }
    }

    #[test]
    fn an_excluded_verdict_is_named_and_a_pending_one_never_excluded() {
        let s = EmailSubmissions;
        let mut i = Integration::new("i", "t", "c", "s");
        i.email_submissions.excluded_result_categories = vec!["allowedByPolicy".into()];
        let (env, raw) = envelope(FINAL);
        let unit = s.units(&env, &raw).unwrap_or_default().pop();
        let why = unit.and_then(|u| s.excluded(&i, &u));
        assert_eq!(why.map(|(r, d)| (r, d.contains("allowedByPolicy"))), Some((DropReason::EmailResultCategory, true)));
        let (env, raw) = envelope(PENDING);
        let unit = s.units(&env, &raw).unwrap_or_default().pop();
        assert!(unit.is_some_and(|u| s.excluded(&i, &u).is_none()));
    }

    #[test]
    fn the_list_is_neither_ordered_nor_skipped_and_items_are_read_by_escaped_id() {
        let s = EmailSubmissions;
        let t = GraphTime::default();
        let i = Integration::new("i", "t", "c", "s");
        let q = SpanQuery { from: t, to: t, top: 100, skip: 0, expand: false, integration: &i };
        assert!(matches!(s.request(&q), PageRequest::Graph(g) if !g.ordered && g.collection == COLLECTION));
        assert_eq!(s.max_skip(&PollSettings::default()), Some(0));
        assert_eq!(s.item_path("a/b c").as_deref(), Some("/beta/security/threatSubmission/emailThreats/a%2Fb%20c"));
    }
}
