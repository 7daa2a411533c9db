package cluster

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml that the README, the
// Makefile and the Kafka CI job rely on.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	EnvFile     string            `yaml:"env_file"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test    []string `yaml:"test"`
		Retries int      `yaml:"retries"`
	} `yaml:"healthcheck"`
}

// kafkaServices are the brokers of docker-compose.yml, as goka's examples
// name and publish them.
var kafkaServices = []struct{ name, hostPort string }{
	{"kafka1", "127.0.0.1:9092"},
	{"kafka2", "127.0.0.1:9093"},
	{"kafka3", "127.0.0.1:9094"},
}

// clicksReplication is the replication factor clicks gives its topics by
// default (internal/app/replication.go): the brokers' defaults match it.
const clicksReplication = 3

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// docker-compose.yml is a KRaft cluster of three brokers, each published
// on loopback, healthy only when it sees all three, with the replication
// clicks chooses for three brokers.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	if len(c.Services) != len(kafkaServices) {
		t.Errorf("services %v, want only the brokers %v", keys(c.Services), kafkaServices)
	}
	nodeIDs := map[string]bool{}
	var voters, clusterIDs []string
	for _, want := range kafkaServices {
		s, ok := c.Services[want.name]
		if !ok {
			t.Errorf("no service %s", want.name)
			continue
		}
		// The settings the brokers share come from cluster/kafka.env,
		// which cluster/kafka.sh reads too.
		if s.EnvFile != sharedEnvFile {
			t.Errorf("%s: env_file %q, want %s (the settings shared with cluster/kafka.sh)", want.name, s.EnvFile, sharedEnvFile)
		}
		env := readEnvFile(t, "../"+sharedEnvFile)
		for k, v := range s.Environment {
			if shared, ok := env[k]; ok && shared != v {
				t.Errorf("%s: %s = %q here and %q in %s", want.name, k, v, shared, sharedEnvFile)
			}
			env[k] = v
		}
		// Pinned: an image without a version tag (or "latest") changes
		// under the tests.
		if name, tag, ok := strings.Cut(s.Image, ":"); !ok || !strings.Contains(name, "kafka") || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(tag) {
			t.Errorf("%s: image %q is not a Kafka image pinned to a version", want.name, s.Image)
		}
		_, port, _ := strings.Cut(want.hostPort, ":")
		if !slices.Contains(s.Ports, want.hostPort+":"+port) {
			t.Errorf("%s: ports %v, want %s published on %s", want.name, s.Ports, port, want.hostPort)
		}
		if adv := env["KAFKA_ADVERTISED_LISTENERS"]; !strings.Contains(adv, "://"+want.hostPort) {
			t.Errorf("%s: does not advertise %s to the host: %q", want.name, want.hostPort, adv)
		}
		if l := env["KAFKA_LISTENERS"]; !strings.Contains(l, ":"+port) {
			t.Errorf("%s: listens on %q, not on the published port %s", want.name, l, port)
		}
		// KRaft: every broker is a controller too, and no ZooKeeper.
		if env["KAFKA_PROCESS_ROLES"] != "broker,controller" {
			t.Errorf("%s: KAFKA_PROCESS_ROLES = %q, want broker,controller", want.name, env["KAFKA_PROCESS_ROLES"])
		}
		if z, ok := env["KAFKA_ZOOKEEPER_CONNECT"]; ok {
			t.Errorf("%s: KAFKA_ZOOKEEPER_CONNECT = %q in a KRaft cluster", want.name, z)
		}
		nodeIDs[env["KAFKA_NODE_ID"]] = true
		voters = append(voters, env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
		clusterIDs = append(clusterIDs, env["CLUSTER_ID"])
		for key, value := range map[string]string{
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               strconv.Itoa(clicksReplication),
			"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         strconv.Itoa(clicksReplication),
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": strconv.Itoa(clicksReplication),
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
			"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":           "false",
		} {
			if env[key] != value {
				t.Errorf("%s: %s = %q, want %q", want.name, key, env[key], value)
			}
		}
		// `docker compose up --wait` waits for the healthchecks; each
		// must ask its own broker and want all three brokers listed.
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Retries < 1 {
			t.Errorf("%s: no healthcheck (with retries): `docker compose up --wait` could not wait for it", want.name)
		} else if cmd := strings.Join(s.Healthcheck.Test, " "); !strings.Contains(cmd, "--bootstrap-server "+want.name+":") || !strings.Contains(cmd, strconv.Itoa(len(kafkaServices))) {
			t.Errorf("%s: healthcheck %q does not ask its own broker for all %d brokers", want.name, cmd, len(kafkaServices))
		}
	}
	if len(nodeIDs) != len(kafkaServices) {
		t.Errorf("node IDs %v are not distinct", keys(nodeIDs))
	}
	if len(distinct(voters)) != 1 || strings.Count(voters[0], "@") != len(kafkaServices) {
		t.Errorf("the controller quorum is not the same three on every broker: %q", voters)
	}
	for _, want := range kafkaServices {
		if !strings.Contains(voters[0], "@"+want.name+":") {
			t.Errorf("%s is not a controller: %q", want.name, voters[0])
		}
	}
	if len(distinct(clusterIDs)) != 1 || clusterIDs[0] == "" {
		t.Errorf("the brokers do not share one CLUSTER_ID: %q", clusterIDs)
	}

	// Where Docker Compose is installed, it must accept the file too.
	if docker, err := exec.LookPath("docker"); err == nil {
		out, err := exec.Command(docker, "compose", "-f", "../docker-compose.yml", "config", "--quiet").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "is not a docker command") && !strings.Contains(string(out), "unknown") {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	}
}

