//! Command-line types (clap derive) and nothing else. Values are parsed into
//! their typed form here (durations, counts, addresses), but merging with a
//! scenario file and validation happen in `scenario`; these types stop at
//! `cmd/`.
// The doc comments below are also clap's --help text, written for a
// terminal: `[lab]` is a scenario's table, not a rustdoc link, and
// `<name>` a placeholder, not HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scenario::units::{
    self, CloseMode, HoldMode, PortRange, RampSpec, SourceSpec, StepsSpec, TargetSpec,
};

/// Connection-limit stress tester and capacity explorer: opens TCP
/// connections at a controlled rate, holds them, and names the limit that
/// fails first.
#[derive(Debug, Parser)]
#[command(name = "ceiling", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open, hold and close connections; classify failures; write results.
    ///
    /// With no target (neither --target nor in the scenario file), ceiling
    /// starts its built-in target server as a child process (`ceiling
    /// serve`, with as many server processes as the connections need) on a
    /// free loopback port and runs against it. With more connections held
    /// at once than one process's fd limit and neither --processes nor
    /// --fd-limit given, the driver takes worker processes by itself and
    /// says so.
    ///
    /// Exit status: 0 when the run ended (a limit found or not); 3 when
    /// nothing connected (every attempt refused, timed out or failed: no
    /// target answered); 2 for bad input; 1 when ceiling itself failed (or
    /// a results file could not be written); 130 when interrupted.
    Run(Box<RunCommand>),
    /// Run a scenario in a disposable network namespace with its [lab]
    /// settings (root).
    ///
    /// Creates an anonymous network namespace for this process (gone when
    /// it exits), brings loopback up, writes the scenario's [lab] sysctls
    /// there only (never the host's), starts the built-in server as a
    /// child `ceiling serve` process listening on the targets (default
    /// 127.0.0.1:7070) with [lab] server_backlog/server_accept/server_mode,
    /// and runs as `ceiling run` does, with the same flags and results.
    Lab(Box<RunArgs>),
    /// Climb to the first limit and report the ceiling; with --ladder,
    /// apply the remedy and climb again, step by step (root).
    ///
    /// One climb is a run that opens up to --connections (the bound,
    /// default 30k) at the scenario's pace (default 10k/s), holds every
    /// connection to the end and stops at the first limit: its ceiling is
    /// the most connections held at once (explore's defaults below replace
    /// run's, and a climb sets its own hold). Each climb runs as a child
    /// `ceiling run`
    /// (or `ceiling lab` when the scenario has [lab]) and writes a normal
    /// results directory; explore adds ladder.csv and explore.json.
    ///
    /// --ladder runs every climb in a fresh lab namespace and, from the
    /// limit each one hit, changes the next: port_exhaustion widens
    /// [lab] ip_local_port_range once, then adds source IPs;
    /// fd_limit_process raises fd_limit to the hard limit, then adds worker
    /// processes; kernel_memory (a worker OOM-killed in [lab]
    /// memory_limit's cgroup) raises memory_limit. It ends when every
    /// connection of the bound is held, at any other limit, or after
    /// --max-steps climbs. With [lab] server_threads_max, the bound held
    /// leads on to the server's design: a thread per connection under that
    /// cap, then async under it, then [lab] server_cpus as a CPU quota. Without a scenario, --ladder starts from
    /// scenarios/explore-ladder.toml's settings.
    #[command(
        mut_arg("connections", |a| a.help(
            "The bound: at most this many connection attempts per climb, 1 to 100m \
             (accepts 10k, 1m). Default 30k"
        )),
        mut_arg("rate", |a| a.help(
            "Connects per second of each climb, 0.001 to 10m (accepts 5k); 0 means as fast \
             as possible. Default 10k"
        )),
        mut_arg("duration", |a| a.help(
            "Time bound of each climb, 1ms to 30d. Default: twice the pace's time to open \
             the bound, plus 3 s"
        )),
        mut_arg("out", |a| a.help(
            "Output directory (default results/<UTC time>-explore-<name>/): ladder.csv, \
             explore.json and each climb's results; must not exist or be empty"
        )),
        // A climb holds every connection to its end and stops at the first
        // limit: these two are not the user's to set here.
        mut_arg("hold", |a| a.hide(true)),
        mut_arg("stop_at_first_limit", |a| a.hide(true)),
    )]
    Explore(Box<ExploreArgs>),
    /// Request runs over a list of pool sizes: the smallest pool that
    /// meets a latency and error goal, with Little's law beside it.
    ///
    /// Each step is a `ceiling run --mode request` with --pool set to the
    /// step's size and the other flags as given (a scenario file too), into
    /// its own results directory (pool-N/) under the sweep's; sweep.csv has
    /// one row per step (pool, achieved rate, queue and total p50/p99,
    /// errors, rejects, connections held, first limit, whether the goal was
    /// met). Prints "smallest pool meeting the goal: N" (or that none did)
    /// and Little's law: request rate × mean service time = connections
    /// busy on average. Exit status 0 whether or not a pool met the goal;
    /// 130 when Ctrl-C or SIGTERM stopped a step (the steps done and the
    /// stopped one are in sweep.csv, the verdict says so); 2 for bad input.
    #[command(mut_arg("pool", |a| a.long("run-pool").hide(true)))]
    Sweep(Box<SweepArgs>),
    /// The built-in target server: accepts and holds, echoes or closes.
    Serve(ServeArgs),
    /// Write report.html for existing results directories: one run, an
    /// explore ladder, or several runs overlaid.
    ///
    /// Every run and explore writes its own report.html; this writes it
    /// again (e.g. for results of an older ceiling) or overlays several
    /// directories on one page, one colour per run. The page is one file
    /// that fetches nothing when opened.
    Report(ReportArgs),
    /// Compare runs: settings that differ, whether the first limit moved,
    /// figures side by side with their change; CI gates with --fail-if.
    ///
    /// Each SIDE is a results directory or several of the same setup,
    /// comma-separated (A1,A2,A3 B1,B2,B3): a side's figure is the median
    /// of its runs, and with several runs on every side a Mann-Whitney U
    /// test marks each change significant at 5% or `~`. The first side is
    /// the baseline. Exit status 1 when a --fail-if condition holds, 2 for
    /// a bad condition or directory.
    Compare(CompareArgs),
    /// Render what runs a fleet test on a cluster engine: Kubernetes
    /// manifests or a Slurm batch script, on stdout.
    ///
    /// The coordinator (`ceiling run ... --fleet N`) and N agents (`ceiling
    /// agent --join`), placed by the engine: each agent learns its index
    /// from the engine (JOB_COMPLETION_INDEX, SLURM_PROCID). The scenario
    /// file and run flags after the fleet's own are checked as `ceiling
    /// run` checks them (bad ones: exit 2, nothing rendered) and passed to
    /// the coordinator as typed.
    #[command(subcommand)]
    Fleet(FleetEngine),
    /// Merge results directories of runs made apart (e.g. on hosts that
    /// could not reach one coordinator) into one, exactly.
    ///
    /// Counters add, latency histograms add (from each run's .hlog files,
    /// so the merged percentiles are exact), the time series align on their
    /// UTC seconds; the first limit is the earliest by UTC, and the merged
    /// summary.json names the directory it came from. Writes a results
    /// directory as a run does (summary.json, timeseries.csv, .hgrm/.hlog,
    /// report.html). Request runs merge with request runs: their requests,
    /// queue/service/total histograms and request columns add. Exit status
    /// 2 for a directory that is not a run's results, has no .hlog files
    /// (made by an older ceiling) or other histogram settings, a request
    /// run with a connection run, or an --out that exists and is not empty.
    Merge(MergeArgs),
    /// Print a shell completion script to stdout.
    ///
    /// bash: `ceiling completions bash > ~/.local/share/bash-completion/completions/ceiling`
    /// (or `source <(ceiling completions bash)` in ~/.bashrc); zsh: into a
    /// directory on $fpath as `_ceiling`; fish: into
    /// ~/.config/fish/completions/ceiling.fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (`ceiling manpage | man -l -`), or
    /// write one page per subcommand into a directory (--dir).
    Manpage {
        /// Write ceiling.1 and ceiling-run.1, ceiling-lab.1, ... here (e.g.
        /// /usr/local/share/man/man1) instead of printing ceiling.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// One host of a fleet: join a coordinator (`ceiling run --fleet N`),
    /// run the share of the test it gives, report to it live.
    ///
    /// The agent learns its index from --index, else JOB_COMPLETION_INDEX
    /// (a Kubernetes Indexed Job), else SLURM_PROCID (Slurm); the host count
    /// from --hosts, else SLURM_NTASKS (checked against the coordinator's);
    /// the token from --token, else CEILING_FLEET_TOKEN. It waits for the
    /// start the coordinator sets, runs its segment with worker processes
    /// when one fd table is not enough (as `run --processes auto`), prints
    /// progress lines on stderr and its totals on stdout.
    ///
    /// Exit status: 0 when the test ended normally; 1 when it was refused
    /// (wrong token, another version, the test already started) or lost its
    /// coordinator (its load is then stopped within seconds); 2 for bad
    /// input.
    Agent(AgentArgs),
    /// A worker process of `run --processes` (internal: reads its share of
    /// the run on stdin, writes stats deltas to stdout).
    #[command(hide = true)]
    Worker,
}

