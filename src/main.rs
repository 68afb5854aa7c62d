//! `cairn`: run a node or a dev cluster, produce, consume, follow, manage.
//!
//! Owns the command line: its flags (each also a `CAIRN_*` environment
//! variable), the config file of `serve`, the connection profile that
//! `dev` writes and the client commands read, and the exit codes. It must
//! never decide anything a node decides; it parses, calls the runtime or
//! the client library, and reports. Errors are one line on stderr.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::logging(cli.log_format, cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cairn: cannot start the async runtime: {error}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    let result = runtime.block_on(cli::run(cli.command));
    // A reader of stdin may still block; it must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cairn: {error}");
            ExitCode::from(error.code())
        }
    }
}
