//! `tenant-sim`: runs the simulator as its own process.
//!
//! ```text
//! tenant-sim [--port N] [--host NAME] [--seed N] [--scenario FILE] [--ca-out FILE] [--record-out FILE] [--print-scenario]
//! tenant-sim tour [--seed N] [--scenario FILE]
//! ```
//!
//! `--record-out` writes the simulator's record when it stops (Ctrl-C or SIGTERM): the requests
//! it served by status and by fault injected, and every alert version of every tenant with when
//! it became visible. The soak program compares its output queue with this.

mod tour;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tenant_sim::{Scenario, Simulator};

const USAGE: &str =
    "usage: tenant-sim [tour] [--port N] [--host NAME] [--seed N] [--scenario FILE] [--ca-out FILE] [--record-out FILE] [--print-scenario]";

struct Args {
    port: u16,
    host: String,
    seed: Option<u64>,
    scenario: Option<PathBuf>,
    ca_out: PathBuf,
    record_out: Option<PathBuf>,
    print_scenario: bool,
    tour: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 8443,
        host: "127.0.0.1".into(),
        seed: None,
        scenario: None,
        ca_out: PathBuf::from("tenant-sim-ca.pem"),
        record_out: None,
        print_scenario: false,
        tour: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--port" => a.port = value("--port")?.parse().map_err(|_| "--port takes a number from 0 to 65535".to_owned())?,
            "--host" => a.host = value("--host")?,
            "--seed" => a.seed = Some(value("--seed")?.parse().map_err(|_| "--seed takes a whole number".to_owned())?),
            "--scenario" => a.scenario = Some(PathBuf::from(value("--scenario")?)),
            "--ca-out" => a.ca_out = PathBuf::from(value("--ca-out")?),
            "--record-out" => a.record_out = Some(PathBuf::from(value("--record-out")?)),
            "--print-scenario" => a.print_scenario = true,
            "tour" => a.tour = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut scenario = match &args.scenario {
        Some(p) => match Scenario::from_file(p) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tenant-sim: {e}");
                return ExitCode::from(2);
            }
        },
        None => Scenario::default(),
    };
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if args.print_scenario {
        match serde_json::to_string_pretty(&scenario) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("tenant-sim: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    if args.tour {
        rustls_provider();
        return match tour::run(scenario).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tenant-sim tour: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let sim = match Simulator::start_on(scenario.clone(), addr, &args.host).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tenant-sim: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sim.write_ca(&args.ca_out) {
        eprintln!("tenant-sim: cannot write the CA certificate to {}: {e} (choose another path with --ca-out)", args.ca_out.display());
        return ExitCode::from(2);
    }
    println!("tenant simulator listening on {}", sim.base_url());
    println!("  CA certificate (trust it as an extra root): {}", args.ca_out.display());
    for t in &scenario.tenants {
        println!("  tenant {} ({})", t.id, t.domain);
        println!("    token endpoint: {}", sim.token_url(&t.id));
        for app in &t.apps {
            println!("    app {} ({} secret(s), {} certificate(s))", app.client_id, app.secrets.len(), app.certificates.len());
        }
    }
    println!("  Graph: {}/v1.0/security/alerts_v2, {}/v1.0/security/incidents", sim.base_url(), sim.base_url());
    println!("Ctrl-C stops it.");
    // Whoever started us reads the address from stdout, possibly through a pipe.
    std::io::Write::flush(&mut std::io::stdout()).ok();
    wait_for_stop().await;
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.record_out {
        let ids: Vec<String> = scenario.tenants.iter().map(|t| t.id.clone()).collect();
        if let Err(e) = std::fs::write(path, record(&sim, &ids).to_string()) {
            eprintln!("tenant-sim: cannot write the record to {}: {e}", path.display());
            code = ExitCode::FAILURE;
        }
    }
    sim.shutdown().await;
    code
}

/// Ctrl-C, or SIGTERM as a process supervisor sends.
async fn wait_for_stop() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tenant-sim: cannot wait for SIGTERM ({e}); Ctrl-C still stops it");
            tokio::signal::ctrl_c().await.ok();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What the simulator served and what its tenants hold, for a comparison after a run.
fn record(sim: &Simulator, tenants: &[String]) -> serde_json::Value {
    use std::collections::BTreeMap;
    let requests = sim.requests().all();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    for r in &requests {
        *statuses.entry(r.status.to_string()).or_default() += 1;
        if let Some(f) = &r.fault {
            *faults.entry(f.clone()).or_default() += 1;
        }
    }
    let alerts: BTreeMap<&str, Vec<(String, String, String)>> = tenants
        .iter()
        .map(|t| (t.as_str(), sim.alert_timeline(t).into_iter().map(|(id, at, visible)| (id, at.graph7(), visible.graph7())).collect()))
        .collect();
    serde_json::json!({
        "requests": requests.len(),
        "statuses": statuses,
        "faults": faults,
        "stopped_at": sim.clock().now().graph7(),
        "alert_versions": alerts,
    })
}

/// reqwest is built without a default crypto provider (ring only, no aws-lc).
fn rustls_provider() {
    // Err means a provider is already installed, which is just as good.
    rustls::crypto::ring::default_provider().install_default().ok();
}
