package move

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/regions"
)

// Phase is where a move is, as control.moves records it.
type Phase string

// The phases of a move. A move runs copying, catching_up, switching and
// stops at switched, the rollback window; rollback then runs rolling_back
// and cleaning_target to rolled_back, complete runs completing to
// completed; abort, before the switch, runs aborting to aborted. The last
// of each is terminal: the move is over and the region may move again.
const (
	Copying        Phase = "copying"
	CatchingUp     Phase = "catching_up"
	Switching      Phase = "switching"
	Switched       Phase = "switched"
	RollingBack    Phase = "rolling_back"
	CleaningTarget Phase = "cleaning_target"
	RolledBack     Phase = "rolled_back"
	Completing     Phase = "completing"
	Completed      Phase = "completed"
	Aborting       Phase = "aborting"
	Aborted        Phase = "aborted"
)

// Terminal reports whether a move in phase p is over.
func (p Phase) Terminal() bool { return p == RolledBack || p == Completed || p == Aborted }

// Record is a move's row in control.moves.
type Record struct {
	ID          int64         `db:"id"`
	Region      regions.Code  `db:"region_id"`
	Source      string        `db:"source"`
	Target      string        `db:"target"`
	Phase       Phase         `db:"phase"`
	MaxFreeze   time.Duration `db:"max_freeze"`
	StartedAt   time.Time     `db:"started_at"`
	UpdatedAt   time.Time     `db:"updated_at"`
	FinishedAt  *time.Time    `db:"finished_at"`
	EpochBefore *int64        `db:"epoch_before"`
	EpochAfter  *int64        `db:"epoch_after"`
	// Freeze is the measured freeze of the last switch; nil before one.
	Freeze *time.Duration `db:"freeze"`
	// Verification is the last verification, as JSON; nil before one.
	Verification json.RawMessage `db:"verification"`
	Error        string          `db:"error"`
}

// recordSQL selects Records, durations in nanoseconds: time.Duration
// scans them from int8.
const recordSQL = `
	SELECT id, region_id, source, target, phase,
	       (extract(epoch FROM max_freeze) * 1e9)::int8 AS max_freeze,
	       started_at, updated_at, finished_at, epoch_before, epoch_after,
	       freeze_ms * 1000000 AS freeze, verification, error
	FROM control.moves`

// ErrActive reports a region that is moving already.
var ErrActive = errors.New("the region is moving already")

// ErrNoMove reports a region with no move in progress.
var ErrNoMove = errors.New("no move of the region is in progress")

// ErrBusy reports that another region command runs for the region.
var ErrBusy = errors.New("another dmsrouter region command is running for the region")

// insertMove records p as a new move in phase copying and returns its id,
// or ErrActive when a move of the region is in progress.
func insertMove(ctx context.Context, q control.Querier, p Plan, maxFreeze time.Duration) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `
		INSERT INTO control.moves (region_id, source, target, phase, max_freeze)
		VALUES ($1, $2, $3, $4, make_interval(secs => $5))
		RETURNING id`, string(p.Region), p.Source.Name, p.Target.Name, Copying, maxFreeze.Seconds()).Scan(&id)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == "moves_one_active" {
		return 0, fmt.Errorf("region %s: %w", p.Region, ErrActive)
	}
	if err != nil {
		return 0, fmt.Errorf("record the move: %w", err)
	}
	return id, nil
}

// activeMove returns region r's move in progress, or ErrNoMove.
func activeMove(ctx context.Context, q control.Querier, r regions.Code) (Record, error) {
	rows, _ := q.Query(ctx, recordSQL+` WHERE region_id = $1 AND phase NOT IN ('completed', 'rolled_back', 'aborted')`, string(r))
	rec, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Record])
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("region %s: %w", r, ErrNoMove)
	}
	if err != nil {
		return Record{}, fmt.Errorf("read the moves of region %s: %w", r, err)
	}
	return rec, nil
}

// moveByID returns move id.
func moveByID(ctx context.Context, q control.Querier, id int64) (Record, error) {
	rows, _ := q.Query(ctx, recordSQL+` WHERE id = $1`, id)
	rec, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Record])
	if err != nil {
		return Record{}, fmt.Errorf("read move %d: %w", id, err)
	}
	return rec, nil
}

// Moves returns the moves control.moves records, of region r only unless
// r is empty: those in progress first, then the others newest first, at
// most limit of those.
func Moves(ctx context.Context, q control.Querier, r regions.Code, limit int) ([]Record, error) {
	rows, _ := q.Query(ctx, `
		WITH m AS (`+recordSQL+` WHERE $1 = '' OR region_id = $1)
		(SELECT * FROM m WHERE phase NOT IN ('completed', 'rolled_back', 'aborted') ORDER BY region_id)
		UNION ALL
		(SELECT * FROM m WHERE phase IN ('completed', 'rolled_back', 'aborted') ORDER BY id DESC LIMIT $2)`, string(r), limit)
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Record])
	if err != nil {
		return nil, fmt.Errorf("read control.moves: %w", err)
	}
	return recs, nil
}

// setPhase records that move id is in phase p, and finished when p is
// terminal.
func setPhase(ctx context.Context, q control.Querier, id int64, p Phase) error {
	_, err := q.Exec(ctx, `UPDATE control.moves SET phase = $2, updated_at = now(), error = '',
		finished_at = CASE WHEN $3 THEN now() END WHERE id = $1`, id, p, p.Terminal())
	if err != nil {
		return fmt.Errorf("record phase %s of move %d: %w", p, id, err)
	}
	return nil
}

// recordError records why move id's last command failed.
func recordError(ctx context.Context, q control.Querier, id int64, cause error) {
	q.Exec(ctx, `UPDATE control.moves SET error = $2, updated_at = now() WHERE id = $1`, id, cause.Error())
}

// recordVerification records v, a Verification as JSON, as move id's
// last verification.
func recordVerification(ctx context.Context, q control.Querier, id int64, v json.RawMessage) error {
	_, err := q.Exec(ctx, `UPDATE control.moves SET verification = $2, updated_at = now() WHERE id = $1`, id, v)
	if err != nil {
		return fmt.Errorf("record the verification of move %d: %w", id, err)
	}
	return nil
}

// recordFreeze records the measured freeze of move id's last switch.
func recordFreeze(ctx context.Context, q control.Querier, id int64, d time.Duration) error {
	_, err := q.Exec(ctx, `UPDATE control.moves SET freeze_ms = $2, updated_at = now() WHERE id = $1`, id, d.Milliseconds())
	if err != nil {
		return fmt.Errorf("record the freeze of move %d: %w", id, err)
	}
	return nil
}

// logStep appends a step of move id to control.move_steps.
func logStep(ctx context.Context, q control.Querier, id int64, p Phase, step, detail string) error {
	_, err := q.Exec(ctx, `INSERT INTO control.move_steps (move_id, phase, step, detail) VALUES ($1, $2, $3, $4)`, id, p, step, detail)
	if err != nil {
		return fmt.Errorf("record step %s of move %d: %w", step, id, err)
	}
	return nil
}

// lockRegion takes the session lock that one region command at a time
// holds on region r in the control database, or returns ErrBusy. It is
// released when conn closes.
func lockRegion(ctx context.Context, conn *pgx.Conn, r regions.Code) error {
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('dmsrouter region'), $1)`, r.Num()).Scan(&ok); err != nil {
		return fmt.Errorf("lock region %s: %w", r, err)
	}
	if !ok {
		return fmt.Errorf("region %s: %w", r, ErrBusy)
	}
	return nil
}
