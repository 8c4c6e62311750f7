// Package tracing sets up OpenTelemetry tracing for Pyrite's programs: spans exported over
// OTLP/HTTP when a collector endpoint is configured (off by default), W3C trace context
// carried across Kafka in the traceparent record header (franz-go's kotel plugin), and slog
// loggers that write JSON when not on a terminal and name the trace of each record they log.
//
// Guarantees and interactions:
//   - Nothing is global: a Tracing holds its own tracer provider and propagator; the otel
//     global provider is never set.
//   - Off (no endpoint, no exporter), KafkaOpts returns no options: clients run without
//     tracing hooks and records keep whatever traceparent header they carry.
//   - On, every produced record gets a "<topic> publish" span whose parent is the span in the
//     record's Context or, when it has none, the traceparent header the record already
//     carries (a record copied from a consumed one, as the upcaster does), so a trace
//     continues from raw to events to every consumer. The publish span's context replaces
//     the header. Every fetched record gets a "<topic> receive" span, child of the header's
//     context, put in the record's Context for handlers to continue.
//   - Exporting never blocks a Kafka hook: spans are batched and sent in the background.
//     Shutdown flushes what is left; call it before the program exits.
//   - A Tracing is safe for concurrent use.
package tracing

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ErrInvalidConfig is wrapped by every problem Config.Validate reports.
var ErrInvalidConfig = errors.New("tracing: invalid config")

// Config configures tracing. Its zero value is off.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL, e.g. http://otel-collector:4318 (spans
	// go to <Endpoint>/v1/traces unless the URL has a path of its own); https uses TLS.
	// Empty turns tracing off.
	Endpoint string
	// Service is the service.name resource attribute, e.g. "ingest".
	Service string
	// SampleRatio is the share of new traces kept, 0 to 1; traces started upstream follow
	// their parent's decision. 0 means 1 (keep all).
	SampleRatio float64
}

// Bind registers --otlp-endpoint and --trace-sample-ratio on fs, with defaults from
// PYRITE_OTLP_ENDPOINT and PYRITE_TRACE_SAMPLE_RATIO, and sets Service.
func (c *Config) Bind(fs *flag.FlagSet, service string, getenv func(string) string) {
	c.Service = service
	c.Endpoint = getenv("PYRITE_OTLP_ENDPOINT")
	c.SampleRatio = 1
	if v, err := strconv.ParseFloat(getenv("PYRITE_TRACE_SAMPLE_RATIO"), 64); err == nil {
		c.SampleRatio = v
	}
	fs.StringVar(&c.Endpoint, "otlp-endpoint", c.Endpoint,
		"OpenTelemetry collector OTLP/HTTP base URL, e.g. http://otel-collector:4318; empty: tracing off (env PYRITE_OTLP_ENDPOINT)")
	fs.Float64Var(&c.SampleRatio, "trace-sample-ratio", c.SampleRatio,
		"share of new traces kept, 0 to 1; traces begun upstream follow their parent (env PYRITE_TRACE_SAMPLE_RATIO)")
}

// Validate reports every problem with c, joined, each wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%w: --otlp-endpoint %q is not an http(s) URL", ErrInvalidConfig, c.Endpoint))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("%w: --trace-sample-ratio %v is not between 0 and 1", ErrInvalidConfig, c.SampleRatio))
	}
	return errors.Join(errs...)
}

// Tracing is a program's tracer provider and propagator. Make one with New; call Shutdown
// before exiting.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
	prop     propagation.TextMapPropagator
}

// Option configures New.
type Option func(*options)

type options struct {
	exporter sdktrace.SpanExporter
	sync     bool
}

// WithExporter sends spans to exp instead of the OTLP endpoint (and turns tracing on without
// one), batched like the OTLP exporter.
func WithExporter(exp sdktrace.SpanExporter) Option {
	return func(o *options) { o.exporter = exp }
}

