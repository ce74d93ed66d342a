//! Keeping an idle monitor small.
//!
//! A monitor lives as long as its container, and most of that time it waits
//! in `poll`. Setting the container up (libcrun's create or exec, parsing
//! the spec, the libraries' start-up) touched far more code and heap than
//! the loop that follows ever will: without help those pages stay mapped
//! for the container's whole life, and RSS counts each of them in every
//! monitor. [`settle`] lets go of them once the setup is over.

/// Allocations of this size and above get pages of their own (mapped on
/// their first write, unmapped when freed) rather than heap memory that
/// the setup may have dirtied: the log and read buffers of an idle
/// container then cost nothing.
const OWN_PAGES_FROM: libc::c_int = 64 * 1024;

/// Sets the allocator up for a long-lived, mostly idle, single-threaded
/// process; call first thing.
pub fn configure_allocator() {
    // SAFETY: mallopt only changes the allocator's tunables.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_PAGES_FROM);
        libc::mallopt(libc::M_TRIM_THRESHOLD, OWN_PAGES_FROM);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives back what the setup left behind: free heap memory (to the
/// kernel), and the mappings of read-only file pages (code and constants
/// of the binary and its libraries) that this process never changed.
///
/// Dropping a clean file page from this process's page tables is what
/// memory reclaim does to any process at any time: the page stays in the
/// page cache (for the other monitors mapping it), and the next access maps
/// it again. Mappings holding pages this process changed (relocations,
/// data, copies on write) are left alone, so nothing is lost. Errors are
/// ignored: this only saves memory.
pub fn settle() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(maps) = std::fs::read("/proc/self/smaps") else {
        return;
    };
    let clean = clean_file_mappings(&maps);
    drop(maps);
    for (start, end) in clean {
        // SAFETY: the range is a whole mapping of this process, read-only
        // and file-backed with no private page in it: MADV_DONTNEED only
        // unmaps page-cache pages, which the next access faults back in
        // with the same contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
    // SAFETY: as above; the parsing allocated.
    unsafe { libc::malloc_trim(0) };
}

/// The address ranges of the mappings in `smaps` (the format of
/// `/proc/PID/smaps`) that are file-backed, not writable, and hold no page
/// of this process's own (no private dirty, no anonymous page).
fn clean_file_mappings(smaps: &[u8]) -> Vec<(usize, usize)> {
    let mut clean = Vec::new();
    // The mapping being read, while it still qualifies.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            current = None;
            continue;
        };
        if let Some(range) = mapping_header(line) {
            clean.extend(current.take());
            current = range;
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        if matches!(key, "Private_Dirty:" | "Anonymous:" | "Swap:") && value != "0" {
            current = None;
        }
    }
    clean.extend(current);
    clean
}

/// Parses a mapping's first line (`START-END PERMS OFFSET DEV INODE PATH`):
/// `Some(Some(range))` for a read-only file mapping, `Some(None)` for any
/// other mapping, `None` when `line` is not a mapping's first line.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let inode = fields.nth(2)?;
    let path = fields.next().unwrap_or("");
    let read_only_file = perms.len() == 4
        && !perms.contains('w')
        && perms.ends_with('p')
        && inode != "0"
        && path.starts_with('/');
    Some(read_only_file.then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55c0aa000000-55c0aa010000 r--p 00000000 fe:00 123 /usr/bin/monitor
Rss:                  64 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
55c0aa010000-55c0aa020000 r--p 00010000 fe:00 123 /usr/bin/monitor
Rss:                  64 kB
Private_Dirty:        12 kB
Anonymous:            12 kB
Swap:                  0 kB
55c0aa020000-55c0aa030000 rw-p 00020000 fe:00 123 /usr/bin/monitor
Private_Dirty:         0 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 456 /usr/lib/libc.so.6
Rss:                 900 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me sd
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
Anonymous:            40 kB
7ffc00000000-7ffc00001000 r-xp 00000000 00:00 0                          [vdso]
Private_Dirty:         0 kB
7f0000400000-7f0000500000 r--s 00000000 00:05 789 /memfd:shared (deleted)
Private_Dirty:         0 kB
";

    #[test]
    fn picks_only_clean_read_only_file_mappings() {
        assert_eq!(
            clean_file_mappings(SMAPS.as_bytes()),
            [
                (0x55c0_aa00_0000, 0x55c0_aa01_0000),
                (0x7f00_0000_0000, 0x7f00_0010_0000)
            ]
        );
    }

    /// This process's resident set size, in KiB.
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    #[test]
    fn settling_drops_clean_file_pages_and_keeps_their_contents() {
        use std::os::fd::AsRawFd;
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut file, &data).unwrap();
        // Written back, so that the pages are clean: smaps counts a page
        // still dirty in the page cache as the mapping's private dirty, and
        // settling rightly leaves such mappings alone.
        file.sync_all().unwrap();
        // SAFETY: a private read-only mapping of a file this test owns.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                data.len(),
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: the mapping is data.len() bytes long and lives until munmap.
        let mapped = unsafe { std::slice::from_raw_parts(map as *const u8, data.len()) };
        let sum = |bytes: &[u8]| {
            bytes
                .iter()
                .step_by(4096)
                .map(|&b| u64::from(b))
                .sum::<u64>()
        };
        let touched = sum(mapped);
        let before = rss_kib();
        settle();
        let after = rss_kib();
        assert!(
            after + 6 * 1024 < before,
            "RSS {before} KiB before, {after} KiB after"
        );
        // The pages come back, unchanged.
        assert_eq!(sum(mapped), touched);
        assert_eq!(mapped, &data[..]);
        // SAFETY: unmaps the mapping made above, no longer used.
        unsafe { libc::munmap(map, data.len()) };
    }
}
