//! The CRI log line format: `<time> <stream> <F|P> <bytes>\n`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{LogEntry, Stream};

/// Length of a timestamp: `2026-11-28T12:00:00.123456789Z`.
const TIME_LEN: usize = 30;
/// Length of a line's header: timestamp, stream and tag with a space after
/// each (both stream names have 6 letters).
pub(super) const HEADER_LEN: usize = TIME_LEN + 1 + 6 + 1 + 1 + 1;
/// Where the tag is in the header: the bytes before it are the time and
/// the stream.
pub(super) const TAG_AT: usize = HEADER_LEN - 2;
/// The last second with a four-digit year: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

/// Formats `time` as RFC 3339 in UTC with nanoseconds
/// (`2026-11-28T12:00:00.123456789Z`), the log files' timestamp format.
/// Times before 1970 or after 9999 are clamped.
pub fn format_time(time: SystemTime) -> String {
    encode_time(time).iter().map(|&b| char::from(b)).collect()
}

/// The header of the lines of one stream written at one time, with a
/// settable tag.
pub(super) struct Header([u8; HEADER_LEN]);

impl Header {
    /// The header for `stream` at `time`.
    pub(super) fn new(time: SystemTime, stream: Stream) -> Header {
        let mut buf = [b' '; HEADER_LEN];
        buf[..TIME_LEN].copy_from_slice(&encode_time(time));
        buf[TIME_LEN + 1..TIME_LEN + 7].copy_from_slice(stream_name(stream));
        Header(buf)
    }

    /// The header's bytes, tagged as a full line or a partial one.
    pub(super) fn tagged(&mut self, partial: bool) -> &[u8] {
        self.0[TAG_AT] = if partial { b'P' } else { b'F' };
        &self.0
    }
}

fn stream_name(stream: Stream) -> &'static [u8; 6] {
    match stream {
        Stream::Stdout => b"stdout",
        Stream::Stderr => b"stderr",
    }
}

/// The fields of a line's header.
pub(super) struct Fields {
    /// The timestamp.
    pub time: SystemTime,
    /// The stream.
    pub stream: Stream,
    /// Tagged `P`.
    pub partial: bool,
}

/// Parses the header at the start of `line` (which may go on past it).
pub(super) fn parse_header(line: &[u8]) -> Option<Fields> {
    let header = line.get(..HEADER_LEN)?;
    let (time, rest) = header.split_at(TIME_LEN);
    let stream = match rest.get(..8)? {
        b" stdout " => Stream::Stdout,
        b" stderr " => Stream::Stderr,
        _ => return None,
    };
    let partial = match &rest[8..] {
        b"F " => false,
        b"P " => true,
        _ => return None,
    };
    Some(Fields {
        time: parse_time(time)?,
        stream,
        partial,
    })
}

/// Parses one line, its `\n` included, sharing its bytes.
pub(super) fn parse_line(line: Bytes) -> Option<LogEntry> {
    if line.last() != Some(&b'\n') {
        return None;
    }
    let Fields {
        time,
        stream,
        partial,
    } = parse_header(&line)?;
    // A full line keeps its newline, a partial piece had none.
    let end = line.len() - usize::from(partial);
    Some(LogEntry {
        time,
        stream,
        data: line.slice(HEADER_LEN..end),
        partial,
    })
}

/// `time` in the [`format_time`] format.
fn encode_time(time: SystemTime) -> [u8; TIME_LEN] {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, nanos) = if since_epoch.as_secs() > MAX_SECS {
        (MAX_SECS, 999_999_999)
    } else {
        (since_epoch.as_secs(), since_epoch.subsec_nanos())
    };
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let secs_of_day = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.000000000Z";
    put_digits(&mut buf[0..4], year as u64);
    put_digits(&mut buf[5..7], month.into());
    put_digits(&mut buf[8..10], day.into());
    put_digits(&mut buf[11..13], secs_of_day / 3600);
    put_digits(&mut buf[14..16], secs_of_day / 60 % 60);
    put_digits(&mut buf[17..19], secs_of_day % 60);
    put_digits(&mut buf[20..29], nanos.into());
    buf
}

/// Writes the low decimal digits of `value` over `out`, right-aligned.
fn put_digits(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Parses a timestamp in the [`format_time`] format.
fn parse_time(s: &[u8]) -> Option<SystemTime> {
    if s.len() != TIME_LEN || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' {
        return None;
    }
    if s[13] != b':' || s[16] != b':' || s[19] != b'.' || s[29] != b'Z' {
        return None;
    }
    let year = parse_digits(&s[0..4])?;
    let month = parse_digits(&s[5..7])?;
    let day = parse_digits(&s[8..10])?;
    let hour = parse_digits(&s[11..13])?;
    let minute = parse_digits(&s[14..16])?;
    let second = parse_digits(&s[17..19])?;
    let nanos = parse_digits(&s[20..29])?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let whole = Duration::from_secs(secs.unsigned_abs());
    let second_start = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    second_start?.checked_add(Duration::from_nanos(nanos))
}

