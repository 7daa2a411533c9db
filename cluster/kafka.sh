#!/usr/bin/env bash
# A real Apache Kafka cluster of three brokers on 127.0.0.1:9092, :9093 and
# :9094, as plain JVM processes: the cluster of docker-compose.yml for
# machines without Docker. Its jars come from Maven Central (pom.xml), its
# settings from kafka.env (shared with docker-compose.yml), its data, logs
# and process IDs from $KAFKA_CLUSTER_DIR (default cluster/data).
#
#   kafka.sh start              a new cluster (the old data removed); returns
#                               once all three brokers list each other
#   kafka.sh stop               stop every process of the cluster (SIGTERM,
#                               then SIGKILL after 60 s), keeping its data
#   kafka.sh resume             start the stopped cluster again on its data
#   kafka.sh status             exit 0 if all three brokers list each other
#   kafka.sh brokers            print the brokers, comma-separated
#   kafka.sh config N           print the configuration of broker N
#   kafka.sh broker stop N...   stop brokers N (1, 2, 3) cleanly
#   kafka.sh broker kill N...   SIGKILL brokers N
#   kafka.sh broker start N...  start brokers N again on their data; returns
#                               once the cluster lists them
#   kafka.sh broker pid N...    print the brokers' process IDs
#
# KAFKA_FLAVOUR picks the cluster:
#   kraft      (default) Kafka 4.4, each broker also one of three controllers
#   zookeeper  Kafka 3.9 with one ZooKeeper on 127.0.0.1:2181, the layout of
#              goka's examples
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
flavour="${KAFKA_FLAVOUR:-kraft}"
dir="${KAFKA_CLUSTER_DIR:-$here/data}"
# The same cluster ID at every start, as in docker-compose.yml.
cluster_id=cgA6VHQBSe-KXmvkrj8TzA
ports=(9092 9093 9094)
controller_ports=(19092 19093 19094)
zk_port=2181
wait_seconds="${KAFKA_WAIT_SECONDS:-180}"

die() { echo "kafka.sh: $*" >&2; exit 1; }

case "$flavour" in
  kraft | zookeeper) ;;
  *) die "KAFKA_FLAVOUR=$flavour: want kraft or zookeeper" ;;
esac

# classpath prints the broker's classpath for the flavour, resolving the
# jars with Maven the first time (and when pom.xml changes).
classpath() {
  local cp="$dir/classpath-$flavour.txt"
  if [[ ! -s $cp || $here/pom.xml -nt $cp ]]; then
    command -v java >/dev/null || die "java is not installed: the local cluster needs a JDK (17 or later) and Maven, or Docker for docker-compose.yml"
    command -v mvn >/dev/null || die "mvn is not installed: the local cluster needs a JDK (17 or later) and Maven, or Docker for docker-compose.yml"
    mkdir -p "$dir"
    echo "kafka.sh: resolving the $flavour broker's jars with Maven" >&2
    mvn -B -f "$here/pom.xml" -P "$flavour" dependency:build-classpath \
      -Dmdep.includeScope=runtime -Dmdep.outputFile="$cp.tmp" >"$dir/mvn-$flavour.log" 2>&1 ||
      { tail -n 30 "$dir/mvn-$flavour.log" >&2; die "mvn could not resolve the broker's jars (pom.xml, profile $flavour; log: $dir/mvn-$flavour.log)"; }
    mv "$cp.tmp" "$cp"
  fi
  cat "$cp"
}

# properties turns kafka.env's KAFKA_A_B=v lines into a.b=v, as the Kafka
# images do (___ is -, __ is _), leaving out the JVM's KAFKA_HEAP_OPTS.
properties() {
  local line key value
  while IFS= read -r line; do
    [[ $line =~ ^KAFKA_([A-Z0-9_]+)=(.*)$ ]] || continue
    key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
    [[ $key == HEAP_OPTS ]] && continue
    key="${key//___/-}" key="${key//__/@}" key="${key//_/.}" key="${key//@/_}"
    echo "${key,,}=$value"
  done <"$here/kafka.env"
}

heap_opts() { sed -n 's/^KAFKA_HEAP_OPTS=//p' "$here/kafka.env"; }

brokers() {
  local out=() p
  for p in "${ports[@]}"; do out+=("127.0.0.1:$p"); done
  (IFS=,; echo "${out[*]}")
}

