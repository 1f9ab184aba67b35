//! Host and process resource sampling. CPU usage needs two readings some time apart, so a
//! background task refreshes a snapshot every second and requests read the latest one.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceSnapshot {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub disk_percent: f64,
    pub process_rss_bytes: u64,
}

#[derive(Clone)]
pub struct Monitor {
    latest: Arc<RwLock<ResourceSnapshot>>,
}

impl Monitor {
    /// Starts sampling; `data_dir` selects the disk whose usage is reported.
    pub fn start(data_dir: &Path) -> Self {
        let latest = Arc::new(RwLock::new(ResourceSnapshot::default()));
        let shared = latest.clone();
        let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        std::thread::Builder::new()
            .name("sprig-monitor".into())
            .spawn(move || sample_forever(&shared, &data_dir))
            .expect("spawn monitor thread");
        Self { latest }
    }

    pub fn snapshot(&self) -> ResourceSnapshot {
        *self.latest.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn sample_forever(latest: &RwLock<ResourceSnapshot>, data_dir: &Path) {
    let (mut system, mut disks) = match (System::new(), Disks::new_with_refreshed_list()) {
        (Ok(system), Ok(disks)) => (system, disks),
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "system monitoring is unavailable on this platform");
            return;
        }
    };
    let pid = Pid::from_u32(std::process::id());
    loop {
        system.refresh_cpu_usage();
        system.refresh_memory();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        disks.refresh(true);
        let memory_percent = percent(system.used_memory(), system.total_memory());
        // The disk whose mount point is the longest prefix of the data dir.
        let disk_percent = disks
            .iter()
            .filter(|d| data_dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map_or(0.0, |d| {
                percent(d.total_space() - d.available_space(), d.total_space())
            });
        let snapshot = ResourceSnapshot {
            cpu_percent: f64::from(system.global_cpu_usage()),
            memory_percent,
            disk_percent,
            process_rss_bytes: system.process(pid).map_or(0, |p| p.memory()),
        };
        *latest.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 / whole as f64 * 1000.0).round() / 10.0
    }
}

/// `2d 5h 23m 15s`, as the original project shows uptime.
pub fn format_uptime(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (hours, rest) = (rest / 3600, rest % 3600);
    let (minutes, secs) = (rest / 60, rest % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {secs}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::format_uptime;

    #[test]
    fn uptime_reads_like_the_original() {
        assert_eq!(
            format_uptime(2 * 86_400 + 5 * 3600 + 23 * 60 + 15),
            "2d 5h 23m 15s"
        );
        assert_eq!(format_uptime(3600), "1h 0m 0s");
        assert_eq!(format_uptime(75), "1m 15s");
        assert_eq!(format_uptime(9), "9s");
    }
}
