package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultServiceName names the service in its telemetry when TraceConfig
// names none.
const DefaultServiceName = "dmsrouter"

// TraceConfig says what the router's traces are called, where they go and
// how many of them: the config package fills it from the telemetry section.
type TraceConfig struct {
	// ServiceName is the resource's service.name on every span and on the
	// metrics' target_info ("" is DefaultServiceName).
	ServiceName string
	// OTLPEndpoint is the base URL of an OTLP/HTTP receiver, such as
	// http://127.0.0.1:4318; spans are posted in batches to its /v1/traces
	// (the path is appended to the URL's own). "" exports nothing.
	OTLPEndpoint string
	// SampleRatio is the share of traces a request starts (0..1) that are
	// recorded and exported. A request that carries a W3C traceparent
	// follows its caller's decision instead, so that a caller's trace is
	// whole or absent.
	SampleRatio float64
}

// Telemetry holds the OpenTelemetry providers of one router process: the
// meter provider exports to a Prometheus registry that MetricsHandler
// serves (on a listener of its own, not on the API: see server.metrics_addr), the
// tracer provider records a span per request and per shard operation and
// sends the sampled ones to the OTLP exporter, when one is configured, and
// to the span processors it is given.
type Telemetry struct {
	MeterProvider  *sdkmetric.MeterProvider
	TracerProvider *sdktrace.TracerProvider
	registry       *prometheus.Registry
}

// NewTelemetry builds the providers of tc; spans also go to each of
// processors (tests record them). It fails when tc.OTLPEndpoint is not an
// http or https URL.
func NewTelemetry(tc TraceConfig, processors ...sdktrace.SpanProcessor) (*Telemetry, error) {
	name := tc.ServiceName
	if name == "" {
		name = DefaultServiceName
	}
	// The default resource (SDK, OTEL_RESOURCE_ATTRIBUTES) with our name.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", name)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.SampleRatio))),
	}
	if tc.OTLPEndpoint != "" {
		u, err := tracesURL(tc.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		// New only builds the client: nothing is sent before the first batch.
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(u))
		if err != nil {
			return nil, fmt.Errorf("telemetry.otlp_endpoint: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	for _, p := range processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mexp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	return &Telemetry{
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(mexp), sdkmetric.WithResource(res)),
		TracerProvider: sdktrace.NewTracerProvider(opts...),
		registry:       reg,
	}, nil
}

// tracesURL returns the OTLP/HTTP traces URL of the base URL endpoint: its
// path with /v1/traces appended, as the OTLP specification builds a
// signal's URL from OTEL_EXPORTER_OTLP_ENDPOINT.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("telemetry.otlp_endpoint: %q is not an http(s) URL such as http://127.0.0.1:4318", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}

// MetricsHandler serves the metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown exports the spans still queued and stops the providers; ctx
// bounds how long it waits for the receiver.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.TracerProvider.Shutdown(ctx), t.MeterProvider.Shutdown(ctx))
}
