package broker

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kfake remembers the last request of every connection for each control
// function, for good; control renews the function to forget them. Renewed
// at every request, it still sees each request once: not lost with the
// old function, not seen twice by the old and the new.
func TestKfakeControlRemembersEveryConnection(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seen atomic.Int32
	control(c, kmsg.DescribeConfigs, 0, func(kmsg.Request) (kmsg.Response, error, bool) {
		seen.Add(1)
		return nil, nil, false
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 5
	for range n {
		req := kmsg.NewPtrDescribeConfigsRequest()
		res := kmsg.NewDescribeConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeBroker, "0"
		req.Resources = append(req.Resources, res)
		if _, err := req.RequestWith(context.Background(), cl); err != nil {
			t.Fatal(err)
		}
	}
	if got := seen.Load(); got != n {
		t.Errorf("the control function saw %d of %d requests", got, n)
	}
}
