#!/bin/sh
# The entrypoint of sharpseek's images (and of compose's secrets-check step): refuse to
# start with a secret that is empty or still the placeholder of deploy/.env.example, then
# run the command given (`exec "$@"`).
#
# A secret is any environment variable whose name ends in PASSWORD, SECRET_KEY, ACCESS_KEY,
# API_KEY or TOKEN, plus every name listed in REQUIRED_SECRETS (space-separated; these must
# also be set). Compose's `${VAR:?}` refuses only unset or empty values, so a copied
# example file would otherwise start MinIO and PostgreSQL with its published passwords.
# Make real ones as docs/deploy.md says ("Secrets"). Values are never printed.
set -eu

problems=""
names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' \
    | grep -E '(PASSWORD|SECRET_KEY|ACCESS_KEY|API_KEY|TOKEN)$' || true)
for name in $names ${REQUIRED_SECRETS:-}; do
    if ! env | grep -q "^${name}="; then
        problems="${problems}  ${name} is not set\n"
        continue
    fi
    value=$(printenv "$name" || true)
    case "$value" in
        "") problems="${problems}  ${name} is empty\n" ;;
        change-me*) problems="${problems}  ${name} is still the example's placeholder (change-me...)\n" ;;
    esac
done
if [ -n "$problems" ]; then
    printf 'sharpseek: refusing to start; make real secrets first (docs/deploy.md, "Secrets"):\n' >&2
    printf "$problems" | sort -u >&2
    exit 78  # sysexits EX_CONFIG
fi
if [ "$#" -eq 0 ]; then
    exit 0
fi
exec "$@"
