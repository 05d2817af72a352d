//! `faultline report DIR...`: rebuilds the `report.html` of stored runs.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use faultline_reports::{write_report, ReportError};

use crate::{EXIT_BAD_INPUT, EXIT_INTERNAL};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories (`store/<test>/<timestamp>`, or `store/latest`).
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
}

/// Writes each run's report and prints its path. Exit 0 when every report was written, 254
/// when a directory is not a run, 255 when a report could not be written.
pub fn run(args: ReportArgs) -> ExitCode {
    let mut exit = 0;
    for dir in &args.dirs {
        match write_report(dir) {
            Ok(path) => println!("{}", path.display()),
            Err(e) => {
                eprintln!("faultline report: {e}");
                let code = match e {
                    ReportError::NotARun(_) => EXIT_BAD_INPUT,
                    _ => EXIT_INTERNAL,
                };
                // A bad argument outranks a failure to write, as in `faultline check`.
                if exit != EXIT_BAD_INPUT {
                    exit = code;
                }
            }
        }
    }
    ExitCode::from(exit)
}
