//! The process's own resource use, in the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, …), read
//! from `/proc` at each scrape. Elsewhere than Linux nothing is reported.
//!
//! Every service of a process reports the same numbers under its own `service` label: when
//! several share a process, take one per `instance` (`max by (instance)`), never the sum.

use std::fmt::Write as _;

/// The kernel reports CPU time in USER_HZ ticks, 100 a second on every architecture MedCov
/// runs on (Prometheus's own procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    pub open_fds: f64,
    pub max_fds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Reads this process's numbers; `None` where `/proc` is not there.
pub fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident_kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|dir| dir.count() as f64).unwrap_or(0.0);
    let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(3))
            .and_then(|soft| soft.parse::<f64>().ok())
    });
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|v| v.trim().parse::<f64>().ok())
    });
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        resident_bytes: resident_kb * 1024.0,
        virtual_bytes: field(23).unwrap_or(0.0),
        threads: field(20).unwrap_or(0.0),
        open_fds,
        max_fds,
        start_time_seconds: boot.zip(field(22)).map(|(boot, ticks)| boot + ticks / USER_HZ),
    })
}

/// The sample in the text exposition format, each series labelled with `service`.
pub fn render(service: &str) -> String {
    let Some(s) = sample() else { return String::new() };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{service=\"{service}\"}} {value}");
            out.push('\n');
        }
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "CPU time the process has used, user and system, in seconds.",
        Some(s.cpu_seconds),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process, in bytes.",
        Some(s.resident_bytes),
    );
    metric("process_virtual_memory_bytes", "gauge", "Virtual memory of the process, in bytes.", Some(s.virtual_bytes));
    metric("process_threads", "gauge", "Operating-system threads of the process.", Some(s.threads));
    metric("process_open_fds", "gauge", "File descriptors the process has open.", Some(s.open_fds));
    metric("process_max_fds", "gauge", "The most file descriptors the process may open.", s.max_fds);
    metric(
        "process_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
        s.start_time_seconds,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_measured() {
        let s = sample().expect("/proc on Linux");
        assert!(s.cpu_seconds >= 0.0);
        assert!(s.resident_bytes > 1_000_000.0, "{s:?}");
        assert!(s.open_fds >= 3.0, "{s:?}");
        assert!(s.max_fds.unwrap_or(0.0) >= s.open_fds, "{s:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = s.start_time_seconds.expect("a start time");
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0, "{started} vs {now}");
        let text = render("hospital");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
        assert!(text.contains("process_open_fds{service=\"hospital\"} "), "{text}");
    }
}
