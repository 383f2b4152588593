//! The query function's app: an investigation query in (a synchronous invoke by a caller with
//! IAM permission), its answer out as JSON.

use crate::adapters::aws::{AwsClients, DynamoBudget, DynamoIntegrations, SecretsManagerSource};
use crate::adapters::graph::context::MicrosoftContext;
use crate::adapters::graph::{MicrosoftHttp, RetryPolicy};
use crate::app::integration_cache::{Cached, IntegrationCache};
use crate::app::processing::enrich::{EnrichSettings, Enricher};
use crate::app::response::investigate::Investigator;
use crate::config::QueryConfig;
use crate::error::Error;
use crate::ports::investigation::InvestigateWith;
use crate::ports::SystemClock;

pub type AwsInvestigator = Investigator<InvestigateWith<MicrosoftHttp, SecretsManagerSource, Cached<DynamoIntegrations>, SystemClock>>;

pub fn build_aws(config: &QueryConfig, clients: &AwsClients) -> Result<AwsInvestigator, Error> {
    let budget: std::sync::Arc<dyn crate::ports::RequestBudget> =
        std::sync::Arc::new(DynamoBudget::new(clients.dynamodb.clone(), &config.state_table));
    // Throttling is answered, not waited out: a quick retry of a blip at most.
    let http =
        || -> Result<MicrosoftHttp, Error> { Ok(MicrosoftHttp::new(&config.http, RetryPolicy::context())?.with_budget(budget.clone())) };
    let context = Enricher::new(
        std::sync::Arc::new(MicrosoftContext::new(http()?, SecretsManagerSource::new(clients.secrets.clone()), config.budget_wait)),
        EnrichSettings::default(),
    );
    Ok(Investigator {
        api: http()?,
        secrets: SecretsManagerSource::new(clients.secrets.clone()),
        integrations: Cached::new(
            DynamoIntegrations::new(clients.dynamodb.clone(), &config.state_table),
            IntegrationCache::new(config.integration_cache),
        ),
        clock: SystemClock,
        context: Some(context),
    })
}
