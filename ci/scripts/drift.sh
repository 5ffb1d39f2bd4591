#!/usr/bin/env bash
# Is the running daemon what git says? For a scheduled CI job.
#
#   DRIFTCRON_SERVER=https://cron.internal:8787 ci/scripts/drift.sh [drift flags]
#
# The token comes from $DRIFTCRON_API_TOKEN (or pass --token-file). The
# Markdown report goes to the job summary ($GITHUB_STEP_SUMMARY) or to
# $DRIFTCRON_REPORT_FILE (GitLab: keep it as an artifact); annotations (or
# the text report outside GitHub) go to stdout.
#
# Exit status, as driftcron drift: 0 in sync, 2 drift, 1 error.
set -uo pipefail
bin=${DRIFTCRON:-driftcron}
: "${DRIFTCRON_SERVER:?set DRIFTCRON_SERVER to the API URL of the daemon}"

# One request feeds both outputs (two could disagree).
md=$(mktemp)
trap 'rm -f "$md"' EXIT
format=text
[ -n "${GITHUB_ACTIONS:-}" ] && format=github
"$bin" drift --format "$format" --append-markdown "$md" "$@"
status=$?
if [ -s "$md" ]; then
    [ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$md" >>"$GITHUB_STEP_SUMMARY"
    [ -n "${DRIFTCRON_REPORT_FILE:-}" ] && cp "$md" "$DRIFTCRON_REPORT_FILE"
fi
exit "$status"
