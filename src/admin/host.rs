//! Java-compatible formatting and facts about the host, for the four-letter words.

use std::path::Path;

/// `Double.toString`: "0.0", "0.7561", "12.5", "1.0E7", "1.0E-4", "NaN", "Infinity".
pub fn java_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_string();
    }
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let mut text = format!("{value}");
        if !text.contains('.') {
            text.push_str(".0");
        }
        text
    } else {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mut mantissa = mantissa.to_string();
        if !mantissa.contains('.') {
            mantissa.push_str(".0");
        }
        format!("{mantissa}E{exponent}")
    }
}

/// `java.util.Date.toString()` in UTC: "Thu Jan 01 00:00:00 UTC 1970".
pub fn java_date_utc(unix_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = unix_ms / 1000;
    let days = seconds / 86_400;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        second_of_day / 3600,
        (second_of_day / 60) % 60,
        second_of_day % 60,
        year
    )
}

/// Days since 1970-01-01 -> (year, month 1..=12, day 1..=31) (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Bytes in the files under `path`, recursively (`ZooKeeperServer.getDirSize`); a file
/// gives its own length, a missing path 0. Symbolic links are not followed into.
pub fn dir_size_bytes(path: &Path) -> u64 {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_dir() {
        return metadata.len();
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| dir_size_bytes(&entry.path()))
        .sum()
}

/// (open, max) file descriptors of this process, -1 where unknown (`OSMXBean`).
pub fn file_descriptor_counts() -> (i64, i64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.count() as i64)
        .unwrap_or(-1);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| parse_max_open_files(&limits))
        .unwrap_or(-1);
    (open, max)
}

/// The soft limit of the "Max open files" line of /proc/self/limits.
fn parse_max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(i64::MAX);
    }
    soft.parse().ok()
}

/// `Environment.list()` with this process's values. The Java-only keys keep ZooKeeper's
/// "unknown" value `<NA>` (tools read `zookeeper.version`, `host.name`, `os.*`, `user.*`);
/// the memory lines are the host's available and total memory and this process's resident
/// size, in MB.
pub fn environment(version: &str) -> Vec<(&'static str, String)> {
    const NA: &str = "<NA>";
    let read_trimmed = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let env_or_na = |name: &str| std::env::var(name).unwrap_or_else(|_| NA.to_string());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        other => other,
    };
    let os_name = match std::env::consts::OS {
        "linux" => "Linux".to_string(),
        "macos" => "Mac OS X".to_string(),
        other => other.to_string(),
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let megabytes = |text: &str, key: &str| {
        kilobytes_field(text, key).map_or_else(|| NA.to_string(), |kb| format!("{}MB", kb / 1024))
    };
    vec![
        ("zookeeper.version", version.to_string()),
        (
            "host.name",
            read_trimmed("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| NA.to_string()),
        ),
        ("java.version", NA.to_string()),
        ("java.vendor", NA.to_string()),
        ("java.home", NA.to_string()),
        ("java.class.path", NA.to_string()),
        ("java.library.path", env_or_na("LD_LIBRARY_PATH")),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", NA.to_string()),
        ("os.name", os_name),
        ("os.arch", arch.to_string()),
        (
            "os.version",
            read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| NA.to_string()),
        ),
        ("user.name", env_or_na("USER")),
        ("user.home", env_or_na("HOME")),
        (
            "user.dir",
            std::env::current_dir().map_or_else(|_| NA.to_string(), |d| d.display().to_string()),
        ),
        ("os.memory.free", megabytes(&meminfo, "MemAvailable:")),
        ("os.memory.max", megabytes(&meminfo, "MemTotal:")),
        ("os.memory.total", megabytes(&status, "VmRSS:")),
    ]
}

/// `Key:   1234 kB` lines of /proc files.
fn kilobytes_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_formats() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(5.0), "5.0");
        assert_eq!(java_double(0.7561), "0.7561");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(-2.0), "-2.0");
        assert_eq!(java_double(f64::NAN), "NaN");
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2024-02-29 13:45:07.999 UTC (a leap day, a Thursday).
        assert_eq!(
            java_date_utc(1_709_214_307_999),
            "Thu Feb 29 13:45:07 UTC 2024"
        );
        // 2000-03-01 00:00:00 UTC, a Wednesday.
        assert_eq!(
            java_date_utc(951_868_800_000),
            "Wed Mar 01 00:00:00 UTC 2000"
        );
    }

    #[test]
    fn dir_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_size_bytes(dir.path()), 15);
        assert_eq!(dir_size_bytes(&dir.path().join("a")), 10);
        assert_eq!(dir_size_bytes(&dir.path().join("missing")), 0);
    }

    #[test]
    fn file_descriptors_and_limits() {
        let (open, max) = file_descriptor_counts();
        if cfg!(target_os = "linux") {
            assert!(open > 0);
            assert!(max >= open);
        }
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024));
    }

    #[test]
    fn environment_has_zookeeper_keys_in_order() {
        let env = environment("3.8.4-x, built on y");
        let keys: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.first(), Some(&"zookeeper.version"));
        assert_eq!(env[0].1, "3.8.4-x, built on y");
        for key in [
            "host.name",
            "os.name",
            "os.arch",
            "os.version",
            "user.dir",
            "os.memory.total",
        ] {
            assert!(keys.contains(&key), "{key}");
        }
        assert_eq!(keys.len(), 18);
    }
}