/// `ceiling run`. Every flag overrides the same field of the scenario file.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Scenario file (TOML, at most 1 MiB); flags given here override its
    /// fields, each named as its flag with `_` for `-`.
    pub scenario: Option<PathBuf>,

    /// Target ADDR:PORT or ADDR:PORT-PORT (repeatable), e.g. 127.0.0.1:7070,
    /// [::1]:7070, 127.0.0.1:7070-7079; ADDR may be a host name
    /// (localhost:7070), resolved once at the start: every address it
    /// resolves to is a target.
    #[arg(long = "target", value_name = "ADDR:PORT[-PORT]", value_parser = units::parse_target)]
    pub targets: Vec<TargetSpec>,

    /// Source IP to bind (repeatable): IP, IP-IP or CIDR, e.g. 127.0.0.2,
    /// 127.0.0.2-127.0.0.9, 127.0.1.0/24. Connections round-robin over every
    /// (source, target) pair.
    #[arg(long = "source", value_name = "IP|IP-IP|CIDR", value_parser = units::parse_source)]
    pub sources: Vec<SourceSpec>,

    /// Bind explicit source ports LO-HI (1-65535) instead of letting the
    /// kernel pick.
    #[arg(long, value_name = "LO-HI", allow_hyphen_values = true, value_parser = units::parse_port_range)]
    pub source_ports: Option<PortRange>,

    /// Exactly this many connection attempts, 1 to 100m (accepts 10k, 1m).
    /// Default 8k.
    #[arg(long, short = 'c', value_name = "N", allow_negative_numbers = true, value_parser = units::parse_connections)]
    pub connections: Option<u64>,

    /// Connects per second (in --mode request, requests per second), 0.001
    /// to 10m (accepts 5k); 0 means as fast as possible (in request mode, a
    /// closed loop). Default 4k.
    #[arg(long, short = 'r', value_name = "R", allow_negative_numbers = true, value_parser = units::parse_rate)]
    pub rate: Option<f64>,

    /// Linear rate ramp FROM..TO/OVER, e.g. 0..20000/30s; TO holds after.
    /// FROM and TO are rates as --rate takes them (TO above 0), OVER 1ms to
    /// 30d. Give one of --rate, --ramp or --steps.
    #[arg(long, value_name = "FROM..TO/OVER", allow_hyphen_values = true, value_parser = units::parse_ramp)]
    pub ramp: Option<RampSpec>,

    /// Stepped rate RATE,RATE,.../EACH, e.g. 1k,2k,4k/10s: each rate held
    /// for EACH in turn, the last one after. 2 to 16 rates as --rate takes
    /// them (the last above 0), EACH 1ms to 30d. Give one of --rate,
    /// --ramp or --steps.
    #[arg(long, value_name = "RATE,.../EACH", allow_hyphen_values = true, value_parser = units::parse_steps)]
    pub steps: Option<StepsSpec>,

    /// How long each connection is held once established, then closed,
    /// 0s to 30d (e.g. 500ms, 10s, 2m; 0s closes at once); `end` holds
    /// until --duration ends the run. Default 3s.
    #[arg(long, value_name = "DURATION|end", allow_hyphen_values = true, value_parser = units::parse_hold)]
    pub hold: Option<HoldMode>,

    /// Hard bound on the whole run, 1ms to 30d; held connections are closed
    /// at it.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_run_duration)]
    pub duration: Option<Duration>,

    /// Give up on a handshake after this long, 1ms to 1h. Default 3s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_connect_timeout)]
    pub connect_timeout: Option<Duration>,

    /// idle: hold silently; echo: send --message every --interval and time
    /// the reply; request: put requests (--protocol) at --rate through a
    /// pool of --pool connections held until --duration ends (default
    /// 10s): --rate, --ramp and --steps are then requests per second (default 4k;
    /// 0 is a closed loop, each connection back to back). Default idle.
    #[arg(long, value_enum)]
    pub mode: Option<units::DriverMode>,

    /// Request mode: connections in the pool, 1 to 100m; they are the
    /// run's connections (--connections, if given, caps it). Default 50.
    #[arg(long, value_name = "P", allow_negative_numbers = true, value_parser = units::parse_pool)]
    pub pool: Option<u64>,

    /// Request mode: the protocol: http (HTTP/1.1 keep-alive, --method,
    /// --path, --header, --body), redis (--command, default PING), line
    /// (--message, a line back) or echo (--message, echoed). Default http.
    #[arg(long, value_enum)]
    pub protocol: Option<crate::scenario::request::RequestProtocol>,

    /// Request mode at a rate: what a request due when no pooled
    /// connection is free does: queue (waits, at most --queue-timeout,
    /// then it is a reject) or reject (not sent; counted). Default queue.
    #[arg(long, value_enum, value_name = "queue|reject")]
    pub when_pool_busy: Option<crate::scenario::request::WhenPoolBusy>,

    /// Request mode at a rate: the longest a request waits for a free
    /// connection before it is a reject, 1ms to 1h. Default 1s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_queue_timeout)]
    pub queue_timeout: Option<Duration>,

    /// HTTP requests: the method. Default GET.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,

    /// HTTP requests: the path. Default /.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,

    /// HTTP requests: a header "Name: value" (repeatable); Host defaults
    /// to the first target.
    #[arg(long, value_name = "NAME: VALUE")]
    pub header: Vec<String>,

    /// HTTP requests: the body (escapes as --message); sent with its
    /// Content-Length.
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,

    /// Redis requests: the command's words, e.g. PING or "GET key".
    /// Default PING.
    #[arg(long, value_name = "COMMAND")]
    pub command: Option<String>,

    /// Echo payload (echo mode), at most 64 KiB: \r, \n, \t, \0, \\ and \xHH
    /// are escapes, e.g. 'PING\r\n' for Redis. Default "ping" and a newline.
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,

    /// Time between echo messages on each connection (echo mode), 1ms to
    /// 1h. Default 1s.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_interval)]
    pub interval: Option<Duration>,

    /// How ceiling closes: fin (orderly; TIME_WAIT stays on this side) or
    /// rst (SO_LINGER 0, no TIME_WAIT). Default fin.
    #[arg(long, value_enum)]
    pub close: Option<CloseMode>,

    /// Set this process's soft RLIMIT_NOFILE (to reproduce the fd limit),
    /// 16 to the hard limit. By default the soft limit is raised to the
    /// hard limit.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = units::parse_fd_limit)]
    pub fd_limit: Option<u64>,

    /// When a socket bound to a --source IP gets its port: connect (the
    /// kernel picks it per destination, IP_BIND_ADDRESS_NO_PORT) or bind
    /// (bind(ip, 0) picks it per source IP: fails with EADDRINUSE once the
    /// range is used). Default connect.
    #[arg(long, value_enum, value_name = "connect|bind")]
    pub pick_port_at: Option<units::PortPick>,

    /// Stop opening and end the run at the first limit.
    #[arg(long)]
    pub stop_at_first_limit: bool,

    /// Most handshakes in flight at once, 1 to 10m, shared among the worker
    /// threads: an attempt that is due waits while this many are still
    /// connecting, and its latency counts the wait. Caps what a target
    /// that does not accept can pile up (half-open connections take fds).
    /// Default: none for a paced run, 512 per worker thread with --rate 0;
    /// without a cap, a limit reached while most sockets are handshakes
    /// (counted by state at the limit) names the target's listen queue and
    /// handshake rate as its cause, and this flag in its remedy.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = units::parse_max_in_flight)]
    pub max_in_flight: Option<u64>,

    /// Worker threads per process, 1 to 1024 (default: one per core,
    /// shared among the worker processes; at most one per connection).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = units::parse_threads)]
    pub threads: Option<u64>,

    /// Worker processes, each with its own fd table, to go past the
    /// per-process fd limit: auto (as many as --connections need under the
    /// hard RLIMIT_NOFILE; none when one process is enough) or 1 to 1024.
    /// Default: ceiling's own process only.
    #[arg(long, value_name = "auto|N", allow_negative_numbers = true, value_parser = units::parse_processes)]
    pub processes: Option<units::Processes>,

    /// Name of the run, used in the results directory name.
    #[arg(long)]
    pub name: Option<String>,

    /// Results directory (default results/<UTC time>-<name>/); must not
    /// exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Live output: auto (the dashboard on a terminal, plain lines
    /// otherwise), tui (full-screen dashboard), progress (one-line bar),
    /// plain (one line a second), none.
    #[arg(long, value_enum, default_value_t = UiMode::Auto)]
    pub ui: UiMode,
}

