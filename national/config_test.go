package national

import (
	"math"
	"strings"
	"testing"
)

// TestRateLimitConfig checks the rate limit's defaults and the errors of
// its bad values, each naming its key.
func TestRateLimitConfig(t *testing.T) {
	if got := (Config{RateLimit: 2}).WithDefaults().RateBurst; got != DefaultRateBurst {
		t.Errorf("WithDefaults(rate_limit 2).RateBurst = %d, want %d", got, DefaultRateBurst)
	}
	if got := (Config{}).WithDefaults().RateBurst; got != 0 {
		t.Errorf("WithDefaults(no limit).RateBurst = %d, want 0", got)
	}
	tests := []struct {
		name string
		cfg  Config
		want string // "" when valid
	}{
		{"off", Config{}, ""},
		{"limit", Config{RateLimit: 0.5}, ""},
		{"limit and burst", Config{RateLimit: 5, RateBurst: 20}, ""},
		{"negative limit", Config{RateLimit: -1}, "national.rate_limit: -1 is outside 0..1000"},
		{"limit too high", Config{RateLimit: 1001}, "national.rate_limit: 1001 is outside"},
		{"limit NaN", Config{RateLimit: math.NaN()}, "national.rate_limit: NaN is outside"},
		{"negative burst", Config{RateLimit: 1, RateBurst: -1}, "national.rate_burst: -1 is outside 0..1000"},
		{"burst too high", Config{RateLimit: 1, RateBurst: 1001}, "national.rate_burst: 1001 is outside"},
		{"burst without limit", Config{RateBurst: 5}, "national.rate_burst: 5 is set but national.rate_limit is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.want)
			}
		})
	}
}
