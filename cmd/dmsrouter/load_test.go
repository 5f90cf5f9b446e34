package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// presenceKey is what makes a presence unique among the load's writes: no
// two writes of the load share a vendor and a day.
type presenceKey struct {
	Market, Vendor int64
	Date           string // YYYY-MM-DD
}

// accepted is one write the routers answered 2xx: a check-in (ID set) or
// a row of a batch (ID 0).
type accepted struct {
	key    presenceKey
	id     int64
	idem   string // the Idempotency-Key it was sent with
	path   string
	body   []byte
	status int
	at     time.Time
}

// loadStats is what a load saw.
type loadStats struct {
	accepted []accepted
	refused  map[string]int // 503 answers to writes, by problem type
	// longestRefused is the longest run of refused writes: from a refused
	// write with none refused before it still pending, to the next write
	// accepted.
	longestRefused time.Duration
	reads          map[int]int // statuses of the reads
	failed         []string    // writes that ended without a 2xx, and other surprises
	writes         int         // write requests sent, retries included
}

// load writes to one region through routers as a client following the
// README does: check-ins (POST /v1/markets/{id}/presences) and presence
// batches (POST /v1/presences/batch), each with an Idempotency-Key and
// retried with it after a 503 once Retry-After has passed (after a 504,
// 100 ms later), while a reader
// reads the region's markets and presences. Each write gets a presence
// key of its own from work, so no write is refused as a conflict.
type load struct {
	addrs   []string
	token   string
	client  *http.Client
	work    chan presenceKey
	markets []int64
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	start        time.Time // when the load started, which failures are timed from
	mu           sync.Mutex
	st           loadStats
	refusedSince time.Time // when the current run of refused writes began; zero: none
}

// Writers of a load, per kind; each pauses loadPause between writes so
// that the load leaves the shared machine room for the move itself.
const (
	checkInWriters = 3
	batchRows      = 10
	loadPause      = 25 * time.Millisecond
)

// startLoad starts writing the presences of work and reading markets
// through the routers at addrs with token (a principal who may write the
// region) until stop is called.
func startLoad(addrs []string, token string, work []presenceKey, markets []int64) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{
		addrs: addrs, token: token, markets: markets, cancel: cancel, start: time.Now(),
		client: &http.Client{Timeout: 20 * time.Second},
		work:   make(chan presenceKey, len(work)),
		st:     loadStats{refused: map[string]int{}, reads: map[int]int{}},
	}
	for _, k := range work {
		l.work <- k
	}
	close(l.work)
	for i := range checkInWriters {
		l.loop(ctx, i, l.checkIn)
	}
	l.loop(ctx, checkInWriters, l.batch)
	l.loop(ctx, checkInWriters+1, l.read)
	return l
}

// loop runs step against router n%len(addrs) until ctx is done or step
// reports that the work is used up.
func (l *load) loop(ctx context.Context, n int, step func(addr string, n int) bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if !step(l.addrs[n%len(l.addrs)], i) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(loadPause):
			}
		}
	}()
}

// stop ends the load once every write under way has its answer, and
// returns what it saw.
func (l *load) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// count returns the writes accepted so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.st.accepted)
}

func (l *load) checkIn(addr string, _ int) bool {
	k, ok := <-l.work
	if !ok {
		return false
	}
	// 10:00 UTC is on the same day in Europe/Rome.
	body, _ := json.Marshal(map[string]any{"vendor_id": k.Vendor, "kind": "SPUNTA", "checkin_at": k.Date + "T10:00:00Z"})
	path := fmt.Sprintf("/v1/markets/%d/presences", k.Market)
	idem := fmt.Sprintf("load-%d-%s", k.Vendor, k.Date)
	status, resp, ok := l.write(addr, path, idem, body)
	if !ok {
		return true
	}
	var p struct {
		ID     int64
		Date   string
		Market int64 `json:"market_id"`
		Vendor int64 `json:"vendor_id"`
	}
	if err := json.Unmarshal(resp, &p); err != nil || p.ID == 0 || (presenceKey{p.Market, p.Vendor, p.Date}) != k {
		l.fail("POST %s answered %d %s, want the presence %+v", path, status, resp, k)
		return true
	}
	l.accept(accepted{key: k, id: p.ID, idem: idem, path: path, body: body, status: status, at: time.Now()})
	return true
}

