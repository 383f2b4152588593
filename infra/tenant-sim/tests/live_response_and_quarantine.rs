//! Defender for Endpoint live response and the Exchange quarantine, as a client meets them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use sha2::Digest;

const MDE_SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";
const EXO_SCOPE: &str = "https://outlook.office365.com/.default";
const ANCHOR: &str = "UPN:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@contoso.onmicrosoft.com";

/// A file the tenant's alerts name on one device, not touched by antivirus: (machine, path, sha256).
async fn file_on_a_device(h: &Harness) -> (String, String, String) {
    file_evidence(h, false).await
}

/// A file the tenant's alerts name on one device, in quarantine (`acted`: antivirus took it) or
/// at its path: (machine, path, sha256).
async fn file_evidence(h: &Harness, acted: bool) -> (String, String, String) {
    let token = h.graph_token().await;
    let (alerts, _) = h.get_all("/v1.0/security/alerts_v2?$top=500", &token, true).await;
    for a in &alerts {
        let ev = a["evidence"].as_array().unwrap();
        let devices: Vec<&str> = ev
            .iter()
            .filter(|e| e["@odata.type"] == "#microsoft.graph.security.deviceEvidence")
            .filter_map(|e| e["mdeDeviceId"].as_str())
            .collect();
        for e in ev.iter().filter(|e| e["@odata.type"] == "#microsoft.graph.security.fileEvidence") {
            let taken = a["detectionSource"] == "antivirus"
                || ["blocked", "prevented"].contains(&e["detectionStatus"].as_str().unwrap_or_default())
                || ["remediated", "prevented", "blocked"].contains(&e["remediationStatus"].as_str().unwrap_or_default());
            let device = e["mdeDeviceId"].as_str().filter(|d| !d.is_empty()).or((devices.len() == 1).then(|| devices[0]));
            if let (true, Some(d)) = (taken == acted, device) {
                let f = &e["fileDetails"];
                let path = format!("{}\\{}", f["filePath"].as_str().unwrap(), f["fileName"].as_str().unwrap());
                return (d.to_owned(), path, f["sha256"].as_str().unwrap().to_owned());
            }
        }
    }
    panic!("no such file on a device in the scenario");
}

fn get_file(path: &str) -> Value {
    json!({"Commands": [{"type": "GetFile", "params": [{"key": "Path", "value": path}]}], "Comment": "m365-ingest evidence"})
}

async fn post(h: &Harness, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = h.http.post(h.url(path)).bearer_auth(token).json(body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_getfile_runs_on_the_device_and_its_result_downloads_from_the_blob_host_until_the_link_expires() {
    let h = Harness::start(fixed_scenario()).await;
    let (machine, path, sha256) = file_on_a_device(&h).await;
    let token = h.token_for(MDE_SCOPE).await;
    let (status, action) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    assert_eq!(status, 201, "{action}");
    assert_eq!((action["status"].as_str(), action["type"].as_str()), (Some("Pending"), Some("LiveResponse")));
    let id = action["id"].as_str().unwrap().to_owned();
    // One session per device.
    let (status, body) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("ActiveRequestAlreadyExists")), "{body}");
    let link_path = format!("/api/machineactions/{id}/GetLiveResponseResultDownloadLink(index=0)");
    assert_eq!(h.get(&link_path, &token, false).await.0, 400, "no result before it ran");
    h.sim.clock().advance_secs(10);
    assert_eq!(h.get(&format!("/api/machineactions/{id}"), &token, false).await.2["status"], "InProgress");
    h.sim.clock().advance_secs(30);
    let (_, _, done) = h.get(&format!("/api/machineactions/{id}"), &token, false).await;
    assert_eq!((done["status"].as_str(), done["commands"][0]["commandStatus"].as_str()), (Some("Succeeded"), Some("Completed")), "{done}");
    let (status, _, link) = h.get(&link_path, &token, false).await;
    assert_eq!(status, 200, "{link}");
    let url = link["value"].as_str().unwrap();
    assert!(url.starts_with(&format!("https://{}:", h.sim.blob_host())), "{url}");
    // The blob host is a host of its own: reached by its name only.
    let blob = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(h.sim.ca_pem().as_bytes()).unwrap()])
        .resolve(h.sim.blob_host(), h.sim.addr())
        .build()
        .unwrap();
    let r = blob.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let packed = r.bytes().await.unwrap();
    assert_eq!(&packed[..3], &[0x1f, 0x8b, 8], "gzip by default (mde.result_format)");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut bytes).unwrap();
    let got: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, sha256, "the file the alert names, gzipped");
    let on_api_host = url.replace(&format!("{}:", h.sim.blob_host()), "127.0.0.1:");
    assert_eq!(h.http.get(on_api_host).send().await.unwrap().status().as_u16(), 400, "not served on the API host");
    h.sim.clock().advance_secs(31 * 60);
    let r = blob.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "the link lives 30 minutes");
    assert!(r.text().await.unwrap().contains("<Code>AuthenticationFailed</Code>"));
    let (status, _, fresh) = h.get(&link_path, &token, false).await;
    assert_eq!(status, 200);
    assert_eq!(blob.get(fresh["value"].as_str().unwrap()).send().await.unwrap().status().as_u16(), 200, "a new link works");
}

