//! The servers under test: spawning one on a free loopback port, reading its
//! CPU time and memory from `/proc`, stopping it; and the file-descriptor limit.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// CPU time and memory of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User + system CPU seconds since it started.
    pub cpu_seconds: f64,
    /// Resident memory now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Largest resident memory so far, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
}

/// User + system clock ticks from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Fields 3.. follow; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The KiB value of `key` (e.g. `VmRSS`) in the text of `/proc/PID/status`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Reads the usage of process `pid` (`"self"` works too).
pub fn usage(pid: &str) -> std::io::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("/proc/{pid}: no {what}"));
    Ok(Usage {
        cpu_seconds: parse_stat_ticks(&stat).ok_or_else(|| invalid("CPU times"))? as f64 / TICKS_PER_SECOND,
        rss_kib: parse_status_kib(&status, "VmRSS").ok_or_else(|| invalid("VmRSS"))?,
        peak_rss_kib: parse_status_kib(&status, "VmHWM").ok_or_else(|| invalid("VmHWM"))?,
    })
}

/// A free TCP port on 127.0.0.1 (free when asked: the server binds it right after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// How a started server is told where to listen, and which address is under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `--bind 127.0.0.1 --port PORT` before the arguments (protoplex, the
    /// baselines); PORT is under test.
    Flags,
    /// As [`Listen::Flags`], plus `FLAG PORT2` (protoplex's `--mqtt-port`):
    /// PORT2 is under test; both ports are waited for.
    FlagsAndSecondPort(String),
    /// No flag: `text`, where `{port}` is replaced by the port, is written to
    /// `path` (Mosquitto's configuration, given to it among the arguments as
    /// `-c PATH`); PORT is under test.
    ConfigFile {
        /// Where the file is written.
        path: PathBuf,
        /// Its text, with `{port}` placeholders.
        text: String,
    },
}

/// Mosquitto's configuration: one loopback listener, anonymous clients, no
/// persistence, its log on stderr (into the server's log file).
pub const MOSQUITTO_CONFIG: &str = "\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
";

/// How to start Mosquitto (`program`) as a foreground child, its
/// configuration file written into `dir`.
pub fn mosquitto_spec(program: &Path, dir: &Path, log: Option<PathBuf>) -> ServerSpec {
    let config = dir.join(format!("mosquitto-{}.conf", std::process::id()));
    ServerSpec {
        name: "mosquitto".into(),
        program: program.into(),
        args: vec!["-c".into(), config.display().to_string()],
        env: vec![],
        log,
        listen: Listen::ConfigFile {
            path: config,
            text: MOSQUITTO_CONFIG.into(),
        },
    }
}

/// How to start a server under test.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Name in the report (`protoplex`, `ws-broadcast`, ...).
    pub name: String,
    /// The executable; it gets the flags of [`ServerSpec::listen`] then `args`.
    pub program: PathBuf,
    /// More arguments.
    pub args: Vec<String>,
    /// Environment variables set for it.
    pub env: Vec<(String, String)>,
    /// Where its stdout and stderr go (discarded when `None`).
    pub log: Option<PathBuf>,
    /// How it is told its port.
    pub listen: Listen,
}

/// Why a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// It could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The executable.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// It exited before accepting connections.
    #[error("{name} exited before listening ({status}){log}")]
    Exited {
        /// Its name.
        name: String,
        /// Its exit status.
        status: String,
        /// The end of its log, if any.
        log: String,
    },
    /// It did not accept connections in time.
    #[error("{0} did not accept connections within {START_TIMEOUT:?}")]
    NotListening(String),
    /// Its `/proc` entry could not be read.
    #[error("cannot read the usage of {name}: {source}")]
    Proc {
        /// Its name.
        name: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A running server under test, killed when dropped.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    pid: u32,
    /// The address under test.
    address: SocketAddr,
    /// Every address waited for before the server counts as started.
    probes: Vec<SocketAddr>,
    log: Option<PathBuf>,
}

