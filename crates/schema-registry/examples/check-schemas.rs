//! Checks the contract's schemas against their released versions under
//! FULL_TRANSITIVE (see `paystream_schema_registry::released`): one line per
//! subject, exit 1 on any incompatibility. `devstack/check-schemas.sh` runs
//! it; the argument is the schemas directory (default `schemas`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("schemas"), PathBuf::from);
    let checks = match paystream_schema_registry::released::check_dir(&dir) {
        Ok(checks) => checks,
        Err(error) => {
            eprintln!("check-schemas: cannot read {}: {error}", dir.display());
            return ExitCode::from(2);
        }
    };
    let mut failed = 0;
    for check in &checks {
        if check.is_compatible() {
            println!("{check}");
        } else {
            failed += 1;
            eprintln!("{check}");
        }
    }
    if failed > 0 {
        eprintln!(
            "check-schemas: {failed} of {} subjects incompatible with their released versions; see schemas/README.md",
            checks.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
