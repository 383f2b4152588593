//! Defender for Cloud Apps alerts: `POST /api/v1/alerts/` at the tenant's portal
//! (api-alerts-list.md), windowed on `timestamp` (Unix milliseconds), up to 100 per response,
//! paged by `skip`; its `total` can be only a lower bound, and `hasNext: false` ends a chain.

use serde_json::value::RawValue;

use super::{SourceSpec, SpanQuery, Unit};
use crate::domain::alert::{HeadSpec, VersionFormat};
use crate::domain::envelope::Envelope;
use crate::domain::integration::Integration;
use crate::domain::polling::cloud_apps_alert;
use crate::domain::source::Source;
use crate::error::ConfigError;
use crate::ports::PageRequest;
use crate::sources::settings::PollSettings;

/// Cloud Apps returns at most 100 items per response (api-introduction.md).
pub const CLOUD_APPS_MAX_LIMIT: usize = 100;

/// `_id` and `timestamp` in Unix milliseconds (api-alerts-list.md).
pub const CLOUD_APPS_HEAD: HeadSpec = HeadSpec { id: "_id", version: "timestamp", version_format: VersionFormat::UnixMillis };

pub struct CloudApps;

impl SourceSpec for CloudApps {
    fn source(&self) -> Source {
        Source::CloudApps
    }
    fn head(&self) -> HeadSpec {
        CLOUD_APPS_HEAD
    }
    fn page_size(&self, settings: &PollSettings) -> usize {
        settings.cloud_apps_page_size.min(CLOUD_APPS_MAX_LIMIT)
    }
    /// Cloud Apps counts milliseconds.
    fn granularity(&self) -> i64 {
        10_000
    }
    fn ready(&self, integration: &Integration) -> Result<(), ConfigError> {
        match integration.cloud_apps_base {
            Some(_) => Ok(()),
            None => Err(ConfigError::Missing {
                name: format!("integration `{}` portal_url", integration.id),
                hint: "set portal_url to the Cloud Apps API URL (Defender portal → Settings → Cloud Apps → System → About)".into(),
            }),
        }
    }
    fn request(&self, q: &SpanQuery<'_>) -> PageRequest {
        PageRequest::CloudApps {
            portal: q.integration.cloud_apps_base.clone().unwrap_or_default(),
            from: q.from,
            to: q.to,
            skip: q.skip,
            limit: q.top,
        }
    }
    fn max_skip(&self, _settings: &PollSettings) -> Option<usize> {
        None
    }
    fn count_optional(&self) -> bool {
        true
    }
    fn units(&self, envelope: &Envelope, object: &RawValue) -> Result<Vec<Unit>, String> {
        let alert = cloud_apps_alert::to_alert(object.get()).map_err(|e| format!("the Cloud Apps alert does not parse: {e}"))?;
        Ok(vec![Unit::plain(alert, object, envelope.version)])
    }
}
