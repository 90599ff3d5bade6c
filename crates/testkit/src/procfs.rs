//! CPU accounting from /proc, for benchmarks that say what each process
//! of a run used: the bench itself, PostgreSQL's backends, the broker, a
//! service started as a process.

use std::collections::HashSet;

/// Clock ticks per second of /proc's times (libc is not a dependency, so
/// ask getconf; 100 on Linux).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// (comm, utime + stime, cutime + cstime) of a process, in clock ticks.
pub fn stat(pid: &str) -> Option<(String, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // Fields after the comm start at field 3 (state); utime is field 14.
    let fields: Vec<u64> = text[close + 2..]
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some((comm, utime + stime, cutime + cstime))
}

/// (pid, comm, own ticks, children's ticks) of every process.
pub fn processes() -> Vec<(String, String, u64, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| stat(&pid).map(|(comm, own, children)| (pid, comm, own, children)))
        .collect()
}

/// Inodes of the sockets listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> HashSet<String> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                inodes.insert((*inode).to_owned());
            }
        }
    }
    inodes
}

fn owns_socket(pid: &str, inodes: &HashSet<String>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .is_some_and(|inode| inodes.contains(inode))
        })
    })
}

/// The broker's pid: the `nisshi*` process listening on the bootstrap
/// port, or the only `nisshi*` process if that cannot be told.
pub fn broker_pid(bootstrap: &str) -> Option<String> {
    let brokers: Vec<String> = processes()
        .into_iter()
        .filter(|(_, comm, _, _)| comm.starts_with("nisshi"))
        .map(|(pid, ..)| pid)
        .collect();
    let port = bootstrap
        .split(',')
        .next()
        .and_then(|address| address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok());
    if let Some(port) = port {
        let inodes = listening_inodes(port);
        if let Some(pid) = brokers.iter().find(|pid| owns_socket(pid, &inodes)) {
            return Some(pid.clone());
        }
    }
    match &brokers[..] {
        [only] => Some(only.clone()),
        _ => None,
    }
}

/// (busy, iowait) clock ticks of the whole machine so far, from /proc/stat.
pub fn machine() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = text
        .lines()
        .find(|line| line.starts_with("cpu "))
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is in user)
    (
        field(0) + field(1) + field(2) + field(5) + field(6) + field(7),
        field(4),
    )
}

/// CPU clock ticks so far of the parts of a benchmark run: named processes,
/// PostgreSQL and this process, and the whole machine's busy time.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub parts: Vec<(String, u64)>,
    pub machine_busy: u64,
}

impl CpuSample {
    /// Now, for each `(name, pid)` (a part without a pid counts nothing),
    /// then `PostgreSQL` (every `postgres` process, so also other work on
    /// the machine's database) and `bench process` (this one).
    pub fn now(pids: &[(String, Option<String>)]) -> Self {
        let mut parts: Vec<(String, u64)> = pids
            .iter()
            .map(|(name, pid)| {
                let ticks = pid.as_deref().and_then(stat).map_or(0, |(_, own, _)| own);
                (name.clone(), ticks)
            })
            .collect();
        // Backends that exit are reaped by the postmaster, whose cutime then
        // holds their CPU: counting it keeps their share in the window.
        let postgres = processes()
            .into_iter()
            .filter(|(_, comm, _, _)| comm == "postgres")
            .map(|(_, _, own, children)| own + children)
            .sum();
        parts.push(("PostgreSQL".to_owned(), postgres));
        let bench = stat("self").map_or(0, |(_, own, _)| own);
        parts.push(("bench process".to_owned(), bench));
        Self {
            parts,
            machine_busy: machine().0,
        }
    }

    /// CPU seconds each part used since `before`, and the machine's.
    pub fn seconds_since(&self, before: &CpuSample) -> (Vec<(String, f64)>, f64) {
        let ticks = clock_ticks() as f64;
        let parts = self
            .parts
            .iter()
            .zip(&before.parts)
            .map(|((name, after), (_, before))| {
                (name.clone(), after.saturating_sub(*before) as f64 / ticks)
            })
            .collect();
        let machine = self.machine_busy.saturating_sub(before.machine_busy) as f64 / ticks;
        (parts, machine)
    }
}
