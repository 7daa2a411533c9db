package repair_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A client that writes clicks in transactions (franz-go with a
// transactional ID, as Java's exactly-once producers do) ends them with
// commit markers, control records no consumer delivers. The start-up
// damage check reads user-clicks up to such a marker: the next start must
// finish the check promptly, report no damage, and serve each user's
// clicks exactly.
func TestDamageCheckAfterTransactionalWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("damage test skipped with -short")
	}
	e := newEnv(t)
	p := e.start()

	// murmur2 partitions, as any non-sarama client: most clicks land
	// outside their user's partition and are forwarded.
	producer, err := kgo.NewClient(kgo.SeedBrokers(e.addr), kgo.TransactionalID("clicks-txn-test"),
		kgo.DefaultProduceTopic(string(clicks.Topic)))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want := map[string]int{}
	const transactions, perTransaction = 20, 10
	for i := range transactions {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range perTransaction {
			key := fmt.Sprintf("user-%d", (i*perTransaction+j)%13)
			if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: []byte("click")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			want[key]++
		}
		if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	p.WaitForTotal(transactions * perTransaction)
	p.Stop()

	p = e.start()
	took := p.WaitForRepair()
	t.Logf("damage check after %d transactions: %v", transactions, took)
	if took > 15*time.Second {
		// Not a speed target: the check gave up waiting for a marker
		// (30 s) or came close.
		t.Errorf("damage check took %v", took)
	}
	checkNoDamageSaid(t, p.Log(), "a healthy start")
	p.WaitForTotal(transactions * perTransaction)
	for key, n := range want {
		// A 503 says the view is loading the table again (goka restarts
		// a partition's load after an error): ask again. Any other
		// answer is final, and said in full if wrong.
		var status int
		var body string
		clickstest.WaitFor(t, 30*time.Second, "GET /"+key+" answered by a loaded view", func() (bool, string) {
			var err error
			status, body, err = p.Get("/" + key)
			return err == nil && status != http.StatusServiceUnavailable, fmt.Sprintf("%d %q (err %v)", status, body, err)
		})
		if want := fmt.Sprintf(`{"Clicks":%d}`, n); status != http.StatusOK || body != want {
			t.Errorf("GET /%s: %d %q, want 200 %q (%d clicks written)\nstderr:\n%s", key, status, body, want, n, p.LastLines(40))
		}
	}
	p.Stop()
}
