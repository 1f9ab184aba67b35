//! What the deployment tests share: the `deployment/` folder, and nginx run in the foreground
//! with `deployment/nginx.conf` in front of a test's sprig.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "deployment-test-token-0123456789";
pub const MIB: u64 = 1024 * 1024;

pub fn deployment() -> PathBuf {
    super::repo()
        .join("deployment")
        .canonicalize()
        .expect("the deployment folder")
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The nginx binary: on PATH, or Debian's /usr/sbin/nginx (not on a non-root user's PATH).
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// The nginx binary, or `None` after reporting `test` as skipped.
pub fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let binary = nginx_binary();
    if binary.is_none() {
        super::skip(test, "nginx is not installed (apt-get install nginx-light)");
    }
    binary
}

/// `deployment/nginx.conf` with its placeholders filled, as the nginx image's envsubst does.
pub fn render_site(upstream: &str, listen: &str) -> String {
    let rendered = read(&deployment().join("nginx.conf"))
        .replace("${SPRIG_UPSTREAM}", upstream)
        .replace("${NGINX_LISTEN}", listen);
    assert!(
        !rendered.contains("${"),
        "nginx.conf uses a placeholder the test (and compose) do not fill"
    );
    rendered
}

/// A prefix directory holding the rendered site and a minimal main config around it (what the
/// nginx image's own nginx.conf provides): every path in it is under the prefix, so nginx needs
/// no root-owned directory. One process (`master_process off`), so killing it stops nginx.
pub fn nginx_prefix(upstream: &str, listen: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    fs::write(dir.path().join("sprig.conf"), render_site(upstream, listen)).unwrap();
    fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "master_process off;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   access_log {p}/access.log;\n\
             \x20   client_body_temp_path {p}/client_body;\n\
             \x20   proxy_temp_path {p}/proxy;\n\
             \x20   fastcgi_temp_path {p}/fastcgi;\n\
             \x20   uwsgi_temp_path {p}/uwsgi;\n\
             \x20   scgi_temp_path {p}/scgi;\n\
             \x20   include {p}/sprig.conf;\n\
             }}\n"
        ),
    )
    .unwrap();
    dir
}

pub fn nginx_command(binary: &Path, prefix: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"));
    command
}

pub fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground on a free loopback port, proxying to `upstream`.
pub struct Nginx {
    child: Child,
    url: String,
    prefix: tempfile::TempDir,
}

impl Nginx {
    pub fn start(binary: &Path, upstream: &str) -> Nginx {
        let port = free_loopback_port();
        let prefix = nginx_prefix(upstream, &format!("127.0.0.1:{port}"));
        let stderr = fs::File::create(prefix.path().join("stderr.log")).unwrap();
        let mut child = nginx_command(binary, prefix.path())
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}): {}{}",
                    fs::read_to_string(prefix.path().join("stderr.log")).unwrap_or_default(),
                    fs::read_to_string(prefix.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            prefix,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
