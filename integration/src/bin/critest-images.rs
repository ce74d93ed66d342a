//! critest-images: the images critest pulls, built offline (cached under
//! the project's cache) and served by a local registry.
//!
//! `critest-images build` builds them (or finds them cached) and lists
//! their references; `critest-images serve` also starts Debian's
//! docker-registry on a free loopback port, pushes them there under their
//! original paths, prints `REGISTRY=127.0.0.1:PORT` and serves until
//! interrupted. Point the runtime's mirrors for `registry.k8s.io`,
//! `k8s.gcr.io` and `gcr.io` at it.

use integration::critest_images::{default_cache_root, ensure_built, push_all};
use integration::registry::Registry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    let images = match command.as_str() {
        "build" | "serve" => ensure_built(&default_cache_root())?,
        _ => {
            eprintln!("usage: critest-images build|serve");
            std::process::exit(2);
        }
    };
    for image in &images {
        for reference in &image.references {
            println!("{reference} {}", image.image.manifest_digest());
        }
    }
    if command == "serve" {
        let registry = Registry::start()?;
        push_all(&registry, &images).await?;
        println!("REGISTRY={}", registry.host());
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
