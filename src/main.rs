//! The `lookout` command: parses arguments, sets up logging and signals,
//! and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lookout::config;
use lookout::daemon::{Daemon, Options};

/// Continuous synthetic monitoring: HTTP and auth-path checks on cron
/// schedules, exported as Prometheus metrics and a status page.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: probe every check on its schedule and serve /metrics, the API and the page.
    Run {
        /// The config file.
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
        /// Serve `POST /-/reload` to re-read the config (like Prometheus'
        /// flag of the same name). SIGHUP reloads either way.
        #[arg(long = "web.enable-lifecycle")]
        enable_lifecycle: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Validate a config file without running it, and list the expanded checks.
    CheckConfig {
        /// The config file.
        file: PathBuf,
        /// Do not read the secrets' values (environment variables and
        /// files): validate everything else, for CI jobs without them.
        #[arg(long)]
        no_secrets: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Read a password from standard input (one line) and print its bcrypt
    /// hash, for `[server] basic_auth_users`.
    HashPassword {
        /// bcrypt cost: each login costs about 2^cost rounds of work.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Run every check and flow once and print a report (Markdown or JSON).
    #[command(after_help = REPORT_HELP)]
    Report {
        /// The config file (default config.toml; with --prometheus, only
        /// for URLs, schedules and step order, and optional).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Report on the fleet as Prometheus holds it (every shard,
        /// location and replica, joined by lookout-global.yml) instead of
        /// running the checks here.
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        /// A previous `--format json` report to compare with: score changes,
        /// and what was fixed, broke, appeared or went away.
        #[arg(long, value_name = "PREVIOUS.json")]
        against: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
        /// Exit 3 when the overall score is below this: a fraction (0.9) or a
        /// percentage (90%).
        #[arg(long, value_name = "SCORE", value_parser = parse_fail_under)]
        fail_under: Option<f64>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Serve the fleet's status page and API, read from Prometheus: every
    /// lookout's results (shards, locations, replicas) joined by the rules
    /// in deploy/prometheus/rules/lookout-global.yml.
    View {
        /// The Prometheus HTTP API's base URL (or Thanos Query's, Mimir's…);
        /// else `[view] prometheus`.
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        /// Where to listen; else `[view] listen`, else 127.0.0.1:9899.
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<std::net::SocketAddr>,
        /// The fleet's config: `[view]`, `[server]` (TLS, basic auth), and
        /// the checks' URLs, schedules and step order.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Where `lookout view` listens without `--listen`, `[view] listen` or a config.
const DEFAULT_VIEW_LISTEN: &str = "127.0.0.1:9899";

/// Where this instance stands among many; each wins over `[cluster]`.
#[derive(Args, Clone, Debug, Default)]
struct ClusterArgs {
    /// Run only shard i of n (counted from 0, as StatefulSet ordinals):
    /// `--shard 2/3` is the third of three.
    #[arg(long, value_name = "i/n")]
    shard: Option<lookout::cluster::Shard>,
    /// Run one of this many shards, the index taken from the pod's name
    /// (`POD_NAME`, else `HOSTNAME`: `lookout-2` is shard 2).
    #[arg(long, value_name = "n", conflicts_with = "shard",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(lookout::cluster::MAX_SHARDS)))]
    shard_count: Option<u32>,
    /// Where this instance probes from (`[cluster] location`).
    #[arg(long)]
    location: Option<String>,
    /// Which copy of its shard this is, when two run side by side.
    #[arg(long)]
    replica: Option<String>,
    /// Set a `[vars]` entry (over `LOOKOUT_VAR_NAME` and the file); may be
    /// given several times.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
}

/// `name=value`, the value possibly empty or holding `=`.
fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

impl ClusterArgs {
    fn overrides(&self) -> config::ClusterOverrides {
        config::ClusterOverrides {
            shard: self.shard,
            shard_count: self.shard_count,
            location: self.location.clone(),
            replica: self.replica.clone(),
            whole_file: false,
            vars: self.vars.clone(),
        }
    }
}

const REPORT_HELP: &str = "\
The score is passing over total: every check counts once, and so does every
flow, which passes only when all its steps pass. The report goes to stdout;
errors and logs go to stderr. Secrets appear only as fingerprints.

Exit codes:
  0  the report was printed (and the score is at least --fail-under)
  1  the checks could not be run (TLS setup, runtime) or stdout failed
  2  invalid command line, invalid or unreadable config, or an --against
     file that cannot be read or is not a lookout JSON report
  3  the report was printed, but the overall score is below --fail-under
     (a config with nothing to run has no score and is below any threshold)";

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Markdown,
    Json,
}

fn parse_fail_under(s: &str) -> Result<f64, String> {
    lookout::report::parse_threshold(s)
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Exit code for an invalid config, like promtool.
const EXIT_CONFIG: u8 = 2;
/// Exit code of `report` when the score is below `--fail-under`.
const EXIT_BELOW: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::View {
            prometheus,
            listen,
            config,
        } => view(prometheus.as_deref(), listen, config.as_deref()),
        Command::CheckConfig {
            file,
            no_secrets,
            cluster,
        } => check_config(&file, &cluster.overrides(), no_secrets),
        Command::HashPassword { cost } => hash_password(cost),
        Command::Run {
            config,
            enable_lifecycle,
            cluster,
        } => run(&config, &cluster.overrides(), Options { enable_lifecycle }),
        Command::Report {
            config,
            prometheus,
            against,
            format,
            fail_under,
            cluster,
        } => report(
            config.as_deref(),
            prometheus.as_deref(),
            &cluster.overrides(),
            against.as_deref(),
            format,
            fail_under,
        ),
    }
}

/// Libraries that log a failed probe as an error of their own:
/// rustls-platform-verifier at ERROR for every certificate it refuses,
/// rustls at WARN for every alert it sends. A failed probe is a result,
/// told by lookout once per state change; these stay quiet unless
/// `LOOKOUT_LOG` names them.
const QUIET_TARGETS: [&str; 2] = ["rustls", "rustls_platform_verifier"];

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var("LOOKOUT_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&spec)
        .ok()
        .filter(|_| !spec.trim().is_empty())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let named: Vec<&str> = spec
        .split(',')
        .map(|d| d.split(['=', '[']).next().unwrap_or_default().trim())
        .collect();
    for target in QUIET_TARGETS {
        if !named.contains(&target)
            && let Ok(directive) = format!("{target}=off").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check_config(
    file: &std::path::Path,
    overrides: &config::ClusterOverrides,
    no_secrets: bool,
) -> ExitCode {
    let loaded = if no_secrets {
        config::lint(file, overrides)
    } else {
        config::load_with(file, overrides)
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    println!(
        "{}: OK, {} checks, {} flows, listen {}{}",
        file.display(),
        config.total.checks,
        config.total.flows,
        config.listen,
        if no_secrets {
            " (secrets not read)"
        } else {
            ""
        }
    );
    for name in &config.unused_secrets {
        eprintln!("warning: secret {name:?} is declared in [secrets] but no check or step uses it");
    }
    if config.cluster != lookout::cluster::Cluster::default() {
        println!(
            "shard {} (location {}, replica {}): runs {} of {} checks and {} of {} flows, listed below",
            config.cluster.shard,
            config.cluster.location.as_deref().unwrap_or("-"),
            config.cluster.replica.as_deref().unwrap_or("-"),
            config.checks.len(),
            config.total.checks,
            config.flows.len(),
            config.total.flows,
        );
    }
    let burst =
        |b: Option<config::Burst>| b.map(|b| format!(", {}", b.describe())).unwrap_or_default();
    for c in &config.checks {
        println!(
            "{}\t[{}]\t{} {}\t{}{}{}",
            c.name,
            c.group,
            c.probe.verb(),
            config.redactor.redact(&c.probe.address()),
            c.schedule.describe(),
            burst(c.burst),
            c.probe.auth().map(auth_text).unwrap_or_default()
        );
    }
    for f in &config.flows {
        println!(
            "{}\t[{}]\tflow, {} steps + {} cleanup, timeout {}\t{}",
            f.name,
            f.group,
            f.steps.len(),
            f.cleanup.len(),
            humantime::format_duration(f.timeout),
            f.schedule.describe()
        );
        for (kind, steps) in [("step", &f.steps), ("cleanup", &f.cleanup)] {
            for s in steps {
                let captures: Vec<&str> = s.captures.iter().map(|c| c.var.as_str()).collect();
                println!(
                    "  {kind} {}\t{} {}{}{}{}",
                    s.name,
                    s.request.method,
                    config.redactor.redact(&s.request.url),
                    burst(s.burst),
                    auth_text(&s.request.auth),
                    if captures.is_empty() {
                        String::new()
                    } else {
                        format!("  captures {}", captures.join(", "))
                    }
                );
            }
        }
    }
    for (name, m) in &config.modules {
        println!(
            "module {name}\t/probe?module={name}\t{} (the target from the scrape), timeout {}",
            m.probe.kind(),
            humantime::format_duration(m.probe.timeout())
        );
    }
    ExitCode::SUCCESS
}

/// Which credential a request sends, by fingerprint, never by value.
fn auth_text(auth: &config::Auth) -> String {
    match auth.secret() {
        Some(s) => format!(
            "  auth {} ({}) key {}",
            auth.scheme(),
            auth.placement().unwrap_or_default(),
            s.fingerprint()
        ),
        None => String::new(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    fixed_mmap_threshold();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn view(
    prometheus: Option<&str>,
    listen: Option<std::net::SocketAddr>,
    path: Option<&std::path::Path>,
) -> ExitCode {
    use lookout::fleet::query::Source;
    use lookout::fleet::server::{Viewer, ViewerOptions};

    let config = match path.map(|p| config::load_with(p, &config::ClusterOverrides::whole_file())) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let settings = config.as_ref().map(|c| c.view.clone()).unwrap_or_default();
    let url = match prometheus.map(config::prometheus_url) {
        Some(Ok(url)) => url,
        Some(Err(why)) => {
            eprintln!("--prometheus: {why}");
            return ExitCode::from(EXIT_CONFIG);
        }
        None => match settings.prometheus.clone() {
            Some(url) => url,
            None => {
                eprintln!("lookout view needs --prometheus URL (or [view] prometheus in --config)");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    // Not `[server] listen`: that is the daemon's, often on the same host.
    let listen = listen.or(settings.listen).unwrap_or_else(|| {
        DEFAULT_VIEW_LISTEN
            .parse()
            .expect("the default view address parses")
    });
    let source = match Source::new(&url, settings.timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let server = config
        .as_ref()
        .map(|c| c.server.clone())
        .unwrap_or_else(|| config::ServerSettings {
            tls: None,
            basic_auth_users: Default::default(),
            read_header_timeout: config::DEFAULT_READ_HEADER_TIMEOUT,
            max_connections: config::DEFAULT_MAX_CONNECTIONS,
        });
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let mut signals = Signals::install();
        let viewer = match Viewer::start(ViewerOptions {
            source,
            listen,
            refresh: settings.refresh,
            config,
            server,
        })
        .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        signals.wait(None).await;
        tracing::info!("shutting down");
        viewer.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn hash_password(cost: u32) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("the password is empty (give it on standard input)");
        return ExitCode::from(EXIT_CONFIG);
    }
    match bcrypt::hash(password, cost) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path, overrides: &config::ClusterOverrides, options: Options) -> ExitCode {
    let config = match config::load_with(path, overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        // Before the daemon says it is running: a SIGHUP that comes once
        // it has said so must find the handler (unhandled, it kills).
        let mut signals = Signals::install();
        let daemon = match Daemon::start_with(config, options).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        signals.wait(Some(&daemon)).await;
        tracing::info!("shutting down");
        daemon.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn report(
    path: Option<&std::path::Path>,
    prometheus: Option<&str>,
    overrides: &config::ClusterOverrides,
    against: Option<&std::path::Path>,
    format: ReportFormat,
    fail_under: Option<f64>,
) -> ExitCode {
    use lookout::report::{Report, markdown};
    use std::io::Write as _;

    if prometheus.is_some() && *overrides != config::ClusterOverrides::default() {
        eprintln!(
            "--shard, --shard-count, --location and --replica do not apply to a global report \
             (--prometheus): it covers the whole fleet"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let path = match (path, prometheus) {
        (Some(p), _) => Some(p),
        (None, None) => Some(std::path::Path::new("config.toml")),
        (None, Some(_)) => None,
    };
    // A global report shows the whole file: every shard's checks.
    let overrides = if prometheus.is_some() {
        &config::ClusterOverrides::whole_file()
    } else {
        overrides
    };
    let config = match path.map(|p| config::load_with(p, overrides)).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let previous = match against.map(Report::load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match (prometheus, &config) {
        (Some(url), config) => {
            let url = match config::prometheus_url(url) {
                Ok(u) => u,
                Err(why) => {
                    eprintln!("--prometheus: {why}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let timeout = config
                .as_ref()
                .map_or(config::DEFAULT_VIEW_TIMEOUT, |c| c.view.timeout);
            let snapshot = match lookout::fleet::query::Source::new(&url, timeout) {
                Ok(source) => runtime.block_on(source.snapshot()),
                Err(e) => Err(e),
            };
            match snapshot {
                Ok(snapshot) => Report::from_view(
                    &snapshot.view(config.as_ref()),
                    url.as_str().trim_end_matches('/'),
                    previous.as_ref(),
                    &config
                        .as_ref()
                        .map(|c| c.redactor.clone())
                        .unwrap_or_default(),
                ),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (None, Some(config)) => {
            let once = match runtime.block_on(lookout::run::run_once(config)) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            Report::build(config, &once, chrono::Utc::now(), previous.as_ref())
        }
        (None, None) => return ExitCode::from(EXIT_CONFIG),
    };
    let text = match format {
        ReportFormat::Markdown => markdown::render(&report),
        ReportFormat::Json => report.to_json(),
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("cannot write the report: {e}");
        return ExitCode::FAILURE;
    }
    match fail_under {
        Some(t) if report.below(t) => {
            eprintln!(
                "overall score {} is below --fail-under {:.1}%",
                report.overall.percent(),
                t * 100.0
            );
            ExitCode::from(EXIT_BELOW)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// SIGTERM and SIGHUP, watched from the moment they are installed.
struct Signals {
    #[cfg(unix)]
    watched: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Inside the runtime, before anything announces that it runs.
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watched = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(t), Ok(h)) => Some((t, h)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM and SIGHUP; only Ctrl-C stops lookout");
                    None
                }
            };
            Signals { watched }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Until SIGTERM or SIGINT; SIGHUP reloads the daemon's config
    /// meanwhile (`lookout view` has none to reload).
    async fn wait(&mut self, daemon: Option<&Daemon>) {
        #[cfg(unix)]
        {
            let Some((term, hup)) = &mut self.watched else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = tokio::signal::ctrl_c() => return,
                    _ = hup.recv() => match daemon {
                        Some(daemon) => {
                            tracing::info!("SIGHUP: reloading the config");
                            // The outcome is logged and in the reload metrics.
                            let _ = daemon.reload().await;
                        }
                        None => tracing::info!("SIGHUP: nothing to reload"),
                    },
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = daemon;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// glibc raises its mmap threshold to the largest block freed so far (up to
/// 32 MiB); from then on blocks that size come from a thread's heap arena
/// and stay in it after they are freed. A /metrics answer at 10k checks is
/// one ~20 MB buffer, rendered on whichever blocking thread is free, so RSS
/// would grow by a buffer per thread that ever rendered one (measured: 62 to
/// 84 MB after six scrapes). A fixed threshold keeps such buffers mmapped,
/// and freeing one gives the memory back (BENCHMARKS.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // the runtime starts any thread, and 128 KiB is glibc's own default.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    if set != 1 {
        tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused; keeping glibc's default");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// clap's own consistency checks of the command line (conflicting
    /// flags, bad defaults, duplicate names), which otherwise run only
    /// when a given subcommand is parsed in a debug build.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
