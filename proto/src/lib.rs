//! The libcrun-shim v1 gRPC protocol.
//!
//! The `.proto` files in this crate's `libcrun_shim/v1/` folder are the
//! public API of both the guest agent (`crun-shim-agent`) and the host
//! service (`crun-shimd`); this crate holds the code tonic and prost generate
//! from them (messages, clients and server traits) and the encoded file
//! descriptor set that servers register for gRPC server reflection.
//!
//! ```
//! use libcrun_shim_proto::v1::{ContainerConfig, CreateContainerRequest, container_config::Root};
//!
//! let request = CreateContainerRequest {
//!     config: Some(ContainerConfig {
//!         id: "web".into(),
//!         root: Some(Root::Rootfs("/srv/rootfs".into())),
//!         command: vec!["httpd".into(), "-f".into()],
//!         ..Default::default()
//!     }),
//!     agent: String::new(),
//! };
//! assert_eq!(request.config.unwrap().id, "web");
//! ```

/// Version 1 of the protocol (protobuf package `libcrun_shim.v1`).
///
/// Every message, field, service and RPC carries the documentation written
/// in the `.proto` files.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("libcrun_shim.v1");
}

/// Kubernetes' Container Runtime Interface v1 (protobuf package
/// `runtime.v1`, vendored from `k8s.io/cri-api`: `cri/README.md`), with the
/// feature `cri`: what a CRI server such as the SDK's `CriServer` serves.
#[cfg(feature = "cri")]
pub mod cri {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("runtime.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of the v1 protocol (with
/// its imports and source comments), for `tonic-reflection` and for clients
/// that build requests at run time.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("libcrun_shim_v1_descriptor");

/// The protobuf package of version 1 of the protocol.
pub const PACKAGE_V1: &str = "libcrun_shim.v1";

/// The largest message, in bytes, that the daemon, the agent and the SDK
/// send or accept by default: one limit end to end, so that what passes the
/// daemon passes the agent. 64 MiB: the largest answer of the API, an
/// ExecSync with two 16 MiB outputs, fits; lists of any size go through
/// `ListStream`.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The Unix socket `crun-shimd` serves the protocol on by default, and
/// where its clients look for it.
pub const DEFAULT_SOCKET: &str = "/run/libcrun-shim/crun-shimd.sock";

pub mod serving;
