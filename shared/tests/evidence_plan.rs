//! The evidence the processor would retrieve for the simulator's alerts (issue 13's first
//! step): files on the devices the alerts name, emails that reached a mailbox or quarantine by
//! Message-ID and recipient, each item once, and a job key per alert version and item.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;

use m365_ingest::domain::evidence::plan::{job_key, plan, EmailLocation, EvidenceTarget, MAX_TARGETS};
use m365_ingest::domain::graph_alert::GraphAlert;
use support::*;
use tenant_sim::{Scenario, Simulator};

#[tokio::test]
async fn the_simulators_alerts_name_files_on_their_devices_and_quarantined_messages() {
    let mut s = Scenario::default();
    s.tenants[0].alerts.count = 300;
    let sim = Simulator::start(fixed(s)).await.unwrap();
    let alerts = fetch_alerts(&sim).await;
    let (mut files, mut av, mut emails, mut delivered) = (0, 0, 0, 0);
    for raw in &alerts {
        let a: GraphAlert = serde_json::from_value(raw.clone()).unwrap();
        let targets = plan(&a, None);
        assert!(targets.len() <= MAX_TARGETS);
        let keys: BTreeSet<String> = targets.iter().map(|t| job_key(&format!("defender_alerts/t/{}/v", a.id), t)).collect();
        assert_eq!(keys.len(), targets.len(), "one job per item");
        let devices: BTreeSet<String> =
            raw["evidence"].as_array().unwrap().iter().filter_map(|e| e["mdeDeviceId"].as_str().map(str::to_owned)).collect();
        for t in &targets {
            match t {
                EvidenceTarget::File { device_id, quarantined_by_antivirus, .. } => {
                    assert!(devices.contains(device_id), "a device the alert names: {device_id}");
                    files += 1;
                    av += usize::from(*quarantined_by_antivirus);
                }
                EvidenceTarget::Email { internet_message_id, recipient, location } => {
                    let said = raw["evidence"].as_array().unwrap().iter().find(|e| {
                        e["internetMessageId"].as_str() == Some(internet_message_id)
                            && e["recipientEmailAddress"].as_str() == Some(recipient)
                    });
                    let said = said.and_then(|e| e["deliveryLocation"].as_str()).unwrap_or_default();
                    let expected = match said {
                        "quarantine" => EmailLocation::Quarantine,
                        "inbox" | "junkFolder" | "deletedFolder" => EmailLocation::Mailbox,
                        other => panic!("{internet_message_id} went to {other:?}: not a place to fetch it from"),
                    };
                    assert_eq!(*location, expected, "{internet_message_id} is looked for where the alert says it went");
                    emails += 1;
                    delivered += usize::from(*location == EmailLocation::Mailbox);
                }
            }
        }
    }
    assert!(
        files > 10 && av > 0 && av < files && emails > 5 && delivered > 0 && delivered < emails,
        "files {files} (antivirus {av}), emails {emails} (delivered {delivered})"
    );
}