/// A file's size, from the alert evidence that names it.
async fn file_size(h: &Harness, sha256: &str) -> u64 {
    let token = h.graph_token().await;
    let (alerts, _) = h.get_all("/v1.0/security/alerts_v2?$top=500", &token, true).await;
    alerts
        .iter()
        .flat_map(|a| a["evidence"].as_array().cloned().unwrap_or_default())
        .find(|e| e["fileDetails"]["sha256"] == sha256)
        .and_then(|e| e["fileDetails"]["fileSize"].as_u64())
        .expect("the file's size in its evidence")
}

/// GetFile's upload takes its time: a device that uploads slowly keeps the action InProgress
/// until the file is up, and one slower than GetFile's 30-minute limit fails with ERROR_TIMEOUT
/// after the 30 minutes, not before (live-response.md, per-command limits).
#[tokio::test]
async fn a_slow_upload_keeps_the_action_in_progress_and_one_past_thirty_minutes_times_out_then() {
    let h = Harness::start(fixed_scenario()).await;
    let (machine, path, sha256) = file_on_a_device(&h).await;
    let size = file_size(&h, &sha256).await;
    let spec = h.sim.mde_spec();
    let started = spec.pickup_secs + spec.run_secs;
    // (seconds the upload takes, what the action is just before it ends, and just after).
    for (upload, last) in [(600u64, "Succeeded"), (3_600, "Failed")] {
        let rate = size.div_ceil(upload);
        h.sim.set_mde_spec(tenant_sim::scenario::MdeSpec { device_upload_bytes_per_sec: rate, ..spec.clone() });
        let token = h.token_for(MDE_SCOPE).await;
        let (status, action) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
        assert_eq!(status, 201, "{action}");
        let id = action["id"].as_str().unwrap().to_owned();
        let ends = started + size.div_ceil(rate).min(spec.getfile_timeout_secs) as i64;
        let mut seen = Vec::new();
        for at in [started + 10, ends - 5, ends + 5] {
            h.sim.clock().advance_secs(at - seen.last().map_or(0, |(t, _)| *t));
            let token = h.token_for(MDE_SCOPE).await;
            let got = h.get(&format!("/api/machineactions/{id}"), &token, false).await.2;
            seen.push((at, got));
        }
        let statuses: Vec<&str> = seen.iter().map(|(_, a)| a["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["InProgress", "InProgress", last], "an upload of {upload} s: {seen:?}");
        let done = &seen[2].1;
        if last == "Failed" {
            assert_eq!(done["errorHResult"], -2_147_023_436, "ERROR_TIMEOUT: {done}");
            assert!(done["commands"][0]["errors"][0].as_str().unwrap().contains("timed out"), "{done}");
        }
    }
    // A file gone by the time the device runs the command fails then: nothing uploads.
    let token = h.token_for(MDE_SCOPE).await;
    let (_, action) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    h.sim.delete_device_file(TENANT, &machine, &path);
    h.sim.clock().advance_secs(started + 5);
    let got = h.get(&format!("/api/machineactions/{}", action["id"].as_str().unwrap()), &token, false).await.2;
    assert_eq!((got["status"].as_str(), got["errorHResult"].as_i64()), (Some("Failed"), Some(-2_147_024_894)), "not found: {got}");
}

#[tokio::test]
async fn offline_devices_hold_actions_pending_missing_files_fail_and_the_tenant_limits_hold() {
    let h = Harness::start(fixed_scenario()).await;
    let (machine, path, _) = file_on_a_device(&h).await;
    let token = h.token_for(MDE_SCOPE).await;
    h.sim.set_machine_online(TENANT, &machine, false);
    let (_, action) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    let id = action["id"].as_str().unwrap().to_owned();
    h.sim.clock().advance_secs(7_150);
    let token = h.token_for(MDE_SCOPE).await;
    assert_eq!(h.get(&format!("/api/machineactions/{id}"), &token, false).await.2["status"], "Pending", "waits for the device");
    h.sim.clock().advance_secs(100);
    let token = h.token_for(MDE_SCOPE).await;
    assert_eq!(h.get(&format!("/api/machineactions/{id}"), &token, false).await.2["status"], "TimeOut", "queued up to 2 hours");
    h.sim.set_machine_online(TENANT, &machine, true);
    let (status, missing) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file("C:\\nothing\\here.exe")).await;
    assert_eq!(status, 201, "{missing}");
    h.sim.clock().advance_secs(60);
    let (_, _, failed) = h.get(&format!("/api/machineactions/{}", missing["id"].as_str().unwrap()), &token, false).await;
    assert_eq!((failed["status"].as_str(), failed["commands"][0]["commandStatus"].as_str()), (Some("Failed"), Some("Failed")), "{failed}");
    assert!(failed["commands"][0]["errors"][0].as_str().unwrap().contains("not found"));
    let (status, body) = post(&h, &token, "/api/machines/no-such-machine/runliveresponse", &get_file(&path)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ResourceNotFound")));
    // Ten calls a minute per tenant: eight so far this minute would be too few to tell, so spend the rest.
    let machines: Vec<String> = h.get("/api/machines", &token, false).await.2["value"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let mut codes = Vec::new();
    for m in machines.iter().take(12) {
        codes.push(post(&h, &token, &format!("/api/machines/{m}/runliveresponse"), &get_file("C:\\x.exe")).await.0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 10, "{codes:?}");
    assert!(codes.ends_with(&[429, 429]), "{codes:?}");
    let (status, body) =
        post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &json!({"Commands": [{"type": "GetFile", "params": []}]}))
            .await;
    assert_eq!(status, 400, "{body}");
}

async fn invoke(h: &Harness, token: &str, cmdlet: &str, params: Value) -> (u16, Value) {
    let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}});
    let r = h
        .http
        .post(h.url("/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand"))
        .bearer_auth(token)
        .header("X-AnchorMailbox", ANCHOR)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn with_role(role: &str) -> tenant_sim::Scenario {
    let mut s = fixed_scenario();
    s.tenants[0].apps[0].directory_roles = vec![role.to_owned()];
    s
}

#[tokio::test]
async fn quarantined_messages_are_found_by_id_and_recipient_and_exported_as_mime_with_the_right_role() {
    let h = Harness::start(with_role("Security Administrator")).await;
    let graph = h.graph_token().await;
    let (alerts, _) = h.get_all("/v1.0/security/alerts_v2?$top=500", &graph, true).await;
    let q = alerts
        .iter()
        .flat_map(|a| a["evidence"].as_array().unwrap().iter())
        .find(|e| e["@odata.type"] == "#microsoft.graph.security.analyzedMessageEvidence" && e["deliveryLocation"] == "quarantine")
        .expect("a quarantined message")
        .clone();
    let token = h.token_for(EXO_SCOPE).await;
    let (id, to) = (q["internetMessageId"].as_str().unwrap(), q["recipientEmailAddress"].as_str().unwrap());
    let (status, found) = invoke(&h, &token, "Get-QuarantineMessage", json!({"MessageId": id, "RecipientAddress": [to]})).await;
    assert_eq!(status, 200, "{found}");
    let rows = found["value"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{found}");
    let identity = rows[0]["Identity"].as_str().unwrap();
    assert!(identity.contains('\\'));
    let (status, exported) = invoke(&h, &token, "Export-QuarantineMessage", json!({"Identity": identity})).await;
    assert_eq!(status, 200, "{exported}");
    assert_eq!(exported["value"][0]["BodyEncoding"], "Base64");
    let eml = base64::engine::general_purpose::STANDARD.decode(exported["value"][0]["Eml"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(eml).unwrap();
    assert!(text.contains(&format!("Message-ID: {id}")) && text.contains(&format!("To: <{to}>")), "{text}");
    // Not there: nothing found; an identity that matches nothing returns everything, as documented.
    let (_, none) = invoke(&h, &token, "Get-QuarantineMessage", json!({"MessageId": "<nope@x>", "RecipientAddress": [to]})).await;
    assert_eq!(none["value"].as_array().unwrap().len(), 0);
    let (_, all) = invoke(&h, &token, "Get-QuarantineMessage", json!({"Identity": "0\\0"})).await;
    assert!(all["value"].as_array().unwrap().len() > 1, "{all}");
    let (status, missing) = invoke(&h, &token, "Export-QuarantineMessage", json!({"Identity": "0\\0"})).await;
    assert_eq!(status, 400);
    assert!(missing["error"]["details"][0]["message"].as_str().unwrap().contains("couldn't be found"), "{missing}");
}

#[tokio::test]
async fn a_reader_role_finds_but_cannot_export() {
    let h = Harness::start(with_role("Security Reader")).await;
    let token = h.token_for(EXO_SCOPE).await;
    let (status, all) = invoke(&h, &token, "Get-QuarantineMessage", json!({"PageSize": 1000})).await;
    assert_eq!(status, 200);
    let identity = all["value"][0]["Identity"].as_str().expect("something in quarantine").to_owned();
    let (status, refused) = invoke(&h, &token, "Export-QuarantineMessage", json!({"Identity": identity})).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["details"][0]["message"].as_str().unwrap().contains("is not recognized"), "{refused}");
}

/// Exchange's cmdlet budget (`ExchangeMaxCmdlets` per `PowerShellMaxCmdletsTimePeriod`,
/// New-ThrottlingPolicy.md; 25 per 5 s, its published default): the 26th cmdlet of 5 s is 429
/// with `Retry-After`, and the window slides.
#[tokio::test]
async fn the_26th_cmdlet_within_five_seconds_is_429_with_retry_after() {
    let h = Harness::start(with_role("Security Administrator")).await;
    let token = h.token_for(EXO_SCOPE).await;
    // All 26 at once, so they arrive within the window however loaded the machine is (sent one
    // after another, a slow run spread them past 5 s and the window slid), each on a connection
    // opened before (26 TLS handshakes at once took longer than the window on a loaded machine).
    let mut warm = tokio::task::JoinSet::new();
    for _ in 0..26 {
        let (http, url) = (h.http.clone(), h.url("/not-a-cmdlet"));
        warm.spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) });
    }
    assert!(warm.join_all().await.iter().all(|s| *s > 0), "the simulator answers");
    let url = h.url("/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..26 {
        let (http, url, token) = (h.http.clone(), url.clone(), token.clone());
        set.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(&token)
                .header("X-AnchorMailbox", ANCHOR)
                .json(&json!({"CmdletInput": {"CmdletName": "Get-QuarantineMessage", "Parameters": {"PageSize": 1}}}))
                .send()
                .await
                .unwrap();
            let wait: Option<u64> = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
            (r.status().as_u16(), wait)
        });
    }
    let answers = set.join_all().await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 25, "{answers:?}");
    let refused: Vec<&(u16, Option<u64>)> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(refused.len(), 1, "{answers:?}");
    let wait = refused[0].1.unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    assert_eq!(invoke(&h, &token, "Get-QuarantineMessage", json!({"PageSize": 1})).await.0, 200, "the window slides");
}

