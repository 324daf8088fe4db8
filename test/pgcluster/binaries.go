package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// binaries locates the PostgreSQL server programs of one installation.
type binaries struct {
	dir    string // for messages
	initdb string
	pgCtl  string
}

// wellKnownBinDirs are globs of the usual server installation directories
// of Linux distributions and Homebrew, consulted when pg_config is missing or
// belongs to a client-only installation (Debian's libpq-dev ships pg_config
// without the server).
var wellKnownBinDirs = []string{
	"/usr/lib/postgresql/*/bin",          // Debian, Ubuntu
	"/usr/pgsql-*/bin",                   // PGDG RPMs
	"/opt/homebrew/opt/postgresql@*/bin", // Homebrew, Apple silicon
	"/usr/local/opt/postgresql@*/bin",    // Homebrew, Intel
	"/usr/local/pgsql/bin",               // built from source
	"/opt/homebrew/opt/postgresql/bin",   // Homebrew, unversioned
	"/usr/local/opt/postgresql/bin",      // Homebrew, unversioned
	"/Applications/Postgres.app/Contents/Versions/latest/bin",
}

// findBinaries returns the server binaries: pg_config's bindir if it holds
// them, else the newest well-known installation, else initdb and pg_ctl on
// PATH.
func findBinaries() (binaries, error) {
	var tried []string
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			dir := strings.TrimSpace(string(out))
			if b, ok := binariesIn(dir); ok {
				return b, nil
			}
			tried = append(tried, fmt.Sprintf("%s --bindir (%s) has no initdb/pg_ctl", pgConfig, dir))
		}
	} else {
		tried = append(tried, "no pg_config on PATH")
	}

	var dirs []string
	for _, g := range wellKnownBinDirs {
		m, _ := filepath.Glob(g)
		dirs = append(dirs, m...)
	}
	// Newest major version first: tests should meet the server production
	// most likely runs, and old leftovers should not win by accident.
	sort.SliceStable(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if b, ok := binariesIn(dir); ok {
			return b, nil
		}
	}
	tried = append(tried, "no initdb/pg_ctl in "+strings.Join(wellKnownBinDirs, ", "))

	initdb, err1 := exec.LookPath("initdb")
	pgCtl, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return binaries{dir: filepath.Dir(initdb), initdb: initdb, pgCtl: pgCtl}, nil
	}
	tried = append(tried, "no initdb/pg_ctl on PATH")
	return binaries{}, errors.New(strings.Join(tried, "; "))
}

func binariesIn(dir string) (binaries, bool) {
	if dir == "" {
		return binaries{}, false
	}
	b := binaries{dir: dir, initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}
	for _, p := range []string{b.initdb, b.pgCtl, filepath.Join(dir, "postgres")} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return binaries{}, false
		}
	}
	return b, true
}

// versionOf extracts the major version from paths like
// /usr/lib/postgresql/15/bin or /usr/pgsql-16/bin; unversioned paths sort
// last.
func versionOf(dir string) int {
	best := -1
	for _, part := range strings.FieldsFunc(dir, func(r rune) bool { return r < '0' || r > '9' }) {
		if n, err := strconv.Atoi(part); err == nil && n > best {
			best = n
		}
	}
	return best
}

// runAs runs a server program, as the cluster's owner when the process is
// root (initdb, pg_ctl and postgres refuse to run as root), and returns
// its combined output for error messages.
func runAs(ctx context.Context, owner *account, dir string, ownGroup bool, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.WaitDelay = 5 * time.Second // never hang on a pipe inherited by a stray child
	attr := &syscall.SysProcAttr{}
	if owner != nil && owner.switchTo {
		attr.Credential = &syscall.Credential{Uid: owner.uid, Gid: owner.gid}
	}
	// A persistent server gets its own process group so that Ctrl-C on
	// `make run` does not reach the postmaster, which pg_ctl leaves in the
	// group it was started in; it must outlive the run.
	attr.Setpgid = ownGroup
	cmd.SysProcAttr = attr
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// childEnv drops the libpq/server PG* variables (PGDATA, PGPORT, ...) of the
// caller, which would otherwise silently change where and how the server
// programs run.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}
