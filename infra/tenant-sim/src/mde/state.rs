//! Defender for Endpoint's state in the simulator: which devices are online, the live response
//! machine actions and how they move on over simulated time, the calls counted against the
//! tenant's limits, and the result links handed out.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::scenario::MdeSpec;
use crate::state::lock;
use crate::time::Instant;

/// A live response machine action (machineaction.md).
#[derive(Debug, Clone)]
pub struct Action {
    pub id: String,
    pub tenant: usize,
    pub machine_id: String,
    pub requestor: String,
    pub comment: String,
    /// (type, params) as requested: PutFile/RunScript/GetFile.
    pub commands: Vec<(String, Vec<(String, String)>)>,
    pub created: Instant,
    /// When the device picked it up (at once plus `pickup_secs` when online, else when it
    /// next comes online).
    pub picked_up: Option<Instant>,
    /// What GetFile collected (or the last script's transcript), or why it failed; decided
    /// when the device runs it.
    pub result: Option<Result<Arc<Vec<u8>>, Failure>>,
    /// When a cancel came (cancel-machine-action.md).
    pub cancelled: Option<Instant>,
    /// Seconds the device spends uploading GetFile's file after running the commands, at most
    /// GetFile's time limit (live-response.md: 30 minutes): the action stays InProgress until
    /// then. Decided when the action is made, from the file on the device then (a file a script
    /// of the same action writes uploads at once; README).
    pub upload_secs: i64,
}

/// Why a command failed on the device: the action's `errorHResult` (run-live-response.md's
/// response shows the field; its values are Windows HRESULTs, [MS-ERREF] 2.1) and the
/// command's `errors` text. Which HRESULT Microsoft sets for which failure is not documented:
/// these are the Windows codes for each cause (README).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub hresult: i64,
    pub message: String,
    /// The index of the command that failed (the ones after it never ran).
    pub command: usize,
}

impl Failure {
    /// ERROR_FILE_NOT_FOUND, 0x80070002.
    pub fn not_found(message: String) -> Self {
        Failure { hresult: -2_147_024_894, message, command: 0 }
    }
    /// ERROR_FILE_TOO_LARGE, 0x800700DF.
    pub fn too_large(message: String) -> Self {
        Failure { hresult: -2_147_024_673, message, command: 0 }
    }
    /// ERROR_NOT_SUPPORTED, 0x80070032.
    pub fn not_supported(message: String) -> Self {
        Failure { hresult: -2_147_024_846, message, command: 0 }
    }
    /// ERROR_TIMEOUT, 0x800705B4.
    pub fn timed_out(message: String) -> Self {
        Failure { hresult: ERROR_TIMEOUT, message, command: 0 }
    }
    /// TRUST_E_NOSIGNATURE, 0x800B0100.
    pub fn unsigned(message: String) -> Self {
        Failure { hresult: -2_146_762_496, message, command: 0 }
    }
}

/// ERROR_TIMEOUT, 0x800705B4, as the signed 32-bit value `errorHResult` carries.
const ERROR_TIMEOUT: i64 = -2_147_023_436;

/// A machine action's status (machineaction.md): Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    InProgress,
    Succeeded,
    Failed,
    TimeOut,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::InProgress => "InProgress",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::TimeOut => "TimeOut",
            Status::Cancelled => "Cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::InProgress)
    }
}

impl Action {
    /// How long the device is busy with it once picked up: its commands, then GetFile's upload
    /// unless a command failed before it (a GetFile that timed out took its whole limit).
    fn busy_secs(&self, spec: &MdeSpec) -> i64 {
        let uploaded = match &self.result {
            Some(Err(f)) if f.hresult != ERROR_TIMEOUT => 0,
            _ => self.upload_secs,
        };
        spec.run_secs + uploaded
    }

    /// Whether the device has run the commands (not cancelled first): their result is decided then.
    pub fn commands_ran(&self, now: Instant, spec: &MdeSpec) -> bool {
        self.picked_up.is_some_and(|p| p.plus_secs(spec.run_secs) <= now)
            && !self.cancelled.is_some_and(|c| c <= now && self.picked_up.is_none_or(|p| c < p.plus_secs(spec.run_secs)))
    }

