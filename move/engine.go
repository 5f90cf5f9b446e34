package move

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Defaults of Options.
const (
	DefaultMaxFreeze  = 5 * time.Second
	DefaultMaxLag     = 1 << 20 // bytes
	DefaultRouterWait = 10 * time.Second
	DefaultPoll       = time.Second
)

// Options tune the region commands. Zero values mean the defaults.
type Options struct {
	// MaxFreeze bounds a switch's freeze, from freezing the region to the
	// new epoch written; a switch that would take longer is undone.
	MaxFreeze time.Duration
	// MaxLag is the replication lag, in WAL bytes, under which a move
	// stops catching up and verifies.
	MaxLag int64
	// RouterWait bounds the wait for every live router to apply a new
	// epoch.
	RouterWait time.Duration
	// Poll is how often progress and lag are read and shown.
	Poll time.Duration
	// Out receives the commands' progress; nil discards it.
	Out io.Writer
	// Terminal says that Out is a terminal, on which progress bars are
	// redrawn in place.
	Terminal bool

	// step, when set (by the tests), is called at every named step of a
	// command; its error fails the command there, as a failure of that
	// step would. An error wrapping errKilled stands for the process
	// dying there: nothing is undone.
	step func(name string) error
}

// errKilled, returned by a test's step hook, stands for the process being
// killed at that step: a switch that fails with it undoes nothing, as a
// killed process would not, and leaves it to the next run.
var errKilled = errors.New("killed")

// Mover runs the region commands (move, rollback, complete, abort,
// status) over the shards of one configuration and its control database.
type Mover struct {
	shards  shardmap.Config
	control string
	o       Options
}

