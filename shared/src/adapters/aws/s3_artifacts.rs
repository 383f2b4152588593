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

/// S3 takes parts of at least 5 MiB (but the last); 8 MiB keeps one part in memory at a time.
const PART_BYTES: usize = 8 << 20;

/// An object streamed to S3: one PutObject when it fits in a part, a multipart upload otherwise.
/// Nothing is visible under the key until `finish`; `abort` drops the parts.
pub struct S3Upload {
    client: Client,
    bucket: String,
    key: String,
    content_type: String,
    buffer: Vec<u8>,
    /// The multipart upload's id and its parts so far, once a part was sent.
    multipart: Option<(String, Vec<aws_sdk_s3::types::CompletedPart>)>,
}

fn s3_err<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> ArtifactError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    ArtifactError::Put { detail: describe(e), retryable: super::sdk::sdk_retryable(e) }
}

impl crate::ports::ArtifactUploads for S3ArtifactStore {
    type Upload = S3Upload;

    async fn begin(&self, key: &str, content_type: &str) -> Result<S3Upload, ArtifactError> {
        Ok(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            buffer: Vec::new(),
            multipart: None,
        })
    }
}

impl S3Upload {
    async fn send_part(&mut self) -> Result<(), ArtifactError> {
        if self.multipart.is_none() {
            let out = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .send()
                .await
                .map_err(|e| s3_err(&e))?;
            let id = out.upload_id.ok_or_else(|| ArtifactError::Put { detail: "S3 returned no upload id".into(), retryable: true })?;
            self.multipart = Some((id, Vec::new()));
        }
        let Some((id, parts)) = self.multipart.as_mut() else { return Ok(()) };
        let number = parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buffer);
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(id.as_str())
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_err(&e))?;
        parts.push(aws_sdk_s3::types::CompletedPart::builder().set_e_tag(out.e_tag).part_number(number).build());
        Ok(())
    }
}

impl crate::ports::ArtifactUpload for S3Upload {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= PART_BYTES {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn finish(mut self, sha256: String, size: u64) -> Result<ObjectRef, ArtifactError> {
        let r =
            ObjectRef { bucket: self.bucket.clone(), key: self.key.clone(), size, sha256, content_type: Some(self.content_type.clone()) };
        if self.multipart.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type(&self.content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_err(&e))?;
            return Ok(r);
        }
        if !self.buffer.is_empty() {
            self.send_part().await?;
        }
        let Some((id, parts)) = self.multipart.take() else { return Ok(r) };
        let done = aws_sdk_s3::types::CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(id)
            .multipart_upload(done)
            .send()
            .await
            .map_err(|e| s3_err(&e))?;
        Ok(r)
    }

    async fn abort(self) {
        if let Some((id, _)) = self.multipart {
            if let Err(e) = self.client.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(id).send().await {
                // The bucket's lifecycle rule removes incomplete uploads.
                tracing::warn!(error = %describe(&e), "could not abort a multipart upload");
            }
        }
    }
}