// WithSyncExport exports each span as it ends instead of in batches (tests, debugging):
// never in production, it blocks the Kafka hooks on the exporter.
func WithSyncExport() Option {
	return func(o *options) { o.sync = true }
}

// New returns a Tracing for c. With no endpoint (and no WithExporter) tracing is off: spans
// are not recorded and KafkaOpts returns nothing. An invalid c fails with ErrInvalidConfig.
// New does not connect: an unreachable collector shows as export errors later, never as a
// failure to start.
func New(ctx context.Context, c Config, opts ...Option) (*Tracing, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	t := &Tracing{prop: propagation.TraceContext{}, provider: noop.NewTracerProvider()}
	exp := o.exporter
	if exp == nil && c.Endpoint != "" {
		var err error
		if exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL(c.Endpoint))); err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
	}
	if exp == nil {
		return t, nil
	}
	ratio := c.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	service := c.Service
	if service == "" {
		service = "pyrite"
	}
	spanProc := sdktrace.NewBatchSpanProcessor(exp)
	if o.sync {
		spanProc = sdktrace.NewSimpleSpanProcessor(exp)
	}
	t.sdk = sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(spanProc),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	t.provider = t.sdk
	return t, nil
}

// tracesURL appends the OTLP traces path to a base URL without a path.
func tracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// TracerProvider returns the provider to start spans with (a no-op one when off).
func (t *Tracing) TracerProvider() trace.TracerProvider { return t.provider }

// Tracer returns a tracer of the provider, named for the instrumenting package.
func (t *Tracing) Tracer(name string) trace.Tracer { return t.provider.Tracer(name) }

// Propagator returns the W3C trace-context propagator (traceparent, tracestate).
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.prop }

// KafkaOpts returns the kgo options that trace a client's records (see the package comment):
// pass them to kgo.NewClient after the client's own options. group names the consumer group
// on receive spans ("" for none). Off, it returns nil.
func (t *Tracing) KafkaOpts(group string) []kgo.Opt {
	if !t.Enabled() {
		return nil
	}
	topts := []kotel.TracerOpt{kotel.TracerProvider(t.provider), kotel.TracerPropagator(t.prop)}
	if group != "" {
		topts = append(topts, kotel.ConsumerGroup(group))
	}
	k := kotel.NewKotel(kotel.WithTracer(kotel.NewTracer(topts...)))
	hooks := append([]kgo.Hook{headerParent{prop: t.prop}}, k.Hooks()...)
	return []kgo.Opt{kgo.WithHooks(hooks...)}
}

// Inject writes ctx's span context into rec's traceparent (and tracestate) headers,
// replacing those it has. With no span in ctx it changes nothing.
func (t *Tracing) Inject(ctx context.Context, rec *kgo.Record) {
	t.prop.Inject(ctx, kotel.NewRecordCarrier(rec))
}

// Extract returns ctx with the span context of rec's traceparent header (ctx unchanged when
// the header is absent or malformed).
func (t *Tracing) Extract(ctx context.Context, rec *kgo.Record) context.Context {
	return t.prop.Extract(ctx, kotel.NewRecordCarrier(rec))
}

// Shutdown exports the spans still buffered and stops the exporter; ctx bounds the wait.
// Off, it does nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Close is Shutdown for a program's exit: it flushes the buffered spans within five
// seconds and logs a failure instead of returning it.
func (t *Tracing) Close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("flushing traces", "err", err)
	}
}

// headerParent is a produce hook, run before kotel's: a record produced without a span in
// its Context but with a traceparent header (copied from the record it was made from) gets
// that header's context as parent, so kotel's publish span continues the trace instead of
// starting a new one.
type headerParent struct {
	prop propagation.TextMapPropagator
}

var _ kgo.HookProduceRecordBuffered = headerParent{}

func (h headerParent) OnProduceRecordBuffered(r *kgo.Record) {
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, hd := range r.Headers {
		if hd.Key == "traceparent" {
			r.Context = h.prop.Extract(ctx, kotel.NewRecordCarrier(r))
			return
		}
	}
}