// sharedEnvFile holds the settings docker-compose.yml's brokers and the
// local cluster of cluster/kafka.sh share.
const sharedEnvFile = "cluster/kafka.env"

// readEnvFile reads the KEY=value lines of an env file.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// The local cluster of cluster/kafka.sh, in both flavours, is
// docker-compose.yml's: each broker listens and advertises the port the
// compose file publishes, with the node ID of its service, and has every
// shared setting of cluster/kafka.env as the property Kafka's images make
// of it.
func TestLocalClusterAgreesWithCompose(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	shared := readEnvFile(t, "../"+sharedEnvFile)
	if len(shared) == 0 {
		t.Fatalf("%s holds no setting", sharedEnvFile)
	}
	for _, flavour := range []string{"kraft", "zookeeper"} {
		for i, want := range kafkaServices {
			cmd := exec.Command("../cluster/kafka.sh", "config", strconv.Itoa(i+1))
			cmd.Env = append(os.Environ(), "KAFKA_FLAVOUR="+flavour, "KAFKA_CLUSTER_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kafka.sh config %d: %v\n%s", i+1, err, out)
			}
			props := map[string]string{}
			for _, line := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
					props[k] = v
				}
			}
			name := flavour + " " + want.name
			for k, v := range shared {
				if k == "KAFKA_HEAP_OPTS" {
					continue // the JVM's, not a property
				}
				prop := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "KAFKA_"), "_", "."))
				if props[prop] != v {
					t.Errorf("%s: %s = %q, want %q as %s has it", name, prop, props[prop], v, k)
				}
			}
			if props["advertised.listeners"] != "EXTERNAL://"+want.hostPort || !strings.Contains(props["listeners"], "://"+want.hostPort) {
				t.Errorf("%s: listeners %q, advertised %q; want %s, as docker-compose.yml publishes it", name, props["listeners"], props["advertised.listeners"], want.hostPort)
			}
			id := c.Services[want.name].Environment["KAFKA_NODE_ID"]
			if flavour == "kraft" && (props["node.id"] != id || props["process.roles"] != "broker,controller" || strings.Count(props["controller.quorum.voters"], "@") != 3) {
				t.Errorf("%s: node.id %q, roles %q, voters %q; want node %s, broker and controller, three voters", name, props["node.id"], props["process.roles"], props["controller.quorum.voters"], id)
			}
			if flavour == "zookeeper" && (props["broker.id"] != id || props["zookeeper.connect"] == "") {
				t.Errorf("%s: broker.id %q, zookeeper.connect %q; want broker %s and a ZooKeeper", name, props["broker.id"], props["zookeeper.connect"], id)
			}
		}
	}
}

