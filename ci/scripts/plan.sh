#!/usr/bin/env bash
# What a pull request would change, as Markdown for a PR comment: written
# to $DRIFTCRON_PLAN_FILE (default driftcron-plan.md), appended to the job
# summary when $GITHUB_STEP_SUMMARY is set, and `changes=true|false`
# written to $GITHUB_OUTPUT when set (a later step can skip the comment).
#
#   ci/scripts/plan.sh [--base REV] [--path DIR]   (run inside the checkout)
#
# Exit status: 0 whether or not there are changes (a plan is not a
# failure), 1 on error, such as invalid schedules at the head (the
# validator's diagnostics are in the plan file then).
# $DRIFTCRON names the binary (default: driftcron on PATH).
set -uo pipefail
bin=${DRIFTCRON:-driftcron}
out=${DRIFTCRON_PLAN_FILE:-driftcron-plan.md}

err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$bin" plan --format markdown "$@" >"$out" 2>"$err"
status=$?
case "$status" in
0) changes=false ;;
2) changes=true ;;
*)
    # Invalid schedules: the plan already explains (Markdown on stdout).
    # Anything else (not a checkout, unknown base): say what failed.
    changes=false
    if [ ! -s "$out" ]; then
        {
            echo "### driftcron plan failed"
            echo
            echo '```'
            cat "$err"
            echo '```'
        } >"$out"
    fi
    ;;
esac
cat "$err" >&2
[ -n "${GITHUB_OUTPUT:-}" ] && echo "changes=$changes" >>"$GITHUB_OUTPUT"
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$out" >>"$GITHUB_STEP_SUMMARY"
if [ "$status" -eq 0 ] || [ "$status" -eq 2 ]; then exit 0; fi
exit 1
