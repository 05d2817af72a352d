//! `faultline check --model election|unique-ids|watch|ephemeral`: the election, unique-ids,
//! change-notification and ephemeral-registration workloads' histories (see
//! `faultline_checker::{election, unique_ids, watch, ephemeral}`), checked offline as
//! `faultline test` checks them. When the history lies in a run directory (a `test.json`
//! beside it), the election check takes that run's termination bound and, when the nodes were
//! the candidates, its node names; otherwise the defaults. The ephemeral checker's slack is
//! `--slack-ms` (default as the workload's).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use faultline_checker::election::{self, ElectionOptions};
use faultline_checker::ephemeral::{self, EphemeralOptions};
use faultline_checker::{unique_ids, watch};
use faultline_core::import::{read_history_file, Format};
use faultline_core::Test;

use crate::check::{run_per_file, FileVerdict};

/// The model names `--model` takes for these checkers.
pub const MODELS: [&str; 4] = ["election", "unique-ids", "watch", "ephemeral"];

/// What `check` passes on.
pub struct Inputs<'a> {
    pub model: &'a str,
    pub files: &'a [PathBuf],
    pub format: Format,
    pub json: bool,
    /// The ephemeral checker's slack (ms).
    pub slack_ms: u64,
}

/// The election options of the run `file` belongs to, if it has a readable `test.json`.
fn election_options(file: &Path) -> ElectionOptions {
    let test: Option<Test> = file
        .parent()
        .map(|dir| dir.join("test.json"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| serde_json::from_str(&text).ok());
    match test {
        Some(test) if test.workload == "election" => {
            faultline_workloads::election::check_options(&test)
        }
        _ => ElectionOptions::default(),
    }
}

fn check_file(inputs: &Inputs, file: &Path) -> Result<FileVerdict, String> {
    let (history, _format) = read_history_file(file, inputs.format).map_err(|e| e.to_string())?;
    let ops = history.client_ops().count() / 2;
    let checked = if inputs.model == "watch" {
        let r = watch::check(&history).map_err(|e| e.to_string())?;
        FileVerdict {
            valid: r.valid,
            summary: format!("{} events, {} watchers", r.events, r.watchers),
            result: serde_json::to_value(&r).expect("results serialize"),
            ops,
            explanation: r.explain(),
        }
    } else if inputs.model == "ephemeral" {
        let options = EphemeralOptions {
            slack_ms: inputs.slack_ms,
        };
        let r = ephemeral::check(&history, &options).map_err(|e| e.to_string())?;
        FileVerdict {
            valid: r.valid,
            summary: format!("{} lists, {} bounded registrations", r.lists, r.bounded),
            result: serde_json::to_value(&r).expect("results serialize"),
            ops,
            explanation: r.explain(),
        }
    } else if inputs.model == "election" {
        let result =
            election::check(&history, &election_options(file)).map_err(|e| e.to_string())?;
        FileVerdict {
            valid: result.valid,
            summary: format!(
                "{} campaigns, {} elected, {} observations of {} epochs",
                result.campaigns, result.elected, result.observations, result.epochs
            ),
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
            ops,
        }
    } else {
        let result = unique_ids::check(&history).map_err(|e| e.to_string())?;
        FileVerdict {
            valid: result.valid,
            summary: format!(
                "{} ids acknowledged, {} duplicated",
                result.acknowledged, result.duplicate_count
            ),
            explanation: result.explain(),
            result: serde_json::to_value(&result).expect("results serialize"),
            ops,
        }
    };
    Ok(checked)
}

pub fn run(inputs: &Inputs) -> ExitCode {
    run_per_file(inputs.model, inputs.files, inputs.json, |file| {
        check_file(inputs, file)
    })
}
