#!/bin/sh
# Starts redis-server with access control: the default (anonymous) user is off, the application
# has its own ACL user. The ACL file is written at start from REDIS_USERNAME / REDIS_PASSWORD
# (deploy/compose.env), so no secret lives in the image, the compose file or the command line.
# Extra arguments go to redis-server; `entrypoint.sh healthcheck [redis-cli options]` pings as the app user.
#
# The app user may run every command but the administrative ones (CONFIG, SHUTDOWN, DEBUG,
# REPLICAOF, MODULE, ACL, MONITOR, CLIENT KILL...) and FLUSHALL: whoever steals its password
# can't rewrite the server's configuration (the classic CONFIG SET dir/dbfilename file write)
# or wipe every DB at once.
set -eu
: "${REDIS_USERNAME:?set REDIS_USERNAME (deploy/compose.env)}"
: "${REDIS_PASSWORD:?set REDIS_PASSWORD (deploy/compose.env)}"
for password in "$REDIS_PASSWORD" "${REDIS_PASSWORD_PREVIOUS:-}"; do
  case "$password" in
    *' '*|*'>'*|*'<'*) echo "Redis passwords may not contain spaces or angle brackets" >&2; exit 1 ;;
  esac
done
# During a rotation (docs/operations.md) the previous password is accepted too.
previous=""
[ -n "${REDIS_PASSWORD_PREVIOUS:-}" ] && previous=" >$REDIS_PASSWORD_PREVIOUS"
if [ "${1:-}" = "healthcheck" ]; then  # the container's health check, as the app user
  shift
  REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning --user "$REDIS_USERNAME" "$@" ping | grep -q PONG
  exit
fi
acl_file="${REDIS_ACL_FILE:-/tmp/egoejo-users.acl}"
umask 077
printf 'user default off resetpass nocommands\nuser %s on >%s%s ~* &* +@all -@admin -flushall\n' \
  "$REDIS_USERNAME" "$REDIS_PASSWORD" "$previous" > "$acl_file"
exec redis-server --aclfile "$acl_file" "$@"
