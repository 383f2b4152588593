//! Alert templates: what each Microsoft product's alerts look like, with the
//! evidence types that product attaches.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::evidence::{self as ev, MessageArgs, ProcessArgs};
use super::pool::{File, Pool};
use crate::ids::{self, pick, pick_str, SimRng};
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    MdeAntivirus,
    MdeEdr,
    Mdo,
    /// An MDO campaign alert carrying hundreds of message evidence items.
    MdoCampaign,
    Mdi,
    CloudApps,
    IdentityProtection,
    Dlp,
    /// Alerts raised by Prelude Security's test probes (see `prelude` below).
    PreludeTest,
    AppGovernance,
    Sentinel,
    DefenderForCloud,
    InsiderRisk,
    XdrCorrelation,
}

/// Default mix, roughly what a mid-size E5 tenant sees.
pub const DEFAULT_MIX: &[(AlertKind, u32)] = &[
    (AlertKind::MdeAntivirus, 18),
    (AlertKind::MdeEdr, 17),
    (AlertKind::Mdo, 16),
    (AlertKind::MdoCampaign, 2),
    (AlertKind::Mdi, 6),
    (AlertKind::CloudApps, 6),
    (AlertKind::IdentityProtection, 8),
    (AlertKind::Dlp, 10),
    (AlertKind::PreludeTest, 4),
    (AlertKind::AppGovernance, 2),
    (AlertKind::Sentinel, 4),
    (AlertKind::DefenderForCloud, 3),
    (AlertKind::InsiderRisk, 2),
    (AlertKind::XdrCorrelation, 2),
];

/// The fields fixed when an alert is first raised (they drive filters).
pub struct Identity {
    pub id: String,
    pub service_source: &'static str,
    pub detection_source: &'static str,
    pub severity: &'static str,
}

impl AlertKind {
    pub fn identity(self, rng: &mut SimRng, created: Instant) -> Identity {
        use AlertKind::*;
        let (service_source, detection_source, prefix): (&str, &str, &str) = match self {
            MdeAntivirus | PreludeTest => ("microsoftDefenderForEndpoint", "antivirus", "da"),
            MdeEdr => (
                "microsoftDefenderForEndpoint",
                *pick(
                    rng,
                    &[
                        "microsoftDefenderForEndpoint",
                        "customDetection",
                        "customTi",
                        "automatedInvestigation",
                        "smartScreen",
                        "microsoftThreatExperts",
                    ],
                ),
                "da",
            ),
            Mdo | MdoCampaign => ("microsoftDefenderForOffice365", "microsoftDefenderForOffice365", "fa"),
            Mdi => ("microsoftDefenderForIdentity", "microsoftDefenderForIdentity", "aa"),
            CloudApps => ("microsoftDefenderForCloudApps", "cloudAppSecurity", "ca"),
            IdentityProtection => ("azureAdIdentityProtection", "azureAdIdentityProtection", "ad"),
            Dlp => ("dataLossPrevention", "microsoftDataLossPrevention", "dl"),
            AppGovernance => ("microsoftAppGovernance", pick_str(rng, &["appGovernancePolicy", "appGovernanceDetection"]), "ga"),
            Sentinel => ("microsoftSentinel", pick_str(rng, &["scheduledAlerts", "nrtAlerts", "builtInMl"]), "sn"),
            DefenderForCloud => (
                "microsoftDefenderForCloud",
                *pick(
                    rng,
                    &[
                        "microsoftDefenderForServers",
                        "microsoftDefenderForStorage",
                        "microsoftDefenderForKeyVault",
                        "microsoftDefenderForDNS",
                        "microsoftDefenderForContainers",
                        "microsoftDefenderForDatabases",
                    ],
                ),
                "dc",
            ),
            InsiderRisk => ("microsoftInsiderRiskManagement", "microsoftInsiderRiskManagement", "ir"),
            XdrCorrelation => ("microsoft365Defender", "microsoft365Defender", "ra"),
        };
        let severity = match self {
            PreludeTest => "informational",
            Dlp => pick_str(rng, &["low", "medium", "high"]),
            _ => pick_str(rng, &["informational", "low", "low", "medium", "medium", "high"]),
        };
        let id = if prefix == "da" {
            // MDE ids are ticks-based: "da637551227677560813_-961444813".
            let ticks = created.0 + 621_355_968_000_000_000;
            format!("da{ticks}_{}", rng.gen_range(-2_000_000_000i64..2_000_000_000))
        } else {
            format!("{prefix}{}", ids::guid(rng).replace('-', ""))
        };
        Identity { id, service_source, detection_source, severity }
    }
}

