//! `crun-shim-init`, PID 1 of libcrun-shim's Linux guest (see `main.rs` and
//! `docker/README.md`), and the contract between the host and it:
//! [`params`], the `libcrun_shim.*` words of the kernel command line that
//! `crun-shimd` writes and the init reads.

pub mod params;
