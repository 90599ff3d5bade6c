use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The audit log: every record of every topic and dead-letter topic, hash
/// chained per partition, append-only; a payment's timeline across services.
#[derive(Debug, Parser)]
#[command(version, about, after_help = paystream_telemetry::ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the service: the consumer, the timeline API, checkpoints, health
    /// and metrics.
    Serve(Box<paystream_audit::Config>),
    /// Recompute every chain; name the first entry of each that does not
    /// match. Exit code 1 on any mismatch.
    Verify(VerifyArgs),
    /// Make an Ed25519 key for signing checkpoints; prints its public key.
    Keygen {
        /// Where to write the key (PKCS#8 DER); must not exist.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The audit's PostgreSQL.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_DATABASE_URL",
        default_value = "postgres://audit:audit@127.0.0.1:5432/audit"
    )]
    database_url: String,

    /// A checkpoint file (`checkpoints.jsonl`) to check the chains against.
    #[arg(long, requires = "public_key")]
    checkpoints: Option<PathBuf>,

    /// The public key (hex) the checkpoints must be signed with.
    #[arg(long)]
    public_key: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve(config) => {
            let _telemetry = paystream_telemetry::init("audit")?;
            let shutdown = paystream_service_kit::shutdown_on_signal();
            paystream_audit::run(*config, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify(args).await,
        Command::Keygen { out } => {
            let public_key = paystream_audit::checkpoint::generate_key(&out)?;
            println!("{public_key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pool = sqlx::PgPool::connect(&args.database_url).await?;
    let report = paystream_audit::verify(&pool).await?;
    for chain in &report.chains {
        println!("{chain}");
    }
    let mut clean = report.is_clean();
    if let (Some(file), Some(key)) = (&args.checkpoints, &args.public_key) {
        let (count, findings) = paystream_audit::checkpoint::check(&pool, file, key).await?;
        for finding in &findings {
            println!("{finding}");
        }
        println!("{count} checkpoints checked, {} findings", findings.len());
        clean &= findings.is_empty();
    }
    let mismatched = report.mismatches().count();
    println!(
        "{} chains, {} entries: {}",
        report.chains.len(),
        report.chains.iter().map(|c| c.length).sum::<i64>(),
        if clean {
            "verified".to_owned()
        } else {
            format!("{mismatched} chains do not verify")
        }
    );
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
