//! Process metrics (`process_*`), read from `/proc` at scrape time, as Go's Prometheus
//! client exports them: dashboards and alerts written for the Go binary keep working.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

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
}

/// The `process_*` metrics, read from `/proc` at every scrape. Register it on the root
/// registry (unprefixed), with [`register`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCollector;

/// Registers the process metrics on `registry` (the root one: their names carry no
/// prefix).
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        if let Some(v) = s.cpu_seconds {
            let help = "Total user and system CPU time spent in seconds.";
            describe(
                &mut encoder,
                "process_cpu_seconds",
                help,
                ConstCounter::new(v),
            )?;
        }
        let bytes = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                s.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                s.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds,
            ),
        ];
        for (name, help, value) in bytes {
            if let Some(v) = value {
                describe(&mut encoder, name, help, ConstGauge::new(v))?;
            }
        }
        if let Some(v) = s.start_time_seconds {
            let help = "Start time of the process since unix epoch in seconds.";
            describe(
                &mut encoder,
                "process_start_time_seconds",
                help,
                ConstGauge::new(v),
            )?;
        }
        Ok(())
    }
}

fn describe(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let sample = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(sample)
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
    fn collector_text_is_upstreams() {
        let mut root = crate::metrics::registry();
        register(&mut root);
        let text = crate::metrics::encode(&root);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(
            text.contains("# TYPE process_cpu_seconds counter\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("# TYPE process_resident_memory_bytes gauge\n"));
        assert!(text.contains("# HELP process_open_fds Number of open file descriptors.\n"));
        let fds = crate::metrics::sample(&text, "process_open_fds", "").unwrap();
        assert!(fds >= 3.0, "{text}");
        assert!(crate::metrics::sample(&text, "process_start_time_seconds", "").unwrap() > 1.0e9);
    }
}
