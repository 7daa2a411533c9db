// Package metrics is what /-/metrics reports, in Prometheus format: what
// the emitter and the processor did (it is their clicks.Events), the
// HTTP requests by route, and gauges of the parts' state.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"clicks/internal/clicks"
	"clicks/internal/status"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are one instance's metrics. Each instance has its own registry,
// so two instances can run in one process.
type Metrics struct {
	reg        *prometheus.Registry
	emitted    prometheus.Counter
	emitFailed prometheus.Counter
	emitMaybe  prometheus.Counter
	processed  prometheus.Counter
	forwarded  prometheus.Counter
	skipped    *prometheus.CounterVec
	deleted    prometheus.Counter
	notAgain   prometheus.Counter
	lost       *prometheus.CounterVec
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	routes     sync.Map // route template -> *routeMetrics
}

// routeMetrics are one route's metrics, looked up once: finding them by
// label values for every request cost a few per cent of the reads.
type routeMetrics struct {
	latency prometheus.Observer
	codes   sync.Map // status code -> prometheus.Counter
}

// New returns the metrics, every counter at zero.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_emitted_total", Help: "Clicks the emitter sent and the brokers acknowledged.",
		}),
		emitMaybe: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_emit_unknown_total", Help: "Clicks the emitter sent whose outcome is unknown: the broker may have written them (a timeout, an out-of-order sequence number after a broker restart).",
		}),
		emitFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_emit_failed_total", Help: "Clicks the emitter could not send.",
		}),
		processed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_processed_total", Help: "Clicks the processor counted.",
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_forwarded_total", Help: "Clicks that arrived outside their user's partition of user-clicks and were forwarded to it through the loop topic, to be counted there.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clicks_skipped_total", Help: "Clicks the processor did not count, by reason: " + skipReasonsHelp,
		}, []string{"reason"}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_deleted_uncounted_total", Help: "Clicks the brokers deleted (retention) before the processor group counted them, as found when this instance's processor started.",
		}),
		notAgain: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_not_counted_again_total", Help: "Records of user-clicks and the loop topic that the start-up repair of a damaged log had to have counted again but could not (the processor group kept members): their counts are lost.",
		}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clicks_records_lost_total", Help: "Records the brokers' logs of user-clicks and the loop topic lost (a damaged or truncated log), by topic, as found when this instance started: a log that ends before what the processor group had read or counted, or (embedded broker) a hole in its middle.",
		}, []string{"topic"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clicks_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "clicks_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route; event streams are not timed.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.emitted, m.emitFailed, m.emitMaybe, m.processed, m.forwarded, m.skipped, m.deleted, m.notAgain, m.lost, m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason shows from the start, at zero.
	for _, reason := range clicks.SkipReasons() {
		m.skipped.WithLabelValues(reason)
	}
	return m
}

// skipReasonsHelp says what each reason of clicks_skipped_total means.
const skipReasonsHelp = "duplicate (delivered again, counted already), no_key (null or empty key), " +
	"unreadable_value (the user's table value cannot be read), unreadable_forward (a record in the loop topic clicks did not write), " +
	"filler (not a click: written by clicks to fill offsets a damaged log lost), " +
	"stale_forward (a forward in the loop topic of an earlier incarnation of user-clicks)."

// ProcessorCounts is what this instance's processor did, for the page.
type ProcessorCounts struct {
	Counted   int64            `json:"counted"`
	Forwarded int64            `json:"forwarded"`
	Skipped   map[string]int64 `json:"skipped"` // by reason, as clicks_skipped_total
}

// ProcessorCounts reads the processor's counters.
func (m *Metrics) ProcessorCounts() *ProcessorCounts {
	c := &ProcessorCounts{Counted: counterValue(m.processed), Forwarded: counterValue(m.forwarded), Skipped: map[string]int64{}}
	for _, reason := range clicks.SkipReasons() {
		c.Skipped[reason] = counterValue(m.skipped.WithLabelValues(reason))
	}
	return c
}

// counterValue reads a counter as a scrape would.
func counterValue(c prometheus.Counter) int64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1 // a counter's Write does not fail
	}
	return int64(d.GetCounter().GetValue())
}

// Emitted, Counted, Forwarded and Skipped make the metrics the emitter's
// and the processor's clicks.Events.

func (m *Metrics) Emitted(err error) {
	switch {
	case err == nil:
		m.emitted.Inc()
	case clicks.UnknownOutcome(err):
		m.emitMaybe.Inc()
	default:
		m.emitFailed.Inc()
	}
}

