package router

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Telemetry holds the OpenTelemetry providers of one router process: the
// meter provider exports to a Prometheus registry that MetricsHandler
// serves (on a listener of its own, not on the API: see server.metrics_addr), the
// tracer provider records a span per request and per shard operation and
// sends them to the span processors it is given (none by default).
type Telemetry struct {
	MeterProvider  *sdkmetric.MeterProvider
	TracerProvider *sdktrace.TracerProvider
	registry       *prometheus.Registry
}

// NewTelemetry builds the providers; spans go to each of processors.
func NewTelemetry(processors ...sdktrace.SpanProcessor) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{}
	for _, p := range processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	return &Telemetry{
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		TracerProvider: sdktrace.NewTracerProvider(opts...),
		registry:       reg,
	}, nil
}

// MetricsHandler serves the metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.TracerProvider.Shutdown(ctx), t.MeterProvider.Shutdown(ctx))
}
