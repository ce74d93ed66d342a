//! libcrun's errors as a Rust error.

use std::ffi::CStr;

use crate::ffi;

/// The result of a libcrun-sys call.
pub type Result<T> = std::result::Result<T, Error>;

/// An error of libcrun or of this crate's use of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libcrun reported a failure.
    #[error("{message}")]
    Libcrun {
        /// libcrun's status: the errno of the failed system call, or 0.
        errno: i32,
        /// libcrun's message, followed by the errno's description when
        /// there is one (as `crun` prints it).
        message: String,
    },
    /// libcrun failed without saying why. It does so when a process it
    /// forked fails to set itself up (an executable or working directory
    /// missing in the container, say): the process reports on its own
    /// stderr, and libcrun only sees it exit.
    #[error("libcrun failed with status {status} and no message")]
    Unreported {
        /// libcrun's return value.
        status: i32,
    },
    /// A string argument held a NUL byte and cannot be passed to C.
    #[error("{what} contains a NUL byte")]
    NulByte {
        /// Which argument.
        what: &'static str,
    },
    /// A call that forks was made from a multi-threaded process.
    #[error(
        "libcrun forks the calling process, which must be single-threaded (it has {threads} threads)"
    )]
    MultiThreaded {
        /// The number of threads seen.
        threads: usize,
    },
    /// A system call made by this crate failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The errno behind the error, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Libcrun { errno, .. } if *errno != 0 => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Takes ownership of a libcrun error, converts it and frees it.
    ///
    /// # Safety
    /// `err` must be null or a valid error returned by libcrun, not yet
    /// released.
    pub(crate) unsafe fn from_raw(mut err: ffi::libcrun_error_t, ret: i32) -> Error {
        if err.is_null() {
            return Error::Unreported { status: ret };
        }
        // SAFETY: the caller guarantees `err` points to a live libcrun error
        // whose `msg`, when set, is a NUL-terminated string.
        let (errno, msg) = unsafe {
            let e = &*err;
            let msg = if e.msg.is_null() {
                String::new()
            } else {
                CStr::from_ptr(e.msg).to_string_lossy().into_owned()
            };
            (e.status, msg)
        };
        // SAFETY: releases the error exactly once; libcrun resets `err`.
        unsafe { ffi::libcrun_error_release(&mut err) };
        let message = if errno != 0 {
            format!("{msg}: {}", std::io::Error::from_raw_os_error(errno))
        } else {
            msg
        };
        Error::Libcrun { errno, message }
    }
}
