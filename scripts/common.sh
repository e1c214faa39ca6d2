# Shared by bench.sh and bench-million.sh: sourced, not run. Each caller
# defines usage() first.

# require_whole_numbers VALUE...: each a positive whole number, or the
# value named, usage printed and exit 2.
require_whole_numbers() {
    local v
    for v in "$@"; do
        if ! [[ "$v" =~ ^[1-9][0-9]*$ ]]; then
            echo "$0: '$v' is not a positive whole number" >&2
            usage
            exit 2
        fi
    done
}

# require_tools TOOL...: each on PATH, or exit 2 naming it.
require_tools() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null; then
            echo "$0: needs $tool" >&2
            exit 2
        fi
    done
}

# build_binaries: release builds of ceiling and of the raw baseline (from
# the repository root); sets $ceiling and $baseline to their absolute paths.
build_binaries() {
    echo "building (release) ..." >&2
    ceiling=$(cargo build --release --bin ceiling --message-format=json \
        | jq -r 'select(.reason == "compiler-artifact" and .target.name == "ceiling"
                        and (.target.kind | index("bin"))) | .executable' | tail -n 1)
    baseline=$(cargo bench --bench raw_baseline --no-run --message-format=json \
        | jq -r 'select(.reason == "compiler-artifact" and .target.name == "raw_baseline")
                 | .executable' | tail -n 1)
    if [ ! -x "$ceiling" ] || [ ! -x "$baseline" ]; then
        echo "$0: could not find the built binaries (ceiling: '$ceiling', baseline: '$baseline')" >&2
        exit 1
    fi
    baseline=$(realpath "$baseline")
}

# An awk function for the summaries: median(arr, k, cnt) of arr[k, 1..cnt].
# shellcheck disable=SC2034 # used by the sourcing scripts
AWK_MEDIAN='
    function median(arr, k, cnt,    i, j, t, v) {
        for (i = 1; i <= cnt; i++) v[i] = arr[k, i] + 0
        for (i = 2; i <= cnt; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
        return cnt % 2 ? v[(cnt + 1) / 2] : (v[cnt / 2] + v[cnt / 2 + 1]) / 2
    }'