fn parse_digits(s: &[u8]) -> Option<u64> {
    s.iter().try_fold(0, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// The date of a day counted from 1970-01-01 (proleptic Gregorian), after
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The day counted from 1970-01-01 of a date, after Howard Hinnant's
/// `days_from_civil`.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// A line as the writer writes it.
    fn line(time: SystemTime, stream: Stream, content: &[u8], partial: bool) -> Bytes {
        let mut line = Header::new(time, stream).tagged(partial).to_vec();
        line.extend_from_slice(content);
        line.push(b'\n');
        line.into()
    }

    #[test]
    fn times() {
        for (time, text) in [
            (at(0, 0), "1970-01-01T00:00:00.000000000Z"),
            (
                at(1_795_867_200, 123_456_789),
                "2026-11-28T12:00:00.123456789Z",
            ),
            (at(951_782_400, 1), "2000-02-29T00:00:00.000000001Z"),
            (at(MAX_SECS, 999_999_999), "9999-12-31T23:59:59.999999999Z"),
        ] {
            assert_eq!(format_time(time), text);
            assert_eq!(parse_time(text.as_bytes()), Some(time), "{text}");
        }
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_time(at(MAX_SECS + 10, 0)),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            parse_time(b"1969-12-31T23:59:59.500000000Z"),
            Some(UNIX_EPOCH - Duration::from_millis(500))
        );
        // Every day of a few centuries, leap years included.
        for day in (-1_000_000..1_000_000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m.into(), d.into()), day);
        }
    }

    #[test]
    fn bad_times() {
        for text in [
            "2026-11-28T12:00:00.123456789",
            "2026-11-28T12:00:00.12345678Z",
            "2026-11-28 12:00:00.123456789Z",
            "2026-13-28T12:00:00.123456789Z",
            "2026-11-00T12:00:00.123456789Z",
            "2026-11-28T24:00:00.123456789Z",
            "2026-11-28T12:60:00.123456789Z",
            "2026-11-28T12:00:60.123456789Z",
            "2026-11-28T12:00:00.12345678xZ",
            "+026-11-28T12:00:00.123456789Z",
        ] {
            assert_eq!(parse_time(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn lines_round_trip() {
        let time = at(1_795_867_200, 42);
        let binary: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
        for (stream, content, partial) in [
            (Stream::Stdout, &b"hello"[..], false),
            (Stream::Stderr, b"", false),
            (Stream::Stdout, b"\r", false),
            (Stream::Stdout, b"a\r", true),
            (Stream::Stderr, b" leading space and trailing ", true),
            (Stream::Stderr, &binary, false),
            (Stream::Stdout, &binary, true),
        ] {
            let line = line(time, stream, content, partial);
            let entry = parse_line(line.clone()).expect("parses");
            let mut data = content.to_vec();
            if !partial {
                data.push(b'\n');
            }
            assert_eq!(
                entry,
                LogEntry {
                    time,
                    stream,
                    data: data.into(),
                    partial
                }
            );
        }
        let text = line(time, Stream::Stdout, b"x", false);
        assert_eq!(&text[..], b"2026-11-28T12:00:00.000000042Z stdout F x\n");
    }

    #[test]
    fn bad_lines() {
        let good = line(at(1, 0), Stream::Stdout, b"x", false);
        for bad in [
            &b""[..],
            b"\n",
            b"garbage\n",
            b"1970-01-01T00:00:01.000000000Z stdout F\n",
            b"1970-01-01T00:00:01.000000000Z stdin F x\n",
            b"1970-01-01T00:00:01.000000000Z stdout X x\n",
            b"1970-01-01T00:00:01.000000000Z stdout Fx\n",
            b"1970-01-01T00:00:01.000000000Z  stdout F x\n",
            &good[..good.len() - 1],
            &good[..20],
        ] {
            assert_eq!(
                parse_line(Bytes::copy_from_slice(bad)),
                None,
                "{}",
                bad.escape_ascii()
            );
        }
        // Header bytes that are not UTF-8 must not trip anything.
        let mut odd = good.to_vec();
        odd[3] = 0xff;
        assert_eq!(parse_line(odd.into()), None);
    }
}
