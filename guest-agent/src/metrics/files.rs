//! Reading and parsing the small text files of cgroupfs and procfs.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Reads files through one buffer, reused from file to file.
#[derive(Debug, Default)]
pub(super) struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// The content of `path`, or `None` when it does not exist.
    ///
    /// Reads straight into the buffer: `read_to_end` on a `File` would
    /// first ask for the file's size and position, two system calls
    /// wasted on pseudo-files that report neither.
    pub fn read<'a>(&'a mut self, path: &'a Path) -> io::Result<Option<Text<'a>>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(named(path, e)),
        };
        let mut len = 0;
        loop {
            if len == self.buf.len() {
                self.buf.resize((2 * len).max(4096), 0);
            }
            match file.read(&mut self.buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(named(path, e)),
            }
        }
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|e| malformed(path, e))?;
        Ok(Some(Text { path, text }))
    }

    /// The number a single-value file holds; 0 when it does not exist.
    pub fn number(&mut self, path: &Path) -> io::Result<u64> {
        self.read(path)?.map_or(Ok(0), |text| text.number())
    }

    /// The number a single-value file holds, `None` when it does not exist.
    pub fn optional_number(&mut self, path: &Path) -> io::Result<Option<u64>> {
        self.read(path)?.map(|text| text.number()).transpose()
    }

    /// A limit: the number the file holds, or 0 for `max` (no limit) and
    /// when it does not exist.
    pub fn limit(&mut self, path: &Path) -> io::Result<u64> {
        self.read(path)?
            .map_or(Ok(0), |text| match text.text.trim() {
                "max" => Ok(0),
                value => text.parse(value),
            })
    }

    /// The values of `keys` in a flat-keyed file ("key value" lines);
    /// `None` for keys it lacks, all `None` when it does not exist.
    pub fn keyed<const N: usize>(
        &mut self,
        path: &Path,
        keys: [&str; N],
    ) -> io::Result<[Option<u64>; N]> {
        let Some(text) = self.read(path)? else {
            return Ok([None; N]);
        };
        let mut values = [None; N];
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let Some(key) = fields.next() else { continue };
            if let Some(i) = keys.iter().position(|k| *k == key) {
                let value = fields
                    .next()
                    .ok_or_else(|| text.malformed(format_args!("no value for {key}")))?;
                values[i] = Some(text.parse(value)?);
            }
        }
        Ok(values)
    }
}

/// The content of a file, with its path for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Text<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> Text<'a> {
    /// The file's lines.
    pub fn lines(&self) -> std::str::Lines<'a> {
        self.text.lines()
    }

    /// The single number the file holds.
    pub fn number(&self) -> io::Result<u64> {
        self.parse(self.text.trim())
    }

    /// Parses a number read from the file.
    pub fn parse(&self, value: &str) -> io::Result<u64> {
        value
            .parse()
            .map_err(|e| self.malformed(format_args!("{value:?}: {e}")))
    }

    /// An error saying what is wrong with the file.
    pub fn malformed(&self, what: impl Display) -> io::Error {
        malformed(self.path, what)
    }
}

/// An `InvalidData` error naming the file.
fn malformed(path: &Path, what: impl Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed {}: {what}", path.display()),
    )
}

/// `e` with the file's name, keeping its kind.
fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn missing_files_read_as_zero_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let mut files = Reader::default();
        assert!(files.read(&path).unwrap().is_none());
        assert_eq!(files.number(&path).unwrap(), 0);
        assert_eq!(files.optional_number(&path).unwrap(), None);
        assert_eq!(files.limit(&path).unwrap(), 0);
        assert_eq!(files.keyed(&path, ["a", "b"]).unwrap(), [None, None]);
    }

    #[test]
    fn numbers_limits_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Reader::default();
        let n = write(dir.path(), "n", "12582912\n");
        assert_eq!(files.number(&n).unwrap(), 12582912);
        assert_eq!(files.optional_number(&n).unwrap(), Some(12582912));
        assert_eq!(files.limit(&n).unwrap(), 12582912);
        let max = write(dir.path(), "max", "max\n");
        assert_eq!(files.limit(&max).unwrap(), 0);
        // Keys match whole words only: "file" is not "file_mapped".
        let stat = write(dir.path(), "stat", "file_mapped 7\nanon 1\nfile 2\n\n");
        assert_eq!(
            files.keyed(&stat, ["file", "anon", "shmem"]).unwrap(),
            [Some(2), Some(1), None]
        );
    }

    #[test]
    fn files_larger_than_the_buffer_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut content: String = (0..2000).map(|i| format!("key{i} {i}\n")).collect();
        content.push_str("last 42\n");
        let path = write(dir.path(), "big", &content);
        let mut files = Reader::default();
        assert_eq!(
            files.keyed(&path, ["key0", "last"]).unwrap(),
            [Some(0), Some(42)]
        );
    }

    #[test]
    fn malformed_content_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Reader::default();
        let cases = [
            ("word", "twelve\n"),
            ("empty", ""),
            ("negative", "-1\n"),
            ("max_is_no_number", "max\n"),
        ];
        for (name, content) in cases {
            let path = write(dir.path(), name, content);
            let err = files.number(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        }
        let keyed = write(dir.path(), "keyed", "anon 1\nfile 2x\n");
        let err = files.keyed(&keyed, ["file"]).unwrap_err();
        assert!(err.to_string().contains("keyed"), "{err}");
        let no_value = write(dir.path(), "no_value", "anon\n");
        assert!(files.keyed(&no_value, ["anon"]).is_err());
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(
            files.number(&binary).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
