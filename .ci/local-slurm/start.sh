#!/usr/bin/env bash
# Vendored from the workplace tool library (shared/tools/local-slurm), so that a clean clone can start it.
# start.sh - install (if needed) and start a real single-node SLURM
# cluster on localhost, for CI. Debian 12 (bookworm), root, no systemd needed.
#
# Idempotent: packages are installed only when missing, config files are
# rewritten only when their content changes, and a daemon is started only when
# the pid file this script wrote does not point at a live process of that name.
# Running it while the cluster is up just re-checks health and runs the smoke
# test. Every daemon this script starts gets a pid file in $STATE_DIR; the
# companion stop.sh ends exactly those PIDs and nothing else.
#
# Settings (environment variables):
#   LOCAL_SLURM_ACCOUNTING  slurmdbd (default; MariaDB + slurmdbd, so `sacct`
#                           works - the executor plugin's default status command)
#                           | none (no DB; the profile MUST then set
#                           `slurm-status-command: squeue`)
#   LOCAL_SLURM_FAKE_GPUS   number of fake "gpu" GRES on the node (default 1; 0 =
#                           CPU-only node, where any --gpus/--gres=gpu job is
#                           rejected by sbatch)
#   LOCAL_SLURM_PARTITIONS  partition names, all on the one node; the first is
#                           the default (default: "debug")
#   LOCAL_SLURM_ACCOUNT     account created in slurmdbd for root (default: ci)
#   LOCAL_SLURM_STATE_DIR   pid files + daemon stdout logs (default /run/local-slurm)
set -euo pipefail

STATE_DIR=${LOCAL_SLURM_STATE_DIR:-/run/local-slurm}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-slurmdbd}
FAKE_GPUS=${LOCAL_SLURM_FAKE_GPUS:-1}
PARTITIONS=${LOCAL_SLURM_PARTITIONS:-debug}
ACCOUNT=${LOCAL_SLURM_ACCOUNT:-ci}
CLUSTER=localcluster
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurm-ci-only-local   # MariaDB runs with skip-networking: socket only
CONF_DIR=/etc/slurm
T0=$(date +%s%N)

log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[local-slurm %4d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
case "$ACCOUNTING" in slurmdbd|none) ;; *) die "LOCAL_SLURM_ACCOUNTING must be slurmdbd or none";; esac
[[ "$FAKE_GPUS" =~ ^[0-9]+$ ]] || die "LOCAL_SLURM_FAKE_GPUS must be a number"

mkdir -p "$STATE_DIR"

# ---------------------------------------------------------------- packages
pkgs=(munge slurmctld slurmd slurm-client)
[ "$ACCOUNTING" = slurmdbd ] && pkgs+=(slurmdbd mariadb-server mariadb-client)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    # Without systemd, the packages' postinst would try to start the daemons
    # via /etc/init.d; block that (we start them ourselves, with our pid files).
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    log "apt-get install ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        "${missing[@]}" > "$STATE_DIR/apt-install.log" 2>&1 \
        || { tail -30 "$STATE_DIR/apt-install.log"; [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install failed"; }
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    log "packages installed"
else
    log "packages already installed"
fi