/// Everything about an alert that does not change between its versions.
pub struct Body {
    pub title: String,
    pub description: String,
    pub recommended_actions: String,
    pub category: &'static str,
    pub mitre: Vec<&'static str>,
    pub detector_id: String,
    pub threat_display_name: Option<String>,
    pub threat_family_name: Option<String>,
    pub actor_display_name: Option<String>,
    pub product_name: &'static str,
    pub alert_policy_id: Option<String>,
    pub additional_data: Value,
    pub evidence: Vec<Value>,
    pub system_tags: Vec<&'static str>,
}

fn body(title: impl Into<String>, category: &'static str, mitre: &[&'static str], product: &'static str, rng: &mut SimRng) -> Body {
    let title = title.into();
    Body {
        description: format!("{title}. Review the evidence attached to this alert and the related activity on the affected entities."),
        recommended_actions: "Investigate the entities in this alert.\n\u{2022}\tReview the timeline of the affected device or account.\n\u{2022}\tContain and remediate if the activity is confirmed malicious.".into(),
        title,
        category,
        mitre: mitre.to_vec(),
        detector_id: ids::guid(rng),
        threat_display_name: None,
        threat_family_name: None,
        actor_display_name: None,
        product_name: product,
        alert_policy_id: None,
        additional_data: json!({}),
        evidence: Vec::new(),
        system_tags: Vec::new(),
    }
}

