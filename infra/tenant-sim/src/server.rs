//! Runs the simulator: binds, serves HTTPS, and hands tests a handle to steer it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::middleware;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::clock::SimClock;
use crate::data::AlertChange;
use crate::faults::FaultSpec;
use crate::record::RequestLog;
use crate::scenario::{GraphSpec, Scenario};
use crate::state::{BuildError, Sim, SimState};
use crate::time::Instant;
use crate::{entra, graph, http, shaping, tls};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Scenario(#[from] BuildError),
}

/// Every API the simulator serves. A new API (MDCA, MDE live response,
/// Exchange, mail) is one more module with a `routes()` listed here.
fn router(sim: Sim) -> Router {
    Router::new()
        .merge(entra::routes())
        .merge(graph::routes())
        .merge(crate::cloudapps::routes())
        .merge(crate::mde::routes())
        .merge(crate::exchange::routes())
        .fallback(|| async {
            let body =
                serde_json::json!({"error": {"code": "BadRequest", "message": "Resource not found for the segment of this request."}});
            http::json(StatusCode::BAD_REQUEST, &body, http::PLAIN_JSON)
        })
        .layer(middleware::from_fn_with_state(sim.clone(), shaping::shape))
        .with_state(sim)
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    state: Sim,
    addr: SocketAddr,
    ca_pem: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts on 127.0.0.1 with a port the OS chooses.
    pub async fn start(scenario: Scenario) -> Result<Simulator, StartError> {
        Self::start_on(scenario, SocketAddr::from(([127, 0, 0, 1], 0)), "127.0.0.1").await
    }

    /// Starts on `addr`; `host` is the name links and discovery documents use.
    pub async fn start_on(scenario: Scenario, addr: SocketAddr, host: &str) -> Result<Simulator, StartError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let tls = tls::build(&[host.to_owned(), crate::mde::blob::BLOB_HOST.to_owned()])?;
        let state = Arc::new(SimState::build(&scenario, format!("https://{host}:{}", addr.port()))?);
        let app = router(state.clone());
        let acceptor = TlsAcceptor::from(tls.config);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        let service = TowerToHyperService::new(app.clone());
                        tokio::spawn(async move {
                            let tls = match acceptor.accept(tcp).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::debug!(error = %e, "tls handshake failed");
                                    return;
                                }
                            };
                            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        });
        Ok(Simulator { state, addr, ca_pem: tls.ca_pem, stop: Some(stop), task: Some(task) })
    }

    /// `https://127.0.0.1:PORT`: the login authority host and the Graph host alike.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate: the one root a client must add.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn write_ca(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.ca_pem)
    }

    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.state.base_url)
    }

    pub fn clock(&self) -> &SimClock {
        &self.state.clock
    }

    pub fn requests(&self) -> &RequestLog {
        &self.state.log
    }

    pub fn inject(&self, fault: FaultSpec) {
        self.state.faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    pub fn graph_spec(&self) -> GraphSpec {
        self.state.graph_spec()
    }

    pub fn set_graph_spec(&self, spec: GraphSpec) {
        self.state.set_graph_spec(spec);
    }

    /// Updates an alert now (simulated time); visible after `latency_secs`.
    pub fn update_alert(&self, tenant_id: &str, alert_id: &str, change: AlertChange, latency_secs: i64) -> Option<Instant> {
        let now = self.state.clock.now();
        let mut data = self.state.data_mut();
        data.iter_mut().find(|t| t.tenant_id == tenant_id)?.update_alert(alert_id, change, now, latency_secs)
    }

    /// Changes an incident itself now (simulated time: owner, status, classification, a
    /// comment), its alerts unchanged; visible after `latency_secs`.
    pub fn update_incident(&self, tenant_id: &str, incident_id: &str, change: AlertChange, latency_secs: i64) -> Option<Instant> {
        let now = self.state.clock.now();
        let mut data = self.state.data_mut();
        data.iter_mut().find(|t| t.tenant_id == tenant_id)?.update_incident(incident_id, change, now, latency_secs)
    }

    /// Raises `count` alerts sharing one `lastUpdateDateTime` (now), visible after `latency_secs`.
    pub fn raise_alerts(&self, tenant_id: &str, count: usize, latency_secs: i64) -> Vec<String> {
        let now = self.state.clock.now();
        let seed = self.state.seed ^ now.0 as u64;
        let mut data = self.state.data_mut();
        data.iter_mut().find(|t| t.tenant_id == tenant_id).map(|t| t.raise_alerts(count, now, latency_secs, seed)).unwrap_or_default()
    }

    /// Ids and `lastUpdateDateTime` of every alert version visible now, the ground truth for tests.
    pub fn visible_alert_versions(&self, tenant_id: &str) -> Vec<(String, Instant)> {
        let now = self.state.clock.now();
        let data = self.state.data();
        data.iter()
            .filter(|t| t.tenant_id == tenant_id)
            .flat_map(|t| t.alerts.iter().filter_map(|a| a.visible(now).map(|v| (a.id.clone(), v.last_update))))
            .collect()
    }

    /// Every version of every alert that will ever be visible, with when it becomes visible.
    pub fn alert_timeline(&self, tenant_id: &str) -> Vec<(String, Instant, Instant)> {
        let data = self.state.data();
        data.iter()
            .filter(|t| t.tenant_id == tenant_id)
            .flat_map(|t| t.alerts.iter().flat_map(|a| a.versions.iter().map(|v| (a.id.clone(), v.last_update, v.visible_at))))
            .collect()
    }

    /// (object id, UPN) of the tenant's people, in pool order (graph/people.rs: user 0 is a
    /// Global Administrator, every fifth is away).
    pub fn people(&self, tenant_id: &str) -> Vec<(String, String)> {
        let data = self.state.data();
        data.iter()
            .filter(|t| t.tenant_id == tenant_id)
            .flat_map(|t| t.pool.users.iter().map(|u| (u.aad_id.clone(), u.upn.clone())))
            .collect()
    }

    /// (machine id, OS platform, device group) of the tenant's devices, in pool order.
    pub fn devices(&self, tenant_id: &str) -> Vec<(String, String, String)> {
        let data = self.state.data();
        data.iter()
            .filter(|t| t.tenant_id == tenant_id)
            .flat_map(|t| t.pool.devices.iter().map(|d| (d.mde_id.clone(), d.os_platform.to_owned(), d.rbac_group_name.to_owned())))
            .collect()
    }

    /// Whether remediation disabled the account.
    pub fn account_disabled(&self, aad_id: &str) -> bool {
        self.state.people.is_disabled(aad_id)
    }

    /// When the user's sessions were last revoked.
    pub fn sessions_revoked_at(&self, aad_id: &str) -> Option<Instant> {
        self.state.people.revoked_at(aad_id)
    }

    /// The host live response results download from (its own name, resolved to [`Self::addr`]).
    pub fn blob_host(&self) -> &'static str {
        crate::mde::blob::BLOB_HOST
    }

    fn tenant_index(&self, tenant_id: &str) -> Option<usize> {
        self.state.directory().iter().position(|t| t.id == tenant_id)
    }

    /// Brings a device online or takes it offline (its pending live responses wait for it).
    pub fn set_machine_online(&self, tenant_id: &str, machine_id: &str, online: bool) {
        if let Some(t) = self.tenant_index(tenant_id) {
            self.state.mde.set_online(t, machine_id, online, self.state.clock.now());
        }
    }

    /// The next `n` result links are handed out already expired.
    pub fn expire_next_result_links(&self, n: usize) {
        self.state.mde.expire_next_links(n);
    }

    /// A file an alert names is deleted from the device (and from its quarantine) after the
    /// alert: GetFile and a restore then fail as for a missing path.
    pub fn delete_device_file(&self, tenant_id: &str, machine_id: &str, path: &str) {
        if let Some(t) = self.tenant_index(tenant_id) {
            self.state.mde.delete_file(t, machine_id, path);
        }
    }

    /// A quarantined message an alert names is released: Get-QuarantineMessage no longer finds it.
    pub fn release_quarantined(&self, tenant_id: &str, internet_message_id: &str) {
        if let Some(t) = self.tenant_index(tenant_id) {
            self.state.released_messages.lock().unwrap_or_else(|p| p.into_inner()).insert((t, internet_message_id.to_owned()));
        }
    }

    /// Every quarantined message carries `bytes` more of body (exports of large messages).
    pub fn set_quarantined_message_padding(&self, bytes: usize) {
        self.state.quarantine_padding.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Downloads serve a changed byte (a file that is not the one the alert names).
    pub fn tamper_downloads(&self, on: bool) {
        self.state.mde.tamper_downloads(on);
    }

    /// Files a restore put on a tenant's devices and no cleanup removed: (machine, path).
    pub fn restored_files(&self, tenant_id: &str) -> Vec<(String, String)> {
        self.tenant_index(tenant_id).map(|t| self.state.mde.restored(t)).unwrap_or_default()
    }

    /// The bytes a restore left at `path` on a device (what GetFile would collect there).
    pub fn restored_file(&self, tenant_id: &str, machine: &str, path: &str) -> Option<Vec<u8>> {
        let t = self.tenant_index(tenant_id)?;
        self.state.mde.restored_at(t, machine, path).map(|b| b.to_vec())
    }

    /// Uploads to a tenant's live response library the simulator accepted.
    pub fn library_uploads(&self, tenant_id: &str) -> usize {
        self.tenant_index(tenant_id).map(|t| self.state.mde.library_uploads(t)).unwrap_or(0)
    }

    /// Live response machine actions of a tenant: (id, machine, status now), oldest first.
    pub fn machine_actions(&self, tenant_id: &str) -> Vec<(String, String, &'static str)> {
        let Some(t) = self.tenant_index(tenant_id) else { return Vec::new() };
        let (now, spec) = (self.state.clock.now(), self.state.mde.spec());
        self.state.mde.actions(t).into_iter().map(|a| (a.id.clone(), a.machine_id.clone(), a.status(now, &spec).as_str())).collect()
    }

    /// Defender for Endpoint's settings now (the tenant's Advanced features, limits, formats).
    pub fn mde_spec(&self) -> crate::scenario::MdeSpec {
        self.state.mde.spec()
    }

    /// Changes them from now on (an admin switching an Advanced feature, say).
    pub fn set_mde_spec(&self, spec: crate::scenario::MdeSpec) {
        *crate::state::lock(&self.state.mde.spec) = spec;
    }

    pub fn set_cloud_apps_spec(&self, spec: crate::scenario::CloudAppsSpec) {
        *self.state.cloud_apps.spec.write().unwrap_or_else(|p| p.into_inner()) = spec;
    }

    /// Raises `count` Cloud Apps alerts with `timestamp` now (one millisecond), listed after `latency_secs`.
    pub fn raise_cloud_apps_alerts(&self, tenant_id: &str, count: usize, latency_secs: i64) -> Vec<String> {
        let now_ms = self.state.clock.now().0 / 10_000;
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        let data = self.state.data();
        let Some(tenant) = data.get(index) else { return Vec::new() };
        let mut rng = crate::ids::rng(self.state.seed ^ now_ms as u64, 0xCB);
        let portal = crate::cloudapps::data::portal_of(&tenant.domain);
        let mut all = self.state.cloud_apps.alerts.write().unwrap_or_else(|p| p.into_inner());
        let Some(list) = all.get_mut(index) else { return Vec::new() };
        let mut ids = Vec::new();
        for _ in 0..count {
            let v = crate::cloudapps::data::alert(&mut rng, &tenant.pool, &portal, now_ms);
            if let Some(a) = crate::cloudapps::CloudAppsAlert::from_value(&v, v.to_string(), latency_secs * 1000) {
                ids.push(a.id.clone());
                list.push(a);
            }
        }
        list.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
        ids
    }

    /// (`_id`, `timestamp` ms) of every Cloud Apps alert listed now: the ground truth for tests.
    pub fn visible_cloud_apps_alerts(&self, tenant_id: &str) -> Vec<(String, i64)> {
        let now_ms = self.state.clock.now().0 / 10_000;
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        let all = self.state.cloud_apps.alerts.read().unwrap_or_else(|p| p.into_inner());
        all.get(index)
            .map(|v| v.iter().filter(|a| a.visible_ms <= now_ms).map(|a| (a.id.clone(), a.timestamp_ms)).collect())
            .unwrap_or_default()
    }

    /// (id, `createdDateTime`, listed from, analysis ended) of every submission of a tenant: the
    /// ground truth for tests. The docs sample's analysis ended when it was created.
    pub fn submission_timeline(&self, tenant_id: &str) -> Vec<(String, Instant, Instant, Instant)> {
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        self.state.submissions().get(index).into_iter().flatten().map(|s| (s.id.clone(), s.created, s.visible, s.done)).collect()
    }

    /// Submits `count` emails now (their `createdDateTime`), listed after `latency_secs`, each
    /// analysed as the tenant's submissions plan says; returns their ids.
    pub fn raise_submissions(&self, tenant_id: &str, count: usize, latency_secs: i64) -> Vec<String> {
        let now = self.state.clock.now();
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        let Some(plan) = self.state.submission_plans.get(index) else { return Vec::new() };
        let plan = crate::scenario::SubmissionsPlan { latency_secs, ..plan.clone() };
        let data = self.state.data();
        let Some(tenant) = data.get(index) else { return Vec::new() };
        let mut all = self.state.submissions.write().unwrap_or_else(|p| p.into_inner());
        let Some(list) = all.get_mut(index) else { return Vec::new() };
        // Seeded by how many there are, so two raises at one instant make different ones.
        let mut rng = crate::ids::rng(self.state.seed ^ now.0 as u64 ^ (list.len() as u64).rotate_left(32), 0x5C);
        let new = crate::data::submission::raise(&mut rng, &plan, &tenant.pool, tenant_id, now, count);
        let ids = new.iter().map(|s| s.id.clone()).collect();
        list.extend(new);
        ids
    }

    /// (id, `receivedDateTime`, listed from, how the email is carried: `item`, `file` or
    /// `message`) of every message of a tenant's reporting mailbox: the ground truth for tests.
    pub fn mailbox_timeline(&self, tenant_id: &str) -> Vec<(String, Instant, Instant, &'static str)> {
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        let all = self.state.mailboxes();
        let Some((_, messages)) = all.get(index) else { return Vec::new() };
        messages.iter().map(|m| (m.id.clone(), m.received, m.visible, m.carried_as())).collect()
    }

    /// `count` reports received now, listed after `latency_secs`; returns their ids.
    pub fn raise_reports(&self, tenant_id: &str, count: usize, latency_secs: i64) -> Vec<String> {
        let now = self.state.clock.now();
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return Vec::new() };
        let Some(plan) = self.state.mailbox_plans.get(index) else { return Vec::new() };
        let plan = crate::scenario::MailboxPlan { latency_secs, ..plan.clone() };
        let data = self.state.data();
        let Some(tenant) = data.get(index) else { return Vec::new() };
        let mut all = self.state.mailboxes.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, list)) = all.get_mut(index) else { return Vec::new() };
        // Seeded by how many there are, so two raises at one instant make different ones.
        let mut rng = crate::ids::rng(self.state.seed ^ now.0 as u64 ^ (list.len() as u64).rotate_left(32), 0x3B);
        let new = crate::data::mailbox::raise(&mut rng, &plan, &tenant.pool, now, count);
        let ids = new.iter().map(|m| m.id.clone()).collect();
        list.extend(new);
        ids
    }

    /// Deletes a message from the reporting mailbox (an analyst cleaning it up); false when
    /// there was none.
    pub fn delete_report(&self, tenant_id: &str, id: &str) -> bool {
        let Some(index) = self.state.directory().iter().position(|t| t.id == tenant_id) else { return false };
        let mut all = self.state.mailboxes.write().unwrap_or_else(|p| p.into_inner());
        let Some((_, list)) = all.get_mut(index) else { return false };
        let before = list.len();
        list.retain(|m| m.id != id);
        list.len() < before
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(t) = self.task.take() {
            if let Err(e) = t.await {
                tracing::debug!(error = %e, "simulator task ended abnormally");
            }
        }
    }

    fn stop_now(&mut self) {
        if let Some(s) = self.stop.take() {
            // The receiver is gone only if the loop already ended.
            s.send(()).ok();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}
