package app

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"clicks/internal/clickstest"
)

// weekOfClicks is what the default emitter (10 clicks a second) sends in
// 7 days.
const weekOfClicks = 7 * 24 * 3600 * 10

// BenchmarkWeekOfClicks: memory of the whole program with its default
// flags (embedded broker, emitter, processor and view) after a week of the
// default emitter's clicks, each in a batch of its own as the emitter
// sends them (the embedded broker's memory grows with batches, not
// bytes). The clicks are written fast by another client; then the
// program is stopped with SIGTERM and started again on the same data.
// CLICKS_WEEK_CLICKS writes another number of clicks.
//
// Metrics: RSS once the clicks are counted (rss-MiB), the peak until
// then (peak-rss-MiB) and the RSS after 10 s idle (idle-rss-MiB); after
// the restart, the peak until the view serves
// the counts again (restart-peak-rss-MiB) and the RSS then
// (restart-rss-MiB); what the broker keeps of user-clicks (clicks-kept)
// and the disk its log takes (disk-MiB); and how fast the clicks were
// written and counted (counted-clicks/s).
func BenchmarkWeekOfClicks(b *testing.B) {
	n := weekOfClicks
	if s := os.Getenv("CLICKS_WEEK_CLICKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("CLICKS_WEEK_CLICKS=%q: want a positive number", s)
		}
	}
	clickstest.Build(b)
	for b.Loop() {
		dir := b.TempDir()
		args := []string{"-data", dir, "-broker-listen", "127.0.0.1:0", "-listen", "127.0.0.1:0", "-quiet"}
		p := clickstest.StartProcess(b, args...)
		addr := p.WaitForBrokers()[0]
		start := time.Now()
		clickstest.WriteOneClickBatches(b, addr, n)
		b.Logf("wrote %d one-click batches in %s", n, time.Since(start).Round(time.Millisecond))
		p.WaitForSummary(10*time.Minute, fmt.Sprintf("%d clicks", n), func(st clickstest.Summary) bool { return st.Total >= int64(n) })
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "counted-clicks/s")
		b.ReportMetric(procStatusMiB(b, p, "VmRSS"), "rss-MiB")
		b.ReportMetric(procStatusMiB(b, p, "VmHWM"), "peak-rss-MiB")
		time.Sleep(10 * time.Second) // idle after the burst
		b.ReportMetric(procStatusMiB(b, p, "VmRSS"), "idle-rss-MiB")
		kept := clicksKept(b, addr)

		p.Signal(syscall.SIGTERM)
		<-p.Done()
		if err := p.Err(); err != nil {
			b.Fatalf("stop with SIGTERM: %v\n%s", err, p.Log())
		}
		p = clickstest.StartProcess(b, append(args[:2:2], "-broker-listen", addr, "-listen", "127.0.0.1:0", "-quiet")...)
		p.WaitForSummary(10*time.Minute, fmt.Sprintf("%d clicks", n), func(st clickstest.Summary) bool { return st.Total >= int64(n) })
		b.ReportMetric(procStatusMiB(b, p, "VmHWM"), "restart-peak-rss-MiB")
		b.ReportMetric(procStatusMiB(b, p, "VmRSS"), "restart-rss-MiB")
		b.ReportMetric(float64(kept), "clicks-kept")
		b.ReportMetric(float64(dirBytes(b, filepath.Join(dir, "broker")))/(1<<20), "disk-MiB")
		p.Kill()
	}
}

// procStatusMiB reads a kB field of the process's /proc/<pid>/status.
func procStatusMiB(b *testing.B, p *clickstest.Process, field string) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		b.Fatalf("no %s in /proc/<pid>/status", field)
	}
	kib, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		b.Fatalf("%s in /proc/<pid>/status: %v", field, err)
	}
	return kib / 1024
}
