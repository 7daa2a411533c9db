package app

import (
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"clicks/internal/clickstest"
)

// BenchmarkUserReadsProcess: GET /user-3 as a user meets it, on the whole
// program with its defaults (embedded broker, emitter, processor, view),
// against a bare net/http handler that writes a constant body, both
// loaded by wrk (2 threads, 16 connections) in rounds of 2 s, taking
// turns going first. wrk is a process of its own, as a user's load would
// be; the bare handler is served by the benchmark's process.
func BenchmarkUserReadsProcess(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed (apt-get install wrk)")
	}
	const rounds = 6
	p := clickstest.StartProcess(b, "-data", b.TempDir(), "-broker-listen", "127.0.0.1:0", "-listen", "127.0.0.1:0")
	p.WaitForClicks("user-3", 0, time.Minute)
	body := []byte(`{"Clicks":153}`)
	bare := serveOn(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	}))
	requestsRE := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	non200RE := regexp.MustCompile(`Non-2xx or 3xx responses`)
	load := func(url string) float64 {
		out, err := exec.Command(wrk, "-t2", "-c16", "-d2s", url).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk %s: %v\n%s", url, err, out)
		}
		if non200RE.Match(out) {
			b.Fatalf("wrk %s: answers other than 200:\n%s", url, out)
		}
		m := requestsRE.FindSubmatch(out)
		if m == nil {
			b.Fatalf("wrk %s: no rate in\n%s", url, out)
		}
		rate, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			b.Fatal(err)
		}
		return rate
	}
	var clicksRates, bareRates []float64
	for b.Loop() {
		for r := range rounds {
			if r%2 == 0 {
				bareRates = append(bareRates, load(bare+"/user-3"))
				clicksRates = append(clicksRates, load(p.URL()+"/user-3"))
			} else {
				clicksRates = append(clicksRates, load(p.URL()+"/user-3"))
				bareRates = append(bareRates, load(bare+"/user-3"))
			}
		}
	}
	c, bb := median(clicksRates), median(bareRates)
	b.ReportMetric(c, "reads/s")
	b.ReportMetric(bb, "bare-reads/s")
	b.ReportMetric(c/bb, "ratio-to-bare")
}