/// `ceiling run`: a run's flags and, for a fleet's coordinator, the
/// fleet's.
#[derive(Debug, Args, Default)]
pub struct RunCommand {
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub fleet: CoordinatorArgs,
}

/// `ceiling run --fleet N`: coordinate agents on other hosts.
#[derive(Debug, Args, Default)]
pub struct CoordinatorArgs {
    /// Coordinate a fleet of N agents (`ceiling agent`), 1 to the
    /// connections: wait until all have joined, give agent k segment k of N
    /// of the plan, start them at one time, merge their results live;
    /// writes hosts.csv beside the usual files. Needs --target and a token.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::fleet::parse_hosts)]
    pub fleet: Option<u64>,

    /// Where the coordinator listens for agents. Default 127.0.0.1:7979
    /// (loopback: agents on other hosts reach it only at an address you
    /// give here, e.g. 0.0.0.0:7979).
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::fleet::parse_listen)]
    pub fleet_listen: Option<std::net::SocketAddr>,

    /// The token every agent must give (default: CEILING_FLEET_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub fleet_token: Option<String>,

    /// How long to wait for every agent before the run is refused (naming
    /// the missing ones), 1s to 1h. Default 60s.
    #[arg(long, value_name = "DURATION", value_parser = crate::fleet::parse_join_timeout)]
    pub fleet_join_timeout: Option<Duration>,
}