func (l *load) batch(addr string, _ int) bool {
	var keys []presenceKey
	var rows []map[string]any
	for k := range l.work {
		keys = append(keys, k)
		rows = append(rows, map[string]any{"market_id": k.Market, "vendor_id": k.Vendor, "date": k.Date, "kind": "SPUNTA"})
		if len(rows) == batchRows {
			break
		}
	}
	if len(rows) == 0 {
		return false
	}
	body, _ := json.Marshal(map[string]any{"rows": rows})
	idem := fmt.Sprintf("load-batch-%d-%s", keys[0].Vendor, keys[0].Date)
	status, resp, ok := l.write(addr, "/v1/presences/batch", idem, body)
	if !ok {
		return true
	}
	var res struct{ Rows, Inserted int }
	if err := json.Unmarshal(resp, &res); err != nil || res.Rows != len(rows) || res.Inserted != len(rows) {
		l.fail("POST /v1/presences/batch answered %d %s, want %d rows inserted", status, resp, len(rows))
		return true
	}
	for _, k := range keys {
		l.accept(accepted{key: k, idem: idem, path: "/v1/presences/batch", body: body, status: status, at: time.Now()})
	}
	return true
}

func (l *load) read(addr string, i int) bool {
	m := l.markets[rand.IntN(len(l.markets))]
	path := fmt.Sprintf("/v1/markets/%d", m)
	if i%2 == 1 {
		path = fmt.Sprintf("/v1/markets/%d/presences?date=%s", m, time.Now().UTC().AddDate(0, 0, -1-i%5).Format(time.DateOnly))
	}
	status, _, _, err := l.do(addr, http.MethodGet, path, "", nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.st.failed = append(l.st.failed, fmt.Sprintf("%s: GET %s: %v", l.since(), path, err))
		return true
	}
	l.st.reads[status]++
	if status != http.StatusOK && status != http.StatusServiceUnavailable {
		l.st.failed = append(l.st.failed, fmt.Sprintf("%s: GET %s answered %d", l.since(), path, status))
	}
	return true
}

// write sends one write until it is answered 2xx, for at most a minute:
// after a 503 it waits Retry-After and sends it again with the same key,
// as after a 504 or a transport error. Any other answer ends it; ok
// reports a 2xx.
func (l *load) write(addr, path, idem string, body []byte) (status int, resp []byte, ok bool) {
	deadline := time.Now().Add(time.Minute)
	for {
		status, header, resp, err := l.do(addr, http.MethodPost, path, idem, body)
		l.mu.Lock()
		l.st.writes++
		l.mu.Unlock()
		var wait time.Duration
		switch {
		case err != nil:
			l.fail("POST %s (retried): %v", path, err)
			wait = 100 * time.Millisecond
		case status/100 == 2:
			return status, resp, true
		case status == http.StatusServiceUnavailable:
			l.refuse(problemType(resp))
			secs, _ := strconv.Atoi(header.Get("Retry-After"))
			wait = time.Duration(secs) * time.Second
		case status == http.StatusGatewayTimeout:
			// Nothing known written: the key makes the retry safe, as the
			// README tells clients. The first writes to the target after
			// the switch open its pool's connections, which on a loaded
			// machine outlasted acquire_timeout (two 504s at the instant
			// the move ended). It counts as a refusal, so a write held
			// longer than --max-freeze still fails checkLoad.
			l.refuse(problemType(resp))
			wait = 100 * time.Millisecond
		default:
			l.fail("POST %s answered %d %s", path, status, resp)
			return status, resp, false
		}
		if time.Now().Add(wait).After(deadline) {
			l.fail("POST %s got no 2xx within a minute", path)
			return status, resp, false
		}
		time.Sleep(wait)
	}
}

