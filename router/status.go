package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dmshub/dmsrouter/auth"
	"github.com/dmshub/dmsrouter/fleet"
	"github.com/dmshub/dmsrouter/regions"
	"github.com/dmshub/dmsrouter/shardmap"
)

// The status for operators: GET /status, a page rendered here that
// refreshes itself (no script), and GET /v1/admin/shards, the same
// fleet.Status as JSON. Both are for the roles auth.IsOperator accepts.

//go:embed statuspage/status.html statuspage/status.css
var statusFiles embed.FS

// statusRefresh is how often the page reloads itself, in seconds.
const statusRefresh = 10

// errNotOperator is a request for the status by a role that may not see it.
var errNotOperator = errors.New("the status is for operators: your role is neither dba nor super_admin")

// statusPage is the parsed page and the Content-Security-Policy it is
// answered with.
type statusPage struct {
	tmpl *template.Template
	css  template.CSS
	csp  string
}

// newStatusPage parses the embedded page. Its CSP loosens the edge's
// default-src 'none' (secureHeaders) by exactly what the page needs: its
// one inline <style> element, allowed by the hash of its text rather than
// by 'unsafe-inline', so that markup injected into the page (were an
// escape ever missed) could not style it either; no script, image, font,
// frame or form is allowed.
func newStatusPage() (*statusPage, error) {
	css, err := statusFiles.ReadFile("statuspage/status.css")
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("status.html").Funcs(template.FuncMap{
		"ms":           latencyText,
		"pct":          errorRateText,
		"ago":          agoText,
		"breakerClass": breakerClass,
	}).ParseFS(statusFiles, "statuspage/status.html")
	if err != nil {
		return nil, fmt.Errorf("status page: %w", err)
	}
	sum := sha256.Sum256(css)
	csp := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return &statusPage{tmpl: tmpl, css: template.CSS(css), csp: csp}, nil
}

// statusView is what the page template renders.
type statusView struct {
	Status  fleet.Status
	Epoch   int64 // the assignment epoch this router serves (0: the file's regions)
	Refresh int
	CSS     template.CSS
}

// requireOperator refuses the request of a role that may not see the status.
func (s *Server) requireOperator(c *gin.Context) {
	if !auth.IsOperator(principal(c).Role) {
		s.writeProblem(c, errNotOperator)
		return
	}
	c.Next()
}

// adminShards answers GET /v1/admin/shards: the status as JSON.
func (s *Server) adminShards(c *gin.Context) error {
	return writeJSON(c, s.fleetStatus(c.Request.Context()))
}

// statusHTML answers GET /status: the status as a page.
func (s *Server) statusHTML(c *gin.Context) error {
	view := statusView{Status: s.fleetStatus(c.Request.Context()), Epoch: s.shards.Map().Config().Epoch, Refresh: statusRefresh, CSS: s.status.css}
	var buf bytes.Buffer
	if err := s.status.tmpl.Execute(&buf, view); err != nil {
		return fmt.Errorf("render the status page: %w", err)
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", s.status.csp)
	h.Set("Cache-Control", "no-store")
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
	return nil
}

// fleetStatus gathers the status as this router sees it: per shard of
// the current map, its servers (breaker, pool, the last minute's calls,
// the lag measured) and what its primary database says (fleet.ReadShard,
// over a connection of its own), and the control database's epoch,
// routers and moves when there is one. It takes at most fleet.Timeout.
func (s *Server) fleetStatus(ctx context.Context) fleet.Status {
	m := s.shards.Map()
	shards := m.Shards()
	cfgs := make([]shardmap.ShardConfig, len(shards))
	for i, sh := range shards {
		cfgs[i] = sh.Config()
	}
	var ctl *fleet.Control
	var wg sync.WaitGroup
	if s.control != nil {
		wg.Go(func() { ctl = fleet.ReadControl(ctx, s.control.DB()) })
	}
	facts := fleet.ReadShards(ctx, cfgs)
	wg.Wait()
	now := time.Now()
	st := fleet.Status{At: now, Source: "router", Shards: make([]fleet.Shard, 0, len(shards)), Control: ctl}
	for i, sh := range shards {
		servers := sh.Servers(now)
		st.Shards = append(st.Shards, fleet.Shard{
			Name:      sh.Name(),
			Regions:   append([]regions.Code{}, m.RegionsOf(sh.Name())...),
			Available: facts[i].Error == "" && servers[0].Breaker != "open",
			Servers:   servers,
			Facts:     facts[i],
		})
	}
	return st
}

// latencyText formats a duration in milliseconds for the page; "–" when
// there were no calls to measure.
func latencyText(d time.Duration, calls int64) string {
	if calls == 0 {
		return "–"
	}
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// errorRateText formats the share of failed calls for the page.
func errorRateText(l shardmap.Latency) string {
	if l.Calls == 0 {
		return "–"
	}
	return strconv.FormatFloat(100*l.ErrorRate(), 'f', 1, 64) + "%"
}

// agoText says how long before now t was, in whole seconds.
func agoText(now, t time.Time) string {
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// breakerClass is the page's class of a breaker state.
func breakerClass(state string) string {
	switch state {
	case "closed":
		return "ok"
	case "open":
		return "bad"
	}
	return "warn"
}
