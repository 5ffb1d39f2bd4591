#!/usr/bin/env bash
# Validate the schedules: GitHub annotations on stdout (the runner turns
# them into inline comments on the diff), the readable report in the job
# summary when $GITHUB_STEP_SUMMARY is set.
#
#   ci/scripts/validate.sh [SCHEDULES_DIR]      (default: schedules)
#
# Exit status: 0 valid, 1 invalid or unreadable (that of driftcron validate).
# $DRIFTCRON names the binary (default: driftcron on PATH).
set -uo pipefail
bin=${DRIFTCRON:-driftcron}
dir=${1:-schedules}

"$bin" validate --format github "$dir"
status=$?
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    {
        echo "### driftcron validate"
        echo
        echo '```'
        "$bin" validate --format text "$dir" 2>&1
        echo '```'
    } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$status"