// do sends one request with the load's token and returns the answer.
func (l *load) do(addr, method, path, idem string, body []byte) (int, http.Header, []byte, error) {
	return send(l.client, addr, l.token, method, path, idem, body)
}

// send sends one request with token (and with idem as its
// Idempotency-Key, and body as JSON, when given) and returns the answer.
func send(client *http.Client, addr, token, method, path, idem string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// refuse records a write answered 503; it begins a run of refused writes
// unless one is under way.
func (l *load) refuse(problem string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.refused[problem]++
	if l.refusedSince.IsZero() {
		l.refusedSince = time.Now()
	}
}

// accept records an accepted write; it ends the run of refused writes
// under way, if any.
func (l *load) accept(a accepted) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.accepted = append(l.st.accepted, a)
	if !l.refusedSince.IsZero() {
		l.st.longestRefused = max(l.st.longestRefused, a.at.Sub(l.refusedSince))
		l.refusedSince = time.Time{}
	}
}

// fail records a failure, with when it happened: failures at the same
// moment point to a stall, spread ones to something else.
func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.failed = append(l.st.failed, l.since()+": "+fmt.Sprintf(format, args...))
}

// since says how long ago the load started.
func (l *load) since() string {
	return fmt.Sprintf("+%.1fs", time.Since(l.start).Seconds())
}

// problemType returns the type of a problem+json body, or the body.
func problemType(body []byte) string {
	var p struct{ Type string }
	if json.Unmarshal(body, &p) != nil || p.Type == "" {
		return string(body)
	}
	return p.Type
}

// loadWork returns, from the database at dsn (an admin DSN, outside
// row-level security), presences region r's writers may record, one per
// vendor and day: each ATTIVA vendor of the region as a spuntista at an
// ACTIVE market where it holds no concession, on the days from 15 to 180
// days ago (all with a partition) when it has no presence yet. It also
// returns the region's markets, for the reads.
func loadWork(t *testing.T, dsn string, r int) (work []presenceKey, markets []int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, `
		SELECT v.id, m.id
		FROM vendors v
		CROSS JOIN LATERAL (
			SELECT m.id FROM markets m
			WHERE m.region_id = v.region_id AND m.status = 'ACTIVE'
			  AND NOT EXISTS (SELECT FROM concessions c WHERE c.vendor_id = v.id AND c.market_id = m.id)
			ORDER BY hashint8(m.id # v.id) LIMIT 1) m
		WHERE v.region_id = $1 AND v.status = 'ATTIVA'
		ORDER BY v.id`, r)
	pairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Vendor, Market int64 }])
	if err != nil {
		t.Fatal(err)
	}
	rows, _ = conn.Query(ctx, `SELECT id FROM markets WHERE region_id = $1 ORDER BY id`, r)
	markets, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	rows, _ = conn.Query(ctx, `SELECT DISTINCT vendor_id, date::text FROM vendor_presences WHERE region_id = $1`, r)
	taken, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Vendor int64
		Date   string
	}])
	if err != nil {
		t.Fatal(err)
	}
	busy := map[presenceKey]bool{}
	for _, p := range taken {
		busy[presenceKey{Vendor: p.Vendor, Date: p.Date}] = true
	}
	if len(pairs) < 20 || len(markets) == 0 {
		t.Fatalf("region %02d has %d vendors to check in and %d markets; seed more", r, len(pairs), len(markets))
	}
	today := time.Now().UTC()
	for d := 15; d <= 180; d++ {
		day := today.AddDate(0, 0, -d).Format(time.DateOnly)
		for _, p := range pairs {
			if !busy[presenceKey{Vendor: p.Vendor, Date: day}] {
				work = append(work, presenceKey{Market: p.Market, Vendor: p.Vendor, Date: day})
			}
		}
	}
	return work, markets
}
