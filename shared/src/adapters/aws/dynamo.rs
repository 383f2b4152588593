//! What every DynamoDB adapter here writes alike: attribute values, the integration's key, and
//! how a refused condition is told from a failing store.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn integration_pk(id: &str) -> String {
    format!("integration#{id}")
}

/// Whether a write was refused by its condition (the item is not as the write expected), as
/// opposed to the store failing: every operation's error says so by the same code.
pub(crate) fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException")
}
