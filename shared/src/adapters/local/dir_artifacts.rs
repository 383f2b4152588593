//! Claim-check objects as files in a directory.

use std::path::PathBuf;

pub use crate::domain::envelope::sha256_hex;
use crate::domain::envelope::ObjectRef;
use crate::error::ArtifactError;
use crate::ports::ArtifactStore;

#[derive(Debug, Clone)]
pub struct DirArtifactStore {
    root: PathBuf,
    /// Reported as the bucket in object references.
    bucket: String,
}

impl DirArtifactStore {
    pub fn new(root: PathBuf) -> Self {
        let bucket = format!("file://{}", root.display());
        DirArtifactStore { root, bucket }
    }
}

impl DirArtifactStore {
    /// Where `key` lives under the root; a key that would leave it is refused.
    fn path_of(&self, key: &str) -> Result<PathBuf, ArtifactError> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ArtifactError::Put { detail: format!("key `{key}` is not a relative path"), retryable: false });
        }
        Ok(self.root.join(key))
    }
}

impl ArtifactStore for DirArtifactStore {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ArtifactError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path).await.map_err(|e| ArtifactError::Put { detail: format!("{}: {e}", path.display()), retryable: false })
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<ObjectRef, ArtifactError> {
        let path = self.path_of(key)?;
        let err = |e: std::io::Error| ArtifactError::Put { detail: format!("{}: {e}", path.display()), retryable: false };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let r = ObjectRef::of(&self.bucket, key, &bytes);
        tokio::fs::write(&path, bytes).await.map_err(err)?;
        Ok(r)
    }
}

/// An object written to a temporary file beside its key, renamed into place when finished.
pub struct DirUpload {
    tmp: PathBuf,
    path: PathBuf,
    key: String,
    bucket: String,
    content_type: String,
    file: tokio::fs::File,
}

impl crate::ports::ArtifactUploads for DirArtifactStore {
    type Upload = DirUpload;

    async fn begin(&self, key: &str, content_type: &str) -> Result<DirUpload, ArtifactError> {
        let path = self.path_of(key)?;
        let err = |e: std::io::Error| ArtifactError::Put { detail: format!("{}: {e}", path.display()), retryable: false };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let tmp = path.with_extension(format!("partial-{}", std::process::id()));
        let file = tokio::fs::File::create(&tmp).await.map_err(err)?;
        Ok(DirUpload {
            tmp,
            path: path.clone(),
            key: key.to_owned(),
            bucket: self.bucket.clone(),
            content_type: content_type.to_owned(),
            file,
        })
    }
}

impl crate::ports::ArtifactUpload for DirUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        use tokio::io::AsyncWriteExt;
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| ArtifactError::Put { detail: format!("{}: {e}", self.tmp.display()), retryable: false })
    }

    async fn finish(mut self, sha256: String, size: u64) -> Result<ObjectRef, ArtifactError> {
        use tokio::io::AsyncWriteExt;
        let err = |e: std::io::Error| ArtifactError::Put { detail: format!("{}: {e}", self.path.display()), retryable: false };
        self.file.flush().await.map_err(err)?;
        tokio::fs::rename(&self.tmp, &self.path).await.map_err(err)?;
        Ok(ObjectRef { bucket: self.bucket, key: self.key, size, sha256, content_type: Some(self.content_type) })
    }

    async fn abort(self) {
        drop(self.file);
        tokio::fs::remove_file(&self.tmp).await.ok();
    }
}
