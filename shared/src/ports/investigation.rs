//! The ports investigation queries add (issue 14): Advanced Hunting and Cloud Apps activities.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use super::{Clock, IntegrationSource, SecretSource};
use crate::domain::integration::Credentials;
use crate::error::GraphError;

/// Microsoft as investigation queries reach it.
///
/// Contract: `hunt` runs a KQL query over the last `hours` and returns Graph's
/// `huntingQueryResults` (`schema`, `results`) as it came, within `timeout`; `activities` reads one
/// page of Cloud Apps activities (at most 100) matching `filters` at the tenant's portal, and
/// says whether more follow. Throttling is not waited out: a 429 comes back as an error.
pub trait InvestigationApi: Send + Sync {
    fn hunt(
        &self,
        creds: &Credentials,
        query: &str,
        hours: u32,
        timeout: Duration,
    ) -> impl Future<Output = Result<Value, GraphError>> + Send;
    fn activities(
        &self,
        creds: &Credentials,
        portal: &str,
        filters: &Value,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Value>, bool), GraphError>> + Send;
}

pub trait InvestigatePorts: Send + Sync + 'static {
    type Api: InvestigationApi;
    type Secrets: SecretSource;
    type Integrations: IntegrationSource;
    type Clock: Clock;
}

pub struct InvestigateWith<A, S, I, K>(std::marker::PhantomData<(A, S, I, K)>);

impl<A, S, I, K> InvestigatePorts for InvestigateWith<A, S, I, K>
where
    A: InvestigationApi + 'static,
    S: SecretSource + 'static,
    I: IntegrationSource + 'static,
    K: Clock + 'static,
{
    type Api = A;
    type Secrets = S;
    type Integrations = I;
    type Clock = K;
}
