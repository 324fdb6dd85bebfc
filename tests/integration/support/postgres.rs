//! One real PostgreSQL 15 cluster per test binary, started on first use on a
//! free loopback port with its files in a temp directory, and [`TestDatabase`],
//! an empty database of its own for each test, dropped on drop. The
//! benchmark `examples/bench_workers.rs` starts its own (durable) cluster
//! with [`start`] (it includes this file).
//!
//! Rust never drops statics, so the server runs under a small `sh` supervisor
//! that stops it (fast shutdown) and removes the directory once the test
//! process is gone, however it ended: the supervisor's stdin is a pipe whose
//! only write end this process holds, and the kernel closes it at exit.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The user `initdb` and the server run as when this process is root
/// (`initdb` refuses to run as root).
const SERVER_USER: &str = "postgres";
/// The cluster's superuser; every connection is trusted.
const SUPERUSER: &str = "pallet";
/// How long the server may take to accept connections.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// Start attempts, each on a new free port (another process may take it first).
const ATTEMPTS: usize = 3;

const NOT_INSTALLED: &str = "PostgreSQL server programs not found: run scripts/setup-test-env.sh (installs Debian's postgresql)";

/// Creates the cluster (unless an earlier attempt did), runs the server and
/// waits for it. Once its stdin closes (the test process ended, at any
/// moment, also during initdb) it stops the server with a fast shutdown and
/// removes the root directory. When initdb fails or the server exits on its
/// own (e.g. the port was taken), it leaves the directory, log included, to
/// the test process. Arguments: initdb, postgres, data directory, root, port,
/// superuser, then the server's own arguments (`-c NAME=VALUE` settings).
///
/// A server started from `sh` in the background ignores SIGINT until it has
/// installed its handlers, hence SIGINT until it is gone.
const SUPERVISOR: &str = r#"
initdb="$1" postgres="$2" data="$3" root="$4" port="$5" superuser="$6"
shift 6
exec 3<&0 </dev/null
{ read -r line <&3; : > "$root/stopping"; } &
watcher=$!
created=yes
if [ ! -f "$data/PG_VERSION" ]; then
    "$initdb" -D "$data" -A trust -U "$superuser" --no-sync -E UTF8 --locale=C \
        --no-instructions 3<&- || created=no
fi
if [ "$created" = yes ] && [ ! -e "$root/stopping" ]; then
    "$postgres" -D "$data" -p "$port" -k "$root" -c listen_addresses=127.0.0.1 \
        -c logging_collector=off -c max_connections=300 "$@" 3<&- &
    pg=$!
    {
        until [ -e "$root/stopping" ]; do sleep 0.2; done
        while kill -INT "$pg" 2>/dev/null; do sleep 0.2; done
    } 3<&- &
    stopper=$!
    wait "$pg"
    if [ -e "$root/stopping" ]; then
        wait "$stopper"
    else
        kill "$stopper" 2>/dev/null
    fi
fi
if [ ! -e "$root/stopping" ]; then
    kill "$watcher" 2>/dev/null
    wait "$watcher"
fi
if [ -e "$root/stopping" ]; then
    rm -rf "$root"
fi
"#;

/// The server settings of the tests' cluster: no durability (a test
/// database does not outlive a crash of the machine), so commits cost no
/// disk flush. It also serves TLS (see [`Cluster::ca_file`]).
pub const NOT_DURABLE: &[&str] = &[
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
];

/// A running cluster; see [`cluster`] and [`start`]. Dropped (never, for
/// the tests' static one), it stops the server and waits a while for that.
pub struct Cluster {
    bindir: PathBuf,
    port: u16,
    /// Names the next database.
    next: AtomicU64,
    supervisor: Child,
    /// The supervisor's stdin: closing it (or this process's exit) stops the server.
    lifeline: Option<ChildStdin>,
    root: PathBuf,
}

/// Whether a cluster serves TLS: with a certificate for `localhost` (not
/// for 127.0.0.1) from a CA of its own, made with `openssl` at start.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    On,
    /// The benchmark's (it measures plain connections).
    #[allow(dead_code)]
    Off,
}