    /// Where the action is at `now`.
    pub fn status(&self, now: Instant, spec: &MdeSpec) -> Status {
        if let Some(c) = self.cancelled.filter(|c| *c <= now) {
            // Cancelled unless it had ended before the cancel came.
            let ended_before = self.picked_up.is_some_and(|p| p.plus_secs(self.busy_secs(spec)) <= c);
            if !ended_before {
                return Status::Cancelled;
            }
        }
        match self.picked_up {
            None if now >= self.created.plus_secs(spec.offline_timeout_secs) => Status::TimeOut,
            None => Status::Pending,
            Some(p) if now < p => Status::Pending,
            Some(p) if now < p.plus_secs(self.busy_secs(spec)) => Status::InProgress,
            Some(_) => match &self.result {
                Some(Ok(_)) => Status::Succeeded,
                _ => Status::Failed,
            },
        }
    }
}

/// A result link: what it downloads and until when.
#[derive(Debug, Clone)]
pub struct Link {
    pub bytes: Arc<Vec<u8>>,
    pub expires: Instant,
}

/// A file of the tenant's live response library (upload-library.md).
#[derive(Debug, Clone)]
pub struct LibraryFile {
    pub name: String,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
    pub description: String,
    pub has_parameters: bool,
    pub parameters_description: String,
    pub created: Instant,
    pub updated: Instant,
    pub created_by: String,
}

/// A file a restore put on a device: its lower-case path and bytes.
type Restored = (String, Arc<Vec<u8>>);

#[derive(Debug, Default)]
struct Inner {
    /// (tenant, lower-case file name) → the library file.
    library: HashMap<(usize, String), LibraryFile>,
    /// Uploads accepted per tenant (tests' ground truth of "once per tenant").
    uploads: HashMap<usize, usize>,
    /// Files a restore put on a device: (tenant, lower-case machine) → (lower-case path, bytes).
    restored: HashMap<(usize, String), Vec<Restored>>,
    /// (tenant, lower-case machine id) of devices that are offline.
    offline: HashSet<(usize, String)>,
    actions: HashMap<String, Action>,
    /// When each tenant's recent `runliveresponse` calls came, for the per-minute limit.
    runs: HashMap<usize, VecDeque<Instant>>,
    /// (tenant, API, window seconds) → the calls in that window, on the simulated clock.
    api_calls: HashMap<(usize, String, u64), VecDeque<Instant>>,
    links: HashMap<String, Link>,
    /// Links handed out already expired, for tests of the re-request.
    expire_next_links: usize,
    /// Serve downloads with a byte changed, for tests of the hash check.
    tamper: bool,
    /// (tenant, lower-case machine, lower-case full path) of files deleted from a device (or
    /// from its quarantine) since their alert.
    deleted: HashSet<(usize, String, String)>,
}

#[derive(Debug)]
pub struct MdeState {
    pub spec: Mutex<MdeSpec>,
    inner: Mutex<Inner>,
}

impl MdeState {
    pub fn new(spec: &MdeSpec, tenants: usize) -> Self {
        let offline = (0..tenants).flat_map(|t| spec.offline.iter().map(move |m| (t, m.to_ascii_lowercase()))).collect();
        MdeState { spec: Mutex::new(spec.clone()), inner: Mutex::new(Inner { offline, ..Inner::default() }) }
    }

    pub fn spec(&self) -> MdeSpec {
        lock(&self.spec).clone()
    }

    pub fn online(&self, tenant: usize, machine: &str) -> bool {
        !lock(&self.inner).offline.contains(&(tenant, machine.to_ascii_lowercase()))
    }

