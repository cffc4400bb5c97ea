#!/usr/bin/env bash
# End-to-end test of the docker compose deployment (issue 4): build the
# images, bring up the 3-node NATS cluster with two job managers, two
# job-master nodes and scaled workers, submit `counter` jobs through the
# public API with bin/drover, and while they run:
#   - scale the workers up to 5 and back down to 2 (SIGTERM hand-over),
#   - kill -9 a job-master container, then start it again,
#   - restart the job managers and job-master nodes one at a time (SIGTERM),
#   - stop a NATS node, then start it again,
#   - cut a worker container off the network for longer than every timeout,
#     then reconnect it.
# Every job must end `finished` with detail.total == workers*target exactly.
# The deployment runs with the authorization `drover auth init` generates
# (the documented step): the script checks that a connection without
# credentials can submit but is refused every internal action, and that
# compose refuses to start without the generated variables.
# The project is always torn down with `down -v` (E2E_KEEP=1 keeps it;
# E2E_SKIP_BUILD=1 reuses the images already built).
#
# Everything runs on this machine: the compose network and loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT=${E2E_PROJECT:-drover-e2e}
# Host ports published by docker-compose.yml, moved off the usual 4222,
# 8222 and 8080 so that a `make run` or a test on the same machine does not
# collide with the test.
export NATS_HOST_PORT=${NATS_HOST_PORT:-14222}
export NATS_MONITOR_HOST_PORT=${NATS_MONITOR_HOST_PORT:-18222}
export HTTP_HOST_PORT=${HTTP_HOST_PORT:-18080}
NATS_URL="nats://127.0.0.1:${NATS_HOST_PORT}"
# Longer than every default timeout (docs/failover.md, Timings; worker self-fence 8 s, worker
# declared dead 10 s, master 3 s, lease 5 s).
PARTITION_SECONDS=${E2E_PARTITION_SECONDS:-20}
JOB_DEADLINE_SECONDS=${E2E_JOB_DEADLINE_SECONDS:-420}

START=$(date +%s)
log() { printf '[e2e +%3ds] %s\n' "$(($(date +%s) - START))" "$*"; }
die() {
	log "FAIL: $*"
	exit 1
}

if docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
else
	die "neither 'docker compose' nor 'docker-compose' is installed"
