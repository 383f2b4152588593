//! AWS adapters over the real SDK clients (DynamoDB, SQS, S3, Secrets Manager).

mod bundle;
mod dynamo;
mod dynamo_budget;
mod dynamo_cursor;
mod dynamo_dedup;
mod dynamo_evidence_jobs;
mod dynamo_integrations;
mod dynamo_schedule;
mod gate_stack;
mod provision;
mod s3_artifacts;
mod sdk;
mod secrets_manager;
mod sqs_queue;
pub mod template_stack;

pub use bundle::Aws;
pub use dynamo_budget::DynamoBudget;
pub use dynamo_cursor::DynamoCursorStore;
pub use dynamo_dedup::DynamoDedupStore;
pub use dynamo_evidence_jobs::DynamoEvidenceJobs;
pub use dynamo_integrations::DynamoIntegrations;
pub use dynamo_schedule::{DynamoSchedule, DUE_INDEX};
pub use gate_stack::{GateStack, Principal};
pub use provision::{create_dedup_table, create_state_table};
pub use s3_artifacts::S3ArtifactStore;
pub use sdk::{load_sdk_config, load_sdk_config_for_profile, AwsClients};
pub use secrets_manager::{credentials_for, parse_secret, secret_json, SecretsManagerSource};
pub use sqs_queue::SqsAlertQueue;
