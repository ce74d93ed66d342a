//! The local terminal: raw mode while a remote terminal is attached, and
//! its size.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use libcrun_shim::TerminalSize;
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::pty::Winsize);

/// Stdin in raw mode until dropped (then restored as it was).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin in raw mode when it is a terminal; `None` otherwise.
    pub fn enable() -> nix::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of the terminal on stdout (else stdin), if either is one.
pub fn size() -> Option<TerminalSize> {
    use std::os::fd::AsRawFd;
    let fds = [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()];
    fds.into_iter().find_map(|fd| {
        let mut winsize = nix::pty::Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one Winsize into the struct given.
        let ok = unsafe { tiocgwinsz(fd, &mut winsize) }.is_ok();
        (ok && winsize.ws_row > 0).then_some(TerminalSize {
            rows: winsize.ws_row,
            cols: winsize.ws_col,
        })
    })
}
