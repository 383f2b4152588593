//! The `GraphApi` port over HTTPS: each request goes to the client of its API (collections.rs
//! for Graph, cloud_apps.rs for Cloud Apps), which share client.rs's transport.

use super::auth::Audience;
use super::client::{counter_slot, Call, MicrosoftHttp};
use super::cloud_apps::CloudAppsAlerts;
use super::collections::GraphCollections;
use crate::domain::alert::{HeadSpec, Item};
use crate::domain::integration::Credentials;
use crate::error::GraphError;
use crate::ports::{GraphApi, Page, PageRequest};

impl MicrosoftHttp {
    /// Graph's collections, read through this client.
    pub fn graph(&self) -> GraphCollections<'_> {
        GraphCollections::new(self, &self.graph_base)
    }

    /// Cloud Apps alerts, read through this client.
    pub fn cloud_apps(&self) -> CloudAppsAlerts<'_> {
        CloudAppsAlerts::new(self)
    }
}

impl GraphApi for MicrosoftHttp {
    fn counters(&self, api: Audience) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.throttled[counter_slot(api)].load(Relaxed), self.retried[counter_slot(api)].load(Relaxed))
    }

    async fn page(&self, creds: &Credentials, request: &PageRequest) -> Result<Page, GraphError> {
        match request {
            PageRequest::Graph(query) => self.graph().query(creds, query).await,
            PageRequest::Link { url, head } => self.graph().link(creds, url, *head).await,
            PageRequest::CloudApps { portal, from, to, skip, limit } => {
                self.cloud_apps().page(creds, portal, &CloudAppsAlerts::request(*from, *to, *skip, *limit)).await
            }
        }
    }

    async fn collection(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Vec<Item>, GraphError> {
        self.graph().collection(creds, path, head).await
    }

    async fn item(&self, creds: &Credentials, path: &str, head: HeadSpec) -> Result<Option<Item>, GraphError> {
        self.graph().item(creds, path, head).await
    }

    async fn content(&self, creds: &Credentials, path: &str) -> Result<Option<Vec<u8>>, GraphError> {
        let url = format!("{}{path}", self.settings.graph_base_url.trim_end_matches('/'));
        match self.send(creds, &Call::get("Graph", Audience::Graph, &url)).await {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(GraphError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