// distinct returns the different strings of ss, sorted.
func distinct(ss []string) []string {
	ss = slices.Clone(ss)
	slices.Sort(ss)
	return slices.Compact(ss)
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// makeN returns the commands make would run for target.
func makeN(t *testing.T, target string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no make found, and CI=true: install it (apt-get install make)")
		}
		t.Skipf("no make found: %v", err)
	}
	cmd := exec.Command("make", "-n", "-C", "..", "--no-print-directory", target)
	// The Makefile's own default, not one from the environment.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "KAFKA_BROKERS=") })
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", target, err, out)
	}
	return strings.TrimSpace(string(out))
}

// kafkaTests are the tests that run against the real cluster in the Kafka
// CI job (make test-kafka).
var kafkaTests = []string{"TestClicksFromAnyClientCountedOnce", "TestCrashesCountEachClickOnce", "TestCrashesOfProcessorAlone", "TestEndToEndKafka", "TestKafkaBrokersKilled", "TestKafkaClusterStopped", "TestKafkaTopicsReplicated", "TestScaleOut", "TestTakeOverFromTheOriginal"}

func TestMakefileTargets(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"start", "stop", "restart", "run", "run-kafka", "test", "test-kafka", "bench", "soak", "clean"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(data) {
			t.Errorf("Makefile lacks target %s", target)
		}
	}
	var hostPorts []string
	for _, s := range kafkaServices {
		hostPorts = append(hostPorts, s.hostPort)
	}
	brokers := strings.Join(hostPorts, ",")
	// The real-Kafka tests stop and start the brokers of this list only.
	src, err := os.ReadFile("../internal/app/realkafka_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`const makeStartBrokers = "([^"]*)"`).FindSubmatch(src); m == nil || string(m[1]) != brokers {
		t.Errorf("internal/app/realkafka_test.go: makeStartBrokers is %q, want the compose file's %s", m, brokers)
	}

	checkClusterTargets(t)
	if got, want := makeN(t, "run-kafka"), "go run main.go -brokers "+brokers; got != want {
		t.Errorf("make run-kafka runs %q, want %q", got, want)
	}
	got := makeN(t, "test-kafka")
	if !strings.HasPrefix(got, "KAFKA_BROKERS="+brokers+" go test ") || !strings.HasSuffix(got, " ./internal/app") {
		t.Fatalf("make test-kafka runs %q, want KAFKA_BROKERS=%s go test ... ./internal/app", got, brokers)
	}
	m := regexp.MustCompile(`-run '([^']+)'`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("make test-kafka selects no tests with -run: %q", got)
	}
	run := regexp.MustCompile(m[1])
	tests := testFuncs(t)
	var selected []string
	for name, body := range tests {
		if !run.MatchString(name) {
			continue
		}
		selected = append(selected, name)
		// A test selected that does not read KAFKA_BROKERS would test
		// the embedded broker again, not the cluster.
		if !strings.Contains(body, "kafkaBrokers(") && !strings.Contains(body, "clusterForTest(") && !strings.Contains(body, "needRealCluster(") && !strings.Contains(body, `"KAFKA_BROKERS"`) {
			t.Errorf("make test-kafka runs %s, which does not take its brokers from KAFKA_BROKERS", name)
		}
	}
	slices.Sort(selected)
	if !slices.Equal(selected, kafkaTests) {
		t.Errorf("make test-kafka runs %v, want %v", selected, kafkaTests)
	}
}