/// `ceiling agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The coordinator's ADDR:PORT (its --fleet-listen); a host name is
    /// resolved once, e.g. ceiling-coordinator.my-ns.svc:7979.
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::fleet::parse_join)]
    pub join: String,

    /// The fleet's token (default: CEILING_FLEET_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// This agent's index, 0 to N-1 (default: JOB_COMPLETION_INDEX, else
    /// SLURM_PROCID).
    #[arg(long, value_name = "K", allow_negative_numbers = true, value_parser = crate::fleet::parse_index)]
    pub index: Option<u64>,

    /// The fleet's host count, checked at the join (default: SLURM_NTASKS,
    /// else not checked).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::fleet::parse_hosts)]
    pub hosts: Option<u64>,

    /// This host's name in the results (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `ceiling report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results directories: a run's, an explore's (its steps are drawn), or
    /// several to overlay.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// Where to write the page. Default: DIR/report.html for one directory;
    /// required for several.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `ceiling merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results directories of runs (`ceiling run` or `ceiling lab`).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// The merged results directory to write (must not exist, or be empty).
    #[arg(long, value_name = "DIR", required = true)]
    pub out: PathBuf,
}

/// `ceiling compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Two sides or more: each a results directory, or several
    /// comma-separated (DIR1,DIR2,DIR3) runs of one setup.
    #[arg(value_name = "SIDE", num_args = 2.., required = true)]
    pub sides: Vec<String>,

    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,

    /// Exit 1 when this holds for a side after the first (repeatable):
    /// FIGURE OP VALUE, OP one of < <= > >= == !=, VALUE with its unit or a
    /// factor of the first side, e.g. 'peak_active < 0.95*A',
    /// 'connect_p99 > 5ms', 'failed_port_exhaustion > 0'. Figures:
    /// established, peak_active, attempted, failed, time_to_first_limit,
    /// held_at_first_limit, connect_rate, failed_<kind>,
    /// connect_p50/p90/p99/p999/max, rtt_p50/..., or any number in
    /// summary.json's totals; of request runs also requests_sent,
    /// responses, request_errors, request_errors_<kind>, rejects,
    /// reconnects, status_<class>, request_rate and queue_/service_/total_
    /// p50/.../max, e.g. 'total_p99 > 50ms', 'rejects > 0'
    #[arg(long = "fail-if", value_name = "COND")]
    pub fail_if: Vec<String>,
}

