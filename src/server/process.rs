//! Process metrics (`process_*`), read from `/proc` at scrape time, as Go's Prometheus
//! client exports them: dashboards and alerts written for the Go binary keep working.

use std::fmt::Write as _;

/// Linux reports CPU times in `/proc` in USER_HZ ticks, which the kernel ABI fixes at 100.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says about this process; `None` where it could not be read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time since the Unix epoch, in seconds.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the current process's statistics.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let fields: Vec<&str> = stat
            .as_deref()
            // The command name may contain spaces and parentheses: fields start after the last ')'.
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Field n of proc(5) is at index n - 3 here.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(u), Some(s)) => Some((u + s) as f64 / TICKS_PER_SECOND),
            _ => None,
        };
        let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let start_time_seconds = match (boot_time, field(22)) {
            (Some(b), Some(t)) => Some(b as f64 + t as f64 / TICKS_PER_SECOND),
            _ => None,
        };
        let resident_memory_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Max open files"))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            });
        Self {
            cpu_seconds,
            resident_memory_bytes,
            virtual_memory_bytes: field(23),
            open_fds,
            max_fds,
            start_time_seconds,
        }
    }

    /// The statistics in OpenMetrics text (no `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: Option<String>| {
            if let Some(v) = value {
                let sample = if kind == "counter" {
                    format!("{name}_total")
                } else {
                    name.to_owned()
                };
                let _ = write!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {v}\n"
                );
            }
        };
        metric(
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.map(|v| v.to_string()),
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_memory_bytes.map(|v| v.to_string()),
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_memory_bytes.map(|v| v.to_string()),
        );
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            self.open_fds.map(|v| v.to_string()),
        );
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            self.max_fds.map(|v| v.to_string()),
        );
        metric(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            self.start_time_seconds.map(|v| v.to_string()),
        );
        out
    }
}

/// The whole `/metrics` text: the process-wide registry plus the process metrics, in
/// OpenMetrics text format.
pub fn encode_all() -> String {
    let registry = crate::metrics::global().encode();
    let body = registry
        .strip_suffix("# EOF\n")
        .unwrap_or(registry.as_str());
    let mut out = String::with_capacity(body.len() + 1024);
    out.push_str(body);
    out.push_str(&ProcessStats::read().encode());
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        assert!(s.resident_memory_bytes.unwrap() > 0);
        assert!(s.open_fds.unwrap() >= 3);
        let start = s.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.0e9 && start <= now + 1.0, "{start} vs {now}");
        assert!(s.cpu_seconds.is_some());
    }

    #[test]
    fn text_is_openmetrics() {
        // Families appear once they have a sample.
        crate::metrics::global()
            .authenticate_latency
            .get_or_create(&crate::metrics::ResultLabel {
                result: "success".into(),
            })
            .observe(0.001);
        let text = encode_all();
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
        assert!(text.contains("\nprocess_open_fds "));
        assert!(text.contains("\nprocess_start_time_seconds "));
        assert!(text.contains("aws_iam_authenticator_authenticate_latency_seconds"));
    }
}