/// The test binary's cluster, started by the first caller (the others wait);
/// panics when it cannot start, every caller alike.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| start(NOT_DURABLE, Tls::On)) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !exited(&mut self.supervisor) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Cluster {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA (PEM) that signed the server's certificate (with [`Tls::On`]).
    pub fn ca_file(&self) -> PathBuf {
        self.root.join("tls/ca.crt")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// A CA that signed nothing the server has.
    pub fn other_ca_file(&self) -> PathBuf {
        self.root.join("tls/other-ca.crt")
    }

    /// A new, empty database with a name no other test uses.
    pub fn database(&self) -> TestDatabase {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("t_{}_{number}", std::process::id());
        let output = Command::new(self.bindir.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
            ])
            .arg(&name)
            .stdin(Stdio::null())
            .output()
            .expect("run createdb");
        assert!(
            output.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestDatabase {
            url: format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port),
            name,
            bindir: self.bindir.clone(),
            port: self.port,
        }
    }

    /// Runs `sql` in `database` (stopping at the first error); returns its
    /// unaligned, tuples-only output, trimmed. Panics with psql's stderr.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = psql(&self.bindir, self.port, database, sql)
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql -d {database} -c {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

/// A database of the cluster, dropped (connections and all) on drop.
pub struct TestDatabase {
    /// `postgres://pallet@127.0.0.1:PORT/NAME`; no password needed.
    pub url: String,
    name: String,
    bindir: PathBuf,
    port: u16,
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let _ = psql(&self.bindir, self.port, "postgres", &sql).output();
    }
}