    /// Brings a device online or takes it offline; pending actions are picked up once it is online.
    pub fn set_online(&self, tenant: usize, machine: &str, online: bool, now: Instant) {
        let spec = self.spec();
        let mut inner = lock(&self.inner);
        let key = (tenant, machine.to_ascii_lowercase());
        if online {
            inner.offline.remove(&key);
            for a in inner.actions.values_mut() {
                if a.tenant == tenant
                    && a.machine_id.eq_ignore_ascii_case(machine)
                    && a.status(now, &spec) == Status::Pending
                    && a.picked_up.is_none()
                {
                    a.picked_up = Some(now);
                }
            }
        } else {
            inner.offline.insert(key);
        }
    }

    /// Counts a `runliveresponse` call; false when the tenant made `runs_per_minute` in the last minute.
    pub fn admit_run(&self, tenant: usize, now: Instant, per_minute: usize) -> bool {
        let mut inner = lock(&self.inner);
        let runs = inner.runs.entry(tenant).or_default();
        while runs.front().is_some_and(|t| now.0 - t.0 >= 60 * 10_000_000) {
            runs.pop_front();
        }
        if runs.len() >= per_minute {
            return false;
        }
        runs.push_back(now);
        true
    }

    /// Counts a call of an API against `capacity` per `window_secs`, on the simulated clock (so
    /// a test that moves the clock sees the limit as a tenant would over that time); Err: the
    /// seconds until a call leaves the window.
    pub fn admit_api(&self, tenant: usize, api: &str, now: Instant, capacity: u32, window_secs: u64) -> Result<(), i64> {
        let mut inner = lock(&self.inner);
        let window = window_secs as i64 * 10_000_000;
        let calls = inner.api_calls.entry((tenant, api.to_owned(), window_secs)).or_default();
        while calls.front().is_some_and(|t| now.0 - t.0 >= window) {
            calls.pop_front();
        }
        if calls.len() >= capacity as usize {
            let oldest = calls.front().map_or(now.0, |t| t.0);
            return Err(((oldest + window - now.0) / 10_000_000).max(1));
        }
        calls.push_back(now);
        Ok(())
    }

    /// The tenant's sessions still running, and whether one runs on `machine`.
    pub fn running(&self, tenant: usize, machine: &str, now: Instant, spec: &MdeSpec) -> (usize, bool) {
        let inner = lock(&self.inner);
        let live: Vec<&Action> = inner.actions.values().filter(|a| a.tenant == tenant && !a.status(now, spec).is_terminal()).collect();
        (live.len(), live.iter().any(|a| a.machine_id.eq_ignore_ascii_case(machine)))
    }

    pub fn insert(&self, a: Action) {
        lock(&self.inner).actions.insert(a.id.clone(), a);
    }

    pub fn action(&self, id: &str) -> Option<Action> {
        lock(&self.inner).actions.get(&id.to_ascii_lowercase()).cloned()
    }

    /// Every action of a tenant (tests' ground truth).
    pub fn actions(&self, tenant: usize) -> Vec<Action> {
        let mut v: Vec<Action> = lock(&self.inner).actions.values().filter(|a| a.tenant == tenant).cloned().collect();
        v.sort_by_key(|a| a.created);
        v
    }

    /// Records the result GetFile collected (decided once, when the device ran it).
    pub fn set_result(&self, id: &str, result: Result<Arc<Vec<u8>>, Failure>) {
        if let Some(a) = lock(&self.inner).actions.get_mut(id) {
            a.result.get_or_insert(result);
        }
    }

    /// A new result link for `bytes`, valid for the configured lifetime (or already expired
    /// when a test asked for that).
    pub fn link(&self, token: String, bytes: Arc<Vec<u8>>, now: Instant) -> Instant {
        let lifetime = self.spec().link_lifetime_secs;
        let mut inner = lock(&self.inner);
        let expires = if inner.expire_next_links > 0 {
            inner.expire_next_links -= 1;
            now.plus_secs(-1)
        } else {
            now.plus_secs(lifetime)
        };
        inner.links.insert(token, Link { bytes, expires });
        expires
    }

    pub fn download(&self, token: &str) -> Option<(Link, bool)> {
        let inner = lock(&self.inner);
        inner.links.get(token).cloned().map(|l| (l, inner.tamper))
    }

