//! `fuzz`: feeds every decoder of Microsoft data, and the integration document parser, with
//! random and mutated input for a while, and fails on the first panic (a panic aborts a Lambda
//! built with `panic = "abort"`, losing the whole batch).
//!
//! Stable Rust, no cargo-fuzz: a seeded mutation fuzzer over a corpus of Microsoft's own doc
//! samples. `cargo run --profile fuzz --bin fuzz -- --seconds 600` runs each target ten
//! minutes (the `fuzz` profile is the release one with unwinding and overflow checks, so an
//! arithmetic overflow is found too); CI runs a few seconds each in the test build. Then
//! `mime_time` checks time: each hostile shape of email at two sizes ten times apart, and fails
//! when ten times the input costs more than twenty times the time (`--time-base` sets the
//! smaller size; 100,000 bytes).

mod mutate;
mod scaling;
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mutate::Mutator;

struct Args {
    seconds: u64,
    seed: u64,
    only: Option<String>,
    time_base: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args { seconds: 10, seed: 1, only: None, time_base: 100_000 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match k.as_str() {
            "--seconds" => a.seconds = value("--seconds")?.parse().map_err(|_| "--seconds takes whole seconds per target")?,
            "--seed" => a.seed = value("--seed")?.parse().map_err(|_| "--seed takes a number")?,
            "--target" => a.only = Some(value("--target")?),
            "--time-base" => {
                a.time_base = value("--time-base")?.parse().ok().filter(|n| *n >= 1_000).ok_or("--time-base takes bytes, at least 1000")?
            }
            "--help" | "-h" => {
                return Err(format!(
                "usage: fuzz [--seconds N per target (10)] [--seed N] [--target NAME] [--time-base BYTES (100000)]\ntargets: {}, mime_time",
                targets::all().iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ))
            }
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    Ok(a)
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The panics are what is looked for: report them here, once, with the input.
    std::panic::set_hook(Box::new(|_| {}));
    let crash_dir = std::path::Path::new("target/fuzz-crashes");
    let mut failed = false;
    for t in targets::all() {
        if a.only.as_deref().is_some_and(|o| o != t.name) {
            continue;
        }
        let mut m = Mutator::new(a.seed, t.corpus.iter().map(|c| c.to_vec()).collect());
        let until = Instant::now() + Duration::from_secs(a.seconds);
        let (mut runs, mut panics) = (0u64, 0u64);
        while Instant::now() < until {
            let input = m.next_input();
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| (t.run)(&input))).is_err() {
                panics += 1;
                let _ = std::fs::create_dir_all(crash_dir);
                let path = crash_dir.join(format!("{}-{panics}.bin", t.name));
                if std::fs::write(&path, &input).is_ok() {
                    eprintln!("{}: panic on the input saved as {}", t.name, path.display());
                }
                if panics >= 5 {
                    break;
                }
            }
        }
        println!("fuzz: {:<22} {runs:>9} inputs, {panics} panics", t.name);
        failed |= panics > 0;
    }
    if failed {
        println!("fuzz: FAILED (inputs in target/fuzz-crashes)");
        std::process::exit(1);
    }
    if a.only.as_deref().is_none_or(|o| o == "mime_time") && !scaling::check(a.time_base) {
        println!("fuzz: FAILED: a shape of email costs more than linear time (above)");
        std::process::exit(1);
    }
    println!("fuzz: every target ran without a panic");
}
