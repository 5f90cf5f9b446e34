// Package control is the control database: which shard serves which region
// as numbered epochs (the assignments as data rather than as the
// configuration file's regions: block), and which epoch every router has
// applied. Follower keeps a router's shard map on the current epoch,
// woken by LISTEN/NOTIFY and polling as a backstop; WriteEpoch and
// WaitApplied are how a change is made and followed (dmsrouter shards
// apply, and the region move after it); Migrate readies the database.
//
// The shards themselves stay in the file: an epoch names shards, and a
// router applies it only when its file defines them all.
//
// It may import shardmap, migrations and regions, and pgx.
package control

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is the "control" block of the configuration file. With DSN empty
// there is no control database and the file's regions rule alone.
type Config struct {
	// DSN is the control database, used by every router (to read the
	// assignments and record what it applied) and by the commands that
	// migrate and change it.
	DSN string `mapstructure:"dsn"`
	// PollInterval is how often a router reads the current epoch besides
	// being notified (a NOTIFY can be missed) and records that it is live.
	// 0 means DefaultPollInterval.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// RouterID names this router in control.routers; empty means the host
	// name, the process id and a random suffix.
	RouterID string `mapstructure:"router_id"`
}

// DefaultPollInterval is the poll interval when poll_interval is 0.
const DefaultPollInterval = 2 * time.Second

// Enabled reports whether the configuration names a control database.
func (c Config) Enabled() bool { return c.DSN != "" }

// Poll returns PollInterval, or DefaultPollInterval when it is 0.
func (c Config) Poll() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return DefaultPollInterval
}

// Validate checks the block and returns every problem found, each naming
// its key: a DSN that does not parse, a poll interval outside 100ms..10m,
// other keys without a DSN.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DSN == "" {
		if c.PollInterval != 0 || c.RouterID != "" {
			bad("control.dsn", "must be set when the control block has other keys")
		}
		return errors.Join(errs...)
	}
	if _, err := pgx.ParseConfig(c.DSN); err != nil {
		bad("control.dsn", "cannot parse DSN: %v", err)
	}
	if p := c.PollInterval; p != 0 && (p < 100*time.Millisecond || p > 10*time.Minute) {
		bad("control.poll_interval", "%s is outside 100ms..10m (0 means %s)", p, DefaultPollInterval)
	}
	if len(c.RouterID) > 200 {
		bad("control.router_id", "longer than 200 characters")
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}
