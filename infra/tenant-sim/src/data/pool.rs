//! A tenant's cast: users, devices, files, addresses. Alerts draw from one pool,
//! so the same user or device recurs across alerts as it does in a real tenant.

use rand::Rng;

use crate::ids::{self, pick, pick_str, SimRng};

#[derive(Debug, Clone)]
pub struct User {
    pub account_name: String,
    pub display_name: String,
    pub upn: String,
    pub sid: String,
    pub aad_id: String,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub mde_id: String,
    pub aad_id: String,
    pub dns_name: String,
    pub host_name: String,
    pub os_platform: &'static str,
    pub os_build: i64,
    pub ip: String,
    pub rbac_group_id: i64,
    pub rbac_group_name: &'static str,
}

#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub path: String,
    pub sha1: String,
    pub sha256: String,
    pub md5: String,
    pub size: i64,
    pub publisher: Option<&'static str>,
}

/// The bytes of a simulated file: cheap, deterministic from its name and size. An Office Open
/// XML file is a zip of several parts (ECMA-376 Part 2), so an `.xlsm`, `.docx` or `.xlsx`
/// sample is one: a stored zip of two parts, exactly `size` bytes long (a client must keep such
/// a file as it is, not unpack it as if it were a live response archive).
pub fn sample_bytes(name: &str, size: usize) -> Vec<u8> {
    let line = format!("tenant-sim sample file {name}; not malware, a stand-in for the file an alert names\n");
    let text = |n: usize| -> Vec<u8> { line.bytes().cycle().take(n).collect() };
    const TYPES: (&str, &[u8]) = ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>");
    const PART: &str = "xl/vbaProject.bin";
    let overhead = 2 * (30 + 46) + 2 * TYPES.0.len() + 2 * PART.len() + TYPES.1.len() + 22;
    let ooxml = [".xlsm", ".xlsx", ".docx", ".docm"].iter().any(|e| name.to_ascii_lowercase().ends_with(e));
    if ooxml && size > overhead {
        return stored_zip(&[(TYPES.0, TYPES.1), (PART, &text(size - overhead))]);
    }
    text(size)
}

