#!/usr/bin/env bash
# Makes the services the tests need reachable: a RabbitMQ broker at
# PROTOPLEX_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f).
#
# - Something already answers there: returns at once (idempotent).
# - Otherwise, for a broker on this machine: installs Debian's rabbitmq-server
#   when missing (apt-get, non-interactive, without starting it through an init
#   system: there may be no systemd), starts it with `rabbitmq-server -detached`
#   (or only its application when the node runs with the app stopped), and waits
#   until it accepts connections, at most PROTOPLEX_SERVICES_TIMEOUT seconds
#   (default 120).
#
# Runs as root (apt-get, the broker's files); needs no standard input.
set -euo pipefail

url="${PROTOPLEX_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
timeout_s="${PROTOPLEX_SERVICES_TIMEOUT:-120}"

log() { printf 'services.sh: %s\n' "$*" >&2; }
fail() {
  log "error: $*"
  exit 1
}

# host and port of the URL: amqp://user:pass@host:port/vhost
authority="${url#*://}"
authority="${authority%%/*}"
authority="${authority##*@}"
case "$authority" in
  \[*\]:*) host="${authority%]:*}"; host="${host#[}"; port="${authority##*]:}" ;;
  \[*\]) host="${authority#[}"; host="${host%]}"; port="" ;;
  *:*) host="${authority%%:*}"; port="${authority##*:}" ;;
  *) host="$authority"; port="" ;;
esac
port="${port:-5672}"
[ -n "$host" ] || host=127.0.0.1

answers() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

if answers; then
  log "RabbitMQ answers at $host:$port."
  exit 0
fi

case "$host" in
  127.* | localhost | ::1) ;;
  *) fail "nothing answers at $host:$port, and it is not on this machine: start that broker, or unset PROTOPLEX_AMQP_URL." ;;
esac
[ "$port" = 5672 ] || fail "nothing answers at $host:$port; this script only starts a local RabbitMQ on its default port 5672."
[ "$(id -u)" = 0 ] || fail "nothing answers at $host:$port, and installing or starting RabbitMQ needs root."

export DEBIAN_FRONTEND=noninteractive

if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1; then
  log "installing rabbitmq-server (apt-get)..."
  # No init system here: keep the package's scripts from starting the service
  # (a policy-rc.d answering 101 "action forbidden"); we start it ourselves.
  created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  status=0
  {
    apt-get update -q &&
      apt-get install -y -q --no-install-recommends rabbitmq-server </dev/null
  } >/tmp/protoplex-services-apt.log 2>&1 || status=$?
  if [ -n "$created_policy" ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ "$status" != 0 ]; then
    tail -n 30 /tmp/protoplex-services-apt.log >&2 || true
    fail "apt-get could not install rabbitmq-server (exit $status); full log: /tmp/protoplex-services-apt.log"
  fi
  command -v rabbitmq-server >/dev/null 2>&1 || fail "rabbitmq-server is still missing after apt-get install."
fi

# The node name is rabbit@<short hostname>: when that hostname does not
# resolve, Erlang distribution (and so rabbitmqctl) cannot work. Use localhost.
if ! getent hosts "$(hostname -s 2>/dev/null || hostname)" >/dev/null 2>&1; then
  export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"
  if ! grep -qs '^NODENAME=' /etc/rabbitmq/rabbitmq-env.conf; then
    mkdir -p /etc/rabbitmq
    echo 'NODENAME=rabbit@localhost' >>/etc/rabbitmq/rabbitmq-env.conf
  fi
fi

if rabbitmqctl -q ping >/dev/null 2>&1; then
  # The Erlang node runs but the broker does not answer: its application was
  # stopped (`rabbitmqctl stop_app`), start it again.
  log "RabbitMQ node is up with its application stopped: start_app..."
  rabbitmqctl -q start_app >/dev/null 2>&1 || true
else
  log "starting RabbitMQ (rabbitmq-server -detached)..."
  rabbitmq-server -detached >/tmp/protoplex-services-rabbitmq.log 2>&1 ||
    log "rabbitmq-server -detached exited with $? (see /tmp/protoplex-services-rabbitmq.log)"
fi

deadline=$((SECONDS + timeout_s))
until answers; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    for logfile in /var/log/rabbitmq/*.log /tmp/protoplex-services-rabbitmq.log; do
      [ -f "$logfile" ] && { log "--- $logfile"; tail -n 20 "$logfile" >&2; }
    done
    fail "RabbitMQ did not answer at $host:$port within ${timeout_s}s."
  fi
  sleep 1
done
log "RabbitMQ is ready at $host:$port."
