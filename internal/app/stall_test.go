package app

import (
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clickstest"
)

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
	brokerDir, appDir := t.TempDir(), t.TempDir()
	brokerArgs := []string{"-data", brokerDir, "-emit=false", "-process=false", "-serve=false"}
	broker := clickstest.StartProcess(t, append(brokerArgs, "-broker-listen", "127.0.0.1:0")...)
	addr := broker.WaitForBrokers()[0]
	app := clickstest.StartProcess(t, "-data", appDir, "-brokers", addr, "-listen", "127.0.0.1:0", "-interval", "5ms", "-quiet")
	app.WaitForReadiness(http.StatusOK, 30*time.Second)

	// Stopped.
	broker.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	parts := app.WaitForReadiness(http.StatusServiceUnavailable, 5*time.Second)
	t.Logf("503 after %s: %v", time.Since(stopped).Round(100*time.Millisecond), parts)
	if !strings.HasPrefix(parts["brokers"], "not answering") {
		t.Errorf("/-/ready says %v while the broker is stopped, want the brokers not answering", parts)
	}
	for time.Since(stopped) < stall {
		select {
		case <-app.Done():
			t.Fatalf("the program exited (%v) while the broker was stopped:\n%s", app.Err(), app.LastLines(30))
		case <-time.After(time.Second):
		}
	}
	broker.Signal(syscall.SIGCONT)
	app.WaitForReadiness(http.StatusOK, 60*time.Second)

	// Killed and started again on the same port and data.
	broker.Kill()
	app.WaitForReadiness(http.StatusServiceUnavailable, 5*time.Second)
	broker = clickstest.StartProcess(t, append(brokerArgs, "-broker-listen", addr)...)
	broker.WaitForBrokers()
	app.WaitForReadiness(http.StatusOK, 60*time.Second)

	app.Kill()
	checkExactlyOnce(t, "-data", appDir, "-brokers", addr)
}
