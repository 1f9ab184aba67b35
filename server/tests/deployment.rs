//! The container deployment in `deployment/`, read as files (the running checks are in
//! `deployment_live.rs`):
//!
//! - nginx's body limits and timeouts against sprig's defaults (`sprig.example.toml`).
//! - The Dockerfile and its ignore file.
//! - The compose file, parsed as YAML, and checked by `docker compose config` where installed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::deployment::{deployment, read, MIB, TOKEN};
use serde_json::Value;
use sprig_backends::runtimes::Runtime;

// ---------------------------------------------------------------------------------------------
// nginx's numbers against sprig's defaults
// ---------------------------------------------------------------------------------------------

/// Directives of nginx.conf by block path ("server", "server/location = /api/predict", ...).
/// Enough of nginx's syntax for this file: one directive or block opening per line.
fn nginx_directives(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut blocks: Vec<String> = Vec::new();
    let mut directives: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for raw in text.lines() {
        let line = strip_comment(raw).trim().to_string();
        if line.is_empty() {
            continue;
        }
        if let Some(opening) = line.strip_suffix('{') {
            let name = opening.trim().to_string();
            blocks.push(name);
        } else if line == "}" {
            blocks.pop().expect("balanced braces");
        } else {
            let statement = line.strip_suffix(';').unwrap_or_else(|| {
                panic!("nginx.conf: one directive per line, ending in ';': {raw}")
            });
            let (name, args) = statement
                .split_once(char::is_whitespace)
                .unwrap_or((statement, ""));
            directives
                .entry(blocks.join("/"))
                .or_default()
                .push((name.to_string(), args.trim().to_string()));
        }
    }
    assert!(blocks.is_empty(), "unbalanced braces in nginx.conf");
    directives
}

/// A line without its `#` comment (a `#` inside quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

/// nginx sizes: `20m`, `1k`, `512`.
fn nginx_size(value: &str) -> u64 {
    let (number, unit) = value.split_at(value.len() - 1);
    match unit {
        "k" | "K" => number.parse::<u64>().unwrap() * 1024,
        "m" | "M" => number.parse::<u64>().unwrap() * MIB,
        "g" | "G" => number.parse::<u64>().unwrap() * 1024 * MIB,
        _ => value.parse().unwrap(),
    }
}

/// nginx and compose durations in seconds: `75s`, `10m`, `1h`, `60`.
fn seconds(value: &str) -> u64 {
    let value = value.trim_matches('"');
    let (number, unit) = value.split_at(value.len() - 1);
    match unit {
        "s" => number.parse().unwrap(),
        "m" => number.parse::<u64>().unwrap() * 60,
        "h" => number.parse::<u64>().unwrap() * 3600,
        _ => value.parse().unwrap(),
    }
}

fn toml_value(path: &Path) -> Value {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(&read(path)))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// sprig's documented defaults (a unit test keeps sprig.example.toml equal to them).
fn sprig_defaults() -> Value {
    toml_value(&common::repo().join("sprig.example.toml"))
}