fn psql(bindir: &Path, port: u16, database: &str, sql: &str) -> Command {
    let mut command = Command::new(bindir.join("psql"));
    command
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
        .args([
            "-p",
            &port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null());
    command
}

/// A new cluster with the server `settings` (`NAME=VALUE`) on top of the defaults.
pub fn start(settings: &[&str], tls: Tls) -> Result<Cluster, String> {
    let bindir = bindir()?;
    let as_server_user = running_as_root();
    let root = tempfile::Builder::new()
        .prefix("pallet-postgres-")
        .tempdir()
        .map_err(|error| format!("create the cluster's temp directory: {error}"))?
        .keep();
    let mut settings: Vec<String> = settings.iter().map(|setting| setting.to_string()).collect();
    let certified = match tls {
        Tls::On => certificates(&root).map(|(cert, key)| {
            settings.push("ssl=on".to_string());
            settings.push(format!("ssl_cert_file={}", cert.display()));
            settings.push(format!("ssl_key_file={}", key.display()));
        }),
        Tls::Off => Ok(()),
    };
    let started = certified
        .and_then(|()| hand_over(&root, as_server_user))
        .and_then(|()| {
            let mut failure = String::new();
            for _ in 0..ATTEMPTS {
                match launch(&bindir, &root, as_server_user, free_port(), &settings) {
                    Ok(cluster) => return Ok(cluster),
                    Err(Failed::PortTaken(log)) => failure = log,
                    Err(Failed::Other(message)) => return Err(message),
                }
            }
            Err(format!(
                "PostgreSQL found its port taken {ATTEMPTS} times; server log (tail):\n{}",
                tail(&failure, 40)
            ))
        });
    if started.is_err() {
        // No supervisor runs any more; as root this removes the server user's files too.
        let _ = std::fs::remove_dir_all(&root);
    }
    started
}

/// The directory of the server programs, from `pg_config --bindir`.
fn bindir() -> Result<PathBuf, String> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .map_err(|_| NOT_INSTALLED.to_string())?;
    let bindir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    match output.status.success() && bindir.join("initdb").exists() {
        true => Ok(bindir),
        false => Err(NOT_INSTALLED.to_string()),
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` run as [`SERVER_USER`] when this process is root, else directly;
/// from `root`, since the server user may not reach the current directory.
fn server_command(program: &Path, root: &Path, as_server_user: bool) -> Command {
    let mut command = match as_server_user {
        true => {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVER_USER, "--"]).arg(program);
            command
        }
        false => Command::new(program),
    };
    command.current_dir(root).stdin(Stdio::null());
    command
}

/// As root, gives `root` (and what is in `root/tls`) to the server user,
/// who creates the cluster in it.
fn hand_over(root: &Path, as_server_user: bool) -> Result<(), String> {
    if !as_server_user {
        return Ok(());
    }
    let (uid, gid) = (server_id("-u")?, server_id("-g")?);
    let tls = root.join("tls");
    let mut paths = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(&tls) {
        paths.push(tls);
        paths.extend(entries.filter_map(|entry| entry.ok().map(|entry| entry.path())));
    }
    for path in paths {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid))
            .map_err(|error| format!("chown {} to {SERVER_USER}: {error}", path.display()))?;
    }
    Ok(())
}

/// In `root/tls`: a CA, a server certificate it signed for `localhost`,
/// and another CA; the server's (certificate, key).
fn certificates(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let dir = root.join("tls");
    std::fs::create_dir_all(&dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| {
                format!("run openssl ({error}): run scripts/setup-test-env.sh (installs it)")
            })?;
        match output.status.success() {
            true => Ok(()),
            false => Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=pallet test CA"),
        ("other-ca", "/CN=pallet other CA"),
    ] {
        let (key, cert) = (format!("{name}.key"), format!("{name}.crt"));
        let mut args = vec!["req", "-x509", "-days", "7", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &cert]);
        openssl(&args)?;
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n")
        .map_err(|error| format!("write server.ext: {error}"))?;
    let mut request = vec!["req", "-subj", "/CN=localhost"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&request)?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "7",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    // The server refuses a key others may read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|error| format!("chmod server.key: {error}"))?;
    Ok((dir.join("server.crt"), dir.join("server.key")))
}

/// The server user's uid (`flag` `-u`) or gid (`-g`).
fn server_id(flag: &str) -> Result<u32, String> {
    let output = Command::new("id").args([flag, SERVER_USER]).output();
    output
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "running as root, and there is no `{SERVER_USER}` user to run PostgreSQL as: \
                 run scripts/setup-test-env.sh (installs Debian's postgresql)"
            )
        })
}

enum Failed {
    /// The server exited because another process had the port; the log.
    PortTaken(String),
    Other(String),
}

/// Starts the supervisor (initdb, then the server on `port`) and waits until
/// the server answers.
fn launch(
    bindir: &Path,
    root: &Path,
    as_server_user: bool,
    port: u16,
    settings: &[String],
) -> Result<Cluster, Failed> {
    let data = root.join("data");
    let log_path = root.join("server.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|error| Failed::Other(format!("create {}: {error}", log_path.display())))?;
    let stderr = log
        .try_clone()
        .map_err(|error| Failed::Other(format!("server log: {error}")))?;
    let mut supervisor = server_command(Path::new("sh"), root, as_server_user);
    supervisor
        .args(["-c", SUPERVISOR, "sh"])
        .arg(bindir.join("initdb"))
        .arg(bindir.join("postgres"))
        .arg(&data)
        .arg(root)
        .arg(port.to_string())
        .arg(SUPERUSER)
        .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(stderr)
        // Its own process group: a Ctrl-C meant for the tests must not kill the
        // supervisor before it cleaned up.
        .process_group(0);
    let mut child = supervisor
        .spawn()
        .map_err(|error| Failed::Other(format!("start the PostgreSQL supervisor: {error}")))?;
    let lifeline = child.stdin.take().expect("piped stdin");
    let started = Instant::now();
    loop {
        if exited(&mut child) {
            let log = read_log(&log_path);
            return Err(
                match log.contains("could not bind") || log.contains("already in use") {
                    true => Failed::PortTaken(log),
                    false => Failed::Other(format!(
                        "PostgreSQL did not start; server log (tail):\n{}",
                        tail(&log, 40)
                    )),
                },
            );
        }
        if serves(bindir, port, &data) {
            return Ok(Cluster {
                bindir: bindir.to_path_buf(),
                port,
                next: AtomicU64::new(0),
                supervisor: child,
                lifeline: Some(lifeline),
                root: root.to_path_buf(),
            });
        }
        if started.elapsed() > STARTUP_LIMIT {
            let log = read_log(&log_path);
            // Closing the lifeline stops the server and removes its directory;
            // wait (a while) so that the caller's removal does not race it.
            drop(lifeline);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !exited(&mut child) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            return Err(Failed::Other(format!(
                "PostgreSQL did not accept connections on port {port} within \
                 {STARTUP_LIMIT:?}; server log (tail):\n{}",
                tail(&log, 40)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn exited(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(Some(_)) | Err(_))
}

/// Whether our server (not whoever else took the port) answers on `port`.
fn serves(bindir: &Path, port: u16, data: &Path) -> bool {
    let Ok(output) = psql(bindir, port, "postgres", "SHOW data_directory").output() else {
        return false;
    };
    let shown = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    output.status.success() && (shown == data || same(&shown, data))
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port nobody listened on a moment ago (the race is retried, see [`ATTEMPTS`]).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
