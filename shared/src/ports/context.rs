//! The port context lookups go through (issue 14): one request to Microsoft on an integration's
//! behalf, answered as JSON. Object-safe, so the processor holds one whatever adapter backs it.

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::domain::integration::Integration;
use crate::domain::time::GraphTime;
use crate::error::GraphError;

/// One lookup. Users are addressed by object id or UPN; the adapter encodes every value it
/// puts in a URL or a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContextRequest {
    /// `GET /v1.0/users/{user}` with its manager (user-get.md, user-list-manager.md).
    User { user: String },
    /// `GET /v1.0/users/{user}/transitiveMemberOf`, at most `pages` pages of `top`
    /// (user-list-transitivememberof.md).
    Memberships { user: String, top: u32, pages: u32 },
    /// `GET /v1.0/reports/authenticationMethods/userRegistrationDetails/{id}` (userregistrationdetails-get.md).
    Registration { user_id: String },
    /// `GET /v1.0/auditLogs/signIns` of the user between `from` and `to`, newest first, one page
    /// of `top` (signin-list.md).
    SignIns { user: String, by_id: bool, from: GraphTime, to: GraphTime, top: u32 },
    /// `GET /v1.0/users/{user}/mailboxSettings/automaticRepliesSetting` (user-get-mailboxsettings.md).
    AutoReplies { user: String },
    /// `POST /v1.0/users/{user}/calendar/getSchedule` for the user's own address, in UTC
    /// (calendar-getschedule.md).
    Schedule { user: String, address: String, from: GraphTime, to: GraphTime, interval_minutes: u64 },
    /// `POST /v1.0/communications/getPresencesByUserId` with at most 650 ids
    /// (cloudcommunications-getpresencesbyuserid.md).
    Presences { ids: Vec<String> },
    /// Defender for Endpoint `GET /api/machines/{id}` (get-machine-by-id.md).
    Machine { id: String },
    /// Defender for Endpoint `GET /api/files/{hash}` (get-file-information.md).
    File { hash: String },
}

/// What a lookup returned: the entity (or the collection's items, for list requests), whether
/// pages were left unread, or nothing when Microsoft answers 404.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextAnswer {
    One(Value),
    Many { items: Vec<Value>, more: bool },
    Missing,
}

/// Microsoft as context lookups reach it, with the integration's own credentials.
///
/// Contract: one lookup makes the request (a collection's pages up to the request's bound, only
/// at the configured origin), waits for the tenant's request budget at most a short while and
/// answers `GraphError::OverBudget` past it, and does not retry throttling beyond a quick
/// second attempt: context must never hold an alert back for long.
pub trait ContextApi: Send + Sync {
    fn lookup<'a>(&'a self, integration: &'a Integration, request: &'a ContextRequest) -> BoxFuture<'a, Result<ContextAnswer, GraphError>>;
}
