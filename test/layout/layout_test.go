// Package layout keeps the packages' import arrows as README's picture draws them: every
// import of one of our packages by another must be an arrow of the picture, every arrow drawn
// between two named shared packages must exist, and pgx is imported only where the picture
// says.
package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/auditstore/auditstore"

// arrow is one line of the picture: packages matching from may import packages matching any
// of to. A pattern is a package path below the module where * is one path element, ** one or
// more, and {name} one element that the to patterns repeat (functions/{f}/cmd may import
// functions/{f}).
type arrow struct {
	line int
	from string
	to   []string
}

// exact reports whether the arrow names one package and each package it imports: such an
// arrow must match the imports exactly, so the picture cannot keep an arrow the code dropped.
func (a arrow) exact() bool {
	return !strings.ContainsAny(a.from, "*{") && !slices.ContainsFunc(a.to, func(t string) bool { return strings.ContainsAny(t, "*{") })
}

// readPicture reads the arrows of README's picture: the lines between the picture markers,
// each "from ──▶ to to ...", or "from ──▶ (nothing)".
func readPicture(t *testing.T, readme []byte) []arrow {
	t.Helper()
	var arrows []arrow
	in := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.Contains(line, "<!-- imports -->"):
			in = true
			continue
		case strings.Contains(line, "<!-- /imports -->"):
			in = false
		}
		from, to, ok := strings.Cut(line, "──▶")
		if !in || !ok {
			continue
		}
		a := arrow{line: n, from: strings.TrimSpace(from), to: strings.Fields(to)}
		if len(a.to) == 1 && a.to[0] == "(nothing)" {
			a.to = nil
		}
		arrows = append(arrows, a)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, arrows, "README.md has no picture of the imports between <!-- imports --> and <!-- /imports -->")
	return arrows
}

// pattern compiles a picture pattern, naming its {captures}.
func pattern(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i, el := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch {
		case el == "**":
			b.WriteString(".+")
		case el == "*":
			b.WriteString("[^/]+")
		case strings.HasPrefix(el, "{") && strings.HasSuffix(el, "}"):
			b.WriteString("(?P<" + el[1:len(el)-1] + ">[^/]+)")
		default:
			b.WriteString(regexp.QuoteMeta(el))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// rule returns the first arrow of the picture whose from matches pkg, and its captures.
func rule(arrows []arrow, pkg string) (arrow, map[string]string, bool) {
	for _, a := range arrows {
		re := pattern(a.from)
		m := re.FindStringSubmatch(pkg)
		if m == nil {
			continue
		}
		caps := map[string]string{}
		for i, name := range re.SubexpNames() {
			if name != "" {
				caps[name] = m[i]
			}
		}
		return a, caps, true
	}
	return arrow{}, nil, false
}

// allows reports whether a (with the importer's captures) allows importing dep.
func (a arrow) allows(caps map[string]string, dep string) bool {
	for _, to := range a.to {
		for name, v := range caps {
			to = strings.ReplaceAll(to, "{"+name+"}", v)
		}
		if pattern(to).MatchString(dep) {
			return true
		}
	}
	return false
}

// pkg is what go list says of one of our packages.
type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs go list over the module and returns each package's imports (not its
// tests'), ours as paths below the module, and pgx's as "pgx".
func listPackages(t *testing.T, root string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list: %s", stderr.String())
	pkgs := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		var deps []string
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, module+"/"):
				deps = append(deps, strings.TrimPrefix(imp, module+"/"))
			case strings.HasPrefix(imp, "github.com/jackc/pgx/"):
				if !slices.Contains(deps, "pgx") {
					deps = append(deps, "pgx")
				}
			}
		}
		pkgs[name] = deps
	}
	return pkgs
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// check returns the imports the picture does not allow, and the exact arrows the code does
// not draw, one line each.
func check(arrows []arrow, pkgs map[string][]string) []string {
	var bad []string
	names := make([]string, 0, len(pkgs))
	for name := range pkgs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		a, caps, ok := rule(arrows, name)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s is in no line of the picture: add it", name))
			continue
		}
		for _, dep := range pkgs[name] {
			if !a.allows(caps, dep) {
				bad = append(bad, fmt.Sprintf("%s ──▶ %s is not allowed (README line %d: %s ──▶ %s)", name, dep, a.line, a.from, strings.Join(a.to, " ")))
			}
		}
		if a.exact() {
			for _, to := range a.to {
				if !slices.Contains(pkgs[name], to) {
					bad = append(bad, fmt.Sprintf("%s ──▶ %s is drawn (README line %d) but not imported: take it out of the picture", name, to, a.line))
				}
			}
		}
	}
	return bad
}

// TestImports checks every import of our packages against README's picture, naming each
// offending arrow.
func TestImports(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	bad := check(readPicture(t, readme), listPackages(t, root))
	require.Empty(t, bad, "the imports do not match README's picture:\n%s", strings.Join(bad, "\n"))
}

// TestCheck_Refuses shows the check can fail: a function importing another, a job importing
// a function, a shared arrow drawn but gone, pgx outside the store, a package in no line.
func TestCheck_Refuses(t *testing.T) {
	t.Parallel()
	arrows := readPicture(t, []byte(strings.Join([]string{
		"<!-- imports -->",
		"functions/{f}/cmd ──▶ functions/{f} shared/**",
		"functions/*       ──▶ shared/**",
		"jobs/*            ──▶ shared/**",
		"shared/store      ──▶ shared/audit pgx",
		"shared/audit      ──▶ (nothing)",
		"<!-- /imports -->",
	}, "\n")))
	bad := check(arrows, map[string][]string{
		"functions/query/cmd": {"functions/query", "shared/web"},
		"functions/write/cmd": {"functions/query"},
		"functions/write":     {"functions/query", "pgx"},
		"jobs/maintain":       {"functions/maintain"},
		"shared/store":        {"pgx"},
		"shared/audit":        {},
		"knative":             {},
	})
	require.Equal(t, []string{
		"functions/write ──▶ functions/query is not allowed (README line 3: functions/* ──▶ shared/**)",
		"functions/write ──▶ pgx is not allowed (README line 3: functions/* ──▶ shared/**)",
		"functions/write/cmd ──▶ functions/query is not allowed (README line 2: functions/{f}/cmd ──▶ functions/{f} shared/**)",
		"jobs/maintain ──▶ functions/maintain is not allowed (README line 4: jobs/* ──▶ shared/**)",
		"knative is in no line of the picture: add it",
		"shared/store ──▶ shared/audit is drawn (README line 5) but not imported: take it out of the picture",
	}, bad)
}