// testFuncs returns the source of each Test function of internal/app, by
// name.
func testFuncs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../internal/app/*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				funcs[fn.Name.Name] = string(src[fset.Position(fn.Body.Pos()).Offset:fset.Position(fn.Body.End()).Offset])
			}
		}
	}
	return funcs
}

// workflow is the part of a GitHub Actions workflow the Kafka job relies
// on.
type workflow struct {
	Jobs map[string]struct {
		RunsOn string `yaml:"runs-on"`
		Steps  []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			If   string            `yaml:"if"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// .github/workflows/kafka.yml checks out, sets up Go from go.mod, starts
// the cluster, runs the Kafka tests and stops the cluster whatever
// happened.
func TestKafkaWorkflow(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../.github/workflows/kafka.yml")
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatalf("kafka.yml: %v", err)
	}
	if len(w.Jobs) != 1 {
		t.Fatalf("jobs %v, want one", keys(w.Jobs))
	}
	for name, job := range w.Jobs {
		if !strings.HasPrefix(job.RunsOn, "ubuntu-") {
			t.Errorf("job %s runs on %q, want an ubuntu runner (it has Docker)", name, job.RunsOn)
		}
		var steps []string
		for _, s := range job.Steps {
			switch {
			case strings.HasPrefix(s.Uses, "actions/checkout@"):
				steps = append(steps, "checkout")
			case strings.HasPrefix(s.Uses, "actions/setup-go@"):
				if s.With["go-version-file"] != "go.mod" {
					t.Errorf("setup-go with %v, want go-version-file: go.mod", s.With)
				}
				steps = append(steps, "setup-go")
			case s.Run != "" && strings.HasPrefix(s.Run, "make "):
				step := strings.TrimSpace(s.Run)
				if step == "make stop" && s.If != "always()" {
					t.Errorf("make stop runs if %q, want always(): a failed test must not leave the brokers running", s.If)
				}
				steps = append(steps, step)
			case s.Run != "":
				if s.If != "failure()" {
					t.Errorf("step %q runs if %q: only make targets belong in the job, or diagnostics on failure", s.Run, s.If)
				}
			default:
				t.Errorf("unexpected step %+v", s)
			}
		}
		want := []string{"checkout", "setup-go", "make restart", "make test-kafka", "make stop"}
		if !slices.Equal(steps, want) {
			t.Errorf("job %s steps %q, want %q", name, steps, want)
		}
	}
}

// checkClusterTargets runs make start, stop and restart with stand-ins for
// docker and cluster/kafka.sh that write down how they were called: Docker
// Compose where a Docker engine answers, else the local cluster where java
// and mvn are installed, else one message naming both ways.
func checkClusterTargets(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("no make found: %v", err)
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	standIn := func(name, script string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho \""+name+" $*\" >>"+calls+"\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	dockerUp := standIn("docker-up", "exit 0\n")
	dockerDown := standIn("docker-down", `[ "$1" = info ] && exit 1; exit 0`+"\n")
	cluster := standIn("cluster", "exit 0\n")
	jvm := filepath.Join(dir, "jvm")
	if err := os.Mkdir(jvm, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"java", "mvn"} {
		if err := os.WriteFile(filepath.Join(jvm, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeWith := func(path, docker string, targets ...string) (string, error) {
		os.Remove(calls)
		args := append([]string{"-s", "-C", "..", "--no-print-directory", "DOCKER=" + docker, "CLUSTER=" + cluster}, targets...)
		cmd := exec.Command("make", args...)
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }), "PATH="+path)
		out, err := cmd.CombinedOutput()
		got, _ := os.ReadFile(calls)
		return strings.TrimSpace(string(got)) + "\n" + string(out), err
	}
	for _, tc := range []struct {
		name, path, docker string
		targets            []string
		want               []string
	}{
		{"docker", jvm, dockerUp, []string{"start"}, []string{"docker-up info", "docker-up compose up -d --wait"}},
		{"docker", jvm, dockerUp, []string{"restart"}, []string{"docker-up info", "docker-up compose down", "docker-up info", "docker-up compose up -d --wait"}},
		{"jvm", jvm, dockerDown, []string{"start"}, []string{"docker-down info", "cluster start"}},
		{"jvm", jvm, dockerDown, []string{"restart"}, []string{"docker-down info", "cluster stop", "docker-down info", "cluster start"}},
		{"jvm", jvm, dockerDown, []string{"stop"}, []string{"docker-down info", "cluster stop"}},
	} {
		out, err := makeWith(tc.path, tc.docker, tc.targets...)
		if err != nil {
			t.Errorf("%s: make %v: %v\n%s", tc.name, tc.targets, err, out)
			continue
		}
		if got, _, _ := strings.Cut(out, "\n"+"+ "); !strings.HasPrefix(out, strings.Join(tc.want, "\n")+"\n") {
			t.Errorf("%s: make %v called\n%s\nwant\n%s", tc.name, tc.targets, got, strings.Join(tc.want, "\n"))
		}
	}
	// Neither Docker nor java and mvn: one message naming both.
	out, err := makeWith(t.TempDir(), dockerDown, "start")
	if err == nil || !strings.Contains(out, "Docker") || !strings.Contains(out, "Maven") || strings.Contains(out, "cluster start") {
		t.Errorf("make start without Docker, java or mvn: %v\n%s\nwant a failure naming Docker and Maven", err, out)
	}
}