# ---------------------------------------------------------------- helpers
pidfile() { echo "$STATE_DIR/$1.pid"; }
# running NAME -> true if our pid file for NAME points at a live process named NAME
running() {
    local f pid
    f=$(pidfile "$1"); [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}
# start NAME CMD... : start CMD in the foreground mode of the daemon, detached
# (own session), recording its PID (bash execs into CMD, so $$ is the daemon).
start() {
    local name=$1; shift
    if running "$name"; then log "$name already running (pid $(cat "$(pidfile "$name")")), kept"; return 0; fi
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$(pidfile "$name")" "$@" \
        > "$STATE_DIR/$name.out" 2>&1 < /dev/null &
    STARTED+=("$name")
}
# wait_for NAME SECONDS CMD... : poll CMD until it succeeds and our pid file
# names a live process called NAME. Until the wrapper has exec'd, the pid file
# may be missing or /proc/PID/comm may still read "bash"/"setpriv": keep
# waiting then; only a PID that has vanished counts as a dead daemon.
wait_for() {
    local name=$1 secs=$2; shift 2
    local f end pid
    f=$(pidfile "$name"); end=$(( $(date +%s) + secs ))
    until "$@" > /dev/null 2>&1 && running "$name"; do
        pid=$(cat "$f" 2>/dev/null || true)
        if [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; then
            tail -20 "$STATE_DIR/$name.out" 2>/dev/null
            die "$name died; see $STATE_DIR/$name.out and /var/log/slurm"
        fi
        [ "$(date +%s)" -lt "$end" ] || die "$name not ready after ${secs}s"
        sleep 0.3
    done
    log "$name up (pid $(cat "$f"))"
}
STARTED=()
CHANGED=()
# install_file PATH MODE OWNER < content : write only when content differs
install_file() {
    local path=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat > "$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; return 0; fi
    install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
    rm -f "$tmp"
    CHANGED+=("$path")
}

# ---------------------------------------------------------------- config
NODE=$(hostname -s)
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
HW=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
[ -n "$HW" ] || die "slurmd -C gave no hardware line"
FIRST_PART=${PARTITIONS%% *}

mkdir -p /run/slurm /run/munge /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /run/slurm /var/log/slurm /var/lib/slurm /var/lib/slurm/slurmctld
chown munge:munge /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }

if [ "$ACCOUNTING" = slurmdbd ]; then
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.txt
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
fi
GRES_NODE=""; GRES_TYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
    GRES_NODE=" Gres=gpu:$FAKE_GPUS"
    GRES_TYPES="GresTypes=gpu"
fi

gen_slurm_conf() {
cat <<EOF
# Generated by start.sh - single-node test cluster on localhost
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# track job processes via /proc: needs no cgroup/systemd setup (proctrack/cgroup
# + task/cgroup with cgroup/v1 also ran in this VM, but is not needed here)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
$ACCT_LINES
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 $HW$GRES_NODE State=UNKNOWN
EOF
for p in $PARTITIONS; do
    d=NO; [ "$p" = "$FIRST_PART" ] && d=YES
    echo "PartitionName=$p Nodes=$NODE Default=$d MaxTime=INFINITE State=UP"
done
}
# (install_file reads stdin via redirection, not a pipe, so CHANGED survives)
install_file $CONF_DIR/slurm.conf 644 root:root < <(gen_slurm_conf)

if [ "$FAKE_GPUS" -gt 0 ]; then
    # Fake GPU device files (clones of /dev/null, c 1:3): lets --gpus/--gres=gpu
    # jobs schedule; Slurm sets CUDA_VISIBLE_DEVICES for them. No real GPU.
    mkdir -p /var/lib/slurm/fakegpu
    for ((i = 0; i < FAKE_GPUS; i++)); do
        [ -e /var/lib/slurm/fakegpu/gpu$i ] || mknod /var/lib/slurm/fakegpu/gpu$i c 1 3
    done
    install_file $CONF_DIR/gres.conf 644 root:root \
        <<< "NodeName=$NODE Name=gpu File=/var/lib/slurm/fakegpu/gpu[0-$((FAKE_GPUS - 1))]"
else
    install_file $CONF_DIR/gres.conf 644 root:root < /dev/null
fi

if [ "$ACCOUNTING" = slurmdbd ]; then
    install_file $CONF_DIR/slurmdbd.conf 600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
    install_file /etc/mysql/mariadb.conf.d/99-local-slurm.cnf 644 root:root <<'EOF'
[mysqld]
skip-networking
innodb_buffer_pool_size=1024M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
EOF
fi
[ "${#CHANGED[@]}" -gt 0 ] && log "config written: ${CHANGED[*]}" || log "config unchanged"

# A running slurmctld/slurmd of ours with a changed config: restart them.
if [ "${#CHANGED[@]}" -gt 0 ]; then
    for d in slurmd slurmctld; do
        if running "$d"; then
            pid=$(cat "$(pidfile "$d")"); log "config changed: restarting $d (pid $pid)"
            kill "$pid"; for _ in $(seq 50); do [ -d /proc/$pid ] || break; sleep 0.2; done
        fi
    done
fi

# ---------------------------------------------------------------- daemons
start munged setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged -F
wait_for munged 20 bash -c 'munge -n | unmunge'

if [ "$ACCOUNTING" = slurmdbd ]; then
    mkdir -p /run/mysqld; chown mysql:root /run/mysqld
    start mariadbd /usr/sbin/mariadbd --user=mysql
    wait_for mariadbd 60 mariadb -e 'SELECT 1'
    mariadb -e "CREATE DATABASE IF NOT EXISTS $DB_NAME;
        CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost'; FLUSH PRIVILEGES;"
    start slurmdbd /usr/sbin/slurmdbd -D
    wait_for slurmdbd 60 sacctmgr -n list cluster
    if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
        sacctmgr -i add cluster "$CLUSTER" > /dev/null
    fi
fi

start slurmctld /usr/sbin/slurmctld -D
wait_for slurmctld 60 scontrol ping
start slurmd /usr/sbin/slurmd -D
node_ok() { sinfo -h -n "$NODE" -o %T | grep -Eq '^(idle|mixed|allocated|completing)$'; }
end=$(( $(date +%s) + 60 ))
until node_ok; do
    st=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$st" in *drain*|down*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true;; esac
    pid=$(cat "$(pidfile slurmd)" 2>/dev/null || true)
    [ -z "$pid" ] || [ -d "/proc/$pid" ] || die "slurmd died; see /var/log/slurm/slurmd.log"
    [ "$(date +%s)" -lt "$end" ] || { scontrol show node "$NODE"; die "node $NODE not idle after 60s (state: $st)"; }
    sleep 0.3
done
wait_for slurmd 30 true
log "node $NODE $(sinfo -h -n "$NODE" -o '%T cpus=%c mem=%mMB gres=%G')"

if [ "$ACCOUNTING" = slurmdbd ]; then
    [ -n "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ] \
        || sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci > /dev/null
    [ -n "$(sacctmgr -n -P list assoc cluster=$CLUSTER user=root account=$ACCOUNT format=user)" ] \
        || sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" > /dev/null
    log "account '$ACCOUNT' ready for root"
fi

# ---------------------------------------------------------------- smoke test
# (poll squeue ourselves: `sbatch --wait` sleeps 2 s, then 8 s, between checks)
jid=$(cd "$STATE_DIR" && sbatch --parsable --mem=100 -t 1 -o "$STATE_DIR/smoke-%j.out" --wrap 'hostname') \
    || die "sbatch of the smoke job failed"
jid=${jid%%;*}
end=$(( $(date +%s) + 120 ))
while :; do
    st=$(squeue -h -t all -j "$jid" -o %T 2>/dev/null || true)
    case "$st" in
        COMPLETED) break;;
        FAILED|CANCELLED*|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) die "smoke job $jid ended $st";;
    esac
    [ "$(date +%s)" -lt "$end" ] || die "smoke job $jid not done after 120s (state: $st)"
    sleep 0.3
done
grep -q . "$STATE_DIR/smoke-$jid.out" || die "smoke job $jid wrote no output"
if [ "$ACCOUNTING" = slurmdbd ]; then
    end=$(( $(date +%s) + 30 ))
    until [ "$(sacct -X -n -P -j "$jid" -o State 2>/dev/null)" = COMPLETED ]; do
        [ "$(date +%s)" -lt "$end" ] || die "sacct does not report job $jid as COMPLETED"
        sleep 0.5
    done
    log "smoke job $jid COMPLETED (seen by squeue and sacct)"
else
    log "smoke job $jid COMPLETED (squeue); no accounting: profiles need slurm-status-command: squeue"
fi
rm -f "$STATE_DIR/smoke-$jid.out"
log "cluster ready: started [${STARTED[*]:-}] pids in $STATE_DIR"
