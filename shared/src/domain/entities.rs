//! What an alert names (users, devices, files, processes, mailboxes, messages, IPs, URLs), one
//! entry each, read from its evidence: what the output contract lists and context looks up.

use serde::{Deserialize, Serialize};

use super::graph_alert::{FileDetails, GraphAlert};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entities {
    pub users: Vec<User>,
    pub devices: Vec<Device>,
    pub files: Vec<File>,
    pub processes: Vec<Process>,
    pub mailboxes: Vec<String>,
    pub messages: Vec<Message>,
    pub ips: Vec<String>,
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub upn: Option<String>,
    pub account_name: Option<String>,
    pub domain: Option<String>,
    pub sid: Option<String>,
    pub aad_user_id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    pub mde_device_id: Option<String>,
    pub aad_device_id: Option<String>,
    pub dns_name: Option<String>,
    pub os_platform: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct File {
    pub name: Option<String>,
    pub path: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<i64>,
    /// The device the file was seen on (MDE machine id): where live response can fetch it.
    pub mde_device_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Process {
    pub image: Option<String>,
    pub command_line: Option<String>,
    pub parent_image: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub network_message_id: Option<String>,
    pub internet_message_id: Option<String>,
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub delivery_location: Option<String>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn file(f: &FileDetails, device: Option<&String>) -> File {
    File {
        name: f.file_name.clone(),
        path: f.file_path.clone(),
        sha1: f.sha1.clone(),
        sha256: f.sha256.clone(),
        size: f.file_size,
        mde_device_id: device.cloned(),
    }
}

/// The entities of an alert, one entry each, in evidence order.
pub fn entities(a: &GraphAlert) -> Entities {
    let mut out = Entities::default();
    for e in &a.evidence {
        if let Some(u) = &e.user_account {
            let user = User {
                upn: u.user_principal_name.clone(),
                account_name: u.account_name.clone(),
                domain: u.domain_name.clone(),
                sid: u.user_sid.clone(),
                aad_user_id: u.azure_ad_user_id.clone(),
                display_name: u.display_name.clone(),
            };
            if e.kind() == "userEvidence" || e.kind() == "processEvidence" {
                push_unique(&mut out.users, user);
            }
        }
        match e.kind() {
            "deviceEvidence" => push_unique(
                &mut out.devices,
                Device {
                    mde_device_id: e.mde_device_id.clone(),
                    aad_device_id: e.azure_ad_device_id.clone(),
                    dns_name: e.device_dns_name.clone(),
                    os_platform: e.os_platform.clone(),
                },
            ),
            "fileEvidence" => {
                if let Some(f) = &e.file_details {
                    push_unique(&mut out.files, file(f, e.mde_device_id.as_ref()));
                }
            }
            "processEvidence" => {
                if let Some(f) = &e.image_file {
                    push_unique(&mut out.files, file(f, e.mde_device_id.as_ref()));
                }
                push_unique(
                    &mut out.processes,
                    Process {
                        image: e.image_file.as_ref().and_then(|f| f.file_name.clone()),
                        command_line: e.process_command_line.clone(),
                        parent_image: e.parent_process_image_file.as_ref().and_then(|f| f.file_name.clone()),
                    },
                );
            }
            "mailboxEvidence" => {
                if let Some(m) = e.primary_address.clone().or_else(|| e.upn.clone()) {
                    push_unique(&mut out.mailboxes, m);
                }
            }
            "analyzedMessageEvidence" => push_unique(
                &mut out.messages,
                Message {
                    network_message_id: e.network_message_id.clone(),
                    internet_message_id: e.internet_message_id.clone(),
                    subject: e.subject.clone(),
                    sender: e.p1_sender.as_ref().and_then(|s| s.email_address.clone()),
                    recipient: e.recipient_email_address.clone(),
                    delivery_location: e.delivery_location.clone(),
                },
            ),
            "ipEvidence" => {
                if let Some(ip) = e.ip_address.clone() {
                    push_unique(&mut out.ips, ip);
                }
            }
            "urlEvidence" => {
                if let Some(u) = e.url.clone() {
                    push_unique(&mut out.urls, u);
                }
            }
            _ => {}
        }
    }
    out
}
