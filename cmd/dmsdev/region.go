package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/control"
	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/move"
	"github.com/dmshub/dmsrouter/national"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/registry"
	"github.com/dmshub/dmsrouter/router"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The set-up that ingest and movebench share: a region filled with
// synthetic markets, holders and presences at a given scale, and a router
// serving in this process that their clients check in through.

// synth names a region's synthetic data: the two letters of its markets'
// codes and the province of every market (its comuni are made up inside
// it, as the schema only checks a comune's province).
type synth struct {
	region   regions.Code
	letters  string
	province string
}

// fill creates s's region's markets, stalls, holders and their
// concessions in a database that holds none of them yet (their ids are the
// region's sequences from 1, which the concessions' vendors rely on).
func fill(ctx context.Context, admin *pgx.Conn, s synth, markets int) error {
	for _, sql := range []string{
		`INSERT INTO markets (id, region_id, code, name, province, comune, comune_name, days)
		SELECT dms.next_id('markets', @region::smallint), @region, @letters::text || lpad(m::text, 5, '0'), 'Mercato ' || m,
			@province::text, @province::text || lpad((m % 999 + 1)::text, 3, '0'), 'Comune ' || (m % 999 + 1), '{1,2,3,4,5,6,7}'
		FROM generate_series(1, @markets::int) m`,
		`INSERT INTO stalls (id, region_id, market_id, comune, number, type, status, area_mq)
		SELECT dms.next_id('stalls', @region::smallint), @region, m.id, m.comune, n, CASE WHEN n <= @holders THEN 'FISSO' ELSE 'SPUNTA' END,
			CASE WHEN n <= @holders THEN 'OCCUPATO' ELSE 'LIBERO' END, 12
		FROM markets m, generate_series(1, @stalls::int) n WHERE m.region_id = @region ORDER BY m.id, n`,
		`INSERT INTO vendors (id, region_id, partita_iva, codice_fiscale, denominazione, comune)
		SELECT dms.next_id('vendors', @region::smallint), @region, lpad(v::text, 11, '0'), lpad(v::text, 11, '0'), 'Impresa ' || v, @province::text || '146'
		FROM generate_series(1, @markets::int * @holders::int) v`,
		`INSERT INTO concessions (id, region_id, market_id, comune, stall_id, vendor_id, valid_from, valid_to, status)
		SELECT dms.next_id('concessions', @region::smallint), @region, s.market_id, s.comune, s.id,
			(@region::bigint << 48) | ((s.market_id & 281474976710655) - 1) * @holders + s.number, '2020-01-01', '2029-12-31', 'ATTIVA'
		FROM stalls s WHERE s.region_id = @region AND s.number <= @holders ORDER BY s.id`,
	} {
		args := pgx.NamedArgs{"region": s.region.Num(), "letters": s.letters, "province": s.province,
			"markets": markets, "holders": holdersPerMarket, "stalls": stallsPerMarket}
		if _, err := admin.Exec(ctx, sql, args); err != nil {
			return fmt.Errorf("fill region %s: %w", s.region, err)
		}
	}
	return nil
}

// prefill stores a presence of every holder of region r on each of n
// market days from first.
func prefill(ctx context.Context, admin *pgx.Conn, r regions.Code, first time.Time, n int) error {
	for d := range n {
		_, err := admin.Exec(ctx, `INSERT INTO vendor_presences (id, region_id, market_id, comune, vendor_id, stall_id, date, kind, checkin_at)
			SELECT dms.next_id('vendor_presences', $2::smallint), $2, c.market_id, c.comune, c.vendor_id, c.stall_id, $1::date,
				'CONCESSION', $1::date + time '07:00' + (c.id % 90) * interval '1 minute'
			FROM concessions c WHERE c.region_id = $2 ORDER BY c.id`, first.AddDate(0, 0, d), r.Num())
		if err != nil {
			return fmt.Errorf("prefill region %s, day %d: %w", r, d, err)
		}
	}
	return nil
}

