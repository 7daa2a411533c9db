// Package status tells how the parts of the program are doing: whether
// each is ready and how far its table has recovered (for /-/ready, the
// metrics and the logs), and how far the view and the processor lag
// behind the topics they read.
package status

import (
	"context"
	"fmt"

	"clicks/internal/clicks"

	"github.com/lovoo/goka"
)

// Part is a component whose readiness /-/ready reports.
type Part struct {
	Name     string
	Ready    func() (bool, string) // ready, and a word on what it is doing
	Progress func() float64        // share of its table recovered, 0 to 1; nil if it has none
}

// ViewPart is the view as a part.
func ViewPart(v *clicks.View) Part {
	return Part{"view", func() (bool, string) {
		return v.Recovered(), stateName(int(v.CurrentState()), "idle", "initializing", "connecting", "catching up", "running")
	}, func() float64 {
		return tableRecovery(v.Stats(context.Background()).Partitions).share()
	}}
}

// ProcessorPart is the processor as a part: the one current returns,
// which changes when a failed processor is replaced.
func ProcessorPart(current func() *goka.Processor) Part {
	return Part{"processor", func() (bool, string) {
		p := current()
		return p.Recovered(), stateName(int(p.StateReader().State()), "idle", "starting", "setting up", "running", "stopping", "stopped")
	}, func() float64 {
		return tableRecovery(ProcessorTables(current())).share()
	}}
}

// stateName names goka's numbered states (goka.ViewState*, goka.ProcState*).
func stateName(s int, names ...string) string {
	if s < 0 || s >= len(names) {
		return fmt.Sprintf("state %d", s)
	}
	return names[s]
}
