package control

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/regions"
)

// MovesChannel is the channel control.moves notifies when a move changes
// phase (control migration 00003), with "<id> <phase>" as payload: the
// followers warm a region's next shard when its move nears the switch.
const MovesChannel = "dms_moves"

// warmAheadTimeout bounds one warm-up of a shard's pools ahead of a switch.
const warmAheadTimeout = time.Minute

// pendingSQL lists the regions whose active move nears a switch, with the
// shard that will serve each after it: the target of a move catching up
// or switching, the source of one rolling back.
const pendingSQL = `
	SELECT region_id, CASE phase WHEN 'rolling_back' THEN source ELSE target END
	FROM control.moves WHERE phase IN ('catching_up', 'switching', 'rolling_back')
	ORDER BY id`

// pendingSwitch is a region whose move nears its switch to shard next.
type pendingSwitch struct {
	region regions.Code
	next   string
}

// warmAhead opens and warms, in the background, the connections the next
// shard of every region near a switch will need, so that the first
// requests after the switch do not open them: a target's pool serves no
// request of the region before the switch, so it holds few connections
// or none, and a request that opens one waits for the connection and its
// warm-up (registry.Warm plans the hot statements over every monthly
// partition), which under load outlasted acquire_timeout and answered
// 504 right after a move's switch (BENCHMARKS.md, "Warm before the
// switch"). Each of the next shard's pools is filled up to as many
// connections as the region's current shard holds now (at least
// database.warm_conns, at least one, at most its max_conns); a pool that
// holds them already is left alone, so that repeating this at every poll
// costs a query and keeps the pools filled until the switch. Every router
// logs "pools warmed ahead of the switch" once per switch near, whether it
// filled the pools or found them filled (by database.warm_conns, or by an
// earlier move), so that an operator can tell from each router's log that
// the switch will find its pools warm. It runs in the poll loop, not in
// Refresh, whose context is a request's.
func (f *Follower) warmAhead(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, max(f.poll, 2*time.Second))
	defer cancel()
	rows, _ := f.pool.Query(qctx, pendingSQL)
	pending, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (p pendingSwitch, err error) {
		return p, row.Scan(&p.region, &p.next)
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		if msg := err.Error(); msg != f.pendingErr && ctx.Err() == nil {
			f.pendingErr = msg
			f.log.Warn("control database: cannot read the moves near a switch; their targets are not warmed ahead", slog.String("error", msg))
		}
		return
	}
	f.pendingErr = ""
	for p := range f.warm {
		if !slices.Contains(pending, p) {
			delete(f.warm, p)
		}
	}
	m := f.holder.Map()
	for _, p := range pending {
		next := m.Shard(p.next)
		cur, err := m.For(p.region)
		if next == nil || err != nil || next == cur || f.warming[p.next] {
			continue
		}
		conns := max(int(cur.Stat().TotalConns()), int(m.Config().Database.WarmConns), 1)
		if next.Filled(conns) {
			if !f.warm[p] {
				f.warm[p] = true
				f.log.Info("pools warmed ahead of the switch", slog.String("shard", p.next), slog.String("region", string(p.region)),
					slog.Int("conns", conns), slog.Bool("already", true))
			}
			continue
		}
		f.warming[p.next] = true
		f.log.Info("warming the pools of a region's next shard ahead of its switch",
			slog.String("shard", p.next), slog.String("region", string(p.region)), slog.Int("conns", conns))
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			start := time.Now()
			wctx, cancel := context.WithTimeout(ctx, warmAheadTimeout)
			err := next.WarmPools(wctx, conns)
			cancel()
			at := []any{slog.String("shard", p.next), slog.String("region", string(p.region)),
				slog.Int("conns", conns), slog.Duration("elapsed", time.Since(start))}
			if err != nil {
				f.log.Warn("pools not warmed ahead of the switch", append(at, slog.String("error", err.Error()))...)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			delete(f.warming, p.next)
			if err == nil {
				// Logged under the lock, so that a poll finding the pools
				// filled meanwhile does not log them warm first.
				f.warm[p] = true
				f.log.Info("pools warmed ahead of the switch", at...)
			}
		}()
	}
}
