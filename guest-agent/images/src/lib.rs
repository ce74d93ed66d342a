//! The guest agent's OCI image store: images pulled from registries with
//! oci-client into a content-addressed blob store, their layers unpacked
//! once each (safely, whatever a layer holds) and shared by every image
//! and container that uses them, and the root filesystems containers run
//! on. It knows nothing of gRPC or of libcrun.

mod error;

pub use error::{Error, Result};