/// `ceiling sweep`: the pool sizes, the goal, and a run's flags.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Pool sizes to run, rising, comma-separated, e.g. 10,50,100,200 (at
    /// most 64, each 1 to 100m); or a range LO..HI searched for the
    /// smallest pool meeting the goal (its ends, then halving, to within
    /// 10%), e.g. 10..1000.
    #[arg(long = "pool", value_name = "P,P,...|LO..HI", required = true, value_parser = crate::sweep::parse_pool_list)]
    pub pools: crate::sweep::Pools,

    /// What a pool must meet: conditions separated by commas, each
    /// FIGURE<VALUE (or <=): p50, p90, p99, p999, max of total latency (or
    /// queue_p99, service_p99, ...) below a duration, errors or rejects
    /// below a share of the requests, e.g. 'p99<50ms,errors<0.1%'.
    #[arg(long, value_name = "GOAL", required = true, value_parser = crate::sweep::parse_goal)]
    pub goal: crate::sweep::Goal,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `ceiling explore`: a run's flags (they set up each climb) and the
/// ladder's own.
#[derive(Debug, Args, Default)]
pub struct ExploreArgs {
    /// After each climb, apply the remedy for the limit it hit and climb
    /// again (root: every climb runs in a `ceiling lab` namespace).
    #[arg(long)]
    pub ladder: bool,

