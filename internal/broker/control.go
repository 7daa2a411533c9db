package broker

import (
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// controlRenewal is how long a control function stays installed before
// control installs it afresh.
const controlRenewal = 10 * time.Minute

// control installs fn for the requests of key for as long as the cluster
// runs, renewing it every renew (controlRenewal but in tests). kfake remembers, for each control function, the last request of
// every connection it ever saw (controlCtx.lastReq, never pruned), so one
// installed for weeks would hold a request of every client that ever
// connected, a produce request with its records among them. control drops
// it and installs it again, with an empty memory.
func control(c *kfake.Cluster, key kmsg.Key, renew time.Duration, fn func(kmsg.Request) (kmsg.Response, error, bool)) {
	installed := time.Now()
	c.ControlKey(key.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if time.Since(installed) >= renew {
			c.DropControl() // after this request, whatever fn does with it
			control(c, key, renew, fn)
		}
		return fn(req)
	})
}
