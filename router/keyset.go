package router

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

// observeKeySet reports the identity provider's key set of the verifier in
// force, when it has one: how many usable keys it holds, how long ago it
// was last fetched successfully, and the fetches that failed (the last good
// keys stayed). A reload's new verifier starts its counts afresh.
func (s *Server) observeKeySet() error {
	meter := s.tel.MeterProvider.Meter("github.com/dmshub/dmsrouter/router")
	keys, err := meter.Int64ObservableGauge("dms.auth.jwks.keys",
		metric.WithDescription("Usable keys of the identity provider's key set (auth.jwks_url) last fetched."))
	if err != nil {
		return err
	}
	age, err := meter.Float64ObservableGauge("dms.auth.jwks.age", metric.WithUnit("s"),
		metric.WithDescription("Seconds since the identity provider's key set was last fetched successfully."))
	if err != nil {
		return err
	}
	failures, err := meter.Int64ObservableCounter("dms.auth.jwks.fetch.failures",
		metric.WithDescription("Fetches of the identity provider's key set that failed; the last good keys stayed."))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st, ok := s.verifier.Load().KeySet()
		if !ok {
			return nil
		}
		o.ObserveInt64(keys, int64(st.Keys))
		o.ObserveFloat64(age, s.now().Sub(st.LastGood).Seconds())
		o.ObserveInt64(failures, int64(st.Failures))
		return nil
	}, keys, age, failures)
	return err
}
