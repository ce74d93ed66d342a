//! An owned, parsed OCI runtime spec.

use std::ffi::CString;
use std::path::Path;
use std::ptr::NonNull;

use crate::context::lock;
use crate::error::{Error, Result};
use crate::ffi;

/// A container definition parsed by libcrun from an OCI runtime spec
/// (`config.json`). Freed on drop.
#[derive(Debug)]
pub struct Container {
    raw: NonNull<ffi::libcrun_container_t>,
}

// SAFETY: the handle owns its allocation; libcrun keeps no reference to it
// between calls, so it may move to another thread.
unsafe impl Send for Container {}

impl Container {
    /// Parses a runtime spec given as JSON.
    pub fn from_json(json: &str) -> Result<Container> {
        let json = CString::new(json).map_err(|_| Error::NulByte { what: "spec JSON" })?;
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        let _guard = lock();
        // SAFETY: `json` is a valid C string for the duration of the call;
        // libcrun copies what it keeps.
        let raw = unsafe { ffi::libcrun_container_load_from_memory(json.as_ptr(), &mut err) };
        // SAFETY: on failure `err` is libcrun's error for this call.
        NonNull::new(raw)
            .map(|raw| Container { raw })
            .ok_or_else(|| unsafe { Error::from_raw(err, -1) })
    }

    /// Parses a runtime spec from a file.
    pub fn from_file(path: &Path) -> Result<Container> {
        let path = path_to_cstring(path, "spec path")?;
        let mut err: ffi::libcrun_error_t = std::ptr::null_mut();
        let _guard = lock();
        // SAFETY: `path` is a valid C string for the duration of the call.
        let raw = unsafe { ffi::libcrun_container_load_from_file(path.as_ptr(), &mut err) };
        // SAFETY: on failure `err` is libcrun's error for this call.
        NonNull::new(raw)
            .map(|raw| Container { raw })
            .ok_or_else(|| unsafe { Error::from_raw(err, -1) })
    }

    /// The raw handle, for calls this crate does not wrap.
    pub fn as_mut_ptr(&mut self) -> *mut ffi::libcrun_container_t {
        self.raw.as_ptr()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _guard = lock();
        // SAFETY: `raw` came from libcrun's loader and is freed only here.
        unsafe { ffi::libcrun_container_free(self.raw.as_ptr()) };
    }
}

/// Converts a path to a C string.
pub(crate) fn path_to_cstring(path: &Path, what: &'static str) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::NulByte { what })
}
