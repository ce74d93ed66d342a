//! `crun-shim`: the command line of libcrun-shim, on its Rust SDK.

mod args;
mod commands;
mod output;
mod tty;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => std::process::exit(commands::report(&commands::CliError::from(e))),
    };
    let code = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "crun-shim",
                &mut std::io::stdout(),
            );
            0
        }
        Command::Man => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => commands::report(&commands::CliError::from(e)),
            }
        }
        // One thread: a command is a handful of calls on one connection.
        // A multi-thread runtime starts a worker per CPU (after reading the
        // cgroup's CPU quota) and hands every message between threads.
        _ => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => {
                let code = runtime
                    .block_on(commands::run(cli))
                    .unwrap_or_else(|e| commands::report(&e));
                // A blocking read of stdin (exec -i) would hold a plain
                // drop of the runtime until the next keystroke.
                runtime.shutdown_background();
                code
            }
            Err(e) => commands::report(&commands::CliError::from(e)),
        },
    };
    std::process::exit(code)
}
