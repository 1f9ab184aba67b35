//! `sprig-loadtest`: run a scenario against a running sprig, or draw plots from saved results.
//!
//! ```text
//! sprig-loadtest run --host http://127.0.0.1:8080 --scenario normal [--duration-secs 60] --out normal.json
//! sprig-loadtest plot --out-dir loadtest/results light.json normal.json heavy.json peak.json
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sprig_loadtest::{run, Load, Plan, Summary};

#[derive(Parser)]
#[command(
    name = "sprig-loadtest",
    about = "Load tests for sprig (goose), the original project's scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a running sprig with one scenario.
    Run {
        /// Base URL of the server (loopback unless --allow-remote).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        #[arg(long, value_enum, default_value = "light")]
        scenario: Load,
        /// Override the scenario's duration.
        #[arg(long)]
        duration_secs: Option<u64>,
        /// Images to send (files, or class subdirectories of files).
        #[arg(long, default_value = "data/beans-sample/test")]
        images: PathBuf,
        /// Bearer token for uploads, when the server has one.
        #[arg(long, env = "SPRIG_TOKEN")]
        token: Option<String>,
        /// Allow a non-loopback target.
        #[arg(long)]
        allow_remote: bool,
        /// Write the summary as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write goose's HTML report.
        #[arg(long)]
        html: Option<PathBuf>,
        /// The server's pid: sample its resident memory every second.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Measure HTTP ingest: upload a DIR/<class>/<images> tree through `POST /api/images`.
    Ingest {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        /// The tree to upload (e.g. ../shared/datasets/beans/train).
        dir: PathBuf,
        /// Files per request.
        #[arg(long, default_value_t = 50)]
        files_per_request: usize,
        /// Concurrent requests.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        #[arg(long, env = "SPRIG_TOKEN")]
        token: Option<String>,
        #[arg(long)]
        allow_remote: bool,
    },
    /// Draw throughput and latency plots (PNG) from saved summaries.
    Plot {
        #[arg(long, default_value = "loadtest/results")]
        out_dir: PathBuf,
        /// Summaries written by `run --out`, in the order to plot them.
        #[arg(required = true)]
        summaries: Vec<PathBuf>,
    },
}

fn print(summary: &Summary) {
    println!(
        "{} scenario: {} users for {:.0} s",
        summary.load.name(),
        summary.users,
        summary.duration_s
    );
    println!(
        "{:<18} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "request", "count", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms"
    );
    let rows = summary
        .by_request
        .iter()
        .map(|(n, r)| (n.as_str(), r))
        .chain([("TOTAL", &summary.total)]);
    for (name, r) in rows {
        println!(
            "{name:<18} {:>9} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.requests, r.failures, r.requests_per_second, r.p50_ms, r.p95_ms, r.p99_ms
        );
    }
}

fn plot(out_dir: &std::path::Path, paths: &[PathBuf]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let summaries: Vec<Summary> = paths
        .iter()
        .map(|p| Ok(serde_json::from_slice(&std::fs::read(p)?)?))
        .collect::<anyhow::Result<_>>()?;
    let categories: Vec<String> = summaries
        .iter()
        .map(|s| format!("{} ({} users)", s.load.name(), s.users))
        .collect();
    let column = |f: fn(&sprig_loadtest::RequestSummary) -> f64| {
        summaries.iter().map(|s| f(&s.total)).collect::<Vec<_>>()
    };
    sprig_plots::bar_chart(
        &out_dir.join("throughput.png"),
        "Throughput per scenario (all requests)",
        "requests / s",
        &categories,
        &[("requests/s".into(), column(|r| r.requests_per_second))],
    )?;
    sprig_plots::bar_chart(
        &out_dir.join("latency.png"),
        "Latency per scenario (all requests)",
        "milliseconds",
        &categories,
        &[
            ("p50".into(), column(|r| r.p50_ms)),
            ("p95".into(), column(|r| r.p95_ms)),
            ("p99".into(), column(|r| r.p99_ms)),
        ],
    )?;
    let memory: Vec<sprig_plots::Series> = summaries
        .iter()
        .filter(|s| !s.server_rss_mib.is_empty())
        .map(|s| sprig_plots::Series {
            name: s.load.name().to_string(),
            points: s.server_rss_mib.clone(),
        })
        .collect();
    if !memory.is_empty() {
        sprig_plots::line_chart(
            &out_dir.join("memory.png"),
            "Server resident memory during each scenario",
            sprig_plots::XAxis::Continuous("seconds"),
            "MiB",
            &memory,
        )?;
    }
    println!("wrote plots to {}", out_dir.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            host,
            scenario,
            duration_secs,
            images,
            token,
            allow_remote,
            out,
            html,
            server_pid,
        } => {
            let plan = Plan {
                host,
                load: scenario,
                duration: duration_secs.map(Duration::from_secs),
                images,
                token,
                allow_remote,
                html_report: html,
                server_pid,
            };
            let summary = run(&plan).await?;
            print(&summary);
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_string_pretty(&summary)?)?;
            }
            if summary.total.failures > 0 {
                anyhow::bail!("{} requests failed", summary.total.failures);
            }
            Ok(())
        }
        Command::Plot { out_dir, summaries } => plot(&out_dir, &summaries),
        Command::Ingest {
            host,
            dir,
            files_per_request,
            concurrency,
            token,
            allow_remote,
        } => {
            let plan = sprig_loadtest::IngestPlan {
                host,
                dir,
                files_per_request,
                concurrency,
                token,
                allow_remote,
            };
            let report = sprig_loadtest::ingest(&plan).await?;
            println!(
                "{} files in {:.2} s: {:.1} images/s ({} stored, {} duplicate, {} rejected)",
                report.files,
                report.seconds,
                report.files as f64 / report.seconds,
                report.stored,
                report.duplicates,
                report.rejected
            );
            Ok(())
        }
    }
}
