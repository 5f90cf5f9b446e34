package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/term"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/config"
	"github.com/dmshub/dmsrouter/internal/cli"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/seed"
	"github.com/dmshub/dmsrouter/shardmap"
)

// demoCmd is the newcomer's one command: it starts (or reuses) a local
// PostgreSQL cluster under --data on the port of the configuration's DSNs,
// creates and migrates the shard databases, seeds them on first use (or
// again with --reset), and serves the API with ready-to-paste tokens and
// curl lines until ctx is done or the terminal is closed (SIGHUP); then it
// stops the router and the cluster it started, or found left running from
// --data by an earlier demo, keeping the data. It checks that it can
// listen before it starts anything.
func demoCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// Closing the terminal must stop the cluster too, not leave it running
	// (serve alone uses SIGHUP, to reload).
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()
	fs := cli.NewFlags("dmsdev", "demo", stderr)
	path := fs.String("config", "configs/dev.yaml", "configuration file; every DSN must name one local port")
	markets := fs.Int("markets", 800, "markets to seed on first use")
	days := fs.Int("days", 30, "market days of presences to seed on first use")
	seedValue := fs.Int64("seed", 1, "random seed of the data")
	data := fs.String("data", ".dmsdata", "directory of the local PostgreSQL cluster")
	addr := fs.String("addr", "", "listen address (overrides server.addr)")
	reset := fs.Bool("reset", false, "delete the shards' data and seed them again before serving")
	if err := cli.ParseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	if cfg.Auth.HS256Secret == "" {
		return errors.New("demo: auth.hs256_secret is not set: the demo's tokens need it")
	}
	if err := checkListen(cfg.Server.Addr); err != nil {
		return err
	}
	if !pgcluster.Installed() {
		fmt.Fprint(stderr, `PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not installed.
Install them and run the demo again; on Debian or Ubuntu:

    sudo apt-get install postgresql

(or set PG_BINDIR to the directory that holds them).
`)
		return errors.New("demo: PostgreSQL server binaries not found")
	}
	port, err := localPort(cfg.ShardMap)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}

	var srv *pgcluster.Server // the cluster to stop on exit
	if pgcluster.Running(ctx, cfg.ShardMap) {
		if srv, err = pgcluster.Adopt(ctx, cfg.ShardMap, dir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if srv != nil {
			fmt.Fprintf(stdout, "PostgreSQL was left running on 127.0.0.1:%d by an earlier demo (data in %s): using it, and stopping it on exit\n", port, dir)
		} else {
			fmt.Fprintf(stdout, "PostgreSQL is already running on 127.0.0.1:%d, from another data directory than %s: using it (it stays running on exit)\n", port, dir)
		}
	} else {
		fmt.Fprintf(stdout, "starting PostgreSQL on 127.0.0.1:%d, data in %s\n", port, dir)
		// Never interrupted half-way: a canceled pg_ctl could leave a
		// server running that nothing stops.
		if srv, err = pgcluster.StartAt(context.WithoutCancel(ctx), dir, port); err != nil {
			return fmt.Errorf("demo: start PostgreSQL: %w", err)
		}
	}
	if srv != nil {
		defer func() {
			if err := srv.Stop(); err != nil {
				fmt.Fprintln(stderr, "demo:", err)
				return
			}
			fmt.Fprintf(stdout, "PostgreSQL stopped; the data stays in %s for the next run\n", dir)
		}()
	}

	// From here on the regions are the control database's: after a move
	// (dmsrouter region move) the seed and the examples follow the region.
	if cfg.ShardMap, err = pgcluster.Prepare(ctx, cfg.ShardMap, cfg.Control.DSN); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	opts := seed.Options{Markets: *markets, Days: *days, Seed: *seedValue, Reset: *reset, Progress: stdout}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts.Terminal = true
	}
	const reseed = "make demo-reset, or add --reset to the demo's flags"
	switch _, err := seed.Run(ctx, cfg.ShardMap, opts); {
	case errors.Is(err, seed.ErrNotEmpty):
		fmt.Fprintf(stdout, "the shards hold data already: not seeding (to seed them again: %s)\n", reseed)
	case err != nil:
		return fmt.Errorf("demo: seeding stopped part-way, the shards hold partial data (to seed them again: %s): %w", reseed, err)
	}

	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return err
	}
	y, m, d := time.Now().In(rome).Date()
	ex, err := findExamples(ctx, cfg.ShardMap, time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return err
	}
	tokens, err := ex.tokens(cfg.Auth.HS256Secret)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	err = cli.Serve(ctx, cfg, log, nil, func(a net.Addr) {
		ex.print(stdout, "http://"+a.String(), tokens, dir, cfg.ShardMap, *path)
	})
	fmt.Fprintln(stdout, "router stopped")
	return err
}