/// A `multipart/form-data` upload of one library file.
async fn upload(h: &Harness, token: &str, name: &str, content: &[u8], override_if_exists: bool) -> (u16, Value) {
    let mut body = format!("--b\r\nContent-Disposition: form-data; name=\"File\"; filename=\"{name}\"\r\n\r\n").into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(
        format!("\r\n--b\r\nContent-Disposition: form-data; name=\"OverrideIfExists\"\r\n\r\n{override_if_exists}\r\n--b--\r\n").as_bytes(),
    );
    let r = h
        .http
        .post(h.url("/api/libraryfiles"))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn run_script(script: &str, args: &str, get: Option<&str>) -> Value {
    let mut commands =
        vec![json!({"type": "RunScript", "params": [{"key": "ScriptName", "value": script}, {"key": "Args", "value": args}]})];
    if let Some(path) = get {
        commands.push(json!({"type": "GetFile", "params": [{"key": "Path", "value": path}]}));
    }
    json!({"Commands": commands, "Comment": "m365-ingest evidence"})
}

/// Runs `body`'s commands on `machine`, lets the device take two minutes, and reads the action.
async fn run_on(h: &Harness, token: &str, machine: &str, body: Value) -> Value {
    let (status, action) = post(h, token, &format!("/api/machines/{machine}/runliveresponse"), &body).await;
    assert_eq!(status, 201, "{action}");
    h.sim.clock().advance_secs(120);
    h.get(&format!("/api/machineactions/{}", action["id"].as_str().unwrap()), token, false).await.2
}

#[tokio::test]
async fn a_library_script_restores_a_quarantined_file_for_getfile_and_cleans_it_up() {
    let h = Harness::start(fixed_scenario()).await;
    let (machine, file_path, sha256) = file_evidence(&h, true).await;
    let token = h.token_for(MDE_SCOPE).await;
    let script = b"# m365-ingest:restore-quarantined-file (version 1)\nparam([string]$Folder)\n";
    let (status, big) = upload(&h, &token, "big.ps1", &vec![b'x'; 20 * 1024 * 1024 + 1], true).await;
    assert_eq!(status, 400, "20 MB at most: {big}");
    let (status, file) = upload(&h, &token, "restore.ps1", script, false).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(file["fileName"], "restore.ps1");
    let want: String = sha2::Sha256::digest(script).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(file["sha256"].as_str(), Some(want.as_str()));
    assert_eq!(upload(&h, &token, "restore.ps1", script, false).await.0, 400, "exists, and no override asked");
    assert_eq!(upload(&h, &token, "restore.ps1", script, true).await.0, 200);
    let (_, _, list) = h.get("/api/libraryfiles", &token, false).await;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(1));
    let runs = |body: Value| run_on(&h, &token, &machine, body);
    // A script that is not in the library fails the action.
    let missing = runs(run_script("nope.ps1", "", None)).await;
    assert_eq!((missing["status"].as_str(), missing["errorHResult"].as_i64()), (Some("Failed"), Some(-2_147_024_894)), "{missing}");
    let job = "abc123abc123abc123abc123abc123ab";
    let folder = format!("C:\\Program Files\\m365-ingest\\restore\\{job}");
    let path = format!("{folder}\\{sha256}.enc");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let restore = |sha: &str| format!("-Job {job} -Sha256 {sha} -PathB64 {} -KeyB64 {}", b64(file_path.as_bytes()), b64(&[7u8; 48]));
    // "Live Response unsigned script execution" is off by default (live-response.md): the
    // unsigned script fails on the device with TRUST_E_NOSIGNATURE, and the GetFile after it never runs.
    let refused = runs(run_script("restore.ps1", &restore(&sha256), Some(&path))).await;
    assert_eq!((refused["status"].as_str(), refused["errorHResult"].as_i64()), (Some("Failed"), Some(-2_146_762_496)), "{refused}");
    assert_eq!(
        (refused["commands"][0]["commandStatus"].as_str(), refused["commands"][1]["commandStatus"].as_str()),
        (Some("Failed"), Some("Created")),
        "{refused}"
    );
    assert!(h.sim.restored_files(TENANT).is_empty());
    let mut spec = h.sim.mde_spec();
    spec.unsigned_scripts = true;
    h.sim.set_mde_spec(spec);
    let restored = runs(run_script("restore.ps1", &restore(&sha256), Some(&path))).await;
    assert_eq!(restored["status"], "Succeeded", "{restored}");
    assert_eq!(h.sim.restored_files(TENANT), vec![(machine.to_ascii_lowercase(), path.to_lowercase())]);
    let (status, _, link) = h
        .get(&format!("/api/machineactions/{}/GetLiveResponseResultDownloadLink(index=1)", restored["id"].as_str().unwrap()), &token, false)
        .await;
    assert_eq!(status, 200, "GetFile is the second command: {link}");
    let cleaned = runs(run_script("restore.ps1", &format!("-Job {job} -Cleanup"), None)).await;
    assert_eq!(cleaned["status"], "Succeeded", "{cleaned}");
    assert!(h.sim.restored_files(TENANT).is_empty(), "the cleanup removed it");
    // A hash the quarantine does not hold: nothing restored, GetFile fails.
    let other = "0".repeat(64);
    let none = runs(run_script("restore.ps1", &restore(&other), Some(&format!("{folder}\\{other}.enc")))).await;
    assert_eq!(none["status"], "Failed", "{none}");
    // A waiting action is cancelled; an ended one cannot be.
    h.sim.set_machine_online(TENANT, &machine, false);
    let (_, waiting) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    let id = waiting["id"].as_str().unwrap();
    let (status, c) = post(&h, &token, &format!("/api/machineactions/{id}/cancel"), &json!({"Comment": "no longer needed"})).await;
    assert_eq!((status, c["status"].as_str()), (200, Some("Cancelled")), "{c}");
    h.sim.set_machine_online(TENANT, &machine, true);
    h.sim.clock().advance_secs(300);
    assert_eq!(h.get(&format!("/api/machineactions/{id}"), &token, false).await.2["status"], "Cancelled", "never runs");
    let (status, _) = post(&h, &token, &format!("/api/machineactions/{id}/cancel"), &json!({"Comment": "again"})).await;
    assert_eq!(status, 400);
}