/// Builds the static body of an alert of this kind.
pub fn build(kind: AlertKind, rng: &mut SimRng, pool: &Pool, at: Instant, big_evidence: bool) -> Body {
    use AlertKind::*;
    let nb = pool.net_bios.as_str();
    let user = ev::any_user(pool, rng).clone();
    let device = pick(rng, &pool.devices).clone();
    let ext_ip = pick(rng, &pool.external_ips).clone();
    match kind {
        MdeAntivirus => {
            let f = pick(rng, &pool.files).clone();
            let threat = (*pick(
                rng,
                &["HackTool:Win32/Mimikatz", "Trojan:Win32/Wacatac.B!ml", "Virus:DOS/EICAR_Test_File", "Ransom:Win32/LockBit.AA"],
            ))
            .to_string();
            let mut b = body(
                format!("'{}' malware was prevented", threat.split(['/', ':']).nth(1).unwrap_or("Unknown")),
                "Malware",
                &["T1204.002"],
                "Microsoft Defender for Endpoint",
                rng,
            );
            b.threat_display_name = Some(threat.clone());
            b.threat_family_name = threat.split('/').nth(1).map(|s| s.split('.').next().unwrap_or(s).to_owned());
            let remediation = pick_str(rng, &["prevented", "remediated", "blocked"]);
            let explorer = system_file("explorer.exe", "C:\\Windows", rng);
            b.evidence.push(ev::device(at, &device, &[&user], nb, rng));
            b.evidence.push(ev::file(at, &f, &device.mde_id, "prevented", remediation));
            b.evidence.push(ev::process(
                at,
                &ProcessArgs {
                    image: &f,
                    parent: &explorer,
                    command_line: format!("\"{}\"", f.name),
                    user: &user,
                    mde_device: &device.mde_id,
                    detection: "prevented",
                },
                nb,
                rng,
            ));
            b.evidence.push(ev::user(at, &user, nb, &["contextual"]));
            if big_evidence {
                for _ in 0..rng.gen_range(150..400) {
                    let mut copy = pick(rng, &pool.files).clone();
                    copy.path = format!("C:\\Users\\{}\\AppData\\Local\\Temp\\{}", user.account_name, ids::hex(rng, 4));
                    b.evidence.push(ev::file(at, &copy, &device.mde_id, "prevented", "remediated"));
                }
            }
            b
        }
        MdeEdr => {
            let f = pick(rng, &pool.files).clone();
            let (title, cat, mitre) = *pick(
                rng,
                &[
                    ("Suspicious PowerShell command line", "Execution", &["T1059.001"][..]),
                    ("Suspicious execution of hidden file", "DefenseEvasion", &["T1564.001"][..]),
                    ("Possible credential dumping from LSASS", "CredentialAccess", &["T1003.001"][..]),
                    ("Suspicious scheduled task created", "Persistence", &["T1053.005"][..]),
                    ("Anomalous network connection to rare external host", "CommandAndControl", &["T1071.001"][..]),
                ],
            );
            let mut b = body(title, cat, mitre, "Microsoft Defender for Endpoint", rng);
            let ps = system_file("powershell.exe", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0", rng);
            let cmd = system_file("cmd.exe", "C:\\Windows\\System32", rng);
            let key = "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
            b.evidence.push(ev::device(at, &device, &[&user], nb, rng));
            b.evidence.push(ev::process(
                at,
                &ProcessArgs {
                    image: &ps,
                    parent: &cmd,
                    command_line: format!("powershell.exe -nop -w hidden -enc {}", ids::hex(rng, 24)),
                    user: &user,
                    mde_device: &device.mde_id,
                    detection: "detected",
                },
                nb,
                rng,
            ));
            b.evidence.push(ev::file(at, &f, &device.mde_id, "detected", "none"));
            b.evidence.push(ev::registry_key(at, key, "HKEY_CURRENT_USER"));
            b.evidence.push(ev::registry_value(
                at,
                key,
                "HKEY_CURRENT_USER",
                "Updater",
                &format!("{}\\{}", f.path, f.name),
                &device.mde_id,
            ));
            b.evidence.push(ev::ip(at, &ext_ip, "NL", "Amsterdam", &["destination"]));
            b.evidence.push(ev::url(at, pick(rng, &pool.urls).as_str()));
            b.evidence.push(ev::user(at, &user, nb, &["compromised"]));
            b
        }
        Mdo | MdoCampaign => {
            let (title, threat) = *pick(
                rng,
                &[
                    ("Email messages containing malicious URL removed after delivery", "Phish"),
                    ("Email messages containing malware removed after delivery", "Malware"),
                    ("A potentially malicious URL click was detected", "Phish"),
                    ("Email reported by user as malware or phish", "Phish"),
                ],
            );
            let mut b = body(title, "InitialAccess", &["T1566.001", "T1566.002"], "Microsoft Defender for Office 365", rng);
            let domain = pick(rng, &pool.sender_domains).clone();
            let sender = format!("{}@{domain}", pick_str(rng, &["billing", "no-reply", "it-support", "ceo.office"]));
            let u = pick(rng, &pool.urls).clone();
            let subject = *pick(
                rng,
                &[
                    "Action required: invoice overdue",
                    "Your mailbox is almost full",
                    "Shared document: Q3 bonus plan",
                    "DHL: parcel on hold",
                ],
            );
            let n = if kind == MdoCampaign || big_evidence { rng.gen_range(120..400) } else { 1 };
            b.evidence.push(ev::mailbox(at, &user, nb));
            let mut nmids = Vec::new();
            for i in 0..n {
                let rcpt = if i == 0 { user.clone() } else { ev::any_user(pool, rng).clone() };
                let location = pick_str(rng, &["quarantine", "quarantine", "inbox", "junkFolder", "deletedFolder"]);
                let action = match location {
                    "quarantine" => "blocked",
                    "junkFolder" => "junked",
                    _ => "delivered",
                };
                let m = ev::analyzed_message(
                    at,
                    &MessageArgs {
                        recipient: &rcpt,
                        sender: sender.clone(),
                        sender_domain: &domain,
                        sender_ip: &ext_ip,
                        subject,
                        url: Some(&u),
                        threat,
                        delivery_action: action,
                        delivery_location: location,
                    },
                    rng,
                );
                if let Some(id) = m.get("networkMessageId").and_then(Value::as_str) {
                    nmids.push(id.to_owned());
                }
                // A lone phish delivered to the inbox is what users report (the alert
                // "Email reported by user as malware or phish" carries the report).
                let reported = (n == 1 && location == "inbox").then(|| ev::submission_mail(at, &m, &rcpt));
                b.evidence.push(m);
                b.evidence.extend(reported);
            }
            if n > 1 {
                b.evidence.push(ev::mail_cluster(at, "Sender", &sender, &nmids, rng));
            }
            b.evidence.push(ev::url(at, &u));
            b.evidence.push(ev::ip(at, &ext_ip, "RU", "Moscow", &["source"]));
            b.evidence.push(ev::user(at, &user, nb, &["destination"]));
            b
        }
        Mdi => {
            let (title, cat, mitre) = *pick(
                rng,
                &[
                    ("Suspected DCSync attack (replication of directory services)", "CredentialAccess", &["T1003.006"][..]),
                    ("Suspected Kerberos SPN exposure", "CredentialAccess", &["T1558.003"][..]),
                    ("Account enumeration reconnaissance", "Discovery", &["T1087.002"][..]),
                ],
            );
            let mut b = body(title, cat, mitre, "Microsoft Defender for Identity", rng);
            b.evidence.push(ev::user(at, &user, nb, &["attacker"]));
            b.evidence.push(ev::device(at, &device, &[&user], nb, rng));
            b.evidence.push(ev::ip(at, &device.ip, "US", "Seattle", &["source"]));
            b
        }
        CloudApps => {
            let mut b = body(
                pick_str(rng, &["Impossible travel activity", "Mass download by a single user", "Suspicious inbox forwarding"]),
                "InitialAccess",
                &["T1078"],
                "Microsoft Defender for Cloud Apps",
                rng,
            );
            let (c1, city1) = ev::country(rng);
            let (c2, city2) = ev::country(rng);
            b.evidence.push(ev::user(at, &user, nb, &["compromised"]));
            b.evidence.push(ev::ip(at, &ext_ip, c1, city1, &[]));
            b.evidence.push(ev::ip(at, pick(rng, &pool.external_ips).as_str(), c2, city2, &[]));
            b.evidence.push(ev::cloud_application(at, 11161, "Microsoft Exchange Online", 0));
            b
        }
        IdentityProtection => {
            let mut b = body(
                pick_str(rng, &["Unfamiliar sign-in properties", "Anonymous IP address", "Atypical travel", "Leaked credentials"]),
                "InitialAccess",
                &["T1078.004"],
                "Microsoft Entra ID Protection",
                rng,
            );
            let (c, city) = ev::country(rng);
            b.evidence.push(ev::user(at, &user, nb, &["compromised"]));
            b.evidence.push(ev::ip(at, &ext_ip, c, city, &[]));
            b
        }
        Dlp => dlp(rng, pool, at, &user),
        PreludeTest => prelude(rng, at, &device, &user, nb),
        AppGovernance => {
            let mut b =
                body("App with suspicious OAuth scope made numerous Graph calls", "Collection", &["T1114.002"], "App governance", rng);
            b.evidence.push(ev::oauth_application(at, rng));
            b.evidence.push(ev::user(at, &user, nb, &["contextual"]));
            b
        }
        Sentinel => {
            let mut b = body("Suspicious sign-in activity detected", "CredentialAccess", &["T1110"], "Microsoft Sentinel", rng);
            b.evidence.push(ev::user(at, &user, nb, &["compromised"]));
            b.evidence.push(ev::ip(at, &ext_ip, "BR", "Sao Paulo", &[]));
            b
        }
        DefenderForCloud => {
            let mut b =
                body("Suspicious process executed on a virtual machine", "Execution", &["T1059"], "Microsoft Defender for Cloud", rng);
            b.evidence.push(ev::device(at, &device, &[], nb, rng));
            b.evidence.push(ev::ip(at, &ext_ip, "SG", "Singapore", &["source"]));
            b
        }
        InsiderRisk => {
            let mut b = body("Data theft by departing user", "Exfiltration", &["T1567"], "Microsoft Purview Insider Risk Management", rng);
            b.evidence.push(ev::user(at, &user, nb, &["policyViolator"]));
            b
        }
        XdrCorrelation => {
            let mut b = body(
                "Multi-stage incident involving initial access and lateral movement",
                "LateralMovement",
                &["T1021.002", "T1078"],
                "Microsoft Defender XDR",
                rng,
            );
            b.evidence.push(ev::user(at, &user, nb, &["compromised"]));
            b.evidence.push(ev::device(at, &device, &[&user], nb, rng));
            b.evidence.push(ev::ip(at, &ext_ip, "DE", "Frankfurt", &["attacker"]));
            b.evidence.push(ev::url(at, pick(rng, &pool.urls).as_str()));
            b
        }
    }
}

fn system_file(name: &str, path: &str, rng: &mut SimRng) -> File {
    let f = File::sample(name.to_owned(), path.to_owned(), rng, |r| r.gen_range(50_000..700_000));
    File { publisher: Some("Microsoft Corporation"), ..f }
}

/// Purview DLP alert, in documented shapes only: alerts_v2 documents no
/// enforcement-mode field (ms-apis.md §12) and nothing Microsoft publishes says
/// one reaches `additionalData`, so the simulator's DLP alerts carry none (the
/// product keeps, notes and counts a DLP alert whose mode it cannot read).
fn dlp(rng: &mut SimRng, pool: &Pool, at: Instant, user: &super::pool::User) -> Body {
    let nb = pool.net_bios.as_str();
    let (policy, workload) = *pick(
        rng,
        &[
            ("U.S. Financial Data", "Exchange"),
            ("GDPR Enhanced", "SharePoint"),
            ("Source code", "Endpoint"),
            ("Credit Card Numbers", "Teams"),
        ],
    );
    let mut b = body(
        format!("DLP policy ({policy}) matched for content in {workload}"),
        "Exfiltration",
        &[],
        "Microsoft Data Loss Prevention",
        rng,
    );
    // security-alert.md: `alertPolicyId`, the policy that raised it.
    b.alert_policy_id = Some(ids::guid(rng));
    b.evidence.push(ev::user(at, user, nb, &["policyViolator"]));
    if workload == "Exchange" {
        b.evidence.push(ev::mailbox(at, user, nb));
    } else {
        let f = pick(rng, &pool.files).clone();
        b.evidence.push(ev::file(at, &f, "", "detected", "none"));
    }
    b
}

/// Prelude Security "Verified Security Tests" run by Prelude's probe from its
/// `.vst` working directory, one binary per test named by the test's UUID
/// (docs.preludesecurity.com: probes, tests). The simulated alert shows that
/// trail: the VST binary in a `.vst` folder, started by the probe service.
fn prelude(rng: &mut SimRng, at: Instant, device: &super::pool::Device, user: &super::pool::User, nb: &str) -> Body {
    let test_id = ids::guid(rng);
    let mut b = body(
        format!("'Prelude' test file detected ({})", &test_id[..8]),
        "Malware",
        &["T1204.002"],
        "Microsoft Defender for Endpoint",
        rng,
    );
    b.threat_display_name =
        Some((pick_str(rng, &["Virus:DOS/EICAR_Test_File", "Trojan:Win32/Ceprolad.A", "HackTool:Win32/Mimikatz.D"])).to_string());
    let vst = File::sample(format!("{test_id}.exe"), "C:\\ProgramData\\Prelude\\.vst".into(), rng, |r| r.gen_range(200_000..2_000_000));
    let probe = File::sample("prelude-probe.exe".into(), "C:\\Program Files\\Prelude".into(), rng, |_| 1_900);
    let probe = File { publisher: Some("Prelude Research, Inc."), ..probe };
    b.evidence.push(ev::device(at, device, &[user], nb, rng));
    b.evidence.push(ev::file(at, &vst, &device.mde_id, "prevented", "prevented"));
    b.evidence.push(ev::process(
        at,
        &ProcessArgs {
            image: &vst,
            parent: &probe,
            command_line: format!("\"C:\\ProgramData\\Prelude\\.vst\\{}\"", vst.name),
            user,
            mde_device: &device.mde_id,
            detection: "prevented",
        },
        nb,
        rng,
    ));
    b
}
