package national

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the national fan-out: the file's "national" block.
type Config struct {
	// LegTimeout is the deadline of each region's leg; a region that has not
	// answered by then is reported as timed out. 0 means DefaultLegTimeout.
	LegTimeout time.Duration `mapstructure:"leg_timeout"`
	// Concurrency bounds the legs of one fan-out running at once. 0 means
	// DefaultConcurrency.
	Concurrency int `mapstructure:"concurrency"`
	// CacheTTL is how long a complete national answer is served from memory
	// (per request and principal scope); 0 disables the cache.
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
	// RateLimit is how many national requests per second each principal
	// (token subject) may make on average; a national request costs 20
	// regional queries. 0 turns the limit off.
	RateLimit float64 `mapstructure:"rate_limit"`
	// RateBurst is how many national requests a principal may make at
	// once, a dashboard's page load, before RateLimit paces it. 0 means
	// DefaultRateBurst when RateLimit is set.
	RateBurst int `mapstructure:"rate_burst"`
}

// Defaults of the national fan-out.
const (
	DefaultLegTimeout  = 2 * time.Second
	DefaultConcurrency = 8
	DefaultCacheTTL    = 3 * time.Second
	DefaultRateBurst   = 10
	// MaxRateLimit and MaxRateBurst bound rate_limit and rate_burst: above
	// them a limit limits nothing a shard would notice.
	MaxRateLimit = 1000
	MaxRateBurst = 1000
)

// WithDefaults returns c with its zero LegTimeout and Concurrency replaced by
// their defaults, and its zero RateBurst too when RateLimit is set. A zero
// CacheTTL or RateLimit stays zero: it disables the cache or the limit.
func (c Config) WithDefaults() Config {
	if c.RateLimit > 0 && c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.LegTimeout == 0 {
		c.LegTimeout = DefaultLegTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	return c
}

// Validate returns every setting out of range, each error naming its key
// as the configuration file does ("national.leg_timeout").
func (c Config) Validate() error {
	var errs []error
	if c.LegTimeout < 0 || c.LegTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("national.leg_timeout: %s is outside 0..1m (0 means the default, %s)", c.LegTimeout, DefaultLegTimeout))
	}
	if c.Concurrency < 0 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("national.concurrency: %d is outside 0..64 (0 means the default, %d)", c.Concurrency, DefaultConcurrency))
	}
	if c.CacheTTL < 0 || c.CacheTTL > time.Minute {
		errs = append(errs, fmt.Errorf("national.cache_ttl: %s is outside 0..1m (0 disables the cache)", c.CacheTTL))
	}
	if r := c.RateLimit; !(r >= 0 && r <= MaxRateLimit) {
		errs = append(errs, fmt.Errorf("national.rate_limit: %v is outside 0..%d requests per second per principal (0 turns the limit off)", r, MaxRateLimit))
	}
	if b := c.RateBurst; b < 0 || b > MaxRateBurst {
		errs = append(errs, fmt.Errorf("national.rate_burst: %d is outside 0..%d (0 means the default, %d)", b, MaxRateBurst, DefaultRateBurst))
	} else if b > 0 && c.RateLimit == 0 {
		errs = append(errs, fmt.Errorf("national.rate_burst: %d is set but national.rate_limit is 0 (no limit); set both, or neither", b))
	}
	return errors.Join(errs...)
}
