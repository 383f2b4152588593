//! The tenant simulator as its own process on a port the OS picks: the soak's and the
//! end-to-end benchmark's Microsoft.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tenant_sim::Scenario;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// The simulator as its own process on a port the OS picks.
pub struct SimProcess {
    child: Child,
    pub base_url: String,
    pub ca_file: PathBuf,
    record_file: PathBuf,
}

impl SimProcess {
    pub async fn start(binary: &Path, scenario: &Scenario, dir: &Path) -> Result<Self, String> {
        let scenario_file = dir.join("scenario.json");
        let text = serde_json::to_string_pretty(scenario).map_err(|e| e.to_string())?;
        std::fs::write(&scenario_file, text).map_err(|e| format!("cannot write {}: {e}", scenario_file.display()))?;
        let ca_file = dir.join("tenant-sim-ca.pem");
        let record_file = dir.join("tenant-sim-record.json");
        let log = std::fs::File::create(dir.join("tenant-sim.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .args(["--port", "0", "--scenario"])
            .arg(&scenario_file)
            .arg("--ca-out")
            .arg(&ca_file)
            .arg("--record-out")
            .arg(&record_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e} (build it: cargo build --release --bin tenant-sim)", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from tenant-sim")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| "tenant-sim did not start within 60 s".to_owned())?
            .map_err(|e| e.to_string())?
            .ok_or("tenant-sim exited before listening (see tenant-sim.log)")?;
        let base_url = first
            .strip_prefix("tenant simulator listening on ")
            .ok_or_else(|| format!("unexpected first line from tenant-sim: {first}"))?
            .trim()
            .to_owned();
        // Keep reading so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(SimProcess { child, base_url, ca_file, record_file })
    }

    /// Stops it (SIGTERM) and reads the record it writes on the way out.
    pub async fn stop(mut self) -> Result<serde_json::Value, String> {
        let pid = self.child.id().ok_or("tenant-sim already exited")?;
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("cannot signal tenant-sim".into());
        }
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .map_err(|_| "tenant-sim did not stop within 60 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let text = std::fs::read_to_string(&self.record_file).map_err(|e| format!("cannot read {}: {e}", self.record_file.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("the simulator's record is not JSON: {e}"))
    }
}