    /// Most climbs of a ladder (1 to 32). Default 10.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_max_steps)]
    pub max_steps: Option<u32>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// `ceiling fleet`: one subcommand per engine.
#[derive(Debug, Subcommand)]
pub enum FleetEngine {
    /// Kubernetes manifests (YAML, for `kubectl apply -f -`): a token
    /// Secret, the scenario as a ConfigMap, the coordinator's Job and a
    /// headless Service for it, and an Indexed Job of the agents.
    Kubernetes(KubernetesArgs),
    /// A batch script for `sbatch`: the coordinator and the agents as two
    /// `srun` steps of one job of N+1 tasks.
    Slurm(SlurmArgs),
}

/// `ceiling fleet kubernetes`.
#[derive(Debug, Args)]
pub struct KubernetesArgs {
    /// Container image with ceiling on its PATH and a shell (see
    /// scripts/Dockerfile), e.g. registry.example/ceiling:0.1. Required.
    // Optional to clap, so that one given after the run arguments is
    // named as misplaced rather than missing.
    #[arg(long, value_name = "IMAGE", value_parser = parse_image)]
    pub image: Option<String>,

    /// Namespace of every object (default: kubectl's current one).
    #[arg(long, value_name = "NS", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `ceiling fleet slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// What every engine's rendering takes.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Agents (hosts) in the fleet, 1 to 10k; at most the run's
    /// connections. Required.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_hosts)]
    pub hosts: Option<u64>,

    /// TCP port the coordinator listens on for its agents.
    #[arg(long, value_name = "PORT", default_value_t = 7979, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// How long the coordinator waits for all agents to join before it
    /// refuses the run, 1s to 1h (scheduling and image pulls count).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_join_timeout)]
    pub join_timeout: Duration,