/// Version 2 of m365-ingest's restore script: by the quarantined file's path, into the job's own
/// folder, the copy left encrypted under the job's key; a wrong hash, a path not in quarantine
/// and a malformed job name restore nothing.
#[tokio::test]
async fn the_restore_script_version_2_leaves_only_an_encrypted_copy_in_the_jobs_folder() {
    use aes::cipher::{generic_array::GenericArray, BlockDecrypt, KeyInit};
    let h = Harness::start(fixed_scenario()).await;
    let (machine, path, sha256) = file_evidence(&h, true).await;
    let token = h.token_for(MDE_SCOPE).await;
    let mut spec = h.sim.mde_spec();
    spec.unsigned_scripts = true;
    h.sim.set_mde_spec(spec);
    let script = b"# m365-ingest:restore-quarantined-file (version 2)\nparam([string]$Job)\n";
    assert_eq!(upload(&h, &token, "restore-v2.ps1", script, false).await.0, 200);
    let runs = |body: Value| run_on(&h, &token, &machine, body);
    let job = "0123456789abcdef0123456789abcdef";
    let key: Vec<u8> = (0u8..48).collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let args = |sha: &str, p: &str| format!("-Job {job} -Sha256 {sha} -PathB64 {} -KeyB64 {}", b64(p.as_bytes()), b64(&key));
    let copy = format!("C:\\Program Files\\m365-ingest\\restore\\{job}\\{sha256}.enc");
    for (args, why) in [
        (args(&"0".repeat(64), &path), "not the file's hash"),
        (args(&sha256, "C:\\nowhere\\x.exe"), "no quarantined item from that path"),
        (format!("-Job ..\\x -Sha256 {sha256} -PathB64 {} -KeyB64 {}", b64(path.as_bytes()), b64(&key)), "a job name is 32 hex digits"),
        (format!("-Folder C:\\ProgramData\\m365-ingest\\restore\\x -Sha256 {sha256} -PathB64 QQ=="), "version 1's restore is retired"),
    ] {
        let r = runs(run_script("restore-v2.ps1", &args, Some(&copy))).await;
        assert_eq!(r["status"], "Failed", "{why}: {r}");
        assert!(h.sim.restored_files(TENANT).is_empty(), "{why}");
    }
    let restored = runs(run_script("restore-v2.ps1", &args(&sha256, &path), Some(&copy))).await;
    assert_eq!(restored["status"], "Succeeded", "{restored}");
    assert_eq!(h.sim.restored_files(TENANT), vec![(machine.to_ascii_lowercase(), copy.to_lowercase())], "only the encrypted copy");
    let sealed = h.sim.restored_file(TENANT, &machine, &copy).unwrap();
    let cipher = aes::Aes256::new(GenericArray::from_slice(&key[..32]));
    let mut prev = key[32..].to_vec();
    let mut plain = Vec::new();
    for block in sealed.chunks(16) {
        let mut b = GenericArray::clone_from_slice(block);
        cipher.decrypt_block(&mut b);
        plain.extend(b.iter().zip(&prev).map(|(x, p)| x ^ p));
        prev = block.to_vec();
    }
    let pad = usize::from(*plain.last().unwrap());
    plain.truncate(plain.len() - pad);
    let got: String = sha2::Sha256::digest(&plain).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, sha256.to_ascii_lowercase(), "the file, under AES-256-CBC with the job's key");
    let cleaned = runs(run_script("restore-v2.ps1", &format!("-Job {job} -Cleanup"), None)).await;
    assert_eq!(cleaned["status"], "Succeeded", "{cleaned}");
    assert!(h.sim.restored_files(TENANT).is_empty(), "the cleanup removed the job's folder");
}

