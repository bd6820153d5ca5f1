//! `gateway`: the routes file on the command line.
//!
//! ```text
//! gateway check FILE             validate FILE; print every problem (exit 1) or the route table
//! gateway check --diff OLD NEW   validate both and print what changed between them
//! gateway check --diff OLD NEW --replay REQUESTS
//!                                print the requests whose decision changes
//! gateway schema                 print the JSON Schema of the routes file
//! gateway import openapi FILE [--out ROUTES]
//!                                an OpenAPI 3.0/3.1 description as a routes file
//! gateway export openapi FILE    a routes file as an OpenAPI 3.1 document
//! gateway replay FILE REQUESTS   each request's route, decision, limit and cache keys
//! ```

use std::process::ExitCode;

use edge_gateway::config::{self, RoutesFile};
use edge_gateway::gateway::Gateway;
use edge_gateway::openapi;
use edge_gateway::replay::{self, Replayer};
use edge_gateway::report;

const USAGE: &str = "usage:
  gateway check FILE             validate FILE; print every problem (exit 1) or the route table
  gateway check --diff OLD NEW   validate both files and print what changed between them
  gateway check --diff OLD NEW --replay REQUESTS
                                 print only the requests (HAR or JSON lines) whose decision changes
  gateway schema                 print the JSON Schema of the routes file
  gateway import openapi FILE [--out ROUTES]
                                 print (or write to ROUTES) a routes file of an OpenAPI 3.0/3.1
                                 description (JSON or YAML); request-body schemas go to schemas/
                                 beside ROUTES (or in the current directory)
  gateway export openapi FILE    print an OpenAPI 3.1 document of a routes file
  gateway replay FILE REQUESTS   per request (HAR or JSON lines): route, decision, rate-limit key
                                 and cache key, computed offline by the gateway's own pipeline";

/// A routes file with its `validate.body` schemas read (from beside it) and inlined.
fn load(path: &str) -> Result<RoutesFile, ExitCode> {
    load_as_written(path).map(|(_, inlined)| inlined)
}

/// A routes file as written, and with its body schemas inlined (what the build embeds).
fn load_as_written(path: &str) -> Result<(RoutesFile, RoutesFile), ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: cannot read: {e}");
            return Err(ExitCode::from(1));
        }
    };
    let dir = std::path::Path::new(path)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let loaded = config::load(&text).and_then(|written| {
        let mut inlined = written.clone();
        config::schema::inline_from_dir(&mut inlined, &dir).map(|()| (written, inlined))
    });
    let problems: Vec<String> = match loaded {
        // Secrets are not known here: a stand-in lets every other key check run.
        Ok((written, file)) => match Gateway::compile(file.clone(), &|_| Some("0".repeat(64))) {
            Ok(gw) => {
                let errors: Vec<String> =
                    gw.providers.into_iter().filter_map(Result::err).collect();
                if errors.is_empty() {
                    return Ok((written, file));
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

/// Secrets for replay: `secret_var` values come from the environment.
fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_requests(path: &str) -> Result<Vec<replay::Request>, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("{path}: cannot read: {e}");
        ExitCode::from(1)
    })?;
    replay::parse_requests(&text).map_err(|e| {
        eprintln!("{path}: {e}");
        ExitCode::from(1)
    })
}

fn replayer(file: RoutesFile, path: &str) -> Result<Replayer, ExitCode> {
    Replayer::new(file, &env_secret).map_err(|e| {
        eprintln!("{path}: {e}");
        ExitCode::from(1)
    })
}

fn import_openapi(input: &str, out: Option<&str>) -> ExitCode {
    let text = match std::fs::read_to_string(input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{input}: cannot read: {e}");
            return ExitCode::from(1);
        }
    };
    let imported = match openapi::import::parse(&text).and_then(|doc| openapi::import::import(&doc))
    {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{input}: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = match out {
        Some(o) => std::path::Path::new(o)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        None => std::path::PathBuf::new(),
    };
    if let Err(e) = std::fs::create_dir_all(if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir.as_path()
    }) {
        eprintln!("{}: cannot create: {e}", dir.display());
        return ExitCode::from(1);
    }
    for (rel, schema) in &imported.schemas {
        let path = dir.join(rel);
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| {
                let mut text = serde_json::to_string_pretty(schema).expect("a schema serializes");
                text.push('\n');
                std::fs::write(&path, text)
            });
        if let Err(e) = written {
            eprintln!("{}: cannot write: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    let mut text = serde_json::to_string_pretty(&imported.file).expect("a routes file serializes");
    text.push('\n');
    match out {
        Some(o) => {
            if let Err(e) = std::fs::write(o, &text) {
                eprintln!("{o}: cannot write: {e}");
                return ExitCode::from(1);
            }
        }
        None => print!("{text}"),
    }
    let routes = imported.file.routes.len();
    eprintln!(
        "{input}: {routes} route{} imported, {} request-body schema{} written",
        if routes == 1 { "" } else { "s" },
        imported.schemas.len(),
        if imported.schemas.len() == 1 { "" } else { "s" }
    );
    // Each is the `validate.body` of its route.
    for (id, schema) in &imported.bodies {
        eprintln!(
            "  route \"{id}\": request body schema {}",
            dir.join(schema).display()
        );
    }
    for note in &imported.notes {
        eprintln!("  {note}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["check", "--diff", old_path, new_path, "--replay", requests]
        | ["check", "--replay", requests, "--diff", old_path, new_path] => {
            let (old, new) = match (load(old_path), load(new_path)) {
                (Ok(o), Ok(n)) => (o, n),
                _ => return ExitCode::from(1),
            };
            let requests = match read_requests(requests) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let (old, new) = match (replayer(old, old_path), replayer(new, new_path)) {
                (Ok(o), Ok(n)) => (o, n),
                _ => return ExitCode::from(1),
            };
            let changes = replay::diff(&old, &new, &requests);
            print!("{}", replay::render_diff(&changes, requests.len()));
            ExitCode::SUCCESS
        }
        ["replay", file, requests] => {
            let routes = match load(file) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let requests = match read_requests(requests) {
                Ok(r) => r,
                Err(code) => return code,
            };
            let replayer = match replayer(routes, file) {
                Ok(r) => r,
                Err(code) => return code,
            };
            for r in &requests {
                println!("{}  {}", r.label(), replayer.run(r).render());
            }
            ExitCode::SUCCESS
        }
        ["import", "openapi", input] => import_openapi(input, None),
        ["import", "openapi", input, "--out", out] | ["import", "openapi", "--out", out, input] => {
            import_openapi(input, Some(out))
        }
        ["export", "openapi", file] => match load(file) {
            Ok(f) => {
                let title = std::path::Path::new(file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| openapi::export::DEFAULT_TITLE.to_string());
                let doc = openapi::export::document(&f, &title, env!("CARGO_PKG_VERSION"));
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("a document serializes")
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["check", "--diff", old, new] => {
            let (old, new) = match (load(old), load(new)) {
                (Ok(o), Ok(n)) => (o, n),
                _ => return ExitCode::from(1),
            };
            print!("{}", report::diff(&old, &new));
            ExitCode::SUCCESS
        }
        ["check", file] => match load_as_written(file) {
            Ok((f, _)) => {
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
