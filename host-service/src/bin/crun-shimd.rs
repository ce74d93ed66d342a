//! `crun-shimd`: the libcrun-shim host service (see `crun-shimd --help`).

use clap::Parser;
use crun_shimd::config::{Args, Config};

fn main() {
    let telemetry = match libcrun_shim_telemetry::init("crun-shimd") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("crun-shimd: {e}");
            std::process::exit(1);
        }
    };
    let config = match Config::load(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("crun-shimd: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crun-shimd: starting tokio: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(crun_shimd::run(config));
    drop(runtime);
    drop(telemetry);
    if let Err(e) = result {
        eprintln!("crun-shimd: {e}");
        std::process::exit(1);
    }
}