/// get-live-response-result.md (ms.date 2025-11-13) lists only Machine.ReadWrite.All for
/// applications: an app set up by the older page (Machine.Read.All) runs the action and reads
/// it, and cannot download its result.
#[tokio::test]
async fn a_result_link_needs_machine_readwrite_all() {
    let mut s = fixed_scenario();
    s.tenants[0].apps[0].grants.insert("mde".into(), vec!["Machine.LiveResponse".into(), "Machine.Read.All".into()]);
    let h = Harness::start(s).await;
    let (machine, path, _) = file_on_a_device(&h).await;
    let token = h.token_for(MDE_SCOPE).await;
    let (status, action) = post(&h, &token, &format!("/api/machines/{machine}/runliveresponse"), &get_file(&path)).await;
    assert_eq!(status, 201, "{action}");
    let id = action["id"].as_str().unwrap().to_owned();
    h.sim.clock().advance_secs(60);
    assert_eq!(h.get(&format!("/api/machineactions/{id}"), &token, false).await.2["status"], "Succeeded");
    let (status, _, body) = h.get(&format!("/api/machineactions/{id}/GetLiveResponseResultDownloadLink(index=0)"), &token, false).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("Forbidden")), "{body}");
}

/// Live response is refused on a Windows Server device while "Live response for servers" is off
/// (advanced-features.md), and on a device whose group has no automation level
/// (run-live-response.md), each with its own answer; other devices are served.
#[tokio::test]
async fn servers_and_groups_without_an_automation_level_are_refused_by_their_own_setting() {
    let mut s = fixed_scenario();
    s.mde.live_response_servers = false;
    let h = Harness::start(s).await;
    let devices = h.sim.devices(TENANT);
    let server = devices.iter().find(|d| d.1.starts_with("WindowsServer")).expect("a server in the pool");
    let workstation = devices.iter().find(|d| d.1.starts_with("Windows1")).expect("a workstation in the pool");
    let token = h.token_for(MDE_SCOPE).await;
    let run = |machine: &str| format!("/api/machines/{machine}/runliveresponse");
    let (status, body) = post(&h, &token, &run(&server.0), &get_file("C:\\Windows\\notepad.exe")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("DisabledFeature")), "{body}");
    let (status, body) = post(&h, &token, &run(&workstation.0), &get_file("C:\\Windows\\notepad.exe")).await;
    assert_eq!(status, 201, "{body}");

    let mut spec = h.sim.mde_spec();
    spec.no_automation_groups = vec![workstation.2.clone()];
    h.sim.set_mde_spec(spec);
    let other = devices.iter().find(|d| d.1.starts_with("Windows1") && d.2 != workstation.2 && d.0 != workstation.0);
    let (status, body) = post(&h, &token, &run(&workstation.0), &get_file("C:\\Windows\\notepad.exe")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("DisallowedOperation")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("automation level"), "{body}");
    let other = other.expect("a workstation in another group");
    assert_eq!(post(&h, &token, &run(&other.0), &get_file("C:\\Windows\\notepad.exe")).await.0, 201);
}
