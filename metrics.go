package main

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// clickMetrics are what /-/metrics reports, in Prometheus format. Each
// instance has its own registry, so two instances can run in one process.
// A nil *clickMetrics counts nothing, for tests that do not look.
type clickMetrics struct {
	reg        *prometheus.Registry
	emitted    prometheus.Counter
	emitFailed prometheus.Counter
	processed  prometheus.Counter
	forwarded  prometheus.Counter
	skipped    *prometheus.CounterVec
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

func newClickMetrics() *clickMetrics {
	m := &clickMetrics{
		reg: prometheus.NewRegistry(),
		emitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clicks_emitted_total", Help: "Clicks the emitter sent and the brokers acknowledged.",
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clicks_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "clicks_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route; event streams are not timed.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.emitted, m.emitFailed, m.processed, m.forwarded, m.skipped, m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason shows from the start, at zero.
	for _, reason := range skipReasons() {
		m.skipped.WithLabelValues(reason)
	}
	return m
}

// skipReasons are the values of clicks_skipped_total's label.
func skipReasons() []string {
	return []string{"duplicate", "no_key", "unreadable_value", "unreadable_forward"}
}

// skipReasonsHelp says what each reason of clicks_skipped_total means.
const skipReasonsHelp = "duplicate (delivered again, counted already), no_key (null or empty key), " +
	"unreadable_value (the user's table value cannot be read), unreadable_forward (a record in the loop topic clicks did not write)."

// processorCounts is what this instance's processor did, for the page.
type processorCounts struct {
	Counted   int64            `json:"counted"`
	Forwarded int64            `json:"forwarded"`
	Skipped   map[string]int64 `json:"skipped"` // by reason, as clicks_skipped_total
}

// processorCounts reads the processor's counters.
func (m *clickMetrics) processorCounts() *processorCounts {
	c := &processorCounts{Counted: counterValue(m.processed), Forwarded: counterValue(m.forwarded), Skipped: map[string]int64{}}
	for _, reason := range skipReasons() {
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

func (m *clickMetrics) clickForwarded() {
	if m != nil {
		m.forwarded.Inc()
	}
}

func (m *clickMetrics) clickEmitted(err error) {
	switch {
	case m == nil:
	case err != nil:
		m.emitFailed.Inc()
	default:
		m.emitted.Inc()
	}
}

func (m *clickMetrics) clickProcessed() {
	if m != nil {
		m.processed.Inc()
	}
}

func (m *clickMetrics) clickSkipped(reason string) {
	if m != nil {
		m.skipped.WithLabelValues(reason).Inc()
	}
}

// gauge registers a gauge whose value is read at each scrape.
func (m *clickMetrics) gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// watchView reports the view's table: the clicks it serves, its users
// and its lag.
func (m *clickMetrics) watchView(s *tableSummary, lag *lagWatch) {
	m.gauge("clicks_served", "Sum of all users' clicks in the view, what GET /{user} serves.", func() float64 {
		return float64(s.snapshot().Total)
	})
	m.gauge("clicks_view_users", "Users in the view's table.", func() float64 { return float64(s.snapshot().Users) })
	m.gauge("clicks_view_lag_records", "Records of the table the view has not read yet; -1 when unknown.", func() float64 {
		return float64(lag.reading().View)
	})
}

// watchProcessorLag reports the processor group's lag.
func (m *clickMetrics) watchProcessorLag(lag *lagWatch) {
	m.gauge("clicks_processor_lag_records", "Clicks in user-clicks not yet committed by the processor group; -1 when unknown.", func() float64 {
		return float64(lag.reading().Processor)
	})
}

// watchPart reports a part's recovery as /-/ready does:
// clicks_<part>_recovered and clicks_<part>_recovery_progress.
func (m *clickMetrics) watchPart(p part) {
	m.gauge("clicks_"+p.name+"_recovered", "1 once the "+p.name+" has recovered its table and runs.", func() float64 {
		ok, _ := p.ready()
		return boolFloat(ok)
	})
	if p.progress != nil {
		m.gauge("clicks_"+p.name+"_recovery_progress", "Share of its table's offsets the "+p.name+" has recovered, 0 to 1.", p.progress)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// handler serves the metrics.
func (m *clickMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrument is router middleware that counts and times requests by
// route: the route's template (/{key}), never the path, so users do not
// become label values.
func (m *clickMetrics) instrument(next http.Handler) http.Handler {
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

// instrumentAs counts and times requests of h under a fixed route name,
// for the router's not-found and method-not-allowed answers.
func (m *clickMetrics) instrumentAs(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.observe(route, h, w, r) })
}

func (m *clickMetrics) observe(route string, h http.Handler, w http.ResponseWriter, r *http.Request) {
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
func (m *clickMetrics) route(route string) *routeMetrics {
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
