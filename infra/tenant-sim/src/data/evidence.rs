//! Evidence objects in the shapes of Graph's `alertEvidence` derived types
//! (security-alertevidence.md and its subtypes; field order as in the
//! security-list-alerts_v2.md sample where that sample shows the type).

use rand::Rng;
use serde_json::{json, Value};

use super::pool::{Device, File, Pool, User};
use crate::ids::{self, pick, pick_str, SimRng};
use crate::time::Instant;

/// Base fields every evidence type shares, in the order the doc sample prints them.
fn base(kind: &str, at: Instant, verdict: &str, remediation: &str) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("@odata.type".into(), json!(format!("#microsoft.graph.security.{kind}")));
    m.insert("createdDateTime".into(), json!(at.graph7()));
    m.insert("verdict".into(), json!(verdict));
    m.insert("remediationStatus".into(), json!(remediation));
    m.insert("remediationStatusDetails".into(), Value::Null);
    m
}

fn finish(mut m: serde_json::Map<String, Value>, roles: &[&str], detailed: &[&str], tags: &[&str]) -> Value {
    m.insert("roles".into(), json!(roles));
    m.insert("detailedRoles".into(), json!(detailed));
    m.insert("tags".into(), json!(tags));
    Value::Object(m)
}

fn extend(m: &mut serde_json::Map<String, Value>, v: Value) {
    if let Value::Object(o) = v {
        m.extend(o);
    }
}

pub fn file_details(f: &File) -> Value {
    json!({
        "sha1": f.sha1, "sha256": f.sha256, "fileName": f.name, "filePath": f.path,
        "fileSize": f.size, "filePublisher": f.publisher, "signer": null, "issuer": null,
    })
}

pub fn user_account(u: &User, net_bios: &str) -> Value {
    json!({
        "accountName": u.account_name, "domainName": net_bios, "userSid": u.sid,
        "azureAdUserId": u.aad_id, "userPrincipalName": u.upn, "displayName": u.display_name,
    })
}

pub fn device(at: Instant, d: &Device, users: &[&User], net_bios: &str, rng: &mut SimRng) -> Value {
    let mut m = base("deviceEvidence", at, "unknown", "none");
    extend(
        &mut m,
        json!({
            "firstSeenDateTime": at.plus_secs(-rng.gen_range(86_400..40_000_000)).graph7(),
            "mdeDeviceId": d.mde_id,
            "azureAdDeviceId": d.aad_id,
            "deviceDnsName": d.dns_name,
            "hostName": d.host_name,
            "ntDomain": net_bios,
            "dnsDomain": d.dns_name.split_once('.').map(|(_, r)| r),
            "osPlatform": d.os_platform,
            "osBuild": d.os_build,
            "version": if d.os_platform.starts_with("Windows") { "22H2" } else { "Other" },
            "healthStatus": pick_str(rng, &["active", "active", "active", "inactive", "impairedCommunication"]),
            "riskScore": pick_str(rng, &["none", "low", "medium", "high"]),
            "rbacGroupId": d.rbac_group_id,
            "rbacGroupName": d.rbac_group_name,
            "onboardingStatus": "onboarded",
            "defenderAvStatus": pick_str(rng, &["updated", "updated", "notUpdated", "unknown"]),
            "ipInterfaces": [d.ip],
            "lastIpAddress": d.ip,
            "lastExternalIpAddress": null,
            "loggedOnUsers": users.iter().map(|u| json!({"accountName": u.account_name, "domainName": net_bios})).collect::<Vec<_>>(),
            "vmMetadata": null,
        }),
    );
    finish(m, &["compromised"], &["Main device"], &[])
}

pub fn file(at: Instant, f: &File, mde_device: &str, detection: &str, remediation: &str) -> Value {
    let mut m = base("fileEvidence", at, "malicious", remediation);
    m.insert("detectionStatus".into(), json!(detection));
    m.insert("mdeDeviceId".into(), json!(mde_device));
    m.insert("roles".into(), json!([]));
    m.insert("detailedRoles".into(), json!(["Detected file"]));
    m.insert("tags".into(), json!([]));
    m.insert("fileDetails".into(), file_details(f));
    Value::Object(m)
}

