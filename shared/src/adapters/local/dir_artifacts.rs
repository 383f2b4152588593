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

impl ArtifactStore for DirArtifactStore {
    async fn get(&self, key: &str) -> Result<Vec<u8>, ArtifactError> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ArtifactError::Put { detail: format!("key `{key}` is not a relative path"), retryable: false });
        }
        let path = self.root.join(key);
        tokio::fs::read(&path).await.map_err(|e| ArtifactError::Put { detail: format!("{}: {e}", path.display()), retryable: false })
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<ObjectRef, ArtifactError> {
        if key.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ArtifactError::Put { detail: format!("key `{key}` is not a relative path"), retryable: false });
        }
        let path = self.root.join(key);
        let err = |e: std::io::Error| ArtifactError::Put { detail: format!("{}: {e}", path.display()), retryable: false };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let r = ObjectRef::of(&self.bucket, key, &bytes);
        tokio::fs::write(&path, bytes).await.map_err(err)?;
        Ok(r)
    }
}
