//! A CPU profile of one process over a benchmark's counted window, for
//! `make profile`: with `PAYSTREAM_BENCH_PROFILE` naming a folder, a bench
//! runs `perf record` (the `cpu-clock` software event, which needs no
//! hardware counters, with DWARF call graphs, since release builds keep no
//! frame pointers) on the process it measures, from the window's start to
//! its end, into `{folder}/{name}.perf.data`. Without the variable nothing
//! is recorded and nothing costs.

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The variable that turns profiling on: the folder the recordings go to.
pub const PROFILE_DIR: &str = "PAYSTREAM_BENCH_PROFILE";

const SIGINT: i32 = 2;

/// Samples per second: enough to tell 1% apart in a 10 s window, few enough
/// that DWARF stacks (8 KiB each) stay in the tens of megabytes.
const FREQUENCY: &str = "499";

/// A `perf record` attached to a process.
pub struct Recording {
    perf: Child,
    output: PathBuf,
}

/// Starts recording `pid` as `name` when profiling is on and the process
/// runs; says on standard error why not when it is on but cannot.
pub fn record(pid: Option<u32>, name: &str) -> Option<Recording> {
    let folder = PathBuf::from(std::env::var_os(PROFILE_DIR)?);
    let Some(pid) = pid else {
        eprintln!("profile {name}: the process is not running; not recorded");
        return None;
    };
    if let Err(error) = std::fs::create_dir_all(&folder) {
        eprintln!("profile {name}: {}: {error}", folder.display());
        return None;
    }
    let output = folder.join(format!("{name}.perf.data"));
    let perf = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", FREQUENCY])
        .args(["--call-graph", "dwarf", "-p", &pid.to_string(), "-o"])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match perf {
        Ok(perf) => Some(Recording { perf, output }),
        Err(error) => {
            eprintln!("profile {name}: perf could not be started: {error}");
            None
        }
    }
}

impl Recording {
    /// Stops the recording (perf writes its file on SIGINT) and names it.
    pub fn finish(mut self) -> Option<PathBuf> {
        let stopped = Command::new("kill")
            .args(["-INT", &self.perf.id().to_string()])
            .status();
        let done = match stopped {
            Ok(status) if status.success() => self.perf.wait(),
            _ => self.perf.kill().and_then(|()| self.perf.wait()),
        };
        match done {
            // perf writes its file on SIGINT, then ends by that signal.
            Ok(status) if status.success() || status.signal() == Some(SIGINT) => {
                eprintln!("profile: {}", self.output.display());
                Some(self.output)
            }
            Ok(status) => {
                eprintln!("profile {}: perf ended {status}", self.output.display());
                None
            }
            Err(error) => {
                eprintln!("profile {}: {error}", self.output.display());
                None
            }
        }
    }
}
