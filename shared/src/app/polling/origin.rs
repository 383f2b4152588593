//! Where a page's items come from (integration, tenant, source, poll time): what delivery and
//! the quarantine of bad items both record.

use crate::domain::source::Source;
use crate::domain::time::GraphTime;

pub struct Context<'a> {
    pub integration_id: &'a str,
    pub tenant_id: &'a str,
    pub source: Source,
    pub polled_at: GraphTime,
}

/// Alert ids are safe already; anything else becomes `_`, so a key never walks directories.
pub(crate) fn safe_key(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}
