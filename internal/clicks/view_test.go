package clicks

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
)

// Reads of the view while it stops do not race with goka's closing of it
// (run with -race), and once it has stopped they say so.
func TestGokaViewCloseRace(t *testing.T) {
	tt := tester.New(t)
	gv, err := goka.NewView(nil, Table, new(UserCodec), goka.WithViewTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	v := &View{v: gv}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !v.Recovered() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	tt.SetTableValue(Table, "user-3", &User{Clicks: 153}) // returns once the view has it
	if val, err := v.Get("user-3"); err != nil || val == nil || val.(*User).Clicks != 153 {
		t.Fatalf("Get while running: %v, %v", val, err)
	}
	var (
		wg    sync.WaitGroup
		reads atomic.Int64
		stop  = make(chan struct{})
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v.Get("user-3") //nolint:errcheck // racing is what is tested
				v.Recovered()
				v.Stats(context.Background())
				if it, err := v.Iterator(); err == nil {
					for it.Next() {
						it.Value() //nolint:errcheck
					}
					it.Release()
				}
				reads.Add(1)
			}
		})
	}
	// The readers are busy before the stop begins.
	for reads.Load() < 100 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the view did not stop")
	}
	close(stop)
	wg.Wait()
	if _, err := v.Get("user-3"); !errors.Is(err, ErrViewStopped) {
		t.Errorf("Get after the stop: %v, want ErrViewStopped", err)
	}
	if v.Recovered() {
		t.Error("a stopped view says it has recovered")
	}
}
