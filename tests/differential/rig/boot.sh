#!/bin/sh
# Boot an image root as PID 1 of fresh PID, mount, UTS, IPC and network namespaces
# (no podman, no docker), the way a container runtime would: an overlay of
#   TREE/rootfs (the image's own files) : [s6-overlay's tarballs] : ROOT (the distro)
# with a writable upper layer, /proc, /dev, a tmpfs /run and /dev/shm, loopback only.
#
#   boot.sh ROOT TREE INIT SECONDS
#
#   ROOT     a distro root (debootstrap --variant=minbase; see prepare-root.sh)
#   TREE     a directory: rootfs/ (laid over ROOT; TREE itself if it has no rootfs/),
#            env (optional: the image's ENV, KEY=VALUE lines), cmd (optional: CMD
#            words, one a line), user (optional: USER as UID:GID), read-only (optional:
#            read_only: true, with a tmpfs /tmp), run-opts (optional: the /run tmpfs options, e.g. mode=1750)
#   INIT     s6-overlay   real s6-overlay's tarballs under the tree, ENTRYPOINT /init
#            pys6         the same image (s6-overlay's files kept), ENTRYPOINT pyinit
#            pys6-bare    no s6-overlay files; pyinit --install-s6-commands /usr/bin --force
#                         first (a build step), then ENTRYPOINT pyinit
#   SECONDS  how long after exec before PID 1 gets SIGTERM (docker stop); SIGKILL
#            BOOT_GRACE seconds later if it is still there (docker's 10)
#
# Prints the merged stdout/stderr, each line stamped with seconds since the exec of the
# entry point, then "exit=N", the times, and where the upper layer was kept.
#
# Environment:
#   S6O_PREFIX   built s6-overlay (build.sh)        [/opt/s6-overlay-real]
#   PYS6_INIT    pyinit's path inside ROOT           [/opt/pys6/bin/pyinit]
#   BOOT_OUT     keep log, upper layer here          [a new mktemp -d]
#   BOOT_GRACE   seconds between SIGTERM and SIGKILL [10]
#   BOOT_HOSTNAME                                    [boot-rig]
#   BOOT_ENV     extra KEY=VALUE words (docker run -e), after the tree's env
#   BOOT_BIND    SRC:DST words: bind mounts into the image (docker run -v), made after
#                /run (DST is made when missing); tests/differential's addition
#   BOOT_BUILT   a file: the upper layer's listing after the build step (pys6-bare's
#                --install-s6-commands), so the files the boot itself writes can be told
#                apart; tests/differential's addition
set -eu
if [ "${1:-}" = --inside ]; then
    # PID 1 of the new namespaces
    shift
    merged=$1 lower=$2 upper=$3 work=$4 init=$5 treedir=$6 t0=$7
    envfile=$treedir/env cmdfile=$treedir/cmd
    runopts=mode=0755; [ -s "$treedir/run-opts" ] && runopts=$(cat "$treedir/run-opts")
    mount -t overlay boot-root -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
    mount -t proc proc "$merged/proc"
    mount -t tmpfs -o mode=0755,nosuid,size=65536k boot-dev "$merged/dev"
    for d in null zero full random urandom tty; do
        touch "$merged/dev/$d"; mount --bind "/dev/$d" "$merged/dev/$d"
    done
    mkdir -p "$merged/dev/pts" "$merged/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$merged/dev/pts"
    ln -s pts/ptmx "$merged/dev/ptmx"
    mount -t tmpfs -o mode=1777,nosuid,nodev boot-shm "$merged/dev/shm"
    ln -s /proc/self/fd "$merged/dev/fd"
    ln -s /proc/self/fd/0 "$merged/dev/stdin"; ln -s /proc/self/fd/1 "$merged/dev/stdout"; ln -s /proc/self/fd/2 "$merged/dev/stderr"
    mkdir -p "$merged/run"
    [ -d "$merged/sys" ] && mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$merged/sys"
    mount -t tmpfs -o $runopts,nosuid,nodev boot-run "$merged/run"
    for b in ${BOOT_BIND:-}; do
        src=${b%%:*} dst=${b#*:}
        [ -e "$merged$dst" ] || mkdir -p "$merged$dst"
        mount --bind "$src" "$merged$dst"
    done
    hostname "${BOOT_HOSTNAME:-boot-rig}"
    ip link set lo up 2>/dev/null || true
    # the image's environment, as docker gives it: PATH, HOSTNAME, HOME, then ENV
    set -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOSTNAME="${BOOT_HOSTNAME:-boot-rig}" HOME=/root
    if [ -s "$envfile" ]; then
        while IFS= read -r line; do
            case $line in ''|'#'*) continue ;; esac
            set -- "$@" "$line"
        done < "$envfile"
    fi
    # BOOT_ENV: extra KEY=VALUE words, as docker run -e gives them
    for kv in ${BOOT_ENV:-}; do set -- "$@" "$kv"; done
    if [ "$init" = pys6-bare ]; then
        chroot "$merged" "$@" "$PYS6_INIT" --install-s6-commands /usr/bin --force > /dev/null
    fi
    [ -n "${BOOT_BUILT:-}" ] && (cd "$upper" && find . -mindepth 1 > "$BOOT_BUILT")
    case $init in
        s6-overlay) set -- "$@" /init ;;
        *) set -- "$@" "$PYS6_INIT" ;;
    esac
    if [ -s "$cmdfile" ]; then
        while IFS= read -r word; do set -- "$@" "$word"; done < "$cmdfile"
    fi
    if [ -e "$treedir/read-only" ]; then
        # docker's read_only: true, with a tmpfs /tmp
        mount -t tmpfs -o mode=1777,nosuid,nodev boot-tmp "$merged/tmp"
        mount -o remount,ro,bind "$merged"
    fi
    userspec=
    [ -s "$treedir/user" ] && userspec=--userspec=$(cat "$treedir/user")
    cd /
    date +%s.%N > "$t0"
    exec chroot $userspec "$merged" "$@"
