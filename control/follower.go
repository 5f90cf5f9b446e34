package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dmshub/dmsrouter/shardmap"
)

// Follower keeps a router's shard map on the control database's current
// epoch: it reads the epoch at start, is woken by NOTIFY on a connection
// of its own, polls every poll interval as a backstop (a NOTIFY is lost
// while that connection is down), applies a new epoch to the Holder (the
// shards stay the file's; only the regions change) and records in
// control.routers what it applied and that it is live. While the control
// database cannot be reached it serves the last epoch it applied, or the
// file's regions if it never reached it, and says so in State and, once
// per change of state, in the log. It also warms the pools of the shard
// a moving region will switch to, ahead of the switch (warmAhead).
type Follower struct {
	holder *shardmap.Holder
	log    *slog.Logger
	poll   time.Duration
	pool   *pgxpool.Pool   // polls and records: one connection
	listen *pgx.ConnConfig // the LISTEN connection's
	wakeup chan struct{}
	// syncing holds a token while a sync runs, so that a Refresh and the
	// poll loop never apply epochs out of order.
	syncing chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	id      string
	host    string
	start   time.Time

	mu      sync.Mutex      // serialises the holder's reloads; guards the fields below
	file    shardmap.Config // the file's shard map; its regions serve until an epoch is applied
	applied Assignments     // the epoch applied; Epoch 0: none yet
	refused int64           // the newest epoch the file's shards could not serve
	lastErr string          // why, recorded in control.routers
	state   State
	// warming holds the shards whose pools warmAhead is filling; warm
	// holds the switches near whose next shard's pools it found or made
	// warm, each logged once; pendingErr is its last error, logged once.
	warming    map[string]bool
	warm       map[pendingSwitch]bool
	pendingErr string
}

// State is the follower's state, as /readyz shows it.
type State struct {
	// Status is "ok", "unreachable" (the last read or record failed), or
	// "empty" (the database holds no epoch: run migrate up).
	Status   string    `json:"status"`
	Epoch    int64     `json:"epoch"` // the epoch served; 0: the file's regions
	Since    time.Time `json:"since"` // when Status last changed
	RouterID string    `json:"router_id"`
}

// Follow starts following the control database of cfg for holder, whose
// map was built from file (the configuration file's shard map). It reads
// the current epoch before it returns, so a router starts on it when the
// database answers; when it does not, Follow logs that the file's regions
// serve meanwhile and keeps trying. It fails only for a DSN that does not
// parse. Stop ends it.
func Follow(ctx context.Context, cfg Config, file shardmap.Config, holder *shardmap.Holder, log *slog.Logger) (*Follower, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("control.dsn: %w", err)
	}
	host, _ := os.Hostname()
	id := cfg.RouterID
	if id == "" {
		id = defaultID(host)
	}
	pc.MaxConns = 1
	pc.ConnConfig.RuntimeParams["application_name"] = "dmsrouter " + id
	listen := pc.ConnConfig.Copy()
	listen.RuntimeParams["application_name"] = "dmsrouter listen " + id
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Follower{
		holder: holder, log: log, poll: cfg.Poll(), pool: pool, listen: listen,
		wakeup: make(chan struct{}, 1), syncing: make(chan struct{}, 1), cancel: cancel, id: id, host: host, start: time.Now(),
		file: file, state: State{RouterID: id}, warming: map[string]bool{},
		warm: map[pendingSwitch]bool{},
	}
	f.sync(ctx)
	f.wg.Add(2)
	go func() { defer f.wg.Done(); f.listenLoop(ctx) }()
	go func() { defer f.wg.Done(); f.pollLoop(ctx) }()
	return f, nil
}