#[test]
fn nginx_limits_and_timeouts_match_sprigs_defaults() {
    let config = nginx_directives(&read(&deployment().join("nginx.conf")));
    let defaults = sprig_defaults();
    let limit = |key: &str| defaults["limits"][key].as_u64().unwrap();
    let request_timeout = defaults["server"]["request_timeout_secs"].as_u64().unwrap();
    let get = |block: &str, name: &str| -> Option<String> {
        config
            .get(block)
            .and_then(|ds| ds.iter().rev().find(|(n, _)| n == name))
            .map(|(_, args)| args.clone())
    };

    for (block, key) in [
        ("server", "json_body_bytes"),
        ("server/location = /api/predict", "predict_body_bytes"),
        ("server/location = /api/predict/batch", "batch_body_bytes"),
        ("server/location = /api/images", "upload_body_bytes"),
    ] {
        let size = get(block, "client_max_body_size")
            .unwrap_or_else(|| panic!("{block}: no client_max_body_size"));
        assert_eq!(
            nginx_size(&size),
            limit(key),
            "{block} vs sprig's limits.{key}"
        );
    }
    // No other location may change the body limit (sprig has no other per-route limit).
    for (block, directives) in &config {
        if directives.iter().any(|(n, _)| n == "client_max_body_size") {
            assert!(
                [
                    "server",
                    "server/location = /api/predict",
                    "server/location = /api/predict/batch",
                    "server/location = /api/images"
                ]
                .contains(&block.as_str()),
                "{block} sets a body limit sprig does not have"
            );
        }
    }

    // sprig's own request timeout must fire first, so clients get its JSON 503.
    for name in ["proxy_read_timeout", "proxy_send_timeout"] {
        let value = seconds(&get("server", name).unwrap_or_else(|| panic!("server: no {name}")));
        assert!(
            value > request_timeout,
            "{name} {value} s <= sprig's {request_timeout} s"
        );
    }
    assert_eq!(
        seconds(&get("server", "client_body_timeout").unwrap()),
        request_timeout
    );

    // Talking to sprig: HTTP/1.1 with keep-alive, forwarded headers.
    assert_eq!(get("server", "proxy_http_version").as_deref(), Some("1.1"));
    let headers: Vec<&str> = config["server"]
        .iter()
        .filter(|(n, _)| n == "proxy_set_header")
        .map(|(_, a)| a.as_str())
        .collect();
    for expected in [
        "Connection \"\"",
        // With the port the browser used: sprig compares a write's Origin with Host.
        "Host $http_host",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Proto $scheme",
    ] {
        assert!(
            headers.contains(&expected),
            "missing proxy_set_header {expected}"
        );
    }
    // Locations set no proxy_set_header of their own (that would drop the server's).
    for (block, directives) in &config {
        if block != "server" {
            assert!(
                !directives.iter().any(|(n, _)| n == "proxy_set_header"),
                "{block} redefines proxy_set_header"
            );
        }
    }

    // Server-sent events: unbuffered, and a read timeout well above the 15 s keep-alive.
    let events = "server/location ~ ^/api/jobs/[0-9]+/events$";
    assert!(
        config.contains_key(events),
        "no events location: {:?}",
        config.keys()
    );
    assert_eq!(get(events, "proxy_buffering").as_deref(), Some("off"));
    assert_eq!(get(events, "proxy_cache").as_deref(), Some("off"));
    assert!(seconds(&get(events, "proxy_read_timeout").unwrap()) >= 4 * 15);

    // Every proxied location goes to the one upstream.
    let upstream = config
        .keys()
        .find_map(|k| k.strip_prefix("upstream "))
        .expect("an upstream block")
        .to_string();
    for (block, directives) in &config {
        for (_, target) in directives.iter().filter(|(n, _)| n == "proxy_pass") {
            assert_eq!(target, &format!("http://{upstream}"), "{block}");
        }
    }
    // nginx drops an idle upstream connection before sprig's header deadline closes it, so it
    // never sends a request on a connection sprig is closing.
    let header_timeout = defaults["server"]["header_timeout_secs"].as_u64().unwrap();
    let keepalive = get(&format!("upstream {upstream}"), "keepalive_timeout")
        .expect("upstream keepalive_timeout");
    assert!(seconds(&keepalive) < header_timeout);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

/// Dockerfile instructions (continuation lines joined, comments dropped) as (KEYWORD, rest).
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((keyword.to_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    instructions
}

/// Whether `path` (relative to the build context) is left out by a .dockerignore: the last
/// matching pattern decides. Patterns used here: plain paths (a folder covers what is under
/// it), `**/name` (that name at any depth), and `!` exceptions.
fn docker_ignored(patterns: &str, path: &str) -> bool {
    let mut ignored = false;
    for pattern in patterns.lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') {
            continue;
        }
        let (exception, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        let matches = match pattern.strip_prefix("**/") {
            Some(name) => {
                let parts: Vec<&str> = path.split('/').collect();
                (0..parts.len()).any(|i| under_parts(&parts[i..], name))
            }
            None => under(pattern),
        };
        if matches {
            ignored = !exception;
        }
    }
    ignored
}

fn under_parts(parts: &[&str], name: &str) -> bool {
    let tail = parts.join("/");
    tail == name || tail.starts_with(&format!("{name}/"))
}

#[test]
fn dockerfile_builds_with_cargo_and_runs_sprig_unprivileged_with_a_volume_and_a_health_check() {
    let instructions = dockerfile_instructions(&read(&deployment().join("Dockerfile")));
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage");
    let args: BTreeMap<&str, &str> = instructions
        .iter()
        .filter(|(k, _)| k == "ARG")
        .filter_map(|(_, rest)| rest.split_once('='))
        .collect();
    let build = &instructions[..*stages.last().unwrap()];
    let runtime = &instructions[*stages.last().unwrap()..];
    let all = |section: &[(String, String)], keyword: &str| -> Vec<String> {
        section
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, r)| r.clone())
            .collect()
    };

    // Build: cargo on the official Rust image, new enough for the workspace's rust-version.
    assert!(
        all(build, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p sprig")),
        "the build stage runs cargo build --release --locked -p sprig"
    );
    let rust_image = args.get("RUST_IMAGE").expect("ARG RUST_IMAGE");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let image_version = rust_image
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .expect("an official rust image");
    let cargo_toml = toml_value(&common::repo().join("Cargo.toml"));
    let required = cargo_toml["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace rust-version");
    assert!(
        version(image_version) >= version(required),
        "{rust_image} is older than the workspace's rust-version {required}"
    );

    // Runtime: slim Debian, the same release as the build image (glibc).
    let runtime_image = args.get("RUNTIME_IMAGE").expect("ARG RUNTIME_IMAGE");
    assert!(runtime_image.starts_with("debian:") && runtime_image.ends_with("-slim"));
    let release = runtime_image
        .trim_start_matches("debian:")
        .trim_end_matches("-slim");
    assert!(
        rust_image.ends_with(release),
        "{rust_image} vs {runtime_image}"
    );

    // Non-root.
    let user = all(runtime, "USER")
        .last()
        .cloned()
        .expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "runs as {user}");

    // Data dir on a volume, listening beyond loopback (in the container), no auth bypass.
    assert!(all(runtime, "VOLUME").iter().any(|v| v.contains("/data")));
    let env = all(runtime, "ENV").join(" ");
    assert!(env.contains("SPRIG_SERVER__DATA_DIR=/data"), "{env}");
    assert!(env.contains("SPRIG_SERVER__ADDR=0.0.0.0:8080"), "{env}");
    assert!(all(runtime, "EXPOSE").iter().any(|p| p == "8080"));
    for (keyword, rest) in runtime {
        assert!(
            !rest.contains("insecure-no-auth") || keyword == "LABEL",
            "the image must not disable the token requirement: {keyword} {rest}"
        );
    }

    // Health check: the script, which asks /readyz.
    let health = all(runtime, "HEALTHCHECK").pop().expect("a HEALTHCHECK");
    assert!(
        health.contains("CMD") && health.contains("sprig-healthcheck"),
        "{health}"
    );
    assert!(health.contains("--start-period"), "{health}");
    let copies = all(runtime, "COPY");
    let script = copies
        .iter()
        .find(|c| c.contains("sprig-healthcheck"))
        .expect("the health-check script is copied in");
    assert!(script.contains("deployment/healthcheck.sh"));
    assert!(read(&deployment().join("healthcheck.sh")).contains("GET /readyz"));
    // From the other stages come only the binary and the inference libraries.
    let from_stages: Vec<&String> = copies.iter().filter(|c| c.contains("--from=")).collect();
    assert_eq!(from_stages.len(), 2, "{from_stages:?}");
    assert!(from_stages.iter().any(|c| c.starts_with("--from=build ")));
    let libraries = from_stages
        .iter()
        .find(|c| c.starts_with("--from=runtimes "))
        .expect("the inference libraries are copied in");
    let libraries_dir = libraries.split_whitespace().last().unwrap();

    // The libraries are where the environment says, at the versions CI tests with.
    for variable in ["ORT_DYLIB_PATH", "OPENVINO_DYLIB_PATH"] {
        let path = env
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{variable}=")))
            .unwrap_or_else(|| panic!("ENV {variable}"));
        assert!(path.starts_with(libraries_dir), "{variable}={path}");
    }
    // The image carries the versions sprig pins (and CI fetches), and fetches none at start.
    for (arg, pinned) in [
        ("ONNXRUNTIME_VERSION", Runtime::OnnxRuntime),
        ("OPENVINO_VERSION", Runtime::OpenVino),
    ] {
        let version = args.get(arg).unwrap_or_else(|| panic!("ARG {arg}"));
        assert_eq!(
            *version,
            pinned.version(),
            "{arg} differs from the version sprig pins"
        );
    }
    assert!(env.contains("SPRIG_RUNTIMES__FETCH=never"), "{env}");

    // The build context: the sources the binary is built from (and embeds) are in it, the
    // build outputs and local state are not.
    let ignore = read(&deployment().join("Dockerfile.dockerignore"));
    let members: Vec<&str> = cargo_toml["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "models",
        "data/beans-sample/train",
        "web/static",
        "deployment/healthcheck.sh",
    ];
    for path in needed.iter().copied().chain(members.iter().copied()) {
        assert!(common::repo().join(path).exists(), "{path} does not exist");
        assert!(
            !docker_ignored(&ignore, path),
            "{path} is left out of the build context"
        );
    }
    for path in [
        "target",
        "target/debug/sprig",
        ".git",
        "web/node_modules",
        "sprig-data",
        "deployment/.env",
    ] {
        assert!(
            docker_ignored(&ignore, path),
            "{path} is in the build context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------------

/// The compose file, parsed by a YAML parser (`serde_yaml_ng`) into JSON values.
fn compose() -> Value {
    compose_file("docker-compose.yml")
}

fn compose_file(name: &str) -> Value {
    let path = deployment().join(name);
    serde_yaml_ng::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// The value at `pointer` (`/services/sprig/image`) as text: a string, or a number or boolean
/// written without quotes.
fn text_at(yaml: &Value, pointer: &str) -> Option<String> {
    match yaml.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The items of the list at `pointer` as text (none when it is absent).
fn items_at(yaml: &Value, pointer: &str) -> Vec<String> {
    let list = yaml.pointer(pointer).cloned().unwrap_or(Value::Null);
    if list.is_null() {
        return Vec::new();
    }
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("{pointer} is not a list: {list}"));
    (0..items.len())
        .map(|i| text_at(&list, &format!("/{i}")).unwrap_or_else(|| panic!("{pointer}/{i}")))
        .collect()
}

/// The keys of the mapping at `pointer`, sorted.
fn keys(yaml: &Value, pointer: &str) -> Vec<String> {
    let map = yaml.pointer(pointer).and_then(Value::as_object);
    let map = map.unwrap_or_else(|| panic!("{pointer} is not a mapping"));
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn postgres_compose_scales_sprig_on_one_database_behind_nginx() {
    let yaml = compose_file("docker-compose.postgres.yml");
    let get = |pointer: &str| text_at(&yaml, pointer);
    assert_eq!(keys(&yaml, "/services"), ["nginx", "postgres", "sprig"]);
    // Replicas: nothing pins sprig to one container, and none keeps a data dir of its own.
    assert!(
        get("/services/sprig/container_name").is_none(),
        "--scale must work"
    );
    assert!(items_at(&yaml, "/services/sprig/volumes").is_empty());
    let store = get("/services/sprig/environment/SPRIG_STORE__URL").expect("store.url");
    assert!(
        store.starts_with("postgres://sprig:${SPRIG_PG_PASSWORD}@postgres:5432/"),
        "{store}"
    );
    assert!(get("/services/postgres/environment/POSTGRES_PASSWORD")
        .unwrap()
        .starts_with("${SPRIG_PG_PASSWORD:?"));
    assert!(get("/services/sprig/environment/SPRIG_AUTH__TOKEN")
        .unwrap()
        .starts_with("${SPRIG_AUTH__TOKEN:?"));
    // sprig waits for a healthy database; nginx balances over every replica of `sprig`.
    assert_eq!(
        get("/services/sprig/depends_on/postgres/condition").as_deref(),
        Some("service_healthy")
    );
    assert!(yaml
        .pointer("/services/postgres/healthcheck/test")
        .is_some());
    assert_eq!(
        get("/services/nginx/environment/SPRIG_UPSTREAM").as_deref(),
        Some("sprig:8080")
    );
    assert!(keys(&yaml, "/volumes").contains(&"pgdata".into()));
    // A dead or starting replica hands requests on (tested live in tests/replicas.rs).
    let site = read(&deployment().join("nginx.conf"));
    assert!(site.contains("proxy_next_upstream error timeout http_503;"));
}

#[test]
fn compose_runs_one_sprig_behind_nginx_with_a_token_and_a_named_volume() {
    let yaml = compose();
    let get = |pointer: &str| text_at(&yaml, pointer);
    let items = |pointer: &str| items_at(&yaml, pointer);
    assert_eq!(keys(&yaml, ""), ["name", "services", "volumes"]);
    assert_eq!(keys(&yaml, "/services"), ["nginx", "sprig"]);

    // sprig: built from this repository, one replica, token required, data on a named volume,
    // not published, enough time to shut down cleanly.
    assert_eq!(get("/services/sprig/build/context").as_deref(), Some(".."));
    assert_eq!(
        get("/services/sprig/build/dockerfile").as_deref(),
        Some("deployment/Dockerfile")
    );
    assert!(
        get("/services/sprig/container_name").is_some(),
        "prevents --scale"
    );
    assert!(yaml.pointer("/services/sprig/deploy/replicas").is_none());
    let token = get("/services/sprig/environment/SPRIG_AUTH__TOKEN").expect("a token");
    assert!(
        token.starts_with("${SPRIG_AUTH__TOKEN:?"),
        "required: {token}"
    );
    assert_eq!(items("/services/sprig/volumes"), ["data:/data"]);
    assert!(
        keys(&yaml, "/volumes").contains(&"data".into()),
        "a named volume"
    );
    for port in items("/services/sprig/ports") {
        assert!(
            port.starts_with("127.0.0.1:"),
            "sprig published beyond loopback: {port}"
        );
    }
    let grace = sprig_defaults()["server"]["shutdown_grace_secs"]
        .as_u64()
        .unwrap();
    let stop = seconds(&get("/services/sprig/stop_grace_period").expect("stop_grace_period"));
    assert!(
        stop > grace,
        "stop_grace_period {stop} s <= sprig's shutdown grace {grace} s"
    );

    // nginx: publishes port 80, renders nginx.conf with every placeholder it uses.
    assert!(items("/services/nginx/ports")
        .iter()
        .any(|p| p.ends_with(":80")));
    assert!(items("/services/nginx/volumes")
        .contains(&"./nginx.conf:/etc/nginx/templates/default.conf.template:ro".into()));
    let template = read(&deployment().join("nginx.conf"));
    let mut placeholders: Vec<&str> = template
        .split("${")
        .skip(1)
        .map(|rest| &rest[..rest.find('}').unwrap()])
        .collect();
    placeholders.sort();
    placeholders.dedup();
    assert_eq!(placeholders, ["NGINX_LISTEN", "SPRIG_UPSTREAM"]);
    for name in placeholders {
        assert!(
            get(&format!("/services/nginx/environment/{name}")).is_some(),
            "nginx's environment does not set {name}"
        );
    }
    assert_eq!(
        get("/services/nginx/environment/SPRIG_UPSTREAM").as_deref(),
        Some("sprig:8080")
    );
    assert_eq!(
        get("/services/nginx/environment/NGINX_LISTEN").as_deref(),
        Some("80")
    );
    assert!(get("/services/nginx/depends_on/sprig/condition").is_some());

    // Compose itself, where installed.
    let has_compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_compose {
        common::skip(
            "compose_runs_one_sprig_behind_nginx_with_a_token_and_a_named_volume",
            "`docker compose config` not run (no docker compose plugin); the YAML checks ran",
        );
        return;
    }
    let out = Command::new("docker")
        .args(["compose", "-f"])
        .arg(deployment().join("docker-compose.yml"))
        .args(["config", "--quiet"])
        .env("SPRIG_AUTH__TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