// checkListen reports, saying which address and how to pick another,
// when addr cannot be listened on: the demo checks before it starts
// PostgreSQL rather than fail once everything else is ready.
func checkListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		another := "127.0.0.1:8081"
		if host, port, splitErr := net.SplitHostPort(addr); splitErr == nil {
			if n, convErr := strconv.Atoi(port); convErr == nil && n > 0 && n < 65535 {
				another = net.JoinHostPort(host, strconv.Itoa(n+1))
			}
		}
		return fmt.Errorf("demo: cannot listen on %s (%w); nothing was started. Is another demo or router running? "+
			"Pick another address: DMSROUTER_SERVER_ADDR=%s make demo, or --addr %s", addr, err, another, another)
	}
	return ln.Close()
}

// localPort returns the one loopback port every DSN of cfg names, or an
// error: the demo runs one local server for the whole configuration.
func localPort(cfg shardmap.Config) (int, error) {
	port := 0
	for _, s := range cfg.Shards {
		for _, dsn := range append([]string{s.Primary, s.AdminDSN()}, s.Replicas...) {
			c, err := pgx.ParseConfig(dsn)
			if err != nil {
				return 0, fmt.Errorf("demo: shard %s: %w", s.Name, err)
			}
			if ip := net.ParseIP(c.Host); c.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return 0, fmt.Errorf("demo: shard %s names host %q: the demo runs one local server, so every DSN must name 127.0.0.1", s.Name, c.Host)
			}
			if port != 0 && int(c.Port) != port {
				return 0, fmt.Errorf("demo: shard %s names port %d, another shard %d: the demo runs one local server on one port", s.Name, c.Port, port)
			}
			port = int(c.Port)
		}
	}
	return port, nil
}

// examples are the seeded rows the demo's curl lines ask for.
type examples struct {
	region     regions.Code
	comune     string
	comuneName string
	market     int64
	marketName string
	day        time.Time // presences exist on this day
	today      bool      // day is today
	partitaIVA string
	expiring   time.Time // some ATTIVA concessions expire before this day
}

// findExamples looks up, in the first region with markets (Lombardia at any
// demo scale), a market with presences today (or on its latest market day)
// in the comune with the most such markets, a vendor holding a concession
// there, and a day before which ATTIVA concessions expire.
func findExamples(ctx context.Context, cfg shardmap.Config, today time.Time) (examples, error) {
	order := []regions.Code{"03"}
	for _, r := range regions.All() {
		if r.Code != "03" {
			order = append(order, r.Code)
		}
	}
	dsns := map[string]string{}
	for _, s := range cfg.Shards {
		dsns[s.Name] = s.AdminDSN()
	}
	for _, r := range order {
		ex := examples{region: r, today: true, day: today}
		found, err := ex.find(ctx, dsns[cfg.Regions[string(r)]])
		if err != nil {
			return ex, fmt.Errorf("demo: look up examples in region %s: %w", r, err)
		}
		if found {
			return ex, nil
		}
	}
	return examples{}, errors.New("demo: the shards hold no markets")
}

// find fills ex from region ex.region on the shard at dsn (as its admin,
// which row-level security does not bind). It reports false when the
// region has no markets.
func (ex *examples) find(ctx context.Context, dsn string) (bool, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	region := int16(ex.region.Num())
	var latest *time.Time
	err = conn.QueryRow(ctx, `SELECT CASE WHEN EXISTS (SELECT FROM vendor_presences WHERE region_id = $1 AND date = $2) THEN $2
		ELSE (SELECT max(date) FROM vendor_presences WHERE region_id = $1 AND date < $2) END`, region, ex.day).Scan(&latest)
	if err != nil {
		return false, err
	}
	if latest != nil {
		ex.day, ex.today = *latest, latest.Equal(ex.day)
	}
	// Markets with presences on the day first, in the comune with the most markets.
	err = conn.QueryRow(ctx, `SELECT m.id, m.name, m.comune, m.comune_name FROM markets m
		WHERE m.region_id = $1
		ORDER BY EXISTS (SELECT FROM vendor_presences p WHERE p.market_id = m.id AND p.date = $2) DESC,
			(SELECT count(*) FROM markets c WHERE c.comune = m.comune) DESC, m.comune, m.name, m.id
		LIMIT 1`, region, ex.day).Scan(&ex.market, &ex.marketName, &ex.comune, &ex.comuneName)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = conn.QueryRow(ctx, `SELECT v.partita_iva FROM vendors v
		WHERE v.region_id = $1
		ORDER BY EXISTS (SELECT FROM concessions c WHERE c.vendor_id = v.id AND c.market_id = $2) DESC, v.id
		LIMIT 1`, region, ex.market).Scan(&ex.partitaIVA)
	if err != nil {
		return false, err
	}
	// Within 90 days when any expire so soon, else just past the next one.
	var next *time.Time
	err = conn.QueryRow(ctx, `SELECT min(valid_to) FROM concessions WHERE region_id = $1 AND status = 'ATTIVA' AND valid_to >= $2`,
		region, ex.day).Scan(&next)
	if err != nil {
		return false, err
	}
	ex.expiring = ex.day.AddDate(0, 0, 90)
	if next != nil && !next.Before(ex.expiring) {
		ex.expiring = next.AddDate(0, 0, 1)
	}
	return true, nil
}

