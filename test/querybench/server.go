package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/test/fnproc"
)

// buildQuery builds the query function into dir and returns the binary's path.
func buildQuery(ctx context.Context, dir string) (string, error) {
	return fnproc.Build(ctx, dir, "./functions/query/cmd", "query")
}

// function is a running query function.
type function struct {
	*fnproc.Proc
	cmd *exec.Cmd
	url string
	log string
}

func (f *function) stop() error { return f.Stop() }

// startQuery starts bin on a free loopback port against databaseURL, with QUERY_MAX_CONNS
// maxConns and a cursor secret of its own, and waits until /health/readiness answers 200.
// Unless the environment sets them: AUTH_MODE=none (a benchmark on loopback has no tokens to
// show), and QUERY_AUDIT_READS=false (recorded reads are stored events: tens of thousands of
// benchmark requests would pile them into the last hours of the seeded database and skew every
// later run's since=24h and since=7d scenarios).
func startQuery(ctx context.Context, bin, databaseURL string, maxConns int, logPath string) (*function, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	p, err := fnproc.Start(ctx, "query", bin, []string{"AUTH_MODE=none", "QUERY_AUDIT_READS=false"},
		[]string{"DATABASE_URL=" + databaseURL, "QUERY_CURSOR_SECRET=" + hex.EncodeToString(secret),
			"QUERY_MAX_CONNS=" + strconv.Itoa(maxConns)}, logPath)
	if err != nil {
		return nil, err
	}
	return &function{Proc: p, cmd: p.Cmd, url: p.URL, log: p.Log}, nil
}

func procStatus(pid int, field string) (int64, error) { return fnproc.ProcStatus(pid, field) }

func tail(path string, n int) string { return fnproc.Tail(path, n) }

// cpuTime returns the user+system CPU time a process has used so far (/proc/<pid>/stat,
// in USER_HZ ticks of 10 ms on every Linux architecture Go supports).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces; fields count from after it.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