# server_properties prints the configuration of broker n (1..3).
server_properties() {
  local n=$1 node="$dir/broker$1"
  local port=${ports[$((n - 1))]}
  {
    echo "# Broker $n of the local $flavour cluster, written by kafka.sh."
    if [[ $flavour == kraft ]]; then
      local voters=() i
      for i in 1 2 3; do voters+=("$i@127.0.0.1:${controller_ports[$((i - 1))]}"); done
      echo "process.roles=broker,controller"
      echo "node.id=$n"
      echo "controller.quorum.voters=$(IFS=,; echo "${voters[*]}")"
      echo "controller.listener.names=CONTROLLER"
      echo "listeners=EXTERNAL://127.0.0.1:$port,CONTROLLER://127.0.0.1:${controller_ports[$((n - 1))]}"
      echo "listener.security.protocol.map=EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
    else
      echo "broker.id=$n"
      echo "zookeeper.connect=127.0.0.1:$zk_port"
      echo "listeners=EXTERNAL://127.0.0.1:$port"
      echo "listener.security.protocol.map=EXTERNAL:PLAINTEXT"
    fi
    echo "advertised.listeners=EXTERNAL://127.0.0.1:$port"
    echo "inter.broker.listener.name=EXTERNAL"
    echo "log.dirs=$node/data"
    properties
  }
}

