//! The libcrun-shim guest agent: runs OCI containers through libcrun,
//! in-process, and serves the v1 gRPC API.
//!
//! # Process model
//!
//! libcrun forks the container from the calling process, and a fork of a
//! multi-threaded process (the agent runs tokio) may deadlock in the
//! child. So the agent never calls a forking libcrun function itself: for
//! each run of a container it starts `crun-shim-monitor run`, a small
//! single-threaded process that creates the container through libcrun,
//! owns its stdout and stderr (pipes, or a terminal), writes them to the
//! log files, reaps the container's init process and records its exit
//! status in `exit.json`. Exec processes go through `crun-shim-monitor
//! exec` the same way. The calls that do not fork (start, kill, pause,
//! resume, update, delete) run in the agent, on blocking threads.
//!
//! Monitors are in their own session and do not need the agent after the
//! container is created, so containers and their log capture keep running
//! when the agent is killed, and an exit that happens while no agent runs
//! is still recorded. A restarted agent reads its records (`store`) and
//! either watches the monitors that still run (through pidfds) or collects
//! the exits they recorded. The monitor is a separate, small binary rather
//! than the agent re-executed, so that each idle container costs only the
//! monitor's few private pages. See `guest-agent/PROCESS-MODEL.md`.
//!
//! # Layout
//!
//! * [`runtime`]: the core (containers, exec, logs), free of gRPC;
//! * [`server`]: the gRPC services, thin over the runtime;
//! * [`monitor`]: the per-container monitor and the exec helper;
//! * [`spec`]: OCI runtime specs built from container configurations;
//! * [`logs`]: the log files (CRI format) and their reader;
//! * [`store`]: the state root on disk; [`model`]: the runtime's types.

pub mod cgroups;
pub mod error;
pub mod events;
pub mod fdpass;
pub mod ids;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod process;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod stdio;
pub mod store;
