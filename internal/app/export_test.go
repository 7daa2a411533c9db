package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/clickstest"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Every user is reachable over HTTP: paged through /-/clicks with the
// cursor while clicks go on being counted, and streamed by /-/export,
// each user once with the count the view serves.
func TestPagingAndExportEndToEnd(t *testing.T) {
	t.Parallel()
	in := clickstest.StartInProcess(t, Run, nil, "-data", t.TempDir(), "-emit=false")
	const users = 3_500
	cl, err := kgo.NewClient(kgo.SeedBrokers(in.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, users)
	for i := range users {
		recs = append(recs, &kgo.Record{Topic: string(clicks.Topic), Key: fmt.Appendf(nil, "page-user-%05d", i), Value: []byte("a click")})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	in.WaitForTotal(users)

	// Page through while user-0 … are clicked on: counts change, every
	// user still comes once.
	stop, stopped := make(chan struct{}), make(chan struct{})
	var more atomic.Int64 // clicks acknowledged while paging
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			cl.Produce(context.Background(), &kgo.Record{Topic: string(clicks.Topic), Key: fmt.Appendf(nil, "page-user-%05d", i%10), Value: []byte("a click")},
				func(_ *kgo.Record, err error) {
					if err == nil {
						more.Add(1)
					}
				})
		}
	}()
	seen := map[string]int{}
	after, pages := "", 0
	for {
		var page struct {
			Users []struct {
				User   string
				Clicks int
			}
			More bool
			Next string
		}
		getJSON(t, in.URL()+"/-/clicks?prefix=page-&limit=1000&after="+url.QueryEscape(after), &page)
		pages++
		for _, u := range page.Users {
			seen[u.User]++
			if u.Clicks < 1 {
				t.Errorf("%s listed with %d clicks", u.User, u.Clicks)
			}
		}
		if !page.More {
			break
		}
		after = page.Next
	}
	if len(seen) != users || pages != 4 {
		t.Errorf("%d users in %d pages, want %d in 4", len(seen), pages, users)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", u, n)
		}
	}

	// The export, once the clicks have stopped and are all counted: each
	// line the count the view serves.
	close(stop)
	<-stopped
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	in.WaitForTotal(users + int(more.Load()))
	res, err := http.Get(in.URL() + "/-/export?prefix=page-")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	n := 0
	var last string
	for lines.Scan() {
		last = lines.Text()
		var u struct {
			User   string
			Clicks int
		}
		if err := json.Unmarshal(lines.Bytes(), &u); err != nil {
			t.Fatalf("line %q: %v", last, err)
		}
		if u.User == "" {
			break
		}
		n++
		if got := in.Clicks(u.User); got != u.Clicks {
			t.Errorf("%s: exported %d, served %d", u.User, u.Clicks, got)
		}
	}
	if n != users || last != fmt.Sprintf(`{"complete":true,"users":%d}`, users) {
		t.Errorf("export: %d users, last line %s; want %d and complete", n, last, users)
	}
}

// getJSON decodes the JSON answer of GET url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