    /// [SCENARIO.toml] [run flags]: as `ceiling run` takes them, after the
    /// fleet's own flags; the scenario file, if any, first.
    #[arg(
        value_name = "RUN ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub run: Vec<String>,
}

/// `ceiling run`'s scenario file and flags alone: how `ceiling fleet`
/// checks the run arguments it passes on.
#[derive(Debug, Parser)]
#[command(name = "ceiling run", no_binary_name = true, disable_help_flag = true)]
pub struct RunOnly {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum UiMode {
    #[default]
    Auto,
    Tui,
    Progress,
    Plain,
    None,
}

/// What `serve` does with an accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ServeMode {
    /// Hold it and echo every byte back.
    Echo,
    /// Hold it; read and discard what arrives.
    #[default]
    Hold,
    /// Close it at once.
    Close,
    /// Answer HTTP/1.1 requests: any method and path get 200 "ok";
    /// keep-alive unless the client sends Connection: close.
    Http,
    /// Answer RESP (Redis) commands: PING, ECHO, QUIT; others get -ERR.
    Redis,
    /// Answer each line with the same line.
    Line,
}

/// `ceiling serve`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Listen on ADDR:PORT (repeatable); PORT-PORT listens on each port of
    /// the range; port 0 picks a free port. Default 127.0.0.1:0.
    #[arg(long = "listen", value_name = "ADDR:PORT[-PORT]", value_parser = units::parse_listen)]
    pub listen: Vec<TargetSpec>,

    /// What to do with each accepted connection.
    #[arg(long, value_enum, default_value_t = ServeMode::Hold)]
    pub mode: ServeMode,

    /// With --mode http, redis or line: how long each request takes before
    /// its response, 0 to 60s (e.g. 200ms), or MIN..MAX drawn uniformly
    /// per request (e.g. 1ms..5ms). A task waits on a timer (other
    /// requests go on); a thread (--model threads) sleeps. Default 0.
    #[arg(long, value_name = "DURATION[..DURATION]", value_parser = crate::server::parse_service_time)]
    pub service_time: Option<crate::server::ServiceTime>,

    /// listen() backlog (each process's, with --processes), 1 to 65535;
    /// the kernel caps it at net.core.somaxconn.
    #[arg(long, value_name = "N", default_value_t = 4096, allow_negative_numbers = true, value_parser = units::parse_backlog)]
    pub backlog: u32,

    /// Listen but never accept (reproduces listen backlog overflow).
    #[arg(long)]
    pub no_accept: bool,

    /// Server model: async (event-driven, epoll: no thread per connection),
    /// threads (one OS thread per connection, blocking I/O), or pool (with
    /// --mode http, redis or line: connections on tasks, each request
    /// served by one of --workers threads behind a --queue).
    #[arg(long, value_name = "async|threads|pool", default_value = "async", value_parser = crate::server::parse_model)]
    pub model: crate::server::Model,

    /// With --model pool: worker threads serving requests, 1 to 4096.
    /// Default 8.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::server::parse_workers)]
    pub workers: Option<usize>,

    /// With --model pool: requests that may wait for a worker, 0 to
    /// 1000000. Default 32.
    #[arg(long, value_name = "Q", allow_negative_numbers = true, value_parser = crate::server::parse_queue)]
    pub queue: Option<usize>,

    /// With --model pool, what a request gets when every worker is busy
    /// and the queue is full: wait (for room; its connection reads nothing
    /// meanwhile), reject (HTTP 503, RESP -ERR busy, a line "busy"; the
    /// connection stays open) or close (the connection, without an
    /// answer). Default reject.
    #[arg(long, value_name = "wait|reject|close", value_parser = crate::server::parse_when_queue_full)]
    pub when_queue_full: Option<crate::server::WhenQueueFull>,

    /// Stack size of each connection thread with --model threads: bytes,
    /// or with k (KiB) or m (MiB), e.g. 64k, 1m.
    #[arg(long, value_name = "SIZE", default_value = "64k", value_parser = crate::server::parse_size)]
    pub thread_stack: usize,

    /// Serve at most N (1 or more) connections at once; --when-full says
    /// what happens to the next one. With --processes, N per process (a
    /// total cap could not be exact across processes without coordinating
    /// them).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = crate::server::parse_max_conns)]
    pub max_conns: Option<usize>,

    /// With --max-conns, what a new connection gets while N are served:
    /// close (message, then FIN), reset (RST), stop-accepting (wait in the
    /// backlog), close-oldest (the oldest is closed to make room), queue
    /// (accepted, served when a slot frees). Default close.
    #[arg(long, value_name = "POLICY", requires = "max_conns", value_parser = crate::server::parse_when_full)]
    pub when_full: Option<crate::server::WhenFull>,

    /// Written to a connection before it is turned away (--when-full close,
    /// or no thread for it). Default: a line naming the reason.
    #[arg(long, value_name = "TEXT")]
    pub reject_message: Option<String>,

