package repair_test

import (
	"fmt"
	"testing"
	"time"

	"clicks/internal/clicks"

	"github.com/IBM/sarama"
)

// The embedded broker in a process of its own restarts on a log of
// user-clicks that lost its end, while another process's writer waits
// to write clicks. The writer's clicks must not take the lost offsets,
// which the processor counted before and would skip as delivered again:
// the broker holds writes until its start-up repair has filled the lost
// end, and the processor, started later, counts every new click.
func TestBrokerFillsALostEndBeforeOthersWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newApartEnv(t)
	broker := e.startBroker()
	p := e.startInstance("p")
	e.writeClicks(home, 100)
	p.WaitForTotal(100)
	p.Stop()
	broker.Stop()
	e.damage(string(clicks.Topic), home, 0)

	// The writer waits for the broker, and writes as soon as it may.
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Retry.Max = 100
	cfg.Producer.Retry.Backoff = 20 * time.Millisecond
	cfg.Metadata.Retry.Max = 1000
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	type written struct {
		offsets []int64
		err     error
	}
	done := make(chan written, 1)
	go func() {
		var w written
		var producer sarama.SyncProducer
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			if producer, w.err = sarama.NewSyncProducer(e.brokers(), cfg); w.err == nil || time.Now().After(deadline) {
				break
			}
		}
		if w.err != nil {
			done <- w
			return
		}
		defer producer.Close()
		for i := range 50 {
			_, offset, err := producer.SendMessage(&sarama.ProducerMessage{Topic: string(clicks.Topic), Partition: home,
				Key: sarama.StringEncoder("user-0"), Value: sarama.StringEncoder(fmt.Sprintf("click %d", i))})
			if err != nil {
				w.err = err
				break
			}
			w.offsets = append(w.offsets, offset)
		}
		done <- w
	}()
	broker = e.startBroker()
	w := <-done
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	if w.offsets[0] < 100 {
		t.Errorf("the writer's clicks took offsets %d-%d, lost ones the processor had counted up to 99", w.offsets[0], w.offsets[len(w.offsets)-1])
	}
	if m := broker.WaitForLog(lostLineRE, 30*time.Second); m[1] != string(clicks.Topic) || m[3] != "100" {
		t.Errorf("the broker reported %s records lost of %s, want 100 of %s", m[3], m[1], clicks.Topic)
	}
	p = e.startInstance("p")
	p.WaitForTotal(150)
	p.Stop()
	broker.Stop()
}
