//! What a Graph alert carries, as OCSF objects: its product, its evidence artifacts and the
//! `finding_info` a Detection or Incident Finding gives it.

use serde_json::{json, Value};

use super::fields::{address, ms, verdict, Obj};
use crate::domain::graph_alert::{Evidence, FileDetails, GraphAlert};

pub(super) fn product(service_source: Option<&str>) -> &'static str {
    match service_source {
        Some("microsoftDefenderForEndpoint") => "Microsoft Defender for Endpoint",
        Some("microsoftDefenderForIdentity") => "Microsoft Defender for Identity",
        Some("microsoftDefenderForCloudApps") => "Microsoft Defender for Cloud Apps",
        Some("microsoftDefenderForOffice365") => "Microsoft Defender for Office 365",
        Some("azureAdIdentityProtection") => "Microsoft Entra ID Protection",
        Some("dataLossPrevention") => "Microsoft Purview Data Loss Prevention",
        Some("microsoftSentinel") => "Microsoft Sentinel",
        Some("microsoftDefenderForCloud") => "Microsoft Defender for Cloud",
        Some("microsoftInsiderRiskManagement") => "Microsoft Purview Insider Risk Management",
        Some("microsoftAppGovernance") => "App governance",
        _ => "Microsoft Defender XDR",
    }
}

fn file(f: &FileDetails) -> Option<Value> {
    let name = f.file_name.clone()?;
    let hashes: Vec<Value> = [(2, "SHA-1", &f.sha1), (3, "SHA-256", &f.sha256), (1, "MD5", &f.md5)]
        .into_iter()
        .filter_map(|(id, alg, v)| v.as_ref().map(|v| json!({"algorithm_id": id, "algorithm": alg, "value": v})))
        .collect();
    let path = f.file_path.as_ref().map(|p| format!("{}\\{name}", p.trim_end_matches(['\\', '/'])));
    Some(
        Obj::new()
            .set("name", name)
            .set("type_id", 1)
            .set("type", "Regular File")
            .opt("path", path)
            .opt("parent_folder", f.file_path.clone())
            .opt("size", f.file_size)
            .opt("company_name", f.file_publisher.clone())
            .opt("hashes", (!hashes.is_empty()).then_some(Value::Array(hashes)))
            .done(),
    )
}

pub(super) fn evidence(e: &Evidence) -> Option<Value> {
    let (vid, vname) = verdict(e.verdict.as_deref());
    let base = Obj::new().set("verdict_id", vid).set("verdict", vname);
    let artifact = match e.kind() {
        "deviceEvidence" => {
            if e.mde_device_id.is_none() && e.device_dns_name.is_none() {
                return None;
            }
            let d = Obj::new()
                .opt("uid", e.mde_device_id.clone())
                .opt("hostname", e.device_dns_name.clone())
                .set("type_id", 0)
                .set("type", "Unknown");
            ("device", d.done())
        }
        "fileEvidence" => ("file", file(e.file_details.as_ref()?)?),
        "processEvidence" => {
            let user = e.user_account.as_ref().and_then(|u| {
                u.account_name
                    .as_ref()
                    .map(|n| Obj::new().set("name", n.clone()).opt("domain", u.domain_name.clone()).opt("uid", u.user_sid.clone()).done())
            });
            let p = Obj::new()
                .set("pid", e.process_id.unwrap_or(0))
                .opt("name", e.image_file.as_ref().and_then(|f| f.file_name.clone()))
                .opt("cmd_line", e.process_command_line.clone())
                .opt("file", e.image_file.as_ref().and_then(file))
                .opt("user", user);
            ("process", p.done())
        }
        "userEvidence" | "mailboxEvidence" => {
            let u = e.user_account.as_ref();
            let name =
                u.and_then(|u| u.user_principal_name.clone().or_else(|| u.account_name.clone())).or_else(|| e.primary_address.clone())?;
            let user = Obj::new()
                .set("name", name)
                .opt("uid", u.and_then(|u| u.azure_ad_user_id.clone().or_else(|| u.user_sid.clone())))
                .opt("domain", u.and_then(|u| u.domain_name.clone()));
            ("user", user.done())
        }
        "analyzedMessageEvidence" | "submissionMailEvidence" => {
            let from = e.p1_sender.as_ref().and_then(|s| s.email_address.as_deref()).or(e.sender.as_deref()).and_then(address);
            let to = e.recipient_email_address.as_deref().or(e.recipient.as_deref()).and_then(address);
            if from.is_none() && to.is_none() {
                // The class requires one of them, as an address.
                return None;
            }
            let ip = e.sender_ip.as_deref().filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
            let email = Obj::new()
                .opt("from", from)
                .opt("to", to.map(|t| vec![t]))
                .opt("message_uid", e.internet_message_id.clone())
                .opt("uid", e.network_message_id.clone())
                .opt("subject", e.subject.clone())
                .opt("x_originating_ip", ip.map(|ip| vec![ip.to_owned()]));
            ("email", email.done())
        }
        "ipEvidence" => ("src_endpoint", json!({"ip": e.ip_address.clone()?})),
        "urlEvidence" => ("url", json!({"url_string": e.url.clone()?})),
        _ => return None,
    };
    Some(base.set(artifact.0, artifact.1).done())
}

/// MITRE ids like `T1564.001` as OCSF attacks (technique and sub-technique by id).
fn attacks(techniques: &[String]) -> Vec<Value> {
    techniques
        .iter()
        .map(|t| match t.split_once('.') {
            Some((tech, _)) => json!({"technique": {"uid": tech}, "sub_technique": {"uid": t}}),
            None => json!({"technique": {"uid": t}}),
        })
        .collect()
}

/// What an alert found, as a Detection Finding's `finding_info` and an Incident Finding's
/// `finding_info_list` entries carry it.
pub(super) fn finding_info(a: &GraphAlert) -> Obj {
    let analytic = a.detector_id.as_ref().map(|d| json!({"uid": d, "type_id": 0, "type": "Unknown"}));
    Obj::new()
        .set("uid", a.id.clone())
        .opt("uid_alt", a.provider_alert_id.clone())
        .opt("title", a.title.clone())
        .opt("desc", a.description.clone())
        .opt("types", a.category.clone().map(|c| vec![c]))
        .opt("src_url", a.alert_web_url.clone())
        .opt("created_time", ms(a.created_date_time.as_deref()))
        .opt("modified_time", ms(a.last_update_date_time.as_deref()))
        .opt("first_seen_time", ms(a.first_activity_date_time.as_deref()))
        .opt("last_seen_time", ms(a.last_activity_date_time.as_deref()))
        .opt("analytic", analytic)
        .opt("attacks", (!a.mitre_techniques.is_empty()).then(|| attacks(&a.mitre_techniques)))
}
