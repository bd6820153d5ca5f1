//! `gateway`: the routes file on the command line.
//!
//! ```text
//! gateway check FILE             validate FILE; print every problem (exit 1) or the route table
//! gateway check --diff OLD NEW   validate both and print what changed between them
//! gateway schema                 print the JSON Schema of the routes file
//! ```

use std::process::ExitCode;

use edge_gateway::config::{self, RoutesFile};
use edge_gateway::gateway::Gateway;
use edge_gateway::report;

const USAGE: &str = "usage:
  gateway check FILE             validate FILE; print every problem (exit 1) or the route table
  gateway check --diff OLD NEW   validate both files and print what changed between them
  gateway schema                 print the JSON Schema of the routes file";

fn load(path: &str) -> Result<RoutesFile, ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: cannot read: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let problems: Vec<String> = match config::load(&text) {
        // Secrets are not known here: a stand-in lets every other key check run.
        Ok(file) => match Gateway::compile(file.clone(), &|_| Some("0".repeat(64))) {
            Ok(gw) => {
                let errors: Vec<String> =
                    gw.providers.into_iter().filter_map(Result::err).collect();
                if errors.is_empty() {
                    return Ok(file);
                }
                errors
            }
            Err(e) => vec![e],
        },
        Err(ps) => ps.iter().map(ToString::to_string).collect(),
    };
    eprintln!(
        "{path}: {} problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        eprintln!("  {p}");
    }
    Err(ExitCode::from(1))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["check", "--diff", old, new] => {
            let (old, new) = match (load(old), load(new)) {
                (Ok(o), Ok(n)) => (o, n),
                _ => return ExitCode::from(1),
            };
            print!("{}", report::diff(&old, &new));
            ExitCode::SUCCESS
        }
        ["check", file] => match load(file) {
            Ok(f) => {
                println!(
                    "{file}: ok, {} route{}",
                    f.routes.len(),
                    if f.routes.len() == 1 { "" } else { "s" }
                );
                print!("{}", report::table(&f));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["schema"] => {
            print!("{}", config::schema_json());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
