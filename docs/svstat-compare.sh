#!/bin/sh
# pysvstat beside s6-svstat (docs/clients.md): the same four services and steps under the real
# s6-supervise and under pyinit, s6-svstat's words at each step.
#
#   sh docs/svstat-compare.sh [S6BIN]
#
# S6BIN holds s6-supervise, s6-svc and s6-svstat (default: s6-overlay 3.2.3.2's s6 2.15.1.0,
# unpacked in /opt/s6-overlay-real; /usr/bin for Debian's s6). pyinit is this checkout's, run
# as a subreaper with PYS6_ETC and PYS6_RUNDIR in a temporary directory; PYTHON is the
# interpreter with pys6's dependencies (default /opt/pys6-venv/bin/python). Control is S6BIN's
# s6-svc in both runs (on pyinit's supervise directories in the second). Prints one block per
# step: s6-supervise's s6-svstat, then, for pyinit, S6BIN's s6-svstat on pyinit's directory,
# pys6's own s6-svstat and `pysvstat NAME`; and s6-svwait -U on `app` (no notification-fd):
# Debian's (/usr/bin/s6-svwait: s6 2.15's needs s6-overlay's own paths for s6-ftrigrd) under
# both, and pys6's under pyinit. Every process it starts is stopped by its pid.
set -eu
B=${1:-/opt/s6-overlay-real/rootfs-overlay/package/admin/s6-2.15.1.0/command}
W6=${S6SVWAIT:-/usr/bin/s6-svwait}
PY=${PYTHON:-/opt/pys6-venv/bin/python}
CHECKOUT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d /tmp/svstat-compare.XXXXXX)
trap 'rm -rf "$W"' EXIT

mk() {  # the four services under $1
    mkdir -p "$1/app" "$1/rdy" "$1/off" "$1/fin"
    printf '#!/bin/sh\nexec sleep 1000\n' > "$1/app/run"
    printf '#!/bin/sh\nsleep 1\necho >&3\nexec sleep 1000\n' > "$1/rdy/run"; echo 3 > "$1/rdy/notification-fd"
    printf '#!/bin/sh\nexec sleep 1000\n' > "$1/off/run"; touch "$1/off/down"
    printf '#!/bin/sh\nexec sleep 1000\n' > "$1/fin/run"; printf '#!/bin/sh\nexec sleep 2\n' > "$1/fin/finish"
    chmod +x "$1"/*/run "$1/fin/finish"
}
svc() { "$B/s6-svc" "$@"; }
steps() {  # $D: the directory of the four supervised service directories; st LABEL NAME prints
    sleep 2.5
    st "app (no notification-fd) up" app; st "rdy (notification-fd) up, ready" rdy
    wt "app: s6-svwait -U -t 300" app
    st "off (a down file), never started" off
    svc -d "$D/app"; svc -d "$D/rdy"; sleep 1.2
    st "app after s6-svc -d" app; st "rdy after s6-svc -d" rdy
    svc -u "$D/rdy"; sleep 0.3; st "rdy up again, not ready yet" rdy; sleep 1.5; st "rdy ready again" rdy
    svc -u "$D/off"; sleep 0.3; st "off after -u (up, normally down)" off
    svc -k "$D/off"; sleep 0.2; st "off after -k (down, restart due)" off
    sleep 1.2; st "off restarted" off
    svc -d "$D/off"; sleep 0.3; st "off after -d (down, normally down)" off
    svc -p "$D/rdy"; sleep 0.2; st "rdy after -p (SIGSTOP)" rdy; svc -c "$D/rdy"
    svc -d "$D/fin"; sleep 0.4; st "fin after -d, its finish running" fin
    sleep 2.2; st "fin after its finish ended" fin
    st "app: -o up,ready,pid,pgid" app -o up,ready,pid,pgid
}

echo "== s6-supervise ($B)"
D=$W/s6; mk "$D"
pids=""
for s in app rdy off fin; do setsid "$B/s6-supervise" "$D/$s" > /dev/null 2>&1 & pids="$pids $!"; done
st() { l=$1; n=$2; shift 2; printf '%-38s %s\n' "$l" "$("$B/s6-svstat" "$@" "$D/$n" 2>&1)"; }
wt() { printf '%-38s exit %s\n' "$1" "$(r=0; "$W6" -U -t 300 "$D/$2" 2>/dev/null || r=$?; echo $r)"; }
steps
for s in app rdy off fin; do "$B/s6-svc" -dx "$D/$s"; done
for p in $pids; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done

echo "== pyinit ($CHECKOUT)"
mkdir -p "$W/etc" "$W/run"; chmod 700 "$W/run"; mk "$W/etc/services.d"
PYTHONPATH=$CHECKOUT PYS6_ETC=$W/etc PYS6_RUNDIR=$W/run setsid "$PY" -m supervisor > "$W/pyinit.log" 2>&1 &
init=$!
D=$W/run/service
st() {
    l=$1; n=$2; shift 2
    printf '%-38s s6-svstat:      %s\n' "$l" "$("$B/s6-svstat" "$@" "$D/$n" 2>&1)"
    printf '%-38s pys6 s6-svstat: %s\n' "" "$(PYTHONPATH=$CHECKOUT PYS6_RUNDIR=$W/run "$PY" -c \
        'import sys; from supervisor.s6.clients import s6_svstat; sys.exit(s6_svstat(sys.argv[1:]))' "$@" "$D/$n" 2>&1)"
    printf '%-38s pysvstat:       %s\n' "" "$(PYTHONPATH=$CHECKOUT PYS6_RUNDIR=$W/run "$PY" -m supervisor.control.svstat "$@" "$n" 2>&1)"
}
wt() {
    printf '%-38s s6-svwait:      exit %s\n' "$1" "$(r=0; "$W6" -U -t 300 "$D/$2" 2>/dev/null || r=$?; echo $r)"
    printf '%-38s pys6 s6-svwait: exit %s\n' "" "$(r=0; PYTHONPATH=$CHECKOUT PYS6_RUNDIR=$W/run "$PY" -c \
        'import sys; from supervisor.s6.clients import s6_svwait; sys.exit(s6_svwait(sys.argv[1:]))' \
        -U -t 300 "$D/$2" 2>/dev/null || r=$?; echo $r)"
}
steps
kill -TERM "$init"; while kill -0 "$init" 2>/dev/null; do sleep 0.1; done