pub struct ProcessArgs<'a> {
    pub image: &'a File,
    pub parent: &'a File,
    pub command_line: String,
    pub user: &'a User,
    pub mde_device: &'a str,
    pub detection: &'a str,
}

pub fn process(at: Instant, p: &ProcessArgs<'_>, net_bios: &str, rng: &mut SimRng) -> Value {
    let mut m = base("processEvidence", at, "suspicious", "none");
    extend(
        &mut m,
        json!({
            "processId": rng.gen_range(400..30_000),
            "parentProcessId": rng.gen_range(400..30_000),
            "processCommandLine": p.command_line,
            "processCreationDateTime": at.plus_secs(-rng.gen_range(1..600)).graph7(),
            "parentProcessCreationDateTime": at.plus_secs(-rng.gen_range(600..90_000)).graph7(),
            "detectionStatus": p.detection,
            "mdeDeviceId": p.mde_device,
            "roles": [],
            "detailedRoles": [],
            "tags": [],
            "imageFile": file_details(p.image),
            "parentProcessImageFile": file_details(p.parent),
            "userAccount": user_account(p.user, net_bios),
        }),
    );
    Value::Object(m)
}

pub fn registry_key(at: Instant, key: &str, hive: &str) -> Value {
    let mut m = base("registryKeyEvidence", at, "unknown", "none");
    extend(&mut m, json!({"registryKey": key, "registryHive": hive}));
    finish(m, &[], &[], &[])
}

pub fn registry_value(at: Instant, key: &str, hive: &str, name: &str, data: &str, mde_device: &str) -> Value {
    let mut m = base("registryValueEvidence", at, "suspicious", "none");
    extend(
        &mut m,
        json!({
            "mdeDeviceId": mde_device, "registryKey": key, "registryHive": hive,
            "registryValue": data, "registryValueName": name, "registryValueType": "String",
        }),
    );
    finish(m, &[], &[], &[])
}

pub fn user(at: Instant, u: &User, net_bios: &str, roles: &[&str]) -> Value {
    let mut m = base("userEvidence", at, "unknown", "none");
    m.insert("userAccount".into(), user_account(u, net_bios));
    finish(m, roles, &[], &[])
}

pub fn mailbox(at: Instant, u: &User, net_bios: &str) -> Value {
    let mut m = base("mailboxEvidence", at, "unknown", "none");
    extend(
        &mut m,
        json!({
            "primaryAddress": u.upn, "upn": u.upn, "displayName": u.display_name,
            "userAccount": user_account(u, net_bios),
        }),
    );
    finish(m, &["destination"], &[], &[])
}

pub struct MessageArgs<'a> {
    pub recipient: &'a User,
    pub sender: String,
    pub sender_domain: &'a str,
    pub sender_ip: &'a str,
    pub subject: &'a str,
    pub url: Option<&'a str>,
    pub threat: &'a str,
    pub delivery_action: &'a str,
    pub delivery_location: &'a str,
}

pub fn analyzed_message(at: Instant, a: &MessageArgs<'_>, rng: &mut SimRng) -> Value {
    let remediation = if a.delivery_location == "quarantine" { "prevented" } else { "none" };
    let mut m = base("analyzedMessageEvidence", at, "malicious", remediation);
    let nmid = ids::guid(rng);
    extend(
        &mut m,
        json!({
            "networkMessageId": nmid,
            "internetMessageId": format!("<{}@{}>", ids::hex(rng, 12), a.sender_domain),
            "recipientEmailAddress": a.recipient.upn,
            "subject": a.subject,
            "senderIp": a.sender_ip,
            "p1Sender": {"emailAddress": a.sender, "displayName": null, "domainName": a.sender_domain},
            "p2Sender": {"emailAddress": a.sender, "displayName": "Accounts Payable", "domainName": a.sender_domain},
            "receivedDateTime": at.plus_secs(-rng.gen_range(30..3_600)).graph7(),
            "antiSpamDirection": "inbound",
            "deliveryAction": a.delivery_action,
            "deliveryLocation": a.delivery_location,
            "language": "en",
            "threats": [a.threat],
            "threatDetectionMethods": ["urlDetonationReputation", "fingerprintMatching"],
            "urls": a.url.map(|u| vec![u]).unwrap_or_default(),
            "urlCount": i64::from(a.url.is_some()),
            "attachmentsCount": rng.gen_range(0..3),
            "urn": format!("urn:MailEntity:{}", ids::hex(rng, 16)),
        }),
    );
    finish(m, &[], &[], &[])
}

