//! The devices and files of an alert as Defender for Endpoint profiles them: a machine by its
//! id, a file by its hash.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{flag, strings, text};

/// A Defender for Endpoint machine (get-machine-by-id.md's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceContext {
    pub id: String,
    pub dns_name: Option<String>,
    pub os_platform: Option<String>,
    pub os_build: Option<i64>,
    pub health_status: Option<String>,
    pub risk_score: Option<String>,
    pub exposure_level: Option<String>,
    pub device_value: Option<String>,
    pub onboarding_status: Option<String>,
    pub last_seen: Option<String>,
    pub last_ip_address: Option<String>,
    pub rbac_group: Option<String>,
    pub tags: Vec<String>,
    pub aad_device_id: Option<String>,
}

pub fn device_of(id: &str, v: &Value) -> DeviceContext {
    DeviceContext {
        id: id.to_owned(),
        dns_name: text(v, "/computerDnsName"),
        os_platform: text(v, "/osPlatform"),
        os_build: v.get("osBuild").and_then(Value::as_i64),
        health_status: text(v, "/healthStatus"),
        risk_score: text(v, "/riskScore"),
        exposure_level: text(v, "/exposureLevel"),
        device_value: text(v, "/deviceValue"),
        onboarding_status: text(v, "/onboardingStatus"),
        last_seen: text(v, "/lastSeen"),
        last_ip_address: text(v, "/lastIpAddress"),
        rbac_group: text(v, "/rbacGroupName"),
        tags: strings(v, "/machineTags", 20),
        aad_device_id: text(v, "/aadDeviceId"),
    }
}

/// A Defender for Endpoint file profile (get-file-information.md's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContext {
    /// The hash it was looked up by.
    pub hash: String,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub global_prevalence: Option<i64>,
    pub global_first_observed: Option<String>,
    pub global_last_observed: Option<String>,
    pub size: Option<i64>,
    pub file_type: Option<String>,
    pub is_pe_file: Option<bool>,
    pub publisher: Option<String>,
    pub product_name: Option<String>,
    pub signer: Option<String>,
    pub issuer: Option<String>,
    pub is_valid_certificate: Option<bool>,
    pub determination_type: Option<String>,
    pub determination_value: Option<String>,
}

pub fn file_of(hash: &str, v: &Value) -> FileContext {
    FileContext {
        hash: hash.to_owned(),
        sha1: text(v, "/sha1"),
        sha256: text(v, "/sha256"),
        global_prevalence: v.get("globalPrevalence").and_then(Value::as_i64),
        global_first_observed: text(v, "/globalFirstObserved"),
        global_last_observed: text(v, "/globalLastObserved"),
        size: v.get("size").and_then(Value::as_i64),
        file_type: text(v, "/fileType"),
        is_pe_file: flag(v, "/isPeFile"),
        publisher: text(v, "/filePublisher"),
        product_name: text(v, "/fileProductName"),
        signer: text(v, "/signer"),
        issuer: text(v, "/issuer"),
        is_valid_certificate: flag(v, "/isValidCertificate"),
        determination_type: text(v, "/determinationType"),
        determination_value: text(v, "/determinationValue"),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::processing::context::defender::*;

    #[test]
    fn the_documented_file_sample_shapes_as_expected() {
        let file: Value =
            serde_json::from_str(include_str!("../../../../tests/fixtures/microsoft-docs/mde_file_get.json")).unwrap_or_default();
        let f = file_of("h", &file);
        assert_eq!((f.global_prevalence, f.determination_type.as_deref()), (Some(180_022), Some("Pua")));
    }
}