impl Server {
    /// Starts `spec` on a free loopback port and waits until it accepts connections.
    pub async fn start(spec: &ServerSpec) -> Result<Self, ServerError> {
        let spawn_error = |source| ServerError::Spawn {
            program: spec.program.display().to_string(),
            source,
        };
        let port = free_port().map_err(spawn_error)?;
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut flags = Vec::new();
        let mut probes = vec![loopback(port)];
        match &spec.listen {
            Listen::Flags => flags.extend([
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
            ]),
            Listen::FlagsAndSecondPort(flag) => {
                let second = loop {
                    let candidate = free_port().map_err(spawn_error)?;
                    if candidate != port {
                        break candidate;
                    }
                };
                flags.extend([
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                ]);
                flags.extend([flag.clone(), second.to_string()]);
                probes.insert(0, loopback(second));
            }
            Listen::ConfigFile { path, text } => {
                std::fs::write(path, text.replace("{port}", &port.to_string())).map_err(spawn_error)?;
            }
        }
        let address = probes[0];
        let (stdout, stderr) = match &spec.log {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(spawn_error)?;
                let copy = file.try_clone().map_err(spawn_error)?;
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(&spec.program)
            .args(&flags)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let pid = child.id().unwrap_or_default();
        let mut server = Self {
            name: spec.name.clone(),
            child,
            pid,
            address,
            probes,
            log: spec.log.clone(),
        };
        server.wait_listening().await?;
        Ok(server)
    }

    async fn wait_listening(&mut self) -> Result<(), ServerError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ServerError::Exited {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log.as_deref().map(log_tail).unwrap_or_default(),
                });
            }
            let mut listening = true;
            for probe in &self.probes {
                listening &= tokio::net::TcpStream::connect(*probe).await.is_ok();
            }
            if listening {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServerError::NotListening(self.name.clone()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where it listens (the address under test, see [`Listen`]).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its CPU time and memory now.
    pub fn usage(&self) -> Result<Usage, ServerError> {
        usage(&self.pid.to_string()).map_err(|source| ServerError::Proc {
            name: self.name.clone(),
            source,
        })
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it and waits for its end (bounded).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The last lines of a log file, prefixed for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n  {tail}")
    }
}

/// Raises this process's open-file limit (inherited by the servers it starts)
/// to at least `wanted` if it can; returns the soft limit in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    use rlimit::Resource;
    let Ok((soft, hard)) = Resource::NOFILE.get() else {
        return 0;
    };
    if soft >= wanted {
        return soft;
    }
    // Root may raise the hard limit too; others only up to it.
    if hard < wanted && Resource::NOFILE.set(wanted, wanted).is_ok() {
        return wanted;
    }
    let target = wanted.min(hard);
    match Resource::NOFILE.set(target, hard) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_times_after_a_tricky_name() {
        let stat =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0 12 1000 200";
        assert_eq!(parse_stat_ticks(stat), Some(281));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn status_values_in_kib() {
        let status = "Name:\tprotoplex\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib(status, "Threads"), None);
    }

    #[test]
    fn mosquitto_gets_its_own_config_file() {
        let dir = std::env::temp_dir();
        let spec = mosquitto_spec(Path::new("/usr/sbin/mosquitto"), &dir, None);
        let Listen::ConfigFile { path, text } = &spec.listen else {
            panic!("{:?}", spec.listen);
        };
        assert_eq!(spec.args, vec!["-c".to_owned(), path.display().to_string()]);
        let text = text.replace("{port}", "1234");
        assert!(text.starts_with("listener 1234 127.0.0.1\n"), "{text}");
        assert!(
            text.contains("allow_anonymous true\npersistence false\n"),
            "{text}"
        );
    }

    #[test]
    fn own_usage_is_readable() {
        let own = usage("self").expect("/proc/self");
        assert!(own.rss_kib > 0 && own.peak_rss_kib >= own.rss_kib);
    }
}