// demoTokenTTL is how long the printed tokens are valid.
const demoTokenTTL = 12 * time.Hour

// tokens signs the national, regional and comune tokens, in that order.
func (ex examples) tokens(secret string) ([]string, error) {
	principals := []auth.Principal{
		{Subject: "demo-national", Role: "super_admin", Territory: regions.Territory{Level: regions.National}},
		{Subject: "demo-region", Role: "admin_pa", Territory: regions.Territory{Level: regions.Regional, Code: string(ex.region)}},
		{Subject: "demo-comune", Role: "market_manager", Territory: regions.Territory{Level: regions.Municipal, Code: ex.comune}},
	}
	var out []string
	for _, p := range principals {
		t, err := auth.SignHS256(secret, p, demoTokenTTL, time.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// printSpares names the shards of cfg that serve no region, such as
// configs/dev.yaml's s03b, and the command that moves region r (the
// examples' region) to the first of them online while the demo serves:
// the spares are there for it (docs/moving-regions.md).
func printSpares(w io.Writer, cfg shardmap.Config, r regions.Code, path string) {
	var spares []string
	for _, s := range cfg.Shards {
		if len(cfg.ShardRegions(s.Name)) == 0 {
			spares = append(spares, s.Name)
		}
	}
	if len(spares) == 0 {
		return
	}
	fmt.Fprintf(w, "Shards serving no region: %s. Move region %s (%s) to %s online while the demo serves,\n", strings.Join(spares, ", "), r, r.Name(), spares[0])
	fmt.Fprintf(w, "from another terminal, and watch it (docs/moving-regions.md):\n\n  go run ./cmd/dmsrouter region move --config %s --region %s --to %s\n\n", path, r, spares[0])
}

// print writes the tokens as shell exports, the example curl lines and
// the move the spare shards of cfg (loaded from path) are there for.
func (ex examples) print(w io.Writer, base string, tokens []string, dir string, cfg shardmap.Config, path string) {
	fmt.Fprintf(w, "\ndmsrouter demo: serving %s (%d shards, data in %s)\n\n", base, len(cfg.Shards), dir)
	fmt.Fprintf(w, "Tokens, valid for %.0f hours; paste them into your shell:\n\n", demoTokenTTL.Hours())
	fmt.Fprintf(w, "  export DMS_NATIONAL='%s'  # super_admin, national\n", tokens[0])
	fmt.Fprintf(w, "  export DMS_REGION='%s'  # admin_pa, region:%s (%s)\n", tokens[1], ex.region, ex.region.Name())
	fmt.Fprintf(w, "  export DMS_COMUNE='%s'  # market_manager, comune:%s (%s)\n", tokens[2], ex.comune, ex.comuneName)
	id := strconv.FormatInt(ex.market, 10)
	presences, when := "/v1/markets/"+id+"/presences", "today"
	if !ex.today {
		presences += "?date=" + ex.day.Format(time.DateOnly)
		when = "on " + ex.day.Format(time.DateOnly) + ", its latest market day"
	}
	lines := []struct{ about, token, path string }{
		{"markets of " + ex.comuneName, "DMS_COMUNE", "/v1/markets?comune=" + ex.comune},
		{"stalls of " + ex.marketName, "DMS_REGION", "/v1/markets/" + id + "/stalls"},
		{"presences at " + ex.marketName + " " + when, "DMS_COMUNE", presences},
		{"a vendor by partita IVA", "DMS_REGION", "/v1/vendors?partita_iva=" + ex.partitaIVA},
		{"ATTIVA concessions of region " + string(ex.region) + " expiring before " + ex.expiring.Format(time.DateOnly), "DMS_NATIONAL",
			"/v1/concessions?region=" + string(ex.region) + "&status=ATTIVA&expiring_before=" + ex.expiring.Format(time.DateOnly)},
	}
	fmt.Fprintf(w, "\nTry:\n\n")
	for _, l := range lines {
		fmt.Fprintf(w, "  # %s\n  curl -s -H \"Authorization: Bearer $%s\" '%s%s'\n", l.about, l.token, base, l.path)
	}
	// The DBAs' status page takes the token as the cookie a browser sends;
	// DMS_NATIONAL's super_admin may see it (so may the role dba).
	fmt.Fprintf(w, "\nThe DBAs' status page (in a browser: set the cookie dms_token to $DMS_NATIONAL, open %s/status),\nand the same as JSON at /v1/admin/shards:\n\n", base)
	fmt.Fprintf(w, "  curl -s -b \"dms_token=$DMS_NATIONAL\" '%s/status'\n", base)
	fmt.Fprintln(w)
	printSpares(w, cfg, ex.region, path)
	fmt.Fprintf(w, "Ctrl-C (or closing the terminal) stops the router, then PostgreSQL (the data stays for the next run).\n\n")
}
