package layout

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/dmshub/dmsrouter/"

// allowed lists, for each package of the module, the packages of the
// module its non-test files may import. A package missing here fails the
// test: a new package states its place in the rule.
var allowed = map[string][]string{
	"regions":                    {},
	"regions/internal/gencomuni": {"regions"},
	"taxcode":                    {},
	"logbucket":                  {},
	"shardmap":                   {"logbucket", "regions"},
	"migrations":                 {"regions"},
	"control":                    {"migrations", "regions", "shardmap"},
	"auth":                       {"regions"},
	"registry":                   {"migrations", "regions", "shardmap"},
	"jobs":                       {"regions", "shardmap"},
	"national":                   {"auth", "regions", "registry", "shardmap"},
	"move":                       {"control", "migrations", "regions", "shardmap"},
	"fleet":                      {"control", "migrations", "move", "regions", "shardmap"},
	"router":                     {"auth", "control", "fleet", "national", "regions", "registry", "shardmap", "taxcode"},
	"config":                     {"auth", "control", "jobs", "national", "shardmap"},
	"internal/cli":               {"auth", "config", "control", "fleet", "jobs", "migrations", "move", "national", "regions", "registry", "router", "shardmap"},
	"internal/layout":            {},
	"deploy":                     {}, // tests only: they check the deploy files
	"internal/pgcluster":         {"control", "migrations", "regions", "shardmap"},
	"internal/clitest":           {"pgtest", "shardmap"},
	"pgtest":                     {"internal/pgcluster", "migrations", "regions", "shardmap"},
	"seed":                       {"migrations", "regions", "shardmap", "taxcode"},
	"bench":                      {"auth", "config", "internal/pgcluster", "logbucket", "regions", "registry", "shardmap"},
	"cmd/dmsrouter":              {"auth", "config", "control", "internal/cli", "migrations", "move", "regions", "shardmap"},
	"cmd/dmsdev": {"auth", "bench", "config", "control", "internal/cli", "internal/pgcluster", "migrations", "move",
		"national", "regions", "registry", "router", "seed", "shardmap"},
}

// rooms lists third-party libraries by import path prefix and the packages
// of the module that may import them.
var rooms = map[string][]string{
	"github.com/gin-gonic/":              {"router"},
	"github.com/prometheus/":             {"router"},
	"go.opentelemetry.io/otel/exporters": {"router"},
	"github.com/spf13/viper":             {"config"},
	"github.com/go-viper/":               {"config"},
	"github.com/sony/gobreaker":          {"shardmap"},
	"github.com/golang-jwt/":             {"auth"},
	"github.com/pressly/goose":           {"migrations"},
	"github.com/chromedp/":               {}, // router's tests only: the status page in a browser
	"golang.org/x/time/rate":             {"router"},
	// The OpenAPI validator checks the router's answers in its tests
	// (Imports leaves tests out), never at run time.
	"github.com/getkin/kin-openapi": {},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportsFollowTheRule(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Imports", module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(p.ImportPath, module)
		ok, known := allowed[name]
		if !known {
			t.Errorf("package %s is not in the dependency rule: add it to allowed (and to docs/contributing.md)", name)
			continue
		}
		for _, imp := range p.Imports {
			if dep, internal := strings.CutPrefix(imp, module); internal {
				if !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s, which the dependency rule does not allow", name, dep)
				}
				continue
			}
			for prefix, owners := range rooms {
				if strings.HasPrefix(imp, prefix) && !slices.Contains(owners, name) {
					if len(owners) == 0 {
						t.Errorf("%s imports %s, which only tests may import", name, imp)
					} else {
						t.Errorf("%s imports %s, which stays in %s", name, imp, strings.Join(owners, ", "))
					}
				}
			}
		}
	}
	if seen < len(allowed)/2 {
		t.Fatalf("go list found %d packages; is the module path %q right?", seen, module)
	}
}
