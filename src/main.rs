//! The `millpond` binary: flags and env vars in, a running broker out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use millpond::config::Config;
use millpond::log::Durability;

// The request path allocates many small short-lived buffers; mimalloc's thread-local free
// lists halve what glibc malloc costs there (measured with `cargo bench --bench server`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A durable single-node broker speaking the SQS, SNS and Kinesis wire protocols.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SQS, SNS and Kinesis on one port (the default).
    Serve(Box<ServeArgs>),
    /// Check every segment, index and checkpoint under a data directory, offline; exits
    /// non-zero on corruption. Run it while the broker is stopped.
    Verify {
        /// The data directory to check.
        #[arg(long, env = "MILLPOND_DATA_DIR", default_value = "./millpond-data")]
        data_dir: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MILLPOND_LISTEN", default_value = "127.0.0.1:4566")]
    listen: SocketAddr,
    /// Directory for every log, index and checkpoint; created if missing.
    #[arg(long, env = "MILLPOND_DATA_DIR", default_value = "./millpond-data")]
    data_dir: PathBuf,
    /// Account id of every resource (queue URLs, ARNs).
    #[arg(long, env = "MILLPOND_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// Log filter: error, warn, info, debug (one line per request), trace, or a tracing directive.
    #[arg(long, env = "MILLPOND_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// When a write is acknowledged: `fsync` (durable before the response), `interval=<ms>`
    /// (fsync at least every ms; a crash may lose that window) or `none` (the OS decides).
    #[arg(long, env = "MILLPOND_DURABILITY", default_value = "fsync")]
    durability: Durability,
    /// Roll a log segment when it reaches this many bytes.
    #[arg(long, env = "MILLPOND_SEGMENT_BYTES", default_value_t = 64 << 20)]
    segment_bytes: u64,
    /// Enforce Kinesis per-shard throughput limits (ProvisionedThroughputExceededException):
    /// AWS's figures with the bare flag, or e.g. `--kinesis-limits records=100,bytes-in=65536`
    /// (names: records, bytes-in, bytes-out, reads; per shard per second).
    #[arg(long, env = "MILLPOND_KINESIS_LIMITS", num_args = 0..=1, default_missing_value = "")]
    kinesis_limits: Option<millpond::config::KinesisLimits>,
    /// Milliseconds a Kinesis stream spends CREATING, UPDATING or DELETING.
    #[arg(long, env = "MILLPOND_KINESIS_TRANSITION_MS", default_value_t = 0)]
    kinesis_transition_ms: u64,
    /// Seconds CreateQueue refuses the name of a queue just deleted, with AWS's
    /// QueueDeletedRecently (AWS: 60). 0, the default, lets a test suite re-create a queue at
    /// once, as LocalStack and moto do.
    #[arg(long, env = "MILLPOND_SQS_DELETE_COOLDOWN_SECS", default_value_t = 0)]
    sqs_delete_cooldown_secs: u64,
    /// PEM file of extra CA certificates trusted for https:// SNS subscription endpoints (beside
    /// the built-in web PKI roots), e.g. the CA of a self-signed test endpoint.
    #[arg(long, env = "MILLPOND_SNS_CA_FILE")]
    sns_ca_file: Option<PathBuf>,
    /// Size in bits of the RSA key SNS signs notifications with: 1024 (the default; a quarter
    /// of the signing cost, accepted by standard SNS message validators) or 2048 (the size of
    /// AWS's keys). Only used when generating a key: a key already in the data directory is
    /// kept, whatever its size.
    #[arg(long, env = "MILLPOND_SNS_SIGNING_KEY_BITS", default_value_t = millpond::sns::signing::KeyBits::default())]
    sns_signing_key_bits: millpond::sns::signing::KeyBits,
    /// The scheme, host and port the URLs the broker hands out start with (queue URLs, SNS
    /// SubscribeURL, UnsubscribeURL, SigningCertURL), e.g. `http://millpond:4566`. By default
    /// each request's Host header; set this when clients send a Host without the port they
    /// connect to (Ruby aws-sdk v1 does) or reach the broker under another name.
    #[arg(long, env = "MILLPOND_ADVERTISED_URL")]
    advertised_url: Option<millpond::config::AdvertisedUrl>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Verify { data_dir }) => return verify(&data_dir),
        None => cli.serve,
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        account_id: args.account_id,
        durability: args.durability,
        segment_bytes: args.segment_bytes,
        kinesis_limits: args.kinesis_limits,
        kinesis_transition_ms: args.kinesis_transition_ms,
        sqs_delete_cooldown_ms: args.sqs_delete_cooldown_secs.saturating_mul(1000),
        sns_ca_file: args.sns_ca_file,
        sns_signing_key_bits: args.sns_signing_key_bits,
        advertised_url: args.advertised_url,
    };
    millpond::server::tune_allocator();
    millpond::server::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("millpond: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let serve = async {
        let server = millpond::server::start(config).await?;
        // Recovery decodes checkpoints and replays logs through large short-lived buffers;
        // mimalloc returns freed pages lazily, on the freeing thread's next allocations, so
        // without this the resident size after a restart stays at its recovery peak (3x the
        // live state for a queue of a million messages).
        // SAFETY: mi_collect only walks mimalloc's own heaps; it is safe to call any time.
        unsafe { libmimalloc_sys::mi_collect(true) };
        millpond::server::serve_until_signal(server).await
    };
    match runtime.block_on(serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millpond: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn verify(data_dir: &std::path::Path) -> std::process::ExitCode {
    let dirs = match millpond::log::find_log_dirs(data_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("millpond verify: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut bad = 0;
    for dir in &dirs {
        match millpond::log::verify_dir(dir) {
            Ok(r) if r.is_clean() => println!(
                "ok      {}: {} segments ({} hollow), offsets {}..{}, {} bytes{}",
                dir.display(),
                r.segments,
                r.hollow_segments,
                r.start_offset,
                r.next_offset,
                r.bytes,
                r.checkpoint_upto
                    .map(|c| format!(", checkpoint at {c}"))
                    .unwrap_or_default()
            ),
            Ok(r) => {
                bad += 1;
                println!("CORRUPT {}:", dir.display());
                for p in &r.problems {
                    println!("        {p}");
                }
            }
            Err(e) => {
                bad += 1;
                println!("ERROR   {}: {e}", dir.display());
            }
        }
    }
    println!("{} logs checked, {bad} with problems", dirs.len());
    if bad == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
