//! A seed explorer for the simulation, ignored by default. Examples:
//!
//! ```text
//! SEEDS=2000 NODES=5 cargo test --release -p faultline-raftkv --test explore -- --ignored --nocapture
//! PROFILE=leader_churn BUGS=old-term-commit SEEDS=500 cargo test ... --test explore -- --ignored --nocapture
//! SEED=109 PROFILE=leader_churn BUGS=old-term-commit cargo test ... -- --ignored --nocapture  # one run, verbose
//! ```

use faultline_raftkv::sim::{run, SimConfig};
use faultline_raftkv::Bugs;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[test]
#[ignore = "a tool: explores many seeds, configured through environment variables"]
fn explore_seeds() {
    let nodes = env_u64("NODES").unwrap_or(3) as usize;
    let bugs =
        Bugs::parse_list(&std::env::var("BUGS").unwrap_or_default()).expect("BUGS lists bug names");
    let profile = match std::env::var("PROFILE").as_deref() {
        Ok("leader_churn") => SimConfig::leader_churn,
        Ok("slow_network_with_crashes") => SimConfig::slow_network_with_crashes,
        Ok("new") | Err(_) => SimConfig::new,
        Ok(other) => panic!("unknown PROFILE {other}"),
    };
    let seeds = match env_u64("SEED") {
        Some(seed) => seed..seed + 1,
        None => 0..env_u64("SEEDS").unwrap_or(100),
    };
    let verbose = seeds.end - seeds.start == 1;
    let (start, mut failures) = (std::time::Instant::now(), 0);
    for seed in seeds.clone() {
        match run(&profile(seed, nodes).with_bugs(bugs.clone())) {
            Ok(report) if verbose => {
                eprintln!("seed {seed} passed; faults: {:#?}", report.nemesis_log);
                for event in report.history() {
                    eprintln!("{}", serde_json::to_string(event).unwrap());
                }
            }
            Ok(_) => {}
            Err(failure) => {
                failures += 1;
                eprintln!("{failure}\n");
            }
        }
    }
    eprintln!(
        "{failures} of {} seeds failed in {:?}",
        seeds.end - seeds.start,
        start.elapsed()
    );
}
