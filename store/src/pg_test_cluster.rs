//! Test support: a throwaway PostgreSQL cluster (Debian's `postgresql` package), started with
//! `initdb` + `postgres` in a temp dir on a loopback port with fsync off, as an unprivileged user
//! (postgres refuses to run as root), and stopped when the test process exits. No mocks: the
//! PostgreSQL store's tests and the multi-replica tests run against this real server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running cluster; `postgres` is its superuser, with trust authentication on 127.0.0.1.
pub struct PgCluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    /// The server process, until the owning thread takes it.
    server: Mutex<Option<Child>>,
    /// Requests to the owning thread to restart the server.
    restarts: Option<Mutex<std::sync::mpsc::Sender<Restart>>>,
    databases: AtomicU32,
}

/// The cluster shared by the tests of this process, started on first use; `Err` says why there
/// is none (PostgreSQL not installed), for a visible skip.
pub fn shared() -> Result<&'static PgCluster, String> {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            // Started, and restarted, from a thread that lives as long as the process: the server
            // gets SIGQUIT when the thread that started it ends (PR_SET_PDEATHSIG), i.e. when the
            // tests end.
            let (started, start_result) = std::sync::mpsc::channel();
            let (restarts, restart_requests) = std::sync::mpsc::channel::<Restart>();
            std::thread::spawn(move || {
                let cluster = match PgCluster::start() {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let (port, dir, bin) = (cluster.port, cluster.dir.clone(), cluster.bin.clone());
                let mut server = cluster.server.lock().unwrap().take();
                let _ = started.send(Ok(cluster));
                for (down_for, done) in restart_requests {
                    let result = (|| {
                        if let Some(mut child) = server.take() {
                            // Immediate shutdown, as after a crash: the next start recovers.
                            // SAFETY: kill(2) on our own child's pid.
                            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
                            let _ = child.wait();
                        }
                        std::thread::sleep(down_for);
                        server = Some(launch(&bin, &dir, port, unprivileged_user()?)?);
                        Ok(())
                    })();
                    let _ = done.send(result);
                }
                loop {
                    std::thread::park();
                }
            });
            let mut cluster = start_result
                .recv()
                .map_err(|_| "the cluster thread died".to_string())??;
            cluster.restarts = Some(Mutex::new(restarts));
            Ok(cluster)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A restart request: how long the server stays down, and where to report.
type Restart = (Duration, std::sync::mpsc::Sender<Result<(), String>>);

/// The shared cluster, or `None` after a visible skip of `test` (a stderr line, and a line in
/// the file `SPRIG_SKIP_LOG` names, which `scripts/test.sh` lists at the end).
pub fn cluster_or_skip(test: &str) -> Option<&'static PgCluster> {
    match shared() {
        Ok(cluster) => Some(cluster),
        Err(reason) => {
            eprintln!("SKIP {test}: {reason}");
            if let Some(log) = std::env::var_os("SPRIG_SKIP_LOG") {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log);
                let line = format!("{test}: {reason}\n");
                std::io::Write::write_all(
                    &mut file.expect("SPRIG_SKIP_LOG opens"),
                    line.as_bytes(),
                )
                .expect("SPRIG_SKIP_LOG takes the line");
            }
            None
        }
    }
}

impl PgCluster {
    fn start() -> Result<PgCluster, String> {
        let bin = find_bin_dir()?;
        remove_dead_clusters();
        let dir = std::env::temp_dir().join(format!(
            "sprig-pg-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let owner = unprivileged_user()?;
        if let Some((uid, gid)) = owner {
            chown(&dir, uid, gid)?;
        }
        let data = dir.join("data");
        let status = as_user(Command::new(bin.join("initdb")), owner, false)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !status.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        let port = free_port()?;
        let server = launch(&bin, &dir, port, owner)?;
        Ok(PgCluster {
            port,
            dir,
            bin,
            server: Mutex::new(Some(server)),
            restarts: None,
            databases: AtomicU32::new(0),
        })
    }

    /// Stops the server at once (immediate shutdown, as a crash) and starts it again on the same
    /// port and data, `down_for` later; returns once it takes connections again.
    pub fn restart(&self, down_for: Duration) -> Result<(), String> {
        let (done, result) = std::sync::mpsc::channel();
        let restarts = self.restarts.as_ref().ok_or("not the shared cluster")?;
        restarts
            .lock()
            .unwrap()
            .send((down_for, done))
            .map_err(|_| "the cluster thread is gone".to_string())?;
        result
            .recv()
            .map_err(|_| "the cluster thread is gone".to_string())?
    }

    /// A fresh, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!(
            "sprig_test_{}",
            self.databases.fetch_add(1, Ordering::SeqCst)
        );
        let status = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .status()
            .expect("running createdb");
        assert!(status.success(), "createdb {name} failed");
        self.url(&name)
    }

    /// Runs one SQL statement on the database at `url` (with `psql`) and returns its rows as
    /// `psql -At` prints them (one per line, columns separated by `|`); panics if it fails.
    pub fn sql(&self, url: &str, statement: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-A",
                "-t",
                "-d",
                url,
                "-c",
                statement,
            ])
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql failed on `{statement}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// Starts the server process on the cluster's data dir and waits until it takes connections.
fn launch(bin: &Path, dir: &Path, port: u16, owner: Option<(u32, u32)>) -> Result<Child, String> {
    let log_path = dir.join("postgres.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = owner {
        chown(&log_path, uid, gid)?;
    }
    let child = as_user(Command::new(bin.join("postgres")), owner, true)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "postgres did not start; its log: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    ))
}

/// Clusters outlive nothing but their files: remove those of test processes that have ended.
fn remove_dead_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("sprig-pg-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("SPRIG_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL is not installed (no /usr/lib/postgresql; apt-get install postgresql)"
                .to_string()
        })?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

/// `(uid, gid)` of the `postgres` user when running as root (initdb refuses root), else `None`.
fn unprivileged_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: getuid has no preconditions; getpwnam returns a pointer into static storage that
    // is read at once, before any other call could overwrite it.
    unsafe {
        if libc::getuid() != 0 {
            return Ok(None);
        }
        let entry = libc::getpwnam(c"postgres".as_ptr());
        if entry.is_null() {
            return Err(
                "running as root and there is no `postgres` user to run PostgreSQL as".into(),
            );
        }
        Ok(Some(((*entry).pw_uid, (*entry).pw_gid)))
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| e.to_string())
}

/// Runs the command as `owner`; with `die_with_parent`, it gets SIGQUIT (PostgreSQL's immediate
/// shutdown) when the thread that started it ends.
fn as_user(mut command: Command, owner: Option<(u32, u32)>, die_with_parent: bool) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some((uid, gid)) = owner {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After setuid, which clears the parent-death signal.
            #[cfg(target_os = "linux")]
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            }
            Ok(())
        });
    }
    command
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}
