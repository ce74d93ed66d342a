//! Signal names and numbers as clients write them.

use std::str::FromStr;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// The highest signal number Linux delivers (`_NSIG - 1`, the last
/// real-time signal).
const MAX_SIGNAL: i32 = 64;

/// Parses a signal given by name, with or without the `SIG` prefix and in
/// any case ("SIGTERM", "TERM", "term"), or by number ("15", 1 to 64).
pub fn parse(s: &str) -> Result<i32> {
    let invalid = || Error::InvalidArgument(format!("invalid signal {s:?}"));
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_SIGNAL).contains(n))
            .ok_or_else(invalid);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name)
        .map(|signal| signal as i32)
        .map_err(|_| invalid())
}

/// The name of signal `sig` ("SIGTERM"); `None` for numbers without a name
/// (real-time signals, invalid numbers).
pub fn name(sig: i32) -> Option<&'static str> {
    Signal::try_from(sig).ok().map(Signal::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        for (input, expected) in [
            ("SIGTERM", libc::SIGTERM),
            ("TERM", libc::SIGTERM),
            ("term", libc::SIGTERM),
            ("SigTerm", libc::SIGTERM),
            ("15", libc::SIGTERM),
            ("KILL", libc::SIGKILL),
            ("sigusr1", libc::SIGUSR1),
            ("HUP", libc::SIGHUP),
            ("1", 1),
            ("34", 34),
            ("64", 64),
        ] {
            assert_eq!(parse(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for input in [
            "",
            "0",
            "65",
            "-1",
            "+15",
            "15x",
            "99999999999",
            "SIG",
            "SIGFOO",
            "FOO",
            "SIGSIGTERM",
            " TERM",
        ] {
            match parse(input) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains(&format!("{input:?}")), "{msg}")
                }
                other => panic!("{input:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }

    #[test]
    fn names_signals() {
        assert_eq!(name(libc::SIGTERM), Some("SIGTERM"));
        assert_eq!(name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(name(40), None);
        assert_eq!(name(0), None);
        assert_eq!(name(-3), None);
        for sig in 1..=31 {
            let n = name(sig).expect("standard signals have names");
            assert_eq!(parse(n).unwrap(), sig);
        }
    }
}