/// A zip of stored (uncompressed) entries (APPNOTE 4.3.7, 4.3.12, 4.3.16).
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let fields = |out: &mut Vec<u8>, name: &str, data: &[u8]| {
        let mut c = flate2::Crc::new();
        c.update(data);
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version 2.0, no flags, stored, 1980-01-01
        out.extend_from_slice(&c.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
    };
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for (name, data) in entries {
        offsets.push(out.len() as u32);
        out.extend_from_slice(b"PK\x03\x04");
        fields(&mut out, name, data);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
    }
    let directory_at = out.len() as u32;
    for ((name, data), offset) in entries.iter().zip(&offsets) {
        out.extend_from_slice(b"PK\x01\x02\x14\x00");
        fields(&mut out, name, data);
        out.extend_from_slice(&[0; 10]); // comment, disk, internal and external attributes
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    let directory_len = out.len() as u32 - directory_at;
    let count = (entries.len() as u16).to_le_bytes();
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend_from_slice(&count);
    out.extend_from_slice(&count);
    out.extend_from_slice(&directory_len.to_le_bytes());
    out.extend_from_slice(&directory_at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// Sample files are kept small: a live response hands the whole file back, and a scale run
/// builds thousands of tenants.
const MAX_SAMPLE_BYTES: i64 = 262_144;

impl File {
    /// A file whose hashes are those of its bytes ([`sample_bytes`]), so that a live response
    /// hands back exactly the file the alerts name. The random draws the hashes once were are
    /// still made, so everything generated after a file stays as it was.
    pub fn sample(name: String, path: String, rng: &mut SimRng, draw_size: impl FnOnce(&mut SimRng) -> i64) -> File {
        let (_sha1, _sha256, md5) = (ids::hex(rng, 20), ids::hex(rng, 32), ids::hex(rng, 16));
        let drawn = draw_size(rng);
        let size = if drawn > MAX_SAMPLE_BYTES { 1_024 + drawn % MAX_SAMPLE_BYTES } else { drawn.max(1) };
        let bytes = sample_bytes(&name, size as usize);
        let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        use sha2::Digest;
        File { sha1: hex(&sha1::Sha1::digest(&bytes)), sha256: hex(&sha2::Sha256::digest(&bytes)), md5, size, name, path, publisher: None }
    }
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub domain: String,
    pub net_bios: String,
    pub users: Vec<User>,
    pub devices: Vec<Device>,
    pub files: Vec<File>,
    pub external_ips: Vec<String>,
    pub urls: Vec<String>,
    pub sender_domains: Vec<String>,
}

const FIRST: &[&str] = &[
    "Adele",
    "Alex",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Kai",
    "David",
    "Amara",
    "Tomasz",
];
const LAST: &[&str] = &[
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Cantrell",
    "Langer",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Zrinski",
    "Bowen",
    "Behrens",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Carter",
    "Schmidt",
    "Okafor",
    "Nowak",
];
const HOSTS: &[&str] = &["desktop", "laptop", "srv-web", "srv-sql", "ws-fin", "ws-hr", "build", "jump"];
const RBAC: &[&str] = &["UnassignedGroup", "Workstations", "Servers", "Finance"];
const MALWARE_FILES: &[(&str, &str)] = &[
    ("mimikatz.exe", "C:\\Users\\Public\\Downloads"),
    ("invoice_0931.pdf.exe", "C:\\Users\\{u}\\Downloads"),
    ("update.ps1", "C:\\ProgramData\\Temp"),
    ("svchost32.exe", "C:\\Windows\\Temp"),
    ("payload.dll", "C:\\Users\\{u}\\AppData\\Local\\Temp"),
    ("eicar.com", "C:\\Users\\{u}\\Desktop"),
    ("rclone.exe", "C:\\PerfLogs"),
    ("psexesvc.exe", "C:\\Windows"),
    ("Q3 salaries.xlsm", "C:\\Users\\{u}\\Documents"),
    ("setup_x64.msi", "C:\\Users\\{u}\\Downloads"),
];
const URL_HOSTS: &[&str] = &[
    "login-micr0soft-online.com",
    "sharepoint-docs-view.net",
    "dhl-parcel-tracking.info",
    "contoso-payroll.support",
    "cdn-update-check.org",
    "secure-mail-reset.com",
    "invoice-portal.biz",
];

impl Pool {
    pub fn generate(rng: &mut SimRng, domain: &str, size: usize) -> Self {
        let size = size.max(4);
        let net_bios = domain.split('.').next().unwrap_or("CONTOSO").to_ascii_uppercase();
        let users: Vec<User> = (0..size)
            .map(|i| {
                let f = pick(rng, FIRST);
                let l = pick(rng, LAST);
                let account_name = format!("{}{}", f.to_lowercase(), &l[..1].to_lowercase());
                let account_name = if i >= FIRST.len() { format!("{account_name}{i}") } else { account_name };
                User {
                    display_name: format!("{f} {l}"),
                    upn: format!("{account_name}@{domain}"),
                    sid: format!(
                        "S-1-5-21-{}-{}-{}-{}",
                        rng.gen_range(1_000_000_000u64..4_000_000_000),
                        rng.gen_range(1_000_000_000u64..4_000_000_000),
                        rng.gen_range(1_000_000_000u64..4_000_000_000),
                        1100 + i
                    ),
                    aad_id: ids::guid(rng),
                    account_name,
                }
            })
            .collect();
        let devices = (0..size)
            .map(|i| {
                let host_name = format!("{}-{:03}", pick(rng, HOSTS), i);
                let windows = rng.gen_bool(0.85);
                Device {
                    mde_id: ids::hex(rng, 20),
                    aad_id: ids::guid(rng),
                    dns_name: format!("{host_name}.{}", domain.replace(".onmicrosoft.com", ".local")),
                    host_name,
                    os_platform: if windows {
                        pick_str(rng, &["Windows10", "Windows11", "WindowsServer2022"])
                    } else {
                        pick_str(rng, &["Linux", "macOS"])
                    },
                    os_build: if windows { rng.gen_range(19_041..26_100) } else { 0 },
                    ip: format!("10.{}.{}.{}", rng.gen_range(0..255), rng.gen_range(0..255), rng.gen_range(2..254)),
                    rbac_group_id: rng.gen_range(70..80),
                    rbac_group_name: pick_str(rng, RBAC),
                }
            })
            .collect();
        let files = MALWARE_FILES
            .iter()
            .map(|(name, path)| {
                let path = path.replace("{u}", &pick(rng, &users).account_name);
                let mut f = File::sample((*name).to_owned(), path, rng, |r| r.gen_range(2_000..9_000_000));
                f.publisher = if rng.gen_bool(0.2) { Some("Microsoft Corporation") } else { None };
                f
            })
            .collect();
        let external_ips = (0..size)
            .map(|_| {
                format!(
                    "{}.{}.{}.{}",
                    pick(rng, &[20u8, 40, 52, 91, 103, 185, 194, 203]),
                    rng.gen_range(1..255),
                    rng.gen_range(0..255),
                    rng.gen_range(1..255)
                )
            })
            .collect();
        let urls = URL_HOSTS.iter().map(|h| format!("https://{h}/{}", ids::hex(rng, 4))).collect();
        Pool {
            domain: domain.to_owned(),
            net_bios,
            users,
            devices,
            files,
            external_ips,
            urls,
            sender_domains: URL_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod sample_tests {
    #[test]
    fn an_office_sample_is_a_zip_of_exactly_its_size_and_others_are_text() {
        let z = super::sample_bytes("Q3 salaries.xlsm", 5_000);
        assert_eq!((z.len(), &z[..4]), (5_000, &b"PK\x03\x04"[..]));
        assert_eq!(&z[z.len() - 22..z.len() - 18], b"PK\x05\x06");
        let path = std::env::temp_dir().join(format!("tenant-sim-office-{}.xlsm", std::process::id()));
        let _ = std::fs::write(&path, &z);
        let python = std::env::var("TENANT_SIM_PYTHON").unwrap_or_else(|_| "python3".into());
        let listed = std::process::Command::new(python)
            .args(["-c", "import sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);assert z.testzip() is None;print(' '.join(z.namelist()))"])
            .arg(&path)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        assert_eq!(listed, "[Content_Types].xml xl/vbaProject.bin", "a zip of several parts, as Office writes");
        assert_eq!(super::sample_bytes("Q3 salaries.xlsm", 50).len(), 50, "too small for a zip: text");
        assert!(super::sample_bytes("mimikatz.exe", 100).starts_with(b"tenant-sim sample file mimikatz.exe"));
    }
}