// defaultID returns host-pid-suffix: stable for the process, unique
// across restarts.
func defaultID(host string) string {
	b := make([]byte, 3)
	rand.Read(b)
	if host == "" {
		host = "router"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// ID returns the router's id in control.routers.
func (f *Follower) ID() string { return f.id }

// DB returns the follower's own pool on the control database (one
// connection), for the few reads a router makes there besides following
// (the status page's routers and moves).
func (f *Follower) DB() Querier { return f.pool }

// State returns the follower's state.
func (f *Follower) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// Stop stops following, removes the router's row from control.routers
// (a stopped router is not waited for) and closes the connections.
func (f *Follower) Stop() {
	f.cancel()
	f.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	twice(ctx, func() error {
		_, err := f.pool.Exec(ctx, `DELETE FROM control.routers WHERE router_id = $1`, f.id)
		return err
	})
	f.pool.Close()
}

// Reload replaces the file's shard map (on SIGHUP) and rebuilds the
// holder's map from its shards and the assignments of the epoch applied,
// or the file's regions when none is. A map that does not validate (the
// file dropped a shard the epoch uses) is refused and the current one
// stays. An epoch refused earlier is tried again with the new file.
func (f *Follower) Reload(file shardmap.Config) ([]shardmap.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := file
	if f.applied.Epoch > 0 {
		next.Regions, next.Epoch = f.applied.Regions, f.applied.Epoch
	}
	changes, err := f.holder.Reload(next)
	if err != nil {
		if f.applied.Epoch > 0 {
			err = fmt.Errorf("with the assignments of epoch %d from the control database: %w", f.applied.Epoch, err)
		}
		return nil, err
	}
	f.file = file
	if f.refused != 0 {
		f.refused = 0
		f.wake()
	}
	return changes, nil
}

// wake asks the poll loop for a sync now.
func (f *Follower) wake() {
	select {
	case f.wakeup <- struct{}{}:
	default:
	}
}

func (f *Follower) pollLoop(ctx context.Context) {
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		f.warmAhead(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wakeup:
		}
		f.sync(ctx)
	}
}

// listenLoop keeps a connection listening on Channel and MovesChannel
// and wakes the poll loop on every notification, and after every
// (re)connection, for what was missed meanwhile. It logs a lost
// connection once, and its return.
func (f *Follower) listenLoop(ctx context.Context) {
	lost := false
	for {
		listened, err := f.listenOnce(ctx, func() {
			if lost {
				f.log.Info("control database: listening for assignment changes again")
				lost = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		if listened && !lost {
			lost = true
			f.log.Warn("control database: LISTEN connection lost; polling continues",
				slog.Duration("poll_interval", f.poll), slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.poll):
		}
	}
}

// listenOnce connects, listens and wakes the poll loop until the
// connection fails; listened reports whether it got as far as LISTEN.
func (f *Follower) listenOnce(ctx context.Context, listening func()) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, f.listen)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	for _, ch := range []string{Channel, MovesChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return false, err
		}
	}
	listening()
	for {
		f.wake()
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
	}
}

// sync reads the current epoch, applies it when it is not the one served,
// and records the router's row; it logs a change of state.
func (f *Follower) sync(ctx context.Context) {
	f.syncWithin(ctx, max(f.poll, 2*time.Second))
}

// Refresh reads the current epoch now and applies it, as a poll does,
// within RefreshTimeout: the router calls it (through
// shardmap.Holder.SetRefresher) as soon as a shard's fence says that the
// assignments it serves are stale. It waits for a poll that is running
// instead of overtaking it, so that epochs are applied in order. The
// error is the control database's, or ErrNotSeeded; a router that cannot
// reach the database keeps serving what it applied last.
func (f *Follower) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, RefreshTimeout)
	defer cancel()
	return f.syncWithin(ctx, RefreshTimeout)
}

// RefreshTimeout bounds Refresh.
const RefreshTimeout = time.Second

// syncWithin is sync within timeout; it returns the error that set the
// state, or ctx's when it could not start.
func (f *Follower) syncWithin(ctx context.Context, timeout time.Duration) error {
	select {
	case f.syncing <- struct{}{}:
		defer func() { <-f.syncing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := twice(tctx, func() error {
		cur, err := Current(tctx, f.pool)
		if err == nil {
			f.apply(cur)
			err = f.record(tctx)
		}
		return err
	})
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err() // stopping
	}
	f.setState(err)
	return err
}

// twice runs fn, and once more when it fails and ctx is not done: the
// pool's connection may have been closed by the server since its last use
// (a restart, pg_terminate_backend), and the pool replaces it only after
// a query failed on it.
func twice(ctx context.Context, fn func() error) error {
	err := fn()
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotSeeded) {
		err = fn()
	}
	return err
}