# configure writes the configuration of broker n (1..3) and the logging's.
configure() {
  mkdir -p "$dir/broker$1/data"
  server_properties "$1" >"$dir/broker$1/server.properties"
  # Kafka 4 logs with Log4j 2, Kafka 3.9 with reload4j: one file each.
  cat >"$dir/log4j2.properties" <<'EOF'
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = org.apache.kafka
logger.kafka.level = INFO
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

# java_bg starts a JVM in a session of its own (so that it outlives the
# shell that started it, make's included), its output in $1.log and its
# process ID in $1.pid.
java_bg() {
  local name=$1 heap=$2
  shift 2
  # shellcheck disable=SC2086 # the heap options are words
  setsid nohup java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dlog4j.configuration="file:$dir/log4j.properties" \
    -Dkafka.logs.dir="$dir" -cp "$(classpath)" "$@" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

pid_of() { [[ -s $dir/$1.pid ]] && cat "$dir/$1.pid"; }
alive() { local p; p=$(pid_of "$1") && kill -0 "$p" 2>/dev/null; }

start_broker() {
  local n=$1
  alive "broker$n" && die "broker $n is already running (pid $(pid_of "broker$n"))"
  java_bg "broker$n" "$(heap_opts)" kafka.Kafka "$dir/broker$n/server.properties"
}

# listed prints the IDs of the brokers that the cluster's metadata lists
# (as the first broker that answers reports them) and that answer
# themselves ("-> (" their API versions, not "-> ERROR"), one a line.
listed() {
  local class=org.apache.kafka.tools.BrokerApiVersionsCommand
  [[ $flavour == zookeeper ]] && class=kafka.admin.BrokerApiVersionsCommand
  java -Xmx128m -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp "$(classpath)" "$class" --bootstrap-server "$(brokers)" 2>/dev/null |
    sed -n 's/.*(id: \([0-9]*\) .*) -> ($/\1/p' | sort -u || true
}

# wait_listed waits until the brokers given by ID are listed, failing at
# once if a process named after them has exited.
wait_listed() {
  local deadline=$((SECONDS + wait_seconds)) ids=("$@") names=() got id missing
  for id in "${ids[@]}"; do names+=("broker$id"); done
  [[ $flavour == zookeeper ]] && names+=(zookeeper)
  while :; do
    for name in "${names[@]}"; do
      alive "$name" || { tail -n 30 "$dir/$name.log" >&2; die "$name exited (its log: $dir/$name.log)"; }
    done
    got=" $(listed | tr '\n' ' ') " missing=()
    for id in "${ids[@]}"; do [[ $got == *" $id "* ]] || missing+=("$id"); done
    ((${#missing[@]} == 0)) && return 0
    ((SECONDS < deadline)) || die "after ${wait_seconds}s the cluster lists brokers [${got# }] but not ${missing[*]} (logs in $dir)"
    sleep 1
  done
}

# wait_zookeeper waits until ZooKeeper serves requests. It binds its port
# before it does, and a broker that connects in between has its session
# closed and may wait out its whole connection timeout (18 s) and stop
# (seen in CI: "ZooKeeperClientTimeoutException").
wait_zookeeper() {
  local deadline=$((SECONDS + wait_seconds)) answer
  while :; do
    alive zookeeper || { tail -n 30 "$dir/zookeeper.log" >&2; die "zookeeper exited (its log: $dir/zookeeper.log)"; }
    # srvr, the one four-letter command ZooKeeper allows by default,
    # answers "Zookeeper version: ..." once it serves.
    answer=$( (exec 3<>"/dev/tcp/127.0.0.1/$zk_port" && echo srvr >&3 && timeout 2 cat <&3) 2>/dev/null || true)
    [[ $answer == *"Zookeeper version"* ]] && return 0
    ((SECONDS < deadline)) || die "after ${wait_seconds}s ZooKeeper does not serve on 127.0.0.1:$zk_port (its log: $dir/zookeeper.log)"
    sleep 0.2
  done
}

# stop_process sends a process of the cluster signal (TERM by default)
# and waits for it to exit, sending SIGKILL after grace seconds (60).
stop_process() {
  local name=$1 signal=${2:-TERM} grace=${3:-60} p deadline
  p=$(pid_of "$name") || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill "-$signal" "$p" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while kill -0 "$p" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        echo "kafka.sh: $name did not stop within ${grace}s: SIGKILL" >&2
        kill -KILL "$p" 2>/dev/null || true
      fi
      sleep 0.2
    done
  fi
  rm -f "$dir/$name.pid"
}

cmd_start() {
  local n port
  for n in 1 2 3; do alive "broker$n" && die "broker $n is already running: kafka.sh stop first"; done
  alive zookeeper && die "ZooKeeper is already running: kafka.sh stop first"
  for port in "${ports[@]}" "${controller_ports[@]}" $zk_port; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "127.0.0.1:$port is in use by another process (another Kafka? docker compose down, or kafka.sh stop)"
    fi
  done
  classpath >/dev/null
  find "$dir" -mindepth 1 -maxdepth 1 ! -name 'classpath-*' -exec rm -rf {} +
  echo "$flavour" >"$dir/flavour"
  for n in 1 2 3; do configure "$n"; done
  if [[ $flavour == kraft ]]; then
    for n in 1 2 3; do
      java -Xmx256m -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$(classpath)" \
        kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/broker$n/server.properties" >"$dir/format$n.log" 2>&1 ||
        { cat "$dir/format$n.log" >&2; die "formatting broker $n's storage failed"; }
    done
  else
    mkdir -p "$dir/zookeeper"
    printf '%s\n' "dataDir=$dir/zookeeper" "clientPort=$zk_port" "clientPortAddress=127.0.0.1" \
      "tickTime=2000" "admin.enableServer=false" "maxClientCnxns=0" >"$dir/zookeeper.cfg"
  fi
  launch
}

# launch starts every process of the cluster on its data and waits until
# the three brokers list each other.
launch() {
  local n
  if [[ $flavour == zookeeper ]]; then
    alive zookeeper || java_bg zookeeper "-Xmx256m" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zookeeper.cfg"
    wait_zookeeper
  fi
  for n in 1 2 3; do alive "broker$n" || start_broker "$n"; done
  wait_listed 1 2 3
  echo "kafka.sh: $flavour cluster up at $(brokers) (data and logs in $dir)" >&2
}

cmd_stop() {
  local n
  [[ -d $dir ]] || return 0
  # All at once: a KRaft broker's controlled shutdown waits for the
  # controllers, and once two of three have gone the last may wait for a
  # quorum that is not coming back (seen: over a minute). The cluster is
  # going down whole, so what has not stopped in 20 s is killed; its log
  # is recovered at the next start.
  for n in 1 2 3; do stop_process "broker$n" TERM 20 & done
  wait
  stop_process zookeeper
}

running_flavour() {
  [[ -s $dir/flavour ]] || die "no cluster has been started in $dir"
  flavour=$(cat "$dir/flavour")
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  resume)
    running_flavour
    launch
    ;;
  status)
    running_flavour
    [[ $(listed | tr '\n' ' ') == "1 2 3 " ]]
    ;;
  brokers) brokers ;;
  config)
    [[ ${2:-} =~ ^[123]$ ]] || die "config N: brokers are 1, 2 and 3"
    server_properties "$2"
    ;;
  broker)
    action="${2:-}"
    shift 2 || true
    (($# > 0)) || die "broker $action N...: which broker (1, 2 or 3)?"
    for n in "$@"; do [[ $n =~ ^[123]$ ]] || die "broker $action $n: brokers are 1, 2 and 3"; done
    running_flavour
    case "$action" in
      stop) for n in "$@"; do stop_process "broker$n" TERM; done ;;
      kill) for n in "$@"; do stop_process "broker$n" KILL; done ;;
      start)
        for n in "$@"; do start_broker "$n"; done
        wait_listed "$@"
        ;;
      pid) for n in "$@"; do pid_of "broker$n"; done ;;
      *) die "broker stop|kill|start|pid N..." ;;
    esac
    ;;
  *) die "usage: kafka.sh start|stop|resume|status|brokers|config N|broker stop|kill|start|pid N" ;;
esac
