//! Validation of the names clients choose: container and exec ids.

use crate::error::{Error, Result};

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Checks a container or exec id: 1 to 128 characters of `[A-Za-z0-9_.-]`,
/// starting with a letter or digit. Ids name directories, so anything that
/// could escape one (`/`, `..`, NUL) is refused by construction.
pub fn validate(kind: &str, id: &str) -> Result<()> {
    let bad = |why: &str| {
        // A hostile id is not repeated in full.
        let shown: String = id.chars().take(MAX_ID_LEN).collect();
        let more = if shown.len() < id.len() { "..." } else { "" };
        Err(Error::InvalidArgument(format!(
            "invalid {kind} id {shown:?}{more}: {why}"
        )))
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 128 characters");
    }
    if !id.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return bad(&format!(
            "character {c:?} not allowed (only A-Z a-z 0-9 _ . -)"
        ));
    }
    Ok(())
}

/// A fresh random id (24 hex digits), for exec processes created without one.
pub fn generate() -> String {
    let mut bytes = [0u8; 12];
    // getrandom(2) never fails for requests this small once the pool is
    // initialised; fall back to time and pid if it does.
    // SAFETY: writes at most `bytes.len()` bytes into `bytes`.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&seed.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ids() {
        for id in ["a", "web-1", "A.b_c-9", "0", &"x".repeat(128)] {
            validate("container", id).unwrap();
        }
    }

    #[test]
    fn bad_ids_are_invalid_arguments() {
        for id in [
            "",
            "../x",
            "/",
            "a/b",
            ".",
            "..",
            "-a",
            "_a",
            "a\0b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            match validate("container", id) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains("container id"), "{msg}"),
                other => panic!("{id:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = generate();
        let b = generate();
        validate("exec", &a).unwrap();
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
