//! Shell integration: the generated bash completion loads in a real bash
//! and completes subcommands and flags; the man pages render.

use std::process::Command;

use crate::util::{bin, ceiling, text};

/// What bash's completion for `ceiling` offers for the words `line` (the
/// last one being completed), with the script from `ceiling completions
/// bash` loaded the way a user loads it.
fn complete(line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let script = format!(
        r#"set -e
source <("$CEILING" completions bash)
# The function `complete` registered for ceiling, as bash would call it.
func=$(complete -p ceiling | sed -n 's/.*-F \([^ ]*\).*/\1/p')
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
# compgen's status is 1 when nothing matches: that is an answer too.
"$func" ceiling "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}" || true
[ "${{#COMPREPLY[@]}}" -eq 0 ] || printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let output = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", &script])
        .env("CEILING", bin())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "bash completion failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let offered = complete(&["ceiling", "ru"]);
    assert_eq!(offered, ["run"], "{offered:?}");
    let offered = complete(&["ceiling", ""]);
    for sub in ["run", "lab", "explore", "serve", "completions", "manpage"] {
        assert!(offered.iter().any(|o| o == sub), "{sub} not in {offered:?}");
    }
    assert!(
        !offered.iter().any(|o| o == "worker"),
        "the internal worker subcommand is offered: {offered:?}"
    );
    let offered = complete(&["ceiling", "serve", "--as"]);
    assert!(offered.is_empty(), "a hidden flag is offered: {offered:?}");
    let offered = complete(&["ceiling", "run", "--conn"]);
    assert!(
        offered.iter().any(|o| o == "--connections")
            && offered.iter().any(|o| o == "--connect-timeout"),
        "{offered:?}"
    );
}

#[test]
fn man_pages_render_for_every_subcommand() {
    let output = ceiling().arg("manpage").output().unwrap();
    assert!(output.status.success());
    let page = text(&output.stdout);
    assert!(page.contains(".TH ceiling 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let output = ceiling()
        .args(["manpage", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    for page in [
        "ceiling.1",
        "ceiling-run.1",
        "ceiling-lab.1",
        "ceiling-serve.1",
    ] {
        let roff = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains(".SH OPTIONS"), "{page}: {roff}");
    }
    let run = std::fs::read_to_string(dir.path().join("ceiling-run.1")).unwrap();
    assert!(run.contains("connections"), "{run}");
}
