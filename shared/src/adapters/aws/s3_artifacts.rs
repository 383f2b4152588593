//! Claim-check objects in the artifacts bucket.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use super::sdk::describe;
use crate::domain::envelope::{content_type_of, ObjectRef};
use crate::error::ArtifactError;
use crate::ports::ArtifactStore;

#[derive(Debug, Clone)]
pub struct S3ArtifactStore {
    client: Client,
    bucket: String,
}

impl S3ArtifactStore {
    pub fn new(client: Client, bucket: &str) -> Self {
        S3ArtifactStore { client, bucket: bucket.to_owned() }
    }
}

impl ArtifactStore for S3ArtifactStore {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ArtifactError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            let retryable =
                !matches!(e, aws_sdk_s3::error::SdkError::ServiceError(_) | aws_sdk_s3::error::SdkError::ConstructionFailure(_));
            ArtifactError::Put { detail: describe(&e), retryable }
        })?;
        let bytes = out.body.collect().await.map_err(|e| ArtifactError::Put { detail: e.to_string(), retryable: true })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<ObjectRef, ArtifactError> {
        let r = ObjectRef::of(&self.bucket, key, &bytes);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type_of(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                let retryable = super::sdk::sdk_retryable(&e);
                ArtifactError::Put { detail: describe(&e), retryable }
            })?;
        Ok(r)
    }
}
