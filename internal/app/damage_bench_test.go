package app

import (
	"regexp"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"
	"clicks/internal/kafka"
	"clicks/internal/repair"

	"github.com/IBM/sarama"
)

// BenchmarkDamageCheck: the processor's start-up check for damaged logs
// on a table of 1,000,000 users, which it reads whole at every start,
// with 700,000 clicks in user-clicks (what the embedded broker keeps by
// default), all committed (the built program, processor only; check-s
// is what it logs it took).
func BenchmarkDamageCheck(b *testing.B) {
	e := newBenchEnv(b, clicks.DefaultPartitions)
	e.fillTable(1_000_000)
	e.emitAsFastAsPossible(700_000, 1_000_000, 0)
	client, err := sarama.NewClient(e.k.Brokers, e.k.Sarama())
	if err != nil {
		b.Fatal(err)
	}
	ends, err := kafka.Offsets(client, string(clicks.Topic), sarama.OffsetNewest)
	if err != nil {
		b.Fatal(err)
	}
	for p, end := range ends {
		if err := repair.Rewind(client, string(clicks.Group), string(clicks.Topic), p, end); err != nil {
			b.Fatal(err)
		}
	}
	client.Close()
	re := regexp.MustCompile(`msg="checked the logs for damage" took=(\S+)`)
	var took []float64
	for b.Loop() {
		p := clickstest.StartProcess(b, "-brokers", e.k.Brokers[0], "-emit=false", "-serve=false", "-data", b.TempDir(), "-quiet")
		d, err := time.ParseDuration(p.WaitForLog(re, 30*time.Second)[1])
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, d.Seconds())
		p.Kill()
	}
	b.ReportMetric(median(took), "check-s")
}