// recordMarketDays records every market of region r held (a HELD market
// day, as an office records it) on each of n days from first: a region's
// offices record their market days, and the writes' statements read them
// (a cancelled day takes no presences), so a region without them is not
// the one the writes meet (BENCHMARKS.md, "The batch statement's plan at
// full scale").
func recordMarketDays(ctx context.Context, admin *pgx.Conn, r regions.Code, first time.Time, n int) error {
	_, err := admin.Exec(ctx, `INSERT INTO market_days (market_id, region_id, comune, date, status, updated_by)
		SELECT m.id, m.region_id, m.comune, d::date, 'HELD', 'dmsdev'
		FROM markets m, generate_series($1::date, $1::date + ($2::int - 1), interval '1 day') d
		WHERE m.region_id = $3 ORDER BY 1, 4`, first, n, r.Num())
	if err != nil {
		return fmt.Errorf("record the market days of region %s: %w", r, err)
	}
	return nil
}

// marketDays returns Europe/Rome, today there (as a UTC date) and the
// first of n market days that end the day before yesterday, so that
// they and yesterday lie before today. It fails when they reach back
// further than the 12 months of presence partitions the schema keeps.
func marketDays(n int) (rome *time.Location, today, first time.Time, err error) {
	if rome, err = time.LoadLocation("Europe/Rome"); err != nil {
		return nil, today, first, err
	}
	y, m, d := time.Now().In(rome).Date()
	today = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	first = today.AddDate(0, 0, -(n + 1))
	if first.Before(today.AddDate(0, -12, 0)) {
		return rome, today, first, fmt.Errorf("%d market days are more than the 12 months of stored partitions hold", n)
	}
	return rome, today, first, nil
}

// holder is a concession: who holds which stall of which market.
type holder struct {
	Market int64  `db:"market_id"`
	Comune string `db:"comune"`
	Stall  int64  `db:"stall_id"`
	Vendor int64  `db:"vendor_id"`
}

// readHolders returns region r's concessions in id order: market after
// market, each market's holders together.
func readHolders(ctx context.Context, admin *pgx.Conn, r regions.Code) ([]holder, error) {
	rows, err := admin.Query(ctx, `SELECT market_id, comune, stall_id, vendor_id FROM concessions WHERE region_id = $1 ORDER BY id`, r.Num())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[holder])
}

// row is one presence as the batch endpoint reads it, with what the other
// methods need besides.
type row struct {
	MarketID  int64   `json:"market_id"`
	VendorID  int64   `json:"vendor_id"`
	StallID   *int64  `json:"stall_id"`
	Date      string  `json:"date"`
	Kind      string  `json:"kind"`
	CheckinAt *string `json:"checkin_at"`

	comune string
	day    time.Time
	at     time.Time
}

// presenceRows returns every holder's presence on each of days.
func presenceRows(holders []holder, days []time.Time, rome *time.Location) []row {
	out := make([]row, 0, len(holders)*len(days))
	for _, d := range days {
		for i, h := range holders {
			at := time.Date(d.Year(), d.Month(), d.Day(), 7, i%90, 0, 0, rome)
			s := at.Format(time.RFC3339)
			stall := h.Stall
			out = append(out, row{MarketID: h.Market, VendorID: h.Vendor, StallID: &stall, Date: d.Format(time.DateOnly),
				Kind: "CONCESSION", CheckinAt: &s, comune: h.Comune, day: d, at: at})
		}
	}
	return out
}

// interleave reorders rows, which come one market's after another's, so
// that consecutive rows are of different markets: the first row of every
// market, then the second of every market, and so on.
func interleave(rows []row) []row {
	var markets [][]row
	for i, r := range rows {
		if i == 0 || r.MarketID != rows[i-1].MarketID {
			markets = append(markets, nil)
		}
		markets[len(markets)-1] = append(markets[len(markets)-1], r)
	}
	out := make([]row, 0, len(rows))
	for k := 0; len(out) < len(rows); k++ {
		for _, m := range markets {
			if k < len(m) {
				out = append(out, m[k])
			}
		}
	}
	return out
}