fi

[ $# -eq 4 ] || { sed -n '2,30p' "$0" >&2; exit 100; }
root=$(realpath "$1") tree=$(realpath "$2") init=$3 secs=$4
case $init in s6-overlay|pys6|pys6-bare) ;; *) echo "boot.sh: INIT is s6-overlay, pys6 or pys6-bare" >&2; exit 100 ;; esac
S6O_PREFIX=${S6O_PREFIX:-/opt/s6-overlay-real}
export PYS6_INIT=${PYS6_INIT:-/opt/pys6/bin/pyinit}
grace=${BOOT_GRACE:-10}
out=${BOOT_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/boot.XXXXXX")}
mkdir -p "$out/upper" "$out/work" "$out/merged"
rootfs=$tree/rootfs; [ -d "$rootfs" ] || rootfs=$tree
lower=$rootfs
if [ "$init" != pys6-bare ]; then
    [ -x "$S6O_PREFIX/rootfs-overlay/init" ] || { echo "boot.sh: no $S6O_PREFIX/rootfs-overlay/init (build.sh)" >&2; exit 100; }
    lower=$lower:$S6O_PREFIX/rootfs-overlay:$S6O_PREFIX/symlinks-overlay
fi
lower=$lower:$root
case $init in pys6*) [ -x "$root$PYS6_INIT" ] || { echo "boot.sh: no $PYS6_INIT in $root (prepare-root.sh)" >&2; exit 100; } ;; esac
here=$(realpath "$0")

echo "== boot $init: root=$root tree=$tree SIGTERM after ${secs}s" > "$out/log.raw"
start=$(date +%s.%N)
# stdout and stderr of PID 1 go into one FIFO; the stamper dates each line as it comes
rm -f "$out/console"; mkfifo "$out/console"
# (it opens the FIFO itself once it is ready, so the writer's open waits for it)
python3 -u -c '
import sys, time
with open(sys.argv[1], "rb", buffering=0) as console:
    for line in console:
        sys.stdout.write("%.6f %s" % (time.time(), line.decode("utf-8", "replace")))
        sys.stdout.flush()
' "$out/console" >> "$out/log.raw" &
stamper=$!
unshare --pid --fork --mount --propagation private --uts --ipc --net --mount-proc \
    "$here" --inside "$out/merged" "$lower" "$out/upper" "$out/work" "$init" \
    "$tree" "$out/t0" < /dev/null > "$out/console" 2>&1 &
ush=$!
# the namespace's PID 1: unshare's only child
pid1=
for i in $(seq 100); do
    pid1=$(pgrep -P "$ush" | head -1 || true)
    [ -n "$pid1" ] && break
    sleep 0.05
done
sleep "$secs"
term_at=$(date +%s.%N)
if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
    kill -TERM "$pid1"
    echo "$term_at == SIGTERM sent to PID 1" >> "$out/log.raw"
    for i in $(seq $((grace * 10))); do kill -0 "$pid1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid1" 2>/dev/null; then
        echo "$(date +%s.%N) == still there after ${grace}s: SIGKILL" >> "$out/log.raw"
        kill -KILL "$pid1"
    fi
else
    echo "$term_at == PID 1 had already exited before SIGTERM" >> "$out/log.raw"
fi
set +e
wait "$ush"; rc=$?
wait "$stamper"
set -e
end=$(date +%s.%N)
t0=$(cat "$out/t0" 2>/dev/null || echo "$start")
python3 - "$out/log.raw" "$t0" "$term_at" "$end" > "$out/log" <<'EOF'
import sys
raw, t0, term, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
for line in open(raw, encoding="utf-8", errors="replace"):
    stamp, _, rest = line.partition(" ")
    try:
        print("%8.3f %s" % (float(stamp) - t0, rest), end="")
    except ValueError:
        print("         " + line, end="")
print("         == SIGTERM at %.3f s, all gone at %.3f s (%.3f s after SIGTERM)" % (term - t0, end - t0, end - term))
EOF
echo "exit=$rc" >> "$out/log"
cat "$out/log"
echo "== log and upper layer kept in $out"