// apply rebuilds the holder's map with cur's assignments, unless it
// serves them already or refused them before.
func (f *Follower) apply(cur Assignments) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur.Epoch == f.applied.Epoch || cur.Epoch == f.refused {
		return
	}
	next := f.file
	next.Regions, next.Epoch = cur.Regions, cur.Epoch
	changes, err := f.holder.Reload(next)
	if err != nil {
		f.refused, f.lastErr = cur.Epoch, err.Error()
		f.log.Error("control database: epoch refused, the previous assignments stay (does the file define every shard the epoch names?)",
			slog.Int64("epoch", cur.Epoch), slog.Int64("serving", f.applied.Epoch), slog.String("error", err.Error()))
		return
	}
	if cur.Epoch < f.applied.Epoch {
		f.log.Warn("control database: the epoch went back (was the database restored?)",
			slog.Int64("from", f.applied.Epoch), slog.Int64("to", cur.Epoch))
	}
	for _, c := range changes {
		f.log.Info("assignments applied", slog.String("change", c.Kind), slog.String("name", c.Name), slog.String("detail", c.Detail))
	}
	f.log.Info("assignments applied", slog.Int64("epoch", cur.Epoch), slog.Int64("from", f.applied.Epoch), slog.Int("changes", len(changes)))
	f.applied, f.refused, f.lastErr = cur, 0, ""
	f.state.Epoch = cur.Epoch
}

// record upserts the router's row: the epoch applied, why the current one
// was refused if it was, and last_seen.
func (f *Follower) record(ctx context.Context) error {
	f.mu.Lock()
	epoch, lastErr := f.applied.Epoch, f.lastErr
	f.mu.Unlock()
	_, err := f.pool.Exec(ctx, `
		INSERT INTO control.routers AS r (router_id, host, pid, started_at, poll_interval, epoch_applied, last_error, last_seen)
		VALUES ($1, $2, $3, $4, $5 * interval '1 millisecond', $6, $7, now())
		ON CONFLICT (router_id) DO UPDATE SET
			host = excluded.host, pid = excluded.pid, started_at = excluded.started_at,
			poll_interval = excluded.poll_interval, epoch_applied = excluded.epoch_applied,
			last_error = excluded.last_error, last_seen = now()`,
		f.id, f.host, os.Getpid(), f.start, f.poll.Milliseconds(), epoch, lastErr)
	if err != nil {
		return fmt.Errorf("record the router in control.routers: %w", err)
	}
	return nil
}

// setState sets the state from the last sync's error and logs a change.
func (f *Follower) setState(err error) {
	state := "ok"
	switch {
	case errors.Is(err, ErrNotSeeded):
		state = "empty"
	case err != nil:
		state = "unreachable"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev := f.state.Status
	if state == prev {
		return
	}
	f.state.Status, f.state.Since = state, time.Now()
	serving := "the file's regions"
	if f.applied.Epoch > 0 {
		serving = fmt.Sprintf("epoch %d", f.applied.Epoch)
	}
	at := []any{slog.String("router_id", f.id), slog.Int64("epoch", f.applied.Epoch)}
	if err != nil {
		at = append(at, slog.String("error", err.Error()))
	}
	switch {
	case state == "ok" && prev == "":
		f.log.Info("control database: following the assignments", at...)
	case state == "ok":
		f.log.Info("control database: reachable again", at...)
	case state == "empty":
		f.log.Error("control database: no epoch yet (run dmsrouter migrate up): serving "+serving, at...)
	case prev == "":
		f.log.Error("CONTROL DATABASE UNREACHABLE AT START: serving "+serving+" until it answers; retrying every "+f.poll.String(), at...)
	default:
		f.log.Error("control database: unreachable: serving "+serving+" until it answers", at...)
	}
}