func count(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// inproc is a router serving the API in this process on a loopback port,
// and an HTTP client for it.
type inproc struct {
	base   string
	client *http.Client
	holder *shardmap.Holder
	follow *control.Follower // nil: cfg's regions rule
	hs     *http.Server
}

// startRouter serves the API over cfg's shards in this process, its
// request log discarded. With a control database (controlDSN not empty)
// the regions follow its epochs as serve's do: the router records the
// epoch it applied, and a shard's fence refusing a region reloads them
// at once; otherwise cfg's regions rule. Close stops it.
func startRouter(ctx context.Context, cfg shardmap.Config, controlDSN string) (*inproc, error) {
	holder, err := shardmap.NewHolder(cfg, shardmap.Options{Warm: registry.Warm})
	if err != nil {
		return nil, err
	}
	s := &inproc{holder: holder, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if controlDSN != "" {
		if s.follow, err = control.Follow(ctx, control.Config{DSN: controlDSN}, cfg, holder, log); err != nil {
			s.Close()
			return nil, err
		}
		holder.SetRefresher(s.follow.Refresh)
	}
	v, err := auth.NewVerifier(auth.Config{HS256Secret: pgcluster.DeploymentSecret})
	if err != nil {
		s.Close()
		return nil, err
	}
	fan, err := national.New(national.Config{}, national.Options{})
	if err != nil {
		s.Close()
		return nil, err
	}
	api, err := router.New(holder, v, fan, router.Options{Logger: log, Control: s.follow})
	if err != nil {
		s.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.hs = &http.Server{Handler: api}
	go s.hs.Serve(ln)
	s.base = "http://" + ln.Addr().String()
	return s, nil
}

// Close stops the router, its control database's follower and its pools.
func (s *inproc) Close() {
	if s.hs != nil {
		s.hs.Close()
	}
	if s.follow != nil {
		s.holder.SetRefresher(nil)
		s.follow.Stop()
	}
	s.holder.Close()
}

// regionToken returns a day's token of an admin_pa of region r.
func regionToken(r regions.Code, subject string) (string, error) {
	terr, err := regions.ParseTerritory("region:" + string(r))
	if err != nil {
		return "", err
	}
	return auth.SignHS256(pgcluster.DeploymentSecret, auth.Principal{Subject: subject, Role: "admin_pa", Territory: terr}, 24*time.Hour, time.Now())
}

// reply is an answer of the API: its status, its Retry-After (0 when it
// has none) and its body.
type reply struct {
	status     int
	retryAfter time.Duration
	body       string
}

// send sends a request to the API with token and, unless key is empty,
// the Idempotency-Key key; a body is sent as JSON.
func send(ctx context.Context, client *http.Client, method, url, token string, body []byte, key string) (reply, error) {
	return sendAs(ctx, client, method, url, token, "application/json", body, key)
}

// sendAs is send with a body of media type ct.
func sendAs(ctx context.Context, client *http.Client, method, url, token, ct string, body []byte, key string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	rep := reply{status: res.StatusCode, body: string(b)}
	if secs, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil {
		rep.retryAfter = time.Duration(secs) * time.Second
	}
	return rep, err
}

// checkIn posts r's check-in (its holder at its stall, at its time) to
// the router at base, with the Idempotency-Key key unless it is empty.
func checkIn(ctx context.Context, client *http.Client, base, token string, r row, key string) (reply, error) {
	b := fmt.Sprintf(`{"vendor_id":%d,"kind":"CONCESSION","stall_id":%d,"checkin_at":%q}`, r.VendorID, *r.StallID, *r.CheckinAt)
	return send(ctx, client, http.MethodPost, fmt.Sprintf("%s/v1/markets/%d/presences", base, r.MarketID), token, []byte(b), key)
}

// machineLine describes the run's date and machine for a report's header:
// the date, the cores, Go's version and the load average.
func machineLine() string {
	load, _ := os.ReadFile("/proc/loadavg")
	avg := strings.Fields(string(load))
	return fmt.Sprintf("%s, %d cores, Go %s, load average %s",
		time.Now().Format(time.DateOnly), runtime.NumCPU(), strings.TrimPrefix(runtime.Version(), "go"), strings.Join(avg[:min(3, len(avg))], " "))
}

// vacuumAsAutovacuum vacuums and analyzes the database's tables as a
// region move does after its copy and autovacuum would
// (move.VacuumAnalyze): the tables and partitions holding rows. VACUUM
// ANALYZE of the whole database instead recorded the measured months'
// partitions as empty, and the batches' generic plans, built while they
// were, read each month partition by whatever index for every market day
// as it filled, until autovacuum analyzed it (2.3-18 s a batch of 10,000
// rows; BENCHMARKS.md, "The batch statement looks rows up by key"): not
// the state of a region whose month partitions autovacuum analyzes as
// they fill.
func vacuumAsAutovacuum(ctx context.Context, admin *pgx.Conn) error {
	rows, _ := admin.Query(ctx, `SELECT c.oid::regclass::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
		ORDER BY 1`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	return move.VacuumAnalyze(ctx, admin, tables)
}
