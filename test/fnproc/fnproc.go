// Package fnproc builds and runs one of auditstore's functions as a process of its own, for
// the load generator and the query benchmark, and reads what the kernel knows of it (peak
// RSS, CPU time) and of the machine (time spent waiting for the disk).
package fnproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build builds the main package pkg of this module (e.g. ./functions/write/cmd) into dir as
// name and returns the binary's path.
func Build(ctx context.Context, dir, pkg, name string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this inside the auditstore module (or pass the binary)")
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Dir(gomod)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	return bin, nil
}

// Proc is a running function.
type Proc struct {
	Cmd  *exec.Cmd
	URL  string
	Log  string // its stdout and stderr, kept in a file
	name string
	done chan error
}

// Start runs bin on a free loopback port with the environment defaults, then this process's
// environment, then env (later entries win), output to logPath, and waits until
// /health/readiness answers 200.
func Start(ctx context.Context, name, bin string, defaults, env []string, logPath string) (*Proc, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin)
	cmd.Env = append(append(append([]string{}, defaults...), os.Environ()...), env...)
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Proc{Cmd: cmd, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Log: logPath, name: name, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health/readiness", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("the %s function exited before it was ready (%v):\n%s", name, err, Tail(logPath, 20))
		case <-ctx.Done():
			_ = p.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return nil, fmt.Errorf("the %s function was not ready within 30s:\n%s", name, Tail(logPath, 20))
		}
	}
}

// Stop sends SIGTERM (the function finishes in-flight requests) and waits, killing it after
// 40 s.
func (p *Proc) Stop() error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(40 * time.Second):
		_ = p.Cmd.Process.Kill()
		return fmt.Errorf("the %s function did not stop within 40s after SIGTERM: %v", p.name, <-p.done)
	}
}

// FreePort returns a TCP port free on the loopback interface just now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ProcStatus returns a field of /proc/<pid>/status given in kB (VmHWM, VmRSS), in bytes.
func ProcStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// IOStall measures the share of wall time in which some task of the machine waited for the
// disk (Linux pressure stall information, io "some"): it shows when a measurement's tail was
// the disk's, e.g. when the page cache of a shared machine no longer held the tables read.
type IOStall struct {
	start time.Time
	total int64 // microseconds stalled since boot; -1: not available
}

// StartIOStall starts measuring.
func StartIOStall() IOStall { return IOStall{start: time.Now(), total: ioStallTotal()} }

// Share returns the stalled share of the time since the start, or -1 when it is not known.
func (s IOStall) Share() float64 {
	now := ioStallTotal()
	elapsed := time.Since(s.start).Microseconds()
	if s.total < 0 || now < 0 || elapsed <= 0 {
		return -1
	}
	return float64(now-s.total) / float64(elapsed)
}

// ioStallTotal reads the "some" total of /proc/pressure/io, or -1.
func ioStallTotal() int64 {
	b, err := os.ReadFile("/proc/pressure/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// Percent formats a share such as IOStall.Share's as "1.2%", or "?" when it is unknown.
func Percent(share float64) string {
	if share < 0 {
		return "?"
	}
	return strconv.FormatFloat(share*100, 'f', 1, 64) + "%"
}
