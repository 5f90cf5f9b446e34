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
}

// Defaults of the national fan-out.
const (
	DefaultLegTimeout  = 2 * time.Second
	DefaultConcurrency = 8
	DefaultCacheTTL    = 3 * time.Second
)

// WithDefaults returns c with its zero LegTimeout and Concurrency replaced by
// their defaults. A zero CacheTTL stays zero: it disables the cache.
func (c Config) WithDefaults() Config {
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
	return errors.Join(errs...)
}
