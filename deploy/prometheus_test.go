package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// promtool returns the path of promtool (Debian's prometheus package;
// .ci/run installs it). Without it the test is skipped, except under CI,
// where it fails.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool is not installed (Debian package prometheus: apt-get install --no-install-recommends prometheus; .ci/run installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// TestPromtool runs promtool's checks on the Prometheus configuration and
// the alert rules, and the rules' unit tests (prometheus/alerts_test.yml),
// which fire each alert from series shaped like the router's /metrics.
func TestPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, args...)
			cmd.Dir = "prometheus" // rule_files are relative to the file naming them
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestEveryAlertIsTested checks that alerts_test.yml fires every alert of
// alerts.yml at least once, so a new alert comes with its unit test.
func TestEveryAlertIsTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string            `json:"alertname"`
				ExpAlerts []json.RawMessage `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readYAML(t, "prometheus/alerts_test.yml", &tests)
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.AlertName] = true
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !fired[r.Alert] {
				t.Errorf("alert %s never fires in prometheus/alerts_test.yml", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("prometheus/alerts.yml holds no alert")
	}
}

// grafanaVariable matches the dashboard variables Grafana replaces in a
// query before Prometheus sees it.
var grafanaVariable = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b`)

// dashboardQueries returns every target's expr of the Grafana dashboard,
// panels inside rows included, with Grafana's interval variables replaced.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	b, err := os.ReadFile("grafana/dmsrouter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/dmsrouter.json: %v", err)
	}
	queries := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				queries[p.Title+" "+tg.RefID] = grafanaVariable.ReplaceAllString(tg.Expr, "5m")
			}
			var inner []panel
			for _, raw := range p.Panels {
				var q panel
				if err := json.Unmarshal(raw, &q); err != nil {
					t.Fatal(err)
				}
				inner = append(inner, q)
			}
			walk(inner)
		}
	}
	walk(dash.Panels)
	if len(queries) == 0 {
		t.Fatal("grafana/dmsrouter.json holds no query")
	}
	return queries
}

// alertQueries returns the expr of every rule of alerts.yml by alert name.
func alertQueries(t *testing.T) map[string]string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
			} `json:"rules"`
		} `json:"groups"`
	}
	readYAML(t, "prometheus/alerts.yml", &rules)
	queries := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			queries[r.Alert] = r.Expr
		}
	}
	return queries
}

// TestDashboardQueries parses every query of the Grafana dashboard with
// Prometheus's own PromQL parser: a query Prometheus would refuse, or one
// still holding a variable Grafana does not replace, fails.
func TestDashboardQueries(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for name, q := range dashboardQueries(t) {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(q, "$") {
				t.Errorf("query %q holds a variable this dashboard does not define", q)
			}
			if _, err := p.ParseExpr(q); err != nil {
				t.Errorf("ParseExpr(%q) = %v", q, err)
			}
		})
	}
}

// metricNames returns the metric names the queries select, each with the
// query's name.
func metricNames(t *testing.T, queries map[string]string) map[string][]string {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	names := map[string][]string{}
	for name, q := range queries {
		expr, err := p.ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: ParseExpr(%q) = %v", name, q, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !slices.Contains(names[vs.Name], name) {
				names[vs.Name] = append(names[vs.Name], name)
			}
			return nil
		})
	}
	return names
}

// readYAML decodes the YAML file at path into v, failing t.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
