#!/bin/sh
# Starts redis-server with access control: the default (anonymous) user is off, and each role of
# the application has its own ACL user, `egoejo-<role>`, allowed only the commands and keys that role
# uses (deploy/redis/roles.acl: web, worker, scheduler, dashboard, metrics). The ACL file is written at
# start from REDIS_<ROLE>_PASSWORD (deploy/env/redis.env), so no secret lives in the image, the
# compose file or the command line. Extra arguments go to redis-server.
# `entrypoint.sh healthcheck [redis-cli options]` pings as the metrics user (reads only).
#
# No role may run an administrative command (CONFIG, SHUTDOWN, DEBUG, MODULE, ACL, MONITOR, REPLICAOF,
# CLIENT KILL...), FLUSHALL/FLUSHDB, KEYS, SWAPDB, RESTORE/MIGRATE: whoever steals a password can't
# rewrite the server's configuration (the classic CONFIG SET dir/dbfilename file write), wipe or swap
# the data, or forge serialized values; and each can touch only its own key patterns.
set -eu
here=$(dirname "$0")
roles_file="${REDIS_ROLES_FILE:-$here/roles.acl}"
roles=$(grep -v '^[[:space:]]*#' "$roles_file" | grep -v '^[[:space:]]*$' | cut -d' ' -f1)

password_of() {  # password_of ROLE [_PREVIOUS]: the value of REDIS_<ROLE>_PASSWORD[_PREVIOUS]
  name="REDIS_$(echo "$1" | tr '[:lower:]' '[:upper:]')_PASSWORD${2:-}"
  eval "printf '%s' \"\${$name:-}\""
}

for role in $roles; do
  password=$(password_of "$role")
  if [ -z "$password" ]; then
    echo "set REDIS_$(echo "$role" | tr '[:lower:]' '[:upper:]')_PASSWORD (deploy/env/redis.env)" >&2
    exit 1
  fi
  for candidate in "$password" "$(password_of "$role" _PREVIOUS)"; do
    case "$candidate" in
      *' '*|*'>'*|*'<'*) echo "Redis passwords may not contain spaces or angle brackets" >&2; exit 1 ;;
    esac
  done
done

if [ "${1:-}" = "healthcheck" ]; then  # the container's health check, as the read-only metrics user
  shift
  REDISCLI_AUTH="$(password_of metrics)" redis-cli --no-auth-warning --user egoejo-metrics "$@" ping | grep -q PONG
  exit
fi

# redis-py names itself with CLIENT SETINFO (Redis 7.2+; unknown to 7.0's ACL, so added here only when the
# server has it): harmless, and refusing it would fill the ACL log with one denial per connection.
setinfo=""
case "$(redis-server --version)" in
  *v=7.0.*|*v=6.*) ;;
  *) setinfo=" +client|setinfo" ;;
esac
acl_file="${REDIS_ACL_FILE:-/tmp/egoejo-users.acl}"
umask 077
{
  echo "user default off resetpass nocommands resetkeys resetchannels"
  grep -v '^[[:space:]]*#' "$roles_file" | grep -v '^[[:space:]]*$' | while read -r role rules; do
    # During a rotation (docs/operations.md) the previous password is accepted too.
    previous=$(password_of "$role" _PREVIOUS)
    printf 'user egoejo-%s on >%s%s %s%s\n' "$role" "$(password_of "$role")" "${previous:+ >$previous}" "$rules" "$setinfo"
  done
} > "$acl_file"
exec redis-server --aclfile "$acl_file" "$@"