/// A user's report of a delivered message (security-submissionmailevidence.md): the evidence an
/// alert raised on a user-reported email carries, naming the submission. Its ids come from a
/// stream of their own, so adding it leaves every other generated value as it was.
pub fn submission_mail(at: Instant, message: &Value, reporter: &User) -> Value {
    let mut m = base("submissionMailEvidence", at, "suspicious", "none");
    let nmid = message.get("networkMessageId").and_then(Value::as_str).unwrap_or_default();
    let seed = nmid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut rng = ids::rng(seed, 0x5E);
    extend(
        &mut m,
        json!({
            "networkMessageId": nmid,
            "recipient": message.get("recipientEmailAddress"),
            "sender": message.pointer("/p1Sender/emailAddress"),
            "senderIp": message.get("senderIp"),
            "subject": message.get("subject"),
            "reportType": "Phish",
            "submissionDateTime": at.graph7(),
            "submissionId": ids::guid(&mut rng),
            "submitter": reporter.upn,
        }),
    );
    finish(m, &[], &[], &[])
}

pub fn mail_cluster(at: Instant, by: &str, value: &str, ids_in: &[String], rng: &mut SimRng) -> Value {
    let mut m = base("mailClusterEvidence", at, "malicious", "prevented");
    extend(
        &mut m,
        json!({
            "clusterBy": by, "clusterByValue": value, "emailCount": ids_in.len(),
            "networkMessageIds": ids_in, "query": format!("(({by}=\"{value}\"))"),
            "urn": format!("urn:MailClusterEntity:{}", ids::hex(rng, 16)),
        }),
    );
    finish(m, &[], &[], &[])
}

pub fn ip(at: Instant, addr: &str, country: &str, city: &str, roles: &[&str]) -> Value {
    let mut m = base("ipEvidence", at, "suspicious", "none");
    extend(
        &mut m,
        json!({
            "ipAddress": addr, "countryLetterCode": country,
            "location": {"city": city, "countryName": country, "state": null, "latitude": null, "longitude": null},
            "stream": null,
        }),
    );
    finish(m, roles, &[], &[])
}

pub fn url(at: Instant, u: &str) -> Value {
    let mut m = base("urlEvidence", at, "malicious", "none");
    m.insert("url".into(), json!(u));
    finish(m, &[], &[], &[])
}

pub fn cloud_application(at: Instant, app_id: i64, name: &str, instance: i64) -> Value {
    let mut m = base("cloudApplicationEvidence", at, "unknown", "none");
    extend(
        &mut m,
        json!({
            "appId": app_id, "displayName": name, "instanceId": instance, "instanceName": name,
            "saasAppId": app_id, "stream": null,
        }),
    );
    finish(m, &["contextual"], &[], &[])
}

pub fn oauth_application(at: Instant, rng: &mut SimRng) -> Value {
    let mut m = base("oauthApplicationEvidence", at, "suspicious", "none");
    extend(
        &mut m,
        json!({
            "appId": ids::guid(rng), "objectId": ids::guid(rng),
            "displayName": pick_str(rng, &["Mail Helper Pro", "PDF Sign Online", "Calendar Sync 365"]),
            "publisher": pick_str(rng, &["Unverified", "Fabrikam Apps"]),
        }),
    );
    finish(m, &[], &[], &[])
}

pub fn country(rng: &mut SimRng) -> (&'static str, &'static str) {
    *pick(
        rng,
        &[
            ("US", "Seattle"),
            ("NL", "Amsterdam"),
            ("SG", "Singapore"),
            ("BR", "Sao Paulo"),
            ("RU", "Moscow"),
            ("NG", "Lagos"),
            ("DE", "Frankfurt"),
        ],
    )
}

/// The shared cast for convenience in templates.
pub fn any_user<'a>(pool: &'a Pool, rng: &mut SimRng) -> &'a User {
    pick(rng, &pool.users)
}
