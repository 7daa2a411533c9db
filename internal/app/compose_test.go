package app

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml that the README and the
// Makefile rely on.
type composeFile struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Ports       []string       `yaml:"ports"`
		Environment map[string]any `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

func TestDockerCompose(t *testing.T) {
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	zk, ok := c.Services["zookeeper"]
	if !ok || !strings.Contains(zk.Image, "zookeeper") {
		t.Fatalf("no ZooKeeper service: %+v", c.Services)
	}
	kafka, ok := c.Services["kafka"]
	if !ok || !strings.Contains(kafka.Image, "kafka") {
		t.Fatalf("no Kafka service: %+v", c.Services)
	}
	for name, s := range c.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no healthcheck: `docker compose up --wait` could not wait for it", name)
		}
	}
	if !slicesContainsSuffix(kafka.Ports, ":9092:9092") && !slicesContainsSuffix(kafka.Ports, "9092:9092") {
		t.Errorf("Kafka does not publish 9092: %v", kafka.Ports)
	}
	if v := kafka.Environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]; v != "false" {
		t.Errorf("KAFKA_AUTO_CREATE_TOPICS_ENABLE = %v, want \"false\"", v)
	}
	if adv, _ := kafka.Environment["KAFKA_ADVERTISED_LISTENERS"].(string); !strings.Contains(adv, "127.0.0.1:9092") {
		t.Errorf("Kafka does not advertise 127.0.0.1:9092 to the host: %q", adv)
	}
	if kafka.DependsOn["zookeeper"].Condition != "service_healthy" {
		t.Errorf("Kafka does not wait for a healthy ZooKeeper: %+v", kafka.DependsOn)
	}

	// Where a Docker client is installed, it must accept the file too.
	if docker, err := exec.LookPath("docker"); err == nil {
		out, err := exec.Command(docker, "compose", "-f", "../../docker-compose.yml", "config", "--quiet").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "is not a docker command") && !strings.Contains(string(out), "unknown") {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
	}
}

func TestMakefileTargets(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	mk := string(data)
	for _, target := range []string{"start:", "stop:", "restart:", "run:", "run-kafka:", "test:", "bench:", "soak:"} {
		if !strings.Contains(mk, "\n"+target) {
			t.Errorf("Makefile lacks target %s", target)
		}
	}
	if !strings.Contains(mk, "compose up -d --wait") {
		t.Error("make start does not wait for the healthchecks (docker compose up -d --wait)")
	}
	if !strings.Contains(mk, "-brokers $(KAFKA_BROKERS)") {
		t.Error("make run-kafka does not pass -brokers")
	}
}

func slicesContainsSuffix(s []string, suffix string) bool {
	for _, x := range s {
		if strings.HasSuffix(x, suffix) {
			return true
		}
	}
	return false
}
