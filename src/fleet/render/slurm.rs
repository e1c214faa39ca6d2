//! `ceiling fleet slurm`: a batch script for `sbatch`. One job of N+1
//! tasks: the coordinator as a one-task `srun` step on the job's first
//! node (where the script runs), the agents as one N-task step; each agent
//! takes its index from `SLURM_PROCID` (0 to N-1 within its step). Both
//! steps `--overlap`, so an agent may share the coordinator's node and
//! each step sees its nodes' CPUs. The token comes from the environment
//! at submission, or is drawn for the job; the scenario file travels in
//! the script.

use std::fmt::Write;

use super::{Fleet, dns_label};

/// The here-document's end marker, made unique against the scenario's
/// lines.
const HEREDOC_END: &str = "CEILING_SCENARIO";

/// The script.
pub fn render(fleet: &Fleet) -> String {
    let label = dns_label(&fleet.name, 40);
    let job = if label.is_empty() {
        "ceiling".to_owned()
    } else {
        format!("ceiling-{label}")
    };
    let agents = fleet.hosts;
    let mut s = String::new();
    let _ = write!(
        s,
        "#!/bin/bash
# A ceiling fleet test: {agents} agent(s) and their coordinator, rendered by
# `ceiling fleet slurm`. Submit with `sbatch THIS_FILE`; sbatch options on
# its command line override these (e.g. --nodes={nodes} --ntasks-per-node=1
# for one agent per node; --overcommit where nodes have fewer CPUs than
# tasks). ceiling must be on every node's PATH, or set CEILING to its
# path. The coordinator writes its results directory under the directory
# sbatch was called from (or --chdir).
#SBATCH --job-name={job}
#SBATCH --ntasks={tasks}
#SBATCH --time={time}
set -euo pipefail

CEILING=\"${{CEILING:-ceiling}}\"
# Shared by the coordinator and its agents: given at submission, or drawn
# here for this job only.
CEILING_FLEET_TOKEN=\"${{CEILING_FLEET_TOKEN:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')}}\"
export CEILING_FLEET_TOKEN
: \"${{SLURM_JOB_NODELIST:?is not set: submit this script with sbatch}}\"
# The coordinator runs on the job's first node, where this script runs
# (sed reads the whole list: head would leave scontrol a SIGPIPE, which
# pipefail makes the script's end).
COORD_NODE=\"$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | sed -n 1p)\"
# Where the agents reach it: that node's name, or CEILING_COORDINATOR_ADDR
# when the name does not resolve to the interface the agents should use.
COORD_ADDR=\"${{CEILING_COORDINATOR_ADDR:-$COORD_NODE}}\"
",
        nodes = agents + 1,
        tasks = agents + 1,
        time = slurm_time(fleet.deadline().as_secs()),
    );
    let scenario_path = fleet.scenario.as_ref().map(|file| {
        let mut end = HEREDOC_END.to_owned();
        while file.text.lines().any(|line| line == end) {
            end.push('_');
        }
        let _ = write!(
            s,
            "
# The scenario, under its own file name (a run is named after it).
SCENARIO_DIR=\"$(mktemp -d)\"
trap 'rm -rf \"$SCENARIO_DIR\"' EXIT
cat > \"$SCENARIO_DIR\"/{name} <<'{end}'
{text}{newline}{end}
",
            name = shell_word(&file.file_name),
            text = file.text,
            newline = if file.text.ends_with('\n') || file.text.is_empty() {
                ""
            } else {
                "\n"
            },
        );
        format!("\"$SCENARIO_DIR\"/{}", shell_word(&file.file_name))
    });

    let mut coordinator = vec![
        "srun".to_owned(),
        "--nodes=1".to_owned(),
        "--ntasks=1".to_owned(),
        "--nodelist=\"$COORD_NODE\"".to_owned(),
        "--overlap".to_owned(),
        "\"$CEILING\"".to_owned(),
    ];
    let mut args = fleet
        .coordinator_args(None)
        .into_iter()
        .map(|a| shell_word(&a));
    coordinator.extend(args.next()); // run
    coordinator.extend(scenario_path);
    coordinator.extend(args);
    let mut agent = vec![
        "srun".to_owned(),
        format!("--ntasks={agents}"),
        "--overlap".to_owned(),
        // One agent that fails is a lost host, not the end of the others.
        "--kill-on-bad-exit=0".to_owned(),
        "\"$CEILING\"".to_owned(),
    ];
    // The coordinator's host name is the shell's to expand; the rest is
    // quoted.
    for arg in fleet.agent_args("\u{0}") {
        let parts: Vec<String> = arg
            .split('\u{0}')
            .map(|part| {
                if part.is_empty() {
                    String::new()
                } else {
                    shell_word(part)
                }
            })
            .collect();
        agent.push(parts.join("\"$COORD_ADDR\""));
    }
    let _ = write!(
        s,
        "
{coordinator} &
coordinator=$!
# Agent K of {agents} is task K of this step (SLURM_PROCID).
{agent} &
agents=$!
status=0
wait \"$coordinator\" || status=$?
wait \"$agents\" || echo \"ceiling: an agent step ended with status $? (see above)\" >&2
exit \"$status\"
",
        coordinator = coordinator.join(" "),
        agent = agent.join(" "),
    );
    s
}

/// `--time` as Slurm takes it: `D-HH:MM:SS`.
fn slurm_time(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    format!(
        "{d}-{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// One word for the shell: as is when nothing in it is special, else in
/// single quotes.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_what_the_shell_would_read() {
        assert_eq!(shell_word("--connections"), "--connections");
        assert_eq!(shell_word("10k"), "10k");
        assert_eq!(shell_word("2m 30s"), "'2m 30s'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn slurm_times_count_days() {
        assert_eq!(slurm_time(59), "0-00:00:59");
        assert_eq!(slurm_time(90_061), "1-01:01:01");
    }
}