fi
# The deployment's identities, generated as the docs say (never in the repo).
AUTH_DIR=${E2E_AUTH_DIR:-$(mktemp -d)/auth}
dc() { "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml --env-file "$AUTH_DIR/compose.env" "$@"; }
drover() { bin/drover -s "$NATS_URL" --timeout 10s "$@"; }

cleanup() {
	local rc=$?
	set +e
	if [[ $rc -ne 0 ]]; then
		log "failed (exit $rc); state of the project:"
		dc ps
		drover list 2>&1 | head -40
		for svc in nats1 nats2 nats3 jobmanager1 jobmanager2 jobmaster1 jobmaster2 worker; do
			echo "---- last log lines of $svc"
			dc logs --no-color --tail=40 "$svc" 2>&1 | tail -80
		done
	fi
	if [[ ${E2E_KEEP:-0} == 1 ]]; then
		log "E2E_KEEP=1: leaving project $PROJECT up; remove it with: ${COMPOSE[*]} -p $PROJECT down -v"
	else
		log "tearing down (down -v)"
		dc down -v --remove-orphans -t 5 >/dev/null 2>&1
		# The generated secrets go with the project.
		[[ -z ${E2E_AUTH_DIR:-} ]] && rm -rf "$(dirname "$AUTH_DIR")"
	fi
	exit "$rc"
}

# containers SERVICE: the IDs of the service's running containers.
containers() {
	local id
	for id in $(dc ps -q "$1" 2>/dev/null); do
		if [[ $(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null) == true ]]; then
			echo "$id"
		fi
	done
}

# wait_healthy TIMEOUT SERVICE[=COUNT]...: until each service has COUNT
# (default 1) running containers, all healthy.
wait_healthy() {
	local timeout=$1
	shift
	local deadline=$(($(date +%s) + timeout)) spec svc want ids id ok
	while :; do
		ok=1
		for spec in "$@"; do
			svc=${spec%%=*}
			want=1
			[[ $spec == *=* ]] && want=${spec#*=}
			ids=$(containers "$svc")
			if [[ $(grep -c . <<<"$ids") -ne $want ]]; then
				ok=0
				break
			fi
			for id in $ids; do
				if [[ $(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id") != healthy ]]; then
					ok=0
					break 2
				fi
			done
		done
		[[ $ok == 1 ]] && return 0
		if (($(date +%s) > deadline)); then
			dc ps
			die "not healthy after ${timeout}s: $*"
		fi
		sleep 2
	done
}

# The jobs submitted, and the total each must end with.
JOBS=()
declare -A WANT

# submit ID WORKERS TARGET INTERVAL_MS [extra drover submit flags]
submit() {
	local id=$1 workers=$2 target=$3 interval=$4
	shift 4
	local cfg="{\"workers\":$workers,\"target\":$target,\"interval_ms\":$interval}"
	drover submit --id "$id" --type counter --config "$cfg" "$@" >/dev/null ||
		die "submit $id failed"
	JOBS+=("$id")
	WANT[$id]=$((workers * target))
	log "submitted $id: counter $cfg, expecting total ${WANT[$id]}"
}

# check ID: the job is finished with its exact total.
check() {
	drover --json get "$1" | bin/e2echeck -state finished -total "${WANT[$1]}"
}

# wait_job ID TIMEOUT: until the job is terminal, then check it.
wait_job() {
	local id=$1 timeout=$2 deadline state
	deadline=$(($(date +%s) + timeout))
	while :; do
		state=$(drover --json get "$id" 2>/dev/null | bin/e2echeck -state finished 2>&1 || true)
		case $state in
		ok:*) break ;;
		*"state failed"* | *"state canceled"*) die "$state" ;;
		esac
		(($(date +%s) > deadline)) && die "job $id not finished after ${timeout}s: $state"
		sleep 2
	done
	check "$id" || die "job $id has the wrong result"
}

show_nodes() { drover nodes 2>&1 | sed 's/^/    /' || true; }

# Flattened views of the API: "kind id load" per node, "id node epoch
# state" per worker of a job.
nodes_lines() { flat nodes nodes; }
workers_lines() { flat workers workers "$1"; }

# flat MODE ARGS...: `drover --json ARGS` flattened by e2echeck, retried
# over transient errors (a NATS node may be restarting).
flat() {
	local mode=$1 out
	shift
	for _ in 1 2 3 4 5; do
		if out=$(drover --json "$@" | bin/e2echeck -mode "$mode"); then
			[[ -z $out ]] || printf '%s\n' "$out"
			return 0
		fi
		sleep 1
	done
	die "drover $* failed 5 times"
}

# node_of CONTAINER: the worker node ID of a worker container. Nodes without
# DROVER_NODE_ID name themselves after their host name, the container ID.
node_of() {
	local host
	host=$(docker inspect -f '{{.Config.Hostname}}' "$1")
	nodes_lines | awk -v h="-$host-" '$1 == "worker" && index($2, h) { print $2; exit }'
}

trap cleanup EXIT

if [[ ${E2E_SKIP_BUILD:-0} == 1 ]]; then
	log "E2E_SKIP_BUILD=1: using the images and binaries already built"
else
	log "building binaries and images"
	make -s images
fi
go build -o bin/e2echeck ./scripts/e2echeck

log "compose without the generated identities must refuse to start"
if "${COMPOSE[@]}" -p "$PROJECT" -f docker-compose.yml config -q >/dev/null 2>&1; then
	die "docker compose accepted a configuration without DROVER_* identities"
fi
log "bin/drover auth init $AUTH_DIR"
bin/drover auth init "$AUTH_DIR" >/dev/null

log "compose: ${COMPOSE[*]}, project $PROJECT, NATS on $NATS_URL"
dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
dc up -d --scale worker=2
wait_healthy 180 nats1 nats2 nats3 jobmanager1 jobmanager2 jobmaster1 jobmaster2 worker=2
log "all services healthy"

# The API answers once a job manager has created its buckets and streams.
deadline=$(($(date +%s) + 60))
until drover list >/dev/null 2>&1; do
	(($(date +%s) > deadline)) && die "the API does not answer on $NATS_URL"
	sleep 1
done
show_nodes
# Both job managers are the micro service drover (nats micro ls finds them):
# drover version collects their $SRV.PING answers.
deadline=$(($(date +%s) + 30))
until servers=$(drover version 2>/dev/null | grep -c '^server: ' || true); [[ $servers == 2 ]]; do
	(($(date +%s) > deadline)) && die "drover version: $servers job managers answered \$SRV.PING.drover, want 2"
	sleep 1
done
log "micro: both job managers answer \$SRV.PING.drover"

log "--- trust boundary: anonymous is a client; the admin identity is the operator"
bin/e2echeck -mode refusals -url "$NATS_URL" -admin "$AUTH_DIR/admin.nk" || die "an internal action was not refused"

log "--- phase 1: smoke (request/reply and the durable requests stream)"
submit e2e-smoke 4 100 20
submit e2e-durable 2 50 20 --durable
wait_job e2e-smoke 90
wait_job e2e-durable 90

log "--- phase 2: scale workers 2 -> 5 -> 2"
submit e2e-scale-a 6 300 100
submit e2e-scale-b 4 300 100
mapfile -t old_workers < <(containers worker)
dc up -d --no-recreate --scale worker=5
wait_healthy 120 worker=5
log "5 worker nodes healthy"
submit e2e-scale-c 10 200 100
sleep 8
show_nodes
mapfile -t new_nodes < <(for c in $(containers worker); do
	[[ " ${old_workers[*]} " == *" $c "* ]] || node_of "$c"
done)
# Where e2e-scale-c's workers were placed, from their records (they keep
# their node after the job ends: a load snapshot taken late on a busy
# machine saw the job already finished and every load 0).
placed=$(workers_lines e2e-scale-c)
used=0
for n in "${new_nodes[@]}"; do
	awk -v n="$n" '$2 == n { found = 1 } END { exit !found }' <<<"$placed" && used=$((used + 1))
done
((used > 0)) || die "no worker of e2e-scale-c was placed on the 3 new worker nodes (${new_nodes[*]}): $(tr '\n' ';' <<<"$placed")"
log "$used of ${#new_nodes[@]} new worker nodes host workers"

log "scaling down to 2 (SIGTERM: workers handed over)"
mapfile -t before < <(containers worker)
declare -A node_before
for c in "${before[@]}"; do node_before[$c]=$(node_of "$c"); done
t0=$(date +%s)
dc up -d --no-recreate -t 30 --scale worker=2
mapfile -t after < <(containers worker)
removed=()
for c in "${before[@]}"; do
	[[ " ${after[*]} " == *" $c "* ]] || removed+=("${node_before[$c]}")
done
log "removed worker nodes: ${removed[*]}"
# Until no unfinished worker of the scale jobs is still on a removed node.
deadline=$(($(date +%s) + 60))
while :; do
	left=$(for j in e2e-scale-a e2e-scale-b e2e-scale-c; do workers_lines "$j"; done |
		awk -v gone=" ${removed[*]} " '$4 != "finished" && index(gone, " " $2 " ") { n++ } END { print n + 0 }')
	((left == 0)) && break
	(($(date +%s) > deadline)) && die "$left workers still on removed nodes after 60s"
	sleep 1
done
took=$(($(date +%s) - t0))
log "every worker of the removed nodes runs elsewhere ${took}s after the scale-down began"
((took < 10)) || log "WARN: the hand-over took ${took}s, no faster than the 10 s worker timeout"
wait_healthy 60 worker=2
show_nodes

log "--- phase 3: kill -9 a job-master container"
submit e2e-master-a 4 300 100
submit e2e-master-b 4 300 100
sleep 5
# The compose file names job-master nodes after their service.
read -r _ _ master_epoch jm_svc < <(flat jobline get e2e-master-a)
[[ $jm_svc == jobmaster[12] ]] || die "e2e-master-a runs on '$jm_svc', not on jobmaster1 or jobmaster2"
jm=$(containers "$jm_svc")
[[ -n $jm ]] || die "$jm_svc is not running"
docker kill -s KILL "$jm" >/dev/null
log "killed $jm_svc (${jm:0:12}), the master node of e2e-master-a at epoch $master_epoch, with SIGKILL"
sleep 10
docker start "$jm" >/dev/null
log "started $jm_svc again"
wait_healthy 60 "$jm_svc"

log "--- phase 4: rolling restart with SIGTERM, one process at a time"
submit e2e-rolling 4 600 100
sleep 4
read -r _ _ rolling_epoch _ < <(flat jobline get e2e-rolling)
for svc in jobmanager1 jobmanager2 jobmaster1 jobmaster2; do
	dc restart -t 30 "$svc" >/dev/null 2>&1
	wait_healthy 90 "$svc"
	log "restarted $svc (SIGTERM, then start): healthy again"
done
read -r _ state epoch node < <(flat jobline get e2e-rolling)
[[ $state == finished ]] || ((epoch > rolling_epoch)) ||
	die "e2e-rolling kept epoch $epoch through the restart of both job-master nodes"
log "e2e-rolling: epoch $rolling_epoch -> $epoch, now on $node ($state)"

log "--- phase 5: stop one NATS node and start it again"
submit e2e-nats 4 300 100
sleep 5
dc stop -t 10 nats2
log "nats2 stopped"
sleep 10
dc start nats2
log "nats2 started"
wait_healthy 120 nats1 nats2 nats3

log "--- phase 6: cut a worker container off the network for ${PARTITION_SECONDS}s"
submit e2e-partition 6 400 100
sleep 6
# Cut off the worker container hosting most of the job's workers.
wk="" cut_node="" best=-1
for c in $(containers worker); do
	n=$(node_of "$c")
	k=$(workers_lines e2e-partition | awk -v n="$n" '$2 == n && $4 != "finished" { k++ } END { print k + 0 }')
	((k > best)) && wk=$c cut_node=$n best=$k
done
((best > 0)) || die "no worker of e2e-partition is running on a worker node"
# "id epoch" of each worker on the node, to see them re-created later.
cut_workers=$(workers_lines e2e-partition | awk -v n="$cut_node" '$2 == n { print $1, $3 }')
net=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$wk" | awk '{print $1}')
[[ -n $wk && -n $net ]] || die "no worker container or network found"
log "worker node $cut_node hosts $best workers of e2e-partition"
docker network disconnect "$net" "$wk"
log "disconnected worker ${wk:0:12} from $net"
sleep "$PARTITION_SECONDS"
docker network connect "$net" "$wk"
log "reconnected worker ${wk:0:12}"

log "--- waiting for every job (deadline ${JOB_DEADLINE_SECONDS}s)"
wait_job e2e-master-a "$JOB_DEADLINE_SECONDS"
read -r _ _ epoch node < <(flat jobline get e2e-master-a)
((epoch > master_epoch)) || die "e2e-master-a kept epoch $epoch: its master was not failed over"
log "e2e-master-a failed over: epoch $master_epoch on $jm_svc -> epoch $epoch on $node"
wait_job e2e-partition "$JOB_DEADLINE_SECONDS"
# The cut-off workers were declared lost and re-created with a new epoch;
# the exact total shows the stale incarnations never counted after that.
recreated=$(workers_lines e2e-partition | CUT=$cut_workers awk '
	BEGIN { n = split(ENVIRON["CUT"], a, "\n"); for (i = 1; i <= n; i++) { split(a[i], f, " "); e[f[1]] = f[2] } }
	($1 in e) && $3 > e[$1] { k++ } END { print k + 0 }')
((recreated > 0)) || die "no worker of the cut-off node was re-created (before: $cut_workers)"
log "$recreated of $best cut-off workers were re-created under a new epoch"
end=$(($(date +%s) + JOB_DEADLINE_SECONDS))
for id in "${JOBS[@]}"; do
	left=$((end - $(date +%s)))
	((left < 10)) && left=10
	wait_job "$id" "$left"
done
drover list

# The system must still be whole after the faults.
wait_healthy 120 nats1 nats2 nats3 jobmanager1 jobmanager2 jobmaster1 jobmaster2 worker=2
log "PASS: ${#JOBS[@]} jobs finished with exact totals through scaling, kill -9, a rolling restart, NATS node loss and a network partition"