func (m *Metrics) Counted()              { m.processed.Inc() }
func (m *Metrics) Forwarded()            { m.forwarded.Inc() }
func (m *Metrics) Skipped(reason string) { m.skipped.WithLabelValues(reason).Inc() }

// DeletedUncounted adds n clicks the brokers deleted before they were
// counted.
func (m *Metrics) DeletedUncounted(n int64) { m.deleted.Add(float64(n)) }

// NotCountedAgain adds n records the start-up repair could not have
// counted again.
func (m *Metrics) NotCountedAgain(n int64) { m.notAgain.Add(float64(n)) }

// RecordsLost adds n records a damaged log of topic lost.
func (m *Metrics) RecordsLost(topic string, n int64) { m.lost.WithLabelValues(topic).Add(float64(n)) }

// gauge registers a gauge whose value is read at each scrape.
func (m *Metrics) gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// WatchView reports the view's table: the clicks it serves and its users
// (as the page's summary counts them), and its lag.
func (m *Metrics) WatchView(served, users func() int64, lag func() status.Lag) {
	m.gauge("clicks_served", "Sum of all users' clicks in the view, what GET /{user} serves.", func() float64 {
		return float64(served())
	})
	m.gauge("clicks_view_users", "Users in the view's table.", func() float64 { return float64(users()) })
	m.gauge("clicks_view_lag_records", "Records of the table the view has not read yet; -1 when unknown.", func() float64 {
		return float64(lag().View)
	})
}

// WatchProcessorLag reports the processor group's lag.
func (m *Metrics) WatchProcessorLag(lag func() status.Lag) {
	m.gauge("clicks_processor_lag_records", "Clicks in user-clicks not yet committed by the processor group; -1 when unknown.", func() float64 {
		return float64(lag().Processor)
	})
}

// WatchBrokers reports whether the brokers answer: clicks_brokers_answering.
func (m *Metrics) WatchBrokers(answering func() bool) {
	m.gauge("clicks_brokers_answering", "1 while the brokers answer within 2 s (asked every second).", func() float64 { return boolFloat(answering()) })
}

// WatchWritesRefused reports the produce requests the embedded broker
// refused for want of disk space: clicks_broker_writes_refused_total.
func (m *Metrics) WatchWritesRefused(refused func() int64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "clicks_broker_writes_refused_total", Help: "Produce requests the embedded broker refused because its disk was nearly full (-broker-min-free-mib); the writers retry.",
	}, func() float64 { return float64(refused()) }))
}

// WatchPart reports a part's recovery as /-/ready does:
// clicks_<part>_recovered and clicks_<part>_recovery_progress.
func (m *Metrics) WatchPart(p status.Part) {
	m.gauge("clicks_"+p.Name+"_recovered", "1 once the "+p.Name+" has recovered its table and runs.", func() float64 {
		ok, _ := p.Ready()
		return boolFloat(ok)
	})
	if p.Progress != nil {
		m.gauge("clicks_"+p.Name+"_recovery_progress", "Share of its table's offsets the "+p.Name+" has recovered, 0 to 1.", p.Progress)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Instrument is router middleware that counts and times requests by
// route: the route's template (/{key}), never the path, so users do not
// become label values.
func (m *Metrics) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		m.observe(route, next, w, r)
	})
}

// InstrumentAs counts and times requests of h under a fixed route name,
// for the router's not-found and method-not-allowed answers.
func (m *Metrics) InstrumentAs(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.observe(route, h, w, r) })
}

func (m *Metrics) observe(route string, h http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	h.ServeHTTP(sw, r)
	rm := m.route(route)
	if route != "/-/events" {
		rm.latency.Observe(time.Since(start).Seconds())
	}
	c, ok := rm.codes.Load(sw.code)
	if !ok {
		c, _ = rm.codes.LoadOrStore(sw.code, m.requests.WithLabelValues(route, strconv.Itoa(sw.code)))
	}
	c.(prometheus.Counter).Inc()
}

// route returns the metrics of a route template.
func (m *Metrics) route(route string) *routeMetrics {
	if rm, ok := m.routes.Load(route); ok {
		return rm.(*routeMetrics)
	}
	rm, _ := m.routes.LoadOrStore(route, &routeMetrics{latency: m.latency.WithLabelValues(route)})
	return rm.(*routeMetrics)
}

// statusWriter remembers the status code. Unwrap lets
// http.ResponseController reach the connection (flushes, deadlines).
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	s.wroteHeader = true
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
