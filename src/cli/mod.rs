//! Command-line interface: one file per subcommand. Each returns the exit
//! code it wants; errors that end the command bubble up as `anyhow` and are
//! printed by `main` with their causes.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod drift;
pub mod next;
pub mod plan;
pub mod run;
pub mod validate;

/// driftcron: cron jobs as TOML files in git, run by a bounded scheduler
/// that reports drift and leaked tasks.
#[derive(Debug, Parser)]
#[command(name = "driftcron", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(run::Args),
    Validate(validate::Args),
    Plan(plan::Args),
    Next(next::Args),
    Drift(drift::Args),
}

/// Output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// Versioned JSON (`format_version`), for machines.
    Json,
    /// GitHub Actions workflow annotations.
    Github,
}

/// A secret (API token, webhook secret) from a file, which must exist and
/// hold one, or else from the environment variable `var`. Surrounding
/// whitespace (a file's trailing newline) is not part of it.
///
/// # Errors
/// The file cannot be read or holds only whitespace.
pub(crate) fn read_secret(
    file: Option<&std::path::Path>,
    var: &str,
) -> anyhow::Result<Option<String>> {
    use anyhow::Context as _;
    let text = match file {
        Some(f) => {
            let t = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the secret file {}", f.display()))?;
            if t.trim().is_empty() {
                anyhow::bail!("the secret file {} is empty", f.display());
            }
            t
        }
        None => std::env::var(var).unwrap_or_default(),
    };
    let t = text.trim();
    Ok((!t.is_empty()).then(|| t.to_string()))
}

/// Parses the command line and runs the subcommand.
///
/// # Errors
/// Anything that stops the command before it could report normally.
pub fn run() -> anyhow::Result<ExitCode> {
    // Usage errors exit 1, not clap's 2: for `plan` and `drift`, 2 means
    // "there are changes", and a typo in CI must not read as drift.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() { 1 } else { 0 }));
        }
    };
    match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Next(args) => next::run(&args),
        Command::Drift(args) => drift::run(&args),
    }
}
