//! Response bodies read with a cap: a server (or anything between) that answers with more than
//! a page can hold is refused while the bytes arrive, never buffered whole.

use crate::error::GraphError;

/// Reads `resp`'s body, at most `limit` bytes. A `Content-Length` over the limit is refused
/// before reading; a body that grows past it is refused as soon as it does.
pub async fn read_capped(mut resp: reqwest::Response, api: &'static str, limit: usize) -> Result<bytes::Bytes, BodyError> {
    if let Some(len) = resp.content_length() {
        if len > limit as u64 {
            return Err(BodyError::TooLarge(GraphError::TooLarge { api, size: Some(len), limit }));
        }
    }
    let mut body = bytes::BytesMut::with_capacity(resp.content_length().map_or(16 * 1024, |l| l as usize));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge(GraphError::TooLarge { api, size: None, limit }));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => return Err(BodyError::Transport(e)),
        }
    }
}

/// Why a body was not read.
pub enum BodyError {
    TooLarge(GraphError),
    /// Cut off or unreadable: retryable like any transport failure.
    Transport(reqwest::Error),
}
