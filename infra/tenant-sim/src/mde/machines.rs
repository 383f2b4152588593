//! `GET /api/machines` and `GET /api/machines/{id}` (get-machines.md, get-machine-by-id.md): the
//! documentation's sample machine (fixture `mde_machine_get.json`) first, then the tenant's own
//! devices, the ones its alerts name, with their online state.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{error, refused, MACHINE_ROLES};
use crate::data::pool::Device;
use crate::entra::resources;
use crate::graph::context::{authorize_for, GraphCtx};
use crate::http::{self, query_pairs};
use crate::state::Sim;

const MACHINE: &str = include_str!("../../tests/fixtures/microsoft-docs/mde_machine_get.json");

pub fn routes() -> Router<Sim> {
    Router::new().route("/api/machines", get(list)).route("/api/machines/{id}", get(one))
}

fn sample() -> Value {
    let mut m: Value = serde_json::from_str(MACHINE).unwrap_or_default();
    if let Some(o) = m.as_object_mut() {
        o.remove("@odata.context");
    }
    m
}

/// A device of the tenant as a Machine (get-machine-by-id.md's fields).
fn machine(d: &Device, online: bool) -> Value {
    json!({
        "id": d.mde_id,
        "computerDnsName": d.dns_name,
        "osPlatform": d.os_platform,
        "osBuild": d.os_build,
        "lastIpAddress": d.ip,
        "healthStatus": if online { "Active" } else { "Inactive" },
        "onboardingStatus": "Onboarded",
        "rbacGroupId": d.rbac_group_id,
        "rbacGroupName": d.rbac_group_name,
        "riskScore": "Medium",
        "exposureLevel": "Medium",
        "aadDeviceId": d.aad_id,
        "machineTags": [],
    })
}

fn machines(sim: &Sim, tenant: usize) -> Vec<Value> {
    let data = sim.data();
    let devices = data.get(tenant).map(|t| t.pool.devices.clone()).unwrap_or_default();
    drop(data);
    std::iter::once(sample()).chain(devices.iter().map(|d| machine(d, sim.mde.online(tenant, &d.mde_id)))).collect()
}

async fn list(State(sim): State<Sim>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, MACHINE_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    let top = query_pairs(uri.query()).iter().find(|(k, _)| k == "$top").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(10_000);
    let value: Vec<Value> = machines(&sim, who.tenant_index).into_iter().take(top).collect();
    let body = json!({"@odata.context": "https://api.security.microsoft.com/api/$metadata#Machines", "value": value});
    ctx.stamp(http::json(StatusCode::OK, &body, http::PLAIN_JSON))
}

async fn one(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut ctx = GraphCtx::new(&sim, &headers);
    let who = match authorize_for(&sim, &headers, &mut ctx, resources::MDE, MACHINE_ROLES) {
        Ok(w) => w,
        Err(e) => return refused(&ctx, e),
    };
    if let Err(r) = super::profiles::spend(&sim, &ctx, &who, "machines") {
        return *r;
    }
    match machines(&sim, who.tenant_index)
        .into_iter()
        .find(|m| m.get("id").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case(&id)))
    {
        Some(m) => ctx.stamp(http::json(StatusCode::OK, &m, http::PLAIN_JSON)),
        None => error(&ctx, StatusCode::NOT_FOUND, "ResourceNotFound", &format!("Machine {id} was not found")),
    }
}