// New returns a Mover for the shards of cfg (the configuration file's)
// and the control database at controlDSN.
func New(cfg shardmap.Config, controlDSN string, o Options) *Mover {
	if o.MaxFreeze <= 0 {
		o.MaxFreeze = DefaultMaxFreeze
	}
	if o.MaxLag <= 0 {
		o.MaxLag = DefaultMaxLag
	}
	if o.RouterWait <= 0 {
		o.RouterWait = DefaultRouterWait
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return &Mover{shards: cfg, control: controlDSN, o: o}
}

// Prepared is a move about to run: its plan and either the preflight's
// checks (a new move) or the recorded move it continues.
type Prepared struct {
	Plan   Plan
	Checks []Check
	// Resume is the recorded move that Move continues; nil for a new one.
	Resume *Record
	// Epoch is the control database's current epoch.
	Epoch int64
}

// OK reports whether the move may run: it continues a recorded move, or
// every preflight check passed.
func (p Prepared) OK() bool { return p.Resume != nil || len(Failed(p.Checks)) == 0 }

// Prepare plans moving region r to shard to, creating nothing: the
// source is the shard the control database's current epoch assigns r.
// When a move of r to to is in progress it is the move to continue (no
// checks run); a move of r to another shard is an error wrapping
// ErrActive. Otherwise the checks are the preflight's (Preflight) and the
// file's: both shards in the file, and different.
func (m *Mover) Prepare(ctx context.Context, r regions.Code, to string) (Prepared, error) {
	ctl, err := pgx.Connect(ctx, m.control)
	if err != nil {
		return Prepared{}, fmt.Errorf("control database: %w", err)
	}
	defer ctl.Close(context.Background())
	cur, err := control.Current(ctx, ctl)
	if err != nil {
		return Prepared{}, err
	}
	p := Prepared{Plan: Plan{Region: r}, Epoch: cur.Epoch}
	rec, err := activeMove(ctx, ctl, r)
	switch {
	case err == nil && rec.Target != to:
		return p, fmt.Errorf("%w: move %d of region %s to %s is %s; complete, roll back or abort it first", ErrActive, rec.ID, r, rec.Target, rec.Phase)
	case err == nil:
		p.Resume = &rec
		p.Plan, err = m.plan(rec)
		return p, err
	case !errors.Is(err, ErrNoMove):
		return p, err
	}
	from := cur.Regions[string(r)]
	p.Checks = append(p.Checks, Check{Name: "no move of the region in progress", OK: true})
	src, okSrc := m.shards.Shard(from)
	dst, okDst := m.shards.Shard(to)
	p.Plan.Source, p.Plan.Target = src, dst
	p.Checks = append(p.Checks,
		fileCheck("source shard", from, okSrc, fmt.Sprintf("epoch %d assigns region %s to %s", cur.Epoch, r, from),
			"add shard "+from+" to the shards of the configuration file"),
		fileCheck("target shard", to, okDst, "in the configuration file",
			"add shard "+to+" to the shards of the configuration file, migrate it (dmsrouter migrate up), and run again"))
	if from == to {
		p.Checks = append(p.Checks, Check{Name: "target differs from source", Detail: fmt.Sprintf("region %s is on %s already", r, to),
			Fix: "name another shard with --to"})
	}
	if len(Failed(p.Checks)) == 0 {
		p.Checks = append(p.Checks, Preflight(ctx, p.Plan)...)
	}
	return p, nil
}

func fileCheck(name, shard string, ok bool, detail, fix string) Check {
	c := Check{Name: name + " " + shard, OK: ok, Detail: detail}
	if !ok {
		c.Detail, c.Fix = "not in the configuration file", fix
	}
	return c
}

// plan returns the plan of recorded move rec, or an error when the file
// lacks one of its shards.
func (m *Mover) plan(rec Record) (Plan, error) {
	src, ok := m.shards.Shard(rec.Source)
	if !ok {
		return Plan{}, fmt.Errorf("move %d: source shard %s is not in the configuration file", rec.ID, rec.Source)
	}
	dst, ok := m.shards.Shard(rec.Target)
	if !ok {
		return Plan{}, fmt.Errorf("move %d: target shard %s is not in the configuration file", rec.ID, rec.Target)
	}
	return Plan{ID: rec.ID, Region: rec.Region, Source: src, Target: dst}, nil
}

// Active returns region r's move in progress, or an error wrapping
// ErrNoMove.
func (m *Mover) Active(ctx context.Context, r regions.Code) (Record, error) {
	ctl, err := pgx.Connect(ctx, m.control)
	if err != nil {
		return Record{}, fmt.Errorf("control database: %w", err)
	}
	defer ctl.Close(context.Background())
	return activeMove(ctx, ctl, r)
}

// run is one region command at work: its connections, its move and its
// plan.
type run struct {
	m        *Mover
	ctl      *pgx.Conn // holds the region's command lock
	src, dst *pgx.Conn
	rec      Record
	plan     Plan
	names    Names
}

// open connects to the control database and takes region r's command
// lock (ErrBusy when another command holds it).
func (m *Mover) open(ctx context.Context, r regions.Code) (*run, error) {
	ctl, err := pgx.Connect(ctx, m.control)
	if err != nil {
		return nil, fmt.Errorf("control database: %w", err)
	}
	if err := lockRegion(ctx, ctl, r); err != nil {
		ctl.Close(context.Background())
		return nil, err
	}
	return &run{m: m, ctl: ctl}, nil
}

// attach makes rec the run's move and connects to its two shards.
func (x *run) attach(ctx context.Context, rec Record) error {
	p, err := x.m.plan(rec)
	if err != nil {
		return err
	}
	x.rec, x.plan, x.names = rec, p, p.Names()
	if x.src, err = Connect(ctx, p.Source.AdminDSN()); err != nil {
		return fmt.Errorf("source %s: %w", p.Source.Name, err)
	}
	if x.dst, err = Connect(ctx, p.Target.AdminDSN()); err != nil {
		return fmt.Errorf("target %s: %w", p.Target.Name, err)
	}
	return nil
}

func (x *run) close() {
	for _, c := range []*pgx.Conn{x.src, x.dst, x.ctl} {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// active opens a run on region r's move in progress.
func (m *Mover) active(ctx context.Context, r regions.Code) (*run, error) {
	x, err := m.open(ctx, r)
	if err != nil {
		return nil, err
	}
	rec, err := activeMove(ctx, x.ctl, r)
	if err == nil {
		err = x.attach(ctx, rec)
	}
	if err != nil {
		x.close()
		return nil, err
	}
	return x, nil
}

func (x *run) printf(format string, args ...any) {
	fmt.Fprintf(x.m.o.Out, format+"\n", args...)
}

// step runs the test hook at the step called name and logs it.
func (x *run) step(ctx context.Context, name string) error {
	if err := logStep(ctx, x.ctl, x.rec.ID, x.rec.Phase, name, ""); err != nil {
		return err
	}
	if x.m.o.step != nil {
		return x.m.o.step(name)
	}
	return nil
}

// advance records that the move is in phase p.
func (x *run) advance(ctx context.Context, p Phase) error {
	if x.rec.Phase == p {
		return nil
	}
	if err := setPhase(ctx, x.ctl, x.rec.ID, p); err != nil {
		return err
	}
	x.rec.Phase = p
	return logStep(ctx, x.ctl, x.rec.ID, p, "phase", "")
}

// recordVerification records v as the move's last verification, which
// the next frozen verification starts from.
func (x *run) recordVerification(ctx context.Context, v Verification) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	x.rec.Verification = b
	return recordVerification(ctx, x.ctl, x.rec.ID, b)
}

// fail records err as the move's last error and returns it.
func (x *run) fail(ctx context.Context, err error) error {
	if err != nil {
		recordError(context.WithoutCancel(ctx), x.ctl, x.rec.ID, err)
	}
	return err
}

// Move runs the move p (Prepare's): a new one from preflight on, or the
// recorded one from its phase: copying, catching_up, switching, until
// switched. It returns the move as recorded at the end. A failed switch
// is undone (the region stays on the source) and the move goes back to
// catching_up; running Move again retries it. A move that does not pass
// its preflight checks is refused with nothing created.
func (m *Mover) Move(ctx context.Context, p Prepared) (Record, error) {
	x, err := m.open(ctx, p.Plan.Region)
	if err != nil {
		return Record{}, err
	}
	defer x.close()
	r := p.Plan.Region
	rec, err := activeMove(ctx, x.ctl, r)
	switch {
	case errors.Is(err, ErrNoMove) && p.Resume != nil:
		return Record{}, fmt.Errorf("move %d of region %s is over (another command ended it): run the move again to start a new one", p.Resume.ID, r)
	case errors.Is(err, ErrNoMove):
		if failed := Failed(p.Checks); len(failed) > 0 {
			return Record{}, fmt.Errorf("preflight: %d check(s) failed (%s first); nothing was created", len(failed), failed[0].Name)
		}
		id, err := insertMove(ctx, x.ctl, p.Plan, m.o.MaxFreeze)
		if err != nil {
			return Record{}, err
		}
		if rec, err = activeMove(ctx, x.ctl, r); err != nil {
			return Record{}, err
		}
		x.printf("move %d: region %s (%s) %s -> %s", id, r, r.Name(), rec.Source, rec.Target)
	case err != nil:
		return Record{}, err
	case rec.Target != p.Plan.Target.Name:
		return rec, fmt.Errorf("%w: move %d of region %s to %s is %s", ErrActive, rec.ID, r, rec.Target, rec.Phase)
	default:
		x.printf("move %d: region %s (%s) %s -> %s, continuing from phase %s", rec.ID, r, r.Name(), rec.Source, rec.Target, rec.Phase)
	}
	if err := x.attach(ctx, rec); err != nil {
		return rec, err
	}
	for {
		switch x.rec.Phase {
		case Copying:
			err = x.copy(ctx)
		case CatchingUp:
			if err = x.catchUp(ctx, x.forward()); err == nil {
				err = x.advance(ctx, Switching)
			}
		case Switching:
			err = x.switchOver(ctx, x.forward())
		case Switched:
			if err = x.openReverse(ctx); err == nil {
				err = x.verifyAfterSwitch(ctx)
			}
			if err == nil {
				x.printf("switched: region %s is served by %s; its writes there flow back to %s until one of", r, x.rec.Target, x.rec.Source)
				x.printf("  dmsrouter region complete --region %s   deletes the region's rows from %s and ends the move", r, x.rec.Source)
				x.printf("  dmsrouter region rollback --region %s   switches the region back to %s, losing no write", r, x.rec.Source)
				return x.reload(ctx)
			}
		default:
			return x.rec, fmt.Errorf("move %d of region %s is %s: `region move` continues only a move before or at its switch", x.rec.ID, r, x.rec.Phase)
		}
		if err != nil {
			return x.rec, x.fail(ctx, fmt.Errorf("move %d, phase %s: %w", x.rec.ID, x.rec.Phase, err))
		}
	}
}

// reload reads the run's move again, as recorded.
func (x *run) reload(ctx context.Context) (Record, error) {
	return moveByID(ctx, x.ctl, x.rec.ID)
}

// copy creates the move's replication objects and waits until the
// subscription has copied every table, showing the progress.
func (x *run) copy(ctx context.Context) error {
	r, n := x.plan.Region, x.names
	steps := []struct {
		what string
		do   func() error
	}{
		{"target holds the region, unowned", func() error { return holdUnowned(ctx, x.dst, r) }},
		{"target has the source's presence partitions", func() error { return copyPartitions(ctx, x.src, x.dst) }},
		{"publication " + n.Publication + " on the source", func() error { return createPublication(ctx, x.src, n.Publication, r) }},
		// The reverse stream's publication exists long before its slot
		// (created in the freeze): a publication created after its slot
		// fails the decoding of every change that precedes it.
		{"publication " + n.ReversePublication + " on the target", func() error { return createPublication(ctx, x.dst, n.ReversePublication, r) }},
		{"replication slot " + n.Slot + " on the source", func() error { return createSlot(ctx, x.src, n.Slot) }},
		{"subscription " + n.Subscription + " on the target", func() error {
			return createSubscription(ctx, x.dst, n.Subscription, x.plan.Source.AdminDSN(), n.Publication, n.Slot, true)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return err
		}
		x.printf("copying: %s", s.what)
	}
	if err := x.step(ctx, "copy"); err != nil {
		return err
	}
	totals, err := RegionRows(ctx, x.src, r, nil)
	if err != nil {
		return err
	}
	pr := NewProgress(x.m.o.Out, x.m.o.Terminal)
	for {
		tp, err := CopyProgress(ctx, x.src, x.dst, x.plan, totals)
		if err != nil {
			return err
		}
		pr.Update(tp)
		if AllReady(tp) {
			break
		}
		if err := sleep(ctx, x.m.o.Poll); err != nil {
			return err
		}
	}
	pr.Done()
	// The copied rows are new to the target's planner and visibility
	// map: analyze them before the target serves the region (first
	// queries there would plan without statistics) and vacuum them so
	// that the verification's counts read the key indexes alone. The
	// empty month partitions ahead stay never counted (VacuumAnalyze).
	start := time.Now()
	names := make([]string, len(Tables))
	for i, t := range Tables {
		names[i] = t.Name
	}
	if err := VacuumAnalyze(ctx, x.dst, names); err != nil {
		return fmt.Errorf("on the target: %w", err)
	}
	x.printf("copying: vacuumed and analyzed the copied tables on the target in %s", time.Since(start).Round(time.Millisecond))
	return x.advance(ctx, CatchingUp)
}

// direction is one switch: the forward one (source to target) or a
// rollback's (target to source).
type direction struct {
	from, to         *pgx.Conn
	fromName, toName string
	// sub is the subscription on to that streams the region from from.
	sub, slot string
	// reverseSlot, for the forward switch, is the slot the reverse
	// stream will read on to, created in the freeze.
	reverseSlot string
	// during, done and undone are the phases of the switch running, after
	// it, and after it was undone.
	during, done, undone Phase
}

func (x *run) forward() direction {
	n := x.names
	return direction{from: x.src, to: x.dst, fromName: x.rec.Source, toName: x.rec.Target,
		sub: n.Subscription, slot: n.Slot, reverseSlot: n.ReverseSlot,
		during: Switching, done: Switched, undone: CatchingUp}
}

func (x *run) backward() direction {
	n := x.names
	return direction{from: x.dst, to: x.src, fromName: x.rec.Target, toName: x.rec.Source,
		sub: n.ReverseSubscription, slot: n.ReverseSlot,
		during: RollingBack, done: CleaningTarget, undone: Switched}
}

// markWait bounds the wait for a mark outside the freeze.
const markWait = time.Minute

// catchUp waits until d's stream lags less than MaxLag, then verifies the
// region online and records the verification. Ranges that still differ are
// not a failure: writes keep changing some while the region takes them,
// and the frozen verification checks them again.
func (x *run) catchUp(ctx context.Context, d direction) error {
	if err := x.step(ctx, "catch_up"); err != nil {
		return err
	}
	r := x.plan.Region
	for {
		lag, err := ReplicationLag(ctx, d.from, d.slot)
		if err != nil {
			return err
		}
		x.printf("catching up: %s -> %s lags %d bytes, %.1f s", d.fromName, d.toName, lag.Bytes, lag.Seconds)
		if lag.Bytes <= x.m.o.MaxLag {
			break
		}
		if err := sleep(ctx, x.m.o.Poll); err != nil {
			return err
		}
	}
	v, err := Verify(ctx, d.from, d.to, r, VerifyOptions{Settle: func(ctx context.Context) error {
		return settle(ctx, d.from, d.to, r, markWait)
	}})
	if err != nil {
		return err
	}
	if err := x.recordVerification(ctx, v); err != nil {
		return err
	}
	x.printf("verified: %s", summary(v))
	if !v.OK() {
		// Ranges that writes keep changing (the newest ids, the rollups)
		// differ at every look while the region takes writes; the frozen
		// verification checks them again with the writes stopped.
		x.printf("  still differing under writes, checked again in the freeze: %s", v.Differing[0])
	}
	return nil
}

// summary is one line about verification v.
func summary(v Verification) string {
	state := "equal"
	if !v.OK() {
		state = fmt.Sprintf("%d range(s) DIFFER", len(v.Differing))
	}
	kind := "online"
	if v.Frozen {
		kind = "frozen"
	}
	return fmt.Sprintf("%s, %d tables, %d rows, %s in %d round(s), %s", state, len(v.Tables), v.Rows(), kind, v.Rounds, v.Elapsed.Round(time.Millisecond))
}

// undo puts the fence of a switch in direction d back as it was before
// the freeze: to does not serve the region, from serves it unfrozen, the
// reverse slot is gone and the stream runs. to is released first, so that
// the two are never both writable.
func (x *run) undo(ctx context.Context, d direction) error {
	if err := x.undoFence(ctx, d); err != nil {
		return err
	}
	if d.reverseSlot != "" {
		if err := dropSlot(ctx, d.to, d.reverseSlot); err != nil {
			return err
		}
	}
	return setSubscription(ctx, d.to, d.sub, true)
}

// undoFence makes d.from serve the region again, unfrozen, after d.to no
// longer serves it (if it holds it at all).
func (x *run) undoFence(ctx context.Context, d direction) error {
	r := x.plan.Region
	if _, err := d.to.Exec(ctx, `UPDATE dms.shard_regions SET owned = false, frozen = false WHERE region_id = $1`, r.Num()); err != nil {
		return fmt.Errorf("release region %s on %s: %w", r, d.toName, err)
	}
	if err := setOwned(ctx, d.from, r, true); err != nil {
		return fmt.Errorf("%s: %w", d.fromName, err)
	}
	return nil
}

// undoWithin bounds an undo after a failed switch.
const undoWithin = 30 * time.Second

// switchOver freezes the region on d.from, switches it to d.to within
// MaxFreeze and waits for the routers. A switch whose epoch was written
// already (by a run that died after it) only records its phase; one that
// died inside the freeze is undone before it is tried again. A failure
// before the epoch is written undoes the fence and records phase
// d.undone.
func (x *run) switchOver(ctx context.Context, d direction) error {
	r := x.plan.Region
	cur, err := control.Current(ctx, x.ctl)
	if err != nil {
		return err
	}
	switch cur.Regions[string(r)] {
	case d.toName:
		x.printf("epoch %d assigns region %s to %s already: the switch was done", cur.Epoch, r, d.toName)
		return x.advance(ctx, d.done)
	case d.fromName:
	default:
		return fmt.Errorf("epoch %d assigns region %s to %s, neither side of the move: assign it back with dmsrouter shards apply, or abort the move", cur.Epoch, r, cur.Regions[string(r)])
	}
	if err := x.undo(ctx, d); err != nil {
		return fmt.Errorf("undo an earlier freeze: %w", err)
	}
	if err := x.advance(ctx, d.during); err != nil {
		return err
	}
	frozen, epoch, err := x.freezeAndSwitch(ctx, d, cur)
	if err != nil {
		if errors.Is(err, errKilled) {
			return err
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoWithin)
		defer cancel()
		if uerr := x.undo(uctx, d); uerr != nil {
			return fmt.Errorf("%w; undoing it failed too: %v (run the command again: it undoes the freeze first)", err, uerr)
		}
		if perr := x.advance(uctx, d.undone); perr != nil {
			return errors.Join(err, perr)
		}
		return fmt.Errorf("the switch failed and was undone, region %s stays on %s: %w", r, d.fromName, err)
	}
	x.waitRouters(ctx, epoch, frozen)
	return nil
}

// freezeAndSwitch is the switch itself, within MaxFreeze from freezing the region
// on d.from: it waits until d.to applied everything, stops the stream,
// creates the reverse slot, sets d.to's sequences past d.from's,
// verifies, moves the fence and writes the new epoch with the move's
// phase in one transaction. It returns when the region was frozen and
// the new epoch.
func (x *run) freezeAndSwitch(ctx context.Context, d direction, cur control.Assignments) (time.Time, int64, error) {
	r := x.plan.Region
	start := time.Now()
	deadline := start.Add(x.m.o.MaxFreeze)
	if err := freeze(ctx, d.from, r, x.m.o.MaxFreeze); err != nil {
		return start, 0, err
	}
	frozen := time.Now()
	steps := []struct {
		name string
		do   func() error
	}{
		{"frozen", func() error { return nil }},
		{"mark", func() error { return settle(ctx, d.from, d.to, r, time.Until(deadline)) }},
		{"stream_stopped", func() error { return setSubscription(ctx, d.to, d.sub, false) }},
		{"reverse_slot", func() error {
			if d.reverseSlot == "" {
				return nil
			}
			return createSlot(ctx, d.to, d.reverseSlot)
		}},
		{"sequences", func() error { return sequencesPast(ctx, d.from, d.to, r) }},
		{"verified", func() error {
			var last Verification
			if x.rec.Verification != nil {
				if err := json.Unmarshal(x.rec.Verification, &last); err != nil {
					return err
				}
			}
			v, err := VerifyFrozen(ctx, d.from, d.to, r, last)
			if err != nil {
				return err
			}
			if err := x.recordVerification(ctx, v); err != nil {
				return err
			}
			if !v.OK() {
				return fmt.Errorf("frozen verification: %d range(s) differ, first %s", len(v.Differing), v.Differing[0])
			}
			return nil
		}},
		// The target takes the region before the source gives it up, so
		// that it is served by a shard at every moment: while both own
		// it the source is still frozen (only the target could write),
		// and no router reaches the target before the epoch names it.
		{"owned", func() error {
			if left := time.Until(deadline); left <= 0 {
				return fmt.Errorf("the freeze took longer than --max-freeze %s", x.m.o.MaxFreeze)
			}
			return setOwned(ctx, d.to, r, true)
		}},
		{"released", func() error { return setOwned(ctx, d.from, r, false) }},
	}
	var took []string
	for _, s := range steps {
		at := time.Now()
		if err := s.do(); err != nil {
			return frozen, 0, fmt.Errorf("freeze, step %s: %w", s.name, err)
		}
		took = append(took, fmt.Sprintf("%s %s", s.name, time.Since(at).Round(time.Millisecond)))
		if err := x.step(ctx, s.name); err != nil {
			return frozen, 0, fmt.Errorf("freeze, step %s: %w", s.name, err)
		}
	}
	next := maps.Clone(cur.Regions)
	next[string(r)] = d.toName
	var epoch int64
	err := pgx.BeginFunc(ctx, x.ctl, func(tx pgx.Tx) error {
		var err error
		note := fmt.Sprintf("move %d: region %s %s -> %s", x.rec.ID, r, d.fromName, d.toName)
		if epoch, err = control.WriteEpoch(ctx, tx, cur.Epoch, next, note); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE control.moves SET phase = $2, updated_at = now(), error = '', epoch_before = $3, epoch_after = $4 WHERE id = $1`,
			x.rec.ID, d.done, cur.Epoch, epoch)
		return err
	})
	if err != nil {
		return frozen, 0, fmt.Errorf("write the epoch: %w", err)
	}
	x.rec.Phase = d.done
	x.printf("switched in the freeze: region %s frozen on %s (waited %s for its writes), applied on %s, verified, owned by %s; epoch %d written %s after the freeze",
		r, d.fromName, frozen.Sub(start).Round(time.Millisecond), d.toName, d.toName, epoch, time.Since(frozen).Round(time.Millisecond))
	x.printf("  freeze steps: %s", strings.Join(took, ", "))
	return frozen, epoch, nil
}

// waitRouters waits, at most RouterWait, until every live router applied
// epoch, prints each as it does and those that did not, and records and
// prints the measured freeze: from frozen to every live router on the
// new epoch (or to the end of the wait).
func (x *run) waitRouters(ctx context.Context, epoch int64, frozen time.Time) {
	wctx, cancel := context.WithTimeout(ctx, x.m.o.RouterWait)
	defer cancel()
	applied := 0
	behind, err := control.WaitApplied(wctx, x.ctl, epoch, 10*time.Millisecond, func(rt control.Router) {
		applied++
		x.printf("  router %s (%s, pid %d) applied epoch %d", rt.ID, rt.Host, rt.PID, rt.EpochApplied)
	})
	took := time.Since(frozen)
	for _, rt := range behind {
		line := fmt.Sprintf("  router %s (%s, pid %d) still serves epoch %d after %s", rt.ID, rt.Host, rt.PID, rt.EpochApplied, x.m.o.RouterWait)
		if rt.LastError != "" {
			line += ": " + rt.LastError
		}
		x.printf("%s", line)
	}
	if err != nil && len(behind) == 0 {
		x.printf("  could not read the routers: %v", err)
	}
	recordFreeze(context.WithoutCancel(ctx), x.ctl, x.rec.ID, took)
	switch {
	case len(behind) > 0:
		x.printf("freeze: %s and counting: %d live router(s) have not applied epoch %d; the fence refuses what they send to the old shard",
			took.Round(time.Millisecond), len(behind), epoch)
	case applied == 0:
		x.printf("freeze: %s (no live router is recorded: each applies epoch %d when it starts)", took.Round(time.Millisecond), epoch)
	default:
		x.printf("freeze: %s (region frozen -> every live router, %d, on epoch %d)", took.Round(time.Millisecond), applied, epoch)
	}
}

// verifyAfterSwitch verifies the whole region once more, outside the
// freeze, while the target serves it and the reverse stream keeps the
// source current: the frozen verification checks only the ranges writes
// could have changed since the online one (VerifyFrozen), this one all of
// them, re-checking the ranges the target's new writes keep changing. A
// difference that does not converge fails nothing (the switch is done and
// the region is served) but is recorded, shown by status and printed with
// the advice to roll back, which loses no write.
func (x *run) verifyAfterSwitch(ctx context.Context) error {
	r := x.plan.Region
	x.printf("verifying after the switch (region %s is served by %s meanwhile)", r, x.rec.Target)
	v, err := Verify(ctx, x.dst, x.src, r, VerifyOptions{Settle: func(ctx context.Context) error {
		return settle(ctx, x.dst, x.src, r, markWait)
	}})
	if err != nil {
		return err
	}
	if err := x.recordVerification(ctx, v); err != nil {
		return err
	}
	x.printf("verified after the switch: %s", summary(v))
	var busy, other []Range
	for _, d := range v.Differing {
		t, _ := tableNamed(d.Table)
		if _, end := t.KeyRange(r); t.ByRegionID() || d.Hi == end {
			busy = append(busy, d)
		} else {
			other = append(other, d)
		}
	}
	if len(busy) > 0 {
		// The newest keys of a table and the rollups change with every
		// write the target takes, so a look at both sides rarely finds
		// them equal; the frozen verification compared them with
		// nothing moving.
		x.printf("  %d range(s) at the newest keys or of the rollups still change under the region's writes, first %s", len(busy), busy[0])
	}
	if len(other) > 0 {
		x.printf("  WARNING: %d older range(s) of %s differ from %s, first %s: roll back with dmsrouter region rollback --region %s (it loses no write) and find out why before moving the region again",
			len(other), x.rec.Source, x.rec.Target, other[0], r)
	}
	return nil
}

// openReverse ends the forward stream and starts the reverse one, which
// carries the target's writes of the region back to the source during the
// rollback window.
func (x *run) openReverse(ctx context.Context) error {
	n, r := x.names, x.plan.Region
	if err := dropSubscription(ctx, x.dst, x.src, n.Subscription, n.Slot); err != nil {
		return err
	}
	if err := dropSlot(ctx, x.src, n.Slot); err != nil {
		return err
	}
	if err := dropPublication(ctx, x.src, n.Publication); err != nil {
		return err
	}
	if err := createPublication(ctx, x.dst, n.ReversePublication, r); err != nil {
		return err
	}
	return createSubscription(ctx, x.src, n.ReverseSubscription, x.plan.Target.AdminDSN(), n.ReversePublication, n.ReverseSlot, false)
}

// dropObjects drops every replication object of the move on both sides.
func (x *run) dropObjects(ctx context.Context) error {
	n := x.names
	for _, f := range []func() error{
		func() error { return dropSubscription(ctx, x.dst, x.src, n.Subscription, n.Slot) },
		func() error { return dropSubscription(ctx, x.src, x.dst, n.ReverseSubscription, n.ReverseSlot) },
		func() error { return dropSlot(ctx, x.src, n.Slot) },
		func() error { return dropSlot(ctx, x.dst, n.ReverseSlot) },
		func() error { return dropPublication(ctx, x.src, n.Publication) },
		func() error { return dropPublication(ctx, x.dst, n.ReversePublication) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	x.printf("dropped the move's publications, slots and subscriptions (%s*)", n.Publication)
	return nil
}

// Rollback switches region r back to the source of its switched move,
// with the same freeze as the move's switch (the reverse stream has
// carried every write made on the target), then drops the move's
// replication objects and deletes the region's rows from the target. It
// continues a rollback interrupted anywhere.
func (m *Mover) Rollback(ctx context.Context, r regions.Code) (Record, []Removed, error) {
	x, err := m.active(ctx, r)
	if err != nil {
		return Record{}, nil, err
	}
	defer x.close()
	for {
		switch x.rec.Phase {
		case Switched:
			if err = x.openReverse(ctx); err == nil {
				err = x.catchUp(ctx, x.backward())
			}
			if err == nil {
				err = x.switchOver(ctx, x.backward())
			}
		case RollingBack:
			err = x.switchOver(ctx, x.backward())
		case CleaningTarget:
			removed, err := x.clean(ctx, x.dst, x.rec.Target, RolledBack)
			if err != nil {
				return x.rec, removed, x.fail(ctx, err)
			}
			rec, err := x.reload(ctx)
			return rec, removed, err
		default:
			return x.rec, nil, fmt.Errorf("move %d of region %s is %s: only a switched move rolls back (before the switch, abort it)", x.rec.ID, r, x.rec.Phase)
		}
		if err != nil {
			return x.rec, nil, x.fail(ctx, fmt.Errorf("rollback of move %d, phase %s: %w", x.rec.ID, x.rec.Phase, err))
		}
	}
}

// clean drops the move's replication objects, deletes the region's rows
// from conn's database (shard name), which no longer serves it, and
// records phase done.
func (x *run) clean(ctx context.Context, conn *pgx.Conn, name string, done Phase) ([]Removed, error) {
	if err := x.dropObjects(ctx); err != nil {
		return nil, err
	}
	if err := x.step(ctx, "delete"); err != nil {
		return nil, err
	}
	removed, err := deleteRegion(ctx, conn, x.plan.Region)
	if err != nil {
		return removed, err
	}
	var rows int64
	for _, rm := range removed {
		rows += rm.Rows
	}
	x.printf("deleted %d rows of region %s from %s", rows, x.plan.Region, name)
	return removed, x.advance(ctx, done)
}

// Complete ends region r's switched move: it drops the move's replication
// objects (so no rollback is possible any more) and deletes the region's
// rows from the source, returning what it removed per table. It continues
// a completion interrupted anywhere.
func (m *Mover) Complete(ctx context.Context, r regions.Code) (Record, []Removed, error) {
	x, err := m.active(ctx, r)
	if err != nil {
		return Record{}, nil, err
	}
	defer x.close()
	if x.rec.Phase != Switched && x.rec.Phase != Completing {
		return x.rec, nil, fmt.Errorf("move %d of region %s is %s: only a switched move completes", x.rec.ID, r, x.rec.Phase)
	}
	if err := x.advance(ctx, Completing); err != nil {
		return x.rec, nil, err
	}
	removed, err := x.clean(ctx, x.src, x.rec.Source, Completed)
	if err != nil {
		return x.rec, removed, x.fail(ctx, fmt.Errorf("complete move %d: %w", x.rec.ID, err))
	}
	rec, err := x.reload(ctx)
	return rec, removed, err
}

// Abort ends region r's move before its switch: the region stays on the
// source, served and unfrozen, the move's replication objects are dropped
// and the rows it copied are deleted from the target. The assignments are
// not touched. A move whose switch wrote its epoch cannot be aborted: it
// rolls back.
func (m *Mover) Abort(ctx context.Context, r regions.Code) (Record, []Removed, error) {
	x, err := m.active(ctx, r)
	if err != nil {
		return Record{}, nil, err
	}
	defer x.close()
	switch x.rec.Phase {
	case Copying, CatchingUp, Switching, Aborting:
	default:
		return x.rec, nil, fmt.Errorf("move %d of region %s is %s: after the switch, roll it back (region rollback)", x.rec.ID, r, x.rec.Phase)
	}
	cur, err := control.Current(ctx, x.ctl)
	if err != nil {
		return x.rec, nil, err
	}
	if cur.Regions[string(r)] != x.rec.Source {
		return x.rec, nil, fmt.Errorf("epoch %d assigns region %s to %s: the switch was done; run region move again to record it, then region rollback", cur.Epoch, r, cur.Regions[string(r)])
	}
	if err := x.advance(ctx, Aborting); err != nil {
		return x.rec, nil, err
	}
	if err := x.undoFence(ctx, x.forward()); err != nil {
		return x.rec, nil, x.fail(ctx, err)
	}
	removed, err := x.clean(ctx, x.dst, x.rec.Target, Aborted)
	if err != nil {
		return x.rec, removed, x.fail(ctx, fmt.Errorf("abort move %d: %w", x.rec.ID, err))
	}
	rec, err := x.reload(ctx)
	return rec, removed, err
}