    pub fn expire_next_links(&self, n: usize) {
        lock(&self.inner).expire_next_links = n;
    }

    pub fn delete_file(&self, tenant: usize, machine: &str, path: &str) {
        lock(&self.inner).deleted.insert((tenant, machine.to_ascii_lowercase(), path.to_lowercase()));
    }

    pub fn deleted(&self, tenant: usize, machine: &str, path: &str) -> bool {
        lock(&self.inner).deleted.contains(&(tenant, machine.to_ascii_lowercase(), path.to_lowercase()))
    }

    pub fn tamper_downloads(&self, on: bool) {
        lock(&self.inner).tamper = on;
    }

    pub fn library_file(&self, tenant: usize, name: &str) -> Option<LibraryFile> {
        lock(&self.inner).library.get(&(tenant, name.to_lowercase())).cloned()
    }

    pub fn library(&self, tenant: usize) -> Vec<LibraryFile> {
        let mut v: Vec<LibraryFile> = lock(&self.inner).library.iter().filter(|((t, _), _)| *t == tenant).map(|(_, f)| f.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Stores an upload; None when the file exists and the upload does not override it.
    pub fn put_library_file(&self, tenant: usize, file: LibraryFile, override_if_exists: bool) -> Option<LibraryFile> {
        let mut inner = lock(&self.inner);
        let key = (tenant, file.name.to_lowercase());
        let stored = match inner.library.get(&key) {
            Some(_) if !override_if_exists => return None,
            Some(old) => LibraryFile { created: old.created, ..file },
            None => file,
        };
        inner.library.insert(key, stored.clone());
        *inner.uploads.entry(tenant).or_default() += 1;
        Some(stored)
    }

    pub fn library_uploads(&self, tenant: usize) -> usize {
        lock(&self.inner).uploads.get(&tenant).copied().unwrap_or(0)
    }

    pub fn restore(&self, tenant: usize, machine: &str, path: &str, bytes: Arc<Vec<u8>>) {
        let mut inner = lock(&self.inner);
        let files = inner.restored.entry((tenant, machine.to_ascii_lowercase())).or_default();
        files.retain(|(p, _)| *p != path.to_lowercase());
        files.push((path.to_lowercase(), bytes));
    }

    /// Removes every restored file under `folder`; how many there were.
    pub fn clean(&self, tenant: usize, machine: &str, folder: &str) -> usize {
        let prefix = format!("{}\\", folder.trim_end_matches('\\').to_lowercase());
        let mut inner = lock(&self.inner);
        let Some(files) = inner.restored.get_mut(&(tenant, machine.to_ascii_lowercase())) else { return 0 };
        let before = files.len();
        files.retain(|(p, _)| !p.starts_with(&prefix));
        before - files.len()
    }

    pub fn restored_at(&self, tenant: usize, machine: &str, path: &str) -> Option<Arc<Vec<u8>>> {
        let inner = lock(&self.inner);
        let files = inner.restored.get(&(tenant, machine.to_ascii_lowercase()))?;
        files.iter().find(|(p, _)| *p == path.to_lowercase()).map(|(_, b)| b.clone())
    }

    /// Every restored file still on a tenant's devices: (machine, path).
    pub fn restored(&self, tenant: usize) -> Vec<(String, String)> {
        let inner = lock(&self.inner);
        let mut v: Vec<(String, String)> = inner
            .restored
            .iter()
            .filter(|((t, _), _)| *t == tenant)
            .flat_map(|((_, m), files)| files.iter().map(move |(p, _)| (m.clone(), p.clone())))
            .collect();
        v.sort();
        v
    }

    /// Marks an action cancelled now (cancel-machine-action.md); false when it had ended.
    pub fn cancel(&self, id: &str, now: Instant) -> bool {
        let spec = self.spec();
        let mut inner = lock(&self.inner);
        match inner.actions.get_mut(&id.to_ascii_lowercase()) {
            Some(a) if !a.status(now, &spec).is_terminal() => {
                a.cancelled = Some(now);
                true
            }
            _ => false,
        }
    }
}
