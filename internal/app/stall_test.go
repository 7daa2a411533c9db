package app

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readiness is GET /-/ready: its status, and the state of each part.
func readiness(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(base + "/-/ready")
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var body struct{ Parts map[string]string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("GET /-/ready: %v", err)
	}
	return res.StatusCode, body.Parts
}

// waitForReadiness polls /-/ready until it answers code, and fails the
// test if that takes longer than within.
func waitForReadiness(t *testing.T, p *process, base string, code int, within time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, parts := readiness(t, base)
		if got == code {
			return parts
		}
		select {
		case err := <-p.exited:
			t.Fatalf("the program exited (%v) while /-/ready was to answer %d:\n%s", err, code, p.stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("/-/ready answered %d %v, not %d, within %s:\n%s", got, parts, code, within, lastLines(p.stderr.String(), 30))
		}
	}
}

// A broker that stops answering (its process stopped for a minute, as a
// laptop's sleep or a stuck disk does) turns /-/ready to 503 within 5 s,
// with the reason; when it answers again, the program goes on by itself
// without exiting, and every click is counted once. The same when the
// broker's process is killed and started again.
func TestBrokerStalledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("stall test skipped with -short")
	}
	stall := 60 * time.Second
	if s := os.Getenv("CLICKS_STALL"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CLICKS_STALL=%q: %v", s, err)
		}
		stall = d
	}
	bin := buildClicks(t)
	brokerDir, appDir := t.TempDir(), t.TempDir()
	brokerArgs := []string{"-data", brokerDir, "-emit=false", "-process=false", "-serve=false"}
	broker := startProcess(t, bin, append(brokerArgs, "-broker-listen", "127.0.0.1:0")...)
	addr := waitForLog(t, broker, brokersRE)
	app := startProcess(t, bin, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
	base := viewURL(t, app)
	waitForReadiness(t, app, base, http.StatusOK, 30*time.Second)

	// Stopped.
	if err := broker.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	parts := waitForReadiness(t, app, base, http.StatusServiceUnavailable, 5*time.Second)
	t.Logf("503 after %s: %v", time.Since(stopped).Round(100*time.Millisecond), parts)
	if !strings.HasPrefix(parts["brokers"], "not answering") {
		t.Errorf("/-/ready says %v while the broker is stopped, want the brokers not answering", parts)
	}
	for time.Since(stopped) < stall {
		select {
		case err := <-app.exited:
			t.Fatalf("the program exited (%v) while the broker was stopped:\n%s", err, lastLines(app.stderr.String(), 30))
		case <-time.After(time.Second):
		}
	}
	if err := broker.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitForReadiness(t, app, base, http.StatusOK, 60*time.Second)

	// Killed and started again on the same port and data.
	broker.kill()
	waitForReadiness(t, app, base, http.StatusServiceUnavailable, 5*time.Second)
	broker = startProcess(t, bin, append(brokerArgs, "-broker-listen", addr)...)
	waitForLog(t, broker, brokersRE)
	waitForReadiness(t, app, base, http.StatusOK, 60*time.Second)

	app.kill()
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}