    /// Close a connection that has received nothing for this long, 1ms to
    /// 30d (e.g. 500ms, 60s).
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = units::parse_idle_timeout)]
    pub idle_timeout: Option<Duration>,

    /// Print accepted, held, rejected, requests (and the pool's queue and
    /// busy workers), threads, RSS, context switches and CPU time once a
    /// second (they are printed at exit anyway).
    #[arg(long)]
    pub stats: bool,

    /// Serve from N processes (1 to 1024) of this binary, each with its own
    /// fd table and RLIMIT_NOFILE (to hold more than one process's fd
    /// limit). They all listen on the same ADDR:PORT with SO_REUSEPORT and
    /// the kernel spreads new connections among them by a hash of the
    /// addresses and ports: roughly even, not exactly. --backlog, --max-conns and
    /// --fd-limit apply to each process. Figures printed are summed over
    /// the processes (peak held: the sum of each one's peak, an upper
    /// bound of the peak held at one moment), with one line per process at
    /// exit. A process that dies is reported and the others keep serving.
    #[arg(long, value_name = "N", default_value_t = 1, allow_negative_numbers = true, value_parser = parse_processes)]
    pub processes: usize,

    /// Set the soft RLIMIT_NOFILE of the (each) server process, 16 to the
    /// hard limit. By default the inherited limit is kept.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = units::parse_fd_limit)]
    pub fd_limit: Option<u64>,

    /// Internal: run as server process K of `serve --processes`, reporting
    /// to the parent as JSON lines on stdout.
    #[arg(long, value_name = "K", hide = true)]
    pub as_process: Option<usize>,
}

/// `explore --max-steps`: 1 to 32 climbs.
fn parse_max_steps(text: &str) -> Result<u32, String> {
    units::CountRange {
        min: 1,
        max: 32,
        what: "number of climbs",
        max_name: None,
        why: "each climb is a whole run",
    }
    .parse(text)
    .map(|n| n as u32)
}

/// Most agents `fleet --hosts` renders: an Indexed Job or an srun step of
/// more is a typo here, not a fleet.
pub const MAX_HOSTS: u64 = 10_000;

/// `fleet --hosts`: 1 to [`MAX_HOSTS`].
fn parse_hosts(text: &str) -> Result<u64, String> {
    units::CountRange {
        min: 1,
        max: MAX_HOSTS,
        what: "host count",
        max_name: None,
        why: "agents in one fleet, one per host",
    }
    .parse(text)
}

/// `fleet --join-timeout`: 1s to 1h.
fn parse_join_timeout(text: &str) -> Result<Duration, String> {
    units::DurationRange {
        min: Duration::from_secs(1),
        max: Duration::from_secs(3600),
        what: "the join timeout",
    }
    .parse(text)
}

/// `fleet kubernetes --image`: one word a container runtime pulls.
fn parse_image(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 512
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not an image reference: use NAME[:TAG] or NAME@DIGEST, e.g. \
             registry.example/ceiling:0.1 (letters, digits and . _ - / : @)"
        ))
    }
}

/// `fleet kubernetes --namespace`: a DNS label (RFC 1123), as Kubernetes
/// names namespaces.
fn parse_namespace(text: &str) -> Result<String, String> {
    let ok = (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a namespace name: use 1 to 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit, e.g. load-test"
        ))
    }
}

/// Most server processes `serve --processes` starts.
pub const MAX_PROCESSES: usize = 1024;

/// `--processes`: 1 to [`MAX_PROCESSES`].
fn parse_processes(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_PROCESSES).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{}' is not a usable number of processes: use a whole number from 1 to {MAX_PROCESSES} (1 serves from this process alone)",
            text.trim()
        )),
    }
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: Vec::new(),
            mode: ServeMode::Hold,
            service_time: None,
            backlog: 4096,
            no_accept: false,
            model: crate::server::Model::Async,
            workers: None,
            queue: None,
            when_queue_full: None,
            thread_stack: crate::server::DEFAULT_THREAD_STACK,
            max_conns: None,
            when_full: None,
            reject_message: None,
            idle_timeout: None,
            stats: false,
            processes: 1,
            fd_limit: None,
            as_process: None,
        }
    }
}
