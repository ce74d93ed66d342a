//! The guest agent's OCI image store: images pulled from registries with
//! oci-client into a content-addressed blob store, their layers unpacked
//! once each (safely, whatever a layer holds) and shared by every image
//! and container that uses them, and the root filesystems containers run
//! on: an overlayfs mount per container, or a flattened copy for callers
//! who want a plain directory. It knows nothing of gRPC or of libcrun.
//!
//! - [`reference`]: Docker's reference normalisation, platforms;
//! - [`auth`]: credentials, from a request or a docker `config.json`;
//! - [`store`]: the store on disk, the index, leases, garbage collection;
//! - [`pull`]: pulling with progress;
//! - [`unpack`]: applying a layer safely;
//! - [`overlay`]: a container's overlay mount.

pub mod auth;
mod error;
pub mod overlay;
pub mod pull;
pub mod reference;
pub mod store;
pub mod unpack;

pub use error::{Error, Result};
pub use pull::{LayerProgress, LayerState, PullProgress, PullRequest};
pub use store::{Image, ImageConfig, Layer, Removed, Store, StoreOptions};
