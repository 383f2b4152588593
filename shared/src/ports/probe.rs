//! Microsoft as Test & Save sees it: a token's claims, and one small real call per feature.

use std::future::Future;

use super::graph::{Page, PageRequest};
use crate::domain::integration::Credentials;
use crate::domain::permissions::{Api, TokenClaims};
use crate::domain::time::GraphTime;
use crate::error::GraphError;

/// A single small call that proves an API answers this app (Test & Save).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The first request the poller makes for a source's window, as it makes it.
    FirstPage(PageRequest),
    /// One activity of the last day at the tenant's portal, as investigation queries read them.
    CloudAppsActivities {
        portal: String,
        since: GraphTime,
    },
    Machines,
    /// The quarantine lookup the evidence jobs make (`Get-QuarantineMessage` over the 30 days
    /// Exchange keeps, from `since`), then the export of the first message found, if any.
    Exchange {
        organization: String,
        since: GraphTime,
    },
}

/// Microsoft as Test & Save sees it: tokens with their claims, and one call per API.
pub trait MicrosoftProbe: Send + Sync {
    /// The Microsoft cloud these calls go to: what it does not offer is refused before any call.
    fn cloud(&self) -> crate::domain::cloud::Cloud;
    fn claims(&self, creds: &Credentials, api: Api) -> impl Future<Output = Result<TokenClaims, GraphError>> + Send;
    /// Makes the call; returns how many items came back.
    fn probe(&self, creds: &Credentials, probe: &Probe) -> impl Future<Output = Result<usize, GraphError>> + Send;
    /// The first page of a source's request, as the poller reads it: its items, for the filters.
    fn first_page(&self, creds: &Credentials, request: &PageRequest) -> impl Future<Output = Result<Page, GraphError>> + Send;
    /// One real call per context part, as the processor makes it, on a user and a device the
    /// tenant lists (a file by a hash any tenant may ask about).
    fn context(
        &self,
        creds: &Credentials,
        parts: &[crate::domain::processing::context::ContextPart],
        now: GraphTime,
    ) -> impl Future<Output = ContextProbe> + Send;
    /// The delivered-email jobs' search (by an Internet Message-ID no email has) on `mailbox`,
    /// or on a user the tenant lists with a mailbox; the mailbox it was made on.
    fn mailbox_search(&self, creds: &Credentials, mailbox: Option<&str>) -> impl Future<Output = (Option<String>, PartCall)> + Send;
}

/// How Test & Save's context calls went: on whom, and each part's call.
#[derive(Debug, Default)]
pub struct ContextProbe {
    /// The user's UPN and the device's id the calls were made on, where the tenant listed one.
    pub user: Option<String>,
    pub device: Option<String>,
    pub parts: Vec<(crate::domain::processing::context::ContextPart, PartCall)>,
}

/// One context part's test call.
#[derive(Debug)]
pub enum PartCall {
    /// Microsoft answered with the entity or collection.
    Answered,
    /// Microsoft answered 404: the call was allowed, the subject has none (a file no tenant saw).
    Missing,
    Failed(GraphError),
    /// Not made: nothing to make it on, and why.
    Unreached(String),
}
